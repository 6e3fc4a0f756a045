"""The CUDA paths of a trial, on a real GPU: mixed precision (bf16, and fp16 with its gradient
scaler), cuDNN autotuning and channels-last, the uint8 dataset held on the device, the streamed
folder's pinned-memory copies, a model saved on the GPU and loaded on the CPU, and trials at a
fraction of a GPU through `selab run`.

Every test here is marked `gpu`: it runs wherever a CUDA device exists and is skipped only where
none does (tests/conftest.py). docs/benchmarks.md has the run that showed them passing.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from runners.spec.data import DataConfig
from runners.spec.train import TrainConfig
from runners.trial import training
from runners.trial.data.load import load_splits
from runners.trial.training import Trainer
from search_space import ArchConfig, build_model
from search_space.serialize import load_model, save_model

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """CIFAR-10 in its real on-disk format (5 x 400 training images, learnable colours):
    read from disk, then held on the GPU as uint8 like the real one."""
    from tests.support.fakedata import write_cifar10

    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, per_batch=400, test=400)
    return str(root)


def se_resnet20() -> tuple[ArchConfig, torch.nn.Module]:
    arch = ArchConfig.parse(
        {"backbone": "cifar_resnet20", "num_classes": 10, "input_size": 32, "se": {"reduction": 16}}
    )
    torch.manual_seed(0)
    return arch, build_model(arch)


def trainer_for(model: torch.nn.Module, root: str, **train) -> Trainer:
    data = DataConfig.model_validate({"name": "cifar10", "root": root, "val_size": 400})
    splits = load_splits(data, "cuda")
    cfg = TrainConfig.model_validate({"epochs": 2, "batch_size": 256, "lr": 0.05, **train})
    return Trainer(model, splits, cfg, "cuda", seed=0)


def test_an_se_resnet20_epoch_trains_in_bf16_channels_last_with_cudnn_autotuning(
    cifar_root: str,
) -> None:
    _, model = se_resnet20()
    trainer = trainer_for(model, cifar_root)
    major, _ = torch.cuda.get_device_capability()
    assert trainer.amp  # amp: auto is on for CUDA
    assert trainer.amp_dtype == (torch.bfloat16 if major >= 8 else torch.float16)
    assert trainer.scaler.is_enabled() == (trainer.amp_dtype == torch.float16)
    assert torch.backends.cudnn.benchmark
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_cuda
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)

    first, second = trainer.run_epoch(), trainer.run_epoch()
    assert not first.diverged and math.isfinite(second.train_loss)
    assert second.train_loss < first.train_loss  # it learns the synthetic classes
    assert 0.0 <= second.val_acc <= 1.0 and second.images_per_s > 0


def test_fp16_trains_through_the_gradient_scaler(monkeypatch, cifar_root: str) -> None:
    """GPUs before Ampere get fp16 and a gradient scaler; force that path on this GPU."""
    monkeypatch.setattr(training, "autocast_dtype", lambda *_: torch.float16)
    _, model = se_resnet20()
    before = [p.detach().clone() for p in model.parameters()]
    trainer = trainer_for(model, cifar_root)
    assert trainer.amp_dtype == torch.float16 and trainer.scaler.is_enabled()
    result = trainer.run_epoch()
    assert not result.diverged and math.isfinite(result.train_loss)
    scale = trainer.scaler.get_scale()
    assert math.isfinite(scale) and scale > 0
    moved = [
        not torch.equal(b, p.detach().cpu().to(b.device))
        for b, p in zip(before, trainer.model.parameters(), strict=True)
    ]
    assert sum(moved) > len(moved) // 2  # the scaled steps did update the weights


def test_a_model_saved_on_the_gpu_gives_the_same_outputs_loaded_on_the_cpu(
    tmp_path: Path, cifar_root: str
) -> None:
    arch, model = se_resnet20()
    trainer = trainer_for(model, cifar_root)
    trainer.run_epoch()
    path = save_model(tmp_path / "model.pt", arch, trainer.model)

    _, loaded = load_model(path)
    assert all(not t.is_cuda for t in loaded.state_dict().values())
    x = torch.randn(16, 3, 32, 32)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # compare float32 with float32
    try:
        with torch.no_grad():
            on_gpu = trainer.model.eval()(x.cuda().contiguous(memory_format=torch.channels_last))
            on_cpu = loaded(x)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    assert torch.allclose(on_gpu.float().cpu(), on_cpu, rtol=1e-3, atol=1e-4)
    assert torch.equal(on_gpu.argmax(1).cpu(), on_cpu.argmax(1))


def test_the_in_memory_dataset_stays_on_the_gpu_while_training(cifar_root: str) -> None:
    """uint8 images on the device, batches drawn there: an epoch copies no batch from the host
    (host-to-device copies counted by the profiler stay far below the number of steps)."""
    _, model = se_resnet20()
    trainer = trainer_for(model, cifar_root)
    splits = trainer.splits
    assert splits.train_x.is_cuda and splits.train_x.dtype == torch.uint8
    assert splits.val_x.is_cuda and splits.train_y.is_cuda
    x, y = next(iter(splits.train_batches(256, trainer.generator, True)))
    assert x.is_cuda and y.is_cuda and x.dtype == torch.float32

    trainer.run_epoch()  # warm-up: cuDNN autotuning, allocator
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        trainer.run_epoch()
    copies = [e for e in prof.events() if "Memcpy HtoD" in e.name]
    assert len(copies) < trainer.steps_per_epoch / 2, [e.name for e in copies][:10]


def test_a_streamed_folder_reaches_the_gpu_through_pinned_memory(tmp_path: Path) -> None:
    from tests.support.fakedata import write_image_folder

    root = write_image_folder(
        tmp_path / "folder", {"red": (200, 30, 30), "blue": (30, 30, 200)}, per_class=80
    )
    cfg = DataConfig.model_validate(
        {
            "name": "imagefolder",
            "root": str(root),
            "image_size": 32,
            "memory_budget_mb": 0,
            "loader_workers": 2,
        }
    )
    splits = load_splits(cfg, "cuda", workers=2)
    assert splits.streamed
    assert splits._loader(splits.train, 32).pin_memory  # pinned: copies can overlap compute
    x, y = next(iter(splits.train_batches(32, torch.Generator("cuda").manual_seed(0), True)))
    assert x.is_cuda and y.is_cuda

    arch = ArchConfig.parse({"backbone": "cifar_resnet20", "num_classes": 2, "input_size": 32})
    cfg_train = TrainConfig.model_validate({"epochs": 1, "batch_size": 32, "lr": 0.05})
    trainer = Trainer(build_model(arch), splits, cfg_train, "cuda", seed=0)
    result = trainer.run_epoch()
    assert not result.diverged and result.val_acc > 0.5


@pytest.mark.slow
def test_trials_at_half_a_gpu_share_it_through_selab_run(tmp_path, tiny_spec) -> None:
    """Two trials at gpus_per_trial 0.5 run at once on the one GPU, on CUDA."""
    from tests.support.cli import selab
    from tests.support.specs import write_spec
    from tests.support.sweep_state import sweep_runs

    spec = write_spec(
        tmp_path,
        tiny_spec(
            name="half-gpu",
            arch={"backbone": "cifar_resnet20"},
            data={"name": "synthetic", "image_size": 32, "train_size": 1024, "val_size": 256},
            train={"epochs": 2, "batch_size": 128},
            resources={"cpus_per_trial": 1, "gpus_per_trial": 0.5},
        ),
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = selab(
        ["run", str(spec), "--storage", str(tmp_path / "runs"), "--tracking-uri", uri], cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    parent, trials = sweep_runs(uri, "half-gpu")
    assert parent.info.status == "FINISHED" and len(trials) == 2
    for run in trials:
        assert run.data.tags["selab.status"] == "finished"
        assert run.data.tags.get("selab.device", "").startswith("cuda"), run.data.tags

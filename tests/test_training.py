"""runners.trial.training: learning, exact resume, divergence, config validation, LR schedules."""

from __future__ import annotations

import io
import math
from itertools import pairwise

import pytest
import torch
from torch import nn

from runners.spec.data import DataConfig
from runners.spec.train import TrainConfig
from runners.trial.data.load import load_splits
from runners.trial.data.splits import DataSplits
from runners.trial.training import EpochResult, Trainer, lr_schedule
from search_space.errors import ConfigError


class TinyNet(nn.Module):
    """Conv + BN + dropout: enough to learn digits, and to exercise every RNG on resume."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.1),
        )
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class NaNNet(TinyNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * float("nan")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: threads only add overhead, and a lot of it on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_splits(DataConfig(name="digits"))


@pytest.fixture(scope="module")
def small_digits() -> DataSplits:
    return load_splits(DataConfig(name="digits", limit_train=256))


def _trainer(splits: DataSplits, model_seed: int = 0, net=TinyNet, **cfg) -> Trainer:
    torch.manual_seed(model_seed)  # the caller seeds the initialisation
    cfg = {"epochs": 2, "batch_size": 32, "lr": 0.05, **cfg}
    return Trainer(net(), splits, TrainConfig(**cfg), "cpu", seed=0)


def test_learns_digits_well_above_chance(digits):
    trainer = _trainer(digits, epochs=3, batch_size=64, lr=0.1)
    results = [trainer.run_epoch() for _ in range(3)]
    assert [r.epoch for r in results] == [1, 2, 3] and trainer.done
    assert results[-1].val_acc > 0.5  # chance is 0.1
    assert results[-1].train_loss < results[0].train_loss
    last = results[-1]
    assert not last.diverged and last.val_top5 is not None and last.val_top5 >= last.val_acc
    assert last.images_per_s > 0 and last.epoch_time_s > 0
    assert set(last.metrics()) == {
        "train_loss",
        "val_loss",
        "val_acc",
        "val_top5",
        "images_per_s",
        "epoch_time_s",
    }


def test_resume_from_checkpoint_is_exact(small_digits):
    straight = _trainer(small_digits)
    straight.run_epoch()
    expected = straight.run_epoch()

    first = _trainer(small_digits)
    first.run_epoch()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # plain tensors and containers only

    torch.manual_seed(123)  # whatever the new process does before loading must not matter
    resumed = _trainer(small_digits, model_seed=7)
    resumed.load_state_dict(state)
    got = resumed.run_epoch()

    assert got.epoch == 2 and resumed.epoch == 2
    expected_state, got_state = straight.model.state_dict(), resumed.model.state_dict()
    for name, tensor in expected_state.items():
        assert torch.equal(tensor, got_state[name]), name
    assert (got.train_loss, got.val_loss, got.val_acc) == (
        expected.train_loss,
        expected.val_loss,
        expected.val_acc,
    )
    assert resumed.lr == straight.lr


def test_resume_refuses_a_different_batch_size(small_digits):
    state = _trainer(small_digits).state_dict()
    with pytest.raises(ValueError, match="steps per epoch"):
        _trainer(small_digits, batch_size=64).load_state_dict(state)


def test_nan_model_is_reported_diverged_and_stops_at_the_next_check(small_digits):
    trainer = _trainer(small_digits, net=NaNNet)
    trainer.check_every = 2
    result = trainer.run_epoch()
    assert result.diverged and math.isnan(result.train_loss) and math.isnan(result.val_acc)
    assert trainer.scheduler.last_epoch == 2  # stopped after 2 of 8 steps


def test_huge_lr_ends_diverged_without_raising(small_digits):
    trainer = _trainer(small_digits, lr=1e30, momentum=0.0, epochs=3)
    results = []
    while not trainer.done and not (results and results[-1].diverged):
        results.append(trainer.run_epoch())
    assert results[-1].diverged


def test_top5_is_none_for_five_classes_or_fewer():
    cfg = DataConfig(name="synthetic", num_classes=3, image_size=8, train_size=64, val_size=32)
    splits = load_splits(cfg)
    result = _trainer(splits, net=lambda: TinyNet(3, 3), epochs=1).run_epoch()
    assert result.val_top5 is None and 0 <= result.val_acc <= 1
    assert "val_top5" not in result.metrics()


def test_bf16_autocast_and_channels_last_on_cpu(small_digits):
    trainer = _trainer(small_digits, epochs=1, amp="on", channels_last="on", grad_clip=1.0)
    assert trainer.amp and trainer.memory_format == torch.channels_last
    result = trainer.run_epoch()
    assert math.isfinite(result.train_loss) and not result.diverged
    assert trainer.model.features[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_no_weight_decay_on_bn_and_bias(small_digits):
    trainer = _trainer(small_digits, weight_decay=1e-3)
    decay, no_decay = trainer.optimizer.param_groups
    assert decay["weight_decay"] == 1e-3 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and len(decay["params"]) == 2  # conv, fc
    assert len(no_decay["params"]) == 3  # bn weight and bias, fc bias


def test_adamw_runs(small_digits):
    trainer = _trainer(small_digits, optimizer="adamw", lr=1e-3, epochs=1)
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    assert math.isfinite(trainer.run_epoch().val_loss)


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"lr": 0}, "lr"),
        ({"lr": float("inf")}, "lr"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"momentum": 1.0}, "momentum"),
        ({"optimizer": "adam"}, "optimizer"),
        ({"schedule": "linear"}, "schedule"),
        ({"schedule": "step"}, "milestones"),
        ({"schedule": "step", "milestones": [3, 2]}, "milestones"),
        ({"warmup_epochs": 6}, "warmup_epochs"),
        ({"grad_clip": -1}, "grad_clip"),
        ({"amp": "yes"}, "amp"),
        ({"se_impl": "fused"}, "se_impl"),
        ({"learning_rate": 0.1}, "learning_rate"),
    ],
)
def test_train_config_rejects_bad_values_naming_the_field(values, field):
    with pytest.raises(ConfigError, match=rf"train\.{field}:"):
        TrainConfig.model_validate(values)


def test_train_config_error_lists_allowed_values():
    with pytest.raises(ConfigError, match="allowed: 'sgd' or 'adamw'"):
        TrainConfig.model_validate({"optimizer": "adam"})


def test_fast_se_trains_the_same_network_as_the_plain_block(small_digits):
    """train.se_impl: fast changes how the SE blocks compute, not what: after an epoch of SGD
    the weights and losses match the plain block's (to float rounding)."""
    from search_space import ArchConfig, build_model
    from search_space.se_fast import FastSqueezeExcite

    arch = ArchConfig.parse(
        {
            "backbone": "cifar_resnet8",
            "num_classes": 10,
            "input_size": 8,
            "in_channels": 1,
            "se": {"reduction": 4},
        }
    )
    results, states = {}, {}
    for impl in ("plain", "fast"):
        torch.manual_seed(0)
        cfg = TrainConfig(epochs=1, batch_size=32, lr=0.05, se_impl=impl)
        trainer = Trainer(build_model(arch), small_digits, cfg, "cpu", seed=0)
        results[impl], states[impl] = trainer.run_epoch(), trainer.model.state_dict()
        fast_blocks = [m for m in trainer.model.modules() if isinstance(m, FastSqueezeExcite)]
        assert bool(fast_blocks) == (impl == "fast")
    assert states["plain"].keys() == states["fast"].keys()  # checkpoints interchangeable
    for name, tensor in states["plain"].items():
        torch.testing.assert_close(states["fast"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    assert results["fast"].train_loss == pytest.approx(results["plain"].train_loss, rel=1e-4)
    assert results["fast"].val_acc == pytest.approx(results["plain"].val_acc, abs=0.01)


# ----------------------------------------------------------------------------- schedules


def _lrs(cfg: TrainConfig, steps_per_epoch: int) -> list[float]:
    f = lr_schedule(cfg, steps_per_epoch)
    return [cfg.lr * f(s) for s in range(cfg.epochs * steps_per_epoch)]


def test_cosine_with_warmup_steps_per_batch():
    cfg = TrainConfig(epochs=4, lr=0.2, warmup_epochs=1)
    lrs = _lrs(cfg, 10)
    assert lrs[0] == pytest.approx(0.02)  # warmup starts low and rises every batch
    assert all(a < b for a, b in pairwise(lrs[:10]))
    assert lrs[9] == pytest.approx(0.2) and lrs[10] == pytest.approx(0.2)  # the configured lr
    assert all(a >= b for a, b in pairwise(lrs[10:]))  # then only down
    assert lrs[-1] < 0.002  # cosine ends near 0
    assert len(set(lrs[10:20])) == 10  # changes within an epoch, not per epoch


def test_step_constant_and_onecycle_shapes():
    step = _lrs(TrainConfig(epochs=3, lr=1.0, schedule="step", milestones=[1, 2], gamma=0.5), 4)
    assert step == [1.0] * 4 + [0.5] * 4 + [0.25] * 4
    assert _lrs(TrainConfig(epochs=2, lr=0.3, schedule="constant"), 5) == [0.3] * 10
    one = _lrs(TrainConfig(epochs=10, lr=1.0, schedule="onecycle"), 10)
    peak = one.index(max(one))
    assert one[0] == pytest.approx(1 / 25) and max(one) == pytest.approx(1.0) and peak == 30
    assert one[-1] < 1e-3


def test_trainer_steps_the_schedule_per_batch(small_digits):
    trainer = _trainer(small_digits, epochs=3, lr=0.05, warmup_epochs=1)
    start = trainer.lr
    result: EpochResult = trainer.run_epoch()
    assert not result.diverged
    assert trainer.scheduler.last_epoch == trainer.steps_per_epoch == 8  # 256 // 32 steps
    assert start == pytest.approx(0.05 / 8) and trainer.lr == pytest.approx(0.05)
    trainer.run_epoch()
    trainer.run_epoch()
    assert trainer.lr < 1e-6  # the cosine has run its course

"""What `selab validate` and `selab run` refuse before anything starts: data, networks on that
data, search combinations, resources, the tracking store, storage. Every refusal exits 2 with a
message naming the field, in seconds, leaving no MLflow store, Ray folder or trial behind."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from runners.cli.main import main
from runners.spec.load import apply_overrides, load_spec, parse_spec
from runners.storage.paths import SweepFolder, is_uri, with_absolute_paths
from runners.sweep.preflight import check_tracking
from runners.trial.training import autocast_dtype
from search_space.errors import ConfigError
from tests.support import own_err, write_spec
from tests.support.fakedata import write_cifar10


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SELAB_DATA", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def refused(capsys, argv: list[str], *expected: str) -> str:
    """Run the CLI; it must exit 2 with every `expected` text and no traceback on stderr."""
    code = main(argv)
    err = own_err(capsys)
    assert code == 2, err
    assert "invalid input" in err and "Traceback" not in err, err
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    return err


def nothing_created(tmp_path: Path, *allowed: str) -> None:
    assert {p.name for p in tmp_path.iterdir()} <= set(allowed), list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- resources


def test_a_gpu_request_on_a_cpu_only_ray_is_refused_before_anything_starts(
    ray_address: str, tiny_spec, tmp_path: Path, capsys
) -> None:
    """The session's local Ray has 2 CPUs and no GPU: without the check, trials stay PENDING
    forever. `--set` lifts the request, and the same spec then passes."""
    spec = write_spec(
        tmp_path / "gpu.yaml", tiny_spec(name="gpu", resources={"gpus_per_trial": 0.25})
    )
    refused(
        capsys,
        ["run", spec, "--address", ray_address],
        "resources.gpus_per_trial",
        "0.25 GPU",
        "2 CPUs, 0 GPUs",
        "--set resources.gpus_per_trial=0",
    )
    nothing_created(tmp_path, "gpu.yaml")
    refused(capsys, ["validate", spec, "--address", ray_address], "resources.gpus_per_trial")
    assert (
        main(["validate", spec, "--address", ray_address, "--set", "resources.gpus_per_trial=0"])
        == 0
    )
    big = write_spec(
        tmp_path / "cpu.yaml", tiny_spec(name="cpu", resources={"cpus_per_trial": 512})
    )
    refused(
        capsys,
        ["validate", big, "--address", ray_address],
        "resources.cpus_per_trial",
        "512 CPUs",
        "at most 2",
    )


# ----------------------------------------------------------------------------- networks, data


def test_vgg_on_digits_is_refused_naming_backbone_and_input(tiny_spec, tmp_path, capsys) -> None:
    spec = write_spec(tmp_path / "vgg.yaml", tiny_spec(name="vgg", arch={"backbone": "vgg11_bn"}))
    refused(
        capsys,
        ["validate", spec],
        "arch: vgg11 cannot run on digits's 1x8x8 inputs",
        "Output size is too small",
    )


def test_a_search_combination_that_cannot_build_is_refused(tiny_spec, tmp_path, capsys) -> None:
    """depth 8 (basic blocks) and after_3x3 (bottlenecks only) are each valid with the fixed
    part of the spec, but not together."""
    data = tiny_spec(
        name="combo",
        arch={"backbone": "cifar_resnet", "depth": 164},
        search={
            "kind": "tpe",
            "grid": {},
            "num_samples": 2,
            "space": {
                "arch.depth": {"choice": [8, 164]},
                "arch.se.placement": {"choice": ["standard", "after_3x3"]},
                "train.lr": {"float": [0.01, 0.1], "log": True},
            },
        },
    )
    refused(
        capsys,
        ["validate", write_spec(tmp_path / "combo.yaml", data)],
        "search.space: the combination arch.depth=8, arch.se.placement=after_3x3",
        "bottleneck",
    )


def test_missing_cifar_and_a_crafted_pickle_are_refused(tiny_spec, tmp_path, capsys) -> None:
    spec = write_spec(
        tmp_path / "c.yaml",
        tiny_spec(name="c", data={"name": "cifar10", "root": "./data", "val_size": 100}),
    )
    refused(
        capsys,
        ["validate", spec],
        "data.root: CIFAR-10 not found",
        str(tmp_path / "data" / "cifar-10-batches-py"),
    )
    write_cifar10(tmp_path / "data", per_batch=40, test=40)
    assert main(["validate", spec]) == 0
    marker = tmp_path / "ran"
    with open(tmp_path / "data" / "cifar-10-batches-py" / "test_batch", "wb") as f:
        # A pickle that would call os.mkdir(marker) when loaded.
        f.write(
            b"\x80\x02cposix\nmkdir\nq\x00X"
            + len(str(marker)).to_bytes(4, "little")
            + str(marker).encode()
            + b"q\x01\x85q\x02Rq\x03."
        )
    refused(
        capsys,
        ["run", spec],
        "test_batch is not a CIFAR batch file",
        "refusing to load posix.mkdir",
    )
    assert not marker.exists()
    nothing_created(tmp_path, "c.yaml", "data")


# ----------------------------------------------------------------------------- tracking, storage


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tracking_uris_that_cannot_work_are_refused(tiny_spec, tmp_path, capsys) -> None:
    spec = write_spec(tmp_path / "t.yaml", tiny_spec(name="t"))
    uri = f"http://127.0.0.1:{closed_port()}"
    refused(
        capsys,
        ["run", spec, "--tracking-uri", uri],
        "tracking.uri",
        uri,
        "does not answer within 5 s",
    )
    refused(
        capsys,
        ["run", spec, "--tracking-uri", "foo://bar"],
        "tracking.uri",
        "foo://bar: unknown scheme",
        "sqlite",
    )
    nothing_created(tmp_path, "t.yaml")
    with pytest.raises(ConfigError, match="is a file"):
        (tmp_path / "afile").write_text("x")
        check_tracking(f"sqlite:///{tmp_path}/afile/mlflow.db")


def test_bad_storage_and_names_are_refused_and_overwrite_spares_other_folders(
    tiny_spec, tmp_path, capsys
) -> None:
    spec = write_spec(tmp_path / "s.yaml", tiny_spec(name="s"))
    (tmp_path / "file").write_text("not a folder")
    refused(
        capsys,
        ["run", spec, "--storage", str(tmp_path / "file" / "runs")],
        "storage (or --storage)",
        "is a file",
    )
    long = write_spec(tmp_path / "long.yaml", tiny_spec(name="n" * 300))
    refused(capsys, ["run", long], "name: too long: 300 characters, at most 100 allowed")
    # --overwrite never removes a folder that a selab run did not make.
    precious = tmp_path / "runs" / "s"
    precious.mkdir(parents=True)
    (precious / "thesis.tex").write_text("years of work")
    refused(
        capsys,
        ["run", spec, "--storage", str(tmp_path / "runs"), "--overwrite"],
        "is not a selab sweep",
        "nothing is removed",
    )
    assert (precious / "thesis.tex").read_text() == "years of work"
    nothing_created(tmp_path, "s.yaml", "long.yaml", "file", "runs")


def test_outputs_inside_a_ray_jobs_working_dir_are_refused(
    tiny_spec, tmp_path, capsys, monkeypatch
) -> None:
    """A `ray job submit --working-dir` driver runs in a temporary copy that Ray deletes with
    the job: the default ./selab_runs and sqlite:///mlflow.db would go with it. Ray tells the
    driver it is a job through the job config in its environment."""
    monkeypatch.setenv(
        "RAY_JOB_CONFIG_JSON_ENV_VAR", '{"runtime_env": {"working_dir": "gcs://_ray_pkg_0.zip"}}'
    )
    spec = write_spec(tmp_path / "j.yaml", tiny_spec(name="j"))
    err = refused(
        capsys,
        ["run", spec],
        "storage (or --storage)",
        "tracking.uri",
        "inside the job's working dir",
        "Ray deletes when the job ends",
    )
    assert str(tmp_path / "selab_runs") in err
    nothing_created(tmp_path, "j.yaml")
    outside = tmp_path.parent / f"{tmp_path.name}_shared"
    assert (
        main(
            [
                "validate",
                spec,
                "--set",
                f"storage={outside / 'runs'}",
                "--set",
                f"tracking.uri=sqlite:///{outside}/mlflow.db",
            ]
        )
        == 0
    )
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR")
    assert main(["validate", spec]) == 0  # outside a job, the defaults are fine


def test_yaml_and_encoding_errors_name_the_file(tmp_path, capsys) -> None:
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    refused(capsys, ["validate", str(tmp_path / "bad.yaml")], "not valid YAML")
    (tmp_path / "latin.yaml").write_bytes(b"name: caf\xe9\n")
    refused(capsys, ["validate", str(tmp_path / "latin.yaml")], "not a UTF-8 text file")


# ----------------------------------------------------------------------------- paths, --set


def test_relative_paths_become_absolute_and_uris_pass_through(
    tiny_spec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = parse_spec(tiny_spec(data={"name": "cifar10", "root": "./data"}, storage="./runs"))
    fixed = with_absolute_paths(spec)
    assert fixed.data.root == str(tmp_path / "data") and fixed.storage == str(tmp_path / "runs")
    monkeypatch.setenv("SELAB_DATA", "shared/cifar")  # relative, resolved here, not in trials
    env = with_absolute_paths(parse_spec(tiny_spec(data={"name": "cifar10"})))
    assert env.data.root == str(tmp_path / "shared" / "cifar")
    assert with_absolute_paths(spec, "s3://bucket/sweeps").storage == "s3://bucket/sweeps"
    assert is_uri("gs://b/x") and not is_uri("./runs")
    assert SweepFolder("s3://bucket/sweeps", "a").location == "s3://bucket/sweeps/a"
    digits = with_absolute_paths(parse_spec(tiny_spec()))
    assert digits.data.root is None  # digits reads no files


def test_set_overrides_any_dotted_field_and_is_validated_like_the_file(tiny_spec, tmp_path):
    path = tmp_path / "o.yaml"
    write_spec(path, tiny_spec(name="o"))
    spec = load_spec(
        path,
        [
            "resources.gpus_per_trial=0.5",
            "train.epochs=3",
            "search.grid={arch.se.reduction: [2, 16]}",
            "data.limit_train=100",
        ],
    )
    assert spec.resources.gpus_per_trial == 0.5 and spec.train.epochs == 3
    assert spec.search.grid == {"arch.se.reduction": [2, 16]}
    assert spec.data.limit_train == 100 and spec.name == "o"
    with pytest.raises(ConfigError, match=r"train\.epochz: unknown field"):
        load_spec(path, ["train.epochz=3"])
    with pytest.raises(ConfigError, match=r"resources\.gpus_per_trial: .*greater than or equal"):
        load_spec(path, ["resources.gpus_per_trial=-1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_spec(path, ["train.epochs"])
    with pytest.raises(ConfigError, match="name is a value"):
        apply_overrides({"name": "x"}, ["name.sub=1"])


# ----------------------------------------------------------------------------- GPU choices


def test_autocast_dtype_follows_the_device_capability() -> None:
    assert autocast_dtype("cpu", None) == torch.bfloat16
    assert autocast_dtype("cuda", (7, 0)) == torch.float16  # V100: fp16 with a grad scaler
    assert autocast_dtype("cuda", (7, 5)) == torch.float16  # T4
    assert autocast_dtype("cuda", (8, 0)) == torch.bfloat16  # A100
    assert autocast_dtype("cuda", (9, 0)) == torch.bfloat16  # H100


def test_fp16_scaler_is_off_unless_fp16(tmp_path) -> None:
    """On the CPU the trainer never scales (bf16 or fp32); a scaler's state survives a
    checkpoint round trip."""
    from runners.spec.data import DataConfig
    from runners.spec.train import TrainConfig
    from runners.trial.data.load import load_splits
    from runners.trial.training import Trainer

    splits = load_splits(DataConfig(name="synthetic", image_size=8, train_size=32, val_size=16))
    trainer = Trainer(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 10)),
        splits,
        TrainConfig(epochs=1, batch_size=16, amp="on"),
        "cpu",
        seed=0,
    )
    assert trainer.amp and trainer.amp_dtype == torch.bfloat16
    assert not trainer.scaler.is_enabled()
    trainer.run_epoch()
    assert "scaler" in trainer.state_dict()

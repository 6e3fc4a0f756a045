"""A new user's mistakes and a malicious file, through the `selab` command in a subprocess: each is
refused at once with exit 2 and one message naming the field, what is allowed and the fix, no
traceback, and nothing left behind (no Ray folder, no MLflow store).

Classes: duplicate keys; size bombs (a 5 MB spec, an alias bomb, a grid of 810,000 points);
values no trial can use (seeds, stage masks, NSGA-II with one objective, an empty seed list, a
long name); inputs that gave tracebacks (`selab cost` on bad YAML and object tags, `selab
report` on a non-UTF-8 spec and malformed tracking URIs); and every problem of a spec at once,
with the nearest valid key for a typo in any section.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.support import selab, tiny_spec, without_worker_exits, write_spec

HEAD = "name: t\ndata: {name: digits}\narch: {backbone: cifar_resnet8}\ntrain: {epochs: 1}\n"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of a user who set nothing: the defaults, ./selab_runs, ./mlflow.db."""
    for name in (
        "MLFLOW_TRACKING_URI",
        "SELAB_DATA",
        "SELAB_MAX_SPEC_BYTES",
        "SELAB_MAX_SPEC_NODES",
        "SELAB_MAX_TRIALS",
        "SELAB_KILL_AT",
    ):
        monkeypatch.delenv(name, raising=False)
    return dict(os.environ)


def refused(where: Path, env: dict[str, str], args: list[str], *expected: str) -> str:
    """`selab ARGS` in `where`: exit 2, each `expected` text in its message, no traceback, and
    nothing in `where` but the files the test wrote (no selab_runs, mlflow.db, mlruns)."""
    before = {p.name for p in where.iterdir()}
    result = selab(args, cwd=where, env=env, timeout=120)
    err = result.stderr
    assert result.returncode == 2, err + result.stdout
    assert err.startswith(f"selab {args[0]}: invalid input"), err
    assert "Traceback" not in err + result.stdout, err
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    assert {p.name for p in where.iterdir()} == before, "a refused command left files"
    return err


def spec_file(where: Path, text: str, name: str = "spec.yaml") -> str:
    path = where / name
    path.write_text(text)
    return str(path)


# ----------------------------------------------------------------------------- duplicate keys


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path, env) -> None:
    top = spec_file(tmp_path, HEAD + "seeds: [0]\ntrain: {epochs: 3}\n", "top.yaml")
    refused(
        tmp_path,
        env,
        ["run", top],
        "key 'train' appears twice",
        "lines 4 and 6",
        "Keep one of them",
    )
    nested = spec_file(
        tmp_path,
        HEAD.replace("train: {epochs: 1}", "train:\n  epochs: 1\n  lr: 0.1\n  epochs: 2"),
        "nested.yaml",
    )
    refused(tmp_path, env, ["validate", nested], "key 'epochs' appears twice", "lines 5 and 7")
    # A merge key may bring a key the mapping sets again: that is YAML's override, not a typo.
    merged = spec_file(
        tmp_path, HEAD + "resources: {<<: {cpus_per_trial: 1}, cpus_per_trial: 2}\n", "merged.yaml"
    )
    result = selab(
        ["validate", merged, "--set", "resources.cpus_per_trial=1"],
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------- size bombs


def test_size_bombs_are_refused_before_they_are_expanded(tmp_path, env) -> None:
    """A 5 MB spec, an alias bomb of 10^9 values and a grid of 810,000 points: each refused
    with the count, the limit, its environment variable and the field, not expanded."""
    values = ", ".join(["0.1"] * 1_300_000)
    big = spec_file(tmp_path, HEAD + f"search:\n  grid:\n    train.lr: [{values}]\n", "big.yaml")
    refused(
        tmp_path,
        env,
        ["validate", big],
        f"{Path(big).stat().st_size:,} bytes",
        "more than the 1,048,576",
        "SELAB_MAX_SPEC_BYTES=",
    )
    laughs, previous = HEAD + 'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]\n', "a"
    for name in "bcdefghi":
        laughs += f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]\n"
        previous = name
    bomb = spec_file(tmp_path, laughs, "bomb.yaml")
    refused(
        tmp_path,
        env,
        ["validate", bomb],
        "1,234,567,923 values and keys",
        "1,111,111,111 of them under `i`, line 13",
        "SELAB_MAX_SPEC_NODES",
    )
    thirty = list(range(1, 31))
    grid = write_spec(
        tmp_path / "grid.yaml",
        tiny_spec(
            name="grid",
            search={
                "grid": {
                    "arch.se.reduction": thirty,
                    "train.epochs": thirty,
                    "train.batch_size": thirty,
                    "data.split_seed": thirty,
                }
            },
        ),
    )
    refused(
        tmp_path,
        env,
        ["run", grid],
        "search.grid: 30 x 30 x 30 x 30 = 810,000 points",
        "810,000 trials, more than the 10,000",
        "SELAB_MAX_TRIALS=810000",
    )


def test_a_limit_is_raised_or_lowered_by_its_environment_variable(tmp_path, env) -> None:
    spec = write_spec(tmp_path / "tiny.yaml", tiny_spec())  # 2 points x 1 seed
    refused(
        tmp_path,
        {**env, "SELAB_MAX_TRIALS": "1"},
        ["validate", spec],
        "2 points x 1 seed = 2 trials, more than the 1",
        "SELAB_MAX_TRIALS=2",
    )
    refused(
        tmp_path,
        {**env, "SELAB_MAX_TRIALS": "lots"},
        ["validate", spec],
        "$SELAB_MAX_TRIALS: got 'lots'",
        "a whole number >= 1",
    )
    result = selab(
        ["validate", spec], cwd=tmp_path, env={**env, "SELAB_MAX_TRIALS": "2"}, timeout=120
    )
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------- bad values


BAD_VALUES = {
    "negative seed": (
        {"seeds": [0, -1]},
        ["seeds: got -1", "allowed: whole numbers 0..4294967295", "e.g. 0, 1, 2"],
    ),
    "seed past 2^32 - 1": ({"seeds": [2**32]}, ["seeds: got 4294967296", "2^32 - 1"]),
    "sampler seed": (
        {
            "search": {
                "kind": "tpe",
                "grid": {},
                "sampler_seed": -3,
                "space": {"train.lr": {"float": [0.01, 0.1]}},
            }
        },
        ["search.sampler_seed: got -3", "0..4294967295"],
    ),
    "split seed": ({"data": {"split_seed": 2**40}}, ["data.split_seed: got 1099511627776"]),
    "stage mask": (
        {"arch": {"se": {"stages": "1,x,1"}}},
        ["arch.se.stages: got '1,x,1' ('x' is not 0 or 1)", "allowed: 0, 1", "e.g. 1,0,1"],
    ),
    "nsga2, one objective": (
        {"search": {"kind": "nsga2", "grid": {}, "space": {"train.lr": {"float": [0.01, 0.1]}}}},
        [
            "search.objectives: nsga2 is a multi-objective method",
            "at least 2 objectives, got 1",
            "{metric: flops, mode: min}",
            "kind: tpe",
        ],
    ),
    "no seed": (
        {"seeds": []},
        ["seeds: the list is empty", "at least one seed", "e.g. seeds: [0]"],
    ),
    "long name": (
        {"name": "n" * 300},
        ["name: too long: 300 characters, at most 100", "shorten it"],
    ),
}


@pytest.mark.parametrize("case", BAD_VALUES)
def test_values_no_trial_can_use_are_refused(case: str, tmp_path, env) -> None:
    sections, expected = BAD_VALUES[case]
    spec = write_spec(tmp_path / "bad.yaml", tiny_spec(**sections))
    refused(tmp_path, env, ["run", spec], *expected)


# ----------------------------------------------------------------------------- no tracebacks


def test_cost_on_invalid_yaml_or_an_object_tag_is_refused(tmp_path, env) -> None:
    broken = spec_file(tmp_path, "arch: {backbone: [resnet\n", "broken.yaml")
    refused(tmp_path, env, ["cost", broken], "not valid YAML: line 2, column 1")
    tagged = spec_file(
        tmp_path, "arch: !!python/object/apply:os.system ['touch pwned']\n", "tagged.yaml"
    )
    refused(
        tmp_path,
        env,
        ["cost", tagged],
        "line 1",
        "python/object/apply:os.system",
        "allowed: plain values, lists and mappings (remove the tag)",
    )


def test_report_on_a_non_utf8_spec_or_a_malformed_tracking_uri_is_refused(tmp_path, env) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    refused(
        tmp_path, env, ["report", str(latin)], "not a UTF-8 text file", "save the spec as UTF-8"
    )
    for uri, reason in (
        ("http://[::1", "not a valid URI"),
        ("foo://bar", "unknown scheme"),
        ("http://", "names no host"),
        ("sqlite:/x.db", "neither a tracking URI nor an MLflow store folder"),
    ):
        refused(
            tmp_path,
            env,
            ["report", "t", "--tracking-uri", uri],
            "--tracking-uri",
            reason,
            "e.g. sqlite:///mlflow.db",
        )


# ----------------------------------------------------------------------------- one pass


def test_every_problem_of_a_spec_is_reported_at_once_with_the_nearest_key(tmp_path, env):
    """A typo in every section, a bad value and a bad grid point: one run lists them all, each
    unknown key with the valid key nearest to it."""
    data = tiny_spec(
        nmae="typo",
        data={"val_fractoin": 0.1},
        train={"lrr": 0.1},
        search={"kindd": "grid"},
        resources={"cpus_per_trail": 1},
        tracking={"experimnt": "x"},
        scheduler={"grace_perod": 1},
        failure={"max_retry": 1},
        arch={
            "backbone": "cifar_resnet8",
            "atention": "se",
            "se": {"reductoin": 4},
            "eca": {"gama": 2},
        },
    )
    spec = write_spec(tmp_path / "typos.yaml", data)
    err = refused(tmp_path, env, ["run", spec], "11 problems")
    for key, guess in (
        ("nmae", "name"),
        ("data.val_fractoin", "val_fraction"),
        ("train.lrr", "lr"),
        ("search.kindd", "kind"),
        ("resources.cpus_per_trail", "cpus_per_trial"),
        ("tracking.experimnt", "experiment"),
        ("scheduler.grace_perod", "grace_period"),
        ("failure.max_retry", "max_retries"),
        ("arch.atention", "attention"),
        ("arch.se.reductoin", "reduction"),
        ("arch.eca.gama", "gamma"),
    ):
        assert f"  - {key}: unknown field (check its spelling); did you mean `{guess}`?" in err
    assert "the fixed spec" not in err
    # Bad values and bad points of one spec, also at once.
    points = write_spec(
        tmp_path / "points.yaml",
        tiny_spec(
            train={"lr": -1.0},
            search={"grid": {"arch.se.reduction": [4, 0, 32], "arch.se.reductoin": [2]}},
        ),
    )
    err = refused(
        tmp_path,
        env,
        ["validate", points],
        "train.lr:",
        "arch.se.reductoin",
        "did you mean `arch.se.reduction`?",
    )
    good = write_spec(
        tmp_path / "grid.yaml",
        tiny_spec(
            search={"grid": {"arch.se.reduction": [4, 0, 64], "arch.se.squeeze": ["avg", "mean"]}}
        ),
    )
    err = refused(
        tmp_path,
        env,
        ["validate", good],
        "5 problems",
        'grid point r=0 squeeze=avg {"arch.se.reduction": 0, "arch.se.squeeze": '
        '"avg"}: arch.se.reduction: r must be an integer >= 1',
        "grid point r=64 squeeze=avg",
        "r=64 is larger than the 16 channels",
        "grid point r=4 squeeze=mean",
        "allowed: 'avg', 'max', 'avgmax' or 'none'",
    )


# ----------------------------------------------------------------------------- a diverging loss


def test_a_diverged_trial_is_told_to_optuna_as_failed_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The searcher of a tpe search, as Tune drives it: a trial whose last result is a NaN
    loss (diverged) ends without the warning Optuna's refusal of NaN caused."""
    from runners.spec.load import parse_spec
    from runners.sweep.search import param_space, search_algorithm

    spec = parse_spec(
        tiny_spec(
            search={
                "kind": "tpe",
                "grid": {},
                "num_samples": 2,
                "space": {"train.lr": {"float": [0.01, 0.1]}},
            }
        )
    )
    searcher = search_algorithm(spec)
    searcher.set_search_properties(None, None, param_space(spec))
    diverged = {
        "val_acc": math.nan,
        "train_loss": math.nan,
        "diverged": True,
        "epoch": 1,
        "epochs_planned": 2,
        "training_iteration": 1,
    }
    with caplog.at_level("WARNING"):
        for trial in ("t0", "t1"):
            searcher.suggest(trial)
            searcher.on_trial_result(trial, diverged)
            searcher.on_trial_complete(trial, diverged)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_diverging_trial_of_a_search_is_recorded_without_a_warning_or_traceback(
    tmp_path, env
) -> None:
    """Optuna refuses a NaN told as a finished trial's value; told as a failed trial, the
    driver's output stays clean and the trial is recorded as diverged."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = write_spec(
        tmp_path / "nan.yaml",
        tiny_spec(
            name="nan",
            train={"epochs": 2, "lr": 1e6},
            search={
                "kind": "tpe",
                "grid": {},
                "num_samples": 2,
                "sampler_seed": 0,
                "space": {"arch.se.reduction": {"choice": [4, 8]}},
            },
        ),
    )
    result = selab(["run", spec, "--tracking-uri", uri], cwd=tmp_path, env=env, timeout=540)
    output = without_worker_exits(result.stdout + result.stderr)
    assert result.returncode == 0, output[-3000:]
    assert "sweep nan: 2 diverged" in output
    assert "Traceback" not in output and "not acceptable" not in output, output[-3000:]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("nan").experiment_id])
    trials = [r for r in runs if r.data.tags.get("selab.role") == "trial"]
    assert [r.data.tags["selab.status"] for r in trials] == ["diverged", "diverged"]
    assert all(not math.isfinite(r.data.metrics["train_loss"]) for r in trials)

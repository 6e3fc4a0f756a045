"""Sweep specs: shape, dotted keys, points, and the errors a bad spec gets (no Ray needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from runners.cli.main import main
from runners.spec.load import load_spec, parse_spec
from runners.spec.points import count_trials, grid_points, resolve_trial, validate
from search_space.errors import ConfigError
from tests.support import own_err
from tests.support.fakedata import write_cifar10

EXPERIMENTS = sorted((Path(__file__).parents[1] / "experiments").glob("*.yaml"))
PAPER_SPECS = {
    "ablation_reduction",
    "ablation_squeeze",
    "ablation_excitation",
    "ablation_stages",
    "ablation_placement",
    "search_tpe",
    "search_pareto",
    "quickstart",
}


def checked(data: dict) -> None:
    validate(parse_spec(data))


def error_of(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        checked(data)
    return str(info.value)


def test_every_shipped_spec_validates_or_is_refused_with_a_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On this CPU-only machine, the GPU specs are refused naming resources.gpus_per_trial and
    the override that lifts it; with it (and CIFAR-format files in place), every spec passes."""
    assert {p.stem for p in EXPERIMENTS} >= PAPER_SPECS
    monkeypatch.chdir(tmp_path)
    write_cifar10(tmp_path / "data", per_batch=40, test=40)
    specs = list(map(str, EXPERIMENTS))
    gpu_specs = [s for s in specs if load_spec(s).resources.gpus_per_trial > 0]
    assert len(gpu_specs) >= 7  # every ablation and search spec asks for a GPU share
    if not torch.cuda.is_available():
        assert main(["validate", *gpu_specs[:2]]) == 2
        err = own_err(capsys)
        assert "resources.gpus_per_trial" in err and "--set resources.gpus_per_trial=0" in err
        assert "data.val_size: 5000 validation images" in err  # every problem at once
    fixes = ["--set", "resources.gpus_per_trial=0", "--set", "data.val_size=100"]
    assert main(["validate", *specs, *fixes]) == 0, own_err(capsys)
    out = capsys.readouterr().out
    assert "quickstart: grid, 5 points x 6 seed(s) = 30 trials" in out  # at most: raced
    assert "no SE (baseline)" in out
    assert f"cifar10 in {tmp_path / 'data'}: 100 train / 100 val / 40 test, 3x32x32" in out


def test_quickstart_races_up_to_thirty_trials() -> None:
    spec = load_spec(Path(__file__).parents[1] / "experiments" / "quickstart.yaml")
    points = validate(spec)
    assert [p.label for p in points] == ["r=2", "r=4", "r=8", "r=16", "no SE"]
    assert [p.baseline for p in points] == [False] * 4 + [True]
    assert (spec.race.initial, spec.race.max) == (3, 6)
    assert count_trials(spec) == 30  # every seed everywhere; racing runs 15 to 30


def test_arch_shape_defaults_to_the_dataset(tiny_spec) -> None:
    settings = resolve_trial(parse_spec(tiny_spec()), {"arch.se.reduction": 8}, seed=3)
    assert (settings.arch.num_classes, settings.arch.in_channels, settings.arch.input_size) == (
        10,
        1,
        8,
    )
    params = settings.flat_params()
    assert params["arch.se.reduction"] == "8"
    assert params["seed"] == "3"
    assert params["data.name"] == "digits"
    assert params["train.lr"] == "0.05"


def test_grid_is_the_cartesian_product_plus_baseline(tiny_spec) -> None:
    spec = parse_spec(
        tiny_spec(
            search={
                "grid": {"arch.se.reduction": [4, 8], "arch.se.squeeze": ["avg", "max"]},
                "baseline": True,
            },
            seeds=[0, 1, 2],
        )
    )
    points = grid_points(spec)
    assert len(points) == 5
    assert points[1].overrides == {"arch.se.reduction": 4, "arch.se.squeeze": "max"}
    assert points[1].label == "r=4 squeeze=max"
    assert count_trials(spec) == 15


def test_a_typo_in_a_key_is_named(tiny_spec) -> None:
    assert "trian: unknown field" in error_of(tiny_spec(trian={"epochs": 1}))
    assert "train.lrr: unknown field" in error_of(tiny_spec(train={"lrr": 0.1}))
    assert "search.kindd: unknown field" in error_of(tiny_spec(search={"kindd": "grid"}))
    assert "scheduler.grace: unknown field" in error_of(tiny_spec(scheduler={"grace": 1}))


def test_an_unknown_dotted_key_is_named(tiny_spec) -> None:
    message = error_of(tiny_spec(search={"grid": {"arch.se.reductoin": [4]}}))
    assert "arch.se.reductoin" in message
    assert "reduction" in message  # lists what arch.se has
    assert "trainer.lr" in error_of(tiny_spec(search={"grid": {"trainer.lr": [0.1]}}))


def test_a_bad_grid_value_names_the_point_and_field(tiny_spec) -> None:
    message = error_of(tiny_spec(search={"grid": {"arch.se.reduction": [4, 0]}}))
    assert 'grid point r=0 {"arch.se.reduction": 0}' in message
    assert "arch.se.reduction" in message
    message = error_of(tiny_spec(search={"grid": {"arch.se.placement": ["standard", "after_3x3"]}}))
    assert "placement=after_3x3" in message
    assert "bottleneck" in message
    assert "train.lr" in error_of(tiny_spec(search={"grid": {"train.lr": [0.1, -1.0]}}))


def test_a_bad_fixed_arch_is_an_error(tiny_spec) -> None:
    assert "arch.se.squeeze" in error_of(tiny_spec(arch={"se": {"squeeze": "median"}}))


def test_asha_needs_a_single_objective(tiny_spec) -> None:
    message = error_of(
        tiny_spec(
            search={
                "kind": "nsga2",
                "grid": {},
                "space": {"arch.se.reduction": {"choice": [4, 8]}},
                "objectives": [
                    {"metric": "val_acc", "mode": "max"},
                    {"metric": "flops", "mode": "min"},
                ],
            },
            scheduler={"kind": "asha"},
        )
    )
    assert "ASHA" in message and "2 objectives" in message


def test_a_search_takes_one_seed(tiny_spec) -> None:
    message = error_of(
        tiny_spec(
            search={"kind": "tpe", "grid": {}, "space": {"train.lr": {"float": [0.01, 0.1]}}},
            seeds=[0, 1],
        )
    )
    assert "seeds" in message and "grid" in message


def test_search_space_values_are_validated(tiny_spec) -> None:
    search = {"kind": "tpe", "grid": {}, "num_samples": 4}
    message = error_of(
        tiny_spec(search={**search, "space": {"arch.se.gate": {"choice": ["sigmoid", "softmax"]}}})
    )
    assert "search.space arch.se.gate value softmax" in message
    assert "arch.se.gate" in message
    message = error_of(tiny_spec(search={**search, "space": {"train.lr": {"float": [0.1, 0.01]}}}))
    assert "lo < hi" in message
    message = error_of(tiny_spec(search={**search, "space": {"train.lr": {"uniform": [0, 1]}}}))
    assert "search.space.train.lr" in message and "choice" in message
    message = error_of(tiny_spec(search={**search, "space": {"train.lr": {"mask": True}}}))
    assert "arch.se.stages" in message


def test_mask_space_covers_every_stage_mask(tiny_spec) -> None:
    spec = parse_spec(
        tiny_spec(
            search={
                "kind": "tpe",
                "grid": {},
                "num_samples": 3,
                "space": {"arch.se.stages": {"mask": True}},
            }
        )
    )
    assert validate(spec) == []
    assert count_trials(spec) == 3
    settings = resolve_trial(spec, {"arch.se.stages": "1,0,1"}, 0)
    assert settings.arch.stage_mask == (True, False, True)


def test_unknown_objective_metric(tiny_spec) -> None:
    message = error_of(tiny_spec(search={"objectives": [{"metric": "accuracy", "mode": "max"}]}))
    assert "search.objectives.0.metric" in message


def test_cli_prints_spec_errors_without_a_traceback(
    tiny_spec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(tiny_spec(search={"grid": {"arch.se.reduction": [4, 0]}})))
    assert main(["validate", str(bad)]) == 2
    err = own_err(capsys)
    assert "grid point r=0" in err and "Traceback" not in err
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2

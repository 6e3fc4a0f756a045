"""What `selab analyze` prints: one summary table over the analysed trials and the output folder
once (runners/cli/commands/analyze.py), from real excitation tables of SE networks run on
digits' validation split."""

from __future__ import annotations

from pathlib import Path

import torch

from runners.cli.commands.analyze import print_summary
from runners.spec.data import DataConfig
from runners.trial.data.load import load_splits
from search_space import ArchConfig
from search_space.excitation_analysis import analyze
from search_space.networks import build_model


def summary_of(reduction: int, seed: int):
    torch.manual_seed(seed)
    arch = ArchConfig.parse(
        {
            "backbone": "cifar_resnet8",
            "num_classes": 10,
            "in_channels": 1,
            "input_size": 8,
            "se": {"reduction": reduction},
        }
    )
    model = build_model(arch).eval()
    splits = load_splits(DataConfig.model_validate({"name": "digits"}), "cpu")
    return analyze(model, splits.eval_batches("val", 512), splits.classes, arch.se.gate).summary


def test_one_table_for_every_trial_and_the_folder_once(tmp_path: Path, capsys) -> None:
    done = [("r=4 seed 0", summary_of(4, 0)), ("r=8 seed 1", summary_of(8, 1))]
    print_summary(done, tmp_path / "excitation", logged=True)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("Excitation analysis of 2 trial(s)")
    header = lines[1]
    assert header.startswith("trial") and "class spread, last block" in header
    rows = [line for line in lines if line.startswith(("r=4 seed 0", "r=8 seed 1"))]
    assert len(rows) == 2
    # the last analysed block of cifar_resnet8's three stages, as the summary table names it
    assert all("(stage3.unit1)" in row for row in rows)
    assert out.count(str(tmp_path / "excitation")) == 1
    assert "under excitation/ of each trial's MLflow run" in out

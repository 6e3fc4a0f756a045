"""The paper's tables as specs (experiments/paper/): every one validates as a user runs it, a
CPU-sized one runs end to end through the CLI, and the report of every one shows the paper's
figure beside the rows the paper has one for (and says so where it has none)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from runners.cli.main import main
from runners.spec.load import load_spec_with_text
from runners.spec.points import grid_points
from runners.tracking.journal import Journal
from runners.tracking.mlflow_writer import MlflowWriter
from runners.tracking.schema import open_parent_run
from tests.support.fakedata import write_cifar10

PAPER = Path(__file__).parents[1] / "experiments" / "paper"
TABLES = ("reduction", "squeeze", "excitation", "stages", "integration", "backbones", "mobile")
NONE = "no paper figure"
# Per spec: (table, row of the report, the paper's dataset, the paper's row, its error in %),
# the error being ImageNet top-1 or CIFAR test error; the paper's numbers, not selab's.
IMAGENET_ROWS = {
    "reduction": [
        ("arch.se.reduction", "r=8", "ImageNet", "r=8 (SE-ResNet-50)", "22.26"),
        ("arch.se.reduction", "no SE", "ImageNet", "no SE (ResNet-50)", "23.30"),
    ],
    "squeeze": [
        ("arch.se.squeeze", "squeeze=max", "ImageNet", "max (SE-ResNet-50)", "22.57"),
        ("arch.se.squeeze", "squeeze=none", "ImageNet", "NoSqueeze (SE-ResNet-50)", "22.93"),
        ("arch.se.squeeze", "squeeze=avgmax", "ImageNet", NONE, "—"),
    ],
    "excitation": [
        ("arch.se.gate", "gate=tanh", "ImageNet", "Tanh (SE-ResNet-50)", "23.00"),
        ("arch.se.gate", "gate=hard_sigmoid", "ImageNet", NONE, "—"),
    ],
    "stages": [
        ("arch.se.stages", "stages=1,1,1", "ImageNet", "all (SE-ResNet-50)", "22.28"),
        # a 3-stage CIFAR ResNet has no counterpart of the paper's 4-stage masks
        ("arch.se.stages", "stages=0,1,0", "ImageNet", NONE, "—"),
    ],
    "integration": [
        ("arch.se.placement", "placement=after_3x3", "ImageNet", "SE_3x3 (SE-ResNet-50)", "22.48"),
        ("arch.se.placement", "placement=pre", "ImageNet", "SE-PRE (SE-ResNet-50)", "22.23"),
    ],
    "mobile": [
        ("arch.backbone", "backbone=mobilenet se=true", "ImageNet", "SE-MobileNet", "25.30"),
        ("arch.backbone", "backbone=shufflenet se=false", "ImageNet", "ShuffleNet", "32.60"),
    ],
}
# Tables that train the CIFAR table's networks (ResNet-110, -164): at CIFAR scale all but the
# mobile one; on CPU only these two, the others train ResNet-20 (the paper has no figure for it).
CIFAR_NETWORKS = {False: set(TABLES) - {"mobile"}, True: {"integration", "backbones"}}
CIFAR_ROWS = {
    "reduction": [
        ("arch.se.reduction", "r=16", "CIFAR-10", "SE-ResNet-164", "4.39"),
        ("arch.se.reduction", "no SE", "CIFAR-10", "ResNet-164", "5.46"),
        ("arch.se.reduction", "r=2", "CIFAR-10", NONE, "—"),
    ],
    "stages": [("arch.se.stages", "stages=1,1,1", "CIFAR-10", "SE-ResNet-164", "4.39")],
    "integration": [
        ("arch.se.placement", "placement=standard", "CIFAR-10", "SE-ResNet-164", "4.39")
    ],
    "backbones": [
        ("arch.backbone", "backbone=cifar_resnet110 se=true", "CIFAR-10", "SE-ResNet-110", "5.21"),
        ("arch.backbone", "backbone=cifar_resnet164 se=false", "CIFAR-10", "ResNet-164", "5.46"),
    ],
}


def test_there_is_a_spec_and_a_cpu_version_of_every_table() -> None:
    assert {p.stem for p in PAPER.glob("table_*.yaml")} == {f"table_{t}" for t in TABLES}
    assert {p.stem for p in (PAPER / "cpu").glob("table_*.yaml")} == {f"table_{t}" for t in TABLES}


def test_every_paper_spec_validates(tmp_path: Path, monkeypatch, capsys) -> None:
    """The CIFAR versions with CIFAR-format files under ./data and no GPU; the CPU versions
    as shipped."""
    monkeypatch.chdir(tmp_path)
    write_cifar10(tmp_path / "data", per_batch=40, test=40)
    cifar = sorted(map(str, PAPER.glob("table_*.yaml")))
    fixes = ["--set", "resources.gpus_per_trial=0", "--set", "data.val_size=100"]
    assert main(["validate", *cifar, *fixes]) == 0, capsys.readouterr().err
    cpu = sorted(map(str, (PAPER / "cpu").glob("table_*.yaml")))
    assert main(["validate", *cpu]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for table in TABLES:
        assert f"paper-{table}:" in out and f"paper-{table}-cpu:" in out


@pytest.mark.timeout(400)
def test_a_cpu_table_runs_and_its_report_shows_the_papers_numbers(
    ray_address: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The excitation table on digits, one epoch, one seed: every trial finishes, and the
    report's table carries the paper's ImageNet SE-ResNet-50 column, marked as the paper's."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = str(PAPER / "cpu" / "table_excitation.yaml")
    code = main(
        [
            "run",
            spec,
            "--address",
            ray_address,
            "--tracking-uri",
            uri,
            "--storage",
            str(tmp_path / "runs"),
            "--set",
            "train.epochs=1",
            "--set",
            "seeds=[0]",
        ]
    )
    assert code == 0, capsys.readouterr()
    assert "5 finished" in capsys.readouterr().out
    assert main(["report", "paper-excitation-cpu", "--tracking-uri", uri]) == 0
    table = (
        tmp_path / "selab_reports" / "paper-excitation-cpu" / "table_arch_se_gate.md"
    ).read_text()
    assert "paper" in table.lower() and "ImageNet" in table
    assert "23.47" in table  # the paper's ReLU row (top-1 error, SE-ResNet-50)
    parent = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("paper-excitation-cpu").experiment_id],
        "tags.`selab.role` = 'sweep'",
    )[0]
    assert parent.info.status == "FINISHED"


def _log_like_a_run(spec_path: Path, uri: str, folder: Path, sets: tuple[str, ...] = ()) -> str:
    """The MLflow runs `selab run` leaves for ``spec_path``, written by the runner's own parent
    run and journal writer, with made-up accuracies and costs in place of training."""
    spec, text = load_spec_with_text(spec_path, sets)
    parent = open_parent_run(spec, text, uri, str(folder))
    journal = Journal.of(folder)
    for i, point in enumerate(grid_points(spec)):
        for seed in spec.seeds:
            trial, acc = f"{i:02d}_{seed}", 0.8 + 0.01 * i + 0.002 * seed
            journal.append("trial_start", trial_id=trial, point=point.overrides, seed=seed)
            journal.append(
                "result",
                trial_id=trial,
                step=1,
                metrics={"val_acc": acc},
                cost={"flops": 1e6 * (10 + i), "params": 1e4 * (10 + i)},
            )
            journal.append(
                "trial_end",
                trial_id=trial,
                status="finished",
                mlflow_status="FINISHED",
                epochs_done=1,
                best_val_acc=acc,
                error="",
                traceback="",
                model="",
            )
    journal.append("sweep", status="FINISHED")
    assert MlflowWriter(spec, parent, folder, echo=False).send() == 0
    return spec.name


def _markdown_rows(path: Path) -> list[dict[str, str]]:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split(" | ")]
    return [
        dict(zip(header, (c.strip() for c in ln.strip("|").split(" | ")), strict=True))
        for ln in lines[2:]
    ]


def _paper_cell(rows: list[dict[str, str]], setting: str, dataset: str) -> tuple[str, str]:
    """(the paper's row, its error) beside the report's row ``setting``."""
    (row,) = [r for r in rows if r["setting"] == setting]
    tag = f"[paper, {dataset}]"
    err = next(
        v
        for k, v in row.items()
        if k.startswith("paper ") and "err (%)" in k and "top-5" not in k and tag in k
    )
    return row[f"paper setting {tag}"], err


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> str:
    """One MLflow store for the runs of every spec (each spec is its own experiment)."""
    return f"sqlite:///{tmp_path_factory.mktemp('paper_specs') / 'mlflow.db'}"


@pytest.mark.parametrize("cpu", [False, True], ids=["cifar", "cpu"])
@pytest.mark.parametrize("table", TABLES)
def test_every_paper_specs_report_shows_the_papers_figure_for_what_each_row_is(
    table: str, cpu: bool, tracking_uri: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    """`selab report` on the runs each spec leaves: the paper's figure beside the rows the paper
    measured (ImageNet for its ablations, backbones and mobile networks; CIFAR for ResNet-110
    and -164), "no paper figure" beside the others, every paper column marked as the paper's."""
    monkeypatch.chdir(tmp_path)
    uri = tracking_uri
    spec = PAPER / "cpu" / f"table_{table}.yaml" if cpu else PAPER / f"table_{table}.yaml"
    name = _log_like_a_run(spec, uri, tmp_path)
    out = tmp_path / "report"
    assert main(["report", name, "--tracking-uri", uri, "--out", str(out), "--no-log"]) == 0
    capsys.readouterr()
    with_cifar = table in CIFAR_NETWORKS[cpu]
    expected = IMAGENET_ROWS.get(table, []) + (CIFAR_ROWS.get(table, []) if with_cifar else [])
    for axis, setting, dataset, paper_row, err in expected:
        table_md = out / f"table_{axis.replace('.', '_')}.md"
        assert _paper_cell(_markdown_rows(table_md), setting, dataset) == (paper_row, err)
    headers = {h for md in out.glob("table_*.md") for h in _markdown_rows(md)[0]}
    assert ("paper setting [paper, CIFAR-10]" in headers) == with_cifar
    assert ("paper setting [paper, ImageNet]" in headers) == (table in IMAGENET_ROWS)
    assert "not measured here" in (out / f"table_{expected[0][0].replace('.', '_')}.md").read_text()


def _step_energy(images: np.ndarray) -> np.ndarray:
    """(4, 2): per quadrant (TL, TR, BL, BR), the mean squared grey-level step down the rows and
    along the columns, over ``images`` (N, 3, 32, 32), quadrant borders left out."""
    grey = images.astype(float).mean(axis=1)
    out = np.zeros((4, 2))
    for q in range(4):
        r, c = divmod(q, 2)
        patch = grey[:, r * 16 + 1 : (r + 1) * 16 - 1, c * 16 + 1 : (c + 1) * 16 - 1]
        out[q] = np.mean(np.diff(patch, axis=1) ** 2), np.mean(np.diff(patch, axis=2) ** 2)
    return out


def test_the_quadrants_set_is_what_its_names_say_and_its_spec_reads_it(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """scripts/cifar_quadrants.py, run as the spec's comment says, writes CIFAR-format files that
    experiments/paper/cpu/excitation_quadrants.yaml reads as shipped, and each class name says
    which texture sits in which quadrant (h: the rows change, v: the columns, c: both, f: only
    the noise), averaged over the class's training images."""
    monkeypatch.chdir(tmp_path)
    script = Path(__file__).parents[1] / "scripts" / "cifar_quadrants.py"
    subprocess.run(
        [sys.executable, str(script), "data/quadrants", "--per-batch", "60", "--test", "40"],
        check=True,
        capture_output=True,
    )
    spec = str(PAPER / "cpu" / "excitation_quadrants.yaml")
    assert main(["validate", spec, "--set", "data.val_size=50"]) == 0, capsys.readouterr().err
    assert "250 train / 50 val / 40 test, 3x32x32" in capsys.readouterr().out
    folder = tmp_path / "data" / "quadrants" / "cifar-10-batches-py"
    names = [n.decode() for n in _unpickle(folder / "batches.meta")[b"label_names"]]
    assert len(set(names)) == 10 and all(sorted(n) == sorted("hvcf") for n in names)
    batches = [_unpickle(folder / f"data_batch_{i}") for i in range(1, 6)]
    images = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([b[b"labels"] for b in batches])
    for label, name in enumerate(names):
        energy = _step_energy(images[labels == label])  # rows, columns per quadrant
        noise = energy[name.index("f")]
        assert energy.sum(axis=1).argmin() == name.index("f"), (name, energy)
        rows, cols = energy[name.index("h")]
        assert rows > 3 * cols and cols < 2 * noise.max(), (name, energy)
        rows, cols = energy[name.index("v")]
        assert cols > 3 * rows and rows < 2 * noise.max(), (name, energy)
        assert (energy[name.index("c")] > 2 * noise.max()).all(), (name, energy)


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f)

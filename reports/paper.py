"""Reference numbers from the SENet paper, shown beside a sweep's own results.

These are NOT measured by selab: they are the paper's ImageNet SE-ResNet-50 ablations (and its
CIFAR table), transcribed in ../shared/paper-notes.md. Every column built from here carries
PAPER_LABEL so nobody mistakes them for the sweep's numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

PAPER_LABEL = "paper, ImageNet SE-ResNet-50"
PAPER_SOURCE = (
    "Hu et al., Squeeze-and-Excitation Networks (CVPR 2018 / TPAMI 2019, arXiv 1709.01507 v4); "
    "transcribed from the paper's tables, check against the PDF before quoting as exact"
)


@dataclass(frozen=True)
class PaperRow:
    setting: str  # the paper's name for the row
    top1_err: float  # %
    top5_err: float  # %
    params_m: float | None = None  # millions
    gflops: float | None = None


BASELINE = PaperRow("ResNet-50 (no SE)", 23.30, 6.55, 25.6, 3.86)

# axis (flattened spec key) -> {canonical value: row}
TABLES: dict[str, dict[str, PaperRow]] = {
    "arch.se.reduction": {
        "2": PaperRow("r=2", 22.29, 6.00, 45.7),
        "4": PaperRow("r=4", 22.25, 6.09, 35.7),
        "8": PaperRow("r=8", 22.26, 5.99, 30.7),
        "16": PaperRow("r=16", 22.28, 6.03, 28.1),
        "32": PaperRow("r=32", 22.72, 6.20, 26.9),
    },
    "arch.se.squeeze": {
        "max": PaperRow("max", 22.57, 6.09),
        "avg": PaperRow("avg", 22.28, 6.03),
    },
    "arch.se.gate": {
        "relu": PaperRow("ReLU", 23.47, 6.98),
        "tanh": PaperRow("Tanh", 23.00, 6.38),
        "sigmoid": PaperRow("Sigmoid", 22.28, 6.03),
    },
    # The paper's stages 2-5 are torchvision's layer1-layer4, i.e. selab's stages 1-4.
    "arch.se.stages": {
        "0,0,0,0": PaperRow("none", 23.30, 6.55, 25.6, 3.86),
        "1,0,0,0": PaperRow("stage 2 only", 23.03, 6.48, 25.6, 3.86),
        "0,1,0,0": PaperRow("stage 3 only", 23.04, 6.32, 25.7, 3.86),
        "0,0,1,0": PaperRow("stage 4 only", 22.68, 6.22, 26.4, 3.86),
        "1,1,1,1": PaperRow("all", 22.28, 6.03, 28.1, 3.87),
    },
    "arch.se.placement": {
        "standard": PaperRow("standard SE", 22.28, 6.03),
        "pre": PaperRow("SE-PRE", 22.23, 6.00),
        "post": PaperRow("SE-POST", 22.78, 6.35),
        "identity": PaperRow("SE-Identity", 22.20, 6.15),
        "3x3": PaperRow("SE_3x3", 22.48, 6.02, 27.6, 3.86),
    },
}

# CIFAR test error (%) without -> with SE, for context on CIFAR sweeps (other backbones).
CIFAR: list[dict[str, Any]] = [
    {"model": "ResNet-110", "cifar10": (6.37, 5.21), "cifar100": (26.88, 23.85)},
    {"model": "ResNet-164", "cifar10": (5.46, 4.39), "cifar100": (24.33, 21.31)},
    {"model": "WRN-16-8", "cifar10": (4.27, 3.88), "cifar100": (20.43, 19.14)},
    {"model": "Shake-Shake (+Cutout)", "cifar10": (2.56, 2.12), "cifar100": (15.85, 15.41)},
]
CIFAR_LABEL = "paper, CIFAR test error (%) without SE -> with SE"

# selab's placement names -> the paper table's keys (its SE_3x3 row is selab's after_3x3).
_PLACEMENTS = {"standard": "standard", "pre": "pre", "post": "post", "identity": "identity",
               "after_3x3": "3x3"}


def canonical(axis: str, value: Any) -> str | None:
    """The paper-table key for a sweep value, or None when the paper has no such row."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if axis == "arch.se.reduction":
        parts = [p for p in re.split(r"[,\s]+", text) if p]
        # A per-stage r matches the paper only when it is the same in every stage.
        if parts and len(set(parts)) == 1:
            try:
                r = float(parts[0])
            except ValueError:
                return None
            return str(int(r)) if r.is_integer() else None
        return None
    if axis == "arch.se.stages":
        digits = re.findall(r"[01]", text.replace("true", "1").replace("false", "0"))
        return ",".join(digits) if len(digits) == 4 else None
    if axis == "arch.se.placement":
        return _PLACEMENTS.get(text)
    if axis == "arch.se.squeeze":
        return text if text in ("avg", "max") else None
    if axis == "arch.se.gate":
        return text if text in ("sigmoid", "tanh", "relu") else None
    return None


def paper_row(axis: str, value: Any, baseline: bool = False) -> PaperRow | None:
    """The paper's row matching ``value`` on ``axis`` (the no-SE row for the baseline)."""
    if axis not in TABLES:
        return None
    if baseline:
        return BASELINE
    key = canonical(axis, value)
    return TABLES[axis].get(key) if key else None


def has_table(axis: str) -> bool:
    return axis in TABLES

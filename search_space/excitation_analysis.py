"""The paper's excitation analysis (Sec. 7.2) of one trained network, as numbers.

The validation split runs through the network while hooks record the gate output of chosen
blocks (default: the last gated unit of each stage, as the paper does, before the next
downsampling). Two tables come out:
- per_class: block, stage, unit, class, channel, mean: the mean excitation of each channel over
  the images of each class, and over all images (class "all");
- summary: per block, `class_spread` (the standard deviation across classes of the per-class
  means, averaged over channels: near 0 for a class-agnostic block), `channel_sd` (how much the
  all-class mean varies across channels) and `saturated_high` / `saturated_low` (the share of
  excitations within 5% of the top / bottom of the gate's range; NaN for unbounded gates).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from search_space.excitation import gate_sites, last_per_stage, record_excitations

# The output range of each gate; relu is unbounded above, so saturation is not defined for it.
GATE_RANGES = {
    "sigmoid": (0.0, 1.0),
    "hard_sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "relu": (0.0, math.inf),
}
SATURATION_BAND = 0.05
ALL = "all"


@dataclass
class ExcitationTables:
    per_class: pd.DataFrame
    summary: pd.DataFrame


def per_class_means(values: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes + 1, C): the mean excitation of each channel per class, then over all."""
    rows = [
        values[labels == k].mean(axis=0)
        if np.any(labels == k)
        else np.full(values.shape[1], np.nan)
        for k in range(num_classes)
    ]
    rows.append(values.mean(axis=0))
    return np.stack(rows)


def saturation(values: np.ndarray, gate: str) -> tuple[float, float]:
    """(share within 5% of the gate's top, share within 5% of its bottom); NaN if unbounded."""
    low, high = GATE_RANGES.get(gate, (math.nan, math.nan))
    if not (math.isfinite(low) and math.isfinite(high)):
        return math.nan, math.nan
    band = SATURATION_BAND * (high - low)
    return float(np.mean(values >= high - band)), float(np.mean(values <= low + band))


def excitation_tables(
    values: dict[str, np.ndarray], labels: np.ndarray, classes: list[str], gate: str
) -> ExcitationTables:
    """The two tables for the blocks in `values` ({"stage3.unit6": (N, C) gate outputs})."""
    long_rows, summary_rows = [], []
    names = [*classes, ALL]
    for block, block_values in values.items():
        stage_part, unit_part = block.split(".")  # "stage3.unit6"
        stage, unit = int(stage_part.removeprefix("stage")), int(unit_part.removeprefix("unit"))
        means = per_class_means(block_values, labels, len(classes))
        for k, name in enumerate(names):
            long_rows += [(block, stage, unit, name, c, float(m)) for c, m in enumerate(means[k])]
        high, low = saturation(block_values, gate)
        summary_rows.append(
            {
                "block": block,
                "stage": stage,
                "unit": unit,
                "channels": block_values.shape[1],
                "images": block_values.shape[0],
                "mean": float(block_values.mean()),
                "class_spread": float(np.nanstd(means[:-1], axis=0).mean()),
                "channel_sd": float(means[-1].std()),
                "saturated_high": high,
                "saturated_low": low,
            }
        )
    columns = ["block", "stage", "unit", "class", "channel", "mean"]
    return ExcitationTables(pd.DataFrame(long_rows, columns=columns), pd.DataFrame(summary_rows))


def choose_blocks(model: nn.Module, blocks: str | Iterable[str] = "last") -> list:
    """The gate sites to record: "last" (per stage), "all", or names such as stage3.unit6."""
    sites = gate_sites(model)
    if not sites:
        raise ValueError("this network has no attention block with a gate to analyse")
    if blocks == "last":
        return last_per_stage(sites)
    if blocks == "all":
        return sites
    wanted = list(blocks)
    by_name = {site.name: site for site in sites}
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        raise ValueError(
            f"--blocks: unknown {', '.join(unknown)}; this network has {', '.join(by_name)}"
        )
    return [by_name[name] for name in wanted]


def analyze(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    classes: list[str],
    gate: str,
    blocks: str | Iterable[str] = "last",
) -> ExcitationTables:
    """Record the chosen blocks' excitations over labelled `batches` and tabulate them."""
    sites = choose_blocks(model, blocks)
    labels: list[torch.Tensor] = []

    def images() -> Iterable[torch.Tensor]:
        for x, y in batches:
            labels.append(y.cpu())
            yield x

    values = record_excitations(model, images(), sites)
    label_array = torch.cat(labels).numpy()
    arrays = {name: tensor.numpy() for name, tensor in values.items()}
    return excitation_tables(arrays, label_array, classes, gate)

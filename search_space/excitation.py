"""Reading the excitations of a network: what each attention gate outputs, per image.

An attention block with a channel gate (SE and its squeeze/gate variants, ECA, CBAM's channel
part) holds that gate as its `gate` submodule; a forward hook on it sees the per-channel scale
s of every image, shape (N, C) or (N, C, 1, 1); a gate that varies over positions
(NoSqueeze) is averaged over them, so every block gives one excitation per channel and image.
Blocks are named by stage and unit, 1-based as
the paper names them (its SE_4_6 is stage 3, unit 6 here: selab numbers the stages after the
stem from 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class GateSite:
    name: str  # "stage3.unit6"
    stage: int  # 1-based
    unit: int  # 1-based, within the stage
    module: nn.Module  # the gate itself


def gate_sites(model: nn.Module) -> list[GateSite]:
    """Every channel gate of `model` (an SENetwork), in forward order: the `gate` of the first
    block inside each unit that owns one."""
    sites = []
    for s, stage in enumerate(model.stages, start=1):
        for u, unit in enumerate(stage.children(), start=1):
            gate = _first_gate(unit)
            if gate is not None:
                sites.append(GateSite(f"stage{s}.unit{u}", s, u, gate))
    return sites


def _first_gate(unit: nn.Module) -> nn.Module | None:
    for module in unit.modules():
        gate = getattr(module, "gate", None)
        if isinstance(gate, nn.Module):
            return gate
    return None


def last_per_stage(sites: Iterable[GateSite]) -> list[GateSite]:
    """The last gate of each stage, the paper's choice (before the next downsampling)."""
    last: dict[int, GateSite] = {}
    for site in sites:
        last[site.stage] = site
    return [last[s] for s in sorted(last)]


class ExcitationRecorder:
    """Collects the gate outputs of chosen sites while batches run through the model.

    Use as a context manager; after the batches, `values[name]` is a float32 CPU tensor (N, C).
    """

    def __init__(self, sites: Iterable[GateSite]) -> None:
        self.sites = list(sites)
        self.values: dict[str, torch.Tensor] = {}
        self._chunks: dict[str, list[torch.Tensor]] = {s.name: [] for s in self.sites}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> ExcitationRecorder:
        for site in self.sites:
            self._handles.append(site.module.register_forward_hook(self._hook(site.name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.values = {
            name: torch.cat(chunks) if chunks else torch.empty(0)
            for name, chunks in self._chunks.items()
        }

    def _hook(self, name: str):
        def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            values = output.detach().float()
            if values.dim() == 4:  # (N, C, 1, 1), or a per-position gate (NoSqueeze): average
                values = values.mean((2, 3))
            self._chunks[name].append(values.cpu())

        return record


@torch.inference_mode()
def record_excitations(
    model: nn.Module, batches: Iterable[torch.Tensor], sites: Iterable[GateSite]
) -> dict[str, torch.Tensor]:
    """{site name: (N, C) gate outputs} over `batches`, the model in eval mode."""
    model.eval()
    with ExcitationRecorder(sites) as recorder:
        for x in batches:
            model(x)
    return recorder.values

"""What a network costs: parameters and FLOPs, in total and per stage, SE's share included.

FLOPs are counted with fvcore on a batch of one, in eval mode. Convention (fvcore's, made
complete): one multiply-add = one FLOP for convs and FC layers; elementwise ops (additions,
the channel scaling, activations, gates) one FLOP per output element, a fused multiply-add
(`addcmul`) two; pooling and other reductions one FLOP per input element. fvcore by default
counts convs, FCs, BN and `adaptive_avg_pool2d` but skips `mean`, `amax`, the gates and `mul`:
left alone it would hide SE's squeeze and scaling, and make an avg squeeze cost something and
a max squeeze nothing. The handles below close those gaps; `flops_fvcore_default` keeps
fvcore's own figure for comparison with published numbers (4.1115 GFLOPs for ResNet-50).

SE's share is measured, not estimated: the same network without attention is counted too,
and `se_flops` / `se_params` are the differences, in total and per stage (for every attention
kind: the names stay `se_*`, as MLflow's schema has them). The plain network's count is cached
per shape, so costing many attention settings of one backbone counts it once.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

# fvcore scripts a loss function at import, which recent torch flags as deprecated: a warning in
# every trial's output that no selab user can act on.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import elementwise_flop_counter

from .config import ArchConfig
from .networks import build_model

Handle = Callable[[list[Any], list[Any]], float]

_PER_OUTPUT = elementwise_flop_counter(0, 1)
_PER_INPUT = elementwise_flop_counter(1, 0)

# Ops that fvcore skips or ignores, with the convention above. Both the out-of-place and the
# in-place spelling, since tracing keeps whichever the module used.
EXTRA_HANDLES: dict[str, Handle] = {
    **{
        f"aten::{op}{suffix}": _PER_OUTPUT
        for op in ("add", "mul", "relu", "hardtanh", "sigmoid", "hardsigmoid", "tanh")
        for suffix in ("", "_")
    },
    "aten::addcmul": elementwise_flop_counter(0, 2),
    "aten::mean": _PER_INPUT,
    "aten::amax": _PER_INPUT,
    "aten::sum": _PER_INPUT,  # SK's fusion and its weighted sum of the branches
    "aten::softmax": _PER_OUTPUT,  # SK's selection across branches
    "aten::max_pool2d": _PER_INPUT,
    "aten::avg_pool2d": _PER_INPUT,  # Inception's pool branches, ShuffleNet's shortcut
}

# What fvcore counts out of the box (used for `flops_fvcore_default`), by the short names its
# reports use ("aten::_convolution" is reported as "conv").
_FVCORE_DEFAULT_OPS = frozenset(
    op.split("::")[-1]
    for op in importlib.import_module("fvcore.nn.flop_count")._DEFAULT_SUPPORTED_OPS
) | {"conv"}


@dataclass(frozen=True)
class StageCost:
    stage: int  # 1-based, as users and reports number stages
    params: int
    flops: int
    se_params: int  # what SE adds in this stage
    se_flops: int


@dataclass(frozen=True)
class Cost:
    params: int
    flops: int
    se_params: int
    se_flops: int
    flops_fvcore_default: int
    per_stage: tuple[StageCost, ...]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["per_stage"] = [asdict(s) for s in self.per_stage]
        return data

    def as_metrics(self) -> dict[str, float]:
        """Flat metric names for MLflow / Ray Tune: flops, params, stage1.se_flops, ..."""
        metrics = {
            "flops": float(self.flops),
            "params": float(self.params),
            "se_flops": float(self.se_flops),
            "se_params": float(self.se_params),
        }
        for s in self.per_stage:
            for key in ("params", "flops", "se_params", "se_flops"):
                metrics[f"stage{s.stage}.{key}"] = float(getattr(s, key))
        return metrics


@dataclass(frozen=True)
class FlopCount:
    total: int
    fvcore_default: int
    by_module: dict[str, int]
    by_operator: dict[str, int]
    unsupported: dict[str, int]


def count_flops(model: nn.Module, in_channels: int, input_size: int) -> FlopCount:
    """fvcore count with the SE handles, on one (in_channels, input_size, input_size) image."""
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, in_channels, input_size, input_size)
        analysis = FlopCountAnalysis(model, x)
        for op, handle in EXTRA_HANDLES.items():
            analysis.set_op_handle(op, handle)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        with torch.no_grad():
            by_operator = {k: int(v) for k, v in analysis.by_operator().items()}
            return FlopCount(
                total=int(analysis.total()),
                fvcore_default=sum(v for k, v in by_operator.items() if k in _FVCORE_DEFAULT_OPS),
                by_module={k: int(v) for k, v in analysis.by_module().items()},
                by_operator=by_operator,
                unsupported=dict(analysis.unsupported_ops()),
            )
    finally:
        model.train(was_training)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_cost(arch: ArchConfig, model: nn.Module | None = None) -> Cost:
    """Params and FLOPs of `arch`, and what SE adds, in total and per stage.

    Pass the already-built `model` to skip building it again.
    """
    model = model if model is not None else build_model(arch)
    flops = count_flops(model, arch.in_channels, arch.input_size)
    count = _count(model, flops)
    # no attention anywhere: the network is its own baseline
    plain = _plain_count(arch.plain().model_dump_json()) if any(arch.stage_mask) else count
    stages = tuple(
        StageCost(stage=i + 1, params=p, flops=f, se_params=p - plain_p, se_flops=f - plain_f)
        for i, (p, f, plain_p, plain_f) in enumerate(
            zip(
                count.stage_params,
                count.stage_flops,
                plain.stage_params,
                plain.stage_flops,
                strict=True,
            )
        )
    )
    return Cost(
        params=count.params,
        flops=count.flops,
        se_params=count.params - plain.params,
        se_flops=count.flops - plain.flops,
        flops_fvcore_default=flops.fvcore_default,
        per_stage=stages,
    )


@dataclass(frozen=True)
class _NetworkCount:
    params: int
    flops: int
    stage_params: tuple[int, ...]
    stage_flops: tuple[int, ...]


def _count(model: nn.Module, flops: FlopCount) -> _NetworkCount:
    return _NetworkCount(
        params=count_params(model),
        flops=flops.total,
        stage_params=tuple(count_params(stage) for stage in model.stages),
        stage_flops=tuple(flops.by_module.get(f"stages.{i}", 0) for i in range(len(model.stages))),
    )


@functools.lru_cache(maxsize=64)
def _plain_count(plain_arch_json: str) -> _NetworkCount:
    """The plain network's count, keyed by its config (shape, groups and layout included)."""
    arch = ArchConfig.model_validate_json(plain_arch_json)
    model = build_model(arch)
    return _count(model, count_flops(model, arch.in_channels, arch.input_size))


def _pool_flops(channels: int, height: int, width: int, squeeze: str) -> int:
    """avg or max: C·H·W; avgmax: both plus their sum (C)."""
    area = channels * height * width
    return {"avg": area, "max": area, "avgmax": 2 * area + channels}[squeeze]


def se_flops_closed_form(channels: int, reduced: int, height: int, width: int, squeeze: str) -> int:
    """FLOPs one SE block adds on a (channels, height, width) map, in the convention above.

    squeeze (avg or max: C·H·W; avgmax: both plus their sum) + two FC layers (2·C·C_r
    multiply-adds) + the hidden ReLU (C_r) + the gate (C) + the channel scaling (C·H·W).
    NoSqueeze (`squeeze="none"`): the same layers at every one of the H·W positions, and a
    gate per element.
    """
    area = channels * height * width
    if squeeze == "none":
        return (2 * channels * reduced + reduced + channels) * height * width + area
    return (
        _pool_flops(channels, height, width, squeeze)
        + 2 * channels * reduced
        + reduced
        + channels
        + area
    )


def eca_flops_closed_form(channels: int, kernel: int, height: int, width: int, squeeze: str) -> int:
    """squeeze + the 1D conv (k multiply-adds per channel) + the gate (C) + the scaling."""
    return (
        _pool_flops(channels, height, width, squeeze)
        + kernel * channels
        + channels
        + channels * height * width
    )


def cbam_flops_closed_form(
    channels: int, reduced: int, height: int, width: int, squeeze: str, spatial_kernel: int
) -> int:
    """Channel part: per pooled descriptor (CBAM: avg and max) a pool (C·H·W) and the shared
    MLP (2·C·C_r + C_r), the sum of their logits, the gate (C) and the channel scaling (C·H·W).
    Spatial part: mean and max across channels (2·C·H·W), the 2 -> 1 conv (2·k²·H·W), its BN
    (2·H·W), the sigmoid (H·W) and the spatial scaling (C·H·W)."""
    pools = 2 if squeeze == "avgmax" else 1
    area, plane = channels * height * width, height * width
    channel = (
        pools * (area + 2 * channels * reduced + reduced) + (pools - 1) * channels + channels + area
    )
    spatial = 2 * area + 2 * spatial_kernel**2 * plane + 2 * plane + plane + area
    return channel + spatial


def sk_flops_closed_form(
    channels: int, groups: int, reduced: int, branches: int, height: int, width: int, squeeze: str
) -> int:
    """What an SK conv adds over the 3x3 conv-BN-ReLU it replaces, on its (C, H, W) output:
    M-1 more branches (conv C·C/g·9·H·W, BN 2·C·H·W, ReLU C·H·W), the fusing sum (M·C·H·W),
    the squeeze, FC C -> d, BN (2·d), ReLU (d), FC d -> M·C, the softmax (M·C), the weighting
    (M·C·H·W) and the weighted sum (M·C·H·W)."""
    area = channels * height * width
    branch = channels * (channels // groups) * 9 * height * width + 2 * area + area
    attend = (
        _pool_flops(channels, height, width, squeeze)
        + channels * reduced
        + 3 * reduced
        + reduced * branches * channels
        + branches * channels
    )
    return (branches - 1) * branch + branches * area + attend + 2 * branches * area


def se_params_closed_form(channels: int, reduced: int, bias: bool) -> int:
    """Two FC layers, C -> C_r -> C, plus their biases when on (NoSqueeze: the same)."""
    return 2 * channels * reduced + ((reduced + channels) if bias else 0)


def cbam_params_closed_form(channels: int, reduced: int, bias: bool, spatial_kernel: int) -> int:
    """The channel MLP as SE's, the 2 -> 1 spatial conv (2·k²) and its BN (2)."""
    return se_params_closed_form(channels, reduced, bias) + 2 * spatial_kernel**2 + 2


def sk_params_closed_form(channels: int, groups: int, reduced: int, branches: int) -> int:
    """M-1 more conv-BN branches, FC C -> d, BN (2·d), FC d -> M·C (both FCs bias-free)."""
    branch = channels * (channels // groups) * 9 + 2 * channels
    attend = channels * reduced + 2 * reduced + reduced * branches * channels
    return (branches - 1) * branch + attend

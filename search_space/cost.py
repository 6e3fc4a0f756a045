"""What a network costs: parameters and FLOPs, in total and per stage, SE's share included.

FLOPs are counted with fvcore on a batch of one, in eval mode. Convention (fvcore's, made
complete): one multiply-add = one FLOP for convs and FC layers; elementwise ops (additions,
the channel scaling, activations, gates) one FLOP per output element, a fused multiply-add
(`addcmul`) two; pooling and other reductions one FLOP per input element. fvcore by default
counts convs, FCs, BN and `adaptive_avg_pool2d` but skips `mean`, `amax`, the gates and `mul`:
left alone it would hide SE's squeeze and scaling, and make an avg squeeze cost something and
a max squeeze nothing. The handles below close those gaps; `flops_fvcore_default` keeps
fvcore's own figure for comparison with published numbers (4.1115 GFLOPs for ResNet-50).

SE's share is measured, not estimated: the same network with SE off is counted too, and
`se_flops` / `se_params` are the differences, in total and per stage.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import elementwise_flop_counter
from torch import nn

from .config import ArchConfig
from .networks import build_model

Handle = Callable[[list[Any], list[Any]], float]

_PER_OUTPUT = elementwise_flop_counter(0, 1)
_PER_INPUT = elementwise_flop_counter(1, 0)

# Ops that fvcore skips or ignores, with the convention above. Both the out-of-place and the
# in-place spelling, since tracing keeps whichever the module used.
EXTRA_HANDLES: dict[str, Handle] = {
    **{f"aten::{op}{suffix}": _PER_OUTPUT
       for op in ("add", "mul", "relu", "hardtanh", "sigmoid", "hardsigmoid", "tanh")
       for suffix in ("", "_")},
    "aten::addcmul": elementwise_flop_counter(0, 2),
    "aten::mean": _PER_INPUT,
    "aten::amax": _PER_INPUT,
    "aten::max_pool2d": _PER_INPUT,
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
            "flops": float(self.flops), "params": float(self.params),
            "se_flops": float(self.se_flops), "se_params": float(self.se_params),
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
    if any(arch.stage_mask):
        plain = build_model(arch.without_se())
        plain_flops = count_flops(plain, arch.in_channels, arch.input_size)
    else:  # no SE anywhere: the network is its own baseline
        plain, plain_flops = model, flops

    stages = []
    for i, (stage, plain_stage) in enumerate(zip(model.stages, plain.stages, strict=True)):
        key = f"stages.{i}"
        params, stage_flops = count_params(stage), flops.by_module.get(key, 0)
        stages.append(StageCost(
            stage=i + 1, params=params, flops=stage_flops,
            se_params=params - count_params(plain_stage),
            se_flops=stage_flops - plain_flops.by_module.get(key, 0),
        ))
    params = count_params(model)
    return Cost(
        params=params, flops=flops.total,
        se_params=params - count_params(plain), se_flops=flops.total - plain_flops.total,
        flops_fvcore_default=flops.fvcore_default, per_stage=tuple(stages),
    )


def se_flops_closed_form(channels: int, reduced: int, height: int, width: int, squeeze: str) -> int:
    """FLOPs one SE block adds on a (channels, height, width) map, in the convention above.

    squeeze (avg or max: C·H·W; avgmax: both plus their sum) + two FC layers (2·C·C_r
    multiply-adds) + the hidden ReLU (C_r) + the gate (C) + the channel scaling (C·H·W).
    """
    area = channels * height * width
    pool = {"avg": area, "max": area, "avgmax": 2 * area + channels}[squeeze]
    return pool + 2 * channels * reduced + reduced + channels + area


def se_params_closed_form(channels: int, reduced: int, bias: bool) -> int:
    """Two FC layers, C -> C_r -> C, plus their biases when on."""
    return 2 * channels * reduced + ((reduced + channels) if bias else 0)

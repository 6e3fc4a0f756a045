"""`selab cost`: params and FLOPs of one architecture, in total and per stage."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from search_space.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cost", help="params and FLOPs of an architecture (total, per stage, SE's share)",
        description="Count params and FLOPs with fvcore (SE ops included). Flags override the "
        "config file; the file holds an architecture, or a spec whose `arch` is used.",
    )
    p.add_argument("config", nargs="?", help="YAML/JSON file with an architecture or a spec")
    p.add_argument("--backbone", help="family or full name: resnet50, cifar_resnet56, ...")
    p.add_argument("--depth", type=int)
    p.add_argument("--se", dest="se_enabled", action="store_true", default=None,
                   help="SE on (the default)")
    p.add_argument("--no-se", dest="se_enabled", action="store_false", help="the plain network")
    p.add_argument("--reduction", help="r, or one per stage: 4,8,16,16")
    p.add_argument("--placement", help="standard, pre, post, identity, after_3x3")
    p.add_argument("--squeeze", help="avg, max, avgmax")
    p.add_argument("--gate", help="sigmoid, hard_sigmoid, tanh, relu")
    p.add_argument("--stages", help="per-stage mask, e.g. 1,1,1,0")
    p.add_argument("--rounding", help="exact (C//r) or divisible (multiple of --divisor)")
    p.add_argument("--divisor", type=int)
    p.add_argument("--min-reduced", type=int)
    p.add_argument("--no-bias", dest="bias", action="store_false", default=None,
                   help="FC layers without bias (on by default, as in the paper's models)")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--in-channels", type=int)
    p.add_argument("--input-size", type=int)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_cost)


def arch_from_args(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if args.config:
        data = _read_arch_file(Path(args.config))
    for flag, key in (("backbone", "backbone"), ("depth", "depth"), ("num_classes", "num_classes"),
                      ("in_channels", "in_channels"), ("input_size", "input_size")):
        if getattr(args, flag) is not None:
            data[key] = getattr(args, flag)
    if args.backbone is not None and args.depth is None:
        data.pop("depth", None) if args.config else None
    se = dict(data.get("se") or {})
    for flag, key in (("se_enabled", "enabled"), ("reduction", "reduction"),
                      ("placement", "placement"), ("squeeze", "squeeze"), ("gate", "gate"),
                      ("stages", "stages"), ("rounding", "rounding"), ("divisor", "divisor"),
                      ("min_reduced", "min_reduced"), ("bias", "bias")):
        if getattr(args, flag) is not None:
            se[key] = getattr(args, flag)
    data["se"] = se
    return data


def _read_arch_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config: no such file {str(path)!r}")
    data = yaml.safe_load(path.read_text()) or {}  # YAML reads JSON too
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must hold a mapping (an architecture or a spec)")
    return dict(data["arch"]) if isinstance(data.get("arch"), dict) else data


def run_cost(args: argparse.Namespace) -> int:
    from search_space import ArchConfig
    from search_space.cost import count_cost

    arch = ArchConfig.parse(arch_from_args(args))
    cost = count_cost(arch)
    if args.json:
        print(json.dumps({"arch": arch.to_dict(), **cost.as_dict()}, indent=2))
        return 0
    print(f"{arch.name}  SE: {_describe_se(arch)}")
    print(f"params {cost.params:,}  (SE adds {cost.se_params:,}, "
          f"{_pct(cost.se_params, cost.params - cost.se_params)})")
    print(f"FLOPs  {cost.flops / 1e9:.4f} G (SE adds {cost.se_flops / 1e6:.3f} M, "
          f"{_pct(cost.se_flops, cost.flops - cost.se_flops)}); "
          f"fvcore default handles: {cost.flops_fvcore_default / 1e9:.4f} G")
    print(f"{'stage':>5} {'params':>12} {'SE params':>11} {'MFLOPs':>10} {'SE MFLOPs':>10}")
    for s in cost.per_stage:
        print(f"{s.stage:>5} {s.params:>12,} {s.se_params:>11,} {s.flops / 1e6:>10.2f} "
              f"{s.se_flops / 1e6:>10.3f}")
    return 0


def _describe_se(arch: Any) -> str:
    se = arch.se
    if not any(arch.stage_mask):
        return "off"
    mask = ",".join("1" if on else "0" for on in arch.stage_mask)
    return (f"r={se.reduction} placement={se.placement} squeeze={se.squeeze} gate={se.gate} "
            f"stages={mask} rounding={se.rounding} bias={se.bias}")


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:+.2f}%" if whole else "n/a"

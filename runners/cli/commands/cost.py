"""`selab cost`: params and FLOPs of one architecture, in total and per stage."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from search_space.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cost",
        help="params and FLOPs of an architecture (total, per stage, SE's share)",
        description="Count params and FLOPs with fvcore (SE ops included). Flags override the "
        "config file; the file holds an architecture, or a spec whose `arch` is used.",
    )
    p.add_argument("config", nargs="?", help="YAML/JSON file with an architecture or a spec")
    p.add_argument("--backbone", help="family or full name: resnet50, cifar_resnet56, ...")
    p.add_argument("--depth", type=int)
    p.add_argument(
        "--se", dest="se_enabled", action="store_true", default=None, help="SE on (the default)"
    )
    p.add_argument("--no-se", dest="se_enabled", action="store_false", help="the plain network")
    p.add_argument("--attention", help="the attention kind: se, sk, eca, cbam, none")
    p.add_argument("--reduction", help="r, or one per stage: 4,8,16,16")
    p.add_argument("--placement", help="standard, pre, post, identity, after_3x3")
    p.add_argument("--squeeze", help="avg, max, avgmax; none: NoSqueeze (SE only)")
    p.add_argument("--gate", help="sigmoid, hard_sigmoid, tanh, relu")
    p.add_argument("--stages", help="per-stage mask, e.g. 1,1,1,0")
    p.add_argument("--rounding", help="exact (C//r) or divisible (multiple of --divisor)")
    p.add_argument("--divisor", type=int)
    p.add_argument("--min-reduced", type=int)
    p.add_argument(
        "--no-bias",
        dest="bias",
        action="store_false",
        default=None,
        help="FC layers without bias (on by default, as in the paper's models)",
    )
    p.add_argument("--eca-k", help="ECA's kernel: auto or an odd integer")
    p.add_argument("--cbam-kernel", type=int, help="CBAM's spatial kernel (odd; 7)")
    p.add_argument("--sk-branches", type=int, help="SK's branches M (2..4)")
    p.add_argument("--sk-min-width", type=int, help="SK's attention width floor L (32)")
    p.add_argument("--groups", help="groups of the 3x3 convs: an integer or depthwise")
    p.add_argument("--layout", help="torchvision, or caffe (the paper's released models)")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--in-channels", type=int)
    p.add_argument("--input-size", type=int)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_cost)


def arch_from_args(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if args.config:
        data = _read_arch_file(Path(args.config))
    for flag, key in (
        ("backbone", "backbone"),
        ("depth", "depth"),
        ("num_classes", "num_classes"),
        ("in_channels", "in_channels"),
        ("input_size", "input_size"),
        ("attention", "attention"),
        ("groups", "groups"),
        ("layout", "layout"),
    ):
        if getattr(args, flag) is not None:
            data[key] = getattr(args, flag)
    if args.backbone is not None and args.depth is None:
        data.pop("depth", None) if args.config else None
    se = dict(data.get("se") or {})
    for flag, key in (
        ("se_enabled", "enabled"),
        ("reduction", "reduction"),
        ("placement", "placement"),
        ("squeeze", "squeeze"),
        ("gate", "gate"),
        ("stages", "stages"),
        ("rounding", "rounding"),
        ("divisor", "divisor"),
        ("min_reduced", "min_reduced"),
        ("bias", "bias"),
    ):
        if getattr(args, flag) is not None:
            se[key] = getattr(args, flag)
    data["se"] = se
    for flag, section, key in (
        ("eca_k", "eca", "k"),
        ("cbam_kernel", "cbam", "spatial_kernel"),
        ("sk_branches", "sk", "branches"),
        ("sk_min_width", "sk", "min_width"),
    ):
        if getattr(args, flag) is not None:
            data[section] = {**(data.get(section) or {}), key: getattr(args, flag)}
    return data


def _read_arch_file(path: Path) -> dict[str, Any]:
    from runners.spec.yaml_input import read_yaml_file  # the one YAML reader of user input

    if not path.is_file():
        raise ConfigError(f"config: no such file {str(path)!r}")
    data = read_yaml_file(path, "config") or {}  # YAML reads JSON too
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must hold a mapping (an architecture or a spec)")
    return dict(data["arch"]) if isinstance(data.get("arch"), dict) else data


def run_cost(args: argparse.Namespace) -> int:
    from search_space import ArchConfig

    data = arch_from_args(args)
    arch = ArchConfig.parse(data)
    from search_space.cost import count_cost  # fvcore and torch: once the input is good

    cost = count_cost(arch)
    if args.json:
        print(json.dumps({"arch": arch.to_dict(), **cost.as_dict()}, indent=2))
        return 0
    print(f"{arch.name}  attention: {_describe_attention(arch)}")
    print(
        f"params {cost.params:,}  (attention adds {cost.se_params:,}, "
        f"{_pct(cost.se_params, cost.params - cost.se_params)})"
    )
    print(
        f"FLOPs  {cost.flops / 1e9:.4f} G (attention adds {cost.se_flops / 1e6:.3f} M, "
        f"{_pct(cost.se_flops, cost.flops - cost.se_flops)}); "
        f"fvcore default handles: {cost.flops_fvcore_default / 1e9:.4f} G"
    )
    print(f"{'stage':>5} {'params':>12} {'att params':>11} {'MFLOPs':>10} {'att MFLOPs':>10}")
    for s in cost.per_stage:
        print(
            f"{s.stage:>5} {s.params:>12,} {s.se_params:>11,} {s.flops / 1e6:>10.2f} "
            f"{s.se_flops / 1e6:>10.3f}"
        )
    _print_every_kind(data, arch, cost)
    return 0


def _print_every_kind(data: dict[str, Any], arch: Any, cost: Any) -> None:
    """What each attention kind adds per stage, with the same knobs; n/a where it cannot sit."""
    from search_space import ArchConfig
    from search_space.attention import KINDS
    from search_space.cost import count_cost

    print(f"\nevery attention kind on {arch.name} (params / MFLOPs added, per stage):")
    for name in KINDS:
        try:
            other = ArchConfig.parse(
                {**data, "attention": name, "se": {**data.get("se", {}), "enabled": True}}
            )
        except ConfigError as err:
            print(f"{name:>5}  n/a: {str(err).splitlines()[0]}")
            continue
        other_cost = cost if other == arch else count_cost(other)
        stages = "  ".join(
            f"{s.se_params:,} / {s.se_flops / 1e6:.3f}" for s in other_cost.per_stage
        )
        print(
            f"{name:>5}  total {other_cost.se_params:,} / {other_cost.se_flops / 1e6:.3f}"
            f"   stages: {stages}"
        )


def _describe_attention(arch: Any) -> str:
    se = arch.se
    if not any(arch.stage_mask):
        return "off"
    mask = ",".join("1" if on else "0" for on in arch.stage_mask)
    knobs = {
        "eca": f" k={arch.eca.k}",
        "cbam": f" spatial_kernel={arch.cbam.spatial_kernel}",
        "sk": f" branches={arch.sk.branches} min_width={arch.sk.min_width}",
    }
    return (
        f"{arch.attention}{knobs.get(arch.attention, '')} r={se.reduction}"
        f" placement={se.placement} squeeze={se.squeeze} gate={se.gate} stages={mask}"
        f" rounding={se.rounding} bias={se.bias}"
    )


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:+.2f}%" if whole else "n/a"

"""The SENet paper's own numbers, shown beside a sweep's results row by row.

These are NOT measured by selab: they are the paper's figures, transcribed from its tables. Each
figure says what network it is (``match``, over the trial params of docs/mlflow-schema.md) and
which tables of a report it belongs to (``axes``); a report row gets, per dataset the paper
measured on (ImageNet, CIFAR-10 or CIFAR-100), the figure of the network the row is, or "no
paper figure". Every column built from here is marked ``[paper, <dataset>]``.

Matching is data, in FIGURES: a figure matches a row when every key of its ``match`` has the
row's value (one of the values, for a tuple). A figure with ``axes`` is a row of one of the
paper's ablations and only appears in the tables of those axes (the paper's r=16 network is also
its "avg", "Sigmoid", "standard" and "all stages" row); a figure without is the network itself
(Table 2, Table 3, the CIFAR table) and appears in any table, after an ablation row that fits.

A ResNet figure also says which ResNet it is (``variant``): the paper's ImageNet ResNets are
post-activation (He et al. 2016a), its CIFAR ResNet-110 and -164 the pre-activation networks
of He et al. 2016b ("Identity Mappings"; their baselines, 6.37 / 5.46 / 24.33, are that
paper's figures). A row of the other variant still gets the figure (it is the paper's nearest),
and its ``paper variant`` cell says that it is not like for like.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

PAPER_SOURCE = (
    "Hu et al., Squeeze-and-Excitation Networks (CVPR 2018 / TPAMI 2019, arXiv 1709.01507 v4); "
    "transcribed from the paper's tables, check against the PDF before quoting as exact"
)
IMAGENET, CIFAR10, CIFAR100 = "ImageNet", "CIFAR-10", "CIFAR-100"
NO_FIGURE = "no paper figure"
COLUMN_NOTE = (
    "Columns marked [paper, ImageNet] hold the paper's ImageNet top-1 / top-5 error (its "
    "SE-ResNet-50 ablations, its Table 2 backbones and Table 3 mobile networks); columns marked "
    "[paper, CIFAR-10] or [paper, CIFAR-100] its CIFAR test error (its CIFAR table). Each row "
    "gets the paper's figure for the network it is (backbone and depth, with or without SE, "
    "and the SE setting the table varies), at the paper's scale and schedule, not measured "
    f"here; '{NO_FIGURE}' where the paper has none. The paper variant column says whether "
    "the paper's ResNet is pre- or post-activation, and where the row's network is the other."
)
PRE_ACT, POST_ACT = "pre-activation", "post-activation"
# selab's ResNet families, by variant; other families have none.
FAMILY_VARIANT = {
    "resnet": POST_ACT,
    "resnext": POST_ACT,
    "cifar_resnet": POST_ACT,
    "cifar_preact_resnet": PRE_ACT,
}

Match = Mapping[str, str | tuple[str, ...]]


@dataclass(frozen=True)
class Figure:
    dataset: str  # what the paper measured on: IMAGENET, CIFAR10, CIFAR100
    network: str  # the paper's name of the network
    setting: str  # the paper's name of the row within its table ("" for the network itself)
    match: Match | None  # what a selab network must be; None: no selab network is this one
    err: float  # ImageNet top-1 error or CIFAR test error, %
    top5_err: float | None = None  # ImageNet only
    params_m: float | None = None  # millions
    gflops: float | None = None
    axes: tuple[str, ...] = field(default=())  # the tables this row belongs to; () = any
    variant: str = ""  # PRE_ACT or POST_ACT for a ResNet, "" where it does not apply

    @property
    def name(self) -> str:
        return f"{self.setting} ({self.network})" if self.setting else self.network

    def matches(self, row: Mapping[str, str]) -> bool:
        if self.match is None:
            return False
        for key, wanted in self.match.items():
            allowed = wanted if isinstance(wanted, tuple) else (wanted,)
            if row.get(key) not in allowed:
                return False
        return True


# What a network must be to be one of the paper's, over describe()'s keys.
NO_SE: dict[str, str] = {"se": "off"}
SE_DEFAULT: dict[str, str] = {
    "se": "on",
    "attention": "se",
    "reduction": "16",
    "squeeze": "avg",
    "gate": "sigmoid",
    "placement": "standard",
    "stages": "all",
}
# The paper ablates SE-ResNet-50; selab's CIFAR-scale specs ablate a CIFAR ResNet in its place.
RESNET: dict[str, str | tuple[str, ...]] = {
    "family": ("resnet", "cifar_resnet", "cifar_preact_resnet"),
    "groups": "",
}
# The paper's CIFAR ResNets are pre-activation; selab's post-activation ones get their figure
# too, marked as the other variant.
CIFAR_RESNET = ("cifar_resnet", "cifar_preact_resnet")
R, SQUEEZE, GATE, STAGES, PLACEMENT = (
    "arch.se.reduction",
    "arch.se.squeeze",
    "arch.se.gate",
    "arch.se.stages",
    "arch.se.placement",
)
ABLATIONS = (R, SQUEEZE, GATE, STAGES, PLACEMENT)


def _net(family: str | tuple[str, ...], depth: str = "") -> dict[str, Any]:
    return {"family": family, "depth": depth, "groups": ""}


def _ablation(
    axis: str,
    setting: str,
    se: dict[str, str],
    err: float,
    top5: float,
    params_m: float | None = None,
    gflops: float | None = None,
) -> Figure:
    return Figure(
        IMAGENET,
        "SE-ResNet-50",
        setting,
        RESNET | SE_DEFAULT | se,
        err,
        top5,
        params_m,
        gflops,
        (axis,),
        POST_ACT,
    )


def _pair(
    dataset: str,
    plain: str,
    match: dict[str, Any],
    errs: tuple[float, float],
    top5: tuple[float, float] | tuple[None, None] = (None, None),
    params_m: tuple[float, float] | tuple[None, None] = (None, None),
    gflops: tuple[float, float] | tuple[None, None] = (None, None),
    variant: str = "",
) -> list[Figure]:
    """A network of the paper without and with SE (SE at the paper's defaults)."""
    return [
        Figure(
            dataset,
            plain,
            "",
            match | NO_SE,
            errs[0],
            top5[0],
            params_m[0],
            gflops[0],
            variant=variant,
        ),
        Figure(
            dataset,
            f"SE-{plain}",
            "",
            match | SE_DEFAULT,
            errs[1],
            top5[1],
            params_m[1],
            gflops[1],
            variant=variant,
        ),
    ]


FIGURES: tuple[Figure, ...] = (
    # ImageNet, SE-ResNet-50 ablations; their no-SE baseline is the paper's ResNet-50 there.
    Figure(
        IMAGENET, "ResNet-50", "no SE", RESNET | NO_SE, 23.30, 6.55, 25.6, 3.86, ABLATIONS, POST_ACT
    ),
    _ablation(R, "r=2", {"reduction": "2"}, 22.29, 6.00, 45.7),
    _ablation(R, "r=4", {"reduction": "4"}, 22.25, 6.09, 35.7),
    _ablation(R, "r=8", {"reduction": "8"}, 22.26, 5.99, 30.7),
    _ablation(R, "r=16", {}, 22.28, 6.03, 28.1),
    _ablation(R, "r=32", {"reduction": "32"}, 22.72, 6.20, 26.9),
    _ablation(SQUEEZE, "max", {"squeeze": "max"}, 22.57, 6.09),
    _ablation(SQUEEZE, "avg", {}, 22.28, 6.03),
    _ablation(SQUEEZE, "NoSqueeze", {"squeeze": "none"}, 22.93, 6.39, 28.1, 4.27),
    _ablation(GATE, "ReLU", {"gate": "relu"}, 23.47, 6.98),
    _ablation(GATE, "Tanh", {"gate": "tanh"}, 23.00, 6.38),
    _ablation(GATE, "Sigmoid", {}, 22.28, 6.03),
    # The paper's stages 2-5 are torchvision's layer1-layer4, i.e. selab's stages 1-4.
    _ablation(STAGES, "stage 2 only", {"stages": "1,0,0,0"}, 23.03, 6.48, 25.6, 3.86),
    _ablation(STAGES, "stage 3 only", {"stages": "0,1,0,0"}, 23.04, 6.32, 25.7, 3.86),
    _ablation(STAGES, "stage 4 only", {"stages": "0,0,1,0"}, 22.68, 6.22, 26.4, 3.86),
    _ablation(STAGES, "all", {}, 22.28, 6.03, 28.1, 3.87),
    _ablation(PLACEMENT, "standard SE", {}, 22.28, 6.03),
    _ablation(PLACEMENT, "SE-PRE", {"placement": "pre"}, 22.23, 6.00),
    _ablation(PLACEMENT, "SE-POST", {"placement": "post"}, 22.78, 6.35),
    _ablation(PLACEMENT, "SE-Identity", {"placement": "identity"}, 22.20, 6.15),
    _ablation(PLACEMENT, "SE_3x3", {"placement": "after_3x3"}, 22.48, 6.02, 27.6, 3.86),
    # ImageNet, Table 2 (the paper's re-implementations, single crop) and Table 3 (mobile).
    *_pair(
        IMAGENET,
        "ResNet-50",
        _net("resnet", "50"),
        (24.80, 23.29),
        (7.48, 6.62),
        gflops=(3.86, 3.87),
        variant=POST_ACT,
    ),
    *_pair(
        IMAGENET,
        "ResNet-101",
        _net("resnet", "101"),
        (23.17, 22.38),
        (6.52, 6.07),
        gflops=(7.58, 7.60),
        variant=POST_ACT,
    ),
    *_pair(
        IMAGENET,
        "ResNet-152",
        _net("resnet", "152"),
        (22.42, 21.57),
        (6.34, 5.73),
        gflops=(11.30, 11.32),
        variant=POST_ACT,
    ),
    *_pair(
        IMAGENET,
        "ResNeXt-50 (32x4d)",
        _net("resnext", "50"),
        (22.11, 21.10),
        (5.90, 5.49),
        gflops=(4.24, 4.25),
        variant=POST_ACT,
    ),
    *_pair(
        IMAGENET,
        "ResNeXt-101 (32x4d)",
        _net("resnext", "101"),
        (21.18, 20.70),
        (5.57, 5.01),
        gflops=(7.99, 8.00),
        variant=POST_ACT,
    ),
    *_pair(
        IMAGENET,
        "VGG-16 (BN)",
        _net("vgg", "16"),
        (27.02, 25.22),
        (8.81, 7.70),
        gflops=(15.47, 15.48),
    ),
    *_pair(
        IMAGENET,
        "BN-Inception",
        _net("bn_inception"),
        (25.38, 24.23),
        (7.89, 7.14),
        gflops=(2.03, 2.04),
    ),
    *_pair(
        IMAGENET,
        "Inception-ResNet-v2",
        _net("inception_resnet_v2"),
        (20.37, 19.80),
        (5.21, 4.79),
        gflops=(11.75, 11.76),
    ),
    *_pair(
        IMAGENET,
        "MobileNet",
        _net("mobilenet"),
        (28.4, 25.3),
        (9.4, 7.7),
        (4.2, 4.7),
        (0.569, 0.572),
    ),
    *_pair(
        IMAGENET,
        "ShuffleNet",
        _net("shufflenet"),
        (32.6, 31.0),
        (12.5, 11.1),
        (1.8, 2.4),
        (0.140, 0.142),
    ),
    # CIFAR test error; selab has no WRN or Shake-Shake, so nothing matches those two. The
    # ResNets are the pre-activation ones of He et al. 2016b: 6.37 (ResNet-110), 5.46 (-164,
    # CIFAR-10) and 24.33 (-164, CIFAR-100) are that paper's full pre-activation figures.
    *_pair(CIFAR10, "ResNet-110", _net(CIFAR_RESNET, "110"), (6.37, 5.21), variant=PRE_ACT),
    *_pair(CIFAR100, "ResNet-110", _net(CIFAR_RESNET, "110"), (26.88, 23.85), variant=PRE_ACT),
    *_pair(CIFAR10, "ResNet-164", _net(CIFAR_RESNET, "164"), (5.46, 4.39), variant=PRE_ACT),
    *_pair(CIFAR100, "ResNet-164", _net(CIFAR_RESNET, "164"), (24.33, 21.31), variant=PRE_ACT),
    Figure(CIFAR10, "WRN-16-8", "", None, 4.27),
    Figure(CIFAR10, "SE-WRN-16-8", "", None, 3.88),
    Figure(CIFAR100, "WRN-16-8", "", None, 20.43),
    Figure(CIFAR100, "SE-WRN-16-8", "", None, 19.14),
    Figure(CIFAR10, "Shake-Shake (+Cutout)", "", None, 2.56),
    Figure(CIFAR10, "SE-Shake-Shake (+Cutout)", "", None, 2.12),
    Figure(CIFAR100, "Shake-Shake (+Cutout)", "", None, 15.85),
    Figure(CIFAR100, "SE-Shake-Shake (+Cutout)", "", None, 15.41),
)


# ---------------------------------------------------------------- a row, as the paper names it

_SHORTHAND = re.compile(
    r"^(resnet|resnext|cifar_resnet|cifar_preact_resnet|vgg)(\d+)(?:_32x4d|_bn)?$"
)


_ABSENT = object()


def _text(value: Any) -> str:
    """A param or point value as one canonical string: 16 (not 16.0), true/false.

    The trials frame reads the param "none" (squeeze: none, attention: none) as None, and
    pandas holds that as NaN: both stand for "none" here."""
    if value is _ABSENT:
        return ""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ",".join(_text(int(v) if isinstance(v, bool) else v) for v in value)
    return str(value).strip().lower()


def _param(config: Mapping[str, Any], key: str) -> str:
    """The canonical value of ``key``; "" when the config does not have it."""
    return _text(config.get(key, _ABSENT))


def _reduction(text: str) -> str:
    # A per-stage r is the paper's r only when it is the same in every stage.
    parts = set(re.split(r"[,\s]+", text)) - {""}
    return parts.pop() if len(parts) == 1 else text


def _stages(text: str) -> str:
    flags = re.findall(r"[01]", text.replace("true", "1").replace("false", "0"))
    if text in ("", "all", "none") or (flags and all(f == "1" for f in flags)):
        return "all"  # "all" and None are how a spec says every stage
    return ",".join(flags)


def describe(config: Mapping[str, Any]) -> dict[str, str]:
    """The keys FIGURES match on, from a trial's flattened config (MLflow params); a param
    that is absent takes selab's default."""
    family, depth = _param(config, "arch.backbone"), _param(config, "arch.depth")
    if short := _SHORTHAND.match(family):  # a point's override such as cifar_resnet164
        family, depth = short.group(1), depth or short.group(2)
    attention = _param(config, "arch.attention") or "se"
    enabled = _param(config, "arch.se.enabled") != "false"
    row = {
        "family": family,
        "depth": depth,
        "groups": _param(config, "arch.groups"),
        "variant": FAMILY_VARIANT.get(family, ""),
        "attention": attention,
        "se": "on" if enabled and attention != "none" else "off",
    }
    if row["se"] == "on":
        row |= {
            "reduction": _reduction(_param(config, R) or "16"),
            "squeeze": _param(config, SQUEEZE) or "avg",
            "gate": _param(config, GATE) or "sigmoid",
            "placement": _param(config, PLACEMENT) or "standard",
            "stages": _stages(_param(config, STAGES)),
        }
    return row


def variant_note(fig: Figure | None, row: Mapping[str, str]) -> str:
    """The figure's ResNet variant, and the row's where it is the other one ("" for none)."""
    if fig is None or not fig.variant:
        return ""
    mine = row.get("variant", "")
    if mine and mine != fig.variant:
        return f"{fig.variant} in the paper; this row is {mine}, not like for like"
    return fig.variant


def datasets_for(dataset: Any) -> tuple[str, str]:
    """The paper's datasets to show beside a sweep on ``dataset``: ImageNet, and the CIFAR
    table's CIFAR-100 column for CIFAR-100 sweeps, its CIFAR-10 column for any other."""
    return (IMAGENET, CIFAR100 if "100" in _text(dataset) else CIFAR10)


def figure_for(config: Mapping[str, Any], axis: str, dataset: str) -> Figure | None:
    """The paper's figure on ``dataset`` for the network ``config`` is, in ``axis``'s table."""
    row = describe(config)
    found = [
        f
        for f in FIGURES
        if f.dataset == dataset and (not f.axes or axis in f.axes) and f.matches(row)
    ]
    ablation = [f for f in found if f.axes]
    return (ablation or found or [None])[0]


# ---------------------------------------------------------------- table columns

# Numeric columns per dataset group: ImageNet's keep the names reports have always written.
_PREFIX = {IMAGENET: "paper_", CIFAR10: "paper_cifar_", CIFAR100: "paper_cifar_"}


def _figure_columns(
    prefix: str, dataset: str, fig: Figure | None, row: Mapping[str, str]
) -> dict[str, Any]:
    def number(attr: str) -> float:
        value = getattr(fig, attr, None)  # None without a figure, or where the paper gives none
        return math.nan if value is None else float(value)

    return {
        f"{prefix}dataset": dataset,
        f"{prefix}network": fig.network if fig else None,
        f"{prefix}setting": (fig.setting or fig.network) if fig else None,
        f"{prefix}name": fig.name if fig else None,
        f"{prefix}variant": variant_note(fig, row) or None,
        # CIFAR's test error is a top-1 error too.
        f"{prefix}top1_err": number("err"),
        f"{prefix}top5_err": number("top5_err"),
        f"{prefix}params_m": number("params_m"),
        f"{prefix}gflops": number("gflops"),
    }


def row_columns(config: Mapping[str, Any], axis: str) -> dict[str, Any]:
    """The paper columns of one table row (None / NaN where the paper has no figure)."""
    out: dict[str, Any] = {}
    row = describe(config)
    for dataset in datasets_for(_param(config, "data.name")):
        out |= _figure_columns(_PREFIX[dataset], dataset, figure_for(config, axis, dataset), row)
    return out


def _num(value: Any, fmt: str) -> str:
    return "—" if value is None or math.isnan(float(value)) else format(float(value), fmt)


def display_columns(table: pd.DataFrame) -> dict[str, list[str]]:
    """The paper columns of a numeric table (from :func:`row_columns`) as display strings,
    each header marked [paper, <dataset>]; one "no paper figure" column when none matched."""
    out: dict[str, list[str]] = {}
    for prefix in dict.fromkeys(_PREFIX.values()):
        if f"{prefix}name" not in table or table[f"{prefix}name"].isna().all():
            continue
        dataset = table[f"{prefix}dataset"].iloc[0]
        tag = f"[paper, {dataset}]"
        out[f"paper setting {tag}"] = [
            v if isinstance(v, str) else NO_FIGURE for v in table[f"{prefix}name"]
        ]
        variants = table.get(f"{prefix}variant")
        if variants is not None and variants.notna().any():
            out[f"paper variant {tag}"] = [v if isinstance(v, str) else "—" for v in variants]
        err = "top-1 err (%)" if dataset == IMAGENET else "test err (%)"
        for col, name, fmt in (
            ("top1_err", err, ".2f"),
            ("top5_err", "top-5 err (%)", ".2f"),
            ("params_m", "params (M)", ".1f"),
            ("gflops", "GFLOPs", ".4g"),
        ):
            if col == "top1_err" or table[prefix + col].notna().any():
                out[f"paper {name} {tag}"] = [_num(v, fmt) for v in table[prefix + col]]
    if not out and len(table):
        out["paper [paper, ImageNet / CIFAR]"] = [NO_FIGURE] * len(table)
    return out


# ---------------------------------------------------------------- the CIFAR table, whole

CIFAR_LABEL = "paper, CIFAR test error (%) without SE -> with SE"


def _cifar_rows() -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for fig in FIGURES:
        if fig.dataset == IMAGENET:
            continue
        plain = fig.network.removeprefix("SE-")
        label = f"{plain} ({fig.variant})" if fig.variant else plain
        pair = rows.setdefault(plain, {"model": label}).setdefault(
            "cifar10" if fig.dataset == CIFAR10 else "cifar100", [math.nan, math.nan]
        )
        pair[fig.network.startswith("SE-")] = fig.err
    return [
        {k: tuple(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows.values()
    ]


# [{"model": "ResNet-110", "cifar10": (without, with), "cifar100": (...)}, ...] for the HTML.
CIFAR: list[dict[str, Any]] = _cifar_rows()

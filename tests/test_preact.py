"""The pre-activation CIFAR ResNets (He et al. 2016, "Identity Mappings"): the same arithmetic
as timm's `PreActBasic` / `PreActBottleneck` given the same weights, unit by unit and as a whole
ResNet-164; their configs, costs, and the paper's CIFAR figures matched like for like."""

from functools import partial

import pytest
import torch
from timm.layers import BatchNormAct2d, create_conv2d
from timm.models.resnetv2 import DownsampleConv, PreActBasic, PreActBottleneck
from torch import nn

from reports.paper import CIFAR10, IMAGENET, PLACEMENT, R, display_columns, row_columns
from search_space import ArchConfig, ConfigError, build_model
from search_space.cost import count_cost, se_flops_closed_form, se_params_closed_form
from search_space.se import SqueezeExcite

TIMM_PARTS = {"conv_layer": create_conv2d, "norm_layer": BatchNormAct2d}
# timm's blocks hold their tensors in this order; forward order is norm1, conv1, ..., then the
# projection, which is how selab registers a unit's (pre_act, branch, shortcut).
TIMM_ORDER = ("norm1", "conv1", "norm2", "conv2", "norm3", "conv3", "downsample")


def _timm_block(block, in_ch, out_ch, stride):
    cls, ratio = (PreActBottleneck, 0.25) if block == "bottleneck" else (PreActBasic, 1.0)
    projects = stride != 1 or in_ch != out_ch
    return cls(
        in_ch,
        out_ch,
        bottle_ratio=ratio,
        stride=stride,
        proj_layer=partial(DownsampleConv, preact=True) if projects else None,
        **TIMM_PARTS,
    )


def _timm_state(module):
    """A timm module's state in forward order (blocks: their projection last)."""

    def rank(key):
        parts = key.split(".")
        for i, part in enumerate(parts):
            if part in TIMM_ORDER:
                return (*map(_index, parts[:i]), TIMM_ORDER.index(part))
        return tuple(map(_index, parts[:-1]))

    items = list(module.state_dict().items())
    return [v for _, v in sorted(items, key=lambda kv: rank(kv[0]))]


def _index(part):
    return int(part) if part.isdigit() else -1


def _copy_into(timm_module, selab_module):
    theirs, ours = _timm_state(timm_module), list(selab_module.state_dict().items())
    assert [tuple(t.shape) for t in theirs] == [tuple(v.shape) for _, v in ours]
    selab_module.load_state_dict({k: t.clone() for (k, _), t in zip(ours, theirs, strict=True)})


@torch.no_grad()
def _randomize(module):
    """Weights and BN statistics away from their init, so BN is not an identity."""
    torch.manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.3)
            m.running_mean.normal_(0, 0.3)
            m.running_var.uniform_(0.5, 2.0)


@pytest.mark.parametrize(
    ("backbone", "stage", "unit", "block"),
    [
        ("cifar_preact_resnet20", 1, 0, "basic"),  # projection: BN-ReLU shared by both paths
        ("cifar_preact_resnet20", 1, 1, "basic"),  # identity: the shortcut carries the raw input
        ("cifar_preact_resnet164", 2, 0, "bottleneck"),
        ("cifar_preact_resnet164", 0, 3, "bottleneck"),
    ],
)
def test_a_unit_computes_what_timms_preact_block_computes(backbone, stage, unit, block):
    arch = ArchConfig.parse({"backbone": backbone, "input_size": 32, "se": {"enabled": False}})
    ours = build_model(arch).stages[stage][unit]
    plan = arch.plan.stages[stage]
    in_ch = plan.in_channels if unit == 0 else plan.out_channels
    theirs = _timm_block(block, in_ch, plan.out_channels, plan.stride if unit == 0 else 1)
    _randomize(theirs)
    _copy_into(theirs, ours)
    x = torch.randn(4, in_ch, 8, 8)
    for mode in (False, True):  # running statistics, then batch statistics
        ours.train(mode), theirs.train(mode)
        with torch.no_grad():
            assert torch.allclose(ours(x.clone()), theirs(x.clone()), atol=1e-5), mode


def test_preact_resnet164_is_he_et_als_network_assembled_from_timms_blocks():
    """3x3 conv, then 3 x 18 bottlenecks of timm's (the first one's BN-ReLU is the stem's, as
    in He et al.'s code), the final BN-ReLU, pooling, the classifier: same count, same output."""
    arch = ArchConfig.parse(
        {
            "backbone": "cifar_preact_resnet164",
            "num_classes": 10,
            "input_size": 32,
            "se": {"enabled": False},
        }
    )
    ours = build_model(arch).eval()
    blocks = []
    for stage in arch.plan.stages:
        for u in range(stage.blocks):
            in_ch = stage.in_channels if u == 0 else stage.out_channels
            blocks.append(
                _timm_block("bottleneck", in_ch, stage.out_channels, stage.stride if u == 0 else 1)
            )
    theirs = nn.Sequential(
        create_conv2d(3, 16, 3),
        *blocks,
        BatchNormAct2d(256),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(256, 10),
    ).eval()
    assert (
        sum(p.numel() for p in ours.parameters())
        == sum(p.numel() for p in theirs.parameters())
        == 1_703_258
    )  # "1.7M" in He et al.
    _randomize(theirs)
    _copy_into(theirs, ours)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-4)


def test_the_preact_family_validates_like_the_others():
    assert ArchConfig.parse({"backbone": "cifar_preact_resnet110"}).plan.stages[0].block == "basic"
    arch = ArchConfig.parse({"backbone": "cifar_preact_resnet"})
    assert arch.name == "cifar_preact_resnet164" and arch.plan.preact
    assert ArchConfig.parse({"backbone": "cifar_preact_resnet1001"}).plan.stages[0].blocks == 111
    assert ArchConfig.parse({"backbone": "cifar_preact_resnet56", "groups": 4}).groups == 4
    cases = [
        ({"backbone": "cifar_preact_resnet50"}, ["depth", "50", "110, 164, 1001"]),
        (
            {"backbone": "cifar_preact_resnet110", "se": {"placement": "after_3x3"}},
            ["se.placement", "bottleneck", "allowed: standard, pre, post, identity"],
        ),
        (
            {"backbone": "cifar_preact_resnet164", "attention": "sk"},
            [
                "attention",
                "sk",
                "post-activation",
                "allowed for cifar_preact_resnet164",
                "se, eca, cbam, none",
            ],
        ),
        ({"backbone": "cifar_preact_resnet164", "layout": "caffe"}, ["layout", "caffe"]),
    ]
    for data, fragments in cases:
        with pytest.raises(ConfigError) as err:
            ArchConfig.parse(data)
        for fragment in fragments:
            assert fragment in str(err.value), (fragment, str(err.value))


@pytest.mark.parametrize("placement", ["standard", "pre", "post", "identity", "after_3x3"])
def test_se_cost_on_preact_units_is_the_closed_form_of_what_each_block_sees(placement):
    arch = ArchConfig.parse(
        {
            "backbone": "cifar_preact_resnet164",
            "input_size": 32,
            "se": {"placement": placement, "reduction": 4},
        }
    )
    model = build_model(arch).eval()
    shapes, hooks = [], []
    for m in model.modules():
        if isinstance(m, SqueezeExcite):
            hooks.append(
                m.register_forward_hook(
                    lambda mod, inp, out: shapes.append((*inp[0].shape[1:], mod.reduced))
                )
            )
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    cost = count_cost(arch, model)
    assert len(shapes) == 54
    assert cost.se_flops == sum(se_flops_closed_form(c, r, h, w, "avg") for c, h, w, r in shapes)
    assert cost.se_params == sum(se_params_closed_form(c, r, True) for c, _, _, r in shapes)
    # widths: the 3x3's for after_3x3, the unit's input for pre, its output otherwise
    widths = {"after_3x3": 16, "pre": 16}.get(placement, 64)
    assert shapes[0][0] == widths  # the network's first unit: 16 -> 64 channels


def _config(backbone, **params):
    return {"arch.backbone": backbone, "data.name": "cifar10", **params}


def test_the_papers_cifar_figures_are_like_for_like_on_the_preact_rows_only():
    preact = row_columns(_config("cifar_preact_resnet164", **{"arch.se.enabled": "false"}), R)
    post = row_columns(_config("cifar_resnet164", **{"arch.se.enabled": "false"}), R)
    for row in (preact, post):  # the same figure: the paper's nearest network
        assert (row["paper_cifar_network"], row["paper_cifar_top1_err"]) == ("ResNet-164", 5.46)
    assert preact["paper_cifar_variant"] == "pre-activation"
    assert "this row is post-activation, not like for like" in post["paper_cifar_variant"]
    # the ImageNet ablations are SE-ResNet-50, post-activation: the other way round
    pre_row = row_columns(_config("cifar_preact_resnet164", **{PLACEMENT: "pre"}), PLACEMENT)
    assert pre_row["paper_network"] == "SE-ResNet-50" and pre_row["paper_top1_err"] == 22.23
    assert "this row is pre-activation" in pre_row["paper_variant"]
    se110 = row_columns(_config("cifar_preact_resnet110"), "arch.backbone")
    assert (se110["paper_cifar_network"], se110["paper_cifar_top1_err"]) == ("SE-ResNet-110", 5.21)


def test_the_report_shows_the_variant_beside_the_papers_figure():
    import pandas as pd

    table = pd.DataFrame(
        [
            row_columns(_config(b, **{"arch.se.enabled": "false"}), R)
            for b in ("cifar_resnet164", "cifar_preact_resnet164", "vgg16")
        ]
    )
    shown = display_columns(table)
    column = shown[f"paper variant [{'paper'}, {CIFAR10}]"]
    assert column[0].startswith("pre-activation in the paper; this row is post-activation")
    assert column[1] == "pre-activation" and column[2] == "—"
    assert f"paper variant [paper, {IMAGENET}]" in shown  # ResNet-50's, post-activation

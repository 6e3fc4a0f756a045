"""Attention kinds: what each block computes, its cost against a closed form, its config."""

import pytest
import torch
import torch.nn.functional as F

from search_space import ArchConfig, ConfigError, build_model
from search_space.attention import KINDS
from search_space.attention.cbam import CBAM
from search_space.attention.eca import ECA, eca_kernel
from search_space.attention.sk import SelectiveKernel
from search_space.cost import (
    cbam_flops_closed_form,
    cbam_params_closed_form,
    count_cost,
    count_flops,
    eca_flops_closed_form,
    se_flops_closed_form,
    se_params_closed_form,
    sk_flops_closed_form,
    sk_params_closed_form,
)
from search_space.se import NoSqueezeExcite, SqueezeExcite


def _inputs(model, arch, types):
    """(stage, module, input shape (C, H, W), output shape) of every block of `types`."""
    seen, hooks = [], []
    for i, stage in enumerate(model.stages):
        for m in stage.modules():
            if isinstance(m, types):
                hooks.append(
                    m.register_forward_hook(
                        lambda mod, inp, out, i=i: seen.append(
                            (i, mod, tuple(inp[0].shape[1:]), tuple(out.shape[1:]))
                        )
                    )
                )
    with torch.no_grad():
        model.eval()(torch.zeros(1, arch.in_channels, arch.input_size, arch.input_size))
    for h in hooks:
        h.remove()
    return seen


def _expected(arch, model):
    """Closed-form FLOPs and params of every block, summed, and per stage."""
    types = (SqueezeExcite, NoSqueezeExcite, ECA, CBAM, SelectiveKernel)
    flops, params, per_stage = 0, 0, [0] * arch.num_stages
    for stage, m, (c, h, w), (_, oh, ow) in _inputs(model, arch, types):
        if isinstance(m, (SqueezeExcite, NoSqueezeExcite)):
            f = se_flops_closed_form(c, m.reduced, h, w, m.squeeze)
            p = se_params_closed_form(c, m.reduced, arch.se.bias)
        elif isinstance(m, ECA):
            f, p = eca_flops_closed_form(c, m.kernel, h, w, m.squeeze), m.kernel
        elif isinstance(m, CBAM):
            k = arch.cbam.spatial_kernel
            f = cbam_flops_closed_form(c, m.reduced, h, w, m.squeeze, k)
            p = cbam_params_closed_form(c, m.reduced, arch.se.bias, k)
        else:
            g = m.paths[0][0].groups
            f = sk_flops_closed_form(m.channels, g, m.reduced, m.branches, oh, ow, m.squeeze)
            p = sk_params_closed_form(m.channels, g, m.reduced, m.branches)
        flops, params, per_stage[stage] = flops + f, params + p, per_stage[stage] + f
    return flops, params, per_stage


# Placements on the small basic-block network, the bottleneck-only ones on ResNet-50 (its plain
# count is cached, so the ResNet-50 cases count it once).
COST_CASES = [
    *[
        ("cifar_resnet8", 32, kind, {"placement": p, "reduction": 4}, {})
        for kind in ("eca", "cbam")
        for p in ("standard", "pre", "post", "identity")
    ],
    *[
        ("cifar_resnet8", 32, "se", {"squeeze": "none", "placement": p, "reduction": 4}, {})
        for p in ("standard", "pre", "post", "identity")
    ],
    ("cifar_resnet8", 32, "eca", {"squeeze": "avgmax"}, {"eca": {"k": 3}}),
    (
        "cifar_resnet8",
        32,
        "cbam",
        {"squeeze": "max", "reduction": 4},
        {"cbam": {"spatial_kernel": 3}},
    ),
    ("resnet50", 64, "eca", {"placement": "after_3x3"}, {}),
    ("resnet50", 64, "cbam", {"placement": "after_3x3"}, {}),
    ("resnet50", 64, "se", {"squeeze": "none", "placement": "after_3x3"}, {}),
    ("resnext50", 64, "sk", {}, {}),
    ("resnet50", 64, "sk", {"squeeze": "avgmax"}, {"sk": {"branches": 3}, "groups": 4}),
]


@pytest.mark.parametrize(("name", "size", "kind", "se", "extra"), COST_CASES)
def test_attention_cost_equals_its_closed_form(name, size, kind, se, extra):
    arch = ArchConfig.parse(
        {"backbone": name, "input_size": size, "attention": kind, "se": se, **extra}
    )
    model = build_model(arch)
    cost = count_cost(arch, model)
    flops, params, per_stage = _expected(arch, model)
    assert flops > 0 and cost.se_flops == flops
    assert cost.se_params == params
    assert [s.se_flops for s in cost.per_stage] == per_stage
    assert count_flops(model, arch.in_channels, size).unsupported == {}


def test_sknet50_has_the_papers_parameter_count():
    arch = ArchConfig.parse({"backbone": "resnext50", "attention": "sk"})
    params = sum(p.numel() for p in build_model(arch).parameters())
    assert params == 27_479_784  # timm's skresnext50_32x4d; the SKNet paper: 27.5M
    assert abs(params - 27.5e6) / 27.5e6 < 0.001


def test_eca_kernel_follows_the_paper():
    assert [eca_kernel(c) for c in (16, 64, 256, 512, 1024, 2048)] == [3, 3, 5, 5, 5, 7]
    arch = ArchConfig.parse({"backbone": "resnet50", "attention": "eca"})
    assert arch.eca.kernel_for(2048) == 7
    assert (
        ArchConfig.parse(
            {"backbone": "resnet50", "attention": "eca", "eca": {"k": 9}}
        ).eca.kernel_for(2048)
        == 9
    )


def test_eca_cbam_and_nosqueeze_compute_their_definitions():
    torch.manual_seed(0)
    x, residual = torch.randn(2, 32, 6, 6), torch.randn(2, 32, 6, 6)
    eca = ECA(32, 5).eval()
    s = torch.sigmoid(F.conv1d(x.mean((2, 3))[:, None], eca.conv.weight, padding=2))
    assert torch.allclose(eca(x), x * s[:, 0, :, None, None], atol=1e-6)
    assert torch.allclose(
        eca(x, residual=residual), residual + x * s[:, 0, :, None, None], atol=1e-6
    )

    cbam = CBAM(32, 8, "avgmax").eval()
    mlp = lambda v: cbam.fc2(torch.relu(cbam.fc1(v)))  # noqa: E731
    xc = x * torch.sigmoid(mlp(x.mean((2, 3))) + mlp(x.amax((2, 3))))[:, :, None, None]
    maps = torch.cat([xc.mean(1, keepdim=True), xc.amax(1, keepdim=True)], 1)
    spatial = torch.sigmoid(cbam.spatial_bn(F.conv2d(maps, cbam.spatial.weight, padding=3)))
    assert torch.allclose(cbam(x), xc * spatial, atol=1e-6)

    nosq = NoSqueezeExcite(32, 8).eval()
    gate = torch.sigmoid(nosq.fc2(torch.relu(nosq.fc1(x))))
    assert torch.allclose(nosq(x), x * gate, atol=1e-6)
    assert gate.std((2, 3)).mean() > 0  # a scale per position, unlike SE's per channel


def test_selective_kernel_matches_timm_with_three_branches():
    from timm.layers import SelectiveKernel as TimmSK

    torch.manual_seed(0)
    theirs = TimmSK(
        64, 64, kernel_size=[3, 5, 7], stride=2, groups=4, rd_channels=16, split_input=False
    ).eval()
    ours = SelectiveKernel(64, 64, stride=2, groups=4, branches=3, reduced=16).eval()
    with torch.no_grad():
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2)
    values = list(theirs.state_dict().values())
    ours.load_state_dict(
        {k: v.reshape(t.shape) for (k, t), v in zip(ours.state_dict().items(), values, strict=True)}
    )
    x = torch.randn(2, 64, 16, 16)
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max() < 1e-5


def test_attention_none_is_the_plain_network():
    none = ArchConfig.parse({"backbone": "resnet50", "attention": "none"})
    off = ArchConfig.parse({"backbone": "resnet50", "se": {"enabled": False}})
    assert not none.se.enabled and not any(none.stage_mask)
    a, b = build_model(none), build_model(off)
    assert [(n, p.shape) for n, p in a.named_parameters()] == [
        (n, p.shape) for n, p in b.named_parameters()
    ]


def test_kind_defaults_fill_only_what_the_user_left_out():
    sk = ArchConfig.parse({"backbone": "resnext50", "attention": "sk"})
    assert sk.se.placement == "replace_3x3"
    cbam = ArchConfig.parse({"backbone": "resnet50", "attention": "cbam"})
    assert cbam.se.squeeze == "avgmax"  # CBAM pools both
    assert (
        ArchConfig.parse(
            {"backbone": "resnet50", "attention": "cbam", "se": {"squeeze": "avg"}}
        ).se.squeeze
        == "avg"
    )
    for arch in (sk, cbam):
        assert ArchConfig.parse(arch.to_dict()) == arch


def test_flat_params_name_the_kind_and_its_knobs():
    flat = ArchConfig.parse(
        {"backbone": "resnext50", "attention": "sk", "sk": {"branches": 3}}
    ).flat_params()
    assert flat["arch.attention"] == "sk" and flat["arch.sk.branches"] == "3"
    assert flat["arch.se.placement"] == "replace_3x3"
    eca = ArchConfig.parse({"backbone": "resnet50", "attention": "eca"}).flat_params()
    assert eca["arch.eca.k"] == "auto" and not any(k.startswith("arch.sk.") for k in eca)
    assert all(isinstance(v, str) for v in flat.values())


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"attention": "gc"}, ["attention", "'gc'", "allowed: se, eca, cbam, sk, none"]),
        (
            {"backbone": "resnet18", "attention": "sk"},
            [
                "attention",
                "sk",
                "basic units",
                "bottleneck",
                "allowed for resnet18: se, eca, cbam, none",
            ],
        ),
        ({"backbone": "mobilenet_v2", "attention": "sk"}, ["attention", "sk", "inverted"]),
        (
            {"attention": "sk", "se": {"placement": "post"}},
            ["se.placement", "3x3 conv itself", "allowed for sk: replace_3x3"],
        ),
        ({"se": {"placement": "replace_3x3"}}, ["se.placement", "sk", "allowed: standard"]),
        (
            {"attention": "eca", "se": {"squeeze": "none"}},
            ["se.squeeze", "eca", "allowed: avg, max, avgmax"],
        ),
        ({"attention": "cbam", "se": {"squeeze": "none"}}, ["se.squeeze", "cbam"]),
        ({"attention": "eca", "eca": {"k": 4}}, ["eca.k", "odd"]),
        ({"attention": "eca", "eca": {"k": "big"}}, ["eca.k", "auto"]),
        ({"attention": "cbam", "cbam": {"spatial_kernel": 6}}, ["cbam.spatial_kernel", "odd"]),
        ({"attention": "sk", "sk": {"branches": 1}}, ["sk.branches", "2"]),
        ({"attention": "sk", "sk": {"width": 3}}, ["sk.width", "unknown field"]),
        (
            {"backbone": "cifar_resnet20", "groups": 3},
            ["groups", "3", "16 -> 16", "stage 1", "allowed: divisors of 16, or depthwise"],
        ),
        (
            {"backbone": "mobilenet_v2", "groups": 2},
            ["groups", "depthwise already", "allowed backbones: resnet, resnext, cifar_resnet"],
        ),
        (
            {"backbone": "vgg16", "layout": "caffe"},
            ["layout", "caffe", "allowed for vgg16: torchvision"],
        ),
    ],
)
def test_bad_attention_input_names_the_field_and_the_allowed_values(data, expected):
    data = {"backbone": "resnet50", **data}
    with pytest.raises(ConfigError) as err:
        ArchConfig.parse(data, prefix="arch.")
    message = str(err.value)
    assert message.startswith("arch.")
    for fragment in expected:
        assert fragment in message, f"{fragment!r} missing from: {message}"


def test_registry_lists_every_kind_once():
    assert tuple(KINDS) == ("se", "eca", "cbam", "sk")
    assert all(k.summary and k.placements for k in KINDS.values())


@pytest.mark.parametrize(
    ("name", "groups", "expected"),
    [
        ("cifar_resnet20", 4, [4, 4, 4]),
        ("cifar_resnet20", "depthwise", [16, 32, 64]),
        ("resnet50", 1, [1, 1, 1, 1]),
        ("resnet50", "depthwise", [64, 128, 256, 512]),
        ("resnext50", None, [32, 32, 32, 32]),
        ("resnext50", 8, [8, 8, 8, 8]),
    ],
)
def test_groups_regroup_every_3x3_conv(name, groups, expected):
    arch = ArchConfig.parse({"backbone": name, "groups": groups, "input_size": 32})
    model = build_model(arch)
    for stage, g in zip(model.stages, expected, strict=True):
        last = stage[-1].branch  # a unit inside the stage: its width does not change
        convs = [
            m for m in last.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
        ]
        assert convs and all(c.groups == g for c in convs)
        assert all(c.weight.shape[1] == c.in_channels // g for c in convs)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 1000)

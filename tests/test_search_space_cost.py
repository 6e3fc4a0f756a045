"""FLOPs and params with fvcore: every op counted, SE's increase equal to its closed form."""

import itertools

import pytest
import torch

from search_space import ArchConfig, build_model
from search_space.cost import count_cost, count_flops, se_flops_closed_form, se_params_closed_form
from search_space.placement import ALLOWED_PLACEMENTS
from search_space.se import SQUEEZES, SqueezeExcite

PLAIN_RESNET50 = {"backbone": "resnet50", "se": {"enabled": False}}


def _se_shapes(model, arch):
    """(stage index, C, H, W, C_r) of every SE block, read off a forward pass with hooks."""
    shapes, hooks = [], []
    for i, stage in enumerate(model.stages):
        for m in stage.modules():
            if isinstance(m, SqueezeExcite):
                hooks.append(
                    m.register_forward_hook(
                        lambda mod, inp, out, i=i: shapes.append(
                            (i, *inp[0].shape[1:], mod.reduced)
                        )
                    )
                )
    with torch.no_grad():
        model.eval()(torch.zeros(1, arch.in_channels, arch.input_size, arch.input_size))
    for h in hooks:
        h.remove()
    return shapes


def test_plain_resnet50_matches_fvcore_published_figure():
    cost = count_cost(ArchConfig.parse(PLAIN_RESNET50))
    assert cost.flops_fvcore_default == pytest.approx(4.1115e9, rel=2e-5)
    assert cost.se_flops == 0 and cost.se_params == 0
    # our convention also counts ReLUs, residual adds and max-pooling: a little more
    assert 1.0 < cost.flops / cost.flops_fvcore_default < 1.01


def test_se_resnet50_fvcore_default_hides_squeeze_and_scale_but_ours_does_not():
    se = count_cost(ArchConfig.parse({"backbone": "resnet50"}))
    plain = count_cost(ArchConfig.parse(PLAIN_RESNET50))
    # fvcore's defaults count only the two FC layers: 2 * sum_s N_s C_s^2 / r multiply-adds
    fc_macs = sum(
        2 * n * c * c // 16 for n, c in zip((3, 4, 6, 3), (256, 512, 1024, 2048), strict=True)
    )
    assert se.flops_fvcore_default - plain.flops_fvcore_default == fc_macs
    assert se.flops_fvcore_default == pytest.approx(4.1140e9, rel=2e-5)
    # hand arithmetic of the full SE cost at 224x224: squeeze + FCs + ReLU + gate + scale
    per_stage = [(3, 256, 56), (4, 512, 28), (6, 1024, 14), (3, 2048, 7)]
    by_hand = sum(n * (2 * c * s * s + 2 * c * (c // 16) + c // 16 + c) for n, c, s in per_stage)
    assert se.se_flops == by_hand
    assert se.flops - plain.flops == by_hand
    assert [s.se_flops for s in se.per_stage] == [
        n * (2 * c * s * s + 2 * c * (c // 16) + c // 16 + c) for n, c, s in per_stage
    ]


def _placement_cases():
    for name, size in (
        ("resnet50", 64),
        ("cifar_resnet20", 32),
        ("cifar_preact_resnet20", 32),
        ("mobilenet_v2", 32),
    ):
        kind = ArchConfig.parse({"backbone": name, "se": {"enabled": False}}).plan.stages[-1].block
        for placement, squeeze in itertools.product(ALLOWED_PLACEMENTS[kind], SQUEEZES):
            yield name, size, placement, squeeze


@pytest.mark.parametrize(("name", "size", "placement", "squeeze"), list(_placement_cases()))
def test_se_flop_and_param_increase_equals_closed_form(name, size, placement, squeeze):
    arch = ArchConfig.parse(
        {
            "backbone": name,
            "input_size": size,
            "se": {"placement": placement, "squeeze": squeeze, "reduction": 4, "stages": None},
        }
    )
    model = build_model(arch)
    cost = count_cost(arch, model)
    shapes = _se_shapes(model, arch)
    assert len(shapes) == sum(s.blocks for s in arch.plan.stages)
    assert cost.se_flops == sum(
        se_flops_closed_form(c, r, h, w, squeeze) for _, c, h, w, r in shapes
    )
    assert cost.se_params == sum(se_params_closed_form(c, r, True) for _, c, _, _, r in shapes)
    for stage in cost.per_stage:
        mine = [s for s in shapes if s[0] == stage.stage - 1]
        assert stage.se_flops == sum(
            se_flops_closed_form(c, r, h, w, squeeze) for _, c, h, w, r in mine
        )


def test_avg_and_max_squeeze_cost_the_same():
    costs = {
        sq: count_cost(
            ArchConfig.parse(
                {"backbone": "cifar_resnet20", "input_size": 32, "se": {"squeeze": sq}}
            )
        ).se_flops
        for sq in SQUEEZES
    }
    assert costs["avg"] == costs["max"] > 0
    assert costs["avgmax"] > costs["avg"]


def test_disabled_stage_adds_nothing_and_stages_sum_up():
    arch = ArchConfig.parse(
        {"backbone": "resnet50", "input_size": 64, "se": {"stages": [1, 1, 1, 0]}}
    )
    cost = count_cost(arch)
    assert cost.per_stage[3].se_flops == 0 and cost.per_stage[3].se_params == 0
    assert all(s.se_flops > 0 and s.se_params > 0 for s in cost.per_stage[:3])
    assert sum(s.se_flops for s in cost.per_stage) == cost.se_flops
    assert sum(s.se_params for s in cost.per_stage) == cost.se_params
    assert sum(s.flops for s in cost.per_stage) < cost.flops  # stem and head are outside


def _all_networks():
    for name in (
        "resnet18",
        "resnet50",
        "resnext50_32x4d",
        "cifar_resnet20",
        "cifar_resnet164",
        "cifar_preact_resnet20",
        "cifar_preact_resnet164",
        "mobilenet_v2",
        "vgg11",
    ):
        probe = ArchConfig.parse({"backbone": name, "se": {"enabled": False}})
        kinds = {s.block for s in probe.plan.stages}
        placements = [
            p
            for p in ALLOWED_PLACEMENTS[next(iter(kinds))]
            if all(p in ALLOWED_PLACEMENTS[k] for k in kinds)
        ]
        for placement in placements:
            yield name, placement
    yield "vgg16", "standard"  # the ImageNet head (input >= 64)


def _assert_all_ops_counted(arch, expected_ops):
    counted = count_flops(build_model(arch), arch.in_channels, arch.input_size)
    assert counted.unsupported == {}, counted.unsupported
    for op in expected_ops:
        assert counted.by_operator.get(op, 0) > 0, (op, counted.by_operator)


@pytest.mark.parametrize(("name", "placement"), list(_all_networks()))
def test_no_op_of_a_built_network_is_left_unsupported(name, placement):
    size = 64 if name == "vgg16" else 32
    arch = ArchConfig.parse(
        {
            "backbone": name,
            "input_size": size,
            "se": {"placement": placement, "squeeze": "avgmax", "reduction": 4},
        }
    )
    _assert_all_ops_counted(arch, ("mean", "amax", "sigmoid"))


@pytest.mark.parametrize(
    ("squeeze", "gate", "ops"),
    [
        ("max", "hard_sigmoid", ("amax", "hardsigmoid")),
        ("avg", "tanh", ("mean", "tanh")),
        ("avg", "relu", ("mean", "relu_")),
    ],
)
def test_every_squeeze_and_gate_is_counted(squeeze, gate, ops):
    arch = ArchConfig.parse(
        {
            "backbone": "cifar_resnet8",
            "input_size": 32,
            "se": {"squeeze": squeeze, "gate": gate, "reduction": 4},
        }
    )
    _assert_all_ops_counted(arch, ops)

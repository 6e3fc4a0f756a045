"""The networks: reference parameter counts, SE exactly where enabled, every variant trains."""

import itertools

import pytest
import torch

from search_space import ArchConfig, build_model
from search_space.cost import count_params
from search_space.placement import ALLOWED_PLACEMENTS
from search_space.se import GATES, SQUEEZES, SqueezeExcite

# torchvision's parameter counts for the plain networks (1000 classes).
TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "mobilenet_v2": 3_504_872,
    "vgg16_bn": 138_365_992,
}


def _params(data):
    return count_params(build_model(ArchConfig.parse(data)))


@pytest.mark.parametrize("name", TORCHVISION_PARAMS)
def test_plain_networks_match_torchvision_parameter_counts(name):
    assert _params({"backbone": name, "se": {"enabled": False}}) == TORCHVISION_PARAMS[name]


def test_se_resnet50_matches_timm_seresnet50():
    assert _params({"backbone": "resnet50", "se": {"reduction": 16}}) == 28_088_024


@pytest.mark.parametrize("r", [2, 4, 8, 16, 32])
def test_se_parameter_increase_is_the_papers_closed_form(r):
    # 2/r * sum_s N_s C_s^2 (+ biases C/r + C per block), N_s blocks of output width C_s.
    blocks, widths = (3, 4, 6, 3), (256, 512, 1024, 2048)
    weights = sum(2 * n * c * c // r for n, c in zip(blocks, widths, strict=True))
    biases = sum(n * (c // r + c) for n, c in zip(blocks, widths, strict=True))
    increase = _params({"backbone": "resnet50", "se": {"reduction": r}}) - 25_557_032
    assert increase == weights + biases
    no_bias = _params({"backbone": "resnet50", "se": {"reduction": r, "bias": False}})
    assert no_bias - 25_557_032 == weights


def test_without_the_last_stage_se_adds_about_four_percent():
    plain = 25_557_032
    full = _params({"backbone": "resnet50"}) - plain
    no_last = _params({"backbone": "resnet50", "se": {"stages": [1, 1, 1, 0]}}) - plain
    assert 0.09 < full / plain < 0.11  # ~10% with SE everywhere
    assert 0.03 < no_last / plain < 0.045  # "about 4%" in the paper
    assert no_last == 3 * 8464 + 4 * 33312 + 6 * 132160  # stages 1-3, r=16, biases on


@pytest.mark.parametrize(
    "data",
    [
        {"backbone": "resnet50", "se": {"enabled": False}},
        {"backbone": "resnet50", "se": {"stages": [0, 0, 0, 0]}},
        {"backbone": "mobilenet_v2", "se": {"stages": [0] * 7, "placement": "after_3x3"}},
    ],
)
def test_se_off_gives_exactly_the_plain_network(data):
    arch = ArchConfig.parse(data)
    model = build_model(arch)
    plain = build_model(ArchConfig.parse({"backbone": data["backbone"], "se": {"enabled": False}}))
    assert not any(isinstance(m, SqueezeExcite) for m in model.modules())
    assert [(n, p.shape) for n, p in model.named_parameters()] == [
        (n, p.shape) for n, p in plain.named_parameters()
    ]


@pytest.mark.parametrize("mask", [(1, 0, 1), (0, 0, 1), (1, 1, 1)])
def test_se_sits_exactly_on_the_enabled_stages(mask):
    arch = ArchConfig.parse({"backbone": "cifar_resnet20", "se": {"stages": list(mask)}})
    model = build_model(arch)
    for on, stage in zip(mask, model.stages, strict=True):
        count = sum(isinstance(m, SqueezeExcite) for m in stage.modules())
        assert count == (3 if on else 0)  # one per unit, 3 units per stage in ResNet-20


def _variants():
    """Every valid placement x squeeze on every family; gates rotate so each family sees all."""
    archs = [
        "resnet18",
        "resnet50",
        "resnext50_32x4d",
        "cifar_resnet8",
        "cifar_resnet164",
        "cifar_preact_resnet8",
        "cifar_preact_resnet164",
        "mobilenet_v2",
        "vgg11",
    ]
    gates = itertools.cycle(GATES)
    for name in archs:
        probe = ArchConfig.parse({"backbone": name, "se": {"enabled": False}})
        kinds = {s.block for s in probe.plan.stages}
        placements = [
            p
            for p in ALLOWED_PLACEMENTS[next(iter(kinds))]
            if all(p in ALLOWED_PLACEMENTS[k] for k in kinds)
        ]
        for placement, squeeze in itertools.product(placements, SQUEEZES):
            yield name, placement, squeeze, next(gates)
    # the full product on one small backbone
    for placement, squeeze, gate in itertools.product(ALLOWED_PLACEMENTS["basic"], SQUEEZES, GATES):
        yield "cifar_resnet8", placement, squeeze, gate


@pytest.mark.parametrize(("name", "placement", "squeeze", "gate"), list(_variants()))
def test_every_variant_runs_forward_and_backward(name, placement, squeeze, gate):
    torch.manual_seed(0)
    arch = ArchConfig.parse(
        {
            "backbone": name,
            "num_classes": 7,
            "input_size": 32,
            "se": {"placement": placement, "squeeze": squeeze, "gate": gate, "reduction": 4},
        }
    )
    model = build_model(arch)
    ses = [m for m in model.modules() if isinstance(m, SqueezeExcite)]
    assert ses and all(m.squeeze == squeeze and isinstance(m.gate, GATES[gate]) for m in ses)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    out.square().mean().backward()
    grads = [m.fc1.weight.grad for m in ses]
    assert all(g is not None for g in grads)
    if gate != "relu":  # an unbounded ReLU gate may overflow at random init in deep nets
        assert all(torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)

"""The init knobs (`arch.se.gate_init`, `arch.zero_init_residual`) and what POST and Identity do
to a deep network at init: the gradient that reaches the stem, measured, and the note that
says so before anything trains."""

import math

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from search_space import ArchConfig, ConfigError, build_model
from search_space.attention.cbam import CBAM
from search_space.cost import count_cost
from search_space.gates import GATE_INIT_RANGE, gate_bias, gate_value
from search_space.identity_path import gated_units, identity_path_gain, identity_path_note
from search_space.se import NoSqueezeExcite, SqueezeExcite
from search_space.units import Unit

FIX = 0.9975  # sigmoid(6): the gate start the note recommends


def _arch(backbone, se=None, **kw):
    return ArchConfig.parse(
        {
            "backbone": backbone,
            "num_classes": 10,
            "in_channels": 1,
            "input_size": 8,
            "se": {"reduction": 16, **(se or {})},
            **kw,
        }
    )


def _built(arch, seed=0):
    torch.manual_seed(seed)
    return build_model(arch)


# ---------------------------------------------------------------- the knobs build what they say


@pytest.mark.parametrize(
    "backbone",
    ["cifar_resnet20", "cifar_preact_resnet164", "resnet18", "mobilenet_v2", "shufflenet"],
)
def test_the_default_knobs_build_the_same_network_and_each_knob_touches_only_its_tensors(backbone):
    base = {"backbone": backbone, "input_size": 32, "se": {"reduction": 4}}
    plain = _built(ArchConfig.parse(base)).state_dict()
    spelled = _built(
        ArchConfig.parse(
            {**base, "zero_init_residual": False, "se": {"reduction": 4, "gate_init": None}}
        )
    ).state_dict()
    assert plain.keys() == spelled.keys()
    assert all(torch.equal(plain[k], spelled[k]) for k in plain)
    # gate_init: only the excitation's last biases change, to the gate's inverse at the value
    gated = _built(ArchConfig.parse({**base, "se": {"reduction": 4, "gate_init": FIX}}))
    changed = {k for k, v in gated.state_dict().items() if not torch.equal(v, plain[k])}
    ses = {n for n, m in gated.named_modules() if isinstance(m, SqueezeExcite)}
    assert changed == {f"{n}.fc2.bias" for n in ses}
    assert all(
        torch.allclose(gated.state_dict()[k], torch.full_like(plain[k], 6.0), atol=0.02)
        for k in changed
    )  # logit(0.9975) = 5.99
    # zero_init_residual: only the last weight of each residual branch changes, to zero
    zeroed = _built(ArchConfig.parse({**base, "zero_init_residual": True}))
    changed = {k for k, v in zeroed.state_dict().items() if not torch.equal(v, plain[k])}
    residual = [m for m in zeroed.modules() if isinstance(m, Unit) and m.shortcut is not None]
    assert residual and len(changed) == len(residual)
    assert all(not zeroed.state_dict()[k].any() for k in changed)


@pytest.mark.parametrize("gate", list(GATE_INIT_RANGE))
@pytest.mark.parametrize("kind", ["se", "nosqueeze", "cbam"])
def test_gate_init_starts_every_gate_at_its_value(gate, kind):
    value = 0.7 if gate != "relu" else 1.3
    if kind == "cbam" and gate == "relu":
        value = 0.7  # CBAM's spatial gate is a sigmoid: below 1
    assert gate_value(gate, gate_bias(gate, value)) == pytest.approx(value)
    se = {
        "gate": gate,
        "gate_init": value,
        "reduction": 4,
        "squeeze": "none" if kind == "nosqueeze" else "avg",
    }
    arch = ArchConfig.parse(
        {
            "backbone": "cifar_resnet8",
            "input_size": 16,
            "attention": "cbam" if kind == "cbam" else "se",
            "se": se,
        }
    )
    model = _built(arch).eval()
    blocks = [m for m in model.modules() if isinstance(m, (SqueezeExcite, NoSqueezeExcite, CBAM))]
    assert len(blocks) == 3
    with torch.no_grad():
        for block in blocks:
            block.fc2.weight.zero_()  # what the bias alone gives
            expected = value * value if kind == "cbam" else value  # CBAM: two gates
            if kind == "cbam":
                block.spatial.weight.zero_()
            xb = torch.randn(2, block.channels, 4, 4)
            assert torch.allclose(block(xb), expected * xb, atol=1e-5), (gate, kind)


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ({"se": {"gate_init": 1.0}}, ["se.gate_init", "sigmoid", "0 < gate_init < 1", "null"]),
        ({"se": {"gate_init": 0.0, "gate": "relu"}}, ["se.gate_init", "relu", "0 < gate_init"]),
        (
            {"se": {"gate_init": -0.5, "gate": "tanh"}},
            ["se.gate_init", "tanh", "0 < gate_init < 1"],
        ),
        ({"se": {"gate_init": 0.9, "bias": False}}, ["se.gate_init", "se.bias", "null"]),
        (
            {"attention": "eca", "se": {"gate_init": 0.9}},
            ["se.gate_init", "eca", "allowed for eca: null", "se, cbam"],
        ),
        (
            {"attention": "cbam", "se": {"gate_init": 1.0, "gate": "relu"}},
            ["se.gate_init", "sigmoid", "0 < gate_init < 1"],
        ),
        (
            {"backbone": "vgg11", "zero_init_residual": True},
            ["zero_init_residual", "vgg11", "no residual units", "allowed for it: false"],
        ),
        ({"se": {"gate_init": "high"}}, ["se.gate_init"]),
    ],
)
def test_bad_init_knobs_name_the_field_and_the_allowed_values(data, fragments):
    with pytest.raises(ConfigError) as err:
        ArchConfig.parse({"backbone": "cifar_resnet20", **data}, prefix="arch.")
    assert str(err.value).startswith("arch.")
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_the_knobs_parse_as_the_cli_and_mlflow_write_them_and_flatten_back():
    arch = ArchConfig.parse(
        {"backbone": "cifar_resnet20", "se": {"gate_init": "0.9975"}, "zero_init_residual": "true"}
    )
    assert arch.se.gate_init == FIX and arch.zero_init_residual is True
    flat = arch.flat_params()
    assert flat["arch.se.gate_init"] == "0.9975" and flat["arch.zero_init_residual"] == "true"
    again = ArchConfig.parse({"backbone": "cifar_resnet20", "se": {"gate_init": ""}})
    assert again.se.gate_init is None and again.flat_params()["arch.se.gate_init"] == ""
    assert ArchConfig.parse(arch.to_dict()) == arch


def test_cost_does_not_depend_on_the_init_knobs():
    base = {"backbone": "cifar_preact_resnet20", "input_size": 32, "se": {"placement": "post"}}
    plain = count_cost(ArchConfig.parse(base))
    tuned = count_cost(
        ArchConfig.parse(
            {**base, "zero_init_residual": True, "se": {"placement": "post", "gate_init": FIX}}
        )
    )
    assert tuned == plain and plain.se_flops > 0


@pytest.mark.parametrize(
    "backbone",
    [
        "cifar_resnet14",
        "cifar_resnet164",
        "cifar_preact_resnet14",
        "cifar_preact_resnet164",
        "mobilenet_v2",
        "resnext50_32x4d",
    ],
)
def test_zero_init_residual_makes_every_residual_unit_start_as_its_shortcut(backbone):
    arch = ArchConfig.parse(
        {"backbone": backbone, "input_size": 32, "zero_init_residual": True, "se": {"reduction": 4}}
    )
    model = _built(arch).train()
    units = [m for m in model.modules() if isinstance(m, Unit) and m.shortcut is not None]
    assert units
    for unit in units[:12]:
        first = next(m for m in unit.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)))
        channels = first.in_channels if isinstance(first, nn.Conv2d) else first.num_features
        x = torch.randn(4, channels, 8, 8)
        with torch.no_grad():
            a = unit.pre_act(x) if unit.pre_act is not None else x
            skip = unit.shortcut(a if unit.shortcut_pre_act else x)
            expected = unit.act(skip) if unit.act is not None else skip
            assert torch.allclose(unit(x), expected, atol=1e-6)


# ---------------------------------------------------------------- the gradient at init


def _digits(n=16):
    digits = load_digits()
    x = torch.tensor(digits.images[:n], dtype=torch.float32)[:, None]
    return (x - x.mean()) / x.std(), torch.tensor(digits.target[:n])


def _stem_gradient(backbone, placement, gate_init=None, zero=False, seed=0):
    """The norm of the loss gradient at the stem conv's weight, at init, on a digits batch."""
    se = {
        "enabled": placement is not None,
        "placement": placement or "standard",
        "gate_init": gate_init,
    }
    model = _built(_arch(backbone, se, zero_init_residual=zero), seed).train()
    x, y = _digits()
    nn.functional.cross_entropy(model(x), y).backward()
    return model.stem[0].weight.grad.norm().item()


@pytest.mark.parametrize(
    ("backbone", "placements"),
    [
        ("cifar_resnet20", ("standard", "pre", "post", "identity")),
        ("cifar_resnet164", ("standard", "pre", "post", "identity", "after_3x3")),
        ("cifar_preact_resnet164", ("post", "identity")),
    ],
)
def test_with_the_gate_started_near_1_every_placement_gets_the_stem_gradient_of_no_se(
    backbone, placements
):
    """Measured: POST and Identity multiply the identity path by the gate in every unit; at
    depth 164 (54 units) the default gates (about 0.5) leave 0.5^54 of it and the gradient at
    the stem is 10^5 or more times the no-SE network's. With gate_init 0.9975 every placement
    is within an order of magnitude of no SE, at depth 20 and 164."""
    plain = _stem_gradient(backbone, None)
    deep = gated_units(_arch(backbone, {"placement": "post"})) > 50
    for placement in placements:
        fixed = _stem_gradient(backbone, placement, FIX) / plain
        default = _stem_gradient(backbone, placement) / plain
        assert 0.1 < fixed < 10, (placement, fixed)
        if placement in ("post", "identity") and deep:
            assert default > 1e3, (placement, default)
        elif placement in ("post", "identity"):  # ResNet-20: 0.5^9, no harm yet
            assert 0.1 < default < 10, (placement, default)
        else:  # standard, pre, after_3x3 leave the identity path alone
            assert 1 / 30 < default < 30, (placement, default)


def test_with_zero_init_residual_the_default_gates_make_the_gradient_vanish_instead():
    """The last BN zeroed, each unit starts as its gated shortcut: nothing else carries the
    gradient, and 0.5^54 of it reaches the stem; starting the gate near 1 restores it."""
    plain = _stem_gradient("cifar_resnet164", None, zero=True)
    for placement in ("post", "identity"):
        assert _stem_gradient("cifar_resnet164", placement, zero=True) / plain < 1e-3
        assert 0.1 < _stem_gradient("cifar_resnet164", placement, FIX, zero=True) / plain < 10


# ---------------------------------------------------------------- the note


def test_the_note_names_the_depth_the_product_and_the_knob_that_fixes_it():
    arch = _arch("cifar_resnet164", {"placement": "post"})
    assert gated_units(arch) == 54
    assert math.log10(identity_path_gain(arch)) == pytest.approx(54 * math.log10(0.5))
    note = identity_path_note(arch)
    for fragment in (
        "post",
        "54",
        "0.5^54",
        "10^-16.3",
        "arch.se.gate_init: 0.9975",
        "0.9975^54 = 0.87",
        "docs/placements.md",
    ):
        assert fragment in note, (fragment, note)
    fixed = _arch("cifar_resnet164", {"placement": "post", "gate_init": FIX})
    assert identity_path_note(fixed) is None
    assert "0.5^27" in identity_path_note(_arch("cifar_resnet56", {"placement": "identity"}))


@pytest.mark.parametrize(
    ("backbone", "se", "attention"),
    [
        ("cifar_resnet164", {"placement": "standard"}, "se"),
        ("cifar_resnet164", {"placement": "pre"}, "se"),
        ("cifar_resnet164", {"placement": "after_3x3"}, "se"),
        ("cifar_resnet164", {"placement": "post", "enabled": False}, "se"),
        ("cifar_resnet164", {"placement": "post", "stages": [0, 0, 1]}, "se"),  # 18 units
        ("cifar_resnet20", {"placement": "post"}, "se"),  # 0.5^9
        ("resnet50", {"placement": "identity"}, "se"),  # 0.5^16: the paper's network, it trains
    ],
)
def test_no_note_where_the_identity_path_stays_open(backbone, se, attention):
    arch = ArchConfig.parse({"backbone": backbone, "attention": attention, "se": se})
    assert identity_path_note(arch) is None


def test_the_note_knows_kinds_without_a_gate_bias_and_two_gated_kinds():
    eca = ArchConfig.parse(
        {"backbone": "cifar_resnet110", "attention": "eca", "se": {"placement": "post"}}
    )
    assert "no gate bias" in identity_path_note(eca)
    cbam = ArchConfig.parse(
        {"backbone": "cifar_resnet110", "attention": "cbam", "se": {"placement": "identity"}}
    )
    assert "0.25^54" in identity_path_note(cbam)  # channel and spatial gates, 0.5 each
    tanh = ArchConfig.parse(
        {"backbone": "cifar_resnet110", "se": {"placement": "post", "gate": "tanh"}}
    )
    assert "arch.se.gate_init: 0.9975" in identity_path_note(tanh)

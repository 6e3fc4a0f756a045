"""What a unit computes for each placement (the paper's Fig. 5), with the gate forced to c.

With the attention block's output forced to a constant c, a unit with branch F, shortcut S and
final activation act must compute exactly:
standard act(c·F(x) + S(x)); pre act(F(c·x) + S(x)); post c·act(F(x) + S(x));
identity act(F(x) + c·S(x)); after_3x3: c scales the 3x3 output inside F.
A pre-activation unit (no act) first computes a = BN-ReLU(x) where it has one: F sees a, and S
sees x, or a for a projection; the placements are the same formulas with F(a).
"""

import math

import pytest
import torch

from search_space import ArchConfig, build_model
from search_space.attention.cbam import CBAM
from search_space.attention.eca import ECA
from search_space.placement import ALLOWED_PLACEMENTS
from search_space.se import NoSqueezeExcite, SqueezeExcite

BLOCKS = (SqueezeExcite, NoSqueezeExcite, ECA, CBAM)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@torch.no_grad()
def _force_constant(block: torch.nn.Module) -> float:
    """Make the block's scale a constant; returns it."""
    if isinstance(block, (SqueezeExcite, NoSqueezeExcite)):
        block.fc2.weight.zero_()
        block.fc2.bias.fill_(_logit(0.3))
        return 0.3
    if isinstance(block, ECA):
        block.conv.weight.zero_()  # sigmoid(0)
        return 0.5
    if isinstance(block, CBAM):
        block.fc2.weight.zero_()
        block.fc2.bias.fill_(_logit(0.6) / len(block.pools))  # each pool's logits are summed
        block.spatial.weight.zero_()
        block.spatial_bn.weight.zero_()
        block.spatial_bn.bias.fill_(_logit(0.5))
        return 0.6 * 0.5
    raise TypeError(type(block))


@torch.no_grad()
def _randomize_norms(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d) and m.num_features > 1:
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.5)
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)


def _branch_with_constant(unit, x, c):
    """F(x) with the block inside the branch (after_3x3) replaced by a multiplication by c."""
    for layer in unit.branch:
        x = x * c if isinstance(layer, BLOCKS) else layer(x)
    return x


def _closed_form(unit, placement, x, c):
    act = unit.act if unit.act is not None else (lambda t: t)
    a = unit.pre_act(x) if unit.pre_act is not None else x  # pre-activation units
    if unit.shortcut is None:  # VGG, MobileNetV2 units that change shape
        if placement == "after_3x3":
            return act(_branch_with_constant(unit, a, c))
        return {
            "standard": lambda: act(c * unit.branch(a)),
            "pre": lambda: act(unit.branch(c * a)),
            "post": lambda: c * act(unit.branch(a)),
        }[placement]()
    s = unit.shortcut(a if unit.shortcut_pre_act else x)
    return {
        "standard": lambda: act(c * unit.branch(a) + s),
        "pre": lambda: act(unit.branch(c * a) + s),
        "post": lambda: c * act(unit.branch(a) + s),
        "identity": lambda: act(unit.branch(a) + c * s),
        "after_3x3": lambda: act(_branch_with_constant(unit, a, c) + s),
    }[placement]()


def _in_channels(unit):
    first = next(
        m for m in unit.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))
    )
    return first.in_channels if isinstance(first, torch.nn.Conv2d) else first.num_features


# (backbone, [(stage, unit)]): a unit with a projection shortcut, one with the identity
# (MobileNetV2: one without a shortcut, one with; pre-activation: also the network's first
# unit, which has no BN-ReLU of its own).
UNITS = {
    "cifar_resnet8": [(1, 0), (0, 0)],
    "cifar_resnet164": [(1, 0), (1, 1)],
    "cifar_preact_resnet14": [(1, 0), (0, 1), (0, 0)],
    "cifar_preact_resnet164": [(1, 0), (1, 1), (0, 0)],
    "mobilenet_v2": [(1, 0), (1, 1)],
    "vgg11": [(1, 0)],
}


def _cases():
    for backbone, units in UNITS.items():
        block = ArchConfig.parse({"backbone": backbone}).plan.stages[1].block
        for placement in ALLOWED_PLACEMENTS[block]:
            for kind in ("se", "eca", "cbam"):
                yield backbone, units, placement, kind
    yield "cifar_resnet164", UNITS["cifar_resnet164"], "pre", "se-nosqueeze"
    yield "cifar_preact_resnet164", UNITS["cifar_preact_resnet164"], "identity", "se-nosqueeze"


@pytest.mark.parametrize(
    ("backbone", "units", "placement", "kind"),
    list(_cases()),
    ids=lambda v: "" if isinstance(v, list) else str(v),
)
def test_unit_output_is_the_closed_form_of_its_placement(backbone, units, placement, kind):
    torch.manual_seed(0)
    se = {"placement": placement, "reduction": 4}
    if kind == "se-nosqueeze":
        kind, se["squeeze"] = "se", "none"
    arch = ArchConfig.parse({"backbone": backbone, "input_size": 32, "attention": kind, "se": se})
    model = build_model(arch).eval()
    for stage, index in units:
        unit = model.stages[stage][index]
        blocks = [m for m in unit.modules() if isinstance(m, BLOCKS)]
        assert len(blocks) == 1
        c = _force_constant(blocks[0])
        _randomize_norms(unit)
        x = torch.randn(2, _in_channels(unit), 8, 8)
        with torch.no_grad():
            got, expected = unit(x.clone()), _closed_form(unit, placement, x.clone(), c)
        assert torch.allclose(got, expected, atol=1e-5), (stage, index, placement)
        # the forced constant matters: without it the output differs (c != 1)
        assert not torch.allclose(got, _closed_form(unit, placement, x.clone(), 1.0), atol=1e-3)


def test_pre_keeps_the_identity_unscaled():
    """SE-PRE is not SE-POST of the previous unit: the identity carries x itself."""
    torch.manual_seed(0)
    arch = ArchConfig.parse(
        {"backbone": "cifar_resnet8", "input_size": 32, "se": {"placement": "pre", "reduction": 4}}
    )
    unit = build_model(arch).eval().stages[0][0]
    seen = {}
    unit.branch.register_forward_hook(lambda m, inp, out: seen.update(branch=inp[0]))
    x = torch.rand(2, 16, 8, 8) + 0.1
    with torch.no_grad():
        out = unit(x)
        scaled = unit.se(x)
        # identity shortcut: out = relu(F(SE(x)) + x)
        assert torch.allclose(seen["branch"], scaled)
        assert torch.allclose(out, torch.relu(unit.branch(scaled) + x), atol=1e-6)

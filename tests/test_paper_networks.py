"""The paper's other networks: BN-Inception, Inception-ResNet-v2, MobileNet v1, ShuffleNet v1,
SENet-154. Reference structures (timm's weights give timm's outputs), reference counts, SE where
the paper puts it, every placement and knob, their cost and the CLI."""

import itertools
import json

import pytest
import timm
import torch
from torch import nn

from runners.cli.main import main
from search_space import ArchConfig, ConfigError, build_model
from search_space.cost import count_cost, count_flops, se_flops_closed_form, se_params_closed_form
from search_space.inception import Mixed
from search_space.interop import load_external_weights
from search_space.mobile import ConcatUnit
from search_space.paper_costs import paper_convention
from search_space.placement import ALLOWED_PLACEMENTS
from search_space.se import GATES, SQUEEZES, SqueezeExcite

PAPER_NETS = ("bn_inception", "inception_resnet_v2", "mobilenet", "shufflenet", "senet154")
# Smallest inputs each network takes (fast tests); IRv2's unpadded convs need 75 px.
SMALL = {
    "bn_inception": 32,
    "inception_resnet_v2": 75,
    "mobilenet": 32,
    "shufflenet": 32,
    "senet154": 32,
}
# Plain counts of the reference implementations without a timm twin, measured once on them:
# Cadene's pretrained-models `bninception` (the released Caffe BN-Inception) and the authors'
# ShuffleNet v1 release (megvii-model/ShuffleNet-Series, 1.0x, group=3).
REFERENCE_PARAMS = {"bn_inception": 11_295_240, "shufflenet": 1_864_728}
TIMM_MODELS = {
    "senet154": "legacy_senet154",
    "inception_resnet_v2": "inception_resnet_v2",
    "mobilenet": "mobilenetv1_100",
}


def _arch(name, **kw):
    return ArchConfig.parse({"backbone": name, **kw})


def _meta(arch):
    """Built on the meta device: shapes and counts without allocating or initialising."""
    with torch.device("meta"):
        return build_model(arch)


def _timm_meta(name):
    with torch.device("meta"):
        return timm.create_model(name)


def _shape(tensor):
    one_by_one = tensor.dim() == 4 and tuple(tensor.shape[2:]) == (1, 1)
    return tuple(tensor.shape[:2]) if one_by_one else tuple(tensor.shape)


def _params(model):
    return sum(p.numel() for p in model.parameters())


def _ses(module):
    return [m for m in module.modules() if isinstance(m, SqueezeExcite)]


def _randomise_bn(model):
    """Non-trivial BN statistics, so that a mis-wired BN shows in the outputs."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            for t, lo, hi in (
                (m.running_mean, -0.5, 0.5),
                (m.running_var, 0.5, 2.0),
                (m.weight.data, 0.5, 1.5),
                (m.bias.data, -0.5, 0.5),
            ):
                t.copy_(torch.rand(t.shape, generator=gen) * (hi - lo) + lo)


def _with_timm_weights(arch, family, ref):
    model = build_model(arch)
    load_external_weights(model, ref.state_dict(), f"timm:{TIMM_MODELS[family]}", template=ref)
    return model.eval()


@pytest.fixture(scope="module")
def senet154_pair():
    """timm's legacy_senet154 with random weights and selab's SENet-154 holding them."""
    torch.manual_seed(0)
    ref = timm.create_model("legacy_senet154").eval()
    _randomise_bn(ref)
    arch = _arch("senet154", input_size=32)
    return ref, _with_timm_weights(arch, "senet154", ref), arch


# ---- reference structures and counts ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "se", "timm_name"),
    [
        ("senet154", True, "legacy_senet154"),
        ("inception_resnet_v2", False, "inception_resnet_v2"),
        ("mobilenet", False, "mobilenetv1_100"),
    ],
)
def test_parameter_counts_equal_timm(name, se, timm_name):
    mine = _meta(_arch(name, se={"enabled": se}))
    ref = _timm_meta(timm_name)
    assert _params(mine) == _params(ref)
    # the same tensors, not only the same total (timm's SE FC layers are 1x1 convs)
    assert sorted(_shape(p) for p in mine.state_dict().values() if p.dim()) == sorted(
        _shape(p) for p in ref.state_dict().values() if p.dim()
    )


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_parameter_counts_equal_the_reference_releases(name):
    assert _params(_meta(_arch(name, se={"enabled": False}))) == REFERENCE_PARAMS[name]


def test_senet154_with_timm_weights_computes_timm_outputs(senet154_pair):
    ref, mine, arch = senet154_pair
    x = torch.randn(2, 3, arch.input_size, arch.input_size)
    with torch.no_grad():
        torch.testing.assert_close(mine(x), ref(x), rtol=1e-4, atol=1e-5)
    assert len(_ses(mine)) == 3 + 8 + 36 + 3
    assert isinstance(mine.head[2], nn.Dropout) and mine.head[2].p == 0.2


def test_senet154_trains(senet154_pair):
    _, mine, arch = senet154_pair
    mine.train()
    out = mine(torch.randn(2, 3, arch.input_size, arch.input_size))
    out.square().mean().backward()
    assert all(se.fc1.weight.grad is not None for se in _ses(mine))
    mine.zero_grad(set_to_none=True)
    mine.eval()


@pytest.mark.parametrize("name", ["inception_resnet_v2", "mobilenet"])
def test_plain_networks_with_timm_weights_compute_timm_outputs(name):
    torch.manual_seed(0)
    ref = timm.create_model(TIMM_MODELS[name]).eval()
    _randomise_bn(ref)
    arch = _arch(name, se={"enabled": False}, input_size=SMALL[name])
    mine = _with_timm_weights(arch, name, ref)
    x = torch.randn(2, 3, arch.input_size, arch.input_size)
    with torch.no_grad():
        torch.testing.assert_close(mine(x), ref(x), rtol=1e-4, atol=1e-5)


def test_inception_resnet_v2_is_defined_at_299_px():
    assert _arch("inception_resnet_v2").input_size == 299
    assert _arch("inception_resnet_v2", input_size=75).input_size == 75
    assert _arch("bn_inception").input_size == 224


# ---- SE where the paper puts it -----------------------------------------------------------


def _capture(model, arch, kinds):
    """Inputs and outputs of every module of the given kinds and of every SE block."""
    seen = {}

    def record(module, inputs, output):
        seen.setdefault(module, (inputs[0], output))  # returns None: the output stays

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, kinds)]
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, arch.input_size, arch.input_size))
    for h in hooks:
        h.remove()
    return seen


def test_se_follows_every_whole_inception_module():
    arch = _arch("bn_inception", input_size=64)
    model = build_model(arch)
    seen = _capture(model, arch, (Mixed, SqueezeExcite))
    for stage in model.stages:
        for unit in stage:
            module_out = seen[unit.branch][1]
            se_in, se_out = seen[unit.se]
            assert se_in is module_out  # the module's concatenated output, nothing between
            assert not torch.equal(se_out, module_out)
    assert [se.channels for se in _ses(model)] == [
        256,
        320,
        576,
        576,
        576,
        608,
        608,
        1056,
        1024,
        1024,
    ]


def test_inception_resnet_se_sits_on_the_residual_branch():
    arch = _arch("inception_resnet_v2", input_size=75)
    model = build_model(arch).eval()
    unit = model.stages[0][1]  # an Inception-ResNet-A block
    x = torch.randn(1, 320, 7, 7)
    with torch.no_grad():
        expected = torch.relu(x + unit.se(unit.branch(x)))
        torch.testing.assert_close(unit(x), expected)
        plain = torch.relu(x + unit.branch(x))
        assert not torch.allclose(unit(x), plain)
    # the modules opening a stage have no identity: SE follows the whole module
    assert [model.stages[i][0].shortcut for i in range(3)] == [None, None, None]
    assert [model.stages[i][0].se.channels for i in range(3)] == [320, 1088, 2080]


@pytest.mark.parametrize("placement", ALLOWED_PLACEMENTS["shuffle"])
def test_shufflenet_downsampling_unit_places_se_as_a_residual_unit_does(placement):
    arch = _arch("shufflenet", input_size=32, se={"placement": placement, "reduction": 4})
    unit = build_model(arch).eval().stages[1][0]
    assert isinstance(unit, ConcatUnit)
    x = torch.randn(1, 240, 8, 8)
    se, pool, relu = unit.se, unit.shortcut, torch.relu
    with torch.no_grad():
        expected = {
            "standard": lambda: torch.cat((pool(x), relu(se(unit.branch(x)))), 1),
            "pre": lambda: torch.cat((pool(x), relu(unit.branch(se(x)))), 1),
            "post": lambda: se(torch.cat((pool(x), relu(unit.branch(x))), 1)),
            "identity": lambda: torch.cat((se(pool(x)), relu(unit.branch(x))), 1),
            "after_3x3": lambda: torch.cat((pool(x), relu(unit.branch(x))), 1),
        }[placement]()
        torch.testing.assert_close(unit(x), expected)
    widths = {"standard": 240, "pre": 240, "post": 480, "identity": 240, "after_3x3": 120}
    assert _ses(unit)[0].channels == widths[placement]
    if placement == "after_3x3":
        assert unit.branch[-3] is _ses(unit)[0]  # after the depthwise 3x3 and its BN


def test_mobilenet_se_follows_each_pointwise_output():
    arch = _arch("mobilenet", input_size=32)
    model = build_model(arch)
    ses = _ses(model)
    assert len(ses) == 13
    assert [se.channels for se in ses] == [64, 128, 128, 256, 256] + [512] * 6 + [1024] * 2
    seen = _capture(model, arch, (nn.Sequential, SqueezeExcite))
    for stage in model.stages:
        for unit in stage:
            assert seen[unit.se][0] is seen[unit.branch][1]  # the pointwise conv-BN-ReLU6


# ---- every placement, squeeze, gate and attention kind trains -----------------------------


def _variants():
    gates = itertools.cycle(GATES)
    squeezes = itertools.cycle(SQUEEZES)
    for name in PAPER_NETS:
        kinds = {s.block for s in _arch(name, se={"enabled": False}).plan.stages}
        for placement in ALLOWED_PLACEMENTS[kinds.pop()]:
            yield name, placement, next(squeezes), next(gates)


@pytest.mark.parametrize(("name", "placement", "squeeze", "gate"), list(_variants()))
def test_every_placement_builds_and_trains(name, placement, squeeze, gate):
    torch.manual_seed(0)
    arch = _arch(
        name,
        num_classes=5,
        input_size=SMALL[name],
        se={"placement": placement, "squeeze": squeeze, "gate": gate, "reduction": 8},
    )
    if name == "senet154":  # 115M parameters: check the wiring on the meta device
        model, x = _meta(arch), torch.randn(2, 3, 32, 32, device="meta")
        assert model(x).shape == (2, 5)
        assert len(_ses(model)) == 50
        return
    model = build_model(arch)
    ses = _ses(model)
    assert len(ses) == sum(s.blocks for s in arch.plan.stages)
    assert all(se.squeeze == squeeze and isinstance(se.gate, GATES[gate]) for se in ses)
    out = model(torch.randn(2, 3, arch.input_size, arch.input_size))
    assert out.shape == (2, 5)
    out.square().mean().backward()
    assert all(se.fc1.weight.grad is not None for se in ses)


@pytest.mark.parametrize(
    ("name", "attention"),
    [
        ("shufflenet", "eca"),
        ("mobilenet", "cbam"),
        ("bn_inception", "eca"),
        ("shufflenet", "se_nosqueeze"),
    ],
)
def test_other_attention_kinds_reach_these_networks(name, attention):
    data = {"attention": attention}
    if attention == "se_nosqueeze":
        data = {"se": {"squeeze": "none"}}
    arch = _arch(name, num_classes=3, input_size=32, **data)
    model, plain = build_model(arch), build_model(arch.without_se())
    assert _params(model) > _params(plain)
    out = model(torch.randn(2, 3, 32, 32))
    out.sum().backward()
    assert out.shape == (2, 3)


def test_stage_mask_and_per_stage_reduction():
    arch = _arch("shufflenet", se={"stages": [0, 1, 1], "reduction": [16, 8, 4]})
    model = _meta(arch)
    assert [len(_ses(s)) for s in model.stages] == [0, 8, 4]
    assert {se.reduced for se in _ses(model.stages[1])} == {240 // 8, 480 // 8}
    assert {se.reduced for se in _ses(model.stages[2])} == {480 // 4, 960 // 4}
    for name in PAPER_NETS:
        plan = _arch(name, se={"enabled": False}).plan
        mask = [1] + [0] * (len(plan.stages) - 1)
        model = _meta(_arch(name, se={"stages": mask}))
        assert [len(_ses(s)) for s in model.stages] == [plan.stages[0].blocks] + [0] * (
            len(plan.stages) - 1
        )


def test_se_off_is_exactly_the_plain_network():
    for name in PAPER_NETS:
        n = len(_arch(name, se={"enabled": False}).plan.stages)
        off = _meta(_arch(name, se={"stages": [0] * n}))
        plain = _meta(_arch(name, se={"enabled": False}))
        assert [(k, v.shape) for k, v in off.state_dict().items()] == [
            (k, v.shape) for k, v in plain.state_dict().items()
        ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"backbone": "bn_inception", "se": {"placement": "pre"}},
            ["se.placement", "inception units", "allowed: standard"],
        ),
        (
            {"backbone": "mobilenet", "se": {"placement": "identity"}},
            ["se.placement", "allowed: standard, after_3x3"],
        ),
        (
            {"backbone": "inception_resnet_v2", "se": {"placement": "identity"}},
            ["se.placement", "allowed: standard, pre, post"],
        ),
        (
            {"backbone": "inception_resnet_v2", "input_size": 64},
            ["input_size", "at least 75", "64"],
        ),
        ({"backbone": "bn_inception", "input_size": 100}, ["input_size", "multiple of 32"]),
        ({"backbone": "senet154", "depth": 152}, ["depth", "one fixed depth"]),
        ({"backbone": "mobilenet", "se": {"stages": [1, 1, 1]}}, ["se.stages", "5 stages"]),
        ({"backbone": "senet154", "attention": "sk"}, ["attention", "sk"]),
    ],
)
def test_bad_input_names_the_field_and_the_allowed_values(data, expected):
    with pytest.raises(ConfigError) as err:
        ArchConfig.parse(data)
    for fragment in expected:
        assert fragment in str(err.value), (fragment, str(err.value))


# ---- cost ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bn_inception", "inception_resnet_v2", "shufflenet"])
def test_every_op_is_counted(name):
    arch = _arch(name, input_size=SMALL[name], se={"squeeze": "avgmax"})
    counted = count_flops(build_model(arch), 3, arch.input_size)
    assert counted.unsupported == {}
    assert counted.by_operator["avg_pool2d"] > 0 and counted.by_operator["amax"] > 0


@pytest.mark.parametrize("placement", ["standard", "identity", "post"])
def test_shufflenet_se_cost_is_its_closed_form(placement):
    arch = _arch("shufflenet", input_size=64, se={"placement": placement, "reduction": 4})
    model = build_model(arch)
    cost = count_cost(arch, model)
    shapes = [(se, *i[0].shape[1:]) for se, i in _capture(model, arch, (SqueezeExcite,)).items()]
    assert cost.se_flops == sum(
        se_flops_closed_form(c, se.reduced, h, w, "avg") for se, c, h, w in shapes
    )
    assert cost.se_params == sum(
        se_params_closed_form(c, se.reduced, True) for se, c, _, _ in shapes
    )


def test_table_3_mobile_costs_in_the_papers_convention():
    costs = {}
    for name in ("mobilenet", "shufflenet"):
        for se in (False, True):
            arch = _arch(name, se={"enabled": se})
            model = build_model(arch)
            flops = count_flops(model, 3, 224)
            costs[name, se] = (_params(model), paper_convention(flops.by_operator))
    # MobileNet: 569 -> 572 MFLOPs, 4.2M -> 4.7M params (the paper truncates to 0.1M)
    assert [round(costs["mobilenet", se][1] / 1e6) for se in (False, True)] == [569, 572]
    assert [costs["mobilenet", se][0] // 100_000 for se in (False, True)] == [42, 47]
    # ShuffleNet: 1.8M -> 2.4M params; 137.5 MFLOPs as the authors' release (138M) counts it,
    # the paper's 140; SE adds 2 MFLOPs in both
    assert [costs["shufflenet", se][0] // 100_000 for se in (False, True)] == [18, 24]
    plain, se = costs["shufflenet", False][1], costs["shufflenet", True][1]
    assert abs(plain / 138e6 - 1) < 0.01
    assert round((se - plain) / 1e6) == 2


def test_cli_cost_for_a_paper_network(capsys):
    assert main(["cost", "--backbone", "shufflenet", "--se", "--json"]) == 0
    se = json.loads(capsys.readouterr().out)
    assert main(["cost", "--backbone", "shufflenet", "--no-se", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["params"] == REFERENCE_PARAMS["shufflenet"]
    assert se["params"] - plain["params"] == se["se_params"] > 0
    assert [s["stage"] for s in se["per_stage"]] == [1, 2, 3]
    assert sum(s["se_flops"] for s in se["per_stage"]) == se["se_flops"] > 0
    assert main(["cost", "--backbone", "bn_inception", "--placement", "pre"]) == 2
    assert "se.placement" in capsys.readouterr().err

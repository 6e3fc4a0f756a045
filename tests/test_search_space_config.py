"""The architecture config: parsing, round trips, flattening and the promised errors."""

import json

import pytest
import yaml

from search_space import ArchConfig, ConfigError


def test_shorthand_names_resolve_to_family_and_depth():
    assert (
        ArchConfig.parse({"backbone": "resnet50"}).backbone,
        ArchConfig.parse({"backbone": "resnet50"}).depth,
    ) == ("resnet", 50)
    assert ArchConfig.parse({"backbone": "resnext50_32x4d"}).name == "resnext50"
    assert ArchConfig.parse({"backbone": "cifar_resnet164"}).plan.has_bottleneck
    assert ArchConfig.parse({"backbone": "vgg16_bn"}).num_stages == 5
    assert ArchConfig.parse({"backbone": "mobilenet_v2"}).depth is None
    assert ArchConfig.parse({"backbone": "cifar_resnet"}).depth == 20  # family default
    preact = ArchConfig.parse({"backbone": "cifar_preact_resnet164"})
    assert (preact.backbone, preact.depth, preact.plan.preact) == ("cifar_preact_resnet", 164, True)


def _roundtrip_cases():
    yield ArchConfig.parse({"backbone": "resnet50"})
    yield ArchConfig.parse(
        {
            "backbone": "cifar_resnet56",
            "num_classes": 100,
            "input_size": 32,
            "se": {
                "reduction": [4, 8, 16],
                "stages": [True, False, True],
                "squeeze": "avgmax",
                "gate": "hard_sigmoid",
                "placement": "identity",
                "rounding": "divisible",
                "bias": False,
            },
        }
    )
    yield ArchConfig.parse(
        {
            "backbone": "cifar_preact_resnet110",
            "zero_init_residual": True,
            "se": {"placement": "post", "gate": "tanh", "gate_init": 0.99},
        }
    )


@pytest.mark.parametrize("arch", list(_roundtrip_cases()), ids=["default", "custom", "init"])
def test_config_round_trips_through_yaml_and_json(arch):
    assert ArchConfig.parse(yaml.safe_load(yaml.safe_dump(arch.to_dict()))) == arch
    assert ArchConfig.parse(json.loads(json.dumps(arch.to_dict()))) == arch


def test_flat_params_are_strings_and_parse_back():
    arch = ArchConfig.parse(
        {"backbone": "resnet50", "se": {"reduction": [4, 8, 16, 16], "stages": [1, 1, 1, 0]}}
    )
    flat = arch.flat_params()
    assert flat["arch.backbone"] == "resnet" and flat["arch.depth"] == "50"
    assert flat["arch.se.reduction"] == "4,8,16,16"
    assert flat["arch.se.stages"] == "1,1,1,0"
    assert all(isinstance(v, str) for v in flat.values())
    back = ArchConfig.parse(
        {
            "backbone": "resnet50",
            "se": {"reduction": flat["arch.se.reduction"], "stages": flat["arch.se.stages"]},
        }
    )
    assert back == arch


def test_exact_and_divisible_rounding_differ_on_cifar_widths():
    exact = ArchConfig.parse({"backbone": "cifar_resnet20", "input_size": 32})
    divisible = ArchConfig.parse(
        {"backbone": "cifar_resnet20", "input_size": 32, "se": {"rounding": "divisible"}}
    )
    widths = (16, 32, 64)
    assert [exact.se.reduced_width(c, i) for i, c in enumerate(widths)] == [1, 2, 4]
    assert [divisible.se.reduced_width(c, i) for i, c in enumerate(widths)] == [8, 8, 8]
    floor4 = ArchConfig.parse({"backbone": "cifar_resnet20", "se": {"min_reduced": 4}})
    assert floor4.se.reduced_width(16, 0) == 4


def test_a_disabled_stage_does_not_bound_r():
    arch = ArchConfig.parse(
        {"backbone": "cifar_resnet20", "se": {"reduction": 32, "stages": [0, 1, 1]}}
    )
    assert arch.stage_mask == (False, True, True)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"backbone": "alexnet"}, ["backbone", "allowed", "resnet", "cifar_resnet"]),
        ({"backbone": "resnet", "depth": 77}, ["depth", "77", "allowed", "18, 34, 50, 101, 152"]),
        ({"backbone": "resnet50", "se": {"reduction": 0}}, ["se.reduction", ">= 1"]),
        (
            {"backbone": "cifar_resnet20", "se": {"reduction": 32}},
            ["se.reduction", "r=32", "16 channels", "stage 1", "allowed", "1..16"],
        ),
        (
            {"backbone": "resnet18", "se": {"placement": "after_3x3"}},
            ["se.placement", "bottleneck", "allowed", "standard, pre, post, identity"],
        ),
        (
            {"backbone": "resnet50", "se": {"stages": [1, 1, 0]}},
            ["se.stages", "4 stages", "mask of 3"],
        ),
        ({"backbone": "resnet50", "se": {"reduction": [4, 8]}}, ["se.reduction", "4 stages"]),
        (
            {"backbone": "resnet50", "se": {"squeeze": "median"}},
            ["se.squeeze", "median", "'avg'", "'max'", "'avgmax'"],
        ),
        ({"backbone": "resnet50", "se": {"gate": "softmax"}}, ["se.gate", "sigmoid", "tanh"]),
        ({"backbone": "resnet50", "se": {"placement": "middle"}}, ["se.placement", "identity"]),
        ({"backbone": "resnet50", "se": {"reductoin": 8}}, ["se.reductoin", "unknown field"]),
        (
            {"backbone": "mobilenet_v2", "se": {"placement": "identity"}},
            ["se.placement", "allowed: standard, pre, post, after_3x3"],
        ),
        ({"backbone": "vgg16", "se": {"placement": "pre"}}, ["se.placement", "allowed: standard"]),
        ({"backbone": "resnet50", "depth": 101}, ["depth", "contradicts"]),
    ],
)
def test_bad_input_names_the_field_and_the_allowed_values(data, expected):
    with pytest.raises(ConfigError) as err:
        ArchConfig.parse(data, prefix="")
    message = str(err.value)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} missing from: {message}"


def test_prefix_is_prepended_to_field_names():
    with pytest.raises(ConfigError, match=r"^arch\.se\.gate"):
        ArchConfig.parse({"se": {"gate": "nope"}}, prefix="arch.")

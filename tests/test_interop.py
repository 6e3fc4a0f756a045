"""Weights both ways with timm and torchvision: the same outputs, to float32 precision.

Each source model is built by its own library (random init, nothing downloaded), its weights
are converted into the selab network `arch_for(source)` builds, and both must compute the same
thing; exporting the selab network back must give the source's state dict exactly.
"""

import math

import pytest
import torch

from search_space import build_model
from search_space.interop import (
    EXTERNAL_MODELS,
    arch_for,
    create_external,
    export_weights,
    load_external_weights,
)

NUM_CLASSES = 10


def _randomize_norms(model: torch.nn.Module) -> None:
    """Non-trivial BN (timm zero-inits the last BN of each block, which would hide F)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.0)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)


def _input_size(source: str) -> int:
    plan = arch_for(source).plan
    size = max(64, getattr(plan, "min_input", 8))
    multiple = getattr(plan, "input_multiple", 1)
    return math.ceil(size / multiple) * multiple


@pytest.fixture(scope="module", params=list(EXTERNAL_MODELS))
def converted(request):
    """(source, its model, the selab model holding its weights, an input)."""
    source = request.param
    torch.manual_seed(0)
    theirs = create_external(source, NUM_CLASSES)
    _randomize_norms(theirs)
    size = _input_size(source)
    ours = build_model(arch_for(source, num_classes=NUM_CLASSES, input_size=size))
    load_external_weights(ours, theirs.state_dict(), source, template=theirs)
    return source, theirs.eval(), ours.eval(), torch.randn(2, 3, size, size)


def test_imported_weights_give_the_same_outputs(converted):
    source, theirs, ours, x = converted
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert expected.abs().max() > 1e-3  # a network that computes something
    assert (got - expected).abs().max() <= 1e-5, source


def test_export_gives_back_the_source_state_dict(converted):
    source, theirs, ours, _ = converted
    exported = export_weights(ours, source, template=theirs)
    original = theirs.state_dict()
    assert list(exported) == list(original)
    assert all(torch.equal(exported[k], original[k]) for k in original)


@pytest.mark.parametrize(
    "source", ["timm:seresnet50", "torchvision:mobilenet_v2", "timm:legacy_seresnet18"]
)
def test_a_selab_network_exports_into_a_fresh_source_model(source):
    torch.manual_seed(1)
    ours = build_model(arch_for(source, num_classes=NUM_CLASSES, input_size=64))
    _randomize_norms(ours)
    theirs = create_external(source, NUM_CLASSES)  # built by export_weights' default too
    theirs.load_state_dict(export_weights(ours.eval(), source))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (theirs.eval()(x) - ours(x)).abs().max() <= 1e-5


def test_the_state_dicts_order_does_not_matter_and_mismatches_are_named():
    source = "timm:seresnet18"
    theirs = create_external(source, NUM_CLASSES)
    shuffled = dict(reversed(list(theirs.state_dict().items())))
    ours = build_model(arch_for(source, num_classes=NUM_CLASSES))
    load_external_weights(ours, shuffled, source, template=theirs)
    assert torch.equal(ours.stem[0].weight, theirs.conv1.weight)
    wrong = build_model(arch_for(source, num_classes=NUM_CLASSES, se={"rounding": "exact"}))
    with pytest.raises(ValueError, match=r"timm:seresnet18: .*\.se\.fc1\.weight .* does not fit"):
        load_external_weights(wrong, theirs.state_dict(), source, template=theirs)
    with pytest.raises(ValueError, match="unknown 'timm:resnet9'; known: torchvision:resnet18"):
        arch_for("timm:resnet9")

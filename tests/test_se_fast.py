"""The fast SE block computes what the plain one does: outputs and every gradient, in whole
networks, for each pooled squeeze kind, gate and placement."""

from __future__ import annotations

import copy

import pytest
import torch

from search_space import ArchConfig, build_model
from search_space.se import SqueezeExcite
from search_space.se_fast import FastSqueezeExcite, use_fast_se

CASES = [  # (backbone, squeeze, gate, placement); after_3x3 needs a 3x3 inside a branch
    ("cifar_resnet8", "avg", "sigmoid", "standard"),
    ("cifar_resnet8", "max", "sigmoid", "standard"),
    ("cifar_resnet8", "avgmax", "hard_sigmoid", "standard"),
    ("cifar_resnet8", "avg", "tanh", "pre"),
    ("cifar_resnet8", "max", "sigmoid", "post"),
    ("cifar_resnet8", "avg", "relu", "identity"),
    ("mobilenet_v2", "avgmax", "sigmoid", "after_3x3"),
]


def pair(backbone: str, squeeze: str, gate: str, placement: str):
    torch.manual_seed(0)
    arch = ArchConfig.parse(
        {
            "backbone": backbone,
            "num_classes": 5,
            "input_size": 8,
            "se": {"squeeze": squeeze, "gate": gate, "placement": placement, "reduction": 4},
        }
    )
    plain = build_model(arch).double()
    # Non-trivial BN statistics and biases, so that eval mode and the gate see real values.
    for m in plain.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.5, 0.5)
    fast = use_fast_se(copy.deepcopy(plain))
    return plain, fast


@pytest.mark.parametrize(("backbone", "squeeze", "gate", "placement"), CASES)
def test_training_forward_and_gradients_equal(backbone, squeeze, gate, placement):
    plain, fast = pair(backbone, squeeze, gate, placement)
    blocks = sum(isinstance(m, SqueezeExcite) for m in plain.modules())
    assert blocks > 0
    assert sum(isinstance(m, FastSqueezeExcite) for m in fast.modules()) == blocks
    assert not any(type(m) is SqueezeExcite for m in fast.modules())
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    results = []
    for model in (plain, fast):
        model.train()
        inp = x.clone().requires_grad_()
        torch.manual_seed(1)  # the same dropout mask (MobileNetV2's head) on both sides
        out = model(inp)
        out.square().sum().backward()
        grads = {n: p.grad for n, p in model.named_parameters()}
        results.append((out, inp.grad, grads))
    (out_p, gx_p, grads_p), (out_f, gx_f, grads_f) = results
    torch.testing.assert_close(out_f, out_p)
    torch.testing.assert_close(gx_f, gx_p)
    assert grads_f.keys() == grads_p.keys()
    for name in grads_p:
        # atol: a BN bias in front of another train-mode BN has a gradient that is zero up to
        # rounding (about 1e-7 here), whose value depends on the order of summation.
        torch.testing.assert_close(grads_f[name], grads_p[name], rtol=1e-6, atol=1e-6, msg=name)
    # The SE layers' own gradients come through the fused backward, not left unset.
    se_grads = [g for n, g in grads_f.items() if ".fc1." in n or ".fc2." in n]
    assert len(se_grads) == 4 * blocks and sum(g.abs().sum() for g in se_grads) > 0


@pytest.mark.parametrize(("backbone", "squeeze", "gate", "placement"), CASES[:3])
def test_inference_equal(backbone, squeeze, gate, placement):
    plain, fast = pair(backbone, squeeze, gate, placement)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    with torch.inference_mode():
        torch.testing.assert_close(fast.eval()(x), plain.eval()(x))


def test_fast_block_shares_the_plain_parameters():
    plain = SqueezeExcite(32, 8)
    fast = FastSqueezeExcite(plain)
    assert fast.state_dict().keys() == plain.state_dict().keys()
    assert fast.fc1.weight is plain.fc1.weight and fast.fc2.bias is plain.fc2.bias


def test_fused_backward_replaces_the_elementwise_graph():
    fast = FastSqueezeExcite(SqueezeExcite(16, 4))
    x = torch.randn(2, 16, 4, 4, requires_grad=True)
    residual = torch.randn(2, 16, 4, 4, requires_grad=True)
    out = fast(x, residual)
    assert "SqueezeScale" in type(out.grad_fn).__name__
    out.sum().backward()
    torch.testing.assert_close(residual.grad, torch.ones_like(residual))

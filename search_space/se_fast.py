"""A faster SE block with the same parameters and the same arithmetic as `se.SqueezeExcite`.

Where the plain block's time goes in a whole SE-ResNet-50 on a CPU (per-op profile, SE and
plain networks alternated): at batch 1 the two FCs read their weights cold from memory (the
convs in between evict them), the squeeze is one more pass over the map, and each block makes
about a dozen Python and dispatcher calls; in a training step the autograd graph of
`addcmul(residual, x, s)` and the mean makes four full-size passes in backward (g * s, g * x,
the mean's expanded gradient, and their sum) and allocates as many maps.

`FastSqueezeExcite` changes how that is computed, not what:

- without autograd (inference), one function with no submodule calls;
- with autograd, one `autograd.Function` for squeeze, excitation and scale whose backward
  writes the input's gradient in one pass (`addcmul` of the squeeze's gradient and g * s),
  takes the gradient of s as a per-channel dot product (no g * x map), and recomputes the small
  excitation MLP from the pooled vector instead of keeping its graph.

`use_fast_se(model)` swaps every `SqueezeExcite` of a built network for this block, sharing the
parameter tensors, so state dicts and results are interchangeable.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .se import SqueezeExcite, rescale, squeeze


def _excite(block: nn.Module, pooled: torch.Tensor) -> torch.Tensor:
    """gate(fc2(relu(fc1(pooled)))) with the block's own layers, as (N, C)."""
    hidden = F.relu(F.linear(pooled, block.fc1.weight, block.fc1.bias))
    return block.gate(F.linear(hidden, block.fc2.weight, block.fc2.bias))


def _params(block: nn.Module) -> list[torch.Tensor | None]:
    return [block.fc1.weight, block.fc1.bias, block.fc2.weight, block.fc2.bias]


class _SqueezeScale(torch.autograd.Function):
    """residual + x * excite(squeeze(x)), or x * excite(squeeze(x)) without a residual."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        residual: torch.Tensor | None,
        block: nn.Module,
        *params: torch.Tensor | None,
    ) -> torch.Tensor:
        pooled = squeeze(x, block.squeeze)
        s = _excite(block, pooled)[:, :, None, None]
        ctx.block, ctx.has_residual = block, residual is not None
        ctx.save_for_backward(x, pooled, s)
        return rescale(x, s, residual)

    @staticmethod
    @once_differentiable  # double backward (create_graph) is not supported through it
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, pooled, s = ctx.saved_tensors
        block = ctx.block
        grad_s = torch.einsum("nchw,nchw->nc", grad, x)  # sum over H, W of grad * x
        params = _params(block)
        wanted = [p for p in params if p is not None and p.requires_grad]
        with torch.enable_grad():  # recompute the MLP: a few KB, cheaper than keeping it
            pooled_in = pooled.detach().requires_grad_()
            grads = torch.autograd.grad(_excite(block, pooled_in), [pooled_in, *wanted], grad_s)
        grad_x = torch.addcmul(_squeeze_grad(x, grads[0], block.squeeze), grad, s)
        by_param = dict(zip(map(id, wanted), grads[1:], strict=True))
        grad_params = [by_param.get(id(p)) if p is not None else None for p in params]
        grad_residual = grad if ctx.has_residual and ctx.needs_input_grad[1] else None
        return (grad_x, grad_residual, None, *grad_params)


def _squeeze_grad(x: torch.Tensor, grad_pooled: torch.Tensor, kind: str) -> torch.Tensor:
    """The gradient the squeeze passes to x: (N, C, 1, 1) for avg, which the caller broadcasts
    into its one pass, else a full (N, C, H, W) map."""
    if kind == "avg":
        return grad_pooled[:, :, None, None] / (x.shape[2] * x.shape[3])
    with torch.enable_grad():  # max and avgmax: autograd's own rule (ties share the gradient)
        x_in = x.detach().requires_grad_()
        return torch.autograd.grad(squeeze(x_in, kind), x_in, grad_pooled)[0]


class FastSqueezeExcite(nn.Module):
    """The same block as `SqueezeExcite` (same submodules and parameters), computed faster."""

    def __init__(self, plain: SqueezeExcite) -> None:
        super().__init__()
        self.channels, self.reduced, self.squeeze = plain.channels, plain.reduced, plain.squeeze
        self.fc1, self.act, self.fc2, self.gate = plain.fc1, plain.act, plain.fc2, plain.gate

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters())
        ):
            return _SqueezeScale.apply(x, residual, self, *_params(self))
        s = _excite(self, squeeze(x, self.squeeze))
        return rescale(x, s[:, :, None, None], residual)

    def extra_repr(self) -> str:
        return f"squeeze={self.squeeze}, fast"


def use_fast_se(model: nn.Module) -> nn.Module:
    """Replace every `SqueezeExcite` in `model` by a `FastSqueezeExcite` sharing its layers;
    returns `model`, changed in place. NoSqueeze blocks and other attention kinds stay."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is SqueezeExcite:
                setattr(parent, name, FastSqueezeExcite(child))
    return model

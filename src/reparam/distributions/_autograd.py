"""Memory-lean autograd functions for location-scale samples.

Both functions keep only tensors the forward pass already holds (the output ``z`` and the
parameters), never the noise ``eps``: the backward pass recovers ``scale * eps`` as
``z - loc``. Parameters may broadcast against the noise; gradients are summed back to the
parameter's own shape.
"""

from __future__ import annotations

from typing import Any

import torch


def sum_to_shape(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a broadcast gradient back to ``shape`` (the inverse of broadcasting)."""
    if grad.shape == shape:
        return grad
    return grad.sum_to_size(shape)


class LocScaleSample(torch.autograd.Function):
    """``z = loc + scale * eps``; backward: dz/dloc = 1, dz/dscale = (z - loc) / scale."""

    @staticmethod
    def forward(ctx: Any, loc: torch.Tensor, scale: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        z = torch.addcmul(loc, scale, eps)
        ctx.save_for_backward(z, loc, scale)
        return z

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        z, loc, scale = ctx.saved_tensors
        grad_loc = grad_scale = None
        if ctx.needs_input_grad[0]:
            grad_loc = sum_to_shape(grad, loc.shape)
        if ctx.needs_input_grad[1]:
            if torch.is_grad_enabled():
                grad_scale = grad * (z - loc) / scale
            else:
                grad_scale = torch.sub(z, loc).mul_(grad).div_(scale)
            grad_scale = sum_to_shape(grad_scale, scale.shape)
        return grad_loc, grad_scale, None


class LogVarSample(torch.autograd.Function):
    """``z = loc + exp(logvar / 2) * eps``; backward: dz/dlogvar = (z - loc) / 2."""

    @staticmethod
    def forward(ctx: Any, loc: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        z = torch.addcmul(loc, logvar.mul(0.5).exp_(), eps)
        ctx.save_for_backward(z, loc)
        ctx.logvar_shape = logvar.shape
        return z

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        z, loc = ctx.saved_tensors
        grad_loc = grad_logvar = None
        if ctx.needs_input_grad[0]:
            grad_loc = sum_to_shape(grad, loc.shape)
        if ctx.needs_input_grad[1]:
            if torch.is_grad_enabled():  # double backward: keep the graph out-of-place
                grad_logvar = 0.5 * grad * (z - loc)
            else:  # one temporary instead of three
                grad_logvar = torch.sub(z, loc).mul_(grad).mul_(0.5)
            grad_logvar = sum_to_shape(grad_logvar, ctx.logvar_shape)
        return grad_loc, grad_logvar, None

r"""Implicit reparameterization gradients (Figurnov, Mohamed & Mnih, 2018).

A sample ``z`` drawn by any method (rejection, a library sampler) is a function of the
parameters through its CDF: ``F(z; theta) = u`` stays fixed, so by the implicit function
theorem

    dz/dtheta = -(dF/dtheta)(z; theta) / p(z; theta).

:func:`implicit_rsample` attaches exactly this gradient to a detached sample; families plug
in the parameter derivative of their CDF (from :mod:`reparam.special`) and the density.
There is no hand-written backward per family. The gradient is exact whatever sampler made
``z``, so families may sample with torch's own (fast) samplers.

Also here: :func:`log_standard_gamma`, the log of a standard Gamma draw that never
underflows (``G_a = G_{a+1} U^{1/a}``), the sampler behind Gamma, Beta and Dirichlet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .. import noise as _noise
from ..special import gamma_dlogx_da
from ._autograd import sum_to_shape

__all__ = ["implicit_rsample", "implicit_attach", "log_standard_gamma", "implicit_log_gamma"]

CdfGrad = Callable[..., Sequence[torch.Tensor]]


class _Implicit(torch.autograd.Function):
    """Identity in the forward pass; backward multiplies by ``dz/dtheta_i = grad_fn(z, theta)``."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, grad_fn: Callable, *params: torch.Tensor) -> torch.Tensor:
        ctx.grad_fn = grad_fn
        ctx.save_for_backward(z, *params)
        return z.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        z, *params = ctx.saved_tensors
        wanted = ctx.needs_input_grad[2:]
        if not any(wanted):
            return (None, None) + (None,) * len(params)
        dz = ctx.grad_fn(z, *params)
        out = [sum_to_shape(grad * d.to(grad.dtype), p.shape) if need else None
               for d, p, need in zip(dz, params, wanted, strict=True)]
        return (None, None, *out)


def implicit_rsample(z: torch.Tensor, params: Sequence[torch.Tensor], cdf_grad: CdfGrad,
                     log_pdf: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
    """Return ``z`` (value unchanged) with ``dz/dtheta_i = -cdf_grad_i(z, *params) / p(z)``.

    ``cdf_grad(z, *params)`` gives one tensor ``dF/dtheta_i`` per parameter (broadcastable
    to ``z``); ``log_pdf(z, *params)`` gives ``log p(z)``. When ``log_pdf`` is ``None``,
    ``cdf_grad`` must already return ``(dF/dtheta_i) / p(z)``: the ratio form that
    :mod:`reparam.special` computes to full precision (no ``exp`` of huge log densities).
    Gradients w.r.t. ``params`` are summed back to each parameter's shape.
    """
    params = tuple(params)

    def grad_fn(value: torch.Tensor, *theta: torch.Tensor) -> tuple[torch.Tensor, ...]:
        d_cdf = cdf_grad(value, *theta)
        if log_pdf is None:
            return tuple(-d for d in d_cdf)
        inv_density = torch.exp(-log_pdf(value, *theta))
        return tuple(-d * inv_density for d in d_cdf)

    return _Implicit.apply(z.detach(), grad_fn, *params)


def log_standard_gamma(concentration: torch.Tensor, shape: torch.Size,
                       noise: _noise.NoiseSource | None = None) -> torch.Tensor:
    """``log G`` with ``G ~ Gamma(concentration, 1)`` of ``shape``, never ``-inf`` (no gradient).

    ``torch._standard_gamma`` (Marsaglia-Tsang) draws ``G_{a+1}`` for ``a < 1`` and ``G_a``
    otherwise, using the generator of a :class:`~reparam.noise.MonteCarlo` source (else
    torch's global one); ``log G_a = log G_{a+1} + log(U) / a`` with ``U`` from ``noise``.
    """
    source = _noise.resolve(noise)
    a = concentration.detach().expand(shape)
    small = a < 1
    g = torch._standard_gamma(a + small, generator=getattr(source, "generator", None))
    log_g = g.clamp_min_(torch.finfo(g.dtype).tiny).log_()
    if bool(small.any()):
        u = source.uniform(shape, a.dtype, a.device)
        log_g.add_(torch.log(u).div_(a).masked_fill_(small.logical_not_(), 0.0))
    return log_g


def implicit_log_gamma(concentration: torch.Tensor, shape: torch.Size,
                       noise: _noise.NoiseSource | None = None) -> torch.Tensor:
    """``log G``, ``G ~ Gamma(concentration, 1)``, with the exact implicit gradient
    ``d log G / d concentration`` (the CDF of ``log G`` is ``P(a, e^y)``)."""
    log_g = log_standard_gamma(concentration, shape, noise)
    return implicit_attach(log_g, (concentration,), lambda y, a: (gamma_dlogx_da(y, a),))


def implicit_attach(z: torch.Tensor, params: Sequence[torch.Tensor],
                    dz_dparams: Callable[..., Sequence[torch.Tensor]]) -> torch.Tensor:
    """Return ``z`` (value unchanged) with the derivatives ``dz/dtheta_i =
    dz_dparams(z, *params)[i]`` given directly (no CDF or density in between)."""
    return _Implicit.apply(z.detach(), dz_dparams, *params)

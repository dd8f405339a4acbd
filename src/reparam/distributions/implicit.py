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

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

from .. import noise as _noise
from ..special import gamma_dlogx_da
from ._autograd import sum_to_shape
from .rejection import accept_reject, gather

__all__ = ["implicit_rsample", "implicit_attach", "log_standard_gamma", "implicit_log_gamma",
           "standard_gamma", "log_marsaglia_tsang", "dlog_gamma_da"]

CdfGrad = Callable[..., Sequence[torch.Tensor]]


SMALL = 8192  # up to here the derivatives keep (nearly) every kernel under the parallel grain
# (small blocks while several threads are on), which costs less than switching threads


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the parameter derivatives on one intra-op thread (restored afterwards).

    They are chains of many mid-sized kernels (series terms, quadrature nodes, blocks of
    1e4..1e5 entries); each parallel region waits for its slowest thread, and with another
    process on the machine that is a descheduled one: measured 10x slower with two threads
    than with one on a loaded 2-core machine (``benchmarks/implicit.py`` has the busy row).
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def derivative_threads(numel: int) -> AbstractContextManager[None]:
    """The context the parameter derivatives of ``numel`` entries run in: one thread from
    ``SMALL`` entries up (:func:`one_thread`), torch's setting below."""
    return one_thread() if numel > SMALL else nullcontext()


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
        with derivative_threads(z.numel()):
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


def standard_gamma(a: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``G ~ Gamma(a, 1)`` from torch's fast private sampler ``torch._standard_gamma``: the one
    place it is called. Where a torch build lacks it, the public fallback is
    :func:`log_marsaglia_tsang` on ``torch.randn`` / ``torch.rand`` with ``generator``."""
    sampler = getattr(torch, "_standard_gamma", None)
    if sampler is None:
        source = _noise.MonteCarlo(generator)
        boost = a < 1
        log_g = log_marsaglia_tsang(a + boost, a.shape, source)
        u = source.uniform(a.shape, log_g.dtype, a.device)
        log_g = log_g + torch.where(boost, torch.log(u) / a, 0.0)
        return torch.exp(log_g).to(a.dtype)
    return sampler(a, generator=generator)


def log_marsaglia_tsang(a: torch.Tensor, shape: torch.Size, noise: _noise.NoiseSource | None,
                        family: str = "Gamma") -> torch.Tensor:
    """``log G``, ``G ~ Gamma(a, 1)`` for ``a >= 1`` (float64), by Marsaglia & Tsang (2000)
    driven by ``noise``: ``d = a - 1/3``, ``c = 1 / sqrt(9 d)``, ``v = (1 + c eps)^3`` with
    ``eps`` normal, accepted when ``log U < eps^2 / 2 - d (y - log1p y)``, ``y = v - 1``
    (no cancellation at huge ``d``); ``log G = log d + log v``. Acceptance >= 95% a round,
    rounds bounded (:func:`~reparam.distributions.rejection.accept_reject`)."""
    d = (a.detach().double() - 1.0 / 3.0).expand(shape)
    c = torch.rsqrt(9.0 * d)
    log_d = torch.log(d)

    def draw(source, index):
        sh = shape if index is None else torch.Size([index.numel()])
        dd, cc, ld = (gather(t, shape, index) for t in (d, c, log_d))
        eps = source.normal(sh, torch.float64, a.device)
        log_u = torch.log(source.uniform(sh, torch.float64, a.device))
        w = 1.0 + cc * eps
        ok = w > 0
        log_v = 3.0 * torch.log(torch.where(ok, w, 1.0))
        y = torch.expm1(log_v)
        ok &= log_u < 0.5 * eps * eps - dd * (y - torch.log1p(y))
        return (ld + log_v).reshape(-1), ok.reshape(-1)

    return accept_reject(draw, shape, noise, family)


def log_standard_gamma(concentration: torch.Tensor, shape: torch.Size,
                       noise: _noise.NoiseSource | None = None, family: str = "Gamma",
                       name: str = "concentration") -> torch.Tensor:
    """``log G`` with ``G ~ Gamma(concentration, 1)`` of ``shape``, never ``-inf`` (no gradient).

    ``log G_a = log G_{a+1} + log(U) / a`` for ``a < 1`` (``U`` from ``noise``), ``G_a``
    itself otherwise. The draw of ``G`` honours the noise source: a plain
    :class:`~reparam.noise.MonteCarlo` uses torch's sampler on its generator
    (:func:`standard_gamma`), any other source drives :func:`log_marsaglia_tsang` (Antithetic
    pairs survive where both are accepted; Sobol is refused). A non-finite shape is refused
    (``ValueError`` naming ``family`` and ``name``).
    """
    source = _noise.resolve(noise)
    a = concentration.detach().expand(shape)
    if not bool(torch.isfinite(a).all()):
        raise ValueError(f"{family}: parameter '{name}' must be finite to sample, got "
                         f"{a[~torch.isfinite(a)].flatten()[0].item()}")
    small = a < 1
    if type(source) is _noise.MonteCarlo:
        g = standard_gamma(a + small, source.generator)
        log_g = g.clamp_min_(torch.finfo(g.dtype).tiny).log_()
    else:
        log_g = log_marsaglia_tsang(a + small, shape, source, family).to(a.dtype)
    if bool(small.any()):
        u = source.uniform(shape, a.dtype, a.device)
        log_g.add_(torch.log(u).div_(a).masked_fill_(small.logical_not_(), 0.0))
    return log_g


def implicit_log_gamma(concentration: torch.Tensor, shape: torch.Size,
                       noise: _noise.NoiseSource | None = None, family: str = "Gamma",
                       name: str = "concentration") -> torch.Tensor:
    """``log G``, ``G ~ Gamma(concentration, 1)``, with the exact implicit gradient
    ``d log G / d concentration`` (the CDF of ``log G`` is ``P(a, e^y)``), kept finite."""
    log_g = log_standard_gamma(concentration, shape, noise, family, name)
    return implicit_attach(log_g, (concentration,), lambda y, a: (dlog_gamma_da(y, a),))


def dlog_gamma_da(log_g: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``d log G / da`` at draws ``log G`` of ``Gamma(a, 1)``: the gradient
    :func:`implicit_log_gamma` attaches (for a step that writes its backward out). It overflows
    (``~ -log(U) / a^2``) only where ``G`` underflows to 0 (``a = 1e-30``): clamped to the
    dtype's range, so ``dG/da = G d log G / da`` is 0, not NaN."""
    with derivative_threads(log_g.numel()):
        d = gamma_dlogx_da(log_g, a)
    big = torch.finfo(d.dtype).max
    return d.clamp(-big, big)


def implicit_attach(z: torch.Tensor, params: Sequence[torch.Tensor],
                    dz_dparams: Callable[..., Sequence[torch.Tensor]]) -> torch.Tensor:
    """Return ``z`` (value unchanged) with the derivatives ``dz/dtheta_i =
    dz_dparams(z, *params)[i]`` given directly (no CDF or density in between)."""
    return _Implicit.apply(z.detach(), dz_dparams, *params)

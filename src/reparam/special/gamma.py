"""Implicit derivative of a standard Gamma sample with respect to its shape.

For ``x ~ Gamma(a, 1)`` with CDF ``P(a, x)`` (regularized lower incomplete gamma), the
implicit function theorem gives ``dx/da = -(dP/da)(a, x) / p(x; a)``. Everything is done in
log space, ``d log x / da``, so samples that underflow (``a = 1e-3``) keep exact gradients.
Regions (no cancellation anywhere, ``psi`` the digamma):

- ``a <= 30`` and ``x < a + 40``: the power series
  ``P = x^a e^-x / Gamma(a+1) * sum_n x^n / ((a+1)...(a+n))`` differentiated term by term:
  ``d log x / da = -(S (log x - psi(a+1)) + S') / a``, ``S' = -sum_n t_n H_n``,
  ``H_n = sum_{k<=n} 1/(a+k)``; below ``exp(psi(a+1))`` both terms are negative, above it
  they cancel, and samples whose cancellation exceeds 1e4 (the far upper tail) go to:
- otherwise the integral ``dP/da = int (log t - psi(a)) p(t) dt`` over the side of ``x`` on
  which ``log t - psi(a)`` keeps one sign (below ``exp(psi(a))``: ``[0, x]``; above:
  ``[x, inf)``), in ``v = |log(t / x)|`` with the density ratio
  ``exp(L(v))``, ``L = -+ a v - x expm1(-+ v)``, by :func:`peak_integral`.
"""

from __future__ import annotations

import torch

from .quadrature import peak_integral

SERIES_MAX_SHAPE = 30.0
SERIES_REACH = 40.0  # the series also serves x < a + 40 ...
CANCEL_LIMIT = 1e4  # ... where its cancellation costs < 4 digits (1%..99.99% quantiles)
_SERIES_TERMS = 400


def _series(x: torch.Tensor, log_x: torch.Tensor, a: torch.Tensor, psi1: torch.Tensor):
    """``(d log x / da, cancellation factor)`` by the series; converged entries leave the
    working set every 16 terms, so each costs only its own number of terms."""
    s, ds = torch.ones_like(x), torch.zeros_like(x)
    term, harmonic = torch.ones_like(x), torch.zeros_like(x)
    idx = torch.arange(x.numel(), device=x.device)
    xs, av = x, a
    eps = torch.finfo(x.dtype).eps / 8
    s_w, ds_w = s.clone(), ds.clone()
    for n in range(1, _SERIES_TERMS + 1):
        r = (av + n).reciprocal_()  # in place: 6 kernels, one allocation per term
        harmonic.add_(r)
        term.mul_(xs).mul_(r)
        s_w.add_(term)
        ds_w.addcmul_(term, harmonic, value=-1.0)
        if n % 16 == 0:
            done = term * (1.0 + harmonic) <= eps * s_w
            if bool(done.any()):
                s[idx[done]], ds[idx[done]] = s_w[done], ds_w[done]
                keep = ~done
                idx, xs, av = idx[keep], xs[keep], av[keep]
                term, harmonic, s_w, ds_w = term[keep], harmonic[keep], s_w[keep], ds_w[keep]
                if idx.numel() == 0:
                    break
    s[idx], ds[idx] = s_w, ds_w
    lead = s * (log_x - psi1)
    value = -(lead + ds) / a
    return value, lead.abs() / (value * a).abs()


def _integral(x: torch.Tensor, log_x: torch.Tensor, a: torch.Tensor, upper: bool) -> torch.Tensor:
    psi = torch.digamma(a)
    sign = 1.0 if upper else -1.0

    def L(v):
        return sign * a * v - x * torch.expm1(sign * v)

    def dL(v):
        return sign * a - sign * torch.exp(log_x + sign * v)

    def integrand(v):
        return (log_x + sign * v - psi) * torch.exp(L(v))

    v_m = torch.log(a / x).clamp_min(0.0) if upper else torch.zeros_like(x)
    guess = 10.0 / a.sqrt() + 46.0 / a
    j = peak_integral(integrand, L, dL, v_m, guess)
    return j if upper else -j


def gamma_dlogx_da(log_x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``d log x / da`` for ``x ~ Gamma(a, 1)`` at ``x = exp(log_x)`` (broadcast, float64 inside)."""
    log_x, a = torch.broadcast_tensors(log_x, a)
    dtype = log_x.dtype
    log_x, a = log_x.double(), a.double()
    x = torch.exp(log_x)
    out = torch.empty_like(x)
    psi1 = torch.digamma(a + 1.0)
    series = (a <= SERIES_MAX_SHAPE) & ((log_x < psi1) | (x < a + SERIES_REACH))
    if series.any():
        value, cancel = _series(x[series], log_x[series], a[series], psi1[series])
        out[series] = value
        # past exp(psi(a+1)) the two terms of the series cancel; keep it while <= 1e4x
        bad = torch.zeros_like(series)
        bad[series] = cancel > CANCEL_LIMIT
        series = series & ~bad
    rest = ~series
    upper = rest & (log_x >= torch.digamma(a))
    for mask, is_upper in ((rest & ~upper, False), (upper, True)):
        if mask.any():
            out[mask] = _integral(x[mask], log_x[mask], a[mask], is_upper)
    return out.to(dtype)

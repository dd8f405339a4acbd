"""Implicit derivative of a standard Student-t sample with respect to the degrees of freedom.

For ``t ~ t_nu``, ``dt/dnu = -(dF/dnu)(t) / p(t)`` with ``dF/dnu = int_{-inf}^t s(u) p(u) du``
and the score ``s = (psi((nu+1)/2) - psi(nu/2) - 1/nu - log(1 + u^2/nu)
+ (nu+1) u^2 / (nu (nu + u^2))) / 2``: even in ``u``, positive for ``|u| < c`` and negative
beyond (one root ``c > 1``). ``dF/dnu`` is odd and vanishes at 0 and at infinity, so with
``w = |t|``: inside (``s(w) > 0``) ``dt/dnu = -sign(t) int_0^w s r du``, outside
``dt/dnu = sign(t) int_w^inf s r du``, ``r = ((nu + w^2) / (nu + u^2))^((nu+1)/2)``.
"""

from __future__ import annotations

import math

import torch

from .quadrature import peak_integral

_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6)


def _c0(nu: torch.Tensor) -> torch.Tensor:
    """``psi((nu+1)/2) - psi(nu/2) - 1/nu`` without cancellation (it is ~ ``1 / (2 nu^2)``).

    For ``nu >= 20`` from Stirling's series: with ``x = nu/2``, ``y = 1/nu``,
    ``log1p(y) - y + 1/(nu(nu+1)) - sum_k B_2k / (2k) x^-2k expm1(-2k log1p(y))``.
    """
    direct = torch.digamma((nu + 1) / 2) - torch.digamma(nu / 2) - 1 / nu
    big = nu.clamp_min(20.0)
    x, y = big / 2, 1 / big
    series = torch.log1p(y) - y + 1 / (big * (big + 1))
    for k, b in enumerate(_BERNOULLI, start=1):
        series = series - b / (2 * k) * x ** (-2 * k) * torch.expm1(-2 * k * torch.log1p(y))
    return torch.where(nu >= 20.0, series, direct)


def _log_cosh(y: torch.Tensor) -> torch.Tensor:
    y = y.abs()
    small = torch.log1p(2 * torch.sinh(y.clamp_max(1.0) / 2) ** 2)  # exact near 0
    return torch.where(y < 1.0, small, y + torch.log1p(torch.exp(-2 * y)) - math.log(2.0))


def _score(y: torch.Tensor, nu: torch.Tensor, c0: torch.Tensor) -> torch.Tensor:
    """``s`` at ``u = sqrt(nu) sinh y``: ``(c0 + tanh^2 y (1 + 1/nu) - 2 log cosh y) / 2``."""
    th2 = torch.tanh(y) ** 2
    return 0.5 * (c0 + (th2 - 2 * _log_cosh(y)) + th2 / nu)


def student_t_dt_dnu(t: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
    """``dt/dnu`` for a standard Student-t sample ``t`` with ``nu`` degrees of freedom.

    The integrals run in ``u = sqrt(nu) sinh y``, where ``r du = sqrt(nu + w^2) e^L dy``
    with ``L = nu (log cosh y_w - log cosh y)``: smooth, exponential tails of rate ``nu``.
    """
    t, nu = torch.broadcast_tensors(t, nu)
    dtype = t.dtype
    t, nu = t.double(), nu.double()
    w = t.abs()
    y_w = torch.asinh(w / nu.sqrt())
    c0 = _c0(nu)
    inside = _score(y_w, nu, c0) > 0
    direction = torch.where(inside, -1.0, 1.0)  # y = y_w + direction * v
    lc_w = _log_cosh(y_w)

    def L(v):
        return nu * (lc_w - _log_cosh(y_w + direction * v))

    def dL(v):
        return -direction * nu * torch.tanh(y_w + direction * v)

    def integrand(v):
        return _score(y_w + direction * v, nu, c0) * torch.exp(L(v))

    upper = torch.where(inside, y_w, torch.full_like(y_w, float("inf")))
    v_m = torch.where(inside, y_w, torch.zeros_like(y_w))
    guess = 46.0 / nu + 10.0 / nu.sqrt()
    j = torch.sqrt(nu + w * w) * peak_integral(integrand, L, dL, v_m, guess, upper=upper)
    return (torch.sign(t) * direction * j).to(dtype)

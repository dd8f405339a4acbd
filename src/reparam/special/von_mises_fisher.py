"""Implicit derivative of the von Mises-Fisher "height" ``w = mu^T x`` w.r.t. ``kappa``.

On ``S^{d-1}``, ``w`` has density ``p(w) ~ exp(kappa w) (1 - w^2)^((d-3)/2)`` on (-1, 1) and
score ``w - A_d(kappa)``, ``A_d = I_{d/2} / I_{d/2-1}`` (increasing in ``w``, one root), so
``dw/dkappa = -(dF/dkappa)(w) / p(w)`` is the one-signed integral over ``[-1, w]`` (below
``A_d``) or ``[w, 1]``. In ``w = tanh(eta)`` the endpoint singularities vanish:
``p(u) du / p(w) = (1 - w^2) exp(L) d eta`` with
``L = kappa (tanh eta - tanh eta_w) - (d - 1) (log cosh eta - log cosh eta_w)``.

On ``S^2`` (``d = 3``) the CDF is elementary, ``F(w) = -expm1(-kappa s) / -expm1(-2 kappa)``
with ``s = 1 + w``, and so is the derivative (:func:`vmf3_dw_dkappa`): no quadrature.
"""

from __future__ import annotations

import torch

from .bessel import bessel_ratio
from .quadrature import peak_integral
from .student_t import _log_cosh

_SERIES_KAPPA = 0.5  # 2 kappa <= 1: the divided-difference series (26 terms: < 1e-17)
_SERIES_TERMS = 26


def vmf3_dw_dkappa(w: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """``dw/dkappa`` on ``S^2``, ``-(dF/dkappa) / p(w) = (2 r - s) / kappa`` with
    ``r = expm1(-kappa s) / expm1(-2 kappa)``, ``s = 1 + w``, ``t = 1 - w``; for ``w > 0`` as
    ``(t - 2 e^(-kappa s) expm1(-kappa t) / expm1(-2 kappa)) / kappa`` (no cancellation near
    ``w = 1``). For ``kappa <= 1/2``, with ``f(x) = -expm1(-x) / x``,
    ``dw/dkappa = -s t f[kappa s, 2 kappa] / f(2 kappa)``: the divided difference of ``f``
    by its series ``sum_n (-1)^n h_{n-1}(a, b) / (n+1)!`` (``h`` the complete homogeneous
    polynomials), exact as ``kappa -> 0`` (``s t / 2``)."""
    w, kappa = torch.broadcast_tensors(w, kappa)
    dtype = w.dtype
    w, k = w.double(), kappa.double()
    s, t = (1 + w).clamp(0.0, 2.0), (1 - w).clamp(0.0, 2.0)
    em = torch.expm1(-2 * k)
    lower = (2 * torch.expm1(-k * s) / em - s) / k
    upper = (t - 2 * torch.exp(-k * s) * torch.expm1(-k * t) / em) / k
    out = torch.where(w > 0, upper, lower)
    small = k <= _SERIES_KAPPA
    if bool(small.any()):
        a, b = k * s, 2 * k
        h, b_pow, g, fact = torch.ones_like(a), torch.ones_like(a), torch.zeros_like(a), 1.0
        for n in range(1, _SERIES_TERMS + 1):
            fact *= n + 1
            g = g + ((-1) ** n / fact) * h
            b_pow = b_pow * b
            h = a * h + b_pow  # h_n = a h_{n-1} + b^n
        f2k = torch.where(b > 0, -em / b.clamp_min(1e-300), torch.ones_like(b))
        out = torch.where(small, -s * t * g / f2k, out)
    return out.to(dtype)


def vmf_dw_dkappa(w: torch.Tensor, kappa: torch.Tensor, d: int) -> torch.Tensor:
    """``dw/dkappa`` for ``w = mu^T x``, ``x ~ vMF(mu, kappa)`` on the sphere in ``R^d``."""
    return vmf3_dw_dkappa(w, kappa) if d == 3 else vmf_dw_dkappa_quadrature(w, kappa, d)


def vmf_dw_dkappa_quadrature(w: torch.Tensor, kappa: torch.Tensor, d: int) -> torch.Tensor:
    """``dw/dkappa`` by :func:`~reparam.special.quadrature.peak_integral` (any ``d``)."""
    w, kappa = torch.broadcast_tensors(w, kappa)
    dtype = w.dtype
    w, kappa = w.double(), kappa.double()
    one_minus_a = 1 - bessel_ratio(d / 2 - 1, kappa)
    eta0 = torch.atanh(w)
    lc0 = _log_cosh(eta0)
    below = (1 - w) > one_minus_a  # w < A: integrate [-1, w]
    direction = torch.where(below, -1.0, 1.0)  # eta = eta0 + direction * v
    w_mode = 2 * kappa / ((d - 1) + torch.sqrt((d - 1) ** 2 + 4 * kappa * kappa))
    v_m = (direction * (torch.atanh(w_mode) - eta0)).clamp_min(0.0)

    def L(v):
        eta = eta0 + direction * v
        dtanh = torch.sinh(direction * v) / (torch.cosh(eta) * torch.cosh(eta0))
        return kappa * dtanh - (d - 1) * (_log_cosh(eta) - lc0)

    def dL(v):
        eta = eta0 + direction * v
        return direction * (kappa / torch.cosh(eta) ** 2 - (d - 1) * torch.tanh(eta))

    def integrand(v):
        eta = eta0 + direction * v
        return (one_minus_a - 2 * torch.sigmoid(-2 * eta)) * torch.exp(L(v))

    guess = 46.0 / (d - 1) + 10.0 / (kappa + 1).sqrt()
    j = (1 - w) * (1 + w) * peak_integral(integrand, L, dL, v_m, guess)
    return (direction * j).to(dtype)

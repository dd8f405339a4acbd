"""Implicit derivative of the von Mises-Fisher "height" ``w = mu^T x`` w.r.t. ``kappa``.

On ``S^{d-1}``, ``w`` has density ``p(w) ~ exp(kappa w) (1 - w^2)^((d-3)/2)`` on (-1, 1) and
score ``w - A_d(kappa)``, ``A_d = I_{d/2} / I_{d/2-1}`` (increasing in ``w``, one root), so
``dw/dkappa = -(dF/dkappa)(w) / p(w)`` is the one-signed integral over ``[-1, w]`` (below
``A_d``) or ``[w, 1]``. In ``w = tanh(eta)`` the endpoint singularities vanish:
``p(u) du / p(w) = (1 - w^2) exp(L) d eta`` with
``L = kappa (tanh eta - tanh eta_w) - (d - 1) (log cosh eta - log cosh eta_w)``.
"""

from __future__ import annotations

import torch

from .bessel import bessel_ratio
from .quadrature import peak_integral
from .student_t import _log_cosh


def vmf_dw_dkappa(w: torch.Tensor, kappa: torch.Tensor, d: int) -> torch.Tensor:
    """``dw/dkappa`` for ``w = mu^T x``, ``x ~ vMF(mu, kappa)`` on the sphere in ``R^d``."""
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

"""Implicit derivative of a von Mises angle with respect to its concentration.

For ``theta ~ VM(0, kappa)`` on ``(-pi, pi]``, ``p = exp(kappa cos theta) / (2 pi I_0)`` and
``dF/dkappa(theta) = int_{-pi}^theta (cos u - A(kappa)) p(u) du``, ``A = I_1 / I_0``. The
derivative is odd in ``theta`` and vanishes at 0 and at ``pi``; the score ``cos u - A`` is
positive exactly for ``|u| < arccos A``. So with ``w = |theta|``
``dtheta/dkappa = -sign(theta) int_0^w s r du`` inside and ``sign(theta) int_w^pi s r du``
outside, ``r = exp(kappa (cos u - cos w))``: every integrand keeps one sign.
Differences of cosines are products of sines, ``1 - A`` comes from ``i0e - i1e``.
"""

from __future__ import annotations

import math

import torch

from .quadrature import peak_integral


def von_mises_dtheta_dkappa(theta: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """``d theta / d kappa`` at ``theta`` in ``(-pi, pi]`` (centred at the mean direction)."""
    theta, kappa = torch.broadcast_tensors(theta, kappa)
    dtype = theta.dtype
    theta, kappa = theta.double(), kappa.double()
    w = theta.abs().clamp_max(math.pi)
    i0, i1 = torch.special.i0e(kappa), torch.special.i1e(kappa)
    one_minus_a = (i0 - i1) / i0
    inside = one_minus_a - 2 * torch.sin(w / 2) ** 2 > 0  # cos w > A
    sign = torch.where(inside, -1.0, 1.0)  # u = w + sign v runs away from w

    def cos_u_minus_cos_w(v):  # cos(w + sign v) - cos w = -2 sin(w + sign v / 2) sin(sign v / 2)
        return -2 * torch.sin(w + sign * v / 2) * torch.sin(sign * v / 2)

    def L(v):
        return kappa * cos_u_minus_cos_w(v)

    def dL(v):
        return -sign * kappa * torch.sin(w + sign * v)

    def integrand(v):
        u = w + sign * v
        return (one_minus_a - 2 * torch.sin(u / 2) ** 2) * torch.exp(L(v))

    upper = torch.where(inside, w, math.pi - w)
    v_m = torch.where(inside, w, torch.zeros_like(w))
    guess = 10.0 / kappa.sqrt() + 1.0
    j = peak_integral(integrand, L, dL, v_m, guess, upper=upper)
    return (torch.sign(theta) * sign * j).to(dtype)

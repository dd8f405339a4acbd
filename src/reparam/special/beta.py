"""Implicit derivatives of a Beta sample with respect to both shapes.

For ``x ~ Beta(a, b)`` with CDF ``I_x(a, b)`` (regularized incomplete beta),
``dx/dtheta = -(dI/dtheta)(x) / p(x)``, ``dI/dtheta = int_0^x s_theta(t) p(t) dt`` with the
scores ``s_a = log t - psi(a) + psi(a+b)``, ``s_b = log(1-t) - psi(b) + psi(a+b)``. Each
score is monotone in ``t`` with one root, so integrating over the side of ``x`` on which
it keeps one sign (``[0, x]`` or ``[x, 1]``) never cancels. The integral runs in the logit
``u = log(t / (1 - t))``, where ``p(t) dt = x y exp(L(u)) p(x) du`` with the concave
``L = a (log t - log x) + b (log(1-t) - log y)``: no endpoint singularity for any shape,
exponential tails of rates ``a`` and ``b``. ``log x`` and ``log y = log(1 - x)`` are given
separately, so samples within ``1e-300`` of 0 or 1 keep exact gradients.
"""

from __future__ import annotations

import torch

from .quadrature import peak_integral


def softplus(u: torch.Tensor) -> torch.Tensor:
    """``log(1 + e^u)`` to full precision (torch's softplus switches to ``u`` past 20)."""
    return u.clamp_min(0.0) + torch.log1p(torch.exp(-u.abs()))


def _side(lx, ly, a, b, upper: bool):
    """``int`` over ``u >= u_x`` (upper) or ``u <= u_x`` of ``(s_a, s_b) exp(L(u)) du``.

    ``log t = -softplus(-u)`` and ``log(1 - t) = log t - u``: one ``softplus`` per node.
    """
    sign = 1.0 if upper else -1.0
    u_x = lx - ly
    ab = torch.digamma(a + b)
    c_a, c_b = torch.digamma(a) - ab, torch.digamma(b) - ab

    def L_of(lt, u):
        return a * (lt - lx) + b * (lt - u - ly)

    def L(v):
        u = u_x + sign * v
        return L_of(-softplus(-u), u)

    def dL(v):
        u = u_x + sign * v
        return sign * (a * torch.sigmoid(-u) - b * torch.sigmoid(u))

    def integrand(v):
        u = u_x + sign * v
        lt = -softplus(-u)
        e = torch.exp(L_of(lt, u))
        return (lt - c_a) * e, (lt - u - c_b) * e

    v_m = (sign * (torch.log(a / b) - u_x)).clamp_min(0.0)
    guess = 46.0 / torch.minimum(a, b) + 10.0 / (a * b / (a + b)).sqrt()
    return peak_integral(integrand, L, dL, v_m, guess)


def beta_dx_dab(log_x: torch.Tensor, log_y: torch.Tensor, a: torch.Tensor,
                b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dx/da, dx/db)`` for ``x ~ Beta(a, b)`` given ``log x`` and ``log(1 - x)``.

    ``dx/dtheta = -x y int_{-inf}^{u_x} s exp(L) du = x y int_{u_x}^{inf} s exp(L) du``.
    """
    log_x, log_y, a, b = torch.broadcast_tensors(log_x, log_y, a, b)
    dtype = log_x.dtype
    lx, ly, a, b = (t.double() for t in (log_x, log_y, a, b))
    xy = torch.exp(lx + ly)
    ab = torch.digamma(a + b)
    upper_a = lx >= torch.digamma(a) - ab  # s_a >= 0 on [x, 1]
    upper_b = ly <= torch.digamma(b) - ab  # s_b <= 0 on [x, 1]
    outs = (torch.zeros_like(xy), torch.zeros_like(xy))
    inner = xy > 0  # a sample that rounded to exactly 0 or 1 stays there: zero gradient
    for side in (True, False):  # one pass per side, both scores share exp(L)
        need_a = (upper_a if side else ~upper_a) & inner
        need_b = (upper_b if side else ~upper_b) & inner
        m = need_a | need_b
        if not m.any():
            continue
        ja, jb = _side(lx[m], ly[m], a[m], b[m], side)
        scale = xy[m] if side else -xy[m]
        for out, need, j in ((outs[0], need_a, ja), (outs[1], need_b, jb)):
            out[need] = (scale * j)[need[m]]
    return outs[0].to(dtype), outs[1].to(dtype)

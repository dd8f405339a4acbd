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

Where ``m = min(x, 1 - x) <= 1/2`` and ``(a + b) m <= 40`` the hypergeometric series (for
``x > 1/2`` that of ``1 - x ~ Beta(b, a)``) differentiated term by term is used instead,
unless its two terms cancel by more than 1e4 (it is several times cheaper).
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


SERIES_REACH = 40.0  # the series serves min(x, y) <= 1/2 with (a + b) min(x, y) <= 40 ...
CANCEL_LIMIT = 1e4  # ... where its cancellation costs < 4 digits; the rest integrates
_SERIES_TERMS = 600


def _series(lx, ly, a, b, psi_a, psi_b, psi_ab):
    """``(dx/da, dx/db)`` and their cancellation factors from the hypergeometric series
    ``I_x = x^a y^b / (a B(a, b)) sum_n t_n``, ``t_n = t_{n-1} (a+b+n-1) x / (a+n)``, summed
    with ``sum t_n h^a_n`` and ``sum t_n h^b_n`` (``h^a_n = sum_{k<n} 1/(a+b+k) - 1/(a+1+k)``,
    ``h^b_n = sum_{k<n} 1/(a+b+k)``): ``dx/da = -(x y / a) (F c_a + F_a)``,
    ``c_a = log x - psi(a) + psi(a+b) - 1/a``, ``c_b = log y - psi(b) + psi(a+b)``."""
    x = torch.exp(lx)
    f, fa, fb = torch.ones_like(x), torch.zeros_like(x), torch.zeros_like(x)
    idx = torch.arange(x.numel(), device=x.device)  # the working set, compacted every 16 terms
    state = [x, a, b, torch.ones_like(x), f.clone(), fa.clone(), fb.clone(),
             torch.zeros_like(x), torch.zeros_like(x)]
    eps = torch.finfo(x.dtype).eps / 8
    for n in range(1, _SERIES_TERMS + 1):
        xw, aw, bw, t, fw, faw, fbw, ha, hb = state
        r1, r2 = (aw + bw + (n - 1)).reciprocal(), (aw + n).reciprocal()
        ha.add_(r1 - r2)
        hb.add_(r1)
        t.mul_(xw).mul_(r2).div_(r1)
        fw.add_(t)
        faw.addcmul_(t, ha)
        fbw.addcmul_(t, hb)
        if n % 16 == 0:
            done = t * (1 + ha.abs() + hb) <= eps * fw
            if bool(done.any()):
                f[idx[done]], fa[idx[done]], fb[idx[done]] = fw[done], faw[done], fbw[done]
                keep = ~done
                idx, state = idx[keep], [v[keep] for v in state]
                if idx.numel() == 0:
                    break
    f[idx], fa[idx], fb[idx] = state[4], state[5], state[6]
    lead_a = f * (lx - psi_a + psi_ab - 1 / a)
    lead_b = f * (ly - psi_b + psi_ab)
    scale = -torch.exp(lx + ly) / a
    da, db = scale * (lead_a + fa), scale * (lead_b + fb)
    cancel = torch.maximum((lead_a.abs() + fa.abs()) / (lead_a + fa).abs(),
                           (lead_b.abs() + fb.abs()) / (lead_b + fb).abs())
    return da, db, cancel


def beta_dx_dab(log_x: torch.Tensor, log_y: torch.Tensor, a: torch.Tensor,
                b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dx/da, dx/db)`` for ``x ~ Beta(a, b)`` given ``log x`` and ``log(1 - x)``.

    ``dx/dtheta = -x y int_{-inf}^{u_x} s exp(L) du = x y int_{u_x}^{inf} s exp(L) du``.
    """
    log_x, log_y, a, b = torch.broadcast_tensors(log_x, log_y, a, b)
    dtype = log_x.dtype
    lx, ly, a, b = (t.double() for t in (log_x, log_y, a, b))
    xy = torch.exp(lx + ly)
    psi_a, psi_b, psi_ab = torch.digamma(a), torch.digamma(b), torch.digamma(a + b)
    upper_a = lx >= psi_a - psi_ab  # s_a >= 0 on [x, 1]
    upper_b = ly <= psi_b - psi_ab  # s_b <= 0 on [x, 1]
    outs = (torch.zeros_like(xy), torch.zeros_like(xy))
    inner = xy > 0  # a sample that rounded to exactly 0 or 1 stays there: zero gradient
    mirror = lx > ly  # x > 1/2: the series of y ~ Beta(b, a), dx = -dy
    small = torch.where(mirror, ly, lx).exp()
    series = inner & (small * (a + b) <= SERIES_REACH)
    if series.any():
        mr = mirror[series]
        s_lx, s_ly = torch.where(mr, ly[series], lx[series]), torch.where(mr, lx[series], ly[series])
        s_a, s_b = torch.where(mr, b[series], a[series]), torch.where(mr, a[series], b[series])
        p_a, p_b = psi_a[series], psi_b[series]
        d1, d2, cancel = _series(s_lx, s_ly, s_a, s_b, torch.where(mr, p_b, p_a),
                                 torch.where(mr, p_a, p_b), psi_ab[series])
        outs[0][series] = torch.where(mr, -d2, d1)
        outs[1][series] = torch.where(mr, -d1, d2)
        bad = torch.zeros_like(series)
        bad[series] = ~(cancel <= CANCEL_LIMIT)
        series = series & ~bad
    inner = inner & ~series
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

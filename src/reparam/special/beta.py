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
unless its two terms cancel by more than 1e4 (it is several times cheaper). Past that reach,
up to ``(a + b) m <= CF_REACH`` and for shapes within a factor ``CF_RATIO``, the same ``F``
comes from the continued fraction of ``I_x(a, b)`` (the side of ``x`` below
``(a + 1) / (a + b + 2)``), differentiated in both shapes along its modified-Lentz
recurrence; entries it does not settle integrate.
"""

from __future__ import annotations

import math
from itertools import product

import torch

from .gamma_uniform import horner
from .quadrature import peak_integral
from .series import SeriesRunner


def softplus(u: torch.Tensor) -> torch.Tensor:
    """``log(1 + e^u)`` to full precision (torch's softplus switches to ``u`` past 20)."""
    return u.clamp_min(0.0) + torch.log1p(torch.exp(-u.abs()))


def _side(lx, ly, a, b, upper: bool, nodes: int | None = None):
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
    return peak_integral(integrand, L, dL, v_m, guess, **({"nodes": nodes} if nodes else {}))


# Gauss-Legendre nodes a panel where both shapes are >= 1 (the default 16 elsewhere): the
# same error as 16 (<= 1.1e-11 vs 40-digit mpmath, shapes 1 .. 1e4, very unequal too)
NODES_SMOOTH = 10
SERIES_REACH = 40.0  # the series serves min(x, y) <= 1/2 with (a + b) min(x, y) <= 40 ...
CANCEL_LIMIT = 1e4  # ... where its cancellation costs < 4 digits; the rest integrates
_SERIES_TERMS = 600
BLOCK = 1 << 16  # elements per pass: the working set of the series stays in cache ...
BLOCK_PARALLEL = 1 << 13  # ... with several threads: 2-row kernels under the parallel grain
_TOL = {torch.float32: 1e-12, torch.float16: 1e-12, torch.bfloat16: 1e-12}  # else 2^-55


def _series(lx, a, b, tol: float, runner: SeriesRunner) -> torch.Tensor:
    """``(F, F_a, F_b)`` of the hypergeometric series ``I_x = x^a y^b / (a B(a, b)) F``,
    ``F = sum_n t_n``, ``t_n = t_{n-1} (a+b+n-1) x / (a+n)``, ``F_a = sum t_n h^a_n``,
    ``F_b = sum t_n h^b_n`` (``h^a_n = sum_{k<n} 1/(a+b+k) - 1/(a+1+k)``,
    ``h^b_n = sum_{k<n} 1/(a+b+k)``); paired rows share a kernel (9 a term)."""
    state = runner.state(lx.numel())  # rows: x, a+b+n-1, a+n, t, h^a, h^b, F, F_a, F_b
    torch.exp(lx, out=state[0]), torch.add(a, b, out=state[1]).sub_(1.0), state[2].copy_(a)
    state[3].fill_(1.0), state[4:6].zero_(), state[6].fill_(1.0), state[7:9].zero_()

    def step(rows, state, n, tmp):
        r = torch.reciprocal(state[1:3].add_(1.0), out=tmp[:2])
        state[4:6].add_(r[0])
        rows[4].sub_(r[1])
        rows[3].mul_(rows[1]).mul_(rows[0]).mul_(r[1])
        rows[6].add_(rows[3])
        state[7:9].addcmul_(rows[3], state[4:6])

    def done(rows, tmp, out):
        _, _, _, t, ha, hb, f, _, _ = rows
        bound = torch.abs(ha, out=tmp[0]).add_(hb).add_(1.0).mul_(t)
        return torch.le(bound, torch.mul(f, tol, out=tmp[1]), out=out)

    return runner.run(lx.numel(), step, done, _SERIES_TERMS)


def _series_shared(lx, a: float, b: float, tol: float) -> torch.Tensor:
    """``(F, F_a, F_b, converged)`` of :func:`_series` for one ``(a, b)`` shared by all
    entries: ``t_n = C_n x^n``, ``C_n = prod_{k<=n} (a+b+k-1) / (a+k)``, so ``F``, ``F_a``,
    ``F_b`` are three polynomials in ``z = x / max x`` (coefficients ``C_n max(x)^n`` formed
    in log space; each polynomial of one sign: no cancellation), one Horner pass for as many
    terms as the largest ``x`` needs (its terms below ``tol / CAP`` of its sum: so below
    ``tol`` of every smaller entry's own sum)."""
    x = torch.exp(lx)
    x_max = float(x.max())
    k = torch.arange(1, _SERIES_TERMS + 1, dtype=lx.dtype, device=lx.device)
    zero = torch.zeros(1, dtype=lx.dtype, device=lx.device)
    r_ab, r_a = 1.0 / (a + b + k - 1), 1.0 / (a + k)
    log_c = torch.cat([zero, torch.log((a + b + k - 1) * r_a).cumsum(0)])
    ha, hb = torch.cat([zero, (r_ab - r_a).cumsum(0)]), torch.cat([zero, r_ab.cumsum(0)])
    e = torch.exp(log_c + math.log(x_max) * torch.arange(_SERIES_TERMS + 1, dtype=lx.dtype,
                                                          device=lx.device))
    size = e * (1 + ha.abs() + hb)
    big = (size > tol / _SERIES_TERMS * float(e.sum())).nonzero()
    terms = min(_SERIES_TERMS, -(-(int(big[-1]) + 1) // 8) * 8)
    coef = torch.stack([e, e * ha, e * hb])[:, : terms + 1]
    z = x / x_max
    f, fa, fb = horner(coef, z).unbind()
    last = torch.log(z).mul_(terms).add_(float(size[terms].log()))
    return torch.stack([f, fa, fb, torch.le(last, f.log() + math.log(tol)).to(f.dtype)])


CF_REACH = 400.0  # the continued fraction serves (a + b) min(x, 1 - x) up to here ...
CF_RATIO = 4.0  # ... for shapes within this ratio (it converges slowly for very unequal ones),
_CF_TERMS = 128  # settling within this many pairs of steps, else the integral
_CF_ROWS = 17  # x, a, b, c, d, c_a, c_b, d_a, d_b, F, S_a, S_b, |delta - 1|, g_a, g_b, k_a, k_b
# Up to CF_REACH_BULK too where at least CF_BULK entries qualify: a pass of up to 256 Lentz
# steps is launch-bound, worth it for many entries, not for a few
CF_REACH_BULK = 3000.0
CF_BULK = 4096
# per-sample shapes: the Lentz pass (~15 ms, launch-bound, up to thousands of entries) only
# for at least this many entries; fewer cost the integral ~10 us each (n = 2000 A/B)
CF_MIN = 1024
# one (a, b) for all samples: the fraction bottom-up with shared coefficients, cheap enough
# for every comparable entry past the series up to CF_REACH_BULK (levels doubled up to this
# many for an entry that has not settled, else the integral)
CF_SHARED_LEVELS = 2048


def _cf_update(rows, aa, aa_a, aa_b, tmp) -> None:
    """One modified-Lentz step with coefficient ``aa`` (and its shape derivatives):
    ``d <- 1 / (1 + aa d)``, ``c <- 1 + aa / c``, ``F *= c d``, ``S += d'/d + c'/c``."""
    _, _, _, c, d, dc_a, dc_b, dd_a, dd_b, f, s_a, s_b, dev, g_a, g_b, _, _ = rows
    inv_c = torch.reciprocal(c, out=tmp[0])
    d_new = torch.addcmul(torch.ones_like(d), aa, d).reciprocal_()
    # dd'/d' = -d' (aa' d + aa dd); dc' = (aa' - aa dc / c) / c
    for dd, dc, daa, g in ((dd_a, dc_a, aa_a, g_a), (dd_b, dc_b, aa_b, g_b)):
        ratio = torch.addcmul(daa * d, aa, dd).mul_(d_new).neg_()
        dd.copy_(ratio * d_new)
        dc.copy_(torch.addcmul(daa, aa * dc, inv_c, value=-1.0).mul_(inv_c))
        g.copy_(ratio)
    c.copy_(torch.addcmul(torch.ones_like(c), aa, inv_c))
    d.copy_(d_new)
    g_a.add_(dc_a / c), g_b.add_(dc_b / c)
    delta = d * c
    f.mul_(delta), s_a.add_(g_a), s_b.add_(g_b)
    torch.sub(delta, 1.0, out=dev).abs_()


def _cf(x, a, b, k_a, k_b, tol: float, runner: SeriesRunner) -> torch.Tensor:
    """``(F, F'_a/F, F'_b/F, |last delta - 1|, last g_a, last g_b)`` (rows) of the continued
    fraction ``I_x(a, b) = x^a y^b / (a B(a, b)) F`` (Numerical Recipes' ``betacf``):
    ``d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m))``, ``d_{2m+1} = -(a + m)(a + b + m) x /
    ((a + 2m)(a + 2m + 1))``. ``k_a, k_b``: the prefactor's log-derivatives, the scale the
    convergence test measures the derivative sums against."""
    state = runner.state(x.numel())
    rows = state.unbind()
    rows[0].copy_(x), rows[1].copy_(a), rows[2].copy_(b), rows[15].copy_(k_a), rows[16].copy_(k_b)
    aa = -(a + b) * x / (a + 1)  # d_1: the first step from c = 1, d = 1
    rows[3].fill_(1.0), rows[4].copy_(1 / (1 + aa))
    state[5:7].zero_()
    d = rows[4]
    ratio_a = -(aa * (1 / (a + b) - 1 / (a + 1))) * d  # d'/d
    ratio_b = -(aa / (a + b)) * d
    rows[7].copy_(ratio_a * d), rows[8].copy_(ratio_b * d)
    rows[9].copy_(d), rows[10].copy_(ratio_a), rows[11].copy_(ratio_b)
    state[12:15].fill_(1.0)

    def step(rows, state, m, tmp):
        xs, ra, rb = rows[0], rows[1], rows[2]
        e1, e2 = ra + (2 * m - 1), ra + 2 * m
        den = e1 * e2
        aa = (rb - m).mul_(xs).mul_(m).div_(den)
        _cf_update(rows, aa, -aa * (1 / e1 + 1 / e2), xs * m / den, tmp)
        o1, o2 = e2, ra + (2 * m + 1)
        am, abm = ra + m, ra + rb + m
        aa = -(am * abm * xs) / (o1 * o2)
        _cf_update(rows, aa, aa * (1 / am + 1 / abm - 1 / o1 - 1 / o2), aa / abm, tmp)

    def done(rows, tmp, out):
        return out.copy_(_settled(*(rows[i] for i in (10, 11, 12, 13, 14, 15, 16)), tol))

    return runner.run(x.numel(), step, done, _CF_TERMS)


def _settled(s_a, s_b, dev, g_a, g_b, k_a, k_b, tol: float) -> torch.Tensor:
    """Converged: the last factor within an ulp of 1 and the last derivative steps below
    ``tol`` of what they add to (``k + S``)."""
    ok = dev <= max(tol, 2.0 ** -51)
    ok &= g_a.abs() <= tol * (s_a + k_a).abs()
    return ok.logical_and_(g_b.abs() <= tol * (s_b + k_b).abs())


def _coefficients(a: float, b: float, levels: int, like: torch.Tensor) -> torch.Tensor:
    """``(3, levels)``: ``gamma_i`` and its ``a``-, ``b``-derivatives, ``d_i = x gamma_i``
    the partial numerators of :func:`_cf` (``d_1 = -(a + b) x / (a + 1)``, then ``d_{2m}``,
    ``d_{2m+1}``) for one shared ``(a, b)``."""
    f64 = {"dtype": like.dtype, "device": like.device}
    m = torch.arange(1, levels // 2 + 2, **f64)
    e1, e2, o2 = a + 2 * m - 1, a + 2 * m, a + 2 * m + 1
    even = m * (b - m) / (e1 * e2)
    odd = -(a + m) * (a + b + m) / (e2 * o2)
    g = torch.stack([torch.stack([even, -even * (1 / e1 + 1 / e2), m / (e1 * e2)]),
                     torch.stack([odd, odd * (1 / (a + m) + 1 / (a + b + m) - 1 / e2 - 1 / o2),
                                  odd / (a + b + m)])], -1).reshape(3, -1)  # d_2, d_3, ...
    first = torch.tensor([-(a + b) / (a + 1), -1 / (a + 1) + (a + b) / (a + 1) ** 2,
                          -1 / (a + 1)], **f64)[:, None]
    return torch.cat([first, g], 1)[:, :levels]


def _cf_shared(x: torch.Tensor, a: float, b: float, tol: float, levels: int | None = None
               ) -> torch.Tensor:
    """``(F, F'_a / F, F'_b / F, settled)`` of :func:`_cf`'s fraction for one shared
    ``(a, b)``, evaluated bottom-up, ``f_i = 1 + d_i / f_{i+1}`` from ``f_{N+1} = 1``, with
    the derivatives ``f_i' = (d_i' - d_i f_{i+1}' / f_{i+1}) / f_{i+1}``: a few kernels a
    level, no per-entry coefficients. ``settled``: the truncation's effect on ``f_1``,
    ``|prod_i d_i / f_{i+1}^2| |d_{N+1}|``, below ``tol / 1e3`` of ``f_1``. ``N = 32 + 4
    sqrt(max(a, b))`` levels (every entry of its domain settles within it from shapes 2 to
    1e4), doubled, up to ``CF_SHARED_LEVELS``, for entries that do not."""
    levels = levels or -(-int(32 + 4 * math.sqrt(max(a, b))) // 8) * 8
    out = _cf_levels(x, a, b, tol, levels)
    if levels < CF_SHARED_LEVELS and not bool(out[3].all()):
        idx = (out[3] == 0).nonzero().squeeze(1)
        out.index_copy_(1, idx, _cf_shared(x.index_select(0, idx), a, b, tol, 2 * levels))
    return out


def _cf_levels(x: torch.Tensor, a: float, b: float, tol: float, levels: int) -> torch.Tensor:
    """:func:`_cf_shared` at a fixed depth."""
    coef = _coefficients(a, b, levels + 1, x)
    f = torch.ones_like(x)
    grads = torch.zeros((2,) + x.shape, dtype=x.dtype, device=x.device)
    sens = torch.ones_like(x)
    for i in range(levels - 1, -1, -1):
        r = f.reciprocal()
        t = (x * float(coef[0, i])).mul_(r)  # d_i / f_{i+1}
        grads = torch.addcmul(x * coef[1:, i, None], t, grads, value=-1.0).mul_(r)
        sens.mul_(t).mul_(r)
        f = t.add_(1.0)
    tail = sens.abs_().mul_(x * abs(float(coef[0, levels])))
    settled = tail <= (tol * 1e-3) * f.abs()
    r = f.reciprocal()
    return torch.stack([r, -grads[0] * r, -grads[1] * r, settled.to(x.dtype)])


def _by_orientation(fn, v: torch.Tensor, mirror: torch.Tensor, shared: tuple[float, float],
                    tol: float) -> torch.Tensor:
    """``fn(v, p, q, tol)`` (4 rows) for the entries of each orientation: ``(p, q) = (a, b)``
    where not ``mirror``, ``(b, a)`` where it is (one pass each)."""
    out = torch.empty((4,) + v.shape, dtype=v.dtype, device=v.device)
    for flip, (p, q) in ((False, shared), (True, shared[::-1])):
        idx = (mirror == flip).nonzero().squeeze(1)
        if idx.numel():
            out.index_copy_(1, idx, fn(v.index_select(0, idx), p, q, tol))
    return out


def _by_fraction(lx, ly, a, b, tol: float, shared: tuple[float, float] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dx/da, dx/db, settled)`` by the continued fraction on its side of the mean (for
    one shared ``(a, b)`` bottom-up, one pass per orientation)."""
    mirror = torch.exp(lx) > (a + 1) / (a + b + 2)
    lx, ly, a, b = (torch.where(mirror, v, u) for u, v in ((lx, ly), (ly, lx), (a, b), (b, a)))
    psi_ab = torch.digamma(a + b)
    k_a = lx - torch.digamma(a) + psi_ab - 1 / a
    k_b = ly - torch.digamma(b) + psi_ab
    if shared is None:
        runner = SeriesRunner(_CF_ROWS, slice(9, 15), lx.numel(), lx.device)
        f, s_a, s_b, dev, g_a, g_b = _cf(torch.exp(lx), a, b, k_a, k_b, tol, runner).unbind()
        settled = _settled(s_a, s_b, dev, g_a, g_b, k_a, k_b, tol)
    else:
        f, s_a, s_b, settled = _by_orientation(_cf_shared, torch.exp(lx), mirror, shared,
                                               tol).unbind()
        settled = settled > 0
    cancel = torch.maximum((k_a.abs() + s_a.abs()) / (k_a + s_a).abs(),
                           (k_b.abs() + s_b.abs()) / (k_b + s_b).abs())
    settled &= cancel <= CANCEL_LIMIT
    scale = -torch.exp(lx + ly) / a * f
    d1, d2 = scale * (k_a + s_a), scale * (k_b + s_b)
    return torch.where(mirror, -d2, d1), torch.where(mirror, -d1, d2), settled


def _sums(lx, a, b, mirror, tol: float, runner: SeriesRunner,
          shared: tuple[float, float] | None) -> tuple[torch.Tensor, ...]:
    """``(F, F_a, F_b)`` of the (mirrored) entries: term by term, or for shared shapes as
    polynomials, one pass per orientation (unconverged entries term by term)."""
    if shared is None:
        return _series(lx, a, b, tol, runner).unbind()
    out = _by_orientation(_series_shared, lx, mirror, shared, tol)
    f, fa, fb, ok = out.unbind()
    if not bool(ok.all()):
        idx = (ok == 0).nonzero().squeeze(1)
        redo = _series(lx.index_select(0, idx), a.index_select(0, idx), b.index_select(0, idx),
                       tol, runner)
        out[:3].index_copy_(1, idx, redo)
    return f, fa, fb


def _block(lx, ly, a, b, tol: float, runner: SeriesRunner,
           shared: tuple[float, float] | None = None):
    """The series on one flat float64 block: ``(dx/da, dx/db, entries left to the integral)``.

    ``dx/da = -(x y / a) (F c_a + F_a)``, ``c_a = log x - psi(a) + psi(a+b) - 1/a``,
    ``dx/db = -(x y / a) (F c_b + F_b)``, ``c_b = log y - psi(b) + psi(a+b)``; for
    ``x > 1/2`` those of ``y ~ Beta(b, a)``, with ``dx = -dy``. ``shared``: the one
    ``(a, b)`` of every entry, if so (then the series is summed as polynomials).
    """
    mirror = lx > ly
    lx, ly, a, b = (torch.where(mirror, v, u) for u, v in ((lx, ly), (ly, lx), (a, b), (b, a)))
    inner = (lx + ly) > -745.2  # x y > 0: a sample rounded to 0 or 1 has gradient 0
    series = inner & (torch.exp(lx) * (a + b) <= SERIES_REACH)
    da, db = torch.zeros_like(lx), torch.zeros_like(lx)
    if bool(series.all()):
        sel, good = None, series
        s_lx, s_ly, s_a, s_b = lx, ly, a, b
    else:
        sel, good = series.nonzero().squeeze(1), torch.zeros_like(series)
        s_lx, s_ly, s_a, s_b = (v.index_select(0, sel) for v in (lx, ly, a, b))
    if s_lx.numel():
        f, fa, fb = _sums(s_lx, s_a, s_b, mirror if sel is None else mirror.index_select(0, sel),
                          tol, runner, shared)
        psi_ab = torch.digamma(s_a + s_b)
        lead_a = f * (s_lx - torch.digamma(s_a) + psi_ab - 1 / s_a)
        lead_b = f * (s_ly - torch.digamma(s_b) + psi_ab)
        scale = -torch.exp(s_lx + s_ly) / s_a
        d1, d2 = scale * (lead_a + fa), scale * (lead_b + fb)
        cancel = torch.maximum((lead_a.abs() + fa.abs()) / (lead_a + fa).abs(),
                               (lead_b.abs() + fb.abs()) / (lead_b + fb).abs())
        ok = cancel <= CANCEL_LIMIT
        if sel is None:
            da, db, good = d1, d2, ok
        else:
            da.index_copy_(0, sel, d1), db.index_copy_(0, sel, d2)
            good.index_fill_(0, sel.masked_select(ok), True)
    da, db = torch.where(mirror, -db, da), torch.where(mirror, -da, db)
    return da, db, inner & ~good


def _fraction_entries(flat, rest, shared) -> torch.Tensor:
    """The entries left by the series that the continued fraction takes: comparable shapes
    past the series' reach, up to ``CF_REACH`` (``CF_REACH_BULK`` for at least ``CF_BULK``
    such entries, or for shared shapes); per-sample, only for at least ``CF_MIN`` entries (a
    launch-bound pass for a few costs more than the integral, running anyway, takes)."""
    m = torch.minimum(flat[0], flat[1]).exp() * (flat[2] + flat[3])
    lo, hi = torch.minimum(flat[2], flat[3]), torch.maximum(flat[2], flat[3])
    comparable = rest & (hi <= CF_RATIO * lo) & (m > SERIES_REACH)
    if shared is not None:
        return comparable & (m <= CF_REACH_BULK)
    near = comparable & (m <= CF_REACH)
    bulk = comparable & (m > CF_REACH) & (m <= CF_REACH_BULK)
    if int(bulk.sum()) >= CF_BULK:
        near |= bulk
    return near if int(near.sum()) >= CF_MIN else torch.zeros_like(near)


def _by_integral(lx, ly, ra, rb) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dx/da, dx/db)`` by quadrature: one pass per side and node group, both scores
    sharing ``exp(L)``, each integrated on the side of ``x`` where it keeps its sign."""
    psi_ab = torch.digamma(ra + rb)
    upper_a = lx >= torch.digamma(ra) - psi_ab  # s_a >= 0 on [x, 1]
    upper_b = ly <= torch.digamma(rb) - psi_ab  # s_b <= 0 on [x, 1]
    xy = torch.exp(lx + ly)
    outs = (torch.zeros_like(lx), torch.zeros_like(lx))
    smooth = torch.minimum(ra, rb) >= 1.0  # no boundary layer: NODES_SMOOTH a panel
    for side, (group, nodes) in product((True, False), ((smooth, NODES_SMOOTH), (~smooth, None))):
        need_a = (upper_a if side else ~upper_a) & group
        need_b = (upper_b if side else ~upper_b) & group
        m = need_a | need_b
        if not m.any():
            continue
        ja, jb = _side(lx[m], ly[m], ra[m], rb[m], side, nodes)
        scale = xy[m] if side else -xy[m]
        for out, need, j in ((outs[0], need_a, ja), (outs[1], need_b, jb)):
            out[need] = (scale * j)[need[m]]
    return outs


def beta_dx_dab(log_x: torch.Tensor, log_y: torch.Tensor, a: torch.Tensor,
                b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dx/da, dx/db)`` for ``x ~ Beta(a, b)`` given ``log x`` and ``log(1 - x)``.

    ``dx/dtheta = -x y int_{-inf}^{u_x} s exp(L) du = x y int_{u_x}^{inf} s exp(L) du``;
    the series in blocks of ``BLOCK`` entries, the continued fraction for the entries it
    serves, then one integral pass for the rest. The result is a constant for autograd
    (double backward treats ``dx/dtheta`` as fixed).
    """
    shared = (float(a), float(b)) if a.numel() == 1 and b.numel() == 1 else None
    log_x, log_y, a, b = torch.broadcast_tensors(*(t.detach() for t in (log_x, log_y, a, b)))
    tol = _TOL.get(log_x.dtype, 2.0 ** -55)
    flat = [t.reshape(-1) for t in (log_x, log_y, a, b)]
    da, db = torch.empty_like(flat[0]), torch.empty_like(flat[0])
    rest = torch.empty(da.shape, dtype=torch.bool, device=da.device)
    step = BLOCK if torch.get_num_threads() == 1 else BLOCK_PARALLEL
    size = min(step, da.numel())
    runner = SeriesRunner(9, slice(6, 9), size, da.device)
    bufs = [torch.empty(size, dtype=torch.float64, device=da.device) for _ in flat]
    for i in range(0, da.numel(), step):
        j = slice(i, i + step)
        block = (buf[: t[j].numel()].copy_(t[j]) for buf, t in zip(bufs, flat, strict=True))
        da[j], db[j], rest[j] = _block(*block, tol, runner, shared)
    near = _fraction_entries(flat, rest, shared)
    if bool(near.any()):
        for sel in near.nonzero().squeeze(1).split(step):  # blocks bound the 17-row state
            d1, d2, ok = _by_fraction(*(t.index_select(0, sel).double() for t in flat), tol,
                                      shared)
            da.index_copy_(0, sel, d1.to(da.dtype)), db.index_copy_(0, sel, d2.to(db.dtype))
            rest.index_fill_(0, sel.masked_select(ok), False)
    if bool(rest.any()):
        idx = rest.nonzero().squeeze(1)
        d1, d2 = _by_integral(*(t.index_select(0, idx).double() for t in flat))
        da.index_copy_(0, idx, d1.to(da.dtype)), db.index_copy_(0, idx, d2.to(db.dtype))
    return da.view(log_x.shape), db.view(log_x.shape)

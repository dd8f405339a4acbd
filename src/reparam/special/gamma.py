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
- in the upper tail ``x > a + 1`` (the far tail of small shapes, where the series cancels):
  Legendre's continued fraction ``Q(a, x) = x^a e^-x / Gamma(a) G``,
  ``G = 1 / (x + 1 - a - 1 (1 - a) / (x + 3 - a - 2 (2 - a) / ...))`` (modified Lentz),
  differentiated in ``a`` along its recurrence: ``d log x / da = G (log x - psi(a) + G'/G)``,
  both terms positive (no cancellation), a few dozen steps;
- otherwise the integral ``dP/da = int (log t - psi(a)) p(t) dt`` over the side of ``x`` on
  which ``log t - psi(a)`` keeps one sign (below ``exp(psi(a))``: ``[0, x]``; above:
  ``[x, inf)``), in ``v = |log(t / x)|`` with the density ratio
  ``exp(L(v))``, ``L = -+ a v - x expm1(-+ v)``, by :func:`peak_integral`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

import torch

from .gamma_uniform import MIN_SHAPE, MIN_SHARED_SHAPE, gamma_dlogx_da_uniform, horner, uniform_domain
from .quadrature import peak_integral
from .series import SeriesRunner

SERIES_MAX_SHAPE = 30.0
SERIES_REACH = 40.0  # the series also serves x < a + 40 ...
CANCEL_LIMIT = 1e4  # ... where its cancellation costs < 4 digits (1%..99.99% quantiles)
_SERIES_TERMS = 400
BLOCK = 1 << 16  # elements per pass: the working set of the series stays in cache
# (terms, entries) values per pass of the all-terms series: under torch's parallel grain
# (32768), so no pass opens a parallel region (each one stalls when another process is busy)
DENSE_VALUES = 32000
UNIFORM_BLOCK = 1 << 14  # entries per pass of the expansion on one thread ...
UNIFORM_BLOCK_PARALLEL = 1536  # ... and with several: its (20, block) rows under the grain
# truncation error allowed per term sum: below double rounding, or for float32 results
# 1e-12 (times the cancellation, <= 1e4, still 600x under float32 rounding)
COLUMNS = 16  # a parameter of up to this many shapes broadcast over samples ...
COLUMN_ROWS = 4096  # ... each for at least this many (a pass costs ~0.5 ms): one pass per shape
_TOL = {torch.float64: 2.0 ** -55, torch.float32: 1e-12, torch.float16: 1e-12,
        torch.bfloat16: 1e-12}


def _series(x: torch.Tensor, a: torch.Tensor, tol: float, runner: SeriesRunner):
    """``(S, S')`` of the series with ``q_n = x / (a + n)``: ``t_n = t_{n-1} q_n``,
    ``G_n = x H_n = sum_{k<=n} q_k``, ``S' = -sum t_n G_n / x`` (5 in-place kernels a term);
    converged once ``t_n (1 + H_n) <= tol S``."""
    state = runner.state(x.numel())  # rows: x, a + n, t_n, G_n, S, -x S'
    state[0].copy_(x), state[1].copy_(a), state[2].fill_(1.0), state[3].zero_()
    state[4].fill_(1.0), state[5].zero_()

    def step(rows, state, n, tmp):
        xs, d, term, g, s, ds = rows
        q = torch.div(xs, d.add_(1.0), out=tmp[0])
        g.add_(q), term.mul_(q), s.add_(term), ds.addcmul_(term, g)

    def done(rows, tmp, out):
        xs, _, term, g, s, _ = rows
        return torch.le(torch.add(xs, g, out=tmp[1]).mul_(term),
                        torch.mul(xs, s, out=tmp[2]).mul_(tol), out=out)

    s, ds = runner.run(x.numel(), step, done, _SERIES_TERMS).unbind()
    return s, ds / -x.clamp_min(torch.finfo(x.dtype).tiny)  # x = 0: S' = 0


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


_CF_STEPS = 400
_CF_CHECK = 4


def _upper_cf(x: torch.Tensor, a: torch.Tensor, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d log x / da, converged)`` from the continued fraction of ``Q(a, x)`` (module
    docstring), for ``x > a + 1``. Lentz: ``D <- 1 / (b_i + a_i D)``, ``C <- b_i + a_i / C``,
    ``G *= C D`` with ``a_i = -i (i - a)``, ``b_i = x + 2 i + 1 - a``; the ``a``-derivatives
    ``D', C'`` follow the same recurrences and ``G'/G = sum (D'/D + C'/C)``."""
    b = x + 1.0 - a
    d = 1.0 / b
    dd = d * d  # db/da = -1
    c, dc = torch.full_like(x, 1e300), torch.zeros_like(x)
    g_log, ok = d.clone(), torch.zeros(x.shape, dtype=torch.bool, device=x.device)
    h = d.clone()
    delta_tol = max(tol, 2.0 ** -51)
    for i in range(1, _CF_STEPS + 1):
        an = (a - i).mul_(i)
        b = b.add_(2.0)
        u = torch.addcmul(b, an, d)
        du = torch.addcmul(d * i - 1.0, an, dd)
        d = u.reciprocal_()
        dd = (du * d).mul_(d).neg_()
        dc = (an * dc).div_(c).div_(c).neg_().add_(i / c).sub_(1.0)
        c = (an / c).add_(b)
        delta = d * c
        step = dd / d + dc / c
        h.mul_(delta), g_log.add_(step)
        if i % _CF_CHECK == 0:
            ok = ((delta - 1).abs_() <= delta_tol) & (step.abs() <= tol * g_log.abs())
            if bool(ok.all()):
                break
    return h * (torch.log(x) - torch.digamma(a) + g_log), ok


def _series_dense(x: torch.Tensor, a: torch.Tensor, tol: float, need: float | None = None):
    """``(S, S', converged)`` with all terms at once: ``q`` is an ``(m, terms)`` tensor,
    ``t_n = cumprod q``, ``G_n = cumsum q`` (a handful of large kernels instead of five a
    term). ``terms = max(x - a, 0) + sqrt(90 x) + 12`` over the block (past the peak the terms
    fall like ``exp(-d^2 / 2x)``, below ``e^-45`` there); entries not converged by then are
    flagged for the term-by-term runner. ``need``: that maximum without the 12, if known."""
    if need is None:
        need = float(((x - a).clamp_min(0.0) + torch.sqrt(90.0 * x)).max())
    terms = _terms(need + 12.0)
    k = torch.arange(1, terms + 1, dtype=x.dtype, device=x.device)
    step = max(1, DENSE_VALUES // terms)
    if x.numel() <= step:  # one pass (small calls: no buffers, fewer kernels)
        q = x[:, None] / (a[:, None] + k)
        g = q.cumsum(1)
        t = q.cumprod_(1)
        s, ds = t.sum(1).add_(1.0), torch.linalg.vecdot(t, g, dim=1)
        ok = torch.le(g[:, -1].add_(x).mul_(t[:, -1]), x * s * tol)
        return s, ds.div_(x.clamp_min(torch.finfo(x.dtype).tiny)).neg_(), ok
    s, ds = torch.empty_like(x), torch.empty_like(x)
    ok = torch.empty(x.shape, dtype=torch.bool, device=x.device)
    for i in range(0, x.numel(), step):
        j = slice(i, i + step)
        xs = x[j]
        q = xs[:, None] / (a[j][:, None] + k)  # (entries, terms): the scans run along rows
        g = q.cumsum(1)
        t = q.cumprod_(1)
        torch.sum(t, 1, out=s[j]).add_(1.0)
        torch.linalg.vecdot(t, g, dim=1, out=ds[j])
        torch.le((xs + g[:, -1]) * t[:, -1], xs * s[j] * tol, out=ok[j])
    return s, ds / -x.clamp_min(torch.finfo(x.dtype).tiny), ok


def _series_shared(x: torch.Tensor, a: float, tol: float):
    """``(S, S', converged)`` for one shape ``a`` shared by all entries: ``t_n = C_n x^n``
    with ``C_n = prod_{k<=n} 1 / (a + k)``, so ``S = sum C_n x^n`` and ``-S' = sum C_n H_n
    x^n`` are two polynomials in ``x`` with positive coefficients (no cancellation): one
    Horner pass, a kernel a degree, for as many terms as the largest entry needs."""
    x_max = float(x.max())
    terms = _terms(max(x_max - a, 0.0) + math.sqrt(90.0 * x_max) + 12.0)
    inv = 1.0 / (a + torch.arange(1, terms + 1, dtype=x.dtype, device=x.device))
    zero = torch.zeros(1, dtype=x.dtype, device=x.device)
    c = torch.cat([zero + 1.0, inv.cumprod(0)])  # C_0 .. C_T
    h = torch.cat([zero, inv.cumsum(0)])  # H_0 .. H_T
    s, neg_ds = horner(torch.stack([c, c * h]), x).unbind()
    # the last term against the sum: log C_T + T log x + log(1 + H_T) <= log(tol S)
    last = float(c[-1].log() + h[-1].log1p())
    ok = torch.le(x.log().mul_(terms).add_(last), s.log().add_(math.log(tol)))
    return s, neg_ds.neg_(), ok


def _terms(need: float) -> int:
    """Terms for a need, in multiples of 8, at most ``_SERIES_TERMS``."""
    return min(-(-int(need) // 8) * 8, _SERIES_TERMS)


def _block(log_x: torch.Tensor, a: torch.Tensor, tol: float,
           runner: Callable[[], SeriesRunner], shared: float | None = None):
    """The series on one flat float64 block: ``(d log x / da, entries left to the integral)``;
    ``runner()`` gives the term-by-term runner (made on first use); ``shared``: the one
    shape of every entry, if so."""
    x = torch.exp(log_x)
    psi1 = torch.digamma(a + 1.0)
    excess = x - a
    a_max, reach, need = torch.stack([a.max(), excess.max(), excess.clamp_min_(0.0).add_(
        torch.sqrt(90.0 * x)).max()]).tolist()
    if a_max <= SERIES_MAX_SHAPE and reach < SERIES_REACH:
        sel, out, rest = None, None, None  # the usual case: all by the series, no masks
        sx, slx, sa, spsi = x, log_x, a, psi1
    else:
        series = (a <= SERIES_MAX_SHAPE) & ((log_x < psi1) | (x < a + SERIES_REACH))
        sel, out, rest = series.nonzero().squeeze(1), torch.zeros_like(x), torch.ones_like(series)
        sx, slx, sa, spsi = (t.index_select(0, sel) for t in (x, log_x, a, psi1))
    if sx.numel():
        s, ds, ok = _series_dense(sx, sa, tol, need if sel is None else None) \
            if shared is None else _series_shared(sx, shared, tol)
        if not bool(ok.all()):  # rare (T capped): those entries term by term
            idx = ok.logical_not_().nonzero().squeeze(1)
            s2, ds2 = _series(sx.index_select(0, idx), sa.index_select(0, idx), tol, runner())
            s.index_copy_(0, idx, s2), ds.index_copy_(0, idx, ds2)
        lead = torch.sub(slx, spsi).mul_(s)
        total = lead + ds
        # past exp(psi(a+1)) the two terms of the series cancel; keep it while <= 1e4x
        bad = torch.gt(lead.abs_(), total.abs().mul_(CANCEL_LIMIT))
        value = total.div_(sa).neg_()
        if sel is None:
            out, rest = value, bad
        else:
            out.index_copy_(0, sel, value)
            rest.index_fill_(0, sel.masked_select(~bad), False)
    return out, rest


def _columns(shape: torch.Size, a: torch.Tensor) -> bool:
    """``a`` of at most ``COLUMNS`` entries broadcast over leading sample dimensions, each
    shared by at least ``COLUMN_ROWS`` samples: then one shared-shape pass per entry."""
    count = a.numel()
    if not 1 < count <= COLUMNS or a.dim() > len(shape):
        return False
    return tuple(shape[len(shape) - a.dim():]) == tuple(a.shape) and \
        math.prod(shape) >= COLUMN_ROWS * count


def _broadcast(first: torch.Size, second: torch.Size) -> torch.Size:
    """``torch.broadcast_shapes`` of two shapes (torch's runs ~50 us of Python a call)."""
    if first == second:
        return first
    width = max(len(first), len(second))
    dims = []
    for p, q in zip((1,) * (width - len(first)) + tuple(first),
                    (1,) * (width - len(second)) + tuple(second), strict=True):
        if p != q and 1 not in (p, q):
            raise RuntimeError(f"shapes {tuple(first)} and {tuple(second)} do not broadcast")
        dims.append(q if p == 1 else p)
    return torch.Size(dims)


def gamma_dlogx_da(log_x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``d log x / da`` for ``x ~ Gamma(a, 1)`` at ``x = exp(log_x)`` (broadcast, float64
    inside): Temme's uniform expansion where it serves (``a >= 30``, or ``a >= 6`` for a
    scalar ``a`` shared by all samples, which pays its ``a``-sums once; see
    :mod:`reparam.special.gamma_uniform`), else the series or the integral (float32 results sum the series to
    1e-12). The result is a constant for autograd, so double backward treats ``dz/dtheta``
    as fixed."""
    log_x, a = log_x.detach(), a.detach()
    shared = a.numel() == 1
    shape = _broadcast(log_x.shape, a.shape)
    if _columns(shape, a):  # a few shapes, each shared by a column of samples (a Dirichlet)
        cols = log_x.expand(shape).reshape(-1, a.numel())
        out = torch.empty(cols.shape, dtype=log_x.dtype, device=log_x.device)
        for j, a_j in enumerate(a.reshape(-1)):
            out[:, j] = gamma_dlogx_da(cols[:, j], a_j)
        return out.view(shape)
    tol = _TOL.get(log_x.dtype, 2.0 ** -55)
    flat_lx = log_x.double().expand(shape).reshape(-1)
    flat_a = a.double().reshape(1) if shared else a.double().expand(shape).reshape(-1)
    if flat_lx.numel() == 0:
        return torch.empty(shape, dtype=log_x.dtype, device=log_x.device)
    min_shape = MIN_SHARED_SHAPE if shared else MIN_SHAPE
    one = float(flat_a) if shared else None
    if float(flat_a.max()) < min_shape:  # no entry for the expansion: no masks
        a_all = flat_a.expand(flat_lx.shape)
        return _dlogx_da_exact(flat_lx, a_all, tol, one).to(log_x.dtype).view(shape)
    out = torch.empty_like(flat_lx)
    uni = uniform_domain(flat_lx, flat_a, shared)
    a_all = flat_a.expand(flat_lx.shape)
    if bool(uni.all()):
        idx_u, idx_r = None, None
    else:
        idx_u, idx_r = uni.nonzero().squeeze(1), (~uni).nonzero().squeeze(1)
    block = UNIFORM_BLOCK if torch.get_num_threads() == 1 else UNIFORM_BLOCK_PARALLEL
    for i in range(0, flat_lx.numel() if idx_u is None else idx_u.numel(), block):
        j = slice(i, i + block)
        if idx_u is None:
            lx, ra = flat_lx[j], flat_a if shared else flat_a[j]
            out[j] = gamma_dlogx_da_uniform(lx, ra, log_x.dtype)
        else:
            sel = idx_u[j]
            ra = flat_a if shared else flat_a.index_select(0, sel)
            out.index_copy_(0, sel, gamma_dlogx_da_uniform(flat_lx.index_select(0, sel), ra,
                                                                log_x.dtype))
    if idx_r is not None and idx_r.numel():
        rest = _dlogx_da_exact(flat_lx.index_select(0, idx_r), a_all.index_select(0, idx_r), tol,
                               one)
        out.index_copy_(0, idx_r, rest)
    return out.to(log_x.dtype).view(shape)


def _dlogx_da_exact(log_x: torch.Tensor, a: torch.Tensor, tol: float,
                    shared: float | None = None) -> torch.Tensor:
    """The series in blocks of ``BLOCK`` entries, the continued fraction for what is left
    above ``a + 1``, then one integral pass for the rest (flat tensors of one length;
    ``shared``: the one shape of all entries, if so)."""
    flat_lx, flat_a = log_x.reshape(-1), a.reshape(-1)
    size = min(BLOCK, flat_lx.numel())
    runner = cache(lambda: SeriesRunner(6, slice(4, 6), size, flat_lx.device))  # if needed
    if flat_lx.numel() <= BLOCK:  # one block: no buffers
        out, rest = _block(flat_lx, flat_a, tol, runner, shared)
    else:
        out = torch.empty_like(flat_lx)
        rest = torch.empty(out.shape, dtype=torch.bool, device=out.device)
        lx_buf, a_buf = (torch.empty(size, dtype=torch.float64, device=out.device) for _ in "12")
        for i in range(0, out.numel(), BLOCK):
            j = slice(i, i + BLOCK)
            lx, ra = lx_buf[: flat_lx[j].numel()].copy_(flat_lx[j]), a_buf[: flat_a[j].numel()]
            out[j], rest[j] = _block(lx, ra.copy_(flat_a[j]), tol, runner, shared)
    if not bool(rest.any()):  # the usual case: all by the series
        return out
    tail = rest & (flat_lx > torch.log1p(flat_a.double()))  # x > a + 1: the continued fraction
    if bool(tail.any()):
        idx = tail.nonzero().squeeze(1)
        value, ok = _upper_cf(torch.exp(flat_lx.index_select(0, idx).double()),
                              flat_a.index_select(0, idx).double(), tol)
        out.index_copy_(0, idx, value.to(out.dtype))
        rest.index_fill_(0, idx.masked_select(ok), False)
    if bool(rest.any()):
        idx = rest.nonzero().squeeze(1)
        lx, ra = flat_lx.index_select(0, idx).double(), flat_a.index_select(0, idx).double()
        upper = lx >= torch.digamma(ra)
        value = torch.empty_like(lx)
        for mask, is_upper in ((~upper, False), (upper, True)):
            if mask.any():
                value[mask] = _integral(torch.exp(lx[mask]), lx[mask], ra[mask], is_upper)
        out.index_copy_(0, idx, value.to(out.dtype))
    return out

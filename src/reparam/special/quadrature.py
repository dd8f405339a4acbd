"""Gauss-Legendre quadrature of one-sided, peaked integrands (the engine of implicit gradients).

Every implicit derivative here is ``J = int_0^inf s(v) exp(L(v)) dv`` with ``L(0) = 0``,
``exp(L)`` the density ratio ``p(t) / p(z)`` in a variable ``v`` chosen so the integrand
is smooth, and ``s`` the score of the parameter, of one sign on the side integrated (so no
cancellation). :func:`peak_integral` finds, by safeguarded Newton steps on ``L``, where
``L`` has fallen by 1, 2.5, 6, 12, 24 and ``DROP`` nats on both sides of the peak ``v_m``,
and applies 16-point Gauss-Legendre on the panels between the union of these points and
geometric fractions of the full reach (the first panel also split toward the peak): this
resolves boundary layers, Gaussian peaks, shoulders and double-exponential cliffs alike.
All nodes of all panels are evaluated in one call (at most ``_EVALS`` values at a time).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import torch

DROP = 46.0  # exp(-46) ~ 1e-20: the truncated tail is below double rounding
_NODES = 16
_DROPS = (1.0, 2.5, 6.0, 12.0, 24.0, DROP)  # panel ends: where L has fallen by this much from the peak
_INNER = (0.0, 1 / 64, 1 / 8, 1.0)  # the first panel, split geometrically toward the peak
_GEOMETRIC = (1 / 64, 1 / 8)  # plus fractions of the full reach (slow tails)
_EVALS = 32000  # integrand values per evaluation: in cache, under torch's parallel grain


@cache
def gauss_legendre(dtype: torch.dtype, device: str, nodes: int = _NODES
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes / weights on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    t = torch.tensor((x + 1) / 2, dtype=torch.float64)
    u = torch.tensor(w / 2, dtype=torch.float64)
    return t.to(dtype=dtype, device=device), u.to(dtype=dtype, device=device)


def _reach(L: Callable, dL: Callable, v_m: torch.Tensor, sign: torch.Tensor, limit: torch.Tensor,
           guess: torch.Tensor, drop: float | torch.Tensor = DROP, top: torch.Tensor | None = None,
           steps: int = 10, margin: float = 1.25) -> torch.Tensor:
    """Distance ``D`` from the peak where ``L(v_m + sign D) = L(v_m) - drop`` (capped at
    ``limit``); ``sign``, ``limit``, ``guess`` and ``drop`` broadcast (several reaches at once).

    Safeguarded Newton on ``g(D) = L - top + drop`` (positive at the peak, falling away from
    it): a bracket ``[lo, hi]`` with ``g(lo) > 0 >= g(hi)`` is kept, and a Newton step that
    leaves it is replaced by bisection (or, before an ``hi`` is known, by doubling), so no
    entry cycles. The result is the last iterate, unless it falls short of the drop by more
    than half a nat: then ``hi``, where the drop is surely reached."""
    top = L(v_m) if top is None else top
    d = torch.minimum(guess, limit).clamp_min(1e-300)
    lo, hi = torch.zeros_like(d), torch.full_like(d, float("inf"))
    for _ in range(steps):
        v = v_m + sign * d
        g = L(v) - top + drop
        above = g > 0
        lo, hi = torch.where(above, d, lo), torch.where(above, hi, d)
        slope = sign * dL(v)
        newton = d - g / slope
        inside = (slope < 0) & (newton > lo) & (newton < hi)  # (false for NaN)
        fallback = torch.where(torch.isinf(hi), 2 * d, (lo + hi) / 2)
        d = torch.minimum(torch.where(inside, newton, fallback), limit)
    g = L(v_m + sign * d) - top + drop  # d past the drop or within half a nat of it: d
    short = (g > 0.5) & (d < limit) & torch.isfinite(hi)
    return torch.minimum(torch.where(short, hi, d) * margin, limit)


def _side(integrand: Callable, v_m: torch.Tensor, sign: float, far: torch.Tensor,
          mids: torch.Tensor, rule: tuple[torch.Tensor, torch.Tensor], extra: bool
          ) -> list[torch.Tensor]:
    """Gauss-Legendre over the panels of one side: ends at the drops ``mids`` and ``far``,
    and if ``extra`` the first panel's fractions and geometric fractions of ``far`` (sorted
    union)."""
    nodes, weights = rule
    ends = list(mids.unbind()) + [far]
    if extra:
        ends += [mids[0] * f for f in _INNER[1:-1]] + [far * f for f in _GEOMETRIC]
    ends = torch.stack(ends).sort(dim=0).values
    lo = torch.cat([torch.zeros_like(far)[None], ends[:-1]])
    width = ends - lo
    # (panels, nodes) blocks of at most _EVALS integrand values per evaluation
    n_nodes = nodes.numel()
    fit = max(1, _EVALS // max(v_m.numel(), 1))
    group, per = (fit // n_nodes, n_nodes) if fit >= n_nodes else (1, fit)
    shape = (-1,) + (1,) * v_m.dim()
    total = None
    for k in range(0, ends.shape[0], group):
        start, w_k = lo[k:k + group, None], width[k:k + group, None]
        for j in range(0, n_nodes, per):
            t, w = nodes[j:j + per].view(shape), weights[j:j + per].view(shape)
            f = integrand(v_m + sign * (start + t * w_k))
            f = f if isinstance(f, tuple) else (f,)
            wts = w * w_k
            step = [(wts * fi).sum((0, 1)) for fi in f]
            total = step if total is None else [a + b for a, b in zip(total, step, strict=True)]
    return total


def peak_integral(integrand: Callable, L: Callable, dL: Callable, v_m: torch.Tensor,
                  guess: torch.Tensor, upper: torch.Tensor | None = None, nodes: int = _NODES,
                  extra_panels: bool = True) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """``int_0^upper integrand(v) dv`` for ``integrand = s exp(L)`` peaked at ``v_m``.

    ``L`` and ``dL`` give the log ratio and its derivative; ``guess`` is a rough width;
    ``upper`` (default infinity) bounds the domain; ``nodes`` Gauss-Legendre nodes a panel;
    ``extra_panels=False`` keeps only the panels between the drops (an integrand smooth
    enough that boundary layers and slow tails need no panels of their own).
    ``integrand`` may return a tuple of tensors (several scores sharing one ``exp(L)``); the
    result is then a tuple too. The Newton reaches of both sides and all drops run stacked
    (few kernels); a side of zero length everywhere (a monotone integrand) costs no panels.
    """
    upper = torch.full_like(v_m, float("inf")) if upper is None else upper
    rule = gauss_legendre(v_m.dtype, str(v_m.device), nodes)
    top = L(v_m)
    lead = (1,) * v_m.dim()
    signs = torch.tensor([1.0, -1.0], dtype=v_m.dtype, device=v_m.device).view((2,) + lead)
    limits = torch.stack(torch.broadcast_tensors(upper - v_m, v_m))
    far = _reach(L, dL, v_m, signs, limits, guess, top=top)  # (2,) + shape
    drops = torch.tensor(_DROPS[:-1], dtype=v_m.dtype, device=v_m.device).view((1, -1) + lead)
    mids = _reach(L, dL, v_m, signs[:, None], far[:, None], far[:, None] * (drops / DROP).sqrt(),
                  drop=drops, top=top, steps=4, margin=1.0)  # (2, drops) + shape
    total = None
    for i, sign in enumerate((1.0, -1.0)):
        if bool((far[i] > 0).any()):
            part = _side(integrand, v_m, sign, far[i], mids[i], rule, extra_panels)
            total = part if total is None else [a + b for a, b in zip(total, part, strict=True)]
    if total is None:
        probe = integrand(v_m)
        total = [torch.zeros_like(p) for p in (probe if isinstance(probe, tuple) else (probe,))]
    return total[0] if len(total) == 1 else tuple(total)

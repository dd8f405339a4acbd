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

import math

import torch

from .bessel import bessel_ratio
from .quadrature import gauss_legendre, peak_integral
from .student_t import _log_cosh

_SERIES_KAPPA = 0.5  # 2 kappa <= 1: the divided-difference series (26 terms: < 1e-17)
_SERIES_TERMS = 26
# Gauss-Legendre nodes a panel: 10 keep d >= 4 within 3e-11 of 30-digit quadrature; the
# circle (d = 2, weight (1 - w^2)^(-1/2)) needs the default 16; from d = 5 the panels
# between the drops alone keep 1e-11 of the chain (3000 samples each of d = 5 .. 1000,
# kappa = 1e-3 .. 1e4), not so at d = 4 (7e-9)
_NODES = 10
_LOG2 = math.log(2.0)
_CHUNK = 2048  # entries per quadrature pass (1.3x faster per sample at n = 2e4 than one pass)
SHARED_MIN = 64  # one kappa for at least this many samples: chain them (sorted) ...
CHAIN_STEP = 1.0  # ... across neighbours whose log densities differ by at most this much


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
    """``dw/dkappa`` for ``w = mu^T x``, ``x ~ vMF(mu, kappa)`` on the sphere in ``R^d``: the
    closed form on ``S^2``, chained between sorted samples for one ``kappa`` shared by many
    (:func:`vmf_dw_dkappa_shared`), else a quadrature per sample."""
    if d == 3:
        return vmf3_dw_dkappa(w, kappa)
    if kappa.numel() == 1 and w.numel() >= SHARED_MIN and d >= 4:
        return vmf_dw_dkappa_shared(w, kappa, d)
    return vmf_dw_dkappa_quadrature(w, kappa, d)


def _log_density(eta: torch.Tensor, kappa: float, d: int) -> torch.Tensor:
    """``log p(eta) = kappa tanh(eta) - (d - 1) log cosh(eta)`` (+ const), ``w = tanh eta``."""
    return kappa * torch.tanh(eta) - (d - 1) * _log_cosh(eta)


def _side_chain(eta: torch.Tensor, kappa: float, d: int, one_minus_a: float, ref: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """For samples ``eta`` sorted from one tail inward (all on one side of the score's
    root): ``(G, first)`` with ``G_i = G_first + sum_{j < i} int_{eta_j}^{eta_{j+1}} (u - A)
    exp(log p - ref)`` (8 Gauss-Legendre nodes an interval, every term of one sign) for the
    samples from ``first`` on, the innermost sample past which the density changes by more
    than ``CHAIN_STEP`` nats between neighbours (the sparse tail is left to the quadrature);
    ``G_first`` (0 here) is added by the caller."""
    lp = _log_density(eta, kappa, d)
    jump = (lp[1:] - lp[:-1]).abs() > CHAIN_STEP
    first = int(jump.nonzero()[-1]) + 1 if bool(jump.any()) else 0
    lo, hi = eta[first:-1], eta[first + 1:]
    nodes, weights = gauss_legendre(eta.dtype, str(eta.device), 8)
    h = (hi - lo)[:, None]
    at = lo[:, None] + h * nodes
    score = one_minus_a - 2 * torch.sigmoid(-2 * at)  # tanh - A = (1 - A) - (1 - tanh)
    parts = (score * torch.exp(_log_density(at, kappa, d) - ref) * weights).sum(1) * h[:, 0]
    chain = torch.cat([torch.zeros_like(eta[:1]), parts.abs().cumsum(0)])
    return chain, torch.tensor(first)


def vmf_dw_dkappa_shared(w: torch.Tensor, kappa: torch.Tensor, d: int) -> torch.Tensor:
    """``dw/dkappa`` for one ``kappa`` shared by all samples: on each side of the score's
    root ``A``, sorted from the tail inward, ``-(dF/dkappa)`` at a sample is the one at its
    outer neighbour plus the integral between the two (a short interval, 8 nodes), so the
    whole side costs one Gauss rule per sample instead of a peaked quadrature each; the
    chain starts at its outermost well-spaced sample, and the samples beyond it (the sparse
    tail) and the start itself take :func:`vmf_dw_dkappa_quadrature` (one call for both
    sides). Every term of a side has one sign (no cancellation); ``dw/dkappa = s (1 - w^2)
    G(w) / p(w)``."""
    dtype, shape = w.dtype, w.shape
    flat = w.detach().double().reshape(-1)
    k = float(kappa)
    k64 = torch.tensor([k], dtype=torch.float64, device=flat.device)
    one_minus_a = float(1 - bessel_ratio(d / 2 - 1, k64))
    interior = flat.abs() < 1  # w = +-1 exactly: gradient 0 (as the quadrature's 1 - w^2)
    below = interior & ((1 - flat) > one_minus_a)
    w_mode = 2 * k / ((d - 1) + math.sqrt((d - 1) ** 2 + 4 * k * k))
    ref = float(_log_density(torch.tensor(math.atanh(w_mode), dtype=torch.float64), k, d))
    sides, heads = [], []
    for side, sign in ((below, -1.0), (interior & ~below, 1.0)):  # sign: the quadrature's side
        idx = side.nonzero().squeeze(1)
        if idx.numel() < 2:
            heads.append(idx)
            continue
        ws, order = flat.index_select(0, idx).sort(descending=sign > 0)  # from the tail in
        idx = idx.index_select(0, order)
        eta = torch.atanh(ws)
        chain, first = _side_chain(eta, k, d, one_minus_a, ref)
        f = int(first)
        heads.append(idx[: f + 1])  # the sparse tail and the chain's start
        sides.append((idx[f:], ws[f:], _log_density(eta[f:], k, d), chain, sign))
    out = torch.zeros_like(flat)
    head = torch.cat(heads)
    if head.numel():
        out.index_copy_(0, head, vmf_dw_dkappa_quadrature(flat.index_select(0, head), k64, d))
    for idx, ws, lp, chain, sign in sides:
        w2c = (1 - ws) * (1 + ws)
        g_first = out[idx[0]] / (sign * w2c[0]) * torch.exp(lp[0] - ref)  # G at the start
        value = sign * w2c * (g_first + sign * chain) * torch.exp(ref - lp)  # G has sign s
        out.index_copy_(0, idx[1:], value[1:])
    return out.to(dtype).view(shape)


def vmf_dw_dkappa_quadrature(w: torch.Tensor, kappa: torch.Tensor, d: int) -> torch.Tensor:
    """``dw/dkappa`` by :func:`~reparam.special.quadrature.peak_integral` (any ``d``).

    At ``eta = eta_w + s v`` (``s`` the side), with ``e = exp(-2 v)``, ``tau = tanh(s v) =
    s (1 - e) / (1 + e)`` and ``q = 1 + w tau``: ``u = tanh eta = (w + tau) / q``, so
    ``L = kappa tau (1 - w^2) / q + (d - 1) (log 2 - v - log1p(e) - log q)`` and the score
    ``u - A = (1 - A) - (1 - w) (1 - tau) / q``: one ``exp`` and two logs a node, and ``q``,
    ``1 - tau`` formed without cancellation (``1 - |w| |tau| = (1 - |w|) + |w| 2e / (1 + e)``).
    """
    w, kappa = torch.broadcast_tensors(w, kappa)
    if w.numel() > _CHUNK:  # blocks whose Newton and node tensors stay in cache
        parts = [vmf_dw_dkappa_quadrature(wi, ki, d) for wi, ki in
                 zip(w.reshape(-1).split(_CHUNK), kappa.reshape(-1).split(_CHUNK), strict=True)]
        return torch.cat(parts).view(w.shape)
    dtype = w.dtype
    w, kappa = w.double(), kappa.double()
    one_minus_a = 1 - bessel_ratio(d / 2 - 1, kappa)
    one_minus_w, w2c = 1 - w, (1 - w) * (1 + w)
    below = one_minus_w > one_minus_a  # w < A: integrate [-1, w]
    direction = torch.where(below, -1.0, 1.0)  # eta = eta_w + direction * v
    same = direction * w >= 0  # q = 1 + |w| |tau|; else 1 - |w| |tau|
    abs_w, k_w2c = w.abs(), kappa * w2c
    w_mode = 2 * kappa / ((d - 1) + torch.sqrt((d - 1) ** 2 + 4 * kappa * kappa))
    v_m = (direction * (torch.atanh(w_mode) - torch.atanh(w))).clamp_min(0.0)

    last: list = [None, None]  # (v, parts): L, dL and the integrand share a v's parts

    def parts(v):
        if last[0] is not v:
            e = torch.exp(-2 * v)
            inv = 1 / (1 + e)
            tau = direction * (1 - e) * inv
            q = torch.where(same, 1 + w * tau, (1 - abs_w) + abs_w * 2 * e * inv)
            last[0], last[1] = v, (e, inv, tau, q)
        return last[1]

    def L(v):
        e, _, tau, q = parts(v)
        return k_w2c * tau / q + (d - 1) * (_LOG2 - v - torch.log1p(e) - torch.log(q))

    def dL(v):  # direction * (kappa (1 - u^2) - (d - 1) u)
        e, inv, tau, q = parts(v)
        return direction * (k_w2c * 4 * e * (inv / q) ** 2 - (d - 1) * (w + tau) / q)

    def integrand(v):
        e, inv, _, q = parts(v)
        one_minus_tau = 2 * torch.where(below, 1.0, e) * inv
        return (one_minus_a - one_minus_w * one_minus_tau / q) * torch.exp(L(v))

    guess = 46.0 / (d - 1) + 10.0 / (kappa + 1).sqrt()
    j = w2c * peak_integral(integrand, L, dL, v_m, guess, nodes=_NODES if d >= 4 else 16,
                            extra_panels=d < 5)
    return (direction * j).to(dtype)

r"""``d log x / da`` for ``x ~ Gamma(a, 1)`` at large ``a`` from Temme's uniform expansion.

With ``lambda = x / a``, ``mu = lambda - 1`` and ``eta = sign(mu) sqrt(2 (mu - log1p(mu)))``
(DLMF 8.12)

    Q(a, x) = erfc(eta sqrt(a/2)) / 2 + e^{-a eta^2 / 2} / sqrt(2 pi a) S,
    S = sum_k c_k(eta) a^-k,  c_0 = 1/mu - 1/eta,  c_k = c_{k-1}'(eta) / eta + (-1)^k g_k / mu,

``g_k`` Stirling's coefficients (``Gamma(a) = sqrt(2 pi) a^(a-1/2) e^-a Gamma*(a)``,
``Gamma* = sum g_k a^-k``). Differentiating at fixed ``x`` (``d eta / da = -mu / (a eta)``)
and dividing by ``p(x) = E / (lambda Gamma*)`` (the factor ``E = e^{-a eta^2/2} / sqrt(2 pi a)``
cancels exactly, so no tail underflows):

    d log x / da = (Gamma*(a) / a) [mu/eta - eta/2 + (log lambda - 1/(2a)) S
                                    - sum_k k c_k a^(-k-1) - (mu / (a eta)) sum_k c_k' a^-k].

The ``c_k`` are power series in ``eta``; their rational coefficients are generated here once
(exact ``Fraction`` arithmetic, < 0.1 s) and truncated per shape and result dtype (``TRUNCATIONS``).
Valid for ``a >= MIN_SHAPE`` and ``|eta| <= MAX_ETA`` (one shape shared by all samples:
``a >= MIN_SHARED_SHAPE``, ``|eta| <= MAX_ETA_SHARED``, more terms), where the truncation
error is below 2e-15 relative (checked against 40-digit mpmath in the tests);
other entries go to the series or the integral of :mod:`reparam.special.gamma`. All the
polynomial work is one Horner pass over stacked rows per block: few, large kernels.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache

import torch

MIN_SHAPE = 30.0  # shapes given per sample: below this the series is cheaper
MIN_SHARED_SHAPE = 6.0  # one shape for all samples (its a-sums fold into three polynomials)
MAX_ETA = 1.0  # per sample (each extra degree costs a pass over all terms) ...
MAX_ETA_SHARED = 1.5  # ... and shared (a degree is one pass over three rows)
# (smallest shape, float64 (terms, degree), float32-and-narrower (terms, degree)): c_0 ..
# c_{terms-1} to eta^degree; the result within 2e-15 (float64) or 1e-11 (narrower) relative
# of 40-digit mpmath over the domain, for every shape from the first column up (tested). The
# expansion is asymptotic: smaller shapes need more terms, and below 6 no truncation serves
TRUNCATIONS = ((MIN_SHAPE, (10, 28), (6, 17)),)  # per sample, |eta| <= 1
SHARED_TRUNCATIONS = ((MIN_SHAPE, (10, 40), (6, 28)), (12.0, (14, 44), (8, 28)),
                      (6.0, (24, 60), (12, 36)))  # |eta| <= 1.5
_ETA_SERIES = 0.05  # |mu| below this: eta / mu from its Taylor series (13 terms)


def _series_coefficients(terms: int, degree: int) -> tuple[list[list[Fraction]], list[Fraction]]:
    """Exact Taylor coefficients of ``c_0 .. c_{terms-1}`` in ``eta`` and ``g_0 .. g_{terms}``.

    ``mu(eta) = eta w(eta)`` solves ``mu' mu = eta (1 + mu)``; each ``c_k`` loses two orders
    (a derivative and a division by ``eta``), so ``c_0`` starts ``2 terms`` orders longer.
    The constant of ``c_{k-1}' + (-1)^k g_k / w`` must vanish: that fixes ``g_k``.
    """
    order = degree + 2 * terms + 4
    m = [Fraction(0), Fraction(1)]
    for n in range(2, order + 2):
        m.append((m[n - 1] - sum(j * m[j] * m[n + 1 - j] for j in range(2, n))) / (n + 1))
    w = m[1:order + 2]
    inv_w = [Fraction(1)]
    for n in range(1, order + 1):
        inv_w.append(-sum(w[j] * inv_w[n - j] for j in range(1, n + 1)))
    c, cs, gs = inv_w[1:order + 1], [], [Fraction(1)]
    cs.append(c)
    for k in range(1, terms):
        d = [(j + 1) * c[j + 1] for j in range(len(c) - 1)]
        g = (-1) ** (k + 1) * d[0]
        gs.append(g)
        c = [d[j] + (-1) ** k * g * inv_w[j] for j in range(1, len(d))]
        cs.append(c)
    return [ck[:degree + 1] for ck in cs], gs


@cache
def _tables(terms: int, degree: int, device: str) -> tuple[torch.Tensor, ...]:
    """``D[k, n]`` (coefficient of ``eta^n`` in ``c_k``), ``D'`` (of ``c_k'``), ``g_k``."""
    cs, gs = _series_coefficients(terms, degree)
    d = torch.tensor([[float(ck[n]) for n in range(degree + 1)] for ck in cs],
                     dtype=torch.float64)  # (terms, degree + 1)
    dd = torch.cat([d[:, 1:] * torch.arange(1, degree + 1, dtype=torch.float64),
                    torch.zeros(terms, 1, dtype=torch.float64)], 1)
    g = torch.tensor([float(v) for v in gs], dtype=torch.float64)
    return tuple(t.to(device=device) for t in (d, dd, g))


def _eta(mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(eta, mu / eta)``: ``eta^2 / mu^2 = 2 (mu - log1p mu) / mu^2 = sum 2 (-mu)^j / (j+2)``,
    summed for ``|mu| < 0.05`` (no cancellation), else direct."""
    small = mu.abs() < _ETA_SERIES
    ms = torch.where(small, mu, 0.0)
    f = torch.full_like(mu, 2.0 / 14.0)
    for j in range(11, -1, -1):
        f.mul_(ms).add_(2.0 * (-1) ** j / (j + 2))
    safe = torch.where(small, 1.0, mu)
    direct = (safe - torch.log1p(safe)).mul_(2).div_(safe * safe)
    ratio = torch.where(small, f, direct).sqrt_()  # eta / mu > 0
    return mu * ratio, ratio.reciprocal_()


def _powers(x: torch.Tensor, count: int) -> torch.Tensor:
    """Rows ``x^0 .. x^(count-1)`` of a ``(count, n)`` tensor, by doubling (log2 kernels)."""
    out = torch.empty((count,) + x.shape, dtype=x.dtype, device=x.device)
    out[0].fill_(1.0)
    if count > 1:
        out[1].copy_(x)
    m = 2
    while m < count:
        r = min(m, count - m)
        torch.mul(out[:r], out[m - 1], out=out[m:m + r]).mul_(x)
        m += r
    return out


def horner(coef: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(r, n)``: row ``i`` is ``sum_j coef[i, j] x^j``, all rows in one kernel a degree
    (no BLAS call: a library's threads stall on a busy machine)."""
    acc = coef[:, -1:].expand(-1, x.numel()).clone()
    for j in range(coef.shape[1] - 2, -1, -1):
        torch.addcmul(coef[:, j:j + 1], acc, x, out=acc)
    return acc


def truncation(smallest_shape: float, result: torch.dtype, shared: bool) -> tuple[int, int]:
    """``(terms, degree)`` for shapes ``>= smallest_shape`` and a ``result`` of that dtype."""
    for shape, wide, narrow in SHARED_TRUNCATIONS if shared else TRUNCATIONS:
        if smallest_shape >= shape:
            return wide if result == torch.float64 else narrow
    raise ValueError(f"the uniform expansion needs shapes >= "
                     f"{MIN_SHARED_SHAPE if shared else MIN_SHAPE}, got {smallest_shape}")


def uniform_domain(log_x: torch.Tensor, a: torch.Tensor, shared: bool = False) -> torch.Tensor:
    """Entries the expansion serves: ``a >= MIN_SHAPE`` and ``|eta| <= MAX_ETA``, or for one
    shared shape ``a >= MIN_SHARED_SHAPE`` and ``|eta| <= MAX_ETA_SHARED``."""
    mu = torch.expm1(log_x - torch.log(a))
    eta2 = 2 * (mu - torch.log1p(mu))
    if shared:
        return (a >= MIN_SHARED_SHAPE) & (eta2 <= MAX_ETA_SHARED ** 2)
    return (a >= MIN_SHAPE) & (eta2 <= MAX_ETA ** 2)


def gamma_dlogx_da_uniform(log_x: torch.Tensor, a: torch.Tensor,
                           result: torch.dtype = torch.float64) -> torch.Tensor:
    """``d log x / da`` by the uniform expansion (float64 1-d tensors of one length, or ``a``
    of length 1 shared by all: then the ``a``-sums fold into three polynomials in ``eta``),
    truncated for a ``result`` of that dtype (:data:`TRUNCATIONS`, :data:`SHARED_TRUNCATIONS`).

    All terms at once: one Horner pass over the stacked polynomials gives every ``c_k`` and
    ``c_k'`` (or, for a shared ``a``, the three folded sums)."""
    shared = a.numel() == 1
    terms, degree = truncation(float(a) if shared else MIN_SHAPE, result, shared)
    d, dd, g = _tables(terms, degree, str(log_x.device))
    log_lam = log_x - torch.log(a)
    mu = torch.expm1(log_lam)
    eta, mu_over_eta = _eta(mu)
    k = torch.arange(terms, dtype=log_x.dtype, device=log_x.device)
    inv_a = a.reciprocal()
    if shared:
        pa = _powers(inv_a, terms)[:, 0]  # a^-k
        coef = torch.stack([pa @ d, (pa * k * inv_a) @ d, pa @ dd])  # (3, degree + 1)
        s, s_a, s_eta = horner(coef, eta).unbind()
    else:
        pa = _powers(inv_a, terms)  # (terms, n)
        c, c1 = horner(torch.cat([d, dd]), eta).view(2, terms, -1).mul_(pa).unbind()
        s = c.sum(0)
        s_a = (c * k[:, None]).sum(0) * inv_a
        s_eta = c1.sum(0)
    gstar = (g @ pa) if pa.dim() == 1 else (pa * g[:, None]).sum(0)  # Gamma*(a)
    bracket = (mu_over_eta - eta / 2 + (log_lam - inv_a / 2) * s - s_a
               - mu_over_eta * inv_a * s_eta)
    return gstar * inv_a * bracket

"""The survey's test costs (Mohamed et al. 2020, sec. 3) and exact per-sample variances.

``z ~ N(mu, sigma^2)``, ``z = mu + sigma eps``. For every estimator the single-sample
gradient ``g(eps)`` is written out and its mean and variance are integrated numerically
(``scipy.integrate``); the scores are ``s_mu = eps / sigma`` and
``s_sigma = (eps^2 - 1) / sigma``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import integrate, stats

_SQRT_2PI = math.sqrt(2 * math.pi)


@dataclass(frozen=True)
class Cost:
    """``f(z; k)`` and its derivative, for any array module ``xp`` (numpy or torch)."""

    label: str
    f: Callable
    df: Callable
    grid: tuple[float, ...]


COSTS: dict[str, Cost] = {
    "square": Cost("(z - k)^2", lambda z, k, xp=np: (z - k) ** 2,
                   lambda z, k, xp=np: 2 * (z - k), tuple(np.linspace(-3, 3, 7).tolist())),
    "exp": Cost("exp(-k z^2)", lambda z, k, xp=np: xp.exp(-k * z * z),
                lambda z, k, xp=np: -2 * k * z * xp.exp(-k * z * z),
                tuple(np.round(np.logspace(-1, 1, 7), 4).tolist())),
    "cos": Cost("cos(k z)", lambda z, k, xp=np: xp.cos(k * z),
                lambda z, k, xp=np: -k * xp.sin(k * z),
                tuple(np.round(np.logspace(-1, 1, 7), 4).tolist())),
}
PARAMS = ("mu", "sigma")


_LEGENDRE = np.polynomial.legendre.leggauss(256)
_U = (_LEGENDRE[0] + 1) / 2          # Gauss-Legendre nodes on (0, 1)
_U_W = _LEGENDRE[1] / 2


def _var(second, first, scale: float = 0.0) -> np.ndarray:
    """``E[g^2] - E[g]^2``, with cancellation noise set to 0: below ``1e-12`` of ``E[g^2]``
    or ``1e-20`` of ``scale`` (the squared size of the terms that were subtracted)."""
    v = second - first**2
    return np.where(v > 1e-12 * np.abs(second) + 1e-20 * scale, v, 0.0)


def _expect(h: Callable[[float], np.ndarray], lo: float, hi: float) -> np.ndarray:
    """Adaptive quadrature of a vector-valued integrand (``scipy.integrate.quad_vec``)."""
    return integrate.quad_vec(h, lo, hi, epsabs=1e-12, epsrel=1e-10, limit=2000)[0]


def exact(cost: Cost, k: float, mu: float, sigma: float, num_samples: int) -> dict:
    """Exact gradient and per-sample variance (``S x Var`` of the ``S``-sample estimate) of
    every estimator of the survey study, keyed ``[estimator][param]``.

    pathwise ``g_mu = f'(z)``, ``g_sigma = f'(z) eps``; score ``(f - b) s``; ``score-ema``
    at its fixed point ``b = E f``; ``score-loo`` (``S`` samples)
    ``Var((f - E f) s) + (Var(f) E[s^2] + g^2) / (S - 1)``; ``score-cv`` at the optimal
    ``b = E[f s^2] / E[s^2]``; measure-valued as in :class:`MeasureValued`.
    """
    def f(e):
        return cost.f(mu + sigma * e, k)

    def df(e):
        return cost.df(mu + sigma * e, k)

    def score(e):  # (s_mu, s_sigma)
        return np.array([e / sigma, (e * e - 1) / sigma])

    phi = stats.norm.pdf
    score_sq = np.array([1 / sigma**2, 2 / sigma**2])
    path = lambda e: np.array([df(e), df(e) * e])  # noqa: E731

    def first(e):
        fe, s, g = f(e), score(e), path(e)
        return phi(e) * np.concatenate([[fe, fe * fe], g, g * g, (fe * s) ** 2, fe * s * s])

    m = _expect(first, -np.inf, np.inf)
    mean_f, var_f = m[0], m[1] - m[0] ** 2
    grad, var_path = m[2:4], _var(m[4:6], m[2:4])
    beta = m[8:10] / score_sq

    def second(e):
        fe, s = f(e), score(e)
        return phi(e) * np.concatenate([((fe - mean_f) * s) ** 2, ((fe - beta) * s) ** 2])

    m2 = _expect(second, -np.inf, np.inf)
    centred, cv = _var(m2[0:2], grad), _var(m2[2:4], grad)
    S = num_samples
    loo = centred + (var_f * score_sq + grad**2) / (S - 1) if S > 1 else np.full(2, np.nan)
    rows = {"pathwise": var_path, "score": _var(m[6:8], grad), "score-ema": centred,
            "score-loo": loo, "score-cv": cv,
            "measure-valued": _measure_valued(cost, k, mu, sigma)}
    out = {name: dict(zip(PARAMS, map(float, v), strict=True)) for name, v in rows.items()}
    out["gradient"] = dict(zip(PARAMS, map(float, grad), strict=True))
    return out


def _measure_valued(cost: Cost, k: float, mu: float, sigma: float) -> np.ndarray:
    """Rayleigh-coupled mean part (1-D); Maxwell/(Maxwell x uniform)-coupled scale part
    (outer adaptive over ``u``, inner Gauss-Legendre over ``U``)."""
    def g_mu(w):
        a, b = cost.f(mu + sigma * w, k), cost.f(mu - sigma * w, k)
        d = (a - b) / (sigma * _SQRT_2PI)
        return w * math.exp(-w * w / 2) * np.array([d, d * d, (a * a + b * b) / sigma**2])

    def g_sigma(u):
        d = (cost.f(mu + sigma * u, k) - cost.f(mu + sigma * u * _U, k)) / sigma
        return u * u * stats.norm.pdf(u) * np.array([_U_W @ d, _U_W @ (d * d)])

    a = _expect(g_mu, 0, np.inf)
    b = _expect(g_sigma, -np.inf, np.inf)
    return np.array([_var(a[1], a[0], a[2]), _var(b[1], b[0])])

"""The truncated normal, sampled by its inverse CDF in log space (stable 10+ sigma out).

With ``a = (low - loc) / scale``, ``b = (high - loc) / scale`` and ``Z = Phi(b) - Phi(a)``:
``z = loc + scale * x``, ``x = Phi^{-1}((1 - u) Phi(a) + u Phi(b))``. Everything runs on
``log Phi`` (``log_ndtr``) and an inverse of it; intervals in the upper tail are reflected
into the lower tail (``x -> -x``), where ``log Phi`` keeps all its digits.

The gradient of ``x`` is implicit (``x`` solves ``(Phi(x) - Phi(a)) / Z = u``), with no
autograd through the inversion:
``dx/da = (1 - u) phi(a) / phi(x)``, ``dx/db = u phi(b) / phi(x)``.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints
from torch.special import log_ndtr, ndtri

from ._builders import Above, InverseCDF
from .inverse_cdf import log1mexp

__all__ = ["TruncatedNormal", "ndtri_exp", "log_ndtr_diff"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def ndtri_exp(y: torch.Tensor) -> torch.Tensor:
    """``Phi^{-1}(exp(y))`` for ``y <= 0``: ``ndtri`` where ``exp(y)`` is a normal float
    (``-ndtri(-expm1(y))`` above 1/2), Newton on ``log_ndtr`` in the far lower tail."""
    upper = y > -math.log(2.0)
    tail = y < math.log(torch.finfo(y.dtype).tiny) + 1.0
    x = torch.where(upper, -ndtri(-torch.expm1(torch.where(upper, y, -1.0))),
                    ndtri(torch.exp(torch.where(upper | tail, -1.0, y))))
    if bool(tail.any()):
        yt = torch.where(tail, y, -1000.0)
        s = -2 * yt - math.log(2 * math.pi)
        xt = -torch.sqrt(s - torch.log(s))
        for _ in range(4):  # quadratic convergence from the asymptotic guess
            lphi = -0.5 * xt * xt - _LOG_SQRT_2PI
            xt = xt - (log_ndtr(xt) - yt) * torch.exp(log_ndtr(xt) - lphi)
        x = torch.where(tail, xt, x)
    return x


def log_ndtr_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``log(Phi(b) - Phi(a))`` for ``a <= b``, reflected to the lower tail when ``a > 0``."""
    flip = a > 0
    lo, hi = torch.where(flip, -b, a), torch.where(flip, -a, b)
    lb = _finite_or(hi, log_ndtr, 0.0)
    return lb + log1mexp(_finite_or(lo, log_ndtr, -math.inf) - lb)


def _finite_or(t, fn, at_inf: float):
    """``fn(t)``, with ``at_inf`` where ``t`` is infinite and no gradient through it there."""
    inf = torch.isinf(t)
    return torch.where(inf, at_inf, fn(torch.where(inf, 0.0, t)))


class _StdTruncIcdf(torch.autograd.Function):
    """``x = Phi^{-1}((1 - u) Phi(a) + u Phi(b))`` for ``a <= 0`` (lower-tail form)."""

    @staticmethod
    def forward(ctx, a, b, u):
        logp = torch.logaddexp(torch.log1p(-u) + log_ndtr(a), torch.log(u) + log_ndtr(b))
        x = torch.minimum(torch.maximum(ndtri_exp(logp), a), b)
        ctx.save_for_backward(a, b, u, x)
        return x

    @staticmethod
    def backward(ctx, grad):
        a, b, u, x = ctx.saved_tensors
        return _std_trunc_icdf_backward(grad, a, b, u, x) + (None,)


def _std_trunc_icdf_backward(grad, a, b, u, x):
    """``dx/da = (1 - u) exp((x - a)(x + a) / 2)``, ``dx/db = u exp((x - b)(x + b) / 2)``."""
    ga = torch.exp(torch.log1p(-u) + 0.5 * (x - a) * (x + a))
    gb = torch.exp(torch.log(u) + 0.5 * (x - b) * (x + b))
    return (grad * ga).sum_to_size(a.shape), (grad * gb).sum_to_size(b.shape)


def _standardize(t, loc, scale):
    """``(t - loc) / scale``, keeping infinite ``t`` out of the autograd graph (no 0 * inf)."""
    inf = torch.isinf(t)
    return torch.where(inf, t, (torch.where(inf, 0.0, t) - loc) / scale)


def _bounds(loc, scale, low, high):
    return _standardize(low, loc, scale), _standardize(high, loc, scale)


def _icdf(p, loc, scale, low, high):
    a, b = _bounds(loc, scale, low, high)
    flip = a > 0
    x = _StdTruncIcdf.apply(torch.where(flip, -b, a), torch.where(flip, -a, b),
                            torch.where(flip, 1 - p, p))
    return loc + scale * torch.where(flip, -x, x)


def _log_prob(value, loc, scale, low, high):
    a, b = _bounds(loc, scale, low, high)
    t = (value - loc) / scale
    lp = -0.5 * t * t - _LOG_SQRT_2PI - torch.log(scale) - log_ndtr_diff(a, b)
    return torch.where((value >= low) & (value <= high), lp, -math.inf)


def _cdf(value, loc, scale, low, high):
    a, b = _bounds(loc, scale, low, high)
    t = torch.minimum(torch.maximum((value - loc) / scale, a), b)
    log_z = log_ndtr_diff(a, b)
    return torch.where(a > 0, -torch.expm1(log_ndtr_diff(t, b) - log_z),
                       torch.exp(log_ndtr_diff(a, t) - log_z))


class TruncatedNormal(InverseCDF):
    r"""``N(loc, scale^2)`` restricted to ``[low, high]`` (either bound may be infinite).

    ``p(z) = phi((z - loc) / scale) / (scale Z)``; samples are exact inverse-CDF draws
    and stay accurate for truncation many standard deviations out (e.g. ``low = loc + 20 scale``).
    """

    has_rsample = True

    def __init__(self, loc: torch.Tensor | float, scale: torch.Tensor | float, low: torch.Tensor | float,
                 high: torch.Tensor | float, validate_args: bool | None = None):
        super().__init__(_icdf, {"loc": loc, "scale": scale, "low": low, "high": high},
                         log_prob_fn=_log_prob, cdf_fn=_cdf, validate_args=validate_args)

    @property
    def arg_constraints(self) -> dict:  # instance-dependent: high > low
        return {"loc": constraints.real, "scale": constraints.positive,
                "low": _NOT_NAN, "high": Above("low", self.low)}

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> torch.distributions.constraints.Constraint:
        return constraints.interval(self.low, self.high)

    def _moments(self):
        a, b = _bounds(self.loc, self.scale, self.low, self.high)
        log_z = log_ndtr_diff(a, b)
        def m(t):  # phi(t) / Z and t phi(t) / Z, both 0 at t = +-inf (exp(-inf), no inf * 0)
            inf = torch.isinf(t)
            ts = torch.where(inf, 0.0, t)
            mt = torch.exp(torch.where(inf, -math.inf, -0.5 * ts * ts - _LOG_SQRT_2PI - log_z))
            return mt, ts * mt

        (ma, am), (mb, bm) = m(a), m(b)
        return log_z, ma, mb, am, bm

    @property
    def mean(self) -> torch.Tensor:
        _, ma, mb, _, _ = self._moments()
        return self.loc + self.scale * (ma - mb)

    @property
    def variance(self) -> torch.Tensor:
        """``scale^2 (1 + a m_a - b m_b - (m_a - m_b)^2)``, ``m_t = phi(t) / Z``; for an interval
        on one side of 0 the tail form of :func:`_tail_variance` (no cancellation)."""
        _, ma, mb, am, bm = self._moments()
        a, b = _bounds(self.loc, self.scale, self.low, self.high)
        upper, lower = a >= 0, b <= 0
        tail = _tail_variance(torch.where(upper, a, torch.where(lower, -b, 1.0)),
                              torch.where(upper, b, torch.where(lower, -a, 2.0)))
        var = torch.where(upper | lower, tail, 1 + am - bm - (ma - mb).pow(2))
        return self.scale.pow(2) * var

    def entropy(self) -> torch.Tensor:
        log_z, _, _, am, bm = self._moments()
        return _LOG_SQRT_2PI + 0.5 + torch.log(self.scale) + log_z + 0.5 * (am - bm)


def _tail_variance(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Variance of ``N(0, 1)`` on ``[alpha, beta]``, ``0 <= alpha``, from the moments of
    ``y = x - alpha`` (density ``~ exp(-alpha y - y^2 / 2)``), with Mills ratios
    ``R(t) = sqrt(pi / 2) erfcx(t / sqrt 2)`` and ``E = phi(beta) / phi(alpha)``:
    ``I0 = R(alpha) - E R(beta)``, ``I1 = 1 - E - alpha I0``,
    ``I2 = I0 - alpha I1 - (beta - alpha) E``; variance ``I2 / I0 - (I1 / I0)^2``."""

    def mills(t):
        return math.sqrt(math.pi / 2) * torch.special.erfcx(t / math.sqrt(2.0))

    inf = torch.isinf(beta)
    bs = torch.where(inf, alpha + 1, beta)  # a finite stand-in; E = exp(-inf) = 0 at beta = inf
    e = torch.exp(torch.where(inf, -math.inf, -0.5 * (bs - alpha) * (bs + alpha)))
    we = (bs - alpha) * e
    i0 = mills(alpha) - e * torch.where(inf, 0.0, mills(bs))
    i1 = 1 - e - alpha * i0
    i2 = i0 - alpha * i1 - we
    return i2 / i0 - (i1 / i0).pow(2)


class _NotNaN(constraints.Constraint):
    """A real number or an infinity, not NaN (for truncation bounds)."""

    def check(self, value):
        return value == value

    def __repr__(self) -> str:
        return "a real number or +-inf (not NaN)"


_NOT_NAN = _NotNaN()

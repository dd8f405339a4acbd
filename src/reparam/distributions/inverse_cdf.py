"""Inverse-CDF families ``z = F^{-1}(u; theta)`` on :class:`InverseCDF`, plus LogNormal.

Tails are written with ``log1p`` / ``expm1`` so that neither ``u -> 0`` nor ``u -> 1`` loses
digits (torch's Kumaraswamy computes ``(1 - u^(1/b))^(1/a)`` directly and does).
"""

from __future__ import annotations

import math

import torch
import torch.distributions as td
from torch.distributions import TransformedDistribution, constraints
from torch.distributions.kl import register_kl
from torch.distributions.transforms import ExpTransform

from ..noise import NoiseSource
from ._base import Reparameterized, TwinTransforms, as_value, clamp_open, outside_support
from ._builders import InverseCDF
from .normal import Normal

__all__ = ["Exponential", "Weibull", "Pareto", "Kumaraswamy", "HalfNormal", "LogNormal",
           "log1mexp"]

_EULER = 0.5772156649015329
_POS = constraints.positive


def log1mexp(t: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(t))`` for ``t <= 0``, accurate at both ends (Maechler 2012)."""
    near = t > -math.log(2.0)
    return torch.where(near, torch.log(-torch.expm1(torch.where(near, t, -1.0))),
                       torch.log1p(-torch.exp(torch.where(near, -1.0, t))))


class Exponential(InverseCDF, td.Exponential):
    """Exponential(rate): ``F(z) = -expm1(-rate z)``, ``z = -log1p(-u) / rate``."""

    arg_constraints = {"rate": _POS}
    support = constraints.nonnegative

    def __init__(self, rate: torch.Tensor | float, validate_args: bool | None = None):
        super().__init__(lambda p, rate: -torch.log1p(-p) / rate, {"rate": rate},
                         log_prob_fn=lambda x, rate: torch.log(rate) - rate * x,
                         cdf_fn=lambda x, rate: -torch.expm1(-rate * x),
                         validate_args=validate_args)

    mean = property(lambda self: self.rate.reciprocal())
    variance = property(lambda self: self.rate.pow(-2))

    def entropy(self) -> torch.Tensor:
        return 1 - torch.log(self.rate)


def _weibull_log_prob(x, scale, concentration):
    log_t = torch.log(x / scale)
    return torch.log(concentration / scale) + (concentration - 1) * log_t - torch.exp(
        concentration * log_t)


class Weibull(TwinTransforms, InverseCDF, td.Weibull):
    """Weibull(scale, concentration k): ``F(z) = -expm1(-(z / scale)^k)``,
    ``z = scale * exp(log(-log1p(-u)) / k)``."""

    arg_constraints = {"scale": _POS, "concentration": _POS}
    support = constraints.positive

    def __init__(self, scale: torch.Tensor | float, concentration: torch.Tensor | float,
                 validate_args: bool | None = None):
        super().__init__(
            lambda p, scale, concentration: scale * torch.exp(
                torch.log(-torch.log1p(-p)) / concentration),
            {"scale": scale, "concentration": concentration},
            log_prob_fn=_weibull_log_prob,
            cdf_fn=lambda x, scale, concentration: -torch.expm1(
                -torch.exp(concentration * torch.log(x / scale))),
            validate_args=validate_args)

    concentration_reciprocal = property(lambda self: self.concentration.reciprocal())
    _torch = property(lambda self: td.Weibull(self.scale, self.concentration, validate_args=False))

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        return clamp_open(super().rsample(sample_shape, noise), upper=False)  # z > 0

    @property
    def mean(self) -> torch.Tensor:
        return self.scale * torch.exp(torch.lgamma(1 + 1 / self.concentration))

    @property
    def variance(self) -> torch.Tensor:
        """``scale^2 Gamma(1 + 1/k)^2 expm1(lgamma(1 + 2/k) - 2 lgamma(1 + 1/k))``."""
        g1 = torch.lgamma(1 + 1 / self.concentration)
        return self.scale.pow(2) * torch.exp(2 * g1) * torch.expm1(
            torch.lgamma(1 + 2 / self.concentration) - 2 * g1)

    def entropy(self) -> torch.Tensor:
        k = self.concentration
        return _EULER * (1 - 1 / k) + torch.log(self.scale / k) + 1


class Pareto(TwinTransforms, InverseCDF, td.Pareto):
    """Pareto(scale, alpha) on ``[scale, inf)``: ``F(z) = -expm1(alpha log(scale / z))``,
    ``z = scale * exp(-log1p(-u) / alpha)``."""

    arg_constraints = {"scale": _POS, "alpha": _POS}

    def __init__(self, scale: torch.Tensor | float, alpha: torch.Tensor | float,
                 validate_args: bool | None = None):
        super().__init__(
            lambda p, scale, alpha: scale * torch.exp(-torch.log1p(-p) / alpha),
            {"scale": scale, "alpha": alpha},
            log_prob_fn=lambda x, scale, alpha: (torch.log(alpha) + alpha * torch.log(scale)
                                                 - (alpha + 1) * torch.log(x)),
            cdf_fn=lambda x, scale, alpha: -torch.expm1(alpha * torch.log(scale / x)),
            validate_args=validate_args)

    _torch = property(lambda self: td.Pareto(self.scale, self.alpha, validate_args=False))

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> torch.distributions.constraints.Constraint:
        return constraints.greater_than_eq(self.scale)

    @property
    def mean(self) -> torch.Tensor:
        a = self.alpha
        return torch.where(a > 1, a * self.scale / (a - 1).clamp(min=1e-30), math.inf)

    @property
    def variance(self) -> torch.Tensor:
        a = self.alpha
        v = self.scale.pow(2) * a / ((a - 1).pow(2) * (a - 2)).clamp(min=1e-30)
        return torch.where(a > 2, v, math.inf)

    def entropy(self) -> torch.Tensor:
        return torch.log(self.scale / self.alpha) + 1 + 1 / self.alpha


def _kuma_icdf(p, concentration1, concentration0):
    """``(1 - (1 - p)^(1/b))^(1/a) = exp(log(-expm1(log1p(-p) / b)) / a)``."""
    return torch.exp(torch.log(-torch.expm1(torch.log1p(-p) / concentration0)) / concentration1)


def _kuma_log_prob(x, concentration1, concentration0):
    """``log(a b) + (a - 1) log z + (b - 1) log1mexp(a log z)``."""
    a, b = concentration1, concentration0
    return torch.log(a * b) + (a - 1) * torch.log(x) + (b - 1) * log1mexp(a * torch.log(x))


class Kumaraswamy(TwinTransforms, InverseCDF, td.Kumaraswamy):
    """Kumaraswamy(a = concentration1, b = concentration0) on (0, 1): ``F(z) = 1 - (1 - z^a)^b``.

    Every step is a ``log1p`` / ``expm1`` / ``log1mexp`` so both tails keep their digits.
    """

    arg_constraints = {"concentration1": _POS, "concentration0": _POS}
    support = constraints.unit_interval

    def __init__(self, concentration1: torch.Tensor | float, concentration0: torch.Tensor | float,
                 validate_args: bool | None = None):
        super().__init__(
            _kuma_icdf, {"concentration1": concentration1, "concentration0": concentration0},
            log_prob_fn=_kuma_log_prob,
            cdf_fn=lambda x, concentration1, concentration0: -torch.expm1(
                concentration0 * log1mexp(concentration1 * torch.log(x))),
            validate_args=validate_args)

    _torch = property(lambda self: td.Kumaraswamy(self.concentration1, self.concentration0,
                                                  validate_args=False))

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        """``z = F^{-1}(u)``, kept in ``[tiny, 1 - eps/2]`` (as torch keeps Beta samples), so the
        density of every sample is finite; nothing is attached to the returned tensor."""
        return clamp_open(super().rsample(sample_shape, noise))

    def _moment(self, k: int) -> torch.Tensor:
        """``E[z^k] = b B(1 + k/a, b)``."""
        a, b = self.concentration1, self.concentration0
        return torch.exp(torch.log(b) + torch.lgamma(1 + k / a) + torch.lgamma(b)
                         - torch.lgamma(1 + k / a + b))

    mean = property(lambda self: self._moment(1))
    variance = property(lambda self: self._moment(2) - self._moment(1).pow(2))

    def entropy(self) -> torch.Tensor:
        """``H = (1 - 1/b) + (1 - 1/a) (digamma(b + 1) + gamma) - log(a b)``."""
        a, b = self.concentration1, self.concentration0
        return (1 - 1 / b) + (1 - 1 / a) * (torch.digamma(b + 1) + _EULER) - torch.log(a * b)


_LOG_HALF_PI = 0.5 * math.log(0.5 * math.pi)


class HalfNormal(TwinTransforms, InverseCDF, td.HalfNormal):
    """HalfNormal(scale) = ``|N(0, scale^2)|``: ``z = scale sqrt(2) erfinv(u)``."""

    arg_constraints = {"scale": _POS}
    support = constraints.nonnegative
    scale = None  # a plain attribute here (torch's is a property of its base distribution)
    _torch = property(lambda self: td.HalfNormal(self.scale, validate_args=False))

    def __init__(self, scale: torch.Tensor | float, validate_args: bool | None = None):
        super().__init__(
            lambda p, scale: scale * math.sqrt(2.0) * torch.erfinv(p), {"scale": scale},
            log_prob_fn=lambda x, scale: (-_LOG_HALF_PI - torch.log(scale)
                                          - 0.5 * (x / scale).pow(2)),
            cdf_fn=lambda x, scale: torch.erf(x / (scale * math.sqrt(2.0))),
            validate_args=validate_args)

    mean = property(lambda self: self.scale * math.sqrt(2 / math.pi))
    variance = property(lambda self: self.scale.pow(2) * (1 - 2 / math.pi))

    def entropy(self) -> torch.Tensor:
        return 0.5 * math.log(0.5 * math.pi * math.e) + torch.log(self.scale)


class LogNormal(Reparameterized, td.LogNormal):
    """``z = exp(loc + scale * eps)``: the reparameterized :class:`Normal` through ``exp``
    (samples kept in ``[tiny, max]``); density and cdf are ``-inf`` / ``0`` for ``z <= 0``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.positive

    def __init__(self, loc: torch.Tensor | float, scale: torch.Tensor | float,
                 validate_args: bool | None = None):
        base = Normal(loc, scale, validate_args=validate_args)
        TransformedDistribution.__init__(self, base, ExpTransform(), validate_args=validate_args)

    def expand(self, batch_shape: torch.Size | tuple[int, ...],
               _instance: LogNormal | None = None) -> LogNormal:
        new = self._get_checked_instance(LogNormal, _instance)
        return TransformedDistribution.expand(self, batch_shape, _instance=new)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        z = torch.exp(self.base_dist.rsample(sample_shape, noise=noise))
        return z.clamp(torch.finfo(z.dtype).tiny, torch.finfo(z.dtype).max)

    mean = property(lambda self: torch.exp(self.loc + self.scale.pow(2) / 2))
    variance = property(lambda self: torch.expm1(self.scale.pow(2)) * torch.exp(
        2 * self.loc + self.scale.pow(2)))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value = as_value(value, self.loc)
        safe = torch.where(value > 0, value, 1.0)
        return outside_support(self.support, value, self.base_dist.log_prob(torch.log(safe))
                               - torch.log(safe))

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value = as_value(value, self.loc)
        safe = torch.where(value > 0, value, 1.0)
        return outside_support(self.support, value, self.base_dist.cdf(torch.log(safe)), cdf=True)

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.base_dist.icdf(value))


# torch's KL rules apply through subclassing (Exponential, HalfNormal, Pareto, LogNormal and
# their cross-family pairs); torch has none for Weibull.
@register_kl(Weibull, Weibull)
def _kl_weibull(p, q):
    """``log(k_p/l_p^k_p) - log(k_q/l_q^k_q) + (k_p - k_q)(log l_p - gamma/k_p)
    + (l_p/l_q)^k_q Gamma(k_q/k_p + 1) - 1`` (Bauckhage 2013)."""
    kp, lp, kq, lq = p.concentration, p.scale, q.concentration, q.scale
    return (torch.log(kp / kq) - kp * torch.log(lp) + kq * torch.log(lq)
            + (kp - kq) * (torch.log(lp) - _EULER / kp)
            + torch.exp(kq * torch.log(lp / lq) + torch.lgamma(kq / kp + 1)) - 1)

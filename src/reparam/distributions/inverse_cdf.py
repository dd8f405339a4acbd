"""Inverse-CDF families ``z = F^{-1}(u; theta)`` on :class:`InverseCDF`, plus LogNormal.

Tails are written with ``log1p`` / ``expm1`` so that neither ``u -> 0`` nor ``u -> 1`` loses
digits (torch's Kumaraswamy computes ``(1 - u^(1/b))^(1/a)`` directly and does).
"""

from __future__ import annotations

import math

import torch
from torch.distributions import TransformedDistribution, constraints
from torch.distributions.kl import register_kl
from torch.distributions.transforms import ExpTransform

from ..noise import NoiseSource
from ._base import Reparameterized
from ._builders import InverseCDF
from .kl import kl_normal_normal
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


def _make(name, fields, icdf, log_prob, cdf, support, doc, **props):
    """A named :class:`InverseCDF` family with parameters ``fields`` (all positive)."""

    def __init__(self, *args, validate_args: bool | None = None):
        InverseCDF.__init__(self, icdf, dict(zip(fields, args, strict=True)),
                            log_prob_fn=log_prob, cdf_fn=cdf, validate_args=validate_args)

    attrs = {"__init__": __init__, "__doc__": doc, "__module__": __name__,
             "arg_constraints": dict.fromkeys(fields, _POS), "support": support}
    attrs.update({k: (v if k == "entropy" else property(v)) for k, v in props.items()})
    return type(name, (InverseCDF,), attrs)


Exponential = _make(
    "Exponential", ("rate",),
    icdf=lambda p, rate: -torch.log1p(-p) / rate,
    log_prob=lambda x, rate: torch.log(rate) - rate * x,
    cdf=lambda x, rate: -torch.expm1(-rate * x),
    support=constraints.nonnegative,
    doc="Exponential(rate): ``z = -log1p(-u) / rate``.",
    mean=lambda d: d.rate.reciprocal(), variance=lambda d: d.rate.pow(-2),
    entropy=lambda d: 1 - torch.log(d.rate))


def _weibull_var(d):
    g1 = torch.lgamma(1 + 1 / d.concentration)
    return d.scale.pow(2) * torch.exp(2 * g1) * torch.expm1(
        torch.lgamma(1 + 2 / d.concentration) - 2 * g1)


Weibull = _make(
    "Weibull", ("scale", "concentration"),
    icdf=lambda p, scale, concentration: scale * torch.exp(
        torch.log(-torch.log1p(-p)) / concentration),
    log_prob=lambda x, scale, concentration: (
        torch.log(concentration / scale) + (concentration - 1) * torch.log(x / scale)
        - torch.exp(concentration * torch.log(x / scale))),
    cdf=lambda x, scale, concentration: -torch.expm1(-torch.exp(concentration * torch.log(x / scale))),
    support=constraints.positive,
    doc="Weibull(scale, concentration k): ``z = scale * (-log1p(-u))^(1/k)``.",
    mean=lambda d: d.scale * torch.exp(torch.lgamma(1 + 1 / d.concentration)),
    variance=_weibull_var,
    entropy=lambda d: _EULER * (1 - 1 / d.concentration) + torch.log(d.scale / d.concentration) + 1)


def _pareto_mean(d):
    a = d.alpha
    return torch.where(a > 1, a * d.scale / (a - 1).clamp(min=1e-30), math.inf)


def _pareto_var(d):
    a = d.alpha
    v = d.scale.pow(2) * a / ((a - 1).pow(2) * (a - 2)).clamp(min=1e-30)
    return torch.where(a > 2, v, math.inf)


Pareto = _make(
    "Pareto", ("scale", "alpha"),
    icdf=lambda p, scale, alpha: scale * torch.exp(-torch.log1p(-p) / alpha),
    log_prob=lambda x, scale, alpha: torch.log(alpha) + alpha * torch.log(scale) - (alpha + 1)
    * torch.log(x),
    cdf=lambda x, scale, alpha: -torch.expm1(alpha * torch.log(scale / x)),
    support=constraints.dependent_property(
        lambda self: constraints.greater_than_eq(self.scale), is_discrete=False, event_dim=0),
    doc="Pareto(scale, alpha): ``z = scale * exp(-log1p(-u) / alpha)``, support ``z >= scale``.",
    mean=_pareto_mean, variance=_pareto_var,
    entropy=lambda d: torch.log(d.scale / d.alpha) + 1 + 1 / d.alpha)


def _kuma_moment(d, k):
    """``E[z^k] = b B(1 + k/a, b)``."""
    a, b = d.concentration1, d.concentration0
    return torch.exp(torch.log(b) + torch.lgamma(1 + k / a) + torch.lgamma(b) - torch.lgamma(1 + k / a + b))


def _kuma_entropy(d):
    """``H = (1 - 1/b) + (1 - 1/a) (digamma(b + 1) + gamma) - log(a b)``."""
    a, b = d.concentration1, d.concentration0
    return (1 - 1 / b) + (1 - 1 / a) * (torch.digamma(b + 1) + _EULER) - torch.log(a * b)


Kumaraswamy = _make(
    "Kumaraswamy", ("concentration1", "concentration0"),
    icdf=lambda p, concentration1, concentration0: torch.exp(
        torch.log(-torch.expm1(torch.log1p(-p) / concentration0)) / concentration1),
    log_prob=lambda x, concentration1, concentration0: (
        torch.log(concentration1 * concentration0) + (concentration1 - 1) * torch.log(x)
        + (concentration0 - 1) * log1mexp(concentration1 * torch.log(x))),
    cdf=lambda x, concentration1, concentration0: -torch.expm1(
        concentration0 * log1mexp(concentration1 * torch.log(x))),
    support=constraints.unit_interval,
    doc="Kumaraswamy(a, b) on (0, 1): ``F(z) = 1 - (1 - z^a)^b``, "
        "``z = exp(log(-expm1(log1p(-u) / b)) / a)``.",
    mean=lambda d: _kuma_moment(d, 1),
    variance=lambda d: _kuma_moment(d, 2) - _kuma_moment(d, 1).pow(2),
    entropy=_kuma_entropy)


_LOG_HALF_PI = 0.5 * math.log(0.5 * math.pi)
HalfNormal = _make(
    "HalfNormal", ("scale",),
    icdf=lambda p, scale: scale * math.sqrt(2.0) * torch.erfinv(p),
    log_prob=lambda x, scale: -_LOG_HALF_PI - torch.log(scale) - 0.5 * (x / scale).pow(2),
    cdf=lambda x, scale: torch.erf(x / (scale * math.sqrt(2.0))),
    support=constraints.nonnegative,
    doc="HalfNormal(scale): ``|N(0, scale^2)|``, ``z = scale sqrt(2) erfinv(u)``.",
    mean=lambda d: d.scale * math.sqrt(2 / math.pi),
    variance=lambda d: d.scale.pow(2) * (1 - 2 / math.pi),
    entropy=lambda d: 0.5 * math.log(0.5 * math.pi * math.e) + torch.log(d.scale))


class LogNormal(TransformedDistribution, Reparameterized):
    """``z = exp(loc + scale * eps)``: the reparameterized :class:`Normal` through ``exp``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.positive

    def __init__(self, loc, scale, validate_args: bool | None = None):
        base = Normal(loc, scale, validate_args=validate_args)
        super().__init__(base, ExpTransform(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(LogNormal, _instance)
        return super().expand(batch_shape, _instance=new)

    def rsample(self, sample_shape=torch.Size(), noise: NoiseSource | None = None) -> torch.Tensor:
        return torch.exp(self.base_dist.rsample(sample_shape, noise=noise))

    def sample(self, sample_shape=torch.Size(), noise: NoiseSource | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, noise=noise)

    loc = property(lambda self: self.base_dist.loc)
    scale = property(lambda self: self.base_dist.scale)
    mean = property(lambda self: torch.exp(self.loc + self.scale.pow(2) / 2))
    variance = property(lambda self: torch.expm1(self.scale.pow(2)) * torch.exp(
        2 * self.loc + self.scale.pow(2)))

    def entropy(self) -> torch.Tensor:
        return self.base_dist.entropy() + self.loc


# Closed-form KLs between members of one family (p = first argument).
@register_kl(Exponential, Exponential)
def _kl_exponential(p, q):
    r = q.rate / p.rate
    return r - 1 - torch.log(r)


@register_kl(HalfNormal, HalfNormal)
def _kl_half_normal(p, q):
    r = (p.scale / q.scale).pow(2)
    return 0.5 * (r - 1 - torch.log(r))


@register_kl(Weibull, Weibull)
def _kl_weibull(p, q):
    """``log(k_p/l_p^k_p) - log(k_q/l_q^k_q) + (k_p - k_q)(log l_p - gamma/k_p)
    + (l_p/l_q)^k_q Gamma(k_q/k_p + 1) - 1`` (Bauckhage 2013)."""
    kp, lp, kq, lq = p.concentration, p.scale, q.concentration, q.scale
    return (torch.log(kp / kq) - kp * torch.log(lp) + kq * torch.log(lq)
            + (kp - kq) * (torch.log(lp) - _EULER / kp)
            + torch.exp(kq * torch.log(lp / lq) + torch.lgamma(kq / kp + 1)) - 1)


@register_kl(Pareto, Pareto)
def _kl_pareto(p, q):
    """``log(a_p / a_q) + a_q log(s_p / s_q) + a_q / a_p - 1`` if ``s_q <= s_p``, else inf."""
    kl = torch.log(p.alpha / q.alpha) + q.alpha * torch.log(p.scale / q.scale) + q.alpha / p.alpha - 1
    return torch.where(q.scale <= p.scale, kl, math.inf)


@register_kl(LogNormal, LogNormal)
def _kl_log_normal(p, q):
    return kl_normal_normal(p.loc, 2 * torch.log(p.scale), q.loc, 2 * torch.log(q.scale))

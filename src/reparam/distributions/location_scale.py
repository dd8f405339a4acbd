"""Location-scale families ``z = loc + scale * eps`` on :class:`LocationScale`.

Each standard ``eps`` is drawn through its inverse CDF from uniform noise, with the tails
written so that neither end loses digits (``log1p``, the two-sided Cauchy cotangent).
"""

from __future__ import annotations

import math

import torch
import torch.distributions as td

from ..noise import NoiseSource
from ._base import Reparameterized, TwinTransforms, clamp_into
from ._builders import Above, Below, LocationScale, StandardNoise, broadcast_params

__all__ = ["Laplace", "Logistic", "Cauchy", "Gumbel", "Uniform", "STANDARD", "LocationScale"]

_EULER = 0.5772156649015329


def _laplace_icdf(p):
    """``F^{-1}(p) = sign(p - 1/2) (-log(2q))``, ``q = min(p, 1 - p)`` (exact): no digits lost."""
    return torch.copysign(-torch.log(2 * torch.minimum(p, 1 - p)), p - 0.5)


def _laplace_cdf(x):
    return torch.where(x < 0, 0.5 * torch.exp(-x.abs()), 1 - 0.5 * torch.exp(-x.abs()))


def _cauchy_icdf(p):
    """``tan(pi (p - 1/2)) = sin(pi (p - 1/2)) / sin(pi q)``, ``q = min(p, 1 - p)``: each sine
    is taken where its argument is exact (``p - 1/2`` in the middle, ``q`` in the tails), so no
    digits are lost anywhere (and no ``where``: 8 elementwise passes)."""
    q = torch.minimum(p, 1 - p)
    return torch.sin((p - 0.5).mul_(math.pi)).div_(torch.sin(q.mul_(math.pi)))


def _cauchy_log_prob(x):
    """``-log(pi) - log1p(x^2)``, as ``2 log|x| + log1p(x^-2)`` for |x| > 1 (no overflow)."""
    ax = x.abs()
    big = ax > 1
    xb = torch.where(big, ax, 2.0)
    xs = torch.where(big, 0.0, x)
    return -math.log(math.pi) - torch.where(big, 2 * torch.log(xb) + torch.log1p(xb.pow(-2)),
                                            torch.log1p(xs * xs))


STANDARD: dict[str, StandardNoise] = {
    "laplace": StandardNoise(
        "laplace", "uniform", _laplace_icdf, lambda x: -x.abs() - math.log(2.0),
        _laplace_cdf, _laplace_icdf, 0.0, 2.0, 1.0 + math.log(2.0)),
    "logistic": StandardNoise(
        "logistic", "uniform", lambda p: torch.log(p) - torch.log1p(-p),
        lambda x: -x.abs() - 2 * torch.nn.functional.softplus(-x.abs()),
        torch.sigmoid, lambda p: torch.log(p) - torch.log1p(-p), 0.0, math.pi**2 / 3, 2.0),
    "cauchy": StandardNoise(
        "cauchy", "uniform", _cauchy_icdf, _cauchy_log_prob,
        lambda x: torch.atan2(torch.ones_like(x), -x) / math.pi, _cauchy_icdf,
        math.nan, math.inf, math.log(4 * math.pi)),
    "gumbel": StandardNoise(
        "gumbel", "uniform", lambda p: -torch.log(-torch.log(p)),
        lambda x: -(x + torch.exp(-x)), lambda x: torch.exp(-torch.exp(-x)),
        lambda p: -torch.log(-torch.log(p)), _EULER, math.pi**2 / 6, _EULER + 1.0),
    "uniform": StandardNoise(
        "uniform", "uniform", lambda p: p,
        lambda x: torch.where((x >= 0) & (x <= 1), 0.0, -math.inf).to(x.dtype),
        lambda x: x.clamp(0, 1), lambda p: p, 0.5, 1 / 12, 0.0, lower=0.0, upper=1.0),
    "normal": StandardNoise(
        "normal", "normal", lambda e: e, lambda x: -0.5 * x * x - 0.5 * math.log(2 * math.pi),
        lambda x: 0.5 * torch.special.erfc(-x / math.sqrt(2)), torch.special.ndtri,
        0.0, 1.0, 0.5 + 0.5 * math.log(2 * math.pi)),
}


class Laplace(LocationScale, td.Laplace):
    """Laplace: ``p(z) = exp(-|z - loc| / scale) / (2 scale)``."""

    def __init__(self, loc: torch.Tensor | float, scale: torch.Tensor | float,
                 validate_args: bool | None = None):
        super().__init__(STANDARD["laplace"], loc, scale, validate_args=validate_args)


class Logistic(LocationScale):
    """Logistic: ``F(z) = sigmoid((z - loc) / scale)``."""

    def __init__(self, loc: torch.Tensor | float, scale: torch.Tensor | float,
                 validate_args: bool | None = None):
        super().__init__(STANDARD["logistic"], loc, scale, validate_args=validate_args)


class Cauchy(LocationScale, td.Cauchy):
    """Cauchy: ``p(z) = 1 / (pi scale (1 + ((z - loc) / scale)^2))`` (mean nan, variance inf)."""

    def __init__(self, loc: torch.Tensor | float, scale: torch.Tensor | float,
                 validate_args: bool | None = None):
        super().__init__(STANDARD["cauchy"], loc, scale, validate_args=validate_args)


class Gumbel(TwinTransforms, LocationScale, td.Gumbel):
    """Gumbel (maximum): ``F(z) = exp(-exp(-(z - loc) / scale))``."""

    def __init__(self, loc: torch.Tensor | float, scale: torch.Tensor | float,
                 validate_args: bool | None = None):
        super().__init__(STANDARD["gumbel"], loc, scale, validate_args=validate_args)

    @property
    def _torch(self) -> td.Gumbel:
        return td.Gumbel(self.loc, self.scale, validate_args=False)


class Uniform(LocationScale, td.Uniform):
    """Uniform on ``[low, high)``: ``z = low + (high - low) u``, ``u ~ U(0, 1)``.

    Densities, moments and the cdf are torch's (``log_prob(high) = -inf``, as torch's); the
    sample is reparam's pathwise ``loc + scale * u`` with noise from a source.
    """

    _params = ("loc", "scale", "low", "high")

    def __init__(self, low: torch.Tensor | float, high: torch.Tensor | float,
                 validate_args: bool | None = None):
        p = broadcast_params("Uniform", low=low, high=high)
        self.low, self.high = p["low"], p["high"]
        self.base = STANDARD["uniform"]
        self.loc, self.scale = self.low, self.high - self.low
        Reparameterized.__init__(self, self.low.shape, validate_args=validate_args)

    @property
    def arg_constraints(self) -> dict:  # torch's (low < high); 'high' is checked first
        return {"high": Above("low", self.low), "low": Below("high", self.high)}

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        """``low + (high - low) u``, kept below ``high`` (rounding can reach it; torch's
        density there is 0)."""
        return clamp_into(super().rsample(sample_shape, noise),
                          hi=torch.nextafter(self.high, self.low))

    support = td.Uniform.support
    log_prob, cdf, icdf, entropy = td.Uniform.log_prob, td.Uniform.cdf, td.Uniform.icdf, \
        td.Uniform.entropy
    mean, mode, variance, stddev = td.Uniform.mean, td.Uniform.mode, td.Uniform.variance, \
        td.Uniform.stddev

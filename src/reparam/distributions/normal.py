"""The Gaussian, parameterized by scale or by log-variance (the VAE encoder's output)."""

from __future__ import annotations

import math

import torch
import torch.distributions as td
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all, lazy_property

from ..noise import NoiseSource
from ._autograd import LocScaleSample, LogVarSample
from ._base import Reparameterized

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class Normal(Reparameterized, td.Normal):
    r"""Normal distribution ``N(loc, scale^2)``; give exactly one of ``scale`` or ``logvar``.

    A drop-in for ``torch.distributions.Normal`` (a subclass of it: same signature, values and
    KL rules) with the keyword-only extra ``logvar=`` and ``rsample(noise=...)``.

    ``rsample`` returns ``z = loc + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` (or
    ``z = loc + scale * eps``) through an autograd function that saves no noise tensor:
    ``dz/dlogvar = (z - loc) / 2`` and ``dz/dscale = (z - loc) / scale``.

    Example::

        >>> mu, logvar = torch.zeros(3, requires_grad=True), torch.zeros(3, requires_grad=True)
        >>> z = Normal(mu, logvar=logvar).rsample((10,))    # (10, 3), differentiable
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive,
                       "logvar": constraints.real}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: torch.Tensor | float, scale: torch.Tensor | float | None = None,
                 validate_args: bool | None = None, *, logvar: torch.Tensor | float | None = None):
        if (scale is None) == (logvar is None):
            raise ValueError("Normal: give exactly one of 'scale' or 'logvar'")
        self._by_logvar = logvar is not None
        try:
            loc, other = broadcast_all(loc, logvar if self._by_logvar else scale)
        except RuntimeError as err:
            raise ValueError(f"Normal: shapes of 'loc' and "
                             f"'{'logvar' if self._by_logvar else 'scale'}' do not broadcast: "
                             f"{err}") from None
        self.loc = loc
        if self._by_logvar:
            self.logvar = other
        else:
            self.scale = other
        super().__init__(loc.shape, validate_args=validate_args)

    @property
    def parameterization(self) -> str:
        """``"logvar"`` or ``"scale"``: the argument this instance was built from (the other
        is derived from it)."""
        return "logvar" if self._by_logvar else "scale"

    @lazy_property
    def scale(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    @lazy_property
    def logvar(self) -> torch.Tensor:
        return 2.0 * torch.log(self.scale)

    @lazy_property
    def log_scale(self) -> torch.Tensor:
        return 0.5 * self.logvar if self._by_logvar else torch.log(self.scale)

    def expand(self, batch_shape: torch.Size | tuple[int, ...], _instance: Normal | None = None) -> Normal:
        new = self._get_checked_instance(Normal, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new._by_logvar = self._by_logvar
        if self._by_logvar:
            new.logvar = self.logvar.expand(batch_shape)
        else:
            new.scale = self.scale.expand(batch_shape)
        return self._finish_expand(new, batch_shape)

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    @property
    def stddev(self) -> torch.Tensor:
        return self.scale

    @property
    def variance(self) -> torch.Tensor:
        return torch.exp(self.logvar) if self._by_logvar else self.scale.pow(2)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        eps = self._draw_normal(sample_shape, noise, self.loc)
        if self._by_logvar:
            return LogVarSample.apply(self.loc, self.logvar, eps)
        return LocScaleSample.apply(self.loc, self.scale, eps)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log p(x) = -(x - loc)^2 / (2 var) - logvar / 2 - log(2 pi) / 2``."""
        if self._validate_args:
            self._validate_sample(value)
        if self._by_logvar:
            sq = (value - self.loc).pow(2) * torch.exp(-self.logvar)
        else:
            sq = ((value - self.loc) / self.scale).pow(2)
        return -0.5 * sq - self.log_scale - _HALF_LOG_2PI

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        """``F(x) = erfc(-(x - loc) / (scale sqrt 2)) / 2`` (accurate in the lower tail)."""
        if self._validate_args:
            self._validate_sample(value)
        return 0.5 * torch.special.erfc(-(value - self.loc) / (self.scale * math.sqrt(2.0)))

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        """``F^{-1}(p) = loc + scale * Phi^{-1}(p)``."""
        return self.loc + self.scale * torch.special.ndtri(value)

    def entropy(self) -> torch.Tensor:
        """``H = log(2 pi e) / 2 + log scale``."""
        return (_HALF_LOG_2PI + 0.5) + self.log_scale

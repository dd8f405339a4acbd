"""The two generic reparameterization tricks every concrete family here is built on.

- :class:`LocationScale`: ``z = loc + scale * eps`` with ``eps`` from a parameter-free
  :class:`StandardNoise` (itself a deterministic map of normal or uniform noise).
- :class:`InverseCDF`: ``z = F^{-1}(u; theta)`` with ``u ~ U(0, 1)``.

A new family is a few lines: a :class:`StandardNoise` and ``LocationScale(base, loc, scale)``,
or an ``icdf_fn(p, **params)`` and ``InverseCDF(icdf_fn, params)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from .._torch_compat import GreaterThan
from ..noise import NoiseSource
from ._autograd import LocScaleSample
from ._base import Reparameterized, outside_support

__all__ = ["StandardNoise", "LocationScale", "InverseCDF", "Above", "Below", "broadcast_params"]


class Above(GreaterThan):
    """``value > other`` for a parameter ``other`` named in error messages (e.g. ``high > low``);
    a NaN ``other`` is that parameter's own fault, so it does not fail this check."""

    def __init__(self, name: str, lower_bound: torch.Tensor) -> None:
        super().__init__(lower_bound)
        self.name = name

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return super().check(value) | (torch.isnan(self.lower_bound) & ~torch.isnan(value))

    def __repr__(self) -> str:
        return f"> '{self.name}'"


class Below(constraints.less_than):  # torch's public name of the class
    """``value < other`` (e.g. ``low < high``), named and NaN-tolerant as :class:`Above`."""

    def __init__(self, name: str, upper_bound: torch.Tensor) -> None:
        super().__init__(upper_bound)
        self.name = name

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return super().check(value) | (torch.isnan(self.upper_bound) & ~torch.isnan(value))

    def __repr__(self) -> str:
        return f"< '{self.name}'"


def broadcast_params(family: str, **params: torch.Tensor | float) -> dict[str, torch.Tensor]:
    """Broadcast parameters to one shape; ``ValueError`` naming them when they do not fit."""
    try:
        values = broadcast_all(*params.values())
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"{family}: parameters {list(params)} do not broadcast: {err}") from None
    return dict(zip(params, values, strict=True))


@dataclass(frozen=True)
class StandardNoise:
    """A parameter-free standard distribution ``eps = transform(draw)``.

    ``draw`` names the noise it needs from a source (``"normal"`` or ``"uniform"``);
    ``log_prob``, ``cdf``, ``icdf`` are those of ``eps``; ``mean``, ``variance``, ``entropy``
    are numbers (``nan`` / ``inf`` where undefined). ``lower``/``upper`` bound its support.
    """

    name: str
    draw: str
    transform: Callable[[torch.Tensor], torch.Tensor]
    log_prob: Callable[[torch.Tensor], torch.Tensor]
    cdf: Callable[[torch.Tensor], torch.Tensor]
    icdf: Callable[[torch.Tensor], torch.Tensor]
    mean: float
    variance: float
    entropy: float
    lower: float = field(default=-math.inf)
    upper: float = field(default=math.inf)


class LocationScale(Reparameterized):
    r"""``z = loc + scale * eps``, ``eps ~ base`` (a :class:`StandardNoise`).

    ``log p(z) = log p_eps((z - loc) / scale) - log scale``, ``F(z) = F_eps((z - loc) / scale)``,
    ``H = H_eps + log scale``. Samples go through a memory-lean autograd function that saves
    no noise (``dz/dscale = (z - loc) / scale``).

    Example::

        >>> d = LocationScale(LAPLACE, torch.zeros(3), torch.ones(3))
        >>> d.rsample((10,), noise=reparam.noise.Sobol(seed=0)).shape
        torch.Size([10, 3])
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = True
    _params: tuple[str, ...] = ("loc", "scale")

    def __init__(self, base: StandardNoise, loc: torch.Tensor | float, scale: torch.Tensor | float,
                 validate_args: bool | None = None):
        self.base = base
        p = broadcast_params(type(self).__name__, loc=loc, scale=scale)
        self.loc, self.scale = p["loc"], p["scale"]
        super().__init__(self.loc.shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> torch.distributions.constraints.Constraint:
        lo, hi = self.base.lower, self.base.upper
        if math.isinf(lo) and math.isinf(hi):
            return constraints.real
        if math.isinf(hi):
            return constraints.greater_than_eq(self.loc + self.scale * lo)
        return constraints.interval(self.loc + self.scale * lo, self.loc + self.scale * hi)

    def expand(self, batch_shape: torch.Size | tuple[int, ...],
               _instance: LocationScale | None = None) -> LocationScale:
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        new.base = self.base
        for name in self._params:
            setattr(new, name, getattr(self, name).expand(batch_shape))
        return self._finish_expand(new, batch_shape)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        draw = getattr(self, f"_draw_{self.base.draw}")(sample_shape, noise, self.loc)
        return LocScaleSample.apply(self.loc, self.scale, self.base.transform(draw))

    def _standardize(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return (value - self.loc) / self.scale

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.base.log_prob(self._standardize(value)) - torch.log(self.scale)

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        return self.base.cdf(self._standardize(value))

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        return self.loc + self.scale * self.base.icdf(value)

    def entropy(self) -> torch.Tensor:
        return self.base.entropy + torch.log(self.scale)

    @property
    def mean(self) -> torch.Tensor:
        if not math.isfinite(self.base.mean):
            return torch.full_like(self.loc, self.base.mean)
        return self.loc + self.scale * self.base.mean

    @property
    def variance(self) -> torch.Tensor:
        return self.scale.pow(2) * self.base.variance


class InverseCDF(Reparameterized):
    r"""``z = F^{-1}(u; theta)`` with ``u ~ U(0, 1)`` from the noise source.

    ``icdf_fn(p, **params)`` must be differentiable in the parameters (torch ops, or an
    autograd function); pathwise gradients are ``dz/dtheta = d F^{-1}(u; theta) / dtheta``.
    Optional ``log_prob_fn(x, **params)`` and ``cdf_fn(x, **params)`` complete the family.

    Example (an Exponential in one line)::

        >>> d = InverseCDF(lambda p, rate: -torch.log1p(-p) / rate, {"rate": torch.ones(3)},
        ...                arg_constraints={"rate": constraints.positive},
        ...                support=constraints.nonnegative)
    """

    arg_constraints: dict = {}
    support = constraints.real
    has_rsample = True

    def __init__(
        self,
        icdf_fn: Callable[..., torch.Tensor],
        params: dict,
        *,
        log_prob_fn: Callable[..., torch.Tensor] | None = None,
        cdf_fn: Callable[..., torch.Tensor] | None = None,
        arg_constraints: dict | None = None,
        support: constraints.Constraint | None = None,
        validate_args: bool | None = None,
    ) -> None:
        self._fns = (icdf_fn, log_prob_fn, cdf_fn)
        p = broadcast_params(type(self).__name__, **params)
        self._params = tuple(p)
        for name, value in p.items():
            setattr(self, name, value)
        if arg_constraints is not None or not type(self).arg_constraints:
            self.arg_constraints = arg_constraints or {n: constraints.real for n in p}
        if support is not None:
            self.support = support
        super().__init__(next(iter(p.values())).shape, validate_args=validate_args)

    @property
    def params(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self._params}

    def expand(self, batch_shape: torch.Size | tuple[int, ...],
               _instance: InverseCDF | None = None) -> InverseCDF:
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        new.__dict__.update({k: v for k, v in self.__dict__.items() if k in
                             ("_fns", "_params", "arg_constraints", "support")})
        for name in self._params:
            setattr(new, name, getattr(self, name).expand(batch_shape))
        return self._finish_expand(new, batch_shape)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        like = next(iter(self.params.values()))
        return self._fns[0](self._draw_uniform(sample_shape, noise, like), **self.params)

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        return self._fns[0](value, **self.params)

    def _call(self, index: int, what: str, value: torch.Tensor) -> torch.Tensor:
        if self._fns[index] is None:
            raise NotImplementedError(f"{type(self).__name__} was built without {what}")
        if self._validate_args:
            self._validate_sample(value)
        if not torch.is_tensor(value):
            value = torch.as_tensor(value, dtype=next(iter(self.params.values())).dtype)
        return outside_support(self.support, value, self._fns[index](value, **self.params),
                               cdf=index == 2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log_prob_fn`` inside the support, ``-inf`` outside (validation off)."""
        return self._call(1, "log_prob_fn", value)

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        """``cdf_fn`` inside the support; ``0`` below it, ``1`` above it (validation off)."""
        return self._call(2, "cdf_fn", value)

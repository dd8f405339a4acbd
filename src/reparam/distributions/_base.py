"""The base class every reparam family shares: validation, noise plumbing, ``sample``."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable

import torch
from torch.distributions import Distribution, constraints
from torch.distributions.utils import lazy_property

from .. import noise as _noise

_DESCRIPTIONS = {
    constraints.real: "a real number (not NaN)",
    constraints.positive: "> 0",
    constraints.nonnegative: ">= 0",
    constraints.unit_interval: "in [0, 1]",
    constraints.simplex: "a probability vector (non-negative, summing to 1)",
    constraints.real_vector: "a vector of real numbers (not NaN)",
    constraints.lower_cholesky: "lower triangular with a positive diagonal",
    constraints.positive_definite: "positive definite",
}


def describe(constraint: constraints.Constraint) -> str:
    """Words for a constraint, for error messages."""
    return _DESCRIPTIONS.get(constraint, repr(constraint))


def check_parameters(dist: Distribution) -> None:
    """Raise ``ValueError`` naming the first parameter that violates its constraint."""
    name_of = type(dist).__name__
    for param, constraint in dist.arg_constraints.items():
        declared = inspect.getattr_static(type(dist), param, None)
        if isinstance(declared, lazy_property) and param not in dist.__dict__:
            continue  # a derived parameter that was not given
        value = getattr(dist, param, None)
        if not torch.is_tensor(value):
            continue
        ok = constraint.check(value)
        if not bool(ok.all()):
            bad = value.detach()
            if bad.dim() > 0 and ok.shape == bad.shape:
                bad = bad[~ok]
            shown = bad.flatten()[:5].tolist()
            raise ValueError(
                f"{name_of}: parameter '{param}' must be {describe(constraint)}; "
                f"got invalid values {shown} (tensor of shape {tuple(value.shape)})"
            )


class Reparameterized(Distribution):
    """A ``torch.distributions.Distribution`` whose ``rsample`` draws noise from a source.

    Parameters are checked at construction (``ValueError`` naming the parameter and its
    constraint) unless ``validate_args=False``, even when torch's global validation is off.
    Subclasses implement ``rsample(sample_shape, noise)``; ``sample`` is ``rsample`` under
    ``torch.no_grad()``.
    """

    has_rsample = True

    def __init__(
        self,
        batch_shape: torch.Size = torch.Size(),
        event_shape: torch.Size = torch.Size(),
        validate_args: bool | None = None,
    ) -> None:
        # Distribution's own __init__, not the next class in the MRO: a family that also
        # subclasses its torch namesake (``class Normal(Reparameterized, td.Normal)``) sets
        # its parameters itself and must not run torch's constructor.
        Distribution.__init__(self, batch_shape, event_shape, validate_args=False)
        self._validate_args = Distribution._validate_args if validate_args is None else validate_args
        if validate_args is not False:
            check_parameters(self)

    def _finish_expand(self, new: Reparameterized, batch_shape: torch.Size) -> Reparameterized:
        """The common tail of ``expand``: shapes set, parameters not re-validated, the
        sample-validation flag carried over."""
        Reparameterized.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _validate_sample(self, value) -> None:
        """torch's check (support, shape); a Python number is checked as a tensor."""
        if not torch.is_tensor(value):
            value = torch.as_tensor(value, dtype=torch.get_default_dtype())
        Distribution._validate_sample(self, value)

    def _noise_shape(self, sample_shape: torch.Size | tuple[int, ...]) -> torch.Size:
        return self._extended_shape(torch.Size(sample_shape))

    def _draw_normal(self, sample_shape, noise, like: torch.Tensor) -> torch.Tensor:
        return _noise.resolve(noise).normal(self._noise_shape(sample_shape), like.dtype, like.device)

    def _draw_uniform(self, sample_shape, noise, like: torch.Tensor) -> torch.Tensor:
        return _noise.resolve(noise).uniform(self._noise_shape(sample_shape), like.dtype, like.device)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: _noise.NoiseSource | None = None) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
               noise: _noise.NoiseSource | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, noise=noise)


def outside_support(support: constraints.Constraint, value: torch.Tensor, result: torch.Tensor,
                    *, cdf: bool = False) -> torch.Tensor:
    """``result`` where ``value`` lies in ``support``; elsewhere ``-inf`` (a log density) or,
    for a ``cdf``, ``0`` at or below the support's lower bound and ``1`` above it. NaN stays NaN.

    With validation off, torch's formulas evaluated outside the support give finite or NaN
    numbers (``HalfNormal(1).log_prob(-1) = -0.73``); this keeps densities exact everywhere.
    """
    if not torch.is_tensor(value):
        value = torch.as_tensor(value, dtype=result.dtype, device=result.device)
    inside = support.check(value)
    if support.event_dim == 0:
        inside = inside | torch.isnan(value)
    if not cdf:
        return torch.where(inside, result, -math.inf)
    lower = getattr(support, "lower_bound", None)
    low_side = value <= lower if lower is not None else torch.zeros_like(inside)
    return torch.where(inside, result, torch.where(low_side, 0.0, 1.0).to(result.dtype))


def as_value(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """A value to score as a tensor (a Python number takes ``like``'s dtype and device)."""
    if torch.is_tensor(value):
        return value
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def keep_open(upper: bool = True) -> Callable[[Callable], Callable]:
    """Decorate an ``rsample`` so that its samples go through :func:`clamp_open`."""
    def wrap(rsample):
        @functools.wraps(rsample)
        def clamped(self, sample_shape=torch.Size(), noise=None):
            return clamp_open(rsample(self, sample_shape, noise), upper)
        return clamped
    return wrap


class _Clamp(torch.autograd.Function):
    """``clamp(x, lo, hi)`` whose backward is the identity (no pass over the tensor): for a
    sample that rounding pushed one float past a finite bound (Uniform's ``high``), whose
    gradient before the clamp is finite."""

    @staticmethod
    def forward(ctx, x, lo, hi):
        return x.clamp(min=lo, max=hi)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


def clamp_into(x: torch.Tensor, lo: torch.Tensor | float | None = None,
               hi: torch.Tensor | float | None = None) -> torch.Tensor:
    """``clamp(x, lo, hi)`` with an identity gradient (``lo`` / ``hi``: numbers or tensors)."""
    return _Clamp.apply(x, lo, hi)


def clamp_open(x: torch.Tensor, upper: bool = True) -> torch.Tensor:
    """Keep samples inside the open support, as torch does: ``[tiny, 1 - eps / 2]`` (or
    ``[tiny, inf)`` when ``upper`` is False). A clamped entry gets a zero gradient, as in
    torch (the value before the clamp underflowed, and its own gradient can be ``0 * inf``)."""
    info = torch.finfo(x.dtype)
    return x.clamp(min=info.tiny, max=1 - info.eps / 2 if upper else None)


class TorchDensity:
    """Mixin for families whose density and entropy are those of a ``torch.distributions``
    twin built from the same parameters (``self._torch``); only the sampler (``rsample``
    and its gradient) is reparam's own. Outside the support the density is ``-inf``."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        twin = self._torch
        value = as_value(value, twin.mean)
        return outside_support(self.support, value, twin.log_prob(value))

    def entropy(self) -> torch.Tensor:
        return self._torch.entropy()


class TwinTransforms:
    """``base_dist`` and ``transforms`` of the torch twin (``self._torch``), for families whose
    torch namesake is a ``TransformedDistribution``: torch's KL rule for a pair of those
    compares the transforms (``NotImplementedError`` when they differ), as it does for torch's."""

    @property
    def base_dist(self) -> Distribution:
        return self._torch.base_dist

    @property
    def transforms(self) -> list:
        return self._torch.transforms

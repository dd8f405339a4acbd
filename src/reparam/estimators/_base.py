"""The estimator contract and the helpers every estimator shares."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import torch
from torch.distributions import Distribution

from ..noise import NoiseSource

CostFn = Callable[[torch.Tensor], torch.Tensor]


class Estimator:
    r"""``estimator(f, dist, num_samples) -> surrogate``.

    ``f`` maps samples of shape ``(num_samples, *batch, *event)`` to per-sample costs of
    shape ``(num_samples, *rest)``, where ``rest`` is a prefix of ``batch`` (a cost at
    index ``b`` may depend only on the samples at batch index ``b``). The surrogate has
    shape ``rest``; its value is the Monte Carlo estimate of ``E_q[f(z)]`` and
    ``surrogate.sum().backward()`` leaves this estimator's gradient in the distribution's
    parameters (and whatever they were computed from) and in the parameters inside ``f``.
    """

    #: True when the surrogate estimates ``E_q[f(z) + log q(z)]`` (STL, DReG): the entropy
    #: term is then part of the estimator and an objective must not add its own KL.
    includes_log_q = False

    def __call__(self, f: CostFn, dist: Distribution, num_samples: int = 1, *,
                 noise: NoiseSource | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def check_num_samples(num_samples: int, minimum: int = 1) -> int:
    if not isinstance(num_samples, int) or num_samples < minimum:
        raise ValueError(f"num_samples must be an integer >= {minimum}, got {num_samples!r}")
    return num_samples


@functools.lru_cache(maxsize=256)
def _signature_takes_noise(fn: Callable[..., torch.Tensor]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # no signature to inspect (a builtin): try the call
        return True
    return "noise" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def takes_noise(method: Callable[..., torch.Tensor]) -> bool:
    """Whether ``method`` (a bound ``rsample``/``sample``) accepts a ``noise=`` keyword
    (looked up once per function: the signature of a class's method does not change)."""
    fn = getattr(method, "__func__", method)
    try:
        return _signature_takes_noise(fn)
    except TypeError:  # an unhashable callable
        return _signature_takes_noise.__wrapped__(fn)


def draw(dist: Distribution, num_samples: int, noise: NoiseSource | None,
         reparameterized: bool) -> torch.Tensor:
    """``rsample``/``sample`` of shape ``(num_samples, ...)``; ``noise`` for reparam families.

    Only a family whose method has no ``noise`` parameter gets the "needs a reparam family"
    error; a ``TypeError`` raised inside the method propagates unchanged.
    """
    if reparameterized and not dist.has_rsample:
        raise ValueError(f"{type(dist).__name__} has no rsample: use a score-function estimator")
    method = dist.rsample if reparameterized else dist.sample
    if noise is None:
        return method((num_samples,))
    if not takes_noise(method):
        raise ValueError(
            f"noise= needs a reparam family; {type(dist).__name__}."
            f"{'rsample' if reparameterized else 'sample'} "
            f"does not take a noise source"
        )
    return method((num_samples,), noise=noise)  # type: ignore[call-arg]


def costs_of(f: CostFn, z: torch.Tensor, num_samples: int) -> torch.Tensor:
    """``f(z)``, checked to be per-sample costs of shape ``(num_samples, *rest)``."""
    costs = f(z)
    if not torch.is_tensor(costs) or costs.dim() == 0 or costs.shape[0] != num_samples:
        shape = tuple(costs.shape) if torch.is_tensor(costs) else type(costs).__name__
        raise ValueError(
            f"f must return per-sample costs of shape (num_samples={num_samples}, ...), got {shape}"
        )
    return costs


def sum_to_costs(log_prob: torch.Tensor, costs: torch.Tensor) -> torch.Tensor:
    """Sum ``log q(z)`` of shape ``(S, *batch)`` over the dims beyond ``costs``' ``(S, *rest)``."""
    extra = log_prob.dim() - costs.dim()
    if extra < 0 or log_prob.shape[: costs.dim()] != costs.shape:
        raise ValueError(
            f"cost shape {tuple(costs.shape)} must be a prefix of (num_samples, *batch_shape) "
            f"= {tuple(log_prob.shape)}"
        )
    return log_prob.sum(tuple(range(costs.dim(), log_prob.dim()))) if extra else log_prob


def pad_like(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """``x`` with trailing singleton dims so it has ``ndim`` dims (broadcasts over them)."""
    return x.reshape(x.shape + (1,) * (ndim - x.dim()))


def linear_term(grad: torch.Tensor, param: torch.Tensor, ndim: int) -> torch.Tensor:
    """Zero-valued term whose gradient wrt ``param`` is ``grad``, summed to ``ndim`` dims."""
    t = grad.detach() * param
    t = t - t.detach()
    return t.sum(tuple(range(ndim, t.dim()))) if t.dim() > ndim else t

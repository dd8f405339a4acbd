r"""Biased estimators for discrete latents: Gumbel-softmax / Concrete and straight-through.

The discrete latent (a Bernoulli or a one-hot categorical) is replaced by its continuous
relaxation at temperature ``T`` (:class:`~reparam.distributions.RelaxedBernoulli`,
:class:`~reparam.distributions.RelaxedOneHotCategorical`) and ``f`` is differentiated
along the relaxed sample (Maddison et al. 2017; Jang et al. 2017). Both estimate the
gradient of ``E[f(relaxed z)]``, not of ``E[f(z)]``: the bias shrinks as ``T -> 0`` while
the variance grows. ``f`` must accept relaxed (non-binary) inputs. The bias is measured
by ``reparam compare --study discrete``.
"""

from __future__ import annotations

import torch
from torch import distributions as td
from torch.distributions import Distribution

from ..distributions.relaxed import RelaxedBernoulli, RelaxedOneHotCategorical
from ..noise import NoiseSource
from ._base import CostFn, Estimator, check_num_samples, costs_of
from ._discrete import _unwrap, bernoulli_logits, one_hot_logits


def relax(dist: Distribution, temperature: float | torch.Tensor,
          straight_through: bool = False) -> Distribution:
    """The relaxation of a Bernoulli / one-hot categorical ``dist`` at ``temperature``."""
    base, ndims = _unwrap(dist)
    if isinstance(base, td.Bernoulli):
        logits = bernoulli_logits(dist, "relax")
        out = RelaxedBernoulli(temperature, logits=logits, straight_through=straight_through)
    else:
        logits = one_hot_logits(dist, "relax")
        out = RelaxedOneHotCategorical(temperature, logits=logits,
                                       straight_through=straight_through)
    return td.Independent(out, ndims) if ndims else out


class GumbelSoftmax(Estimator):
    r"""``grad E[f(z)] ~= (1/S) sum_s grad f(y_s)``, ``y_s`` the relaxed sample at
    ``temperature`` (binary Concrete ``sigmoid((phi + logit u) / T)`` or
    ``softmax((phi + g) / T)``). BIASED; the value is the mean of ``f(y_s)``.

    ``straight_through=True`` evaluates ``f`` at the hard sample (``1[y > 1/2]`` / one-hot
    argmax, so the value is unbiased for ``E[f(z)]``) with the relaxed sample's gradient.
    """

    multi_sample = False
    discrete_only = True  # Bernoulli and one-hot categorical latents

    def __init__(self, temperature: float = 0.5, straight_through: bool = False) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.straight_through = straight_through

    def __call__(self, f: CostFn, dist: Distribution, num_samples: int = 1, *,
                 noise: NoiseSource | None = None) -> torch.Tensor:
        S = check_num_samples(num_samples)
        relaxed, _ = _unwrap(relax(dist, self.temperature, self.straight_through))
        y = relaxed.rsample((S,), noise=noise)  # same values as the Independent wrapper's
        return costs_of(f, y, S).mean(0)

    def __repr__(self) -> str:
        return (f"GumbelSoftmax(temperature={self.temperature}, "
                f"straight_through={self.straight_through})")


class StraightThrough(GumbelSoftmax):
    """Straight-through Gumbel-softmax (Jang et al. 2017; Bengio et al. 2013): hard
    samples forward, the relaxed gradient at ``temperature`` (default 1) backward. BIASED."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__(temperature, straight_through=True)

    def __repr__(self) -> str:
        return f"StraightThrough(temperature={self.temperature})"

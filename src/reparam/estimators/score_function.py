"""The score-function estimator (REINFORCE, likelihood ratio), with baselines."""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from ..noise import NoiseSource
from ._base import CostFn, Estimator, check_num_samples, costs_of, draw
from .baselines import BASELINES, Baseline, Context


class ScoreFunction(Estimator):
    r"""``grad E_q[f(z)] ~= (1/S) sum_s (f(z_s) - b_s) grad_theta log q(z_s; theta)``.

    Works for any family with ``log_prob`` (discrete ones included) and any ``f``, even
    non-differentiable; ``f`` itself gets its ordinary gradient at the drawn samples. The
    surrogate is ``mean_s[f_s + (f_s - b_s) (log q_s - stop_grad(log q_s))]`` (the value is
    the mean cost; the second term, the baseline's ``score_term``, is zero-valued and carries
the score gradient).

    ``baseline``: a :class:`~reparam.estimators.baselines.Baseline` or one of the names
    ``"none"``, ``"ema"``, ``"loo"``, ``"learned"``, ``"cv"``. ``context=`` (call time) is
    the input of an input-dependent :class:`Learned` baseline.

    Example::

        >>> est = ScoreFunction("loo")
        >>> logits = torch.zeros(3, requires_grad=True)
        >>> est(lambda z: (z - 1.0) ** 2, Categorical(logits=logits), 8).backward()
    """

    def __init__(self, baseline: Baseline | str | None = None) -> None:
        if baseline is None:
            baseline = Baseline()
        elif isinstance(baseline, str):
            try:
                baseline = BASELINES[baseline]()
            except KeyError:
                raise ValueError(
                    f"unknown baseline {baseline!r}; choose one of {sorted(BASELINES)}"
                ) from None
        if not isinstance(baseline, Baseline):
            raise TypeError(f"baseline must be a Baseline, got {type(baseline).__name__}")
        self.baseline = baseline

    def __call__(self, f: CostFn, dist: Distribution, num_samples: int = 1, *,
                 noise: NoiseSource | None = None, context: Context = None) -> torch.Tensor:
        check_num_samples(num_samples, self.baseline.min_samples)
        z = draw(dist, num_samples, noise, reparameterized=False).detach()
        costs = costs_of(f, z, num_samples)
        return costs.mean(0) + self.baseline.score_term(costs, dist, z, context)

    def __repr__(self) -> str:
        return f"ScoreFunction({self.baseline!r})"

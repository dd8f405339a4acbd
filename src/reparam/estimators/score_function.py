"""The score-function estimator (REINFORCE, likelihood ratio), with baselines."""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from ..noise import NoiseSource
from ._base import CostFn, Estimator, check_num_samples, costs_of, draw, linear_term, sum_to_costs
from ._views import parameters
from .baselines import BASELINES, Baseline, ControlVariate


class ScoreFunction(Estimator):
    r"""``grad E_q[f(z)] ~= (1/S) sum_s (f(z_s) - b_s) grad_theta log q(z_s; theta)``.

    Works for any family with ``log_prob`` (discrete ones included) and any ``f``, even
    non-differentiable; ``f`` itself gets its ordinary gradient at the drawn samples. The
    surrogate is ``mean_s[f_s + (f_s - b_s) (log q_s - stop_grad(log q_s))]`` (the value is
    the mean cost; the second term is zero-valued and carries the score gradient).

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
                 noise: NoiseSource | None = None, context=None) -> torch.Tensor:
        check_num_samples(num_samples, self.baseline.min_samples)
        z = draw(dist, num_samples, noise, reparameterized=False).detach()
        costs = costs_of(f, z, num_samples)
        if isinstance(self.baseline, ControlVariate):
            params = parameters(dist)
            grads = self.baseline.score_gradients(costs, dist, z)
            rest = costs.dim() - 1
            terms = [linear_term(g, params[n], rest) for n, g in grads.items()]
            return costs.mean(0) + sum(terms, torch.zeros_like(costs[0]))
        log_q = sum_to_costs(dist.log_prob(z), costs)
        advantage = costs.detach() - self.baseline.values(costs, dist, context)
        self.baseline.update(costs, dist, context)
        return (costs + advantage * (log_q - log_q.detach())).mean(0)

    def __repr__(self) -> str:
        return f"ScoreFunction({self.baseline!r})"

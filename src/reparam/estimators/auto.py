"""``Auto``: pathwise when the family can, score function with a baseline otherwise."""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from ..noise import NoiseSource
from ._base import CostFn, Estimator
from .baselines import EMA, LeaveOneOut
from .pathwise import Pathwise
from .score_function import ScoreFunction


class Auto(Estimator):
    """Per call: :class:`Pathwise` if ``dist.has_rsample``, else :class:`ScoreFunction` with
    the leave-one-out baseline (``num_samples >= 2``) or, for one sample, an EMA baseline.

    The pathwise choice assumes ``f`` is differentiable; for a cost with jumps (a step, an
    argmax) pass :class:`ScoreFunction` explicitly.
    """

    def __init__(self) -> None:
        self.pathwise = Pathwise()
        self.loo = ScoreFunction(LeaveOneOut())
        self.ema = ScoreFunction(EMA())

    def choose(self, dist: Distribution, num_samples: int) -> Estimator:
        if dist.has_rsample:
            return self.pathwise
        return self.loo if num_samples >= 2 else self.ema

    def __call__(self, f: CostFn, dist: Distribution, num_samples: int = 1, *,
                 noise: NoiseSource | None = None) -> torch.Tensor:
        return self.choose(dist, num_samples)(f, dist, num_samples, noise=noise)

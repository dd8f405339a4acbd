"""Likelihoods p(x|z): map decoder outputs to a distribution over the pixels.

Each likelihood has ``log_prob(params, x)`` (summed over the D pixels, the fast path used
in training), ``mean(params)`` (for pictures) and ``__call__(params)`` -> a
``torch.distributions`` object with event shape (D,). ``params_per_dim`` says how many
decoder outputs each pixel takes: the decoder's output has ``params_per_dim * D`` numbers,
laid out as ``params_per_dim`` consecutive blocks of D (``params.chunk(k, -1)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import (
    Bernoulli,
    ContinuousBernoulli,
    Distribution,
    Independent,
    Normal,
    constraints,
)


class Likelihood(nn.Module):
    params_per_dim = 1

    def forward(self, params: torch.Tensor) -> torch.distributions.Distribution:
        raise NotImplementedError

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class BernoulliLikelihood(Likelihood):
    """``p(x|z) = prod_d sigmoid(l_d)^x_d (1 - sigmoid(l_d))^(1 - x_d)`` from logits ``l``."""

    def forward(self, logits: torch.Tensor) -> Independent:
        return Independent(Bernoulli(logits=logits, validate_args=False), 1)

    def log_prob(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``sum_d [x_d l_d - softplus(l_d)]``. Without gradients (evaluation, importance
        sampling) two passes over the logits; with gradients torch's fused BCE, whose backward
        is one kernel."""
        if torch.is_grad_enabled():
            return -F.binary_cross_entropy_with_logits(
                logits, x.expand_as(logits), reduction="none").sum(-1)
        return (logits * x).sum(-1) - F.softplus(logits).sum(-1)

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)


_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class GaussianLikelihood(Likelihood):
    """``p(x|z) = prod_d N(x_d; m_d, s_d^2)``.

    Fixed variance: the decoder gives ``m`` and ``s = sigma``. Learned (``learned=True``): the
    decoder gives ``(m, log s)`` per pixel, ``log s`` clamped below at ``log(min_sigma)`` so
    the density cannot diverge on discrete data.
    ``log p = -(x - m)^2 / (2 s^2) - log s - log(2 pi) / 2``.
    """

    def __init__(self, sigma: float = 1.0, learned: bool = False, min_sigma: float = 1e-3) -> None:
        super().__init__()
        if not sigma > 0 or not min_sigma > 0:
            raise ValueError(f"GaussianLikelihood: 'sigma' and 'min_sigma' must be > 0, "
                             f"got {sigma}, {min_sigma}")
        self.sigma, self.learned, self.min_log_sigma = float(sigma), bool(learned), math.log(min_sigma)
        self.params_per_dim = 2 if learned else 1

    def _loc_log_scale(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.learned:
            loc, log_scale = params.chunk(2, dim=-1)
            return loc, log_scale.clamp(min=self.min_log_sigma)
        return params, torch.full_like(params, math.log(self.sigma))

    def forward(self, params: torch.Tensor) -> Independent:
        loc, log_scale = self._loc_log_scale(params)
        return Independent(Normal(loc, log_scale.exp(), validate_args=False), 1)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        loc, log_scale = self._loc_log_scale(params)
        sq = ((x - loc) * torch.exp(-log_scale)).pow(2)
        return (-0.5 * sq - log_scale - _HALF_LOG_2PI).sum(-1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return self._loc_log_scale(params)[0]


def continuous_bernoulli_log_norm(logits: torch.Tensor) -> torch.Tensor:
    r"""``log C(l)`` of the continuous Bernoulli with ``lambda = sigmoid(l)``:

    ``C = 2 artanh(1 - 2 lambda) / (1 - 2 lambda) = l / tanh(l / 2)`` (an even function),
    computed as ``log|l| - log(-expm1(-|l|)) + log1p(exp(-|l|))``; near ``l = 0`` (lambda
    near 1/2, where both forms cancel) the series ``log 2 + u^2 / 3 - 7 u^4 / 90``, ``u = l/2``.
    """
    a = logits.abs()
    small = a < 1e-2
    safe = torch.where(small, torch.ones_like(a), a)
    far = torch.log(safe) - torch.log(-torch.expm1(-safe)) + F.softplus(-safe)
    u2 = (0.5 * torch.where(small, a, torch.zeros_like(a))).pow(2)
    near = math.log(2.0) + u2 / 3 - 7 * u2.pow(2) / 90
    return torch.where(small, near, far)


class ContinuousBernoulliLikelihood(Likelihood):
    r"""Continuous Bernoulli (Loaiza-Ganem & Cunningham 2019) for x in [0, 1], from logits:

    ``log p(x|l) = x log lambda + (1 - x) log(1 - lambda) + log C(l)``, ``lambda = sigmoid(l)``
    (:func:`continuous_bernoulli_log_norm`). Mean ``1 / (1 - e^{-l}) - 1 / l``
    (``1/2 + l / 12 - l^3 / 720`` near 0).
    """

    def forward(self, logits: torch.Tensor) -> Independent:
        return Independent(ContinuousBernoulli(logits=logits, validate_args=False), 1)

    def log_prob(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
        return (continuous_bernoulli_log_norm(logits) - bce).sum(-1)

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        small = logits.abs() < 1e-2
        safe = torch.where(small, torch.ones_like(logits), logits)
        far = -1.0 / torch.expm1(-safe) - 1.0 / safe
        near = 0.5 + logits / 12 - logits.pow(3) / 720
        return torch.where(small, near, far)


def discretized_logistic_log_prob(loc: torch.Tensor, log_scale: torch.Tensor, x: torch.Tensor,
                                  num_bins: int = 256) -> torch.Tensor:
    r"""Per-pixel ``log P(x)`` of a discretized logistic on the grid ``k / (n - 1)`` of [0, 1].

    With ``h = 1 / (2 (n - 1))``, ``a = (x + h - m) / s``, ``b = (x - h - m) / s``:
    ``P(x) = sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - e^{b - a})``, computed as
    ``logsigmoid(a) + logsigmoid(-b) + log(-expm1(b - a))`` (no cancellation in either tail);
    the edge bins are open: ``P(0) = sigmoid(a)``, ``P(1) = sigmoid(-b)``.
    """
    inv_s = torch.exp(-log_scale)
    half = 0.5 / (num_bins - 1)
    a = (x + half - loc) * inv_s
    b = (x - half - loc) * inv_s
    inner = F.logsigmoid(a) + F.logsigmoid(-b) + torch.log(-torch.expm1(b - a))
    return torch.where(x < half, F.logsigmoid(a), torch.where(x > 1 - half, F.logsigmoid(-b), inner))


class DiscretizedLogistic(Distribution):
    """Independent discretized logistics over the last dimension (event shape (D,))."""

    arg_constraints = {"loc": constraints.real, "log_scale": constraints.real}
    support = constraints.unit_interval

    def __init__(self, loc: torch.Tensor, log_scale: torch.Tensor, num_bins: int = 256,
                 validate_args: bool | None = None) -> None:
        self.loc, self.log_scale = torch.broadcast_tensors(loc, log_scale)
        self.num_bins = int(num_bins)
        super().__init__(self.loc.shape[:-1], self.loc.shape[-1:], validate_args=validate_args)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return discretized_logistic_log_prob(self.loc, self.log_scale, x, self.num_bins).sum(-1)

    @property
    def mean(self) -> torch.Tensor:
        """``loc`` clamped to [0, 1]: the mode's bin up to rounding (a point for pictures)."""
        return self.loc.clamp(0.0, 1.0)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        """A logistic draw ``m + s (log u - log(1 - u))`` rounded to the grid, clamped to [0, 1]."""
        with torch.no_grad():
            shape = self._extended_shape(torch.Size(sample_shape))
            u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device).clamp_(1e-6, 1 - 1e-6)
            y = self.loc + self.log_scale.exp() * (torch.log(u) - torch.log1p(-u))
            n = self.num_bins - 1
            return (y * n).round().clamp(0, n) / n


class DiscretizedLogisticLikelihood(Likelihood):
    r"""Per-pixel discretized logistic for 8-bit images scaled to [0, 1] (Salimans et al. 2017):
    pixel values ``x = k / (n - 1)``, ``k = 0..n-1`` (``n = num_bins``, 256 for 8 bits); the
    decoder gives ``(m, log s)``, ``log s`` clamped below at ``min_log_scale``
    (:func:`discretized_logistic_log_prob`).
    """

    params_per_dim = 2

    def __init__(self, num_bins: int = 256, min_log_scale: float = -7.0) -> None:
        super().__init__()
        if int(num_bins) < 2:
            raise ValueError(f"DiscretizedLogisticLikelihood: 'num_bins' must be >= 2, got {num_bins}")
        self.num_bins, self.min_log_scale = int(num_bins), float(min_log_scale)

    def _split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, log_scale = params.chunk(2, dim=-1)
        return loc, log_scale.clamp(min=self.min_log_scale)

    def forward(self, params: torch.Tensor) -> DiscretizedLogistic:
        return DiscretizedLogistic(*self._split(params), self.num_bins, validate_args=False)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return discretized_logistic_log_prob(*self._split(params), x, self.num_bins).sum(-1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params.chunk(2, dim=-1)[0].clamp(0.0, 1.0)


LIKELIHOODS: dict[str, Callable[[], Likelihood]] = {
    "bernoulli": BernoulliLikelihood,
    "gaussian": GaussianLikelihood,
    "gaussian-learned": lambda: GaussianLikelihood(learned=True),
    "continuous-bernoulli": ContinuousBernoulliLikelihood,
    "discretized-logistic": DiscretizedLogisticLikelihood,
}

"""Relaxed discrete families: Concrete / Gumbel-softmax and the relaxed Bernoulli.

Both are computed in log space from uniform noise, so antithetic and quasi-random noise
apply: ``g = -log(-log u)`` (Gumbel), ``l = log u - log1p(-u)`` (logistic). With
``x = (logits + g) / T`` the sample is ``y = softmax(x)`` (``sigmoid(x)``), clamped into the
open support (``y >= tiny``; ``y <= 1 - eps/2`` for the Bernoulli) so that ``log_prob`` of
any sample is finite. ``log_prob`` reads only the value it is given: nothing rides on the
sample, so a density never depends on which distribution drew it.

``straight_through=True`` returns the hard sample (one-hot of the argmax, or ``x > 0``)
in the forward pass with the relaxed sample's gradient (``hard + y - y.detach()``).
"""

from __future__ import annotations

import math

import torch
import torch.distributions as td
import torch.nn.functional as F
from torch.distributions import constraints
from torch.distributions.utils import lazy_property, logits_to_probs, probs_to_logits

from ..noise import NoiseSource
from ._base import Reparameterized, TwinTransforms, as_value, clamp_open, outside_support

__all__ = ["RelaxedOneHotCategorical", "RelaxedBernoulli"]


class _Temper(torch.autograd.Function):
    """``x = s / T``, clamped to the finite range (``-inf`` at tiny ``T`` would make ``0 * inf``
    in the backward); backward ``ds = g / T``, ``dT = -sum(g x) / T`` (never forms ``T^2``,
    which underflows for ``T < 1e-19`` in float32)."""

    @staticmethod
    def forward(ctx, s, temperature):
        big = torch.finfo(s.dtype).max
        x = (s / temperature).clamp_(-big, big)
        ctx.save_for_backward(x, temperature)
        return x

    @staticmethod
    def backward(ctx, grad):
        x, temperature = ctx.saved_tensors
        grad_t = (grad * x).sum_to_size(temperature.shape).div_(temperature).neg_()
        return grad / temperature, grad_t


class _Relaxed(TwinTransforms, Reparameterized):
    """Shared plumbing: temperature, probs/logits, straight-through flag, expand.

    As torch: ``probs`` of the categorical are normalized to sum to 1, ``logits`` shifted by
    their ``logsumexp``.
    """

    has_rsample = True
    _binary = False
    temperature = None  # a plain attribute here (torch's is a property of its base)

    def __init__(self, temperature, probs=None, logits=None, validate_args: bool | None = None,
                 *, straight_through: bool = False):
        name = type(self).__name__
        if (probs is None) == (logits is None):
            raise ValueError(f"{name}: give exactly one of 'probs' or 'logits'")
        given = probs if probs is not None else logits
        if not torch.is_tensor(given):
            given = torch.as_tensor(given, dtype=torch.get_default_dtype())
        if probs is not None:
            self.probs = given if self._binary else given / given.sum(-1, keepdim=True)
        else:
            self.logits = given - (0 if self._binary else given.logsumexp(-1, keepdim=True))
        self.temperature = torch.as_tensor(temperature, dtype=given.dtype, device=given.device)
        self.straight_through = straight_through
        ev = given.shape if self._binary else given.shape[:-1]
        try:
            batch = torch.broadcast_shapes(self.temperature.shape, ev)
        except RuntimeError as err:
            raise ValueError(f"{name}: 'temperature' and the probabilities do not broadcast: "
                             f"{err}") from None
        event = torch.Size() if self._binary else given.shape[-1:]
        super().__init__(batch, event, validate_args=validate_args)

    @property
    def arg_constraints(self) -> dict:  # torch's keys (probs, logits) and the temperature
        return self._constraints

    @lazy_property
    def logits(self) -> torch.Tensor:
        return probs_to_logits(self.probs, is_binary=self._binary)

    @lazy_property
    def probs(self) -> torch.Tensor:
        return logits_to_probs(self.logits, is_binary=self._binary)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        for name in ("probs", "logits"):
            if name in self.__dict__:
                setattr(new, name, getattr(self, name).expand(batch_shape + self.event_shape))
        new.temperature = self.temperature.expand(batch_shape)
        new.straight_through = self.straight_through
        return self._finish_expand(new, batch_shape)

    def _logits_t(self) -> torch.Tensor:
        return self.logits.expand(self.batch_shape + self.event_shape)

    @property
    def _torch(self):
        return getattr(td, type(self).__name__)(self.temperature, logits=self.logits,
                                                validate_args=False)

    def _temperature_b(self) -> torch.Tensor:
        t = self.temperature.expand(self.batch_shape)
        return t if self._binary else t.unsqueeze(-1)


class RelaxedOneHotCategorical(_Relaxed, td.RelaxedOneHotCategorical):
    r"""Concrete / Gumbel-softmax (Maddison et al. 2017; Jang et al. 2017) on the simplex.

    ``y = softmax((logits + g) / T)``, ``g = -log(-log u)``. Density
    ``log p(y) = lgamma(K) + (K - 1) log T + sum_k (l_k - (T + 1) log y_k)
    - K logsumexp_k(l_k - T log y_k)``.
    """

    _constraints = {"temperature": constraints.positive, "probs": constraints.simplex,
                       "logits": constraints.real_vector}
    support = constraints.simplex

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        logits = self._logits_t()
        u = self._draw_uniform(sample_shape, noise, logits)
        s = logits - torch.log(u).neg_().log_()  # logits + Gumbel noise
        s = s - s.detach().amax(-1, keepdim=True)  # shift-invariant; keeps x <= 0
        x = _Temper.apply(s, self._temperature_b())  # max_k x_k = 0: sum_k e^x_k in [1, K]
        e = torch.exp(x)
        total = e.sum(-1, keepdim=True)
        y = (e / total).clamp(min=torch.finfo(e.dtype).tiny)  # softmax(x), no exact zeros
        if self.straight_through:
            hard = F.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)
            y = hard + (y - y.detach())
        return y

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value = as_value(value, self.logits)
        return outside_support(self.support, value, self._log_prob(torch.log(value)))

    def _log_prob(self, log_y: torch.Tensor) -> torch.Tensor:
        k = self.event_shape[-1]
        t = self.temperature
        logits = self.logits
        score = (logits - (t.unsqueeze(-1) + 1) * log_y).sum(-1)
        norm = (logits - t.unsqueeze(-1) * log_y).logsumexp(-1)
        return math.lgamma(k) + (k - 1) * torch.log(t) + score - k * norm


class RelaxedBernoulli(_Relaxed, td.RelaxedBernoulli):
    r"""Binary Concrete: ``y = sigmoid((logits + log u - log1p(-u)) / T)`` on (0, 1).

    With ``x = logit(y)``: ``log p(y) = log T + (l - T x) - 2 softplus(l - T x)
    - log y - log(1 - y)``.
    """

    _constraints = {"temperature": constraints.positive, "probs": constraints.unit_interval,
                       "logits": constraints.real}
    support = constraints.unit_interval
    _binary = True

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        logits = self._logits_t()
        u = self._draw_uniform(sample_shape, noise, logits)
        x = _Temper.apply(logits + torch.log(u) - torch.log1p(-u), self._temperature_b())
        y = clamp_open(torch.sigmoid(x))  # in [tiny, 1 - eps/2]: log_prob(y) finite
        if self.straight_through:
            y = (x > 0).to(y.dtype) + (y - y.detach())
        return y

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value = as_value(value, self.logits)
        x = torch.log(value) - torch.log1p(-value)
        t = self.temperature
        diff = self.logits - t * x
        lp = torch.log(t) + diff - 2 * F.softplus(diff) - F.logsigmoid(x) - F.logsigmoid(-x)
        return outside_support(self.support, value, lp)

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        """``F(y) = sigmoid(T logit(y) - logits)``."""
        if self._validate_args:
            self._validate_sample(value)
        value = as_value(value, self.logits)
        cdf = torch.sigmoid(self.temperature * (torch.log(value) - torch.log1p(-value))
                            - self.logits)
        return outside_support(self.support, value, cdf, cdf=True)

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        """``F^{-1}(p) = sigmoid((logits + logit(p)) / T)``."""
        return torch.sigmoid((self.logits + torch.log(value) - torch.log1p(-value))
                             / self.temperature)

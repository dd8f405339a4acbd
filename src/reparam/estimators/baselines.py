"""Baselines and control variates for the score-function estimator.

A baseline ``b`` leaves ``E[(f(z) - b) grad log q(z)] = grad E[f]`` unchanged as long as
``b`` does not depend on the sample it multiplies; it can cut the variance by orders of
magnitude. Each baseline is a small object with explicit state (``reset()`` clears it).

The protocol :class:`~reparam.estimators.ScoreFunction` calls is one method,
``score_term(costs, dist, z, context) -> t`` of shape ``costs.shape[1:]``: ``t`` is zero-valued
and ``t.sum().backward()`` leaves ``(1/S) sum_s (f(z_s) - b_s) grad log q(z_s)`` in the
distribution's parameters; it also advances the baseline's state. :class:`Baseline` implements
it from two hooks, ``values(costs, dist, context)`` (``b`` for the current costs, from past
state or from the other samples) and ``update(...)`` (fold the current costs into the state);
a baseline with one coefficient per parameter tensor (:class:`ControlVariate`) overrides
``score_term`` itself.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Distribution

from ._base import linear_term, pad_like, sum_to_costs
from ._views import parameters, rebuild

#: What an input-dependent baseline conditions on (e.g. the data batch), or None.
Context = torch.Tensor | None


class Baseline:
    """No baseline: ``b = 0`` (plain REINFORCE)."""

    min_samples = 1

    def score_term(self, costs: torch.Tensor, dist: Distribution, z: torch.Tensor,
                   context: Context = None) -> torch.Tensor:
        r"""``mean_s[(f_s - b_s) (log q_s - stop_grad(log q_s))]`` with ``b = values(...)``,
        then ``update(...)``."""
        log_q = sum_to_costs(dist.log_prob(z), costs)
        advantage = costs.detach() - self.values(costs, dist, context)
        self.update(costs, dist, context)
        return (advantage * (log_q - log_q.detach())).mean(0)

    def values(self, costs: torch.Tensor, dist: Distribution, context: Context = None) -> torch.Tensor:
        return torch.zeros((), dtype=costs.dtype, device=costs.device)

    def update(self, costs: torch.Tensor, dist: Distribution, context: Context = None
               ) -> None:
        pass

    def reset(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class EMA(Baseline):
    """``b_t = decay * b_{t-1} + (1 - decay) * mean(costs_t)``, used at step ``t + 1``.

    State: ``mean`` (``None`` before the first update, when ``b = 0``).
    """

    def __init__(self, decay: float = 0.9) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.mean: torch.Tensor | None = None

    def values(self, costs: torch.Tensor, dist: Distribution, context: Context = None
               ) -> torch.Tensor:
        return super().values(costs, dist) if self.mean is None else self.mean

    def update(self, costs: torch.Tensor, dist: Distribution, context: Context = None
               ) -> None:
        m = costs.detach().mean()
        self.mean = m if self.mean is None else self.decay * self.mean + (1 - self.decay) * m

    def reset(self) -> None:
        self.mean = None

    def __repr__(self) -> str:
        return f"EMA(decay={self.decay})"


class LeaveOneOut(Baseline):
    r"""``b_s = (sum_{j != s} f(z_j)) / (S - 1)``: the mean of the other samples (VIMCO,
    Mnih & Rezende 2016; Kool et al. 2019). Stateless; needs ``S >= 2``."""

    min_samples = 2

    def values(self, costs: torch.Tensor, dist: Distribution, context: Context = None
               ) -> torch.Tensor:
        c = costs.detach()
        return (c.sum(0, keepdim=True) - c) / (c.shape[0] - 1)


class Learned(Baseline):
    r"""Input-dependent baseline ``b(x) = c + net(x)`` (NVIL, Mnih & Gregor 2014): ``c`` an
    EMA of the costs (as :class:`EMA`), ``net`` a small network fit online to the residual
    by minimising ``(f(z) - c - net(x))^2`` with its own Adam optimizer.

    ``x`` is the ``context=`` passed to the estimator (e.g. the data batch, shape
    ``(*rest, D)``); without one, the detached parameters of the distribution are the
    features. ``net`` maps ``(*rest, D)`` to ``(*rest, 1)``; by default an MLP with one
    hidden layer of ``hidden`` tanh units and a zero-initialised output (so ``b = c`` at
    first) is built lazily. State: ``center`` (an :class:`EMA`), ``net``, ``optimizer``.
    """

    def __init__(self, net: nn.Module | None = None, lr: float = 3e-3, hidden: int = 64,
                 decay: float = 0.9) -> None:
        self._default = net is None
        self.hidden, self.lr = hidden, lr
        self.net = self._default_net() if net is None else net
        self.center = EMA(decay)
        self.optimizer: torch.optim.Optimizer | None = None

    def _default_net(self) -> nn.Module:
        out = nn.Linear(self.hidden, 1)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        return nn.Sequential(nn.LazyLinear(self.hidden), nn.Tanh(), out)

    def _features(self, costs, dist, context):
        if context is not None:
            return context.detach()
        rest = costs.shape[1:]
        feats = [p.detach().reshape(*rest, -1) for p in parameters(dist).values()]
        return torch.cat(feats, -1)

    def _predict(self, costs, dist, context):
        x = self._features(costs, dist, context)
        self.net.to(device=x.device)
        out = self.net(x.to(dtype=next(self.net.parameters()).dtype))
        return out.squeeze(-1).to(costs.dtype)

    def values(self, costs: torch.Tensor, dist: Distribution, context: Context = None
               ) -> torch.Tensor:
        with torch.no_grad():
            return self.center.values(costs, dist) + self._predict(costs, dist, context)

    def update(self, costs: torch.Tensor, dist: Distribution, context: Context = None
               ) -> None:
        target = costs.detach() - self.center.values(costs, dist)
        with torch.enable_grad():
            pred = self._predict(costs, dist, context)
            if self.optimizer is None:
                self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr)
            loss = (target - pred).pow(2).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.center.update(costs, dist)

    def reset(self) -> None:
        if self._default:
            self.net = self._default_net()
        else:
            for m in self.net.modules():
                reset = getattr(m, "reset_parameters", None)
                if callable(reset):
                    reset()
        self.center.reset()
        self.optimizer = None

    def __repr__(self) -> str:
        return f"Learned(lr={self.lr})"


class ControlVariate(Baseline):
    r"""The score itself as control variate, with the variance-minimising coefficient.

    For each parameter tensor ``theta_k`` the estimate is
    ``(1/S) sum_s (f(z_s) - beta_k) d log q(z_s) / d theta_k``; ``E[d log q / d theta] = 0``
    keeps it unbiased, and ``beta_k = sum_i E[f s_i^2] / sum_i E[s_i^2]`` (``s_i`` the
    coordinates of the per-sample score of ``theta_k``) minimises its total variance.
    Both moments are tracked online by exponential moving averages of past calls
    (``decay``), so ``beta_k`` never depends on the samples it multiplies. State:
    ``moments`` (name -> (E[f s^2], E[s^2])). Per-sample scores cost one extra backward
    through ``log q`` with the parameters as leaves.
    """

    def __init__(self, decay: float = 0.9) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.moments: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def values(self, costs: torch.Tensor, dist: Distribution, context: Context = None
               ) -> torch.Tensor:
        raise NotImplementedError(
            "ControlVariate has one coefficient per parameter tensor (beta(name)), not one "
            "baseline value; ScoreFunction calls its score_term"
        )

    def score_term(self, costs: torch.Tensor, dist: Distribution, z: torch.Tensor,
                   context: Context = None) -> torch.Tensor:
        """Zero-valued; its gradient is :meth:`score_gradients` in each live parameter."""
        params = parameters(dist)
        rest = costs.dim() - 1
        terms = [linear_term(g, params[n], rest)
                 for n, g in self.score_gradients(costs, dist, z).items()]
        return sum(terms, torch.zeros_like(costs[0]))

    def beta(self, name: str) -> torch.Tensor | float:
        if name not in self.moments:
            return 0.0
        num, den = self.moments[name]
        return num / den.clamp_min(torch.finfo(den.dtype).tiny)

    def per_sample_scores(self, dist: Distribution, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """``d log q(z_s) / d theta_k`` for every sample ``s``: shape ``(S, *theta_k.shape)``."""
        live = {n: p for n, p in parameters(dist).items() if p.requires_grad}
        if not live:
            return {}
        S = z.shape[0]
        leaves = {n: p.detach().expand(S, *p.shape).clone().requires_grad_()
                  for n, p in live.items()}
        fixed = {n: p.detach() for n, p in parameters(dist).items() if n not in live}
        with torch.enable_grad():
            lp = rebuild(dist, {**fixed, **leaves}).log_prob(z)
            grads = torch.autograd.grad(lp.sum(), list(leaves.values()))
        return dict(zip(leaves, grads, strict=True))

    def score_gradients(self, costs: torch.Tensor, dist: Distribution,
                        z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The estimate for each live parameter tensor; updates the moments afterwards."""
        c = costs.detach()
        out = {}
        for name, s in self.per_sample_scores(dist, z).items():
            cs = pad_like(c, s.dim())
            out[name] = ((cs - self.beta(name)) * s).mean(0)
            num, den = (cs * s * s).mean(0).sum(), (s * s).mean(0).sum()
            if name in self.moments:
                old_num, old_den = self.moments[name]
                num = self.decay * old_num + (1 - self.decay) * num
                den = self.decay * old_den + (1 - self.decay) * den
            self.moments[name] = (num, den)
        return out

    def reset(self) -> None:
        self.moments = {}

    def __repr__(self) -> str:
        return f"ControlVariate(decay={self.decay})"


BASELINES: dict[str, type[Baseline]] = {
    "none": Baseline, "ema": EMA, "loo": LeaveOneOut, "learned": Learned, "cv": ControlVariate,
}

r"""REBAR (Tucker et al. 2017) and RELAX (Grathwohl et al. 2018) for Bernoulli and one-hot
categorical latents, with their control variates trained to minimise the gradient variance.

Both write ``b = H(z)`` with ``z`` a reparameterized continuous sample (logistic ``z = phi +
logit u`` for Bernoulli, ``b = 1[z > 0]``; Gumbel ``z = log theta + g`` for the categorical,
``b = onehot(argmax z)``), ``z~ ~ p(z | b)`` the conditional resample (:class:`_Coupling`),
and estimate, for a control variate ``c``,

``g = [f(b) - c(z~)] grad log p(b) + grad c(z) - grad c(z~)`` (unbiased for any ``c``);

REBAR: ``c(z) = eta f(sigma_lambda(z))`` (``sigma_lambda`` the relaxation at temperature
``lambda``: ``sigmoid(z / lambda)`` or ``softmax(z / lambda)``); RELAX: ``c(z) = eta
f(sigma_lambda(z)) + r_psi(sigma_lambda(z))`` with ``r_psi`` a small MLP. Three
evaluations of ``f`` per sample; ``f`` must accept relaxed inputs and be twice
differentiable.

Variance training (each call, after the estimate is formed, so the estimate never depends
on the control variate fitted to its own samples): ``g`` (the estimate for the logits) is
computed by ``torch.autograd.grad(..., create_graph=True)`` as a function of ``eta``,
``lambda`` and ``psi``; since ``E[g]`` does not depend on them, ``d Var / d psi =
d E[g^2] / d psi``, so the estimator's own Adam steps ``mean(g^2)`` (over the logits'
coordinates) with respect to them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import distributions as td
from torch import nn
from torch.distributions import Distribution

from ..distributions.discrete import gumbel
from ..noise import NoiseSource
from ._base import CostFn, Estimator, check_num_samples, costs_of, linear_term, sum_to_costs
from ._discrete import _unwrap, bernoulli_logits, one_hot_logits, uniforms


class _Coupling:
    """``sample(phi, u) -> (b, z)``, ``conditional(phi, b, v) -> z~``, ``relax``, ``log_prob``."""


class _BernoulliCoupling(_Coupling):
    r"""``z = phi + logit(u)``, ``b = 1[z > 0]``; ``z~ = phi + logit(u~)`` with ``u~ =
    1 - theta + v theta`` (``b = 1``) or ``v (1 - theta)`` (``b = 0``), ``theta = sigmoid(phi)``.

    In log space, ``log sigma(+-phi)`` and ``logaddexp`` for the sums (``1 - u~ = theta (1 - v)``
    for ``b = 1``, ``(1 - v) + v theta`` for ``b = 0``): finite values and gradients where
    ``theta`` rounds to 0 or 1 (a float32 logit of 17)."""

    def sample(self, phi, u):
        z = phi + torch.log(u) - torch.log1p(-u)
        return (z > 0).to(phi.dtype), z

    def conditional(self, phi, b, v):
        log_on, log_off = F.logsigmoid(phi), F.logsigmoid(-phi)
        log_v, log_1mv = torch.log(v), torch.log1p(-v)
        one = torch.logaddexp(log_off, log_on + log_v) - log_on - log_1mv
        zero = log_v + log_off - torch.logaddexp(log_1mv, log_v + log_on)
        return phi + torch.where(b > 0, one, zero)

    def relax(self, z, lam):
        return torch.sigmoid(z / lam)

    def log_prob(self, phi, b):
        return b * phi - F.softplus(phi)


class _OneHotCoupling(_Coupling):
    r"""``z = log theta + g``, ``b = onehot(argmax z)``; ``z~_b = -log(-log v_b)``,
    ``z~_i = -log(-log v_i / theta_i - log v_b)`` for ``i != b`` (Tucker et al. 2017, app.),
    as ``-logaddexp(log(-log v_i) - log theta_i, log(-log v_b))``."""

    def sample(self, phi, u):
        z = torch.log_softmax(phi, -1) + gumbel(u)
        return F.one_hot(z.argmax(-1), z.shape[-1]).to(phi.dtype), z

    def conditional(self, phi, b, v):
        log_theta = torch.log_softmax(phi, -1)
        log_e = torch.log(-torch.log(v))  # log(-log v) = -gumbel(v)
        log_eb = (log_e * b).sum(-1, keepdim=True)
        # -log(-log v_i / theta_i - log v_b), as a logaddexp: finite for theta_i -> 0
        other = -torch.logaddexp(log_e - log_theta, log_eb)
        return torch.where(b > 0, -log_e, other)

    def relax(self, z, lam):
        return torch.softmax(z / lam, -1)

    def log_prob(self, phi, b):
        return (b * torch.log_softmax(phi, -1)).sum(-1)


def _coupling(dist: Distribution, who: str) -> tuple[_Coupling, torch.Tensor]:
    base, _ = _unwrap(dist)
    if isinstance(base, td.Bernoulli):
        return _BernoulliCoupling(), bernoulli_logits(dist, who)
    return _OneHotCoupling(), one_hot_logits(dist, who)


class REBAR(Estimator):
    """REBAR: control variate ``eta f(sigma_lambda(z))``; ``eta`` and ``log lambda`` trained
    online to minimise the variance (``adapt=False`` freezes them). State: ``eta``,
    ``log_temperature``, ``optimizer``."""

    multi_sample = False
    discrete_only = True  # Bernoulli and one-hot categorical latents

    def __init__(self, temperature: float = 0.5, eta: float = 1.0, lr: float = 1e-3,
                 adapt: bool = True) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.init_temperature, self.init_eta, self.lr, self.adapt = temperature, eta, lr, adapt
        self.reset()

    def reset(self) -> None:
        self.eta = torch.tensor(float(self.init_eta), requires_grad=True)
        self.log_temperature = torch.tensor(math.log(self.init_temperature), requires_grad=True)
        self.optimizer: torch.optim.Optimizer | None = None

    @property
    def temperature(self) -> float:
        return float(self.log_temperature.detach().exp())

    def cv_parameters(self) -> list[torch.Tensor]:
        return [self.eta, self.log_temperature]

    def _to(self, like: torch.Tensor) -> None:
        if self.eta.dtype != like.dtype or self.eta.device != like.device:
            with torch.no_grad():
                self.eta = self.eta.to(like).requires_grad_()
                self.log_temperature = self.log_temperature.to(like).requires_grad_()
            self.optimizer = None

    def control(self, f: CostFn, y: torch.Tensor, rest: int) -> torch.Tensor:
        return self.eta * f(y)

    def __call__(self, f: CostFn, dist: Distribution, num_samples: int = 1, *,
                 noise: NoiseSource | None = None) -> torch.Tensor:
        S = check_num_samples(num_samples)
        coupling, logits = _coupling(dist, type(self).__name__)
        self._to(logits)
        shape = (S, *logits.shape)
        u, v = uniforms(noise, shape, logits), uniforms(noise, shape, logits)
        with torch.enable_grad():
            phi = logits.detach().requires_grad_()
            b, z = coupling.sample(phi, u)
            costs = costs_of(f, b, S)
            z_tilde = coupling.conditional(phi, b, v)
            lam = self.log_temperature.exp()
            rest = costs.dim() - 1
            c_z = self.control(f, coupling.relax(z, lam), rest)
            c_zt = self.control(f, coupling.relax(z_tilde, lam), rest)
            log_p = sum_to_costs(coupling.log_prob(phi, b), costs)
            # d/dphi: (f(b) - c(z~)) dlog p + dc(z) - dc(z~); the log_p.detach() term
            # cancels the derivative of the coefficient c(z~) of the score.
            surr = (costs.detach() - c_zt) * log_p + log_p.detach() * c_zt + c_z - c_zt
            (g,) = torch.autograd.grad(surr.sum(), phi, create_graph=self.adapt)
            g = g / S
            if self.adapt:
                self._step(g)
        return costs.mean(0) + linear_term(g.detach(), logits, costs.dim() - 1)

    def _step(self, g: torch.Tensor) -> None:
        params = self.cv_parameters()
        if self.optimizer is None:
            self.optimizer = torch.optim.Adam(params, lr=self.lr)
        grads = torch.autograd.grad(g.pow(2).mean(), params, allow_unused=True)
        for p, gr in zip(params, grads, strict=True):
            p.grad = None if gr is None else gr.detach()
        self.optimizer.step()

    def __repr__(self) -> str:
        eta = float(self.eta.detach())
        return f"{type(self).__name__}(temperature={self.temperature:.3g}, eta={eta:.3g})"


class RELAX(REBAR):
    """RELAX: control variate ``eta f(sigma_lambda(z)) + r_psi(sigma_lambda(z))``, ``r_psi``
    an MLP (one hidden layer of ``hidden`` tanh units, zero-initialised output, built on
    the first call) on the relaxed sample flattened per cost entry; ``eta``, ``lambda``,
    ``psi`` trained to minimise the variance."""

    def __init__(self, temperature: float = 0.5, eta: float = 1.0, lr: float = 1e-3,
                 hidden: int = 64, adapt: bool = True) -> None:
        self.hidden = hidden
        self.net: nn.Module | None = None
        super().__init__(temperature, eta, lr, adapt)

    def reset(self) -> None:
        super().reset()
        self.net = None

    def cv_parameters(self) -> list[torch.Tensor]:
        return super().cv_parameters() + ([] if self.net is None else list(self.net.parameters()))

    def control(self, f: CostFn, y: torch.Tensor, rest: int) -> torch.Tensor:
        x = y.reshape(*y.shape[: rest + 1], -1)
        if self.net is None:
            out = nn.Linear(self.hidden, 1)
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)
            self.net = nn.Sequential(nn.Linear(x.shape[-1], self.hidden), nn.Tanh(), out)
            self.net.to(dtype=y.dtype, device=y.device)
            self.optimizer = None
        return self.eta * f(y) + self.net(x).squeeze(-1)

"""Table of (distribution, cost, exact gradient) cases shared by the estimator tests.

Every case is vectorised over ``N`` independent replicas (the first batch dimension), so
one estimator call yields ``N`` independent gradient estimates. Gradients are derived in
closed form: E[z^2] = mu^2 + s^2; E[exp(a z)] = exp(a mu + a^2 s^2 / 2);
E[cos z] = cos(mu) exp(-s^2 / 2); Exponential E[z^2] = 2 / r^2; Gamma E[z] = a / b;
Bernoulli/Categorical by enumeration.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributions as td

from reparam.distributions import Normal

N = 2000
D64 = torch.float64


def full(value, *shape):
    return torch.full((N, *shape), float(value), dtype=D64, requires_grad=True)


@dataclass
class Case:
    name: str
    params: dict[str, torch.Tensor]          # leaves, each (N, ...)
    make: Callable[..., td.Distribution]     # make(**params)
    f: Callable[[torch.Tensor], torch.Tensor]
    grad: dict[str, float | torch.Tensor]    # exact d E[f] / d param, one replica
    entropy_grad: dict[str, float] | None = None  # d H(q) / d param (for STL)
    normal: bool = False                     # a Gaussian (measure-valued applies)

    def dist(self):
        return self.make(**self.params)


def normal_scale_square():
    return Case("normal-scale z^2", {"loc": full(1.0), "scale": full(1.0)},
                lambda loc, scale: Normal(loc, scale), lambda z: z**2,
                {"loc": 2.0, "scale": 2.0}, {"loc": 0.0, "scale": 1.0}, True)


def normal_logvar_exp():
    a, m, lv = 0.5, 0.3, math.log(0.8)
    e = math.exp(a * m + a * a * math.exp(lv) / 2)
    return Case("normal-logvar exp(z/2)", {"loc": full(m), "logvar": full(lv)},
                lambda loc, logvar: Normal(loc, logvar=logvar), lambda z: torch.exp(a * z),
                {"loc": a * e, "logvar": e * a * a * math.exp(lv) / 2},
                {"loc": 0.0, "logvar": 0.5}, True)


def torch_normal_cos():
    m, s = 0.7, 1.3
    d = math.exp(-s * s / 2)
    return Case("td.Normal cos z", {"loc": full(m), "scale": full(s)},
                lambda loc, scale: td.Normal(loc, scale), torch.cos,
                {"loc": -math.sin(m) * d, "scale": -s * math.cos(m) * d},
                {"loc": 0.0, "scale": 1 / s}, True)


def independent_quadratic():
    c = torch.tensor([0.5, -1.0, 2.0], dtype=D64)
    loc = torch.tensor([0.2, 0.1, -0.3], dtype=D64)
    scale = torch.tensor([0.5, 1.0, 1.5], dtype=D64)
    return Case("Independent(Normal) |z - c|^2",
                {"loc": loc.expand(N, 3).clone().requires_grad_(),
                 "scale": scale.expand(N, 3).clone().requires_grad_()},
                lambda loc, scale: td.Independent(Normal(loc, scale), 1),
                lambda z: (z - c).pow(2).sum(-1),
                {"loc": 2 * (loc - c), "scale": 2 * scale},
                {"loc": torch.zeros(3, dtype=D64), "scale": 1 / scale}, True)


def exponential_square():
    r = 1.5
    return Case("td.Exponential z^2", {"rate": full(r)}, lambda rate: td.Exponential(rate),
                lambda z: z**2, {"rate": -4 / r**3})


def gamma_identity():
    a, b = 2.5, 1.5
    return Case("td.Gamma z", {"concentration": full(a), "rate": full(b)},
                lambda concentration, rate: td.Gamma(concentration, rate), lambda z: z,
                {"concentration": 1 / b, "rate": -a / b**2})


def bernoulli_square():
    p = 1 / (1 + math.exp(-0.4))
    return Case("td.Bernoulli (z - 0.3)^2", {"logits": full(0.4)},
                lambda logits: td.Bernoulli(logits=logits), lambda z: (z - 0.3) ** 2,
                {"logits": p * (1 - p) * (0.49 - 0.09)})


def categorical_square():
    logits = torch.tensor([0.1, -0.5, 0.8], dtype=D64)
    p = torch.softmax(logits, 0)
    v = torch.tensor([0.0, 1.0, 4.0], dtype=D64)
    return Case("td.Categorical z^2", {"logits": logits.expand(N, 3).clone().requires_grad_()},
                lambda logits: td.Categorical(logits=logits), lambda z: z.to(D64) ** 2,
                {"logits": p * (v - (p * v).sum())})


def reparam_gamma_identity():
    from reparam.distributions import Gamma
    a, b = 0.7, 2.0
    return Case("reparam Gamma z (implicit)", {"concentration": full(a), "rate": full(b)},
                lambda concentration, rate: Gamma(concentration, rate), lambda z: z,
                {"concentration": 1 / b, "rate": -a / b**2})


def reparam_laplace_square():
    from reparam.distributions import Laplace
    m, b = 0.4, 0.8   # E[z^2] = m^2 + 2 b^2
    return Case("reparam Laplace z^2", {"loc": full(m), "scale": full(b)},
                lambda loc, scale: Laplace(loc, scale), lambda z: z**2,
                {"loc": 2 * m, "scale": 4 * b})


GAUSSIAN = [normal_scale_square, normal_logvar_exp, torch_normal_cos, independent_quadratic]
REPARAMETERIZED = GAUSSIAN + [exponential_square, gamma_identity, reparam_gamma_identity,
                               reparam_laplace_square]
ANY = [normal_scale_square, normal_logvar_exp, torch_normal_cos, gamma_identity,
       bernoulli_square, categorical_square, reparam_laplace_square]

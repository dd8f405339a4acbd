r"""Binary latents in the standard VAE: the Bernoulli posterior, the learned Bernoulli prior.

The sigmoid belief network / binary VAE of the REBAR, RELAX and DisARM papers as parts of
:class:`~reparam.vae.model.VAE` (the factory's posterior and prior ``"bernoulli"``):

- ``q(z|x) = prod_i Bernoulli(z_i; sigmoid(net(x - m)))``, ``m`` the training mean
  (a persistent buffer, 0 until :func:`init_from_data` sets it);
- ``p(z) = prod_i Bernoulli(z_i; sigmoid(a))`` with learned logits ``a`` (start 0);
- the decoder's output bias starts at ``logit(m)`` (:func:`init_from_data`).

Samples come from a noise source (:class:`reparam.distributions.Bernoulli`), there is no
``rsample``: gradients come from the discrete estimators (score function, VIMCO, ARM, DisARM,
REBAR, RELAX, the relaxations). ``KL(q || p)`` is in closed form (torch's ``Independent``
pair over :func:`~reparam.distributions.discrete.kl_bernoulli_bernoulli`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Independent

from ..data.mmap import column_mean
from ..distributions.discrete import Bernoulli
from ..noise import MonteCarlo, NoiseSource


class IndependentBernoulli(Independent):
    """``Independent(Bernoulli(logits), 1)`` whose ``sample`` takes a noise source."""

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
               noise: NoiseSource | None = None) -> torch.Tensor:
        return self.base_dist.sample(sample_shape, noise=noise)


def _bernoulli(logits: torch.Tensor) -> IndependentBernoulli:
    """Factorized Bernoulli with event ``(L,)``; no argument checks (relaxed ``z`` allowed)."""
    return IndependentBernoulli(Bernoulli(logits=logits, validate_args=False), 1,
                                validate_args=False)


class BernoulliEncoder(nn.Module):
    """``q(z|x)``: ``Independent(Bernoulli(logits = net(x - mean)), 1)``, batch (B,), event (L,)."""

    discrete = True  # no rsample; evaluation and validation read this

    def __init__(self, net: nn.Module, data_dim: int) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.zeros(int(data_dim)))

    def forward(self, x: torch.Tensor) -> IndependentBernoulli:
        return _bernoulli(self.net(x - self.mean))


class BernoulliPrior(nn.Module):
    """``p(z) = prod_i Bernoulli(z_i; sigmoid(logits_i))``, the logits learned (start 0)."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.logits = nn.Parameter(torch.zeros(self.latent_dim))

    def forward(self) -> IndependentBernoulli:
        return _bernoulli(self.logits)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self().base_dist.sample((n,), noise=MonteCarlo(generator))


def is_discrete(model: nn.Module) -> bool:
    """True for a VAE whose posterior has discrete samples (no reparameterization)."""
    return bool(getattr(getattr(model, "encoder", None), "discrete", False))


@torch.no_grad()
def init_from_data(model: nn.Module, train_x: torch.Tensor, eps: float = 1e-3) -> None:
    """For a Bernoulli-latent VAE: centre the encoder's input at the training mean ``m`` and
    start the decoder's output bias at ``logit(clamp(m, eps, 1 - eps))`` (the REBAR / DisARM
    set-up); other models are left as they are."""
    if not is_discrete(model):
        return
    mean = column_mean(train_x).to(model.encoder.mean)
    model.encoder.mean.copy_(mean)
    last = [m for m in model.decoder.net.modules() if isinstance(m, nn.Linear)][-1]
    if last.out_features == mean.numel():
        m = mean.clamp(eps, 1 - eps)
        last.bias.copy_(torch.log(m) - torch.log1p(-m))

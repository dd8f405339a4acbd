"""Objectives: scalars to minimise plus detached metrics, in nats per example."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..distributions import kl_normal_standard
from ..noise import NoiseSource


@dataclass
class Loss:
    """``loss`` is minimised; ``elbo``, ``recon`` (= -E_q log p(x|z)) and ``kl`` are detached
    means over the batch in nats per example."""

    loss: torch.Tensor
    elbo: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor


def elbo(
    model,
    x: torch.Tensor,
    num_samples: int = 1,
    beta: float = 1.0,
    noise: NoiseSource | None = None,
) -> Loss:
    r"""Negative ELBO with analytic KL:

    ``-ELBO(x) = -E_{q(z|x)}[log p(x|z)] + KL(q(z|x) || N(0, I))``, the expectation estimated
    with ``num_samples`` reparameterized draws ``z = mu + exp(logvar / 2) * eps``. ``beta``
    weights the KL in the loss (beta-VAE); the reported ``elbo`` always uses beta = 1.
    """
    q = model.encode(x)                                   # (B, L)
    z = q.rsample((num_samples,), noise=noise)            # (S, B, L)
    recon = -model.log_likelihood(x, z).mean(0)           # (B,)
    kl = kl_normal_standard(q.loc, q.logvar).sum(-1)      # (B,)
    loss = (recon + beta * kl).mean()
    with torch.no_grad():
        recon_m, kl_m = recon.mean(), kl.mean()
    return Loss(loss=loss, elbo=-(recon_m + kl_m), recon=recon_m, kl=kl_m)

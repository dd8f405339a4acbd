"""Evaluation without gradients: ELBO, importance-sampled log-likelihood, active units.

The log-likelihood estimate (Burda et al. 2016) with ``k`` samples ``z_i ~ q(z|x)``:

    log p(x) ~= logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k

is computed in chunks of samples with a running ``logaddexp``, so memory is bounded by
``memory_mb`` whatever ``k`` is (small chunks that stay in cache are also the fastest),
and no (k, N) tensor is ever formed.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from tqdm.auto import tqdm

from ..distributions import Normal
from ..noise import MonteCarlo, NoiseSource
from .objectives import elbo, log_weights, sample_posterior
from .priors import StandardNormalPrior


def log_importance_weights(model, x: torch.Tensor, num_samples: int,
                           noise: NoiseSource | None = None) -> torch.Tensor:
    """``log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)``, shape (S, B)."""
    return log_weights(model, x, num_samples, noise)[0]


def _generic_prior_ratio(q, prior):
    """``n -> (z, log p(z) - log q(z|x))`` for any posterior and prior."""
    def draw(n: int, noise: NoiseSource):
        z, log_q = sample_posterior(q, n, noise)
        return z, prior.log_prob(z) - log_q
    return draw


def _prior_ratio(q, model):
    """The usual case in closed form, from the noise: for ``q = N(mu, sigma^2)`` and
    ``p = N(0, I)``, ``z = mu + sigma eps`` and
    ``log p(z) - log q(z|x) = (|eps|^2 - |z|^2) / 2 + sum log sigma`` (the ``log 2 pi``
    terms cancel); ``None`` for other pairs."""
    if not (isinstance(q, Normal) and isinstance(model.prior_module, StandardNormalPrior)
            and q.loc.dim() == 2):
        return None
    mu, sigma = q.loc, q.stddev
    log_det = q.log_scale.sum(-1)

    def draw(n: int, noise: NoiseSource):
        eps = noise.normal((n, *mu.shape), mu.dtype, mu.device)
        z = torch.addcmul(mu, sigma, eps)
        return z, (eps.square().sum(-1) - z.square().sum(-1)).mul_(0.5).add_(log_det)
    return draw


@torch.no_grad()
def log_likelihood(model, x: torch.Tensor, k: int = 5000, batch_size: int = 100,
                   memory_mb: float = 4.0, generator: torch.Generator | None = None,
                   progress: bool = False) -> torch.Tensor:
    """Per-example importance-sampled ``log p(x)`` estimates with ``k`` samples, shape (N,)."""
    if k < 1:
        raise ValueError(f"k must be a positive number of importance samples, got {k}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    noise = MonteCarlo(generator)
    # a chunk of c samples for a batch of B examples holds about c * B * D floats (decoder output)
    chunk = max(1, min(k, int(memory_mb * 2**20 / (4 * batch_size * x.shape[1] * 3))))
    out = torch.empty(x.shape[0], dtype=torch.float64)
    bar = tqdm(total=x.shape[0], disable=not progress, desc=f"log p(x), k={k}", unit="ex")
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size].to(device)
        q = model.encode(xb)  # once per batch, not once per chunk
        log_prior_ratio = _prior_ratio(q, model) or _generic_prior_ratio(q, model.prior())
        acc = torch.full((xb.shape[0],), -math.inf, dtype=torch.float64, device=device)
        for done in range(0, k, chunk):
            z, lw = log_prior_ratio(min(chunk, k - done), noise)
            lw += model.log_likelihood(xb, z)
            acc = torch.logaddexp(acc, torch.logsumexp(lw.double(), dim=0))
        out[start:start + xb.shape[0]] = (acc - math.log(k)).cpu()
        bar.update(xb.shape[0])
    bar.close()
    model.train(was_training)
    return out


@torch.no_grad()
def evaluate_elbo(model, x: torch.Tensor, num_samples: int = 16, batch_size: int = 1000,
                  generator: torch.Generator | None = None) -> dict[str, float]:
    """Mean ELBO, reconstruction term and KL over ``x`` (nats per example)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    noise = MonteCarlo(generator)
    totals = {"elbo": 0.0, "recon": 0.0, "kl": 0.0}
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size].to(device)
        out = elbo(model, xb, num_samples=num_samples, noise=noise)
        for key in totals:
            totals[key] += float(getattr(out, key)) * xb.shape[0]
    model.train(was_training)
    return {key: value / x.shape[0] for key, value in totals.items()}


@torch.no_grad()
def posterior_means(model, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """``E_q[z|x]`` for every row of ``x``, shape (N, L)."""
    device = next(model.parameters()).device
    return torch.cat([model.encode(x[s:s + batch_size].to(device)).mean.cpu()
                      for s in range(0, x.shape[0], batch_size)])


def active_units(means: torch.Tensor, threshold: float = 0.01) -> int:
    """Burda et al. (2016): dimensions u with ``Cov_x(E_q[z_u|x]) > threshold``."""
    return int((means.double().var(dim=0) > threshold).sum())


def evaluate(model, x: torch.Tensor, k: int = 5000, batch_size: int = 100, seed: int = 0,
             elbo_samples: int = 16, progress: bool = False) -> dict[str, Any]:
    """Everything ``reparam evaluate`` reports, in nats (NLL = -log p(x), positive)."""
    device = next(model.parameters()).device
    ll = log_likelihood(model, x, k=k, batch_size=batch_size, progress=progress,
                        generator=torch.Generator(device).manual_seed(seed))
    nll = -ll
    bound = evaluate_elbo(model, x, elbo_samples, generator=torch.Generator(device).manual_seed(seed))
    return {
        "nll": float(nll.mean()), "nll_stderr": float(nll.std() / math.sqrt(len(nll))),
        "k": k, "num_examples": int(x.shape[0]), "elbo": bound["elbo"],
        "recon": bound["recon"], "kl": bound["kl"],
        "active_units": active_units(posterior_means(model, x)),
        "latent_dim": int(model.latent_dim), "units": "nats per example",
    }

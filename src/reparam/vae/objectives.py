r"""Objectives: scalars to minimise plus detached metrics, in nats per example.

- :func:`elbo`: ``ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z))``, the KL analytic (diagonal
  Gaussian posterior and standard normal prior, or any pair with a KL registered in torch)
  or Monte Carlo (``log q(z|x) - log p(z)`` at the same samples); ``beta`` weights the KL
  (beta-VAE, KL warm-up via :func:`linear_warmup`);
  ``free_bits`` floors the KL per latent dimension (Kingma et al. 2016).
- :func:`iwae`: ``log (1/k) sum_i w_i``, ``w_i = p(x, z_i) / q(z_i|x)`` (Burda et al. 2016).
- Gradient estimators (``estimator=``): ``"pathwise"`` (the reparameterization gradient),
  ``"stl"`` (sticking the landing, Roeder et al. 2017: ``log q`` at detached posterior
  parameters, dropping the zero-mean score term; ELBO only, it biases IWAE) and ``"dreg"``
  (doubly reparameterized IWAE gradients, Tucker et al. 2019); ``"score"`` (REINFORCE for
  the posterior, leave-one-out baseline when ``num_samples > 1``; ELBO only, a reference for
  the other estimators rather than a way to train).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.distributions import Distribution, kl_divergence

from ..distributions import Normal, kl_normal_standard
from ..estimators import ScoreFunction, detach_params
from ..noise import NoiseSource
from .priors import StandardNormalPrior

ELBO_ESTIMATORS = ("pathwise", "stl", "score")
IWAE_ESTIMATORS = ("pathwise", "dreg")
KL_MODES = ("auto", "analytic", "mc")
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class Loss:
    """``loss`` is minimised; ``elbo``, ``recon`` (= -E_q log p(x|z)) and ``kl`` are detached
    means over the batch in nats per example (for :func:`iwae`, ``elbo`` is the IWAE bound)."""

    loss: torch.Tensor
    elbo: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor


def linear_warmup(step: int, warmup_steps: int, final: float = 1.0, start: float = 0.0) -> float:
    """KL warm-up: ``beta = start + (final - start) * min(1, step / warmup_steps)``."""
    if warmup_steps < 0:
        raise ValueError(f"linear_warmup: 'warmup_steps' must be >= 0, got {warmup_steps}")
    frac = 1.0 if warmup_steps == 0 else min(1.0, max(0.0, step / warmup_steps))
    return start + (final - start) * frac


def sample_posterior(q, num_samples: int, noise: NoiseSource | None = None):
    """``(z, log q(z|x))`` with ``z`` (S, B, L) reparameterized and ``log q`` (S, B)."""
    if hasattr(q, "rsample_with_log_prob"):
        return q.rsample_with_log_prob((num_samples,), noise=noise)
    z = q.rsample((num_samples,), noise=noise)
    return z, _sum_to(q.log_prob(z), z.dim() - 1)


def log_q_detached(q, z: torch.Tensor) -> torch.Tensor:
    """``log q(z|x)`` with the posterior's parameters cut from the graph (z stays attached)."""
    if hasattr(q, "log_prob_detached"):
        return q.log_prob_detached(z)
    if hasattr(q, "rsample_with_log_prob"):
        raise ValueError(f"{type(q).__name__} cannot evaluate log q at a given z (a flow without "
                         f"inverse): use estimator='pathwise'")
    if isinstance(q, Normal) and q._by_logvar:  # fast path for the usual encoder output
        qd = Normal(q.loc.detach(), logvar=q.logvar.detach(), validate_args=False)
    else:
        qd = detach_params(q)
    return _sum_to(qd.log_prob(z), z.dim() - 1)


def log_weights(model, x: torch.Tensor, num_samples: int, noise: NoiseSource | None = None,
                estimator: str = "pathwise"):
    """``(log w, log p(x|z), log p(z), log q(z|x), z)``, each (S, B) but ``z``;
    ``log w = log p(x|z) + log p(z) - log q(z|x)`` (with ``log q`` at detached parameters
    for STL / DReG). The building block of every objective and of importance sampling."""
    q = model.encode(x)
    z, log_q = sample_posterior(q, num_samples, noise)
    log_q_used = log_q if estimator == "pathwise" else log_q_detached(q, z)
    log_px = model.log_likelihood(x, z)
    log_pz = model.prior().log_prob(z)
    return log_px + log_pz - log_q_used, log_px, log_pz, log_q, z


def _registered_kl(q, prior) -> torch.Tensor | None:
    """``KL(q || prior)`` when torch has a closed form registered for the pair, else None."""
    if not (isinstance(q, Distribution) and isinstance(prior, Distribution)):
        return None
    try:
        return kl_divergence(q, prior)
    except NotImplementedError:
        return None


def _sum_to(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.sum(tuple(range(ndim, t.dim()))) if t.dim() > ndim else t


def _check(name: str, value: str, choices: tuple[str, ...], hint: str = "") -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}{hint}")


def elbo(
    model,
    x: torch.Tensor,
    num_samples: int = 1,
    beta: float = 1.0,
    noise: NoiseSource | None = None,
    *,
    estimator: str = "pathwise",
    kl: str = "auto",
    free_bits: float = 0.0,
) -> Loss:
    r"""Negative ELBO ``-E_q[log p(x|z)] + beta * KL``, ``num_samples`` draws of ``z`` per example.

    ``kl="auto"`` (with the pathwise estimator) uses ``KL = (mu^2 + expm1(logvar) - logvar) / 2``
    summed over dimensions when the posterior is a diagonal :class:`Normal` and the prior
    standard normal, torch's registered closed form when there is one (e.g. vMF against the
    uniform on the sphere), and otherwise ``KL ~= mean_s [log q(z_s|x) - log p(z_s)]``.
    ``free_bits = lambda`` replaces ``KL`` in the loss by ``sum_j max(lambda, mean_batch KL_j)``
    (per dimension j when the KL factorizes over dimensions, else ``max(lambda L, KL)``).
    The reported ``elbo`` is the plain ELBO (beta = 1, no floor).
    """
    _check("estimator", estimator, ELBO_ESTIMATORS,
           " ('dreg' is for iwae(); for the ELBO it reduces to 'stl')" if estimator == "dreg" else "")
    _check("kl", kl, KL_MODES)
    if free_bits < 0:
        raise ValueError(f"free_bits must be >= 0, got {free_bits}")
    q = model.encode(x)
    if estimator == "score":
        if free_bits > 0 or kl == "analytic":
            raise ValueError("estimator='score' works with kl='mc' (or 'auto') and no free_bits")
        return _score_elbo(model, x, q, num_samples, beta, noise)
    factorized = isinstance(q, Normal) and isinstance(model.prior_module, StandardNormalPrior)
    closed = None
    if estimator == "pathwise" and kl != "mc" and not factorized:
        closed = _registered_kl(q, model.prior())                     # (B,) or None
    analytic = (factorized or closed is not None) and estimator == "pathwise" and kl != "mc"
    if kl == "analytic" and not analytic:
        raise ValueError("kl='analytic' needs estimator='pathwise' and a closed-form KL: a "
                         "diagonal Normal posterior with the standard normal prior, or a pair "
                         "registered with torch's register_kl")
    if analytic and not hasattr(q, "rsample_with_log_prob"):  # log q(z) is not needed
        z, log_q = q.rsample((num_samples,), noise=noise), None       # (S, B, L)
    else:
        z, log_q = sample_posterior(q, num_samples, noise)           # (S, B, L), (S, B)
    recon = -model.log_likelihood(x, z).mean(0)                       # (B,)
    kl_dims = None                                                    # (B, L) when it factorizes
    if analytic and closed is not None:
        kl_b = closed
    elif analytic:
        kl_dims = kl_normal_standard(q.loc, q.logvar)
        kl_b = kl_dims.sum(-1)                                        # (B,)
    else:
        stl = estimator == "stl"
        log_q_used = log_q_detached(q, z) if stl else log_q
        kl_b = (log_q_used - model.prior().log_prob(z)).mean(0)       # (B,)
        if factorized and free_bits > 0:  # log N(z; mu, s) - log N(z; 0, 1), per dimension
            kl_dims = ((detach_params(q) if stl else q).log_prob(z)
                       + 0.5 * z.pow(2) + _HALF_LOG_2PI).mean(0)
    if free_bits > 0:
        if kl_dims is not None:
            kl_term = kl_dims.mean(0).clamp(min=free_bits).sum()
        else:
            kl_term = kl_b.mean().clamp(min=free_bits * z.shape[-1])
    else:
        kl_term = kl_b.mean()
    loss = recon.mean() + beta * kl_term
    with torch.no_grad():
        recon_m, kl_m = recon.mean(), kl_b.mean()
    return Loss(loss=loss, elbo=-(recon_m + kl_m), recon=recon_m, kl=kl_m)


def iwae(model, x: torch.Tensor, k: int = 5, noise: NoiseSource | None = None, *,
         estimator: str = "pathwise") -> Loss:
    r"""Negative IWAE bound ``-log (1/k) sum_i w_i`` with ``k`` importance samples per example.

    ``k = 1`` is the single-sample ELBO with Monte Carlo KL. ``estimator="dreg"``: gradients
    ``sum_i w~_i grad log w_i`` for the model (prior, decoder) and
    ``sum_i w~_i^2 (d log w_i / d z_i)(d z_i / d phi)`` for the posterior, ``log q`` at detached
    parameters, ``w~`` the normalised weights (the squared weight enters through a hook on z).
    ``recon`` and ``kl`` report the mean of ``-log p(x|z_i)`` and ``log q - log p(z_i)``.
    """
    _check("estimator", estimator, IWAE_ESTIMATORS,
           " ('stl' biases the IWAE gradient: use 'dreg')" if estimator == "stl" else "")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    log_w, log_px, log_pz, log_q, z = log_weights(model, x, k, noise, estimator)
    bound = torch.logsumexp(log_w, 0) - math.log(k)                   # (B,)
    if estimator == "dreg":
        w = torch.softmax(log_w.detach(), 0)                          # (k, B)
        if z.requires_grad:
            z.register_hook(lambda g: g * w.unsqueeze(-1))
        surrogate = -(w * log_w).sum(0).mean()
        loss = -bound.detach().mean() + (surrogate - surrogate.detach())
    else:
        loss = -bound.mean()
    with torch.no_grad():
        recon, kl = -log_px.mean(), (log_q - log_pz).mean()
    return Loss(loss=loss, elbo=bound.detach().mean(), recon=recon, kl=kl)


def _score_elbo(model, x, q, num_samples: int, beta: float, noise: NoiseSource | None) -> Loss:
    """``-ELBO`` with the score-function gradient for ``q`` (:mod:`reparam.estimators`):
    cost ``f(z) = -log p(x|z) + beta (log q(z|x) - log p(z))`` at non-reparameterized draws."""
    if not (hasattr(q, "log_prob") and hasattr(q, "sample")):
        raise ValueError(f"estimator='score' needs a posterior with sample and log_prob, "
                         f"not {type(q).__name__}")
    parts: dict[str, torch.Tensor] = {}

    def cost(z: torch.Tensor) -> torch.Tensor:
        log_px = model.log_likelihood(x, z)
        kl = _sum_to(q.log_prob(z), z.dim() - 1) - model.prior().log_prob(z)
        parts["recon"], parts["kl"] = -log_px.detach().mean(), kl.detach().mean()
        return -log_px + beta * kl

    est = ScoreFunction("loo" if num_samples > 1 else None)
    loss = est(cost, q, num_samples, noise=noise).mean()
    return Loss(loss=loss, elbo=-(parts["recon"] + parts["kl"]), recon=parts["recon"],
                kl=parts["kl"])

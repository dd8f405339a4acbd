r"""Objectives: scalars to minimise plus detached metrics, in nats per example.

One objective, :func:`objective`, drives every gradient estimator of
:mod:`reparam.estimators` (an :class:`~reparam.estimators.Estimator` or its name in
``ESTIMATORS``); the estimator's attributes decide the form, never its name:

- a single-sample estimator (pathwise, score function, measure-valued, ...) estimates
  ``E_q[-log p(x|z)]``; the KL is added in closed form when there is one (``kl="auto"``:
  a diagonal Gaussian with the standard normal prior, or a pair registered with torch's
  ``register_kl``), else ``log q(z|x) - log p(z)`` joins the cost at the same samples;
- ``includes_log_q`` (STL): the estimator estimates ``E_q[-log p(x, z) + log q(z|x)]``
  itself, so no separate KL;
- ``multi_sample`` (IWAE, DReG, VIMCO): the estimator's value is the negative K-sample
  bound ``-(logsumexp_k log w_k - log K)``, ``log w_k = log p(x, z_k) - log q(z_k|x)``
  (Burda et al. 2016).

:func:`elbo` is the single-sample form (``beta`` weights the KL for beta-VAE and warm-up,
``free_bits`` floors it per latent dimension, Kingma et al. 2016); :func:`iwae` the
multi-sample form with ``k`` samples.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.distributions import Distribution, Independent, kl_divergence

from ..distributions import Normal, kl_normal_standard
from ..estimators import IWAE, Estimator, Pathwise, get
from ..estimators._discrete import sample as draw_discrete
from ..estimators.stl import log_prob_detached
from ..noise import NoiseSource
from .priors import StandardNormalPrior

if TYPE_CHECKING:
    from .model import VAE

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


def resolve_estimator(estimator: Estimator | str) -> Estimator:
    """An :class:`Estimator` as given, or a fresh one by name (``reparam.estimators.ESTIMATORS``)."""
    if isinstance(estimator, Estimator):
        return estimator
    if isinstance(estimator, str):
        return get(estimator)
    raise ValueError(f"estimator must be an Estimator or a name from reparam.estimators."
                     f"ESTIMATORS, got {type(estimator).__name__} {estimator!r}")


def is_multi_sample(estimator: Estimator) -> bool:
    """True for estimators of the K-sample bound (``multi_sample = True``: IWAE, DReG, VIMCO)."""
    return bool(getattr(estimator, "multi_sample", False))


class SampledPosterior:
    """A posterior outside ``torch.distributions`` (flows, the two-layer posterior) seen as a
    family by the estimators: ``rsample`` keeps ``log q`` of the sample it returns, so
    ``log_prob`` at that sample needs no inverse; other points go to the posterior's own
    ``log_prob`` (absent for flows: a clear error)."""

    has_rsample = True

    def __init__(self, q: Any) -> None:
        self.q, self._last = q, (None, None)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        z, log_q = self.q.rsample_with_log_prob(sample_shape, noise)
        self._last = (z, log_q)
        return z

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
               noise: NoiseSource | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, noise)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        if z is self._last[0]:
            return self._last[1]
        return self._own("log_prob")(z)

    def log_prob_detached(self, z: torch.Tensor) -> torch.Tensor:
        return self._own("log_prob_detached")(z)

    def _own(self, name: str):
        method = getattr(self.q, name, None)
        if method is None:
            raise ValueError(f"{type(self.q).__name__} has log q only at its own samples (a "
                             f"flow without inverse): use the pathwise or iwae estimator")
        return method

    @property
    def mean(self) -> torch.Tensor:
        return self.q.mean


def as_family(q: Any) -> Any:
    """``q`` itself when it is a ``torch.distributions`` family, else a :class:`SampledPosterior`."""
    if isinstance(q, Distribution) or not hasattr(q, "rsample_with_log_prob"):
        return q
    return SampledPosterior(q)


def sample_posterior(q: Any, num_samples: int, noise: NoiseSource | None = None) -> tuple[torch.Tensor,
                     torch.Tensor]:
    """``(z, log q(z|x))`` with ``z`` (S, B, L) reparameterized (detached draws from the noise
    source for a family without ``rsample``, e.g. binary latents) and ``log q`` (S, B)."""
    if hasattr(q, "rsample_with_log_prob"):
        return q.rsample_with_log_prob((num_samples,), noise=noise)
    if not getattr(q, "has_rsample", True):
        z = draw_discrete(q, num_samples, noise)
        return z, _sum_to(q.log_prob(z), z.dim() - 1)
    z = q.rsample((num_samples,), noise=noise)
    return z, _sum_to(q.log_prob(z), z.dim() - 1)


def log_weights(model: VAE, x: torch.Tensor, num_samples: int,
                noise: NoiseSource | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                torch.Tensor, torch.Tensor]:
    """``(log w, log p(x|z), log p(z), log q(z|x), z)``, each (S, B) but ``z``;
    ``log w = log p(x|z) + log p(z) - log q(z|x)``: importance sampling's building block."""
    z, log_q = sample_posterior(model.encode(x), num_samples, noise)
    log_px = model.log_likelihood(x, z)
    log_pz = model.prior().log_prob(z)
    return log_px + log_pz - log_q, log_px, log_pz, log_q, z


def _sum_to(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.sum(tuple(range(ndim, t.dim()))) if t.dim() > ndim else t


@functools.cache
def _takes_context(kind: type) -> bool:
    return "context" in inspect.signature(kind.__call__).parameters


def _estimate(est: Estimator, f, dist, num_samples: int, noise, x: torch.Tensor) -> torch.Tensor:
    """``est(f, dist, S, noise=...)``; ``context=x`` for estimators with input-dependent state."""
    kwargs = {"context": x} if _takes_context(type(est)) else {}
    return est(f, dist, num_samples, noise=noise, **kwargs)


def _factorized(q, model) -> bool:
    return isinstance(q, Normal) and isinstance(model.prior_module, StandardNormalPrior)


def closed_form_kl(q: Any, model: VAE) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """``(KL (B,), per-dimension KL (B, L) or None)`` in closed form, or None: for a diagonal
    Normal and the standard normal prior ``KL_j = (mu_j^2 + expm1(logvar_j) - logvar_j) / 2``,
    else torch's registered ``kl_divergence`` for the pair when there is one; a posterior
    factorized over its last batch dimension (event shape ``()``, e.g. a Gamma of batch (B, L))
    against ``Independent(base, 1)`` has ``KL = sum_j KL(q_j || base_j)``."""
    if _factorized(q, model):
        dims = kl_normal_standard(q.loc, q.logvar)
        return dims.sum(-1), dims
    prior = model.prior()
    if not (isinstance(q, Distribution) and isinstance(prior, Distribution)):
        return None
    try:
        if _per_dimension(q, prior):
            dims = kl_divergence(q, prior.base_dist)
            return dims.sum(-1), dims
        return kl_divergence(q, prior), None
    except NotImplementedError:
        return None


def _per_dimension(q: Distribution, prior: Distribution) -> bool:
    """``q`` of batch (.., L) and event ``()`` against a prior ``Independent`` over those L."""
    return (isinstance(prior, Independent) and prior.reinterpreted_batch_ndims == 1
            and q.event_shape == () and q.batch_shape[-1:] == prior.event_shape)


def _kl_term(kl_b: torch.Tensor, kl_dims: torch.Tensor | None, free_bits: float,
             latent: int) -> torch.Tensor:
    """``mean_b KL``, or with free bits ``sum_j max(lambda, mean_b KL_j)`` (``max(lambda L, KL)``
    when the KL does not factorize)."""
    if free_bits <= 0:
        return kl_b.mean()
    if kl_dims is not None:
        return kl_dims.mean(0).clamp(min=free_bits).sum()
    return kl_b.mean().clamp(min=free_bits * latent)


def _loss(loss: torch.Tensor, recon: torch.Tensor, kl: torch.Tensor) -> Loss:
    with torch.no_grad():
        recon_m, kl_m = recon.mean(), kl.mean()
    return Loss(loss=loss, elbo=-(recon_m + kl_m), recon=recon_m, kl=kl_m)


def check_options(est: Estimator, kl: str, free_bits: float, beta: float = 1.0) -> None:
    """The combinations :func:`objective` accepts; a ValueError naming the conflict."""
    if kl not in KL_MODES:
        raise ValueError(f"kl must be one of {list(KL_MODES)}, got {kl!r}")
    if not (isinstance(free_bits, (int, float)) and free_bits >= 0 and math.isfinite(free_bits)):
        raise ValueError(f"free_bits must be a finite number >= 0, got {free_bits!r}")
    if not (isinstance(beta, (int, float)) and beta >= 0 and math.isfinite(beta)):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    if is_multi_sample(est) and (beta != 1.0 or free_bits > 0 or kl == "analytic"):
        raise ValueError(f"{est!r} estimates the K-sample bound, which has no separate KL: "
                         f"beta, free_bits and kl='analytic' do not apply")
    if est.includes_log_q and (free_bits > 0 or kl == "analytic"):
        raise ValueError(f"{est!r} estimates E_q[-log p(x, z) + log q] as a whole: "
                         f"free_bits and kl='analytic' need a separate KL (estimator 'pathwise')")


def objective(model: VAE, x: torch.Tensor, estimator: Estimator | str = "pathwise",
              num_samples: int = 1, beta: float = 1.0, noise: NoiseSource | None = None, *,
              kl: str = "auto", free_bits: float = 0.0) -> Loss:
    """The negative ELBO (or, for a multi-sample estimator, the negative ``num_samples``-sample
    bound) of ``model`` on ``x`` with ``estimator``'s gradient; see the module docstring."""
    est = resolve_estimator(estimator)
    check_options(est, kl, free_bits, beta)
    q = model.encode(x)
    if is_multi_sample(est):
        return _bound(model, x, q, est, num_samples, noise)
    if est.includes_log_q:
        return _elbo_with_log_q(model, x, q, est, num_samples, beta, noise)
    return _elbo_with_kl(model, x, q, est, num_samples, beta, noise, kl, free_bits)


def _elbo_with_kl(model, x, q, est, num_samples, beta, noise, kl, free_bits) -> Loss:
    """``E_q[-log p(x|z)]`` through ``est`` plus ``beta * KL``: closed form, or Monte Carlo in the
    cost (``f(z) = -log p(x|z) + beta (log q(z|x) - log p(z))``)."""
    # the diagonal Gaussian's KL is formed after the samples (autograd then accumulates the
    # gradients in the same order as the fused step's reference); a registered KL before
    closed = None if kl == "mc" or _factorized(q, model) else closed_form_kl(q, model)
    analytic = kl != "mc" and (closed is not None or _factorized(q, model))
    if kl == "analytic" and not analytic:
        raise ValueError("kl='analytic' needs a closed-form KL: a diagonal Normal posterior "
                         "with the standard normal prior, or a pair registered with torch's "
                         "register_kl")
    dist, parts = as_family(q), {}
    kl_in_cost = not analytic and free_bits == 0
    if not analytic and free_bits > 0 and not isinstance(est, Pathwise):
        raise ValueError(f"free_bits with a Monte Carlo KL needs the pathwise estimator, not {est!r}")

    def f(z: torch.Tensor) -> torch.Tensor:                              # (S, B)
        log_q = None if analytic else _sum_to(dist.log_prob(z), z.dim() - 1)
        parts["z"], parts["recon"] = z, -model.log_likelihood(x, z)
        if analytic:
            return parts["recon"]
        parts["kl"] = log_q - model.prior().log_prob(z)
        return parts["recon"] + beta * parts["kl"] if kl_in_cost else parts["recon"]

    surrogate = _estimate(est, f, dist, num_samples, noise, x).mean()
    z = parts["z"]
    if kl_in_cost:
        return _loss(surrogate, parts["recon"].mean(0), parts["kl"].mean(0))
    kl_dims = None
    if analytic:
        kl_b, kl_dims = closed or closed_form_kl(q, model)
    else:  # pathwise with free bits: the KL at the same samples, floored outside the estimator
        kl_b = parts["kl"].mean(0)
        if _factorized(q, model):
            kl_dims = (q.log_prob(z) + 0.5 * z.pow(2) + _HALF_LOG_2PI).mean(0)
    loss = surrogate + beta * _kl_term(kl_b, kl_dims, free_bits, z.shape[-1])
    return _loss(loss, parts["recon"].mean(0), kl_b)


def _elbo_with_log_q(model, x, q, est, num_samples, beta, noise) -> Loss:
    """``est`` estimates ``E_q[f + log q]`` with ``f(z) = -log p(x|z) - beta log p(z)
    + (beta - 1) log q_stop(z)`` (the last term only for beta != 1): ``recon + beta KL``."""
    dist, prior, parts = as_family(q), model.prior(), {}

    def f(z: torch.Tensor) -> torch.Tensor:                              # (S, B)
        parts["recon"], log_pz = -model.log_likelihood(x, z), prior.log_prob(z)
        if beta == 1.0:
            return parts["recon"] - log_pz
        log_q = _sum_to(log_prob_detached(dist, z), z.dim() - 1)
        parts["kl"] = log_q.detach() - log_pz.detach()
        return parts["recon"] - beta * log_pz + (beta - 1) * log_q

    per_example = _estimate(est, f, dist, num_samples, noise, x)         # (B,)
    recon = parts["recon"].mean(0)
    kl = parts["kl"].mean(0) if "kl" in parts else per_example.detach() - recon.detach()
    return _loss(per_example.mean(), recon, kl)


def _bound(model, x, q, est, k, noise) -> Loss:
    """``est`` (multi-sample) with ``f(z) = -log p(x, z)``: its value is the negative bound.
    ``recon`` and ``kl`` report the means of ``-log p(x|z_k)`` and ``log q - log p(z_k)``."""
    dist, prior, parts = as_family(q), model.prior(), {}

    def f(z: torch.Tensor) -> torch.Tensor:                              # (K, B)
        parts["z"], parts["log_px"], parts["log_pz"] = z, model.log_likelihood(x, z), prior.log_prob(z)
        return -(parts["log_px"] + parts["log_pz"])

    negative_bound = _estimate(est, f, dist, k, noise, x)                # (B,)
    with torch.no_grad():
        z = parts["z"]
        log_q = _sum_to(dist.log_prob(z), z.dim() - 1)
        recon, kl = -parts["log_px"].mean(), (log_q - parts["log_pz"]).mean()
    loss = negative_bound.mean()
    return Loss(loss=loss, elbo=-loss.detach(), recon=recon, kl=kl)


def elbo(
    model: VAE,
    x: torch.Tensor,
    num_samples: int = 1,
    beta: float = 1.0,
    noise: NoiseSource | None = None,
    *,
    estimator: Estimator | str = "pathwise",
    kl: str = "auto",
    free_bits: float = 0.0,
) -> Loss:
    r"""Negative ELBO ``-E_q[log p(x|z)] + beta * KL``, ``num_samples`` draws of ``z`` per example,
    gradients from ``estimator`` (single-sample: pathwise, stl, score, ...).

    ``kl="auto"`` uses ``KL = (mu^2 + expm1(logvar) - logvar) / 2`` summed over dimensions
    when the posterior is a diagonal :class:`Normal` and the prior standard normal, torch's
    registered closed form when there is one (e.g. vMF against the uniform on the sphere),
    and otherwise ``KL ~= mean_s [log q(z_s|x) - log p(z_s)]``; an estimator with
    ``includes_log_q`` (STL) always takes the Monte Carlo form inside its estimate.
    ``free_bits = lambda`` replaces ``KL`` in the loss by ``sum_j max(lambda, mean_batch KL_j)``
    (per dimension j when the KL factorizes over dimensions, else ``max(lambda L, KL)``).
    The reported ``elbo`` is the plain ELBO (beta = 1, no floor).
    """
    est = resolve_estimator(estimator)
    if is_multi_sample(est):
        raise ValueError(f"{est!r} is a multi-sample estimator of the K-sample bound: use "
                         f"iwae(model, x, k, estimator=...) (for the ELBO, DReG reduces to 'stl')")
    return objective(model, x, est, num_samples, beta, noise, kl=kl, free_bits=free_bits)


def iwae(model: VAE, x: torch.Tensor, k: int = 5, noise: NoiseSource | None = None, *,
         estimator: Estimator | str = "iwae") -> Loss:
    r"""Negative IWAE bound ``-log (1/k) sum_i w_i``, ``w_i = p(x, z_i) / q(z_i|x)``, with ``k``
    importance samples per example and a multi-sample ``estimator``: ``"iwae"`` (pathwise;
    ``"pathwise"`` names it too), ``"dreg"`` (Tucker et al. 2019), or any
    :class:`Estimator` with ``multi_sample = True``. ``k = 1`` is the ELBO with Monte Carlo KL.
    ``recon`` and ``kl`` report the mean of ``-log p(x|z_i)`` and ``log q - log p(z_i)``.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    est = resolve_estimator(estimator)
    if type(est) is Pathwise:  # the pathwise gradient of the bound
        est = IWAE()
    if not is_multi_sample(est):
        raise ValueError(f"iwae() needs a multi-sample estimator (iwae, dreg, or one with "
                         f"multi_sample = True), got {est!r}"
                         + (": 'stl' biases the IWAE gradient, use 'dreg'" if est.includes_log_q else ""))
    return objective(model, x, est, k, noise=noise)

"""Evaluation without gradients: ELBO, importance-sampled log-likelihood, active units.

The log-likelihood estimate (Burda et al. 2016) with ``k`` samples ``z_i ~ q(z|x)``:

    log p(x) ~= logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k

is computed in chunks of samples with a running ``logaddexp``, so memory is bounded by
``memory_mb`` whatever ``k`` is (small chunks that stay in cache are also the fastest),
and no (k, N) tensor is ever formed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from ..distributions import Normal
from ..noise import MonteCarlo, NoiseSource
from ..parallel import gather_rows, is_main, seed_for, split_blocks
from .discrete_latent import is_discrete
from .objectives import elbo, log_weights, sample_posterior
from .priors import StandardNormalPrior
from .two_layer import HierarchicalPosterior

if TYPE_CHECKING:
    from .model import VAE

STREAM_IS, STREAM_ELBO = 1, 2  # block-noise streams of the importance samples and the ELBO
BOUND_K = 100  # evaluate()'s "bound_100": the 100-sample importance weighted bound


def value_estimator(model: VAE) -> str:
    """The estimator whose value the evaluation ELBO takes (no gradients are formed):
    pathwise, or for discrete latents the plain Monte Carlo mean (``score``)."""
    return "score" if is_discrete(model) else "pathwise"


def log_importance_weights(model: VAE, x: torch.Tensor, num_samples: int,
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


def refine_posterior(model: VAE, x: torch.Tensor, q: Any, steps: int, lr: float = 0.03,
                     num_samples: int = 8,
                     noise: NoiseSource | None = None) -> Normal | HierarchicalPosterior:
    """Per-example refinement of the proposal (semi-amortized inference, Kim et al. 2018):
    ``steps`` Adam steps on every row's own copy of the posterior parameters, from the
    encoder's values, maximising the ELBO ``E_q[log p(x, z) - log q(z|x)]`` with
    ``num_samples`` draws; the model's weights are not touched. A diagonal Gaussian refines
    ``(mu, logvar)`` (entropy in closed form); the two-layer posterior refines
    ``q(z2|x)``'s ``(mu2, logvar2)`` and a per-row shift of ``q(z1|x, z2)``'s outputs.

    Importance sampling stays a valid estimator whatever the proposal:
    ``E[log mean_i w_i] <= log p(x)`` for any q, so a better q only tightens the estimate
    (it closes part of the amortization gap, Cremer et al. 2018), never overstates p(x).
    """
    if steps < 0 or not lr > 0 or num_samples < 1:
        raise ValueError(f"refine: steps >= 0, lr > 0, num_samples >= 1 needed, got steps={steps}, "
                         f"lr={lr}, num_samples={num_samples}")

    noise = noise or MonteCarlo()
    prior = model.prior()

    def leaf(t: torch.Tensor) -> torch.Tensor:
        return t.detach().clone().requires_grad_(True)

    if isinstance(q, Normal) and q.loc.dim() == 2:
        mu, logvar = leaf(q.loc), leaf(q.logvar)
        params = [mu, logvar]

        def proposal():
            return Normal(mu, logvar=logvar, validate_args=False)

        def bound():  # closed-form entropy H(q) = sum logvar / 2 + const
            z = mu + torch.exp(0.5 * logvar) * noise.normal((num_samples, *mu.shape), mu.dtype,
                                                            mu.device)
            return (model.log_likelihood(x, z) + prior.log_prob(z)).mean(0) + 0.5 * logvar.sum(-1)
    elif isinstance(q, HierarchicalPosterior) and q.top.loc.dim() == 2:
        mu, logvar = leaf(q.top.loc), leaf(q.top.logvar)
        shape = (*mu.shape[:-1], q.encoder.latent_dim1)
        d_mu = torch.zeros(shape, dtype=mu.dtype, device=mu.device, requires_grad=True)
        d_logvar = torch.zeros(shape, dtype=mu.dtype, device=mu.device, requires_grad=True)
        params = [mu, logvar, d_mu, d_logvar]

        def proposal():
            return HierarchicalPosterior(q.encoder, q.h.detach(),
                                         Normal(mu, logvar=logvar, validate_args=False),
                                         lower_shift=(d_mu, d_logvar))

        def bound():
            z, log_q = sample_posterior(proposal(), num_samples, noise)
            return (model.log_likelihood(x, z) + prior.log_prob(z) - log_q).mean(0)
    else:
        raise ValueError(f"refining the proposal needs a diagonal Gaussian (B, L) or a two-layer "
                         f"posterior, got {type(q).__name__}")
    optimizer = torch.optim.Adam(params, lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            grads = torch.autograd.grad(-bound().sum(), params)
            for p, g in zip(params, grads):
                p.grad = g
            optimizer.step()
    with torch.no_grad():
        return proposal()


def block_noise(seed: int, block: int, stream: int, device: torch.device) -> MonteCarlo:
    """The noise of block ``block`` (examples ``[block B, (block + 1) B)`` of the whole
    evaluated set): a generator keyed by ``(seed, block, stream)``, so an example's noise
    depends on its global index, never on which process evaluates it."""
    return MonteCarlo(torch.Generator(device).manual_seed(seed_for(seed, block, stream)))


def _batch_noise(seed, generator, first_index: int, start: int, batch_size: int, device):
    if seed is None:  # one stream through the batches (the noise of example i depends on x[:i])
        return MonteCarlo(generator)
    return block_noise(seed, (first_index + start) // batch_size, STREAM_IS, device)


@torch.no_grad()
def log_likelihood(model: VAE, x: torch.Tensor, k: int = 5000, batch_size: int = 100,
                   memory_mb: float = 4.0, generator: torch.Generator | None = None,
                   progress: bool = False, refine_steps: int = 0, refine_lr: float = 0.03,
                   refine_samples: int = 8, seed: int | None = None,
                   first_index: int = 0) -> torch.Tensor:
    """Per-example importance-sampled ``log p(x)`` estimates with ``k`` samples, shape (N,).
    ``refine_steps > 0`` first refines each example's proposal (:func:`refine_posterior`).

    Noise: with ``seed``, batch ``b`` of ``batch_size`` rows draws from
    :func:`block_noise` keyed by its global block ``(first_index + b B) / B`` (``x`` is
    rows ``first_index, ...`` of a larger set; ``first_index`` a multiple of ``batch_size``),
    so any sharding along block boundaries gives the same numbers; else one ``generator``.
    """
    if k < 1:
        raise ValueError(f"k must be a positive number of importance samples, got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive number of examples, got {batch_size}")
    if seed is not None and (first_index % batch_size or generator is not None):
        raise ValueError(f"seed-keyed noise needs first_index ({first_index}) to be a multiple "
                         f"of batch_size ({batch_size}) and no generator")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    # a chunk of c samples for a batch of B examples holds about c * B * D floats (decoder output)
    chunk = max(1, min(k, int(memory_mb * 2**20 / (4 * batch_size * x.shape[1] * 3))))
    out = torch.empty(x.shape[0], dtype=torch.float64)
    bar = tqdm(total=x.shape[0], disable=not progress, desc=f"log p(x), k={k}", unit="ex")
    noise = MonteCarlo(generator)
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size].to(device)
        noise = _batch_noise(seed, noise.generator, first_index, start, batch_size, device)
        q = model.encode(xb)  # once per batch, not once per chunk
        if refine_steps:
            q = refine_posterior(model, xb, q, refine_steps, refine_lr, refine_samples, noise)
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


def evaluate_elbo(model: VAE, x: torch.Tensor, num_samples: int = 16, batch_size: int = 500,
                  seed: int = 0) -> dict[str, float]:
    """Mean ELBO, reconstruction term and KL over ``x`` (nats per example).

    Block ``b`` of ``batch_size`` rows draws its noise keyed by ``(seed, b)``
    (:func:`elbo_block_sums`). Under ``torchrun`` every rank evaluates its own whole blocks
    (only those rows of ``x`` are read) and the float64 block sums are gathered exactly, so
    each rank returns the one-process numbers; call it on every rank."""
    n = x.shape[0]
    if n == 0:
        raise ValueError("evaluate_elbo: x has no rows")
    part = split_blocks(n, batch_size)
    blocks = elbo_block_sums(model, x.narrow(0, part.start, part.size), num_samples, batch_size,
                             seed, part.start)
    total = gather_rows(blocks, part.start // batch_size, -(-n // batch_size)).sum(0)
    return dict(zip(("elbo", "recon", "kl"), (total / n).tolist(), strict=True))


@torch.no_grad()
def posterior_means(model: VAE, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """``E_q[z|x]`` for every row of ``x``, shape (N, L)."""
    device = next(model.parameters()).device
    if x.shape[0] == 0:  # e.g. a process with no rows of a small set
        return torch.zeros(0, model.latent_dim)
    return torch.cat([model.encode(x[s:s + batch_size].to(device)).mean.cpu()
                      for s in range(0, x.shape[0], batch_size)])


def active_units(means: torch.Tensor, threshold: float = 0.01) -> int:
    """Burda et al. (2016): dimensions u with ``Cov_x(E_q[z_u|x]) > threshold``."""
    return int((means.double().var(dim=0) > threshold).sum())


@torch.no_grad()
def elbo_block_sums(model: VAE, x: torch.Tensor, num_samples: int = 16, batch_size: int = 100,
                    seed: int = 0, first_index: int = 0) -> torch.Tensor:
    """Per-block sums of (ELBO, recon, KL) over examples, shape (blocks, 3), float64; block
    ``b`` draws its noise from :func:`block_noise` keyed by its global index."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = torch.zeros(-(-x.shape[0] // batch_size), 3, dtype=torch.float64)
    for i, start in enumerate(range(0, x.shape[0], batch_size)):
        xb = x[start:start + batch_size].to(device)
        noise = block_noise(seed, (first_index + start) // batch_size, STREAM_ELBO, device)
        out = elbo(model, xb, num_samples=num_samples, noise=noise,
                   estimator=value_estimator(model))
        sums[i] = torch.stack([out.elbo, out.recon, out.kl]).double().cpu() * xb.shape[0]
    model.train(was_training)
    return sums


def evaluate(model: VAE, x: torch.Tensor, k: int = 5000, batch_size: int = 100, seed: int = 0,
             elbo_samples: int = 16, progress: bool = False,
             refine_steps: int = 0) -> dict[str, Any]:
    """Everything ``reparam evaluate`` reports, in nats (NLL = -log p(x), positive):
    ``nll`` (importance sampling, ``k`` samples of the encoder's posterior), ``bound_100``
    (the mean 100-sample bound ``log (1/100) sum_i w_i``, a lower bound of ``log p(x)``, without
    refinement), the ELBO and its parts, active units.

    Under ``torchrun`` (an initialized process group) each rank evaluates its own whole
    blocks of ``batch_size`` rows (:func:`reparam.parallel.split_blocks`; only those rows of
    ``x`` are read) and the per-example values are gathered exactly: every example's noise
    is keyed by ``(seed, its block)``, so the result is the single-process one, on every rank.
    """
    if refine_steps and is_discrete(model):
        raise ValueError(f"refine_steps={refine_steps}: refining the proposal follows gradients "
                         f"through z, and this model's latents are discrete (posterior "
                         f"{type(model.encoder).__name__}); evaluate with refine_steps=0")
    n = x.shape[0]
    part = split_blocks(n, batch_size)
    mine = x.narrow(0, part.start, part.size)
    ll = log_likelihood(model, mine, k=k, batch_size=batch_size, progress=progress and is_main(),
                        seed=seed, first_index=part.start, refine_steps=refine_steps)
    nll = -gather_rows(ll, part.start, n)
    bound = gather_rows(log_likelihood(model, mine, k=BOUND_K, batch_size=batch_size, seed=seed,
                                       first_index=part.start), part.start, n)
    parts = evaluate_elbo(model, x, elbo_samples, batch_size, seed)
    means = gather_rows(posterior_means(model, mine), part.start, n)
    return {
        "nll": float(nll.mean()), "nll_stderr": float(nll.std() / math.sqrt(n)),
        "k": k, "refine_steps": refine_steps, "num_examples": int(n), **parts,
        "bound_100": float(bound.mean()),
        "active_units": active_units(means),
        "latent_dim": int(model.latent_dim), "units": "nats per example",
    }

"""Study 2: a VAE whose encoder is trained with each gradient estimator.

The negative ELBO is ``E_q[-log p(x|z)] + KL(q || N(0, I))``; the expectation goes through
the estimator under study (the decoder inside ``f`` always gets its pathwise gradient), the
KL is analytic. STL estimates ``E_q[-log p(x, z) + log q(z)]`` as a whole. Two measurements:

1. Variance and SNR of the encoder gradient on a fixed batch, at a few points along a
   pathwise-trained run (``gradient_stats``, same parameters for every estimator).
2. Training curves: test ELBO against steps and wall-clock seconds for each estimator,
   and the steps each needs to reach the ELBO that pathwise reaches at ``target_fraction``
   of the run.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from ..data import load_dataset
from ..diagnostics import gradient_stats
from ..distributions import kl_normal_standard
from ..estimators import Estimator, get
from ..vae.objectives import elbo

if TYPE_CHECKING:
    from ..vae.model import VAE

ESTIMATORS = ("pathwise", "stl", "score", "score-ema", "score-loo", "score-nvil", "score-cv")
STATEFUL = ("score-ema", "score-nvil", "score-cv")


@dataclass
class VAEStudyConfig:
    data: str = "digits"
    data_dir: str | None = None
    latent_dim: int = 8
    hidden: tuple[int, ...] = (128, 128)
    batch_size: int = 64
    num_samples: int = 4
    steps: int = 2000
    lr: float = 1e-3
    eval_every: int = 100
    eval_samples: int = 4
    checkpoints: int = 3              # variance measured at this many points of training
    repeats: int = 100                # gradient estimates per variance measurement
    warmup: int = 20                  # calls before measuring, for stateful baselines
    target_fraction: float = 0.25
    seed: int = 0
    device: str = "cpu"
    estimators: tuple[str, ...] = field(default=ESTIMATORS)


def negative_elbo(model: VAE, estimator: Estimator, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Mean negative ELBO over the batch with ``estimator`` for the expectation: the VAE's
    own :func:`reparam.vae.elbo` (analytic KL, or ``E[-log p(x, z) + log q]`` for STL)."""
    return elbo(model, x, num_samples, estimator=estimator).loss


@torch.no_grad()
def test_elbo(model: VAE, x: torch.Tensor, num_samples: int) -> float:
    """``E_q[log p(x|z)] - KL`` on ``x``, nats per example (Monte Carlo, ``num_samples``)."""
    q = model.encode(x)
    z = q.sample((num_samples,))
    recon = model.log_likelihood(x, z).mean(0)
    return float((recon - kl_normal_standard(q.loc, q.logvar).sum(-1)).mean())


def _encoder_variance(model, name: str, x: torch.Tensor, cfg: VAEStudyConfig) -> dict:
    model = copy.deepcopy(model)
    est = get(name)
    params = dict(model.encoder.named_parameters())
    stats = gradient_stats(lambda: negative_elbo(model, est, x, cfg.num_samples), params,
                           cfg.repeats, warmup=cfg.warmup if name in STATEFUL else 0)
    var = sum(s.total_variance for s in stats.params.values())
    var_se = sum(float((s.variance_se**2).sum()) for s in stats.params.values()) ** 0.5
    snr = torch.cat([s.snr.flatten() for s in stats.params.values()])
    return {"variance": var, "variance_se": var_se,
            "median_snr": float(snr[torch.isfinite(snr)].median()),
            "seconds_per_estimate": stats.seconds_per_estimate,
            "efficiency": 1.0 / (var * stats.seconds_per_estimate)}


def _batches(n: int, batch_size: int, gen: torch.Generator):
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - batch_size + 1, batch_size):
            yield perm[i:i + batch_size]


def _train(name: str, cfg: VAEStudyConfig, train_x, test_x, probe_x, bar) -> dict:
    from ..vae import VAE

    torch.manual_seed(cfg.seed)
    dev = train_x.device
    model = VAE(train_x.shape[1], cfg.latent_dim, cfg.hidden).to(dev)
    est = get(name)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    batches = _batches(train_x.shape[0], cfg.batch_size, torch.Generator().manual_seed(cfg.seed))
    marks = {round(i * cfg.steps / max(cfg.checkpoints - 1, 1)) for i in range(cfg.checkpoints)}
    curve, variance, seconds = [], [], 0.0
    for step in range(cfg.steps + 1):
        if step % cfg.eval_every == 0 or step == cfg.steps:
            curve.append({"step": step, "seconds": seconds,
                          "test_elbo": test_elbo(model, test_x, cfg.eval_samples)})
        if name == "pathwise" and step in marks:
            for other in cfg.estimators:
                variance.append({"step": step, "estimator": other,
                                 **_encoder_variance(model, other, probe_x, cfg)})
        if step == cfg.steps:
            break
        t0 = time.perf_counter()
        loss = negative_elbo(model, est, train_x[next(batches)], cfg.num_samples)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds += time.perf_counter() - t0
        bar.update()
    return {"curve": curve, "variance": variance}


def _steps_to(curve: list[dict], target: float) -> tuple[int | None, float | None]:
    for row in curve:
        if row["test_elbo"] >= target:
            return row["step"], row["seconds"]
    return None, None


def run_vae_study(cfg: VAEStudyConfig | None = None, progress: bool = True) -> dict:
    """Variance at checkpoints and training curves for every estimator; a JSON-ready dict."""
    cfg = cfg or VAEStudyConfig()
    if "pathwise" not in cfg.estimators:
        raise ValueError("the VAE study needs 'pathwise' among the estimators (the reference)")
    kwargs = {} if cfg.data_dir is None else {"data_dir": cfg.data_dir}
    data = load_dataset(cfg.data, **kwargs)
    dev = torch.device(cfg.device)
    train_x, test_x = data.train.to(dev), data.test.to(dev)
    probe_x = train_x[torch.randperm(train_x.shape[0], generator=torch.Generator().manual_seed(
        cfg.seed + 1))[: cfg.batch_size]]
    order = ["pathwise"] + [n for n in cfg.estimators if n != "pathwise"]
    bar = tqdm(total=cfg.steps * len(order), desc="vae", disable=not progress)
    runs = {name: _train(name, cfg, train_x, test_x, probe_x, bar) for name in order}
    bar.close()
    ref = runs["pathwise"]["curve"]
    target_step = round(cfg.target_fraction * cfg.steps)
    target = next(r["test_elbo"] for r in ref if r["step"] >= target_step)
    summary = {}
    for name in order:
        curve = runs[name]["curve"]
        steps, seconds = _steps_to(curve, target)
        summary[name] = {"final_test_elbo": curve[-1]["test_elbo"],
                         "best_test_elbo": max(r["test_elbo"] for r in curve),
                         "steps_to_target": steps, "seconds_to_target": seconds,
                         "seconds_per_step": curve[-1]["seconds"] / max(cfg.steps, 1)}
    config = asdict(cfg)
    config["hidden"], config["estimators"] = list(cfg.hidden), list(cfg.estimators)
    return {"study": "vae", "config": config, "data": data.name, "target_elbo": target,
            "curves": {n: runs[n]["curve"] for n in order},
            "variance": runs["pathwise"]["variance"], "summary": summary}

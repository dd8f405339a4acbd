"""The discrete study at a model: every discrete estimator's gradient for the encoder of a
binary-latent VAE at fixed checkpoints of one training run.

One run (``reparam.vae.train``, posterior and prior ``bernoulli``, DisARM, seeded) is read at
the end of each epoch of ``checkpoints`` (0 = the initialised model); at each, every
estimator estimates the gradient of its objective (the negative ELBO, or for VIMCO /
DisARM-IW the negative ``k``-sample bound) on one fixed test batch ``repeats`` times:
total variance (summed over the encoder's parameters), median SNR ``|mean| / sd`` over them,
seconds per estimate (:func:`~reparam.diagnostics.gradient_stats`; stateful estimators, the
adapting REBAR / RELAX control variates and the baselines, get 10 calls first).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..config import MIN_SAMPLES, TrainConfig
from ..diagnostics import gradient_stats
from ..estimators import get
from ..vae.objectives import objective
from ..vae.training import load_data, setup, train

if TYPE_CHECKING:
    from ..vae.model import VAE

ESTIMATORS = ("score-ema", "rloo", "score-nvil", "arm", "disarm", "rebar", "relax", "gumbel",
              "straight-through", "vimco", "disarm-iw")
MULTI_SAMPLE_K = {"vimco": 2, "disarm-iw": 2}
WARMUP = 10


@dataclass
class DiscreteModelConfig:
    data: str = "digits"
    data_dir: str | None = None
    latent_dim: int = 20
    hidden: tuple[int, ...] = ()  # () = the linear model
    checkpoints: tuple[int, ...] = (0, 1, 3)
    batch_size: int = 64
    repeats: int = 50
    seed: int = 0
    device: str = "cpu"
    estimators: tuple[str, ...] = ESTIMATORS


def _model_at(cfg: DiscreteModelConfig, epochs: int):
    config = TrainConfig(dataset=cfg.data, data_dir=cfg.data_dir, posterior="bernoulli",
                         latent_dim=cfg.latent_dim, hidden=list(cfg.hidden), estimator="disarm",
                         batch_size=cfg.batch_size, epochs=max(epochs, 1), eval_samples=1,
                         seed=cfg.seed, device=cfg.device, tensorboard=False)
    model = (setup(config, save=False).model if epochs == 0
             else train(config, save=False, progress=False).model)
    return model, load_data(config).test.to(next(model.parameters()).device)


def measure(model: VAE, x: torch.Tensor, name: str, repeats: int) -> dict:
    """Gradient statistics of ``name``'s estimate for the encoder's parameters on ``x``."""
    est = get(name)
    k = MULTI_SAMPLE_K.get(name)
    samples = k or MIN_SAMPLES.get(name, 1)
    params = dict(model.encoder.named_parameters())
    stats = gradient_stats(lambda: objective(model, x, est, samples).loss, params, repeats,
                           warmup=WARMUP)
    total = sum(s.total_variance for s in stats.params.values())
    snr = torch.cat([s.snr.flatten() for s in stats.params.values()])
    return {"estimator": name, "num_samples": samples,
            "objective": "bound" if k else "elbo",
            "log10_total_variance": math.log10(total) if total > 0 else -math.inf,
            "median_snr": float(snr.median()),
            "seconds_per_estimate": stats.seconds_per_estimate}


def run_discrete_model_study(cfg: DiscreteModelConfig) -> dict:
    """Rows of (checkpoint epoch, estimator, statistics) and the config."""
    rows = []
    for epochs in cfg.checkpoints:
        model, test_x = _model_at(cfg, epochs)
        x = test_x[:cfg.batch_size]
        for name in cfg.estimators:
            rows.append({"epoch": epochs, **measure(model, x, name, cfg.repeats)})
    return {"config": asdict(cfg), "rows": rows}


def discrete_model_markdown(result: dict) -> str:
    cfg = result["config"]
    arch = "linear" if not cfg["hidden"] else f"hidden {list(cfg['hidden'])} tanh"
    out = [f"## Discrete estimators at a model ({cfg['data']}, {cfg['latent_dim']} binary "
           f"latents, {arch}; encoder gradient, batch {cfg['batch_size']}, "
           f"{cfg['repeats']} estimates)\n",
           "| epoch | estimator | objective | S | log10 total variance | median SNR | ms / estimate |",
           "|---:|---|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        out.append(f"| {r['epoch']} | {r['estimator']} | {r['objective']} | {r['num_samples']} | "
                   f"{r['log10_total_variance']:.2f} | {r['median_snr']:.3f} | "
                   f"{1e3 * r['seconds_per_estimate']:.2f} |")
    return "\n".join(out) + "\n"


def discrete_model_figure(result: dict, path: str | Path) -> None:
    """log10 total variance of the encoder gradient against the checkpoint, per estimator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in result["config"]["estimators"]:
        rows = [r for r in result["rows"] if r["estimator"] == name]
        ax.plot([r["epoch"] for r in rows], [r["log10_total_variance"] for r in rows],
                marker="o", label=name)
    ax.set_xlabel("checkpoint (epochs of DisARM training)")
    ax.set_ylabel("log10 total variance, encoder gradient")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""The training loop: reads top to bottom, writes the run directory as it goes."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .. import runs, viz
from ..config import TrainConfig
from ..data import Dataset, load_dataset
from ..noise import MonteCarlo
from .evaluation import evaluate_elbo
from .model import VAE
from .objectives import elbo


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; a clear error when cuda is asked for but absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    return torch.device(name)


def build_model(config: TrainConfig, data_dim: int) -> VAE:
    return VAE(data_dim, config.latent_dim, config.hidden, config.activation)


def load_data(config: TrainConfig) -> Dataset:
    kwargs: dict[str, Any] = {}
    if config.data_dir is not None:
        kwargs["data_dir"] = config.data_dir
    return load_dataset(config.dataset, **kwargs)


@dataclass
class TrainResult:
    model: VAE
    config: TrainConfig
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    run_dir: Path | None


def train(
    config: TrainConfig | None = None,
    *,
    dataset: Dataset | None = None,
    resume: str | Path | None = None,
    save: bool = True,
    progress: bool = True,
    **overrides: Any,
) -> TrainResult:
    """Train a VAE by minimising the negative ELBO; write the run directory when ``save``.

    ``train()`` trains on the digits with the defaults of :class:`TrainConfig`;
    ``train(epochs=5)`` overrides single settings; ``resume=RUN_DIR`` continues a run from
    its last checkpoint (``overrides`` may raise ``epochs``).
    """
    if resume is not None:
        config = TrainConfig.load(Path(resume) / "config.json").replace(out=str(resume), **overrides)
    else:
        config = (config or TrainConfig()).replace(**overrides)
    device = resolve_device(config.device)
    run_dir = runs.prepare_run_dir(config.out) if save else None
    if run_dir is not None:
        config = config.replace(out=str(run_dir))
        runs.write_json(run_dir / "config.json", config.to_dict())

    torch.manual_seed(config.seed)
    data = dataset if dataset is not None else load_data(config)
    model = build_model(config, data.dim).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    shuffle_gen = torch.Generator().manual_seed(config.seed)
    noise_gen = torch.Generator(device).manual_seed(config.seed + 1)
    noise = MonteCarlo(noise_gen)

    def eval_gen() -> torch.Generator:  # the same evaluation noise every time
        return torch.Generator(device).manual_seed(config.seed + 2)

    train_x, test_x = data.train.to(device), data.test.to(device)
    history: list[dict[str, float]] = []
    start_epoch, elapsed = 0, 0.0
    initial = evaluate_elbo(model, test_x, config.eval_samples, generator=eval_gen())
    if resume is not None:
        state, extra = runs.load_checkpoint(run_dir, model, optimizer, device)
        start_epoch, elapsed, initial = state["epoch"], state["elapsed"], state["initial"]
        shuffle_gen.set_state(extra["shuffle_gen"])
        noise_gen.set_state(extra["noise_gen"].to(noise_gen.get_state().device))
        history = runs.read_history(run_dir / "history.csv")

    n, bs = train_x.shape[0], config.batch_size
    steps = math.ceil(n / bs)
    bar = tqdm(total=(config.epochs - start_epoch) * steps, disable=not progress,
               desc="train", unit="step", dynamic_ncols=True)
    model.train()
    for epoch in range(start_epoch + 1, config.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=shuffle_gen).to(device)
        running = torch.zeros((), device=device)
        for i in range(steps):
            xb = train_x[perm[i * bs:(i + 1) * bs]]
            out = elbo(model, xb, num_samples=config.num_samples, beta=config.beta, noise=noise)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            running += out.elbo * xb.shape[0]
            bar.update(1)
            if i == steps - 1 or i % 50 == 0:
                bar.set_postfix(epoch=epoch, loss=f"{float(out.loss.detach()):.3f}")
        elapsed += time.perf_counter() - t0
        test = evaluate_elbo(model, test_x, config.eval_samples, generator=eval_gen())
        history.append({"epoch": epoch, "train_elbo": float(running) / n,
                        "test_elbo": test["elbo"], "test_recon": test["recon"],
                        "test_kl": test["kl"], "seconds": elapsed})
        if run_dir is not None:
            runs.save_checkpoint(
                run_dir, model, optimizer,
                {"epoch": epoch, "elapsed": elapsed, "initial": initial},
                extra={"shuffle_gen": shuffle_gen.get_state(),
                       "noise_gen": noise_gen.get_state().cpu()})
            runs.write_history(run_dir / "history.csv", history)
    bar.close()

    train_final = evaluate_elbo(model, train_x, config.eval_samples, generator=eval_gen())
    test_final = evaluate_elbo(model, test_x, config.eval_samples, generator=eval_gen())
    metrics = {
        "train_elbo": train_final["elbo"], "test_elbo": test_final["elbo"],
        "test_recon": test_final["recon"], "test_kl": test_final["kl"],
        "train_recon": train_final["recon"], "train_kl": train_final["kl"],
        "initial_test_elbo": initial["elbo"], "epochs": config.epochs,
        "wall_time_s": elapsed, "device": str(device), "dataset": data.name,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "units": "nats per example",
    }
    if run_dir is not None:
        runs.save_weights(run_dir / "model.safetensors", model.state_dict())
        runs.write_json(run_dir / "metrics.json", metrics)
        write_figures(run_dir, model, data, history, config.seed)
    return TrainResult(model, config, metrics, history, run_dir)


def write_figures(run_dir: Path, model: VAE, data: Dataset, history: list[dict[str, float]],
                  seed: int = 0) -> None:
    """``reconstructions.png``, ``samples.png``, ``loss.png``."""
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(data.test.shape[0], generator=gen)[:10]
    x = data.test[idx].to(device)
    viz.save_reconstructions(run_dir / "reconstructions.png", x, model.reconstruct(x), data.image_shape)
    samples = model.sample(50, generator=torch.Generator(device).manual_seed(seed))
    viz.save_samples(run_dir / "samples.png", samples, data.image_shape)
    if history:
        viz.save_loss_curves(run_dir / "loss.png", history)

"""The training loop: reads top to bottom, writes the run directory as it goes."""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .. import runs, viz
from ..config import TrainConfig, parse_duration
from ..data import Dataset, load_dataset
from ..noise import MonteCarlo
from .evaluation import evaluate_elbo
from .factory import DEFAULTS as MODEL_DEFAULTS
from .factory import build_model as factory_build_model
from .fused import fused_step
from .model import VAE
from .objectives import elbo, iwae
from .optim import AdamStep, adam


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; a clear error when cuda is asked for but absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    return torch.device(name)


def model_spec(config: TrainConfig) -> dict[str, Any]:
    """The model options of ``config`` (see :data:`reparam.vae.factory.DEFAULTS`)."""
    values = config.to_dict()
    return {key: values[key] for key in MODEL_DEFAULTS if key in values}


def build_model(config: TrainConfig, data_dim: int, image_shape=None) -> VAE:
    return factory_build_model(model_spec(config), data_dim, image_shape)


def objective(config: TrainConfig):
    """``loss(model, x, beta, noise) -> Loss`` for the configured objective and estimator
    (for ``iwae_from``: the ELBO; :func:`train` switches to ``iwae_objective`` later)."""
    if config.objective == "iwae":
        if config.beta != 1.0 or config.warmup > 0 or config.free_bits > 0:
            raise ValueError("objective 'iwae' has no KL weight: beta, warmup and free_bits "
                             "apply to 'elbo' only")
        return iwae_objective(config)
    # iwae_from with DReG: its one-sample case, STL, in the ELBO phase (without iwae_from,
    # elbo() rejects 'dreg' with its own message)
    dreg_phase = config.iwae_from is not None and config.estimator == "dreg"
    estimator = "stl" if dreg_phase else config.estimator
    return lambda model, x, beta, noise: elbo(
        model, x, num_samples=config.num_samples, beta=beta, noise=noise,
        estimator=estimator, kl=config.kl, free_bits=config.free_bits)


def iwae_objective(config: TrainConfig):
    """The IWAE bound with ``config.k`` samples and ``config.estimator`` (pathwise or dreg):
    the objective ``iwae``, and the ``iwae_from`` phase."""
    return lambda model, x, beta, noise: iwae(model, x, k=config.k, noise=noise,
                                              estimator=config.estimator)


def load_data(config: TrainConfig) -> Dataset:
    kwargs: dict[str, Any] = {}
    if config.data_dir is not None:
        kwargs["data_dir"] = config.data_dir
    if config.binarize is not None:
        kwargs["binarize"] = config.binarize
    return load_dataset(config.dataset, **kwargs)


@dataclass
class TrainResult:
    model: VAE
    config: TrainConfig
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    run_dir: Path | None


def split_data(config: TrainConfig, data: Dataset) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Training rows and validation rows (``None`` when no validation is needed or possible)."""
    train_x, valid_x = data.train, data.valid
    if config.train_on == "train+valid":
        if valid_x is None:
            raise ValueError(f"train_on='train+valid' but dataset {data.name!r} has no validation split")
        return torch.cat([train_x, valid_x]), None
    if valid_x is None and config.patience is not None:  # carve a seeded 10% for early stopping
        perm = torch.randperm(train_x.shape[0], generator=torch.Generator().manual_seed(config.seed))
        cut = train_x.shape[0] // 10
        return train_x[perm[cut:]], train_x[perm[:cut]]
    return train_x, valid_x


def schedules(config: TrainConfig, fraction: float) -> tuple[float, float]:
    """(learning rate, KL weight beta) at ``fraction`` in [0, 1] of the run."""
    lr = config.lr
    if config.lr_schedule == "cosine":
        lr = config.lr * 0.5 * (1.0 + math.cos(math.pi * min(fraction, 1.0)))
    beta = config.beta
    if config.warmup > 0:
        beta = config.beta * min(1.0, fraction / config.warmup)
    return lr, beta


def _tensorboard(run_dir: Path | None, enabled: bool):
    if run_dir is None or not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: history.csv is the log
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


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
    its last checkpoint (``overrides`` may raise ``epochs`` or ``time_limit``).
    """
    if resume is not None:
        config = TrainConfig.load(Path(resume) / "config.json").replace(out=str(resume), **overrides)
    else:
        config = (config or TrainConfig()).replace(**overrides)
    device = resolve_device(config.device)
    time_limit = parse_duration(config.time_limit) if config.time_limit else math.inf
    run_dir = runs.prepare_run_dir(config.out) if save else None
    if run_dir is not None:
        config = config.replace(out=str(run_dir))
        runs.write_json(run_dir / "config.json", config.to_dict())

    torch.manual_seed(config.seed)
    data = dataset if dataset is not None else load_data(config)
    model = build_model(config, data.dim, data.image_shape).to(device)
    loss_fn = objective(config)
    optimizer = adam(model.parameters(), lr=config.lr)
    optimizer_step = AdamStep(optimizer)  # optimizer.step() without its per-step Python
    shuffle_gen = torch.Generator().manual_seed(config.seed)
    noise_gen = torch.Generator(device).manual_seed(config.seed + 1)
    noise = MonteCarlo(noise_gen)

    def eval_gen() -> torch.Generator:  # the same evaluation noise every time
        return torch.Generator(device).manual_seed(config.seed + 2)

    if data.binarization == "dynamic":  # train on pixel probabilities, binarize every batch
        if data.train_probs is None:
            raise ValueError(f"dataset {data.name!r} has no grayscale values for dynamic binarization")
        data = dataclasses.replace(data, train=data.train_probs)
    dynamic = data.binarization == "dynamic"
    train_x, valid_x = split_data(config, data)
    train_x, test_x = train_x.to(device), data.test.to(device)
    history: list[dict[str, float]] = []
    start_epoch, elapsed, best = 0, 0.0, -math.inf
    iwae_epoch = 0  # iwae_from: first epoch with IWAE steps (0: none yet)
    initial = evaluate_elbo(model, test_x, config.eval_samples, generator=eval_gen())
    if resume is not None:
        state, extra = runs.load_checkpoint(run_dir, model, optimizer, device)
        start_epoch, elapsed, initial = state["epoch"], state["elapsed"], state["initial"]
        best, iwae_epoch = state.get("best", -math.inf), state.get("iwae_epoch", 0)
        shuffle_gen.set_state(extra["shuffle_gen"])
        noise_gen.set_state(extra["noise_gen"].to(noise_gen.get_state().device))
        history = runs.read_history(run_dir / "history.csv")
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    step = None if not config.fused or config.compile else fused_step(
        model, objective=config.objective, estimator=config.estimator, kl=config.kl,
        free_bits=config.free_bits, num_samples=config.num_samples, bf16=config.bf16)
    fused_used = step is not None
    if config.bf16 and device.type == "cpu" and not (
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        warnings.warn("bf16 = true on a CPU without native bfloat16 instructions (AVX512-BF16 / "
                      "AMX): the products are emulated and slower than float32", stacklevel=2)
    iwae_fn = iwae_objective(config) if config.iwae_from is not None else None
    if config.compile:
        model.encoder.compile()
        model.decoder.compile()
    writer = _tensorboard(run_dir, config.tensorboard)

    n, bs = train_x.shape[0], config.batch_size
    steps = math.ceil(n / bs)
    total_steps = config.epochs * steps
    bar = tqdm(total=(config.epochs - start_epoch) * steps, disable=not progress,
               desc="train", unit="step", dynamic_ncols=True)
    model.train()
    stop_reason, stale = "epochs", 0
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16)
    for epoch in range(start_epoch + 1, config.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=shuffle_gen).to(device)
        running, seen = torch.zeros((), device=device), 0
        for i in range(steps):
            fraction = max(((epoch - 1) * steps + i) / total_steps,
                           (elapsed + time.perf_counter() - t0) / time_limit)
            lr, beta = schedules(config, fraction)
            on_iwae = iwae_fn is not None and fraction >= config.iwae_from
            if on_iwae:
                iwae_epoch = iwae_epoch or epoch
            for group in optimizer.param_groups:
                group["lr"] = lr
            xb = train_x[perm[i * bs:(i + 1) * bs]]
            if dynamic:
                xb = torch.bernoulli(xb, generator=noise_gen)
            if step is not None and not on_iwae:  # same loss and gradients, closed-form backward
                out = step(xb, beta, noise)
            else:
                with autocast:
                    out = (iwae_fn if on_iwae else loss_fn)(model, xb, beta, noise)
                optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
            optimizer_step()
            running += out.elbo * xb.shape[0]
            seen += xb.shape[0]
            bar.update(1)
            if i == steps - 1 or i % 50 == 0:
                bar.set_postfix(epoch=epoch, loss=f"{float(out.loss.detach()):.3f}")
            if elapsed + time.perf_counter() - t0 >= time_limit:
                stop_reason = "time_limit"
                break
        elapsed += time.perf_counter() - t0
        test = evaluate_elbo(model, test_x, config.eval_samples, generator=eval_gen())
        row = {"epoch": epoch, "train_elbo": float(running) / seen, "test_elbo": test["elbo"],
               "test_recon": test["recon"], "test_kl": test["kl"], "lr": lr, "beta": beta,
               "seconds": elapsed}
        if valid_x is not None:
            row["valid_elbo"] = evaluate_elbo(model, valid_x, config.eval_samples,
                                              generator=eval_gen())["elbo"]
            if row["valid_elbo"] > best:
                best, stale = row["valid_elbo"], 0
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if config.patience is not None and stale >= config.patience:
                    stop_reason = "early_stopping"
        history.append(row)
        if writer is not None:
            for key, value in row.items():
                if key != "epoch":
                    writer.add_scalar(key, value, epoch)
        last = epoch == config.epochs or stop_reason != "epochs"
        if run_dir is not None and (epoch % config.checkpoint_every == 0 or last):
            runs.save_checkpoint(
                run_dir, model, optimizer,
                {"epoch": epoch, "elapsed": elapsed, "initial": initial, "best": best,
                 "iwae_epoch": iwae_epoch},
                extra={"shuffle_gen": shuffle_gen.get_state(),
                       "noise_gen": noise_gen.get_state().cpu()})
            runs.write_history(run_dir / "history.csv", history)
        if stop_reason != "epochs":
            break
    bar.close()
    if writer is not None:
        writer.close()
    if valid_x is not None and config.patience is not None:
        model.load_state_dict(best_state)  # early stopping keeps the best validation model

    train_final = evaluate_elbo(model, train_x, config.eval_samples, generator=eval_gen())
    test_final = evaluate_elbo(model, test_x, config.eval_samples, generator=eval_gen())
    metrics = {
        "train_elbo": train_final["elbo"], "test_elbo": test_final["elbo"],
        "test_recon": test_final["recon"], "test_kl": test_final["kl"],
        "train_recon": train_final["recon"], "train_kl": train_final["kl"],
        "initial_test_elbo": initial["elbo"], "epochs": history[-1]["epoch"] if history else 0,
        "stop_reason": stop_reason, "wall_time_s": elapsed, "device": str(device),
        "dataset": data.name, "train_examples": n,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "fused_step": fused_used,
        "iwae_from_epoch": iwae_epoch or None,
        "units": "nats per example",
    }
    if run_dir is not None:
        runs.save_weights(run_dir / "model.safetensors", model.state_dict())
        runs.write_json(run_dir / "metrics.json", metrics)
        write_figures(run_dir, model, data, history, config.seed)
    return TrainResult(model, config, metrics, history, run_dir)


def write_figures(run_dir: Path, model: VAE, data: Dataset, history: list[dict[str, float]],
                  seed: int = 0) -> list[Path]:
    """Reconstructions, prior samples, loss curves, latent traversals, the latent scatter and,
    for 2-D latents, the learned manifold. Returns the paths written."""
    from .evaluation import posterior_means

    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(data.test.shape[0], generator=gen)[:10]
    x = data.test[idx].to(device)
    paths = {name: run_dir / f"{name}.png" for name in
             ("reconstructions", "samples", "loss", "traversals", "latent_scatter", "manifold")}
    viz.save_reconstructions(paths["reconstructions"], x, model.reconstruct(x), data.image_shape)
    samples = model.sample(50, generator=torch.Generator(device).manual_seed(seed))
    viz.save_samples(paths["samples"], samples, data.image_shape)
    written = [paths["reconstructions"], paths["samples"]]
    if history:
        viz.save_loss_curves(paths["loss"], history)
        written.append(paths["loss"])
    with torch.no_grad():
        means = posterior_means(model, data.test)
        decode = model.decoder.mean
        viz.save_traversals(paths["traversals"], decode, means.mean(0).to(device), data.image_shape)
        viz.save_latent_scatter(paths["latent_scatter"], means, data.test_labels)
        written += [paths["traversals"], paths["latent_scatter"]]
        if model.latent_dim == 2:
            viz.save_manifold(paths["manifold"], decode, data.image_shape, device=device)
            written.append(paths["manifold"])
    return written


def load_run(run_dir: str | Path, device: str = "auto", data_dir: str | None = None
             ) -> tuple[TrainConfig, VAE, Dataset]:
    """A finished (or checkpointed) run: its config, the model with its weights, its data."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ValueError(f"{str(run_dir)!r} is not a run directory (no config.json)")
    config = TrainConfig.load(run_dir / "config.json")
    if data_dir is not None:
        config = config.replace(data_dir=data_dir)
    dev = resolve_device(device)
    data = load_data(config)
    model = build_model(config, data.dim, data.image_shape)
    weights = run_dir / "model.safetensors"
    if weights.is_file():
        model.load_state_dict(runs.load_weights(weights))
    else:  # an unfinished run: take the model from its checkpoint
        tensors = runs.load_weights(run_dir / runs.CHECKPOINT)
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    return config, model.to(dev).eval(), data

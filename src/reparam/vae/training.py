"""The training loop in small parts that read top to bottom:

``setup`` (config -> validated config, data, model, optimizer, objectives, resume state, and
only then the run directory) -> per epoch :func:`~reparam.vae.loop.train_epoch` (which calls
the shared :func:`~reparam.vae.loop.step`) -> :func:`end_epoch` (evaluation, history, early
stopping) -> :func:`checkpoint` -> :func:`finish` (metrics, weights, figures).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import signal
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .. import runs, viz
from .._torch_compat import bf16_supported
from ..config import ELBO_PHASE, FIXED_ON_RESUME, TrainConfig, parse_duration
from ..data import Dataset, load_dataset
from ..data.mmap import MappedRows, concat_rows
from ..errors import CorruptFileError
from ..estimators import ESTIMATORS, Estimator
from ..noise import MonteCarlo
from .discrete_latent import init_from_data
from .estimator_state import estimator_tensors, load_estimator_tensors
from .evaluation import evaluate_elbo
from .factory import MODEL_KEYS
from .factory import build_model as factory_build_model
from .fused import FusedELBOStep, fused_step, why_not_fused
from .loop import (
    FAULT_ENV,
    ObjectiveFn,
    Progress,
    Run,
    Snapshot,
    StepState,
    fault_plan,
    schedules,
    step,
    train_epoch,
)
from .model import VAE
from .objectives import elbo, iwae, resolve_estimator
from .optim import AdamStep, adam

EST = "estimator."  # checkpoint keys of the estimator's learned state
__all__ = ["train", "setup", "step", "train_epoch", "end_epoch", "checkpoint", "finish",
           "resolve_config", "Run", "StepState", "Progress", "TrainResult", "schedules",
           "load_run", "write_figures", "build_model", "objectives", "Interrupted"]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; a clear error when cuda is asked for but absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    return torch.device(name)


def model_spec(config: TrainConfig) -> dict[str, Any]:
    """The model options of ``config`` (see :data:`reparam.vae.factory.MODEL_KEYS`)."""
    values = config.to_dict()
    return {key: values[key] for key in MODEL_KEYS}


def build_model(config: TrainConfig, data_dim: int, image_shape: Sequence[int] | None = None) -> VAE:
    return factory_build_model(model_spec(config), data_dim, image_shape)


def objectives(config: TrainConfig, estimator: Estimator | None = None
               ) -> tuple[ObjectiveFn, ObjectiveFn | None]:
    """``(objective, IWAE objective or None)``, each ``(model, x, beta, noise) -> Loss`` with
    one estimator instance for the run (``estimator``, else a fresh ``config.estimator``;
    stateful baselines keep their state). For ``iwae_from`` the first is the ELBO with the
    estimator's ELBO phase (DReG: STL)."""
    def bound(est):
        return lambda model, x, beta, noise: iwae(model, x, config.k, noise, estimator=est)

    given = estimator or resolve_estimator(config.estimator)
    if config.objective == "iwae":
        return bound(given), None
    est = resolve_estimator(ELBO_PHASE[config.estimator]) if config.iwae_from is not None else given

    def elbo_fn(model, x, beta, noise):
        return elbo(model, x, config.samples(), beta, noise, estimator=est, kl=config.kl,
                    free_bits=config.free_bits)

    later = bound(given) if config.iwae_from is not None else None
    return elbo_fn, later


def estimator_name(estimator: Estimator) -> str:
    """The name in ``ESTIMATORS`` whose entry is ``estimator``'s class (what ``config.json``
    records for an estimator object)."""
    for name, factory in ESTIMATORS.items():
        if factory is type(estimator):
            return name
    raise ValueError(f"train(estimator={estimator!r}): register its class in reparam.estimators."
                     f"ESTIMATORS so that config.json can name it")


def load_data(config: TrainConfig) -> Dataset:
    kwargs: dict[str, Any] = {}
    if config.data_dir is not None:
        kwargs["data_dir"] = config.data_dir
    if config.binarize is not None:
        kwargs["binarize"] = config.binarize
    if config.mmap is not None:
        if not config.dataset.startswith(("npy:", "npz:")):
            raise ValueError(f"mmap={config.mmap} applies to npy: data only, not dataset "
                             f"{config.dataset!r}")
        kwargs["mmap"] = config.mmap
    return load_dataset(config.dataset, **kwargs)


@dataclass
class TrainResult:
    model: VAE
    config: TrainConfig
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    run_dir: Path | None
    already_finished: str | None = None  # a resumed run that was done: why (nothing trained)


def split_data(config: TrainConfig, data: Dataset) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Training rows and validation rows (``None`` when no validation is needed or possible)."""
    train_x, valid_x = data.train, data.valid
    mapped = isinstance(train_x, MappedRows)  # memory-mapped rows stay lazy
    if config.train_on == "train+valid":
        if valid_x is None:
            raise ValueError(f"train_on='train+valid' but dataset {data.name!r} has no validation split")
        return (concat_rows(train_x, valid_x) if mapped else torch.cat([train_x, valid_x])), None
    if valid_x is None and config.patience is not None:  # carve a seeded 10% for early stopping
        perm = torch.randperm(train_x.shape[0], generator=torch.Generator().manual_seed(config.seed))
        cut = train_x.shape[0] // 10
        if mapped:
            return train_x.take(perm[cut:]), train_x.take(perm[:cut])
        return train_x[perm[cut:]], train_x[perm[:cut]]
    return train_x, valid_x


def resolve_config(config: TrainConfig | None, resume: str | Path | None,
                   overrides: dict[str, Any]) -> TrainConfig:
    """The run's validated config; nothing is read but ``RUN/config.json``, nothing written.

    A resumed run keeps its stored config: ``overrides`` may change the loop's settings
    (``epochs``, ``time_limit``, ``iwae_from``, ...) but not those of
    :data:`reparam.config.FIXED_ON_RESUME` (model, data, seed), ``out`` must be the run
    itself, and a second config is refused."""
    if resume is None:
        return (config or TrainConfig()).replace(**overrides)
    if config is not None:
        raise ValueError(f"a config and resume={str(resume)!r} exclude each other: a resumed run "
                         f"keeps its stored config (pass single settings, e.g. epochs, to extend it)")
    stored = TrainConfig.load(Path(resume) / "config.json")
    out = overrides.pop("out", None)
    if out is not None and Path(out).resolve() != Path(resume).resolve():
        raise ValueError(f"out={out!r} conflicts with resume={str(resume)!r}: a resumed run "
                         f"writes into its own directory")
    changed = [k for k in FIXED_ON_RESUME if k in overrides and overrides[k] != getattr(stored, k)]
    if changed:
        was = ", ".join(f"{k}={getattr(stored, k)!r} (given {overrides[k]!r})" for k in changed)
        raise ValueError(f"cannot change {changed} when resuming {str(resume)!r}: the run was "
                         f"trained with {was}; start a new run for a different model or data")
    return stored.replace(**overrides, out=str(resume))


def _splits(config: TrainConfig, data: Dataset, device: torch.device):
    """``(data, train_x, valid_x, test_x)`` on ``device`` (memory-mapped splits stay mapped:
    each batch reads its rows); dynamic binarization trains on the pixel probabilities
    (binarized every batch)."""
    if data.binarization == "dynamic":
        if data.train_probs is None:
            raise ValueError(f"dataset {data.name!r} has no grayscale values for dynamic binarization")
        data = dataclasses.replace(data, train=data.train_probs)
    train_x, valid_x = split_data(config, data)
    def on_device(x):
        return x if isinstance(x, MappedRows) else x.to(device)
    return data, on_device(train_x), valid_x, on_device(data.test)


def select_fused(config: TrainConfig, model: VAE) -> FusedELBOStep | None:
    """The fused step where it applies (``fused`` unset) or where forced (``fused=True``: an
    error naming why when it cannot apply); None with ``fused=False`` or ``compile``."""
    if config.fused is False or config.compile:
        return None
    estimator = ELBO_PHASE[config.estimator] if config.iwae_from is not None else config.estimator
    options = dict(objective=config.objective, estimator=estimator, kl=config.kl,
                   free_bits=config.free_bits, bf16=config.bf16)
    why = why_not_fused(model, **options)
    if why is not None:
        if config.fused:
            raise ValueError(f"fused=True but the fused step cannot apply here: {why} (leave "
                             f"'fused' unset to use it only where it applies)")
        return None
    return fused_step(model, num_samples=config.samples(), **options)


def _warn_bf16(config: TrainConfig, device: torch.device) -> None:
    if config.bf16 and device.type == "cpu" and not bf16_supported():
        warnings.warn("bf16 = true on a CPU without native bfloat16 instructions (AVX512-BF16 / "
                      "AMX): the products are emulated and slower than float32", stacklevel=3)


def _probe(config: TrainConfig, model: VAE, x: torch.Tensor) -> None:
    """Evaluate the objectives once on two rows (fresh estimators, own noise, no gradients), so
    an estimator the model cannot take fails before anything is written."""
    with torch.no_grad():
        for fn in objectives(config):
            if fn is not None:
                device = next(model.parameters()).device
                fn(model, x[:2].to(device), 1.0, MonteCarlo(torch.Generator(device).manual_seed(0)))


def _tensorboard(run_dir: Path | None, enabled: bool):
    if run_dir is None or not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: history.csv is the log
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def setup(config: TrainConfig, *, dataset: Dataset | None = None,
          resume: str | Path | None = None, save: bool = True,
          estimator: Estimator | None = None) -> Run:
    """Everything a run needs, checked before anything is written: data, model, optimizer,
    objectives (probed), the resumed state; then the run directory and its ``config.json``.
    ``estimator``: an instance to train with (``config.estimator`` names its class)."""
    device = resolve_device(config.device)
    time_limit = parse_duration(config.time_limit) if config.time_limit else math.inf
    torch.manual_seed(config.seed)
    data = dataset if dataset is not None else load_data(config)
    model = build_model(config, data.dim, data.image_shape).to(device)
    estimator = estimator or resolve_estimator(config.estimator)  # one instance for the run
    elbo_fn, iwae_fn = objectives(config, estimator)
    optimizer = adam(model.parameters(), lr=config.lr)
    state = StepState(optimizer, AdamStep(optimizer), elbo_fn,  # AdamStep: optimizer.step() lean
                      autocast=torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16))
    noise_gen = torch.Generator(device).manual_seed(config.seed + 1)
    data, train_x, valid_x, test_x = _splits(config, data, device)
    run = Run(config, device, data, model, state, elbo_fn, iwae_fn, None, train_x, valid_x,
              test_x, torch.Generator().manual_seed(config.seed), noise_gen, MonteCarlo(noise_gen),
              time_limit)
    _probe(config, model, train_x)
    run.estimator = estimator
    run.faults = fault_plan(os.environ.get(FAULT_ENV))
    if resume is None:
        init_from_data(model, train_x)  # binary latents: centred input, decoder bias at the mean
    run.best_state = {k: v.clone() for k, v in model.state_dict().items()}
    repaired = _restore(run, Path(resume)) if resume is not None else False
    if resume is None:
        run.progress.initial = evaluate_elbo(model, test_x, config.eval_samples,
                                             seed=run.eval_seed)
    run.last_good = Snapshot.take(run.progress.epoch, model, optimizer)
    run.fused = state.fused = select_fused(config, model)
    _warn_bf16(config, device)
    if config.compile:
        model.encoder.compile()
        model.decoder.compile()
    if save:
        run.run_dir, run.config = _open_run_dir(config, resume)
        if repaired:
            runs.write_history(run.run_dir / "history.csv", run.progress.history)
    run.writer = _tensorboard(run.run_dir, config.tensorboard)
    return run


def _restore(run: Run, run_dir: Path) -> bool:
    """The model, optimizer, random streams, progress and best weights from ``run_dir``'s
    checkpoint, the history checked against it; returns whether history.csv needs rewriting."""
    saved, extra = runs.load_checkpoint(run_dir, run.model, run.state.optimizer, run.device,
                                        spec=model_spec(run.config))
    run.progress = Progress.from_state({**saved, "stop_reason": "epochs", "diagnosis": None})
    run.progress.history, repaired = check_history(run_dir / "history.csv", saved)
    learned = {k[len(EST):]: v for k, v in extra.items() if k.startswith(EST)}
    if learned:
        _materialize(run)
        load_estimator_tensors(run.estimator, learned)
    run.shuffle_gen.set_state(extra["shuffle_gen"])
    run.noise_gen.set_state(extra["noise_gen"].to(run.noise_gen.get_state().device))
    best = {k[5:]: v.to(run.device) for k, v in extra.items() if k.startswith("best.")}
    if best:
        run.best_state = best
    return repaired


def check_history(path: Path, saved: dict[str, Any]) -> tuple[list[dict[str, float]], bool]:
    """The history of a resumed run, checked against its checkpoint (epoch ``E``).

    The checkpoint carries the history rows: ``history.csv`` rows after epoch ``E`` (written
    by a run killed after its last checkpoint) are dropped, missing or altered rows are
    restored from the checkpoint, each with a warning; ``(rows, whether to rewrite the file)``.
    A checkpoint written without the rows: rows after ``E`` are dropped and a missing row is
    refused (:class:`~reparam.errors.CorruptFileError`)."""
    epoch = saved["epoch"]
    on_disk = runs.read_history(path) if path.is_file() else []
    after = sorted(r["epoch"] for r in on_disk if r["epoch"] > epoch)
    if after:
        warnings.warn(f"{path}: rows of epochs {after} come after the checkpoint (epoch {epoch}) "
                      f"and are dropped", stacklevel=4)
    kept = [r for r in on_disk if r["epoch"] <= epoch]
    if "history" not in saved:
        missing = sorted(set(range(1, epoch + 1)) - {r["epoch"] for r in kept})
        if missing:
            raise CorruptFileError(f"{path} lacks the rows of epochs {missing} (the checkpoint "
                                   f"is at epoch {epoch})", hint="restore history.csv, or start "
                                   "the run again")
        return kept, bool(after)
    rows = saved["history"]
    if kept != rows:
        missing = sorted({r["epoch"] for r in rows} - {r["epoch"] for r in kept})
        what = f"rows of epochs {missing} are missing" if missing else "rows differ"
        warnings.warn(f"{path}: {what}; restored from the checkpoint (epoch {epoch})",
                      stacklevel=4)
    return rows, kept != rows or bool(after)


def _materialize(run: Run) -> None:
    """One throwaway call (own noise) builds the estimator's lazily made parts (networks,
    optimizers) so that the checkpoint's values can be loaded into them."""
    noise = MonteCarlo(torch.Generator(run.device).manual_seed(0))
    fn = run.iwae_objective or run.elbo_objective  # the one that holds the run's estimator
    fn(run.model, run.train_x[:2].to(run.device), 1.0, noise)
    run.model.zero_grad(set_to_none=True)


def _open_run_dir(config: TrainConfig, resume: str | Path | None) -> tuple[Path, TrainConfig]:
    """Create the run directory (unless resuming) and write ``config.json``; a directory this
    call created is removed again when the write fails."""
    target = Path(resume) if resume is not None else None
    created = target is None and not (config.out and Path(config.out).exists())
    run_dir = target or runs.prepare_run_dir(config.out)
    config = config.replace(out=str(run_dir))
    try:
        runs.write_json(run_dir / "config.json", config.to_dict())
    except BaseException:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir, config


def end_epoch(run: Run, epoch: int, train_elbo: float) -> dict[str, float]:
    """Evaluate, append the history row, log it, and update early stopping; returns the row."""
    config, progress, seed = run.config, run.progress, run.eval_seed
    test = evaluate_elbo(run.model, run.test_x, config.eval_samples, seed=seed)
    row = {"epoch": epoch, "train_elbo": train_elbo, "test_elbo": test["elbo"],
           "test_recon": test["recon"], "test_kl": test["kl"], "lr": run.state.lr,
           "beta": run.state.beta, "seconds": progress.elapsed}
    if run.valid_x is not None:
        row["valid_elbo"] = evaluate_elbo(run.model, run.valid_x, config.eval_samples,
                                          seed=seed)["elbo"]
        if row["valid_elbo"] > progress.best:
            progress.best, progress.stale = row["valid_elbo"], 0
            run.best_state = {k: v.clone() for k, v in run.model.state_dict().items()}
        else:
            progress.stale += 1
            if config.patience is not None and progress.stale >= config.patience:
                progress.stop_reason = "early_stopping"
    progress.history.append(row)
    progress.epoch = epoch
    if run.writer is not None:
        for key, value in row.items():
            if key != "epoch":
                run.writer.add_scalar(key, value, epoch)
    return row


def checkpoint(run: Run) -> None:
    """Write the checkpoint (model, optimizer, random streams, progress with the history, the
    best weights of early stopping) and the history; keep it in memory too (rollback)."""
    p = run.progress
    run.last_good = Snapshot.take(p.epoch, run.model, run.state.optimizer)
    if run.run_dir is None:
        return
    shuffle = run.perm_state if p.epoch_step and run.perm_state is not None else run.shuffle_gen.get_state()
    extra = {"shuffle_gen": shuffle, "noise_gen": run.noise_gen.get_state().cpu(),
             **{EST + k: v for k, v in estimator_tensors(run.estimator).items()}}
    if run.valid_x is not None and run.config.patience is not None:
        extra.update({f"best.{k}": v for k, v in run.best_state.items()})
    runs.save_checkpoint(run.run_dir, run.model, run.state.optimizer, p.to_state(), extra=extra,
                         spec=model_spec(run.config))
    runs.write_history(run.run_dir / "history.csv", p.history)


def _keep_last_good(run: Run) -> None:
    """After a stop on non-finite steps: the model, optimizer and history of the last
    checkpoint (the one on disk stays as it is)."""
    p, good = run.progress, run.last_good
    if good is not None:
        good.restore(run.model, run.state.optimizer)
        p.epoch, p.epoch_step = good.epoch, 0
        p.history = [row for row in p.history if row["epoch"] <= good.epoch]


def final_elbos(run: Run) -> tuple[dict[str, float], dict[str, float]]:
    """The final model's (train, test) ELBO parts, after restoring the best validation
    model (early stopping); sharded over torchrun ranks, so call it on every rank."""
    if run.valid_x is not None and run.config.patience is not None:
        run.model.load_state_dict(run.best_state)  # early stopping keeps the best validation model
    samples, seed = run.config.eval_samples, run.eval_seed
    return (evaluate_elbo(run.model, run.train_x, samples, seed=seed),
            evaluate_elbo(run.model, run.test_x, samples, seed=seed))


def finish(run: Run, final: tuple[dict[str, float], dict[str, float]] | None = None
           ) -> TrainResult:
    """Restore the best validation model (early stopping), compute the final metrics, write
    the weights, ``metrics.json`` and the figures. ``final``: :func:`final_elbos` when the
    caller computed them (every torchrun rank takes part; only rank 0 finishes)."""
    config, model, p = run.config, run.model, run.progress
    if run.writer is not None:
        run.writer.close()
    train_final, test_final = final_elbos(run) if final is None else final
    metrics = {
        "train_elbo": train_final["elbo"], "test_elbo": test_final["elbo"],
        "test_recon": test_final["recon"], "test_kl": test_final["kl"],
        "train_recon": train_final["recon"], "train_kl": train_final["kl"],
        "initial_test_elbo": p.initial["elbo"], "epochs": p.history[-1]["epoch"] if p.history else 0,
        "stop_reason": p.stop_reason, "wall_time_s": p.elapsed, "device": str(run.device),
        "dataset": run.data.name, "train_examples": run.train_x.shape[0],
        "num_parameters": sum(q.numel() for q in model.parameters()),
        "fused_step": run.fused is not None,
        "iwae_from_epoch": p.iwae_epoch or None,
        "non_finite_steps": p.nan_steps, "rollbacks": p.rollbacks, "diagnosis": p.diagnosis,
        "units": "nats per example",
    }
    if run.run_dir is not None:
        runs.save_weights(run.run_dir / "model.safetensors", model.state_dict(),
                          spec=model_spec(config))
        runs.write_json(run.run_dir / "metrics.json", metrics)
        write_figures(run.run_dir, model, run.data, p.history, config.seed)
    return TrainResult(model, config, metrics, p.history, run.run_dir)


class Interrupted(Exception):  # noqa: N818 (what the user did, not a failure)
    """SIGINT / SIGTERM stopped the run after a step; the checkpoint is written.
    ``exit_code``: the shell's convention, 128 + the signal number (130, 143)."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum, self.exit_code = signum, 128 + signum


@contextlib.contextmanager
def catch_signals(run: Run) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM set ``run.signal`` (the loop stops after the
    current step) instead of stopping the process; the previous handlers come back after.
    Only in the main thread (Python's handlers live there); elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        run.signal = signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)


def _interrupted(run: Run) -> Interrupted:
    p, name = run.progress, signal.Signals(run.signal).name
    where = (f"step {p.epoch_step} of {run.steps_per_epoch} in epoch {p.epoch + 1}" if p.epoch_step
             else f"epoch {p.epoch}")
    saved = (f"checkpoint written to {run.run_dir}; resume with: reparam train --resume "
             f"{run.run_dir}" if run.run_dir is not None else "nothing saved (save=False)")
    return Interrupted(run.signal, f"stopped by {name} after {where}; {saved}")


def finished_reason(run: Run) -> str | None:
    """Why a resumed run is already done (its time limit spent, early stopping reached)."""
    p, config = run.progress, run.config
    if p.epoch_step == 0 and p.elapsed >= run.time_limit:
        return "time_limit"
    if config.patience is not None and run.valid_x is not None and p.stale >= config.patience:
        return "early_stopping"
    return None


def run_epochs(run: Run, show_progress: bool = True) -> None:
    """The epochs of ``run`` from where it stands: train, end the epoch, checkpoint; stops on
    early stopping, the time limit, a signal (after a checkpoint) or non-finite steps (with
    the last checkpoint's weights). A resumed run that is already done trains nothing."""
    config, p = run.config, run.progress
    bar = tqdm(total=max(0, (config.epochs - p.epoch) * run.steps_per_epoch - p.epoch_step),
               disable=not show_progress, desc="train", unit="step", dynamic_ncols=True)
    run.model.train()
    for epoch in range(p.epoch + 1, config.epochs + 1):
        train_elbo = train_epoch(run, epoch, bar)
        if p.stop_reason == "non_finite":
            _keep_last_good(run)
            break
        if p.epoch_step == 0:  # the epoch is complete
            end_epoch(run, epoch, train_elbo)
        if run.signal is not None and p.stop_reason == "epochs":
            p.stop_reason = "signal"
        stopping = p.stop_reason != "epochs"
        if epoch % config.checkpoint_every == 0 or epoch == config.epochs or stopping:
            checkpoint(run)
        if stopping:
            break
    bar.close()


def train(
    config: TrainConfig | None = None,
    *,
    dataset: Dataset | str | None = None,
    resume: str | Path | None = None,
    save: bool = True,
    progress: bool = True,
    overwrite: bool = False,
    **overrides: Any,
) -> TrainResult:
    """Train a VAE by minimising the negative ELBO; write the run directory when ``save``.

    ``train()`` trains on the digits with the defaults of :class:`TrainConfig`;
    ``train(epochs=5)`` overrides single settings (``estimator`` may be an
    :class:`~reparam.estimators.Estimator` object); ``dataset`` is a loaded :class:`Dataset`
    or a dataset name; ``resume=RUN_DIR`` continues a run from its last checkpoint
    (``overrides`` may change the loop's settings, e.g. raise ``epochs``; see
    :func:`resolve_config`). The run directory is locked while it trains
    (:func:`reparam.runs.open_run_dir`; ``overwrite`` replaces a run already there). SIGINT /
    SIGTERM (main thread) stop after the current step with a checkpoint and raise
    :class:`Interrupted`.
    """
    if isinstance(dataset, str):
        overrides["dataset"], dataset = dataset, None
    estimator = overrides.get("estimator")
    if isinstance(estimator, Estimator):  # config.json records the name of its class
        overrides["estimator"] = estimator_name(estimator)
    else:
        estimator = None
    config = resolve_config(config, resume, overrides)
    with contextlib.ExitStack() as stack:
        if save:
            held = stack.enter_context(runs.open_run_dir(config.out, resume=resume is not None,
                                                         overwrite=overwrite))
            config = config.replace(out=str(held.path))
        run = setup(config, dataset=dataset, resume=resume, save=save, estimator=estimator)
        done = finished_reason(run) if resume is not None else None
        if done is None:
            with catch_signals(run):
                run_epochs(run, progress)
        if run.progress.stop_reason == "signal":
            raise _interrupted(run)
        run.progress.stop_reason = done or run.progress.stop_reason
        result = finish(run)
        result.already_finished = done
        return result


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
    weights, spec = run_dir / runs.WEIGHTS, model_spec(config)
    if weights.is_file():
        runs.load_state_dict(model, runs.load_weights(weights, spec=spec), weights)
    else:  # an unfinished run: take the model from its checkpoint
        weights = run_dir / runs.CHECKPOINT
        tensors = runs.load_weights(weights, spec=spec)
        runs.load_state_dict(model, {k[6:]: v for k, v in tensors.items()
                                     if k.startswith("model.")}, weights)
    return config, model.to(dev).eval(), data

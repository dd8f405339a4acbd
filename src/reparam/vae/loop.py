"""The pieces of a training loop a launcher shares: the run's state, one step, one epoch.

:func:`step` is the one optimisation step of every launcher (the single-process loop of
:func:`reparam.vae.train` and a data-parallel one): the batch and its noise source come in,
so a launcher can pass per-example noise sliced from a global batch, and
``StepState.sync_gradients`` (e.g. an all-reduce) runs between the backward pass and the
optimizer.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import TrainConfig
from ..data import Dataset
from ..noise import NoiseSource
from .fused import FusedELBOStep
from .model import VAE
from .objectives import Loss

#: ``objective(model, x, beta, noise) -> Loss`` (autograd)
ObjectiveFn = Callable[[VAE, torch.Tensor, float, NoiseSource], Loss]


@dataclass
class StepState:
    """What one step needs besides the model, the batch and the noise: the objective (or
    the fused step that replaces it), the optimizer, this step's ``lr`` and ``beta``."""

    optimizer: torch.optim.Optimizer
    optimizer_step: Callable[[], Any]
    objective: ObjectiveFn
    fused: FusedELBOStep | None = None
    autocast: Any = field(default_factory=contextlib.nullcontext)
    lr: float = 1e-3
    beta: float = 1.0
    sync_gradients: Callable[[], None] | None = None
    check_finite: bool = True
    finite: bool = True  # set by :func:`step`: False when it skipped a non-finite step


def all_finite(loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> bool:
    """``loss`` and every gradient finite: one fused check, ``isfinite(loss + ||grad||)``
    (the total norm, one foreach kernel; an overflowing norm counts as non-finite)."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"]
             if p.grad is not None]
    if not grads:
        return bool(torch.isfinite(loss.detach()))
    norm = torch.nn.utils.get_total_norm(grads, foreach=True)
    return bool(torch.isfinite(loss.detach() + norm.to(loss.device)))


def step(model: VAE, batch: torch.Tensor, noise: NoiseSource, state: StepState) -> Loss:
    """One optimisation step on ``batch``: loss, gradients (the fused step's closed form, or
    autograd through ``state.objective``), ``state.sync_gradients``, the finiteness check
    (``state.check_finite``: a non-finite loss or gradient skips the optimizer step and sets
    ``state.finite = False``), the optimizer step."""
    for group in state.optimizer.param_groups:
        group["lr"] = state.lr
    if state.fused is not None:  # same loss and gradients, closed-form backward
        out = state.fused(batch, state.beta, noise)
    else:
        with state.autocast:
            out = state.objective(model, batch, state.beta, noise)
        state.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
    if state.sync_gradients is not None:
        state.sync_gradients()  # after it every process sees the same gradients and decides alike
    if state.check_finite:
        state.finite = all_finite(out.loss, state.optimizer)
        if not state.finite:
            return out
    state.optimizer_step()
    return out


@dataclass
class Progress:
    """Where the run stands; the checkpoint carries all of it (JSON), so a resumed run goes on
    exactly: epochs done, seconds trained, best validation ELBO and epochs without improvement
    (early stopping), first IWAE epoch, history rows, optimizer steps tried, the position in a
    partly done epoch (a checkpoint written on a signal), non-finite step counters."""

    epoch: int = 0
    elapsed: float = 0.0
    best: float = -math.inf
    stale: int = 0
    iwae_epoch: int = 0
    initial: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    stop_reason: str = "epochs"
    step: int = 0          # optimizer steps tried (skipped ones included)
    epoch_step: int = 0    # steps done in the partly done epoch ``epoch + 1``
    epoch_sum: float = 0.0  # its running sum of training ELBO x batch size, and examples
    epoch_seen: int = 0
    nan_steps: int = 0     # non-finite steps skipped, in all
    nan_run: int = 0       # ... in a row, up to now
    rollbacks: int = 0
    diagnosis: str | None = None

    def to_state(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Progress:
        """From a checkpoint's state (older checkpoints lack some keys: their defaults)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in state.items() if k in names})


@dataclass
class Snapshot:
    """The model and optimizer of the last checkpoint, in memory (rollback, a stop on a
    non-finite step), with that checkpoint's epoch."""

    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]

    @classmethod
    def take(cls, epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> Snapshot:
        return cls(epoch, {k: v.detach().clone() for k, v in model.state_dict().items()},
                   copy.deepcopy(optimizer.state_dict()))

    def restore(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        model.load_state_dict(self.model)
        optimizer.load_state_dict(copy.deepcopy(self.optimizer))


@dataclass
class Run:
    """Everything :func:`reparam.vae.training.setup` builds for a run."""

    config: TrainConfig
    device: torch.device
    data: Dataset
    model: VAE
    state: StepState
    elbo_objective: ObjectiveFn
    iwae_objective: ObjectiveFn | None
    fused: FusedELBOStep | None
    train_x: torch.Tensor
    valid_x: torch.Tensor | None
    test_x: torch.Tensor
    shuffle_gen: torch.Generator
    noise_gen: torch.Generator
    noise: NoiseSource
    time_limit: float
    run_dir: Path | None = None
    writer: Any = None
    progress: Progress = field(default_factory=Progress)
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    estimator: Any = None  # the run's estimator instance (its learned state is checkpointed)
    last_good: Snapshot | None = None
    faults: dict[int, str] = field(default_factory=dict)  # test hook, see :func:`fault_plan`
    signal: int | None = None  # set by a SIGINT / SIGTERM handler: stop after this step
    perm_state: torch.Tensor | None = None  # shuffle_gen before this epoch's permutation

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.train_x.shape[0] / self.config.batch_size)

    @property
    def eval_seed(self) -> int:
        """The seed of the evaluation noise: the same noise every time (common random numbers
        across epochs), keyed per block of examples (:func:`~reparam.vae.evaluate_elbo`)."""
        return self.config.seed + 2


def schedules(config: TrainConfig, fraction: float) -> tuple[float, float]:
    """(learning rate, KL weight beta) at ``fraction`` in [0, 1] of the run."""
    lr = config.lr
    if config.lr_schedule == "cosine":
        lr = config.lr * 0.5 * (1.0 + math.cos(math.pi * min(fraction, 1.0)))
    beta = config.beta
    if config.warmup > 0:
        beta = config.beta * min(1.0, fraction / config.warmup)
    return lr, beta


FAULT_ENV = "REPARAM_FAULT"
FAULTS = ("nan", "SIGINT", "SIGTERM", "SIGKILL")


def fault_plan(text: str | None) -> dict[int, str]:
    """Test hook: ``REPARAM_FAULT="nan@12,SIGTERM@30"`` poisons the batch of optimizer step 12
    with NaN and sends this process SIGTERM during step 30 (steps count from 1 over the run)."""
    plan: dict[int, str] = {}
    for item in filter(None, (text or "").split(",")):
        what, _, at = item.partition("@")
        if what not in FAULTS or not at.isdigit():
            raise ValueError(f"{FAULT_ENV}: expected e.g. nan@12 or SIGTERM@30 ({', '.join(FAULTS)}), "
                             f"got {item!r}")
        plan[int(at)] = what
    return plan


def _inject(run: Run, xb: torch.Tensor) -> torch.Tensor:
    what = run.faults.get(run.progress.step + 1)
    if what == "nan":
        return torch.full_like(xb, math.nan)
    if what is not None:
        os.kill(os.getpid(), getattr(signal, what))
    return xb


def _diagnoses(run: Run, xb: torch.Tensor) -> list[str]:
    """Likely causes of a non-finite step, each checked on the model and the batch."""
    config, found = run.config, []
    if not bool(torch.isfinite(xb).all()):
        return ["the batch holds NaN / inf inputs (check the data)"]
    weights = max(float(p.detach().abs().max()) for p in run.model.parameters())
    if config.lr > 0.05 or not weights < 1e6:
        found.append(f"learning rate too high (lr {config.lr:g}, largest |weight| {weights:.3g}): "
                     f"try --lr 1e-3 or lower")
    with torch.no_grad():
        q = run.model.encode(xb)
    scale = getattr(q, "scale", getattr(getattr(q, "base_dist", None), "scale", None))
    sane = (not isinstance(scale, torch.Tensor)
            or (bool(torch.isfinite(scale).all()) and float(scale.min()) > 1e-15
                and float(scale.max()) < 1e15))
    if not sane:
        found.append("logvar overflow: the posterior's exp(logvar / 2) over- or underflows "
                     "(lower --lr)")
    if config.beta > 1e6:
        found.append(f"beta {config.beta:g} too large (the KL term overflows)")
    return found or ["loss or gradient overflow without a single cause found (lower --lr, "
                     "check the data and the objective)"]


def on_non_finite(run: Run, xb: torch.Tensor) -> bool:
    """Count a skipped non-finite step and apply ``config.on_nan``: ``skip`` goes on,
    ``rollback`` restores the model and optimizer of the last checkpoint and goes on, ``stop``
    stops; any policy stops after ``config.nan_patience`` non-finite steps in a row. Returns
    whether to go on (else ``progress.stop_reason = "non_finite"`` and the diagnosis)."""
    config, progress = run.config, run.progress
    progress.nan_steps += 1
    progress.nan_run += 1
    if config.on_nan == "rollback" and run.last_good is not None:
        run.last_good.restore(run.model, run.state.optimizer)
        progress.rollbacks += 1
    if config.on_nan == "stop" or progress.nan_run >= config.nan_patience:
        progress.stop_reason = "non_finite"
        progress.diagnosis = "; ".join(_diagnoses(run, xb))
        return False
    return True


def train_epoch(run: Run, epoch: int, bar: Any) -> float:
    """One pass over the shuffled training rows (or until the time limit, a signal, a stop on
    non-finite steps); returns the mean training ELBO of the finite steps. Sets ``run.state``
    per step: schedules, and the switch to the IWAE bound. Starts at ``progress.epoch_step``
    (a run resumed from a checkpoint written in the middle of this epoch)."""
    config, state, progress = run.config, run.state, run.progress
    t0 = time.perf_counter()
    steps, bs = run.steps_per_epoch, config.batch_size
    total_steps = config.epochs * steps
    run.perm_state = run.shuffle_gen.get_state()
    perm = torch.randperm(run.train_x.shape[0], generator=run.shuffle_gen).to(run.device)
    running = torch.tensor(progress.epoch_sum, device=run.device)
    seen = progress.epoch_seen
    for i in range(progress.epoch_step, steps):
        fraction = max(((epoch - 1) * steps + i) / total_steps,
                       (progress.elapsed + time.perf_counter() - t0) / run.time_limit)
        state.lr, state.beta = schedules(config, fraction)
        on_iwae = run.iwae_objective is not None and fraction >= config.iwae_from
        if on_iwae:
            progress.iwae_epoch = progress.iwae_epoch or epoch
        state.objective = run.iwae_objective if on_iwae else run.elbo_objective
        state.fused = None if on_iwae else run.fused
        xb = run.train_x[perm[i * bs:(i + 1) * bs]].to(run.device)  # mapped rows: read here
        if run.data.binarization == "dynamic":
            xb = torch.bernoulli(xb, generator=run.noise_gen)
        if run.faults:
            xb = _inject(run, xb)
        out = step(run.model, xb, run.noise, state)
        progress.step, progress.epoch_step = progress.step + 1, i + 1
        if state.finite:
            progress.nan_run = 0
            running += out.elbo * xb.shape[0]
            seen += xb.shape[0]
        elif not on_non_finite(run, xb):
            break
        bar.update(1)
        if i == steps - 1 or i % 50 == 0:
            bar.set_postfix(epoch=epoch, loss=f"{float(out.loss.detach()):.3f}")
        if progress.elapsed + time.perf_counter() - t0 >= run.time_limit:
            progress.stop_reason = "time_limit"
            break
        if run.signal is not None:
            progress.stop_reason = "signal"
            break
    progress.elapsed += time.perf_counter() - t0
    partial = progress.stop_reason in ("signal", "non_finite") and progress.epoch_step < steps
    progress.epoch_sum, progress.epoch_seen = (float(running), seen) if partial else (0.0, 0)
    progress.epoch_step = progress.epoch_step if partial else 0
    return float(running) / seen if seen else math.nan

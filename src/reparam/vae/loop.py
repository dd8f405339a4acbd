"""The pieces of a training loop a launcher shares: the run's state, one step, one epoch.

:func:`step` is the one optimisation step of every launcher (the single-process loop of
:func:`reparam.vae.train` and a data-parallel one): the batch and its noise source come in,
so a launcher can pass per-example noise sliced from a global batch, and
``StepState.sync_gradients`` (e.g. an all-reduce) runs between the backward pass and the
optimizer.
"""

from __future__ import annotations

import contextlib
import math
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


def step(model: VAE, batch: torch.Tensor, noise: NoiseSource, state: StepState) -> Loss:
    """One optimisation step on ``batch``: loss, gradients (the fused step's closed form, or
    autograd through ``state.objective``), ``state.sync_gradients``, the optimizer step."""
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
        state.sync_gradients()
    state.optimizer_step()
    return out


@dataclass
class Progress:
    """Where the run stands (the checkpoint carries it): epochs done, seconds trained, best
    validation ELBO, epochs without improvement, first IWAE epoch, history rows."""

    epoch: int = 0
    elapsed: float = 0.0
    best: float = -math.inf
    stale: int = 0
    iwae_epoch: int = 0
    initial: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    stop_reason: str = "epochs"


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

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.train_x.shape[0] / self.config.batch_size)

    def eval_generator(self) -> torch.Generator:
        """The same evaluation noise every time."""
        return torch.Generator(self.device).manual_seed(self.config.seed + 2)


def schedules(config: TrainConfig, fraction: float) -> tuple[float, float]:
    """(learning rate, KL weight beta) at ``fraction`` in [0, 1] of the run."""
    lr = config.lr
    if config.lr_schedule == "cosine":
        lr = config.lr * 0.5 * (1.0 + math.cos(math.pi * min(fraction, 1.0)))
    beta = config.beta
    if config.warmup > 0:
        beta = config.beta * min(1.0, fraction / config.warmup)
    return lr, beta


def train_epoch(run: Run, epoch: int, bar) -> float:
    """One pass over the shuffled training rows (or until the time limit); returns the mean
    training ELBO. Sets ``run.state`` per step: schedules, and the switch to the IWAE bound."""
    config, state, progress = run.config, run.state, run.progress
    t0 = time.perf_counter()
    steps, bs = run.steps_per_epoch, config.batch_size
    total_steps = config.epochs * steps
    perm = torch.randperm(run.train_x.shape[0], generator=run.shuffle_gen).to(run.device)
    running, seen = torch.zeros((), device=run.device), 0
    for i in range(steps):
        fraction = max(((epoch - 1) * steps + i) / total_steps,
                       (progress.elapsed + time.perf_counter() - t0) / run.time_limit)
        state.lr, state.beta = schedules(config, fraction)
        on_iwae = run.iwae_objective is not None and fraction >= config.iwae_from
        if on_iwae:
            progress.iwae_epoch = progress.iwae_epoch or epoch
        state.objective = run.iwae_objective if on_iwae else run.elbo_objective
        state.fused = None if on_iwae else run.fused
        xb = run.train_x[perm[i * bs:(i + 1) * bs]]
        if run.data.binarization == "dynamic":
            xb = torch.bernoulli(xb, generator=run.noise_gen)
        out = step(run.model, xb, run.noise, state)
        running += out.elbo * xb.shape[0]
        seen += xb.shape[0]
        bar.update(1)
        if i == steps - 1 or i % 50 == 0:
            bar.set_postfix(epoch=epoch, loss=f"{float(out.loss.detach()):.3f}")
        if progress.elapsed + time.perf_counter() - t0 >= run.time_limit:
            progress.stop_reason = "time_limit"
            break
    progress.elapsed += time.perf_counter() - t0
    return float(running) / seen

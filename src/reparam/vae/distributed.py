"""Data-parallel training under ``torchrun`` (gloo on CPU, nccl with one process per GPU).

``torchrun --nproc-per-node N -m reparam train ...`` reaches :func:`train`, which reuses the
single-process parts (:func:`~reparam.vae.training.setup`, :func:`~reparam.vae.loop.step`,
:func:`~reparam.vae.training.end_epoch`, :func:`~reparam.vae.training.checkpoint`,
:func:`~reparam.vae.training.finish`) and changes only who sees which rows and noise:

- **Global batch.** ``--batch-size B`` is the global batch; :class:`~reparam.parallel.
  GlobalBatchSampler` cuts each of its batches (a fresh permutation every epoch, keyed by
  ``(seed, epoch)``) into contiguous per-rank slices.
- **Per-example noise.** Step ``t``'s latent noise and dynamic binarization are drawn for
  the whole global batch from generators keyed by ``(seed, t)`` (:class:`~reparam.parallel.
  ShardedNoise`) and sliced, so every example's noise is the same for any number of ranks.
- **Gradients.** Rank ``r`` holds ``g_r``, the gradient of its slice's mean loss; one
  all-reduce of ``f_r g_r`` (``f_r`` = its share of the global batch) gives
  ``sum_r f_r g_r``, the gradient of the global-batch mean loss. That is DDP's averaging
  (``sum_r g_r / W``, equal slices) with the weight that keeps it exact for a short last
  batch. It is an explicit all-reduce (one flat buffer, as DDP's buckets) because the fused
  step writes gradients by hand and the objectives call the encoder and decoder rather than
  ``model.forward``, so DDP's autograd hooks would see neither.
- **Same model.** Every rank builds the model from the same seed; rank 0's parameters and
  buffers are then broadcast, so the replicas start bit-identical.
- **I/O.** Rank 0 alone holds the run directory lock and writes (config, checkpoints,
  history, ``steps.csv``, TensorBoard, figures); logged losses are the global means.
- **Faults.** Under ``torchrun --max-restarts R`` a restarted group (``TORCHELASTIC_RESTART_
  COUNT > 0``) resumes ``--out`` from its last checkpoint. SIGTERM (torchrun forwards it to
  every worker) is voted on in the gradient all-reduce: all ranks finish the step, rank 0
  checkpoints mid-epoch, and the workers exit with 143.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .. import parallel, runs
from ..config import TrainConfig
from .estimator_state import estimator_tensors
from .loop import Run, schedules, step
from .training import (
    EST,
    TrainResult,
    checkpoint,
    end_epoch,
    final_elbos,
    finish,
    model_spec,
    resolve_config,
    setup,
)

__all__ = ["train", "GradientSync", "EXIT_SIGNAL", "STREAM_LATENT", "STREAM_BINARIZE"]

EXIT_SIGNAL = 143  # 128 + SIGTERM
STREAM_LATENT, STREAM_BINARIZE = 0, 1
STEPS_FILE = "steps.csv"
RESTART = "TORCHELASTIC_RESTART_COUNT"


class GradientSync:
    """``StepState.sync_gradients``: all-reduce of ``weight * grad`` for every parameter in
    one flat buffer, plus control values summed over the ranks alongside (votes to stop,
    elapsed seconds), so no step needs a second collective."""

    def __init__(self, params: list[torch.nn.Parameter], controls: int = 3) -> None:
        self.params, self.weight = [p for p in params if p.requires_grad], 1.0
        self.controls = torch.zeros(controls, dtype=torch.float64)
        self.totals = self.controls.clone()

    def __call__(self) -> None:
        have = [p for p in self.params if p.grad is not None]  # the same on every rank
        flat = torch.cat([p.grad.reshape(-1) for p in have]) * self.weight if have else None
        dev = parallel.reduce_device()
        ctrl = self.controls.to(dev)
        if flat is not None:  # the controls ride in the gradients' dtype (votes stay exact)
            buf = torch.cat([flat.to(dev), ctrl.to(flat.dtype)])
            dist.all_reduce(buf)
            offset = 0
            for p in have:
                p.grad.copy_(buf[offset:offset + p.numel()].view_as(p.grad))
                offset += p.numel()
            self.totals = buf[offset:].double().cpu()
        else:
            dist.all_reduce(ctrl)
            self.totals = ctrl.cpu()


class _Stop:
    """SIGTERM sets ``requested``; the next gradient all-reduce carries the vote."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum, frame) -> None:
        self.requested = True


def _broadcast_text(text: str) -> str:
    """Rank 0's ``text`` on every rank (utf-8 bytes in a tensor; nothing is pickled)."""
    dev = parallel.reduce_device()
    data = torch.tensor(list(text.encode()), dtype=torch.uint8)
    size = torch.tensor([data.numel()], dtype=torch.int64, device=dev)
    dist.broadcast(size, 0)
    buf = torch.zeros(int(size), dtype=torch.uint8, device=dev)
    if parallel.is_main():
        buf.copy_(data.to(dev))
    dist.broadcast(buf, 0)
    return bytes(buf.cpu().tolist()).decode()


def _broadcast_model(model: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (identical replicas)."""
    dev = parallel.reduce_device()
    for t in [*model.parameters(), *model.buffers()]:
        tmp = t.detach().to(dev, copy=True)
        dist.broadcast(tmp, 0)
        t.data.copy_(tmp)


def _restart_resume(config: TrainConfig | None, resume: str | None) -> tuple[str | None, bool]:
    """``(resume, overwrite)`` for a group that torchrun restarted: continue ``out`` from its
    checkpoint, or start over a first attempt that died before checkpointing."""
    import os

    if resume is not None or config is None or not config.out or os.environ.get(RESTART, "0") == "0":
        return resume, False
    if (Path(config.out) / runs.CHECKPOINT).is_file():
        return config.out, False
    return None, True


def _saved_batch(run_dir: Path) -> int:
    """Global batches of the unfinished epoch a mid-epoch checkpoint already trained on."""
    _, meta = runs.read_safetensors(run_dir / runs.CHECKPOINT)
    return int(json.loads(meta["state"]).get("batch", 0))


def _mid_epoch_checkpoint(run: Run, batch: int) -> None:
    """:func:`~reparam.vae.training.checkpoint` plus the batches done in the current epoch."""
    p = run.progress
    runs.save_checkpoint(
        run.run_dir, run.model, run.state.optimizer,
        {**p.to_state(), "stop_reason": "epochs", "batch": batch},
        extra={"shuffle_gen": run.shuffle_gen.get_state(),
               "noise_gen": run.noise_gen.get_state().cpu(),
               **{EST + k: v for k, v in estimator_tensors(run.estimator).items()}},
        spec=model_spec(run.config))
    runs.write_history(run.run_dir / "history.csv", p.history)


def _write_steps(run_dir: Path, rows: list[tuple[int, float, float]]) -> None:
    """Append ``step,train_elbo,loss`` rows (global means) to ``RUN/steps.csv``."""
    path = run_dir / STEPS_FILE
    head = "" if path.exists() else "step,train_elbo,loss\n"
    with path.open("a") as f:
        f.write(head + "".join(f"{s},{e!r},{lo!r}\n" for s, e, lo in rows))
    rows.clear()


def _empty_step(run: Run, sync: GradientSync) -> None:
    """A rank whose slice of a short last batch is empty: zero gradients, the same collective
    and optimizer step as the others."""
    for p in sync.params:
        p.grad = torch.zeros_like(p)
    sync()
    run.state.optimizer_step()


def _epoch(run: Run, sampler: parallel.GlobalBatchSampler, epoch: int, start: int,
           sync: GradientSync, stop: _Stop, bar, steps_log: list) -> tuple[float, int]:
    """This rank's share of one epoch from global batch ``start``; returns the global mean
    training ELBO and the number of batches done (fewer when the group voted to stop)."""
    config, state, progress, dev = run.config, run.state, run.progress, run.device
    steps, t0 = len(sampler), time.perf_counter()
    total, elapsed = config.epochs * steps, progress.elapsed
    sums, done = [], start
    for i, (idx, part) in enumerate(sampler.batches(epoch, start), start):
        t = (epoch - 1) * steps + i
        fraction = max(t / total, elapsed / run.time_limit)
        state.lr, state.beta = schedules(config, fraction)
        on_iwae = run.iwae_objective is not None and fraction >= config.iwae_from
        progress.iwae_epoch = progress.iwae_epoch or (epoch if on_iwae else 0)
        state.objective = run.iwae_objective if on_iwae else run.elbo_objective
        state.fused = None if on_iwae else run.fused
        local = progress.elapsed + time.perf_counter() - t0
        sync.controls[:] = torch.tensor([local >= run.time_limit, stop.requested, local])
        sync.weight = part.fraction
        if part.size == 0:
            _empty_step(run, sync)
            sums.append(torch.zeros(2, dtype=torch.float64))
        else:
            xb = run.train_x[idx.to(dev)].to(dev)  # mapped data: this rank's rows only
            if run.data.binarization == "dynamic":
                u = parallel.ShardedNoise(config.seed, t, part, stream=STREAM_BINARIZE)
                xb = (u.uniform(xb.shape, xb.dtype, dev) < xb).to(xb.dtype)
            out = step(run.model, xb, parallel.ShardedNoise(config.seed, t, part,
                                                            stream=STREAM_LATENT), state)
            sums.append(torch.stack([out.elbo.detach(), out.loss.detach()]).double().cpu()
                        * part.size)
        steps_log.append((t, part.total))
        done, elapsed = i + 1, float(sync.totals[2]) / parallel.world_size()
        bar.update(1)
        if sync.totals[0] > 0 or sync.totals[1] > 0:
            progress.stop_reason = "signal" if sync.totals[1] > 0 else "time_limit"
            break
    progress.elapsed += time.perf_counter() - t0
    return _reduce_steps(sums, steps_log), done


def _reduce_steps(sums: list[torch.Tensor], steps_log: list) -> float:
    """Global per-step means (one all-reduce per epoch) into ``steps_log``; returns the
    epoch's mean training ELBO."""
    n = len(sums)
    if n == 0:
        return math.nan
    total = parallel.all_reduce_sum(torch.stack(sums))
    pending = steps_log[-n:]
    sizes = torch.tensor([size for _, size in pending], dtype=torch.float64)
    means = total / sizes[:, None]
    steps_log[-n:] = [(t, float(e), float(lo)) for (t, _), (e, lo) in zip(pending, means,
                                                                            strict=True)]
    return float(total[:, 0].sum() / sizes.sum())


def _open(stack: contextlib.ExitStack, out: str | None, resume: str | None,
          overwrite: bool) -> str:
    """Rank 0 takes the run directory (and its lock, held until ``stack`` closes); every rank
    learns its path. A refusal on rank 0 (an existing run, a held lock) ends every rank."""
    path, error = "", None
    if parallel.is_main():
        try:
            path = str(stack.enter_context(runs.open_run_dir(out, resume=resume is not None,
                                                             overwrite=overwrite)).path)
        except Exception as err:  # raised below, once the other ranks know
            error = err
    path = _broadcast_text(path)
    if error is not None:
        raise error
    if not path:
        raise RuntimeError("rank 0 could not open the run directory (its error is in its log)")
    return path


def _loop(run: Run, stop: _Stop, progress_bar: bool) -> int:
    """Epochs from the checkpoint on; rank 0 checkpoints. Returns the exit status: 0, or
    :data:`EXIT_SIGNAL` after a SIGTERM (a mid-epoch checkpoint written)."""
    config, p = run.config, run.progress
    sampler = parallel.GlobalBatchSampler(run.train_x.shape[0], config.batch_size, config.seed)
    sync = GradientSync(list(run.model.parameters()))
    run.state.sync_gradients = sync
    saved = Path(config.out) / runs.CHECKPOINT
    start = _saved_batch(saved.parent) if saved.is_file() else 0
    bar = tqdm(total=(config.epochs - p.epoch) * len(sampler) - start, unit="step",
               disable=not (progress_bar and parallel.is_main()), desc="train", dynamic_ncols=True)
    steps_log: list = []
    run.model.train()
    for epoch in range(p.epoch + 1, config.epochs + 1):
        train_elbo, done = _epoch(run, sampler, epoch, start, sync, stop, bar, steps_log)
        start = 0
        if p.stop_reason == "signal":
            if parallel.is_main():
                _mid_epoch_checkpoint(run, done)
                _write_steps(run.run_dir, steps_log)
            parallel.barrier()
            return EXIT_SIGNAL
        end_epoch(run, epoch, train_elbo)
        stopping = p.stop_reason != "epochs"
        if parallel.is_main() and (epoch % config.checkpoint_every == 0 or epoch == config.epochs
                                   or stopping):
            checkpoint(run)
            _write_steps(run.run_dir, steps_log)
        parallel.barrier()
        if stopping:
            break
    bar.close()
    return 0


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None,
          overwrite: bool = False, progress: bool = True,
          **overrides: Any) -> tuple[TrainResult | None, int]:
    """Data-parallel :func:`reparam.vae.train` for a process started by ``torchrun``:
    ``(result on rank 0 / None elsewhere, exit status)``. ``config``/``resume``/``overrides``
    as for :func:`~reparam.vae.training.resolve_config`; ``overwrite`` as ``--overwrite``."""
    resume = None if resume is None else str(resume)
    resume, restarted_fresh = _restart_resume(config, resume)
    if resume is not None and config is not None:  # a restarted group resumes its own run
        config, overrides = None, {}
    config = resolve_config(config, resume, dict(overrides))
    stop, previous = _Stop(), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, stop)
    try:
        with parallel.session(config.device), contextlib.ExitStack() as stack:
            out = _open(stack, resume or config.out, resume, overwrite or restarted_fresh)
            config = config.replace(out=out)
            run = setup(config, resume=resume, save=parallel.is_main())
            run.config = config
            _broadcast_model(run.model)
            status = _loop(run, stop, progress)
            final = final_elbos(run) if status == 0 else None  # sharded: every rank
            result = finish(run, final) if status == 0 and parallel.is_main() else None
            parallel.barrier()
            return result, status
    finally:
        signal.signal(signal.SIGTERM, previous)

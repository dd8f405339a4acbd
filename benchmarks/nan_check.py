"""Cost of the per-step finiteness check (``StepState.check_finite``) on the training step.

The check is ``isfinite(loss + ||grad||)``: one foreach norm over the gradients and one
host sync per step. Timed on the fused step and the autograd step of the default MLP VAE,
with and without the check, interleaved (ABAB...) so load on the machine hits both alike.

    PYTHONPATH=src python benchmarks/nan_check.py [--dim 784] [--batch 100] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from reparam.config import TrainConfig
from reparam.noise import MonteCarlo
from reparam.vae.loop import StepState, all_finite, step
from reparam.vae.optim import AdamStep, adam
from reparam.vae.training import build_model, objectives, select_fused


def make(dim: int, fused: bool):
    config = TrainConfig(fused=fused)
    torch.manual_seed(0)
    model = build_model(config, dim)
    optimizer = adam(model.parameters(), lr=1e-3)
    state = StepState(optimizer, AdamStep(optimizer), objectives(config)[0])
    state.fused = select_fused(config, model) if fused else None
    return model, state


def time_steps(model, state, x, noise, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step(model, x, noise, state)
    return (time.perf_counter() - start) / steps * 1e6


def time_check(out, state, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        all_finite(out.loss, state.optimizer)
    return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dim", type=int, default=784)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    x = (torch.rand(args.batch, args.dim, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    print(f"| step | without check (us) | with check (us) | ratio | torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch}, dim {args.dim} | "
          f"the check alone (us) |")
    print("|---|---:|---:|---:|---:|")
    for fused in (True, False):
        model, state = make(args.dim, fused)
        noise = MonteCarlo(torch.Generator().manual_seed(1))
        times: dict[bool, list[float]] = {True: [], False: []}
        time_steps(model, state, x, noise, 20)  # warm up
        out, alone = step(model, x, noise, state), []
        for _ in range(args.rounds):
            for check in (False, True):
                state.check_finite = check
                times[check].append(time_steps(model, state, x, noise, args.steps))
            alone.append(time_check(out, state, args.steps))
        off, on = statistics.median(times[False]), statistics.median(times[True])
        print(f"| {'fused' if fused else 'autograd'} | {off:.0f} | {on:.0f} | {on / off:.3f} | "
              f"{statistics.median(alone):.0f} |")


if __name__ == "__main__":
    main()

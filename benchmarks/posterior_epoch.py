"""Seconds per training epoch of ``reparam train`` with implicit-gradient posteriors (Gamma,
Dirichlet, von Mises-Fisher) against the Gaussian, same network and data.

    python benchmarks/posterior_epoch.py --rounds 5

Every setting is :class:`reparam.config.TrainConfig`'s default (what ``reparam train
--posterior P`` runs) except the posterior; one epoch per measurement, rounds interleaved
over the posteriors, the median reported with its ratio to the Gaussian (target: 1.5x; the
default Gaussian step is the fused one, so the same Gaussian through autograd is a row too)
and the worst round over the median.
"""

from __future__ import annotations

import argparse
import platform
import statistics

import torch

from reparam.vae.training import train

CASES = {  # name -> TrainConfig settings
    "gaussian": dict(posterior="gaussian"),  # the default: the fused Gaussian step
    "gaussian (autograd)": dict(posterior="gaussian", fused=False),  # the same, through autograd
    "gamma": dict(posterior="gamma"),
    "dirichlet": dict(posterior="dirichlet"),
    "vmf": dict(posterior="vmf"),
}
TARGET = 1.5


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads (default: torch's)")
    return p.parse_args(argv)


def epoch_seconds(args: argparse.Namespace, settings: dict) -> float:
    result = train(epochs=1, dataset=args.dataset, data_dir=args.data_dir, eval_samples=1,
                   save=False, progress=False, **settings)
    return float(result.metrics["wall_time_s"])


def main(argv=None) -> None:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for settings in CASES.values():  # warm-up (imports, caches), not timed
        epoch_seconds(args, settings)
    for _ in range(args.rounds):
        for name, settings in CASES.items():
            times[name].append(epoch_seconds(args, settings))
    ref = statistics.median(times["gaussian"])
    ref_autograd = statistics.median(times["gaussian (autograd)"])
    print(f"# {args.dataset}, TrainConfig defaults, {torch.get_num_threads()} thread(s), median "
          f"of {args.rounds} interleaved epochs; torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}")
    print(f"| posterior | s / epoch | vs gaussian (target {TARGET}x) | vs gaussian (autograd) "
          "| worst / median |")
    print("|---|---:|---:|---:|---:|")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.3f} | {med / ref:.2f}x | {med / ref_autograd:.2f}x | "
              f"{max(values) / med:.2f} |")


if __name__ == "__main__":
    main()

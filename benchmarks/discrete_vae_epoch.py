"""Seconds per training epoch of ``reparam train`` (the standard VAE and loop): a Gaussian
latent with the pathwise gradient against binary latents with the discrete estimators.

    python benchmarks/discrete_vae_epoch.py --rounds 3

Same networks for all (``--hidden`` widths, tanh; ``--latent-dim`` latents), the digits
(embedded, 1,347 training rows at the default split) or any ``--dataset``; one epoch per
measurement, rounds interleaved over the configurations (the median is reported with its
ratio to the Gaussian pathwise autograd step).
"""

from __future__ import annotations

import argparse
import platform
import statistics

import torch

from reparam.vae.training import train

CASES = {  # name -> TrainConfig settings
    "gaussian + pathwise (fused)": dict(posterior="gaussian", estimator="pathwise"),
    "gaussian + pathwise (autograd)": dict(posterior="gaussian", estimator="pathwise", fused=False),
    "bernoulli + score-loo (S=2)": dict(posterior="bernoulli", estimator="score-loo"),
    "bernoulli + disarm (S=2)": dict(posterior="bernoulli", estimator="disarm"),
    "bernoulli + rebar": dict(posterior="bernoulli", estimator="rebar"),
    "bernoulli + relax": dict(posterior="bernoulli", estimator="relax"),
    "bernoulli + vimco (K=2)": dict(posterior="bernoulli", estimator="vimco", objective="iwae", k=2),
    "bernoulli + gumbel": dict(posterior="bernoulli", estimator="gumbel"),
}
REFERENCE = "gaussian + pathwise (autograd)"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--latent-dim", type=int, default=200)
    p.add_argument("--hidden", type=int, nargs="*", default=[200, 200])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def epoch_seconds(args: argparse.Namespace, settings: dict) -> float:
    result = train(epochs=1, dataset=args.dataset, data_dir=args.data_dir,
                   latent_dim=args.latent_dim, hidden=list(args.hidden),
                   batch_size=args.batch_size, eval_samples=1, save=False, progress=False,
                   **settings)
    return float(result.metrics["wall_time_s"])


def main(argv=None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.rounds):
        for name, settings in CASES.items():
            times[name].append(epoch_seconds(args, settings))
    ref = statistics.median(times[REFERENCE])
    print(f"# {args.dataset}, latent {args.latent_dim}, hidden {args.hidden} tanh, batch "
          f"{args.batch_size}, {args.threads} thread(s), median of {args.rounds} epochs; "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print("| model + estimator | s / epoch | vs Gaussian pathwise (autograd) |")
    print("|---|---:|---:|")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.3f} | {med / ref:.2f} |")


if __name__ == "__main__":
    main()

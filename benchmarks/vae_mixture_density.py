"""Mixture-prior density, forward + backward: ``DiagonalMixture`` (matrix products in float64)
against torch's ``MixtureSameFamily`` over ``Independent(Normal)`` (a (B, K, L) difference
tensor), at the VampPrior's size on MNIST (K = 500 components, L = 40, batch 100).

    python benchmarks/vae_mixture_density.py --repeats 15
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily

from reparam.distributions import Normal
from reparam.vae.mixture import DiagonalMixture


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("-K", type=int, default=500)
    ap.add_argument("-L", type=int, default=40)
    ap.add_argument("-B", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    K, L, B = args.K, args.L, args.B
    loc = torch.randn(K, L, requires_grad=True)
    logvar = torch.randn(K, L, requires_grad=True)
    z = torch.randn(1, B, L, requires_grad=True)

    def torch_mixture() -> None:
        comp = Independent(Normal(loc, logvar=logvar, validate_args=False), 1)
        mix = MixtureSameFamily(Categorical(logits=torch.zeros(K)), comp, validate_args=False)
        mix.log_prob(z).sum().backward()

    def diagonal_mixture() -> None:
        DiagonalMixture(loc, logvar, validate_args=False).log_prob(z).sum().backward()

    times: dict[str, list[float]] = {"DiagonalMixture": [], "MixtureSameFamily": []}
    for _ in range(args.repeats):  # interleaved
        for name, fn in (("DiagonalMixture", diagonal_mixture), ("MixtureSameFamily", torch_mixture)):
            t0 = time.perf_counter()
            for _ in range(5):
                fn()
            times[name].append((time.perf_counter() - t0) / 5 * 1e3)
    base = statistics.median(times["DiagonalMixture"])
    print(f"K={K}, L={L}, B={B}, {args.threads} thread(s), median of {args.repeats}")
    print("| method | ms | time / DiagonalMixture |\n|---|---:|---:|")
    for name, v in times.items():
        print(f"| {name} | {statistics.median(v):.2f} | {statistics.median(v) / base:.2f} |")


if __name__ == "__main__":
    main()

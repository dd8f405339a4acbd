"""Variance of a pathwise gradient estimate of E[f(z)] under each noise source, in one run.

For each family, ``R`` independent estimates of ``d/dtheta (1/n) sum_i f(z_i)`` with
``n = 256`` samples and a smooth ``f(z) = sin(z) + z^2 / 4`` (summed over coordinates):
plain Monte Carlo, antithetic pairs, and randomized QMC (scrambled Sobol, Buchholz et al.
2018). Prints the gradient variance (mean over parameter coordinates) and the variance
reduction factor Var(MC) / Var(source).

    python benchmarks/noise.py [--n 256] [--reps 200] [--seed 0]
"""

from __future__ import annotations

import argparse

import torch

import reparam.distributions as D
from reparam.noise import Antithetic, MonteCarlo, Sobol

F64 = torch.float64


def _t(*values):
    return [torch.tensor(v, dtype=F64) for v in values]


FAMILIES = {  # name -> (constructor, parameter values)
    "Normal (d=1)": (D.Normal, _t([0.3], [1.2])),
    "Normal (d=10)": (D.Normal, [torch.linspace(-1, 1, 10, dtype=F64), torch.ones(10, dtype=F64)]),
    "Laplace": (D.Laplace, _t([0.3], [1.2])),
    "Logistic": (D.Logistic, _t([0.3], [0.7])),
    "Gumbel": (D.Gumbel, _t([0.3], [1.2])),
    "Exponential": (D.Exponential, _t([1.5])),
    "Weibull": (D.Weibull, _t([1.3], [2.0])),
    "Kumaraswamy": (D.Kumaraswamy, _t([2.0], [3.0])),
    "LogNormal": (D.LogNormal, _t([0.0], [0.5])),
    "TruncatedNormal": (D.TruncatedNormal, _t([0.3], [1.2], [-1.0], [2.0])),
    "MultivariateNormal (d=3)": (lambda m, s: D.MultivariateNormal(m, scale_tril=s), [
        torch.tensor([0.5, -1.0, 0.2], dtype=F64),
        torch.tensor([[1.0, 0, 0], [0.3, 0.8, 0], [-0.5, 0.4, 1.5]], dtype=F64)]),
    "RelaxedBernoulli": (lambda t, l: D.RelaxedBernoulli(t, logits=l), _t([0.5], [0.3])),
}


def f(z: torch.Tensor) -> torch.Tensor:
    return (torch.sin(z) + z.pow(2) / 4).flatten(1).sum(-1)


def estimates(make, values, source, n: int, reps: int) -> torch.Tensor:
    """``reps`` gradient estimates, each a flat vector over all parameters."""
    out = []
    for _ in range(reps):
        leaves = [v.clone().requires_grad_() for v in values]
        z = make(*leaves).rsample((n,), noise=source)
        grads = torch.autograd.grad(f(z).mean(), leaves)
        out.append(torch.cat([g.flatten() for g in grads]))
    return torch.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sources = {
        "MC": lambda: MonteCarlo(torch.Generator().manual_seed(args.seed)),
        "antithetic": lambda: Antithetic(MonteCarlo(torch.Generator().manual_seed(args.seed))),
        "Sobol (RQMC)": lambda: Sobol(seed=args.seed),
    }
    print(f"gradient variance of d/dtheta mean_n f(z), f = sin z + z^2/4, n = {args.n}, "
          f"{args.reps} independent estimates, float64")
    print("| family | Var MC | Var antithetic | Var Sobol | MC/antithetic | MC/Sobol |")
    print("|---|---:|---:|---:|---:|---:|")
    factors = []
    for name, (make, values) in FAMILIES.items():
        var = {k: float(estimates(make, values, src(), args.n, args.reps).var(0).mean())
               for k, src in sources.items()}
        mc, an, qmc = var["MC"], var["antithetic"], var["Sobol (RQMC)"]
        factors.append(mc / qmc)
        print(f"| {name} | {mc:.3e} | {an:.3e} | {qmc:.3e} | {mc / an:.1f} | {mc / qmc:.0f} |")
    factors.sort()
    print(f"\nRQMC factor Var(MC)/Var(Sobol) at n = {args.n}: median {factors[len(factors) // 2]:.0f}, "
          f"min {factors[0]:.0f}, max {factors[-1]:.0f}")


if __name__ == "__main__":
    main()

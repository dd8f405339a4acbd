"""rsample + backward throughput of every reparam family against its torch.distributions
counterpart, interleaved in one run (construction included: parameters change every step).

Prints the median time of ``d = Family(params); d.rsample((S,)).mul(g).sum().backward()``
for both, and the ratio reparam / torch (> 1: reparam slower) of the medians and of the minima.
On the CPU the clock is this thread's CPU time with one intra-op thread, so other jobs on a
shared machine do not enter the figures. Both with validate_args=False.

    python benchmarks/families.py [--batch 1000] [--samples 1000] [--repeats 9] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.distributions as td
from torch.distributions import transforms as T

import reparam.distributions as D


def _logistic_torch(loc, scale, validate_args=False):
    """torch has no Logistic: the documented recipe, a Uniform through logit and affine maps."""
    base = td.Uniform(torch.zeros_like(loc), torch.ones_like(loc), validate_args=validate_args)
    return td.TransformedDistribution(base, [T.SigmoidTransform().inv, T.AffineTransform(loc, scale)],
                                      validate_args=validate_args)


def _pos(shape, lo=0.5, hi=2.0):
    return lo + (hi - lo) * torch.rand(shape)


def univariate(b: int) -> dict:
    """name -> (reparam constructor, torch constructor or None, parameter tensors)."""
    loc, scale = torch.randn(b), _pos(b)
    return {
        "Normal": (D.Normal, td.Normal, (loc, scale)),
        "Laplace": (D.Laplace, td.Laplace, (loc, scale)),
        "Logistic": (D.Logistic, _logistic_torch, (loc, scale)),
        "Cauchy": (D.Cauchy, td.Cauchy, (loc, scale)),
        "Gumbel": (D.Gumbel, td.Gumbel, (loc, scale)),
        "Uniform": (D.Uniform, td.Uniform, (loc, loc + scale)),
        "Exponential": (D.Exponential, td.Exponential, (scale,)),
        "Weibull": (D.Weibull, td.Weibull, (scale, _pos(b))),
        "Pareto": (D.Pareto, td.Pareto, (scale, _pos(b, 2.0, 4.0))),
        "Kumaraswamy": (D.Kumaraswamy, td.Kumaraswamy, (_pos(b), _pos(b))),
        "HalfNormal": (D.HalfNormal, td.HalfNormal, (scale,)),
        "LogNormal": (D.LogNormal, td.LogNormal, (loc, scale)),
        "TruncatedNormal": (D.TruncatedNormal, None, (loc, scale, loc - 1.0, loc + 2.0)),
        "RelaxedBernoulli": (lambda t, l, validate_args: D.RelaxedBernoulli(
            t, logits=l, validate_args=validate_args), lambda t, l, validate_args: td.RelaxedBernoulli(
            t, logits=l, validate_args=validate_args), (_pos(b), torch.randn(b))),
    }


def multivariate(b: int) -> dict:
    d, r, k = 32, 8, 10
    tril = torch.tril(torch.randn(b, d, d) * 0.1) + torch.eye(d)
    return {
        f"MultivariateNormal d={d}": (lambda m, s, validate_args: D.MultivariateNormal(
                                          m, scale_tril=s, validate_args=validate_args),
                                      lambda m, s, validate_args:
                                      td.MultivariateNormal(m, scale_tril=s,
                                                            validate_args=validate_args),
                                      (torch.randn(b, d), tril)),
        f"LowRankMVN d={8 * d} r={r}": (D.LowRankMultivariateNormal, td.LowRankMultivariateNormal,
                                        (torch.randn(b, 8 * d), torch.randn(b, 8 * d, r),
                                         _pos((b, 8 * d)))),
        f"RelaxedOneHotCategorical K={k}": (
            lambda t, l, validate_args: D.RelaxedOneHotCategorical(t, logits=l,
                                                                   validate_args=validate_args),
            lambda t, l, validate_args: td.RelaxedOneHotCategorical(t, logits=l,
                                                                    validate_args=validate_args),
            (torch.tensor(0.5), torch.randn(b, k))),
    }


def time_one(make, params, samples: int, device) -> float:
    """Seconds for one construction + rsample + backward: CPU time of this thread on the CPU
    (robust to other jobs on a shared machine; run with one intra-op thread), wall time on CUDA."""
    leaves = [p.detach().clone().requires_grad_() for p in params]
    cuda = device.type == "cuda"
    clock = time.perf_counter if cuda else time.thread_time
    if cuda:
        torch.cuda.synchronize()
    t0 = clock()
    z = make(*leaves, validate_args=False).rsample((samples,))
    z.sum().backward()
    if cuda:
        torch.cuda.synchronize()
    return clock() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--only", nargs="*", help="family names to run (default: all)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads on the CPU")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for table, samples in ((univariate(args.batch), args.samples),
                           (multivariate(args.batch // 10), args.samples // 10)):
        for name, (ours, theirs, params) in table.items():
            if args.only and name.split()[0] not in args.only:
                continue
            params = tuple(p.to(device) for p in params)
            makers = {"reparam": ours, "torch": theirs} if theirs else {"reparam": ours}
            times = {k: [] for k in makers}
            for i in range(args.repeats + 2):  # interleaved; first two are warm-up
                for k, make in makers.items():
                    dt = time_one(make, params, samples, device)
                    if i >= 2:
                        times[k].append(dt)
            med = {k: statistics.median(v) for k, v in times.items()}
            low = {k: min(v) for k, v in times.items()}
            rows.append((name, med["reparam"], med.get("torch"), low["reparam"], low.get("torch")))
    print(f"rsample + backward, batch {args.batch} x samples {args.samples} (multivariate: "
          f"{args.batch // 10} x {args.samples // 10}), float32, {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), {'wall' if device.type == 'cuda' else 'thread CPU'} "
          f"time, median of {args.repeats}")
    print("| family | reparam ms | torch ms | reparam / torch (medians) | (minima) |")
    print("|---|---:|---:|---:|---:|")
    for name, ours, theirs, ours_min, theirs_min in rows:
        t = f"{1e3 * theirs:.2f}" if theirs else "(none)"
        r = f"{ours / theirs:.2f} | {ours_min / theirs_min:.2f}" if theirs else "- | -"
        print(f"| {name} | {1e3 * ours:.2f} | {t} | {r} |")
    worst = max(((o / t, n) for n, o, t, _, _ in rows if t), default=None)
    if worst:
        print(f"\nslowest relative to torch (medians): {worst[1]} at {worst[0]:.2f}x")


if __name__ == "__main__":
    main()

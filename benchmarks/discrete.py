"""Binary-latent VAE (200 Bernoulli latents) on statically binarized MNIST, every estimator.

    python benchmarks/discrete.py --data-dir /work/shared/data --out runs/discrete \
        --arch linear nonlinear --steps 3000
    python benchmarks/discrete.py --data-dir /work/shared/data --timing 20   # ms / step only

Recipe (DisARM paper, Dong et al. 2020): batch 50, Adam 1e-4 for the encoder and decoder,
SGD 1e-2 for the prior logits, encoder input centred by the training mean, decoder bias at
the logit of the training mean; the KL to the prior is exact for the single-sample
estimators. ``--batch-size 24`` and ``--lr`` give the REBAR/RELAX recipe instead.

Each (arch, estimator) run lives in ``OUT/ARCH/ESTIMATOR`` and is resumable: the same
command continues from ``checkpoint.safetensors`` (every ``--checkpoint-every`` steps,
written atomically: model, Adam moments, RNG, the estimator's tensors). Prints two tables:
the same number of steps, and the same wall-clock budget (each curve read at the training
time of the fastest run, or a fresh ``--budget-seconds`` run per estimator). Writes
``discrete_steps.png``, ``discrete_seconds.png``, ``discrete.json`` and ``discrete.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from reparam.data.amat import load_binarized_mnist

sys.path.insert(0, str(Path(__file__).resolve().parent))
from discrete_report import figures, markdown  # noqa: E402
from discrete_run import RunConfig, final_eval, time_steps, train_run  # noqa: E402

ESTIMATORS = ("score-ema", "rloo", "score-nvil", "vimco", "arm", "disarm", "disarm-iw",
              "rebar", "relax", "gumbel", "straight-through")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/discrete")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--arch", nargs="+", default=["linear"], choices=["linear", "nonlinear"])
    p.add_argument("--estimators", nargs="+", default=list(ESTIMATORS))
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--budget-seconds", type=float, default=None,
                   help="also train each estimator afresh for this many training seconds")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--prior-lr", type=float, default=1e-2)
    p.add_argument("--iw-k", type=int, default=2, help="K of the multi-sample estimators")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--variance-repeats", type=int, default=20)
    p.add_argument("--bound-k", type=int, default=100)
    p.add_argument("--bound-examples", type=int, default=None,
                   help="test images (seeded subset) for the final bound; default all 10,000")
    p.add_argument("--curve-examples", type=int, default=1000,
                   help="test images for the bound at each evaluation along training")
    p.add_argument("--nll-k", type=int, default=5000)
    p.add_argument("--nll-examples", type=int, default=500,
                   help="test images (seeded random subset) for the k = --nll-k NLL")
    p.add_argument("--timing", type=int, default=0, metavar="STEPS",
                   help="only time STEPS steps per estimator per round, interleaved, and exit")
    p.add_argument("--timing-rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def _config(args, arch: str, name: str, steps: int, seconds: float | None) -> RunConfig:
    return RunConfig(arch=arch, estimator=name, steps=steps, max_seconds=seconds,
                     batch_size=args.batch_size, lr=args.lr, prior_lr=args.prior_lr,
                     iw_k=args.iw_k, eval_every=args.eval_every,
                     checkpoint_every=args.checkpoint_every,
                     variance_repeats=args.variance_repeats,
                     curve_examples=args.curve_examples, seed=args.seed)


def _phase(args, data, arch: str, steps: int, seconds: float | None, tag: str) -> dict:
    rows = {}
    for name in args.estimators:
        run_dir = Path(args.out) / arch / (name if tag == "steps" else f"{name}@{tag}")
        cfg = _config(args, arch, name, steps, seconds)
        model, history = train_run(cfg, data, run_dir)
        final = final_eval(model, data, run_dir, bound_k=args.bound_k, nll_k=args.nll_k,
                           nll_examples=args.nll_examples, seed=args.seed,
                           bound_examples=args.bound_examples)
        rows[name] = {"history": history, **final}
        last = history[-1]
        print(f"[{arch} {tag}] {name}: step {last['step']}, train ELBO {final['train_elbo']:.2f}, "
              f"test bound {final['test_bound']:.2f}, NLL {final['test_nll']:.2f}, "
              f"{1e3 * last['seconds'] / max(last['step'], 1):.1f} ms/step", flush=True)
    return rows


def _timing(args, data) -> int:
    print(f"ms per training step, median of {args.timing_rounds} interleaved rounds of "
          f"{args.timing} steps, batch {args.batch_size}, {args.threads} thread(s)\n")
    print("| estimator | " + " | ".join(f"{a} ms | {a} vs rloo" for a in args.arch) + " |")
    print("|---" * (1 + 2 * len(args.arch)) + "|")
    cols = {a: time_steps(data, a, args.estimators, args.timing, args.timing_rounds,
                          _config(args, a, "rloo", 0, None)) for a in args.arch}
    for name in args.estimators:
        cells = []
        for a in args.arch:
            ref = cols[a].get("rloo", float("nan"))
            cells += [f"{cols[a][name]:.1f}", f"{cols[a][name] / ref:.2f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


def main(argv=None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    data = load_binarized_mnist(args.data_dir, download=args.data_dir is None)
    if args.timing:
        return _timing(args, data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"config": vars(args), "machine": f"{platform.processor() or platform.machine()}, "
              f"{args.threads} thread(s), torch {torch.__version__}", "archs": {}}
    for arch in args.arch:
        entry = {"steps": _phase(args, data, arch, args.steps, None, "steps")}
        if args.budget_seconds:
            tag = f"{args.budget_seconds:g}s"
            entry["budget"] = _phase(args, data, arch, 10**12, args.budget_seconds, tag)
        result["archs"][arch] = entry
    (out / "discrete.json").write_text(json.dumps(result, indent=1))
    md = markdown(result)
    (out / "discrete.md").write_text(md)
    figures(result, out)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

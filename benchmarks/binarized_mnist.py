"""Train and evaluate on statically binarized MNIST; print the Markdown row for the README.

    python benchmarks/binarized_mnist.py --config benchmarks/configs/standard_vae.toml \
        --data-dir ../shared/data --out runs/bmnist-standard [--k 5000] [--time-limit 30m]

The run is resumable: run the same command again and it continues from the checkpoint in
--out (the time limit counts training time over all sittings). Evaluation uses the whole
10,000-image test set (the file is sorted by class, so never a prefix of it), k importance
samples per image, and reports -log p(x) in nats with its standard error.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch

from reparam import runs
from reparam.config import TrainConfig
from reparam.vae.evaluation import evaluate, log_likelihood
from reparam.vae.training import load_run, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--time-limit", default=None, help="override the config's time limit")
    parser.add_argument("--skip-train", action="store_true", help="only evaluate --out")
    parser.add_argument("--refine-steps", type=int, default=0,
                        help="also report the NLL with each test image's Gaussian proposal refined "
                             "by this many Adam steps (reparam evaluate --refine-steps)")
    args = parser.parse_args()
    out = Path(args.out)
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    if args.time_limit:
        overrides["time_limit"] = args.time_limit
    if not args.skip_train:
        if (out / runs.CHECKPOINT).is_file() and not (out / "metrics.json").is_file():
            train(resume=out, **overrides)
        elif not (out / "metrics.json").is_file():
            train(TrainConfig.load(args.config).replace(out=str(out), **overrides))
    config, model, data = load_run(out, data_dir=args.data_dir)
    metrics = runs.read_json(out / "metrics.json")
    t0 = time.perf_counter()
    result = evaluate(model, data.test, k=args.k, batch_size=100, seed=0, progress=True)
    result.update(eval_seconds=time.perf_counter() - t0, split="test (all 10,000)",
                  binarization=data.binarization, train_on=config.train_on,
                  train_seconds=metrics["wall_time_s"], epochs=metrics["epochs"],
                  machine=f"{platform.machine()}, {torch.get_num_threads()} threads, "
                          f"torch {torch.__version__}")
    if args.refine_steps:
        t0 = time.perf_counter()
        nll = -log_likelihood(model, data.test, k=args.k, progress=True,
                              generator=torch.Generator(next(model.parameters()).device).manual_seed(0),
                              refine_steps=args.refine_steps)
        result.update(nll_refined=float(nll.mean()),
                      nll_refined_stderr=float(nll.std() / math.sqrt(len(nll))),
                      refine_steps=args.refine_steps,
                      refined_eval_seconds=time.perf_counter() - t0)
    runs.write_json(out / "evaluation.json", result)
    print(json.dumps(result, indent=2, sort_keys=True))
    print(f"| {Path(args.config).stem} | {result['nll']:.2f} +- {result['nll_stderr']:.2f} | "
          f"{result['k']} | {-result['elbo']:.2f} | {result['active_units']}/{result['latent_dim']} | "
          f"{metrics['epochs']} | {metrics['wall_time_s'] / 60:.1f} min | {config.train_on} | "
          f"{data.binarization} |")


if __name__ == "__main__":
    main()

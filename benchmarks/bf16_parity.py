"""Does bf16 training (``bf16=True``: the fused step's wide products in bfloat16, float32
weights, Adam and elementwise math) reach the same model as float32 training?

Same MLP as benchmarks/vae_speed.py (784-300-300-40 tanh, batch 100, Adam 1e-3) on statically
binarized MNIST, trained ``--epochs`` epochs per seed in float32 and in bf16 (same seed: same
initial weights, batches and noise). Per run: test ELBO on the 10,000 test images and the
importance-sampled NLL (k = ``--k``) on a seeded random subset of ``--nll-n`` test images, and
the training throughput. The bf16 - float32 difference is set against the seed-to-seed spread
of float32 itself.

    python benchmarks/bf16_parity.py --data-dir ../shared/data [--epochs 10 --seeds 3]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from reparam.data import load_dataset
from reparam.vae import TrainConfig, train
from reparam.vae.evaluation import log_likelihood
from vae_speed import BATCH, HIDDEN, LATENT, LR  # the same MLP as the speed benchmark


def run(data, x_nll: torch.Tensor, epochs: int, seed: int, bf16: bool, k: int) -> dict:
    cfg = TrainConfig(epochs=epochs, batch_size=BATCH, lr=LR, latent_dim=LATENT, hidden=list(HIDDEN),
                      activation="tanh", eval_samples=1, tensorboard=False, seed=seed, bf16=bf16)
    result = train(cfg, dataset=data, save=False, progress=False)
    assert result.metrics["fused_step"]
    nll = -log_likelihood(result.model, x_nll, k=k, generator=torch.Generator().manual_seed(0))
    return {"test_elbo": result.history[-1]["test_elbo"], "nll": nll.mean().item(),
            "rate": data.train.shape[0] * epochs / result.metrics["wall_time_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description="bf16 vs float32 training: same model?")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--nll-n", type=int, default=1000)
    args = parser.parse_args()
    data = load_dataset("binarized-mnist", data_dir=args.data_dir)
    order = torch.randperm(data.test.shape[0], generator=torch.Generator().manual_seed(0))
    x_nll = data.test[order[:args.nll_n]]
    print(f"binarized MNIST (static), MLP 784-300-300-40 tanh, batch 100, Adam 1e-3, "
          f"{args.epochs} epochs on train (50k); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    rows: dict[str, list[dict]] = {"float32": [], "bf16": []}
    print(f"{'seed':>4} {'precision':>10} {'test ELBO':>10} {'NLL k=' + str(args.k):>11} "
          f"{'ex/s':>8}")
    for seed in range(args.seeds):
        for name in rows:
            r = run(data, x_nll, args.epochs, seed, name == "bf16", args.k)
            rows[name].append(r)
            print(f"{seed:>4} {name:>10} {r['test_elbo']:>10.3f} {r['nll']:>11.3f} "
                  f"{r['rate']:>8.0f}", flush=True)

    def summary(key: str, name: str) -> str:
        values = [r[key] for r in rows[name]]
        sd = statistics.stdev(values) if len(values) > 1 else float("nan")
        return f"{statistics.fmean(values):.3f} (sd {sd:.3f})"

    print("\nmean over seeds (sd = seed-to-seed standard deviation)")
    for key, label in (("test_elbo", "test ELBO"), ("nll", f"NLL k={args.k}")):
        diffs = [b[key] - a[key] for a, b in zip(rows["float32"], rows["bf16"])]
        print(f"{label:>11}: float32 {summary(key, 'float32')}, bf16 {summary(key, 'bf16')}, "
              f"paired bf16 - float32 {statistics.fmean(diffs):+.3f} "
              f"(per seed {', '.join(f'{d:+.3f}' for d in diffs)})")
    speed = statistics.fmean(b["rate"] / a["rate"] for a, b in zip(rows["float32"], rows["bf16"]))
    print(f"throughput bf16 / float32 (whole runs, incl. per-epoch test ELBO): {speed:.2f}x")


if __name__ == "__main__":
    main()

"""Distributed throughput: data-parallel training and sharded importance-sampled evaluation
with 1, 2, ... processes.

Each row launches ``torchrun --nproc-per-node N`` on 127.0.0.1 (gloo on CPU, nccl with one
process per GPU on CUDA) running this script's worker, which loads the run, waits at a
barrier, times ``reparam.vae.evaluation.evaluate`` (the code of ``reparam evaluate``)
and reports examples / s from rank 0; process start-up and loading are not timed. The
NLL must be the same in every row (per-example noise). Scaling efficiency is
``rate_N / (N rate_1)``. Training rows run ``torchrun -m reparam train`` (digits, MLP
64-64, latent 8, global batch ``--train-batch``) and report training examples / s from the
run's ``metrics.json`` (the time in the epochs' steps; start-up, evaluation and figures are
not timed); the final test ELBO must agree across rows to 1e-4 relative.

    python benchmarks/distributed.py [--run-dir RUN] [--procs 1 2] [--k 1000] [--examples 300]
           [--device cpu|cuda] [--threads 1] [--train-epochs 3] [--train-batch 128]

Without ``--run-dir`` a digits run (MLP 64-64, latent 8, 5 epochs) is trained in a
temporary folder first.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SRC = Path(__file__).resolve().parents[1] / "src"


def worker(args: argparse.Namespace) -> None:
    from reparam import parallel
    from reparam.vae.evaluation import evaluate
    from reparam.vae.training import load_run

    with parallel.session(args.device) as device:
        _, model, data = load_run(args.run_dir, str(device))
        x = data.test[:args.examples] if args.examples else data.test
        parallel.barrier()
        t0 = time.perf_counter()
        result = evaluate(model, x, k=args.k, batch_size=args.batch_size, seed=0)
        parallel.barrier()
        seconds = time.perf_counter() - t0
        if parallel.is_main():
            print("RESULT " + json.dumps({"seconds": seconds, "n": int(x.shape[0]),
                                          "nll": result["nll"], "stderr": result["nll_stderr"]}))


def _env(threads: int) -> dict[str, str]:
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": str(threads)}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(nproc: int, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
           "--master-addr", "127.0.0.1", "--master-port", str(_port()), __file__, "--worker",
           "--run-dir", str(args.run_dir), "--k", str(args.k), "--examples", str(args.examples),
           "--batch-size", str(args.batch_size), "--device", args.device]
    done = subprocess.run(cmd, env=_env(args.threads), capture_output=True, text=True,
                          timeout=3600)
    if done.returncode:
        raise SystemExit(f"torchrun with {nproc} processes failed:\n{done.stderr[-3000:]}")
    line = next(v for v in done.stdout.splitlines() if v.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def launch_train(nproc: int, args: argparse.Namespace, out: Path) -> dict[str, float]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
           "--master-addr", "127.0.0.1", "--master-port", str(_port()), "-m", "reparam", "train",
           "--epochs", str(args.train_epochs), "--hidden", "64", "64", "--latent-dim", "8",
           "--batch-size", str(args.train_batch), "--device", args.device, "--out", str(out),
           "--quiet"]
    done = subprocess.run(cmd, env=_env(args.threads), capture_output=True, text=True,
                          timeout=3600)
    if done.returncode:
        raise SystemExit(f"torchrun training with {nproc} processes failed:\n{done.stderr[-3000:]}")
    m = json.loads((out / "metrics.json").read_text())
    return {"seconds": m["wall_time_s"], "n": m["train_examples"] * m["epochs"],
            "elbo": m["test_elbo"]}


def table(title: str, rows: dict[int, dict[str, float]], key: str, label: str) -> None:
    print(title)
    first = min(rows)
    rate0 = rows[first]["n"] / rows[first]["seconds"] / first
    print(f"{'processes':>9}{'examples/s':>12}{'speed-up':>10}{'efficiency':>12}{label:>12}")
    for n, r in rows.items():
        rate = r["n"] / r["seconds"]
        print(f"{n:>9}{rate:>12.1f}{rate / (rate0 * first):>10.2f}"
              f"{rate / (n * rate0):>12.2f}{r[key]:>12.6f}")


def train_tiny(folder: Path) -> Path:
    out = folder / "run"
    subprocess.run([sys.executable, "-m", "reparam", "train", "--epochs", "5", "--hidden", "64",
                    "64", "--latent-dim", "8", "--out", str(out), "--quiet"],
                   env=_env(1), check=True, capture_output=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--examples", type=int, default=300, help="test examples (0: all)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per process")
    parser.add_argument("--train-epochs", type=int, default=3)
    parser.add_argument("--train-batch", type=int, default=128)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    with tempfile.TemporaryDirectory() as tmp:
        if args.run_dir is None:
            args.run_dir = train_tiny(Path(tmp))
        rows = {n: launch(n, args) for n in args.procs}
        trained = {n: launch_train(n, args, Path(tmp) / f"train{n}") for n in args.procs}
    print(f"device {args.device}, {args.threads} thread(s) per process; torch {torch.__version__}")
    table(f"data-parallel training, {args.train_epochs} epochs of the digits, global batch "
          f"{args.train_batch}", trained, "elbo", "test ELBO")
    table(f"sharded IS evaluation, k={args.k}, {rows[args.procs[0]]['n']} examples", rows, "nll", "NLL")
    if len({r["nll"] for r in rows.values()}) != 1:
        raise SystemExit("the NLL differs between process counts")
    elbos = [r["elbo"] for r in trained.values()]
    if max(elbos) - min(elbos) > 1e-4 * abs(elbos[0]):
        raise SystemExit(f"the trained test ELBO differs between process counts: {elbos}")

if __name__ == "__main__":
    main()

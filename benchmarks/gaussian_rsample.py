"""rsample + backward of a Gaussian with encoder outputs (mu, logvar), in one run:

    reparam      Normal(mu, logvar=logvar).rsample()          (custom autograd, saves z and mu)
    torch        torch.distributions.Normal(mu, exp(logvar / 2)).rsample()
    plain        mu + exp(logvar / 2) * randn_like(mu)        (hand-written formula)

Prints median time per rsample+backward, the ratio to reparam, and the bytes autograd saves
for the backward pass (counted with saved-tensor hooks; peak CUDA memory on a GPU).

    python benchmarks/gaussian_rsample.py [--n 16777216] [--repeats 15] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.distributions as td

from reparam.distributions import Normal


def reparam_rsample(mu, logvar):
    return Normal(mu, logvar=logvar, validate_args=False).rsample()


def torch_rsample(mu, logvar):
    return td.Normal(mu, torch.exp(logvar / 2), validate_args=False).rsample()


def plain_rsample(mu, logvar):
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


METHODS = {"reparam": reparam_rsample, "torch.distributions": torch_rsample, "plain": plain_rsample}


def saved_bytes(fn, mu, logvar) -> int:
    """Bytes of distinct tensors autograd keeps for backward (outputs and inputs included)."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        z = fn(mu, logvar)
    inputs = {mu.untyped_storage().data_ptr(), logvar.untyped_storage().data_ptr(),
              z.untyped_storage().data_ptr()}
    extra = sum(b for p, b in seen.items() if p not in inputs)
    return extra


def time_one(fn, mu, logvar, grad, device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    z = fn(mu, logvar)
    z.backward(grad)
    sync()
    dt = time.perf_counter() - t0
    mu.grad = logvar.grad = None
    return dt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2**24)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    mu = torch.randn(args.n, device=device, dtype=dtype, requires_grad=True)
    logvar = torch.randn(args.n, device=device, dtype=dtype, requires_grad=True)
    grad = torch.randn(args.n, device=device, dtype=dtype)

    times: dict[str, list[float]] = {name: [] for name in METHODS}
    for _ in range(2):  # warm-up
        for fn in METHODS.values():
            time_one(fn, mu, logvar, grad, device)
    for _ in range(args.repeats):  # interleaved, so drift hits every method alike
        for name, fn in METHODS.items():
            times[name].append(time_one(fn, mu, logvar, grad, device))

    peak = {}
    if device.type == "cuda":
        for name, fn in METHODS.items():
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            time_one(fn, mu, logvar, grad, device)
            peak[name] = (torch.cuda.max_memory_allocated() - base) / 2**20

    ours = statistics.median(times["reparam"])
    print(f"rsample + backward of {args.n} {args.dtype} elements on {device} "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads), "
          f"median of {args.repeats}")
    header = f"{'method':<22}{'ms':>10}{'time / reparam':>16}{'saved extra MiB':>17}"
    if peak:
        header += f"{'peak MiB':>10}"
    print(header)
    for name, fn in METHODS.items():
        med = statistics.median(times[name])
        row = (f"{name:<22}{1e3 * med:>10.1f}{med / ours:>16.2f}"
               f"{saved_bytes(fn, mu, logvar) / 2**20:>17.1f}")
        if peak:
            row += f"{peak[name]:>10.1f}"
        print(row)


if __name__ == "__main__":
    main()

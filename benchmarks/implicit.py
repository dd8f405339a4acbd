"""Implicit-gradient families vs torch: rsample + backward time over the parameter grid, and
the accuracy of dz/dtheta at the project's own samples.

Speed (one process, ours and torch interleaved, median of ``--repeats``, plus the worst
repeat over the median): Gamma, Beta, Dirichlet (K = 3, 10, 100), StudentT with the
parameter a scalar broadcast over ``sample_shape`` or one per sample (log-uniform over the
range, as from an encoder); shapes 1e-3 .. 1e4 (Beta also very unequal), df 0.5 .. 1e3.
VonMises: ``sample()`` vs torch's ``sample()`` (torch has no rsample). VonMisesFisher
rsample + backward vs torch's Beta((d-1)/2, (d-1)/2) rsample + backward of the same n (the
proposal it needs). A parameter sweep at float32 / default threads, then every family's
representative cells over float32 / float64 x n x {default threads, one thread}, then a
row per family while a busy process (started here) keeps one core busy.

Accuracy: max relative error of dz/dtheta against 40-digit mpmath at samples drawn by the
families themselves (float64 and float32; the reference at the rounded sample).

    python benchmarks/implicit.py [--quick] [--repeats 5] [--no-accuracy]
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import mpmath
import torch
import torch.distributions as td

from reparam.distributions import Beta, Dirichlet, Gamma, StudentT, VonMises, VonMisesFisher
from reparam.distributions.implicit import log_standard_gamma
from reparam.noise import MonteCarlo

TARGET = {"VonMisesFisher": 3.0}  # else 2.0
F32, F64 = torch.float32, torch.float64


# --- cells -------------------------------------------------------------------------------
def _param(spec, n: int, dtype, seed: int, k: int | None = None) -> torch.Tensor:
    """A scalar (a float) or per-sample log-uniform over ``spec = (lo, hi)`` (a tuple)."""
    if isinstance(spec, tuple):
        g = torch.Generator().manual_seed(seed)
        shape = (n,) if k is None else (n, k)
        u = torch.rand(shape, generator=g, dtype=F64)
        v = torch.exp(math.log(spec[0]) + u * (math.log(spec[1]) - math.log(spec[0])))
    else:
        v = torch.tensor(float(spec), dtype=F64) if k is None else torch.full((k,), float(spec))
    return v.to(dtype).requires_grad_()


def _shape(p: torch.Tensor, n: int, event: int = 0) -> tuple:
    return (n,) if p.dim() == event else ()


def gamma_cell(spec, n, dtype):
    a = _param(spec, n, dtype, 0)
    s = _shape(a, n)
    return (lambda: Gamma(a).rsample(s).sum().backward(),
            lambda: td.Gamma(a, torch.ones((), dtype=dtype)).rsample(s).sum().backward())


def beta_cell(spec, n, dtype):
    a, b = _param(spec[0], n, dtype, 0), _param(spec[1], n, dtype, 1)
    s = _shape(a, n) if a.dim() >= b.dim() else _shape(b, n)
    return (lambda: Beta(a, b).rsample(s).sum().backward(),
            lambda: td.Beta(a, b).rsample(s).sum().backward())


def dirichlet_cell(spec, n, dtype):
    k, alpha = spec
    c = _param(alpha, n, dtype, 2, k)
    s = _shape(c, n, 1)
    return (lambda: Dirichlet(c).rsample(s)[..., 0].sum().backward(),
            lambda: td.Dirichlet(c).rsample(s)[..., 0].sum().backward())


def student_cell(spec, n, dtype):
    df = _param(spec, n, dtype, 3)
    s = _shape(df, n)
    return (lambda: StudentT(df).rsample(s).sum().backward(),
            lambda: td.StudentT(df).rsample(s).sum().backward())


def von_mises_cell(spec, n, dtype):
    k = _param(spec, n, dtype, 4).detach()
    s, loc = _shape(k, n), torch.zeros((), dtype=dtype)
    return lambda: VonMises(loc, k).sample(s), lambda: td.VonMises(loc, k).sample(s)


def vmf_cell(spec, n, dtype):
    d, kappa = spec
    k = _param(kappa, n, dtype, 5)
    mu = torch.nn.functional.normalize(torch.ones(d, dtype=dtype), dim=0)
    half = torch.tensor((d - 1) / 2, dtype=dtype, requires_grad=True)
    return (lambda: VonMisesFisher(mu, k).rsample(_shape(k, n))[..., 0].sum().backward(),
            lambda: td.Beta(half, half).rsample((n,)).sum().backward())


# family -> (cell builder, parameter sweep, representative cells)
FAMILIES: dict[str, tuple[Callable, list, list]] = {
    "Gamma": (gamma_cell, [1e-3, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, (1e-3, 1e4), (0.1, 10.0),
                           (10.0, 1e4)], [2.0, 300.0, (1e-2, 1e3)]),
    "Beta": (beta_cell, [(1e-3, 1e-3), (0.5, 0.5), (2.0, 3.0), (50.0, 50.0), (1e3, 1e3),
                         (1e4, 1e4), (1e-2, 1e3), (1e3, 1e-2), (1e4, 1.0), ((1e-3, 1e4), (1e-3, 1e4)),
                         ((0.1, 10.0), (0.1, 10.0))], [(50.0, 50.0), ((0.1, 10.0), (0.1, 10.0))]),
    "Dirichlet": (dirichlet_cell, [(k, a) for k in (3, 10, 100) for a in (1e-2, 1.0, 1e3, (1e-2, 1e3))],
                  [(10, 1.0), (10, (1e-2, 1e3))]),
    "StudentT": (student_cell, [0.5, 2.0, 30.0, 1e3, (0.5, 1e3)], [2.0, (0.5, 1e3)]),
    "VonMises": (von_mises_cell, [1e-3, 0.5, 2.0, 100.0, 1e4, (1e-3, 1e3)], [2.0]),
    "VonMisesFisher": (vmf_cell, [(d, 2.0) for d in (3, 5, 10, 50, 100, 1000)] + [(5, (1.0, 100.0))],
                       [(5, 2.0)]),
}


def _label(spec) -> str:
    if isinstance(spec, tuple):
        if len(spec) == 2 and all(isinstance(v, float) for v in spec):
            return f"[{spec[0]:g}, {spec[1]:g}]"
        return ", ".join(_label(v) for v in spec)
    return f"{spec:g}" if isinstance(spec, float) else str(spec)


def _is_per_sample(family: str, spec) -> bool:
    if family == "Beta":
        return isinstance(spec[0], tuple)
    if family in ("Dirichlet", "VonMisesFisher"):
        return isinstance(spec[1], tuple)
    return isinstance(spec, tuple)


def measure(ours: Callable, theirs: Callable, repeats: int) -> tuple[float, float, float]:
    """Medians (ours, torch) in seconds and ours' worst repeat over its median, interleaved."""
    ours(), theirs()  # warm up (first-call allocations, coefficient tables)
    t = {"o": [], "t": []}
    for _ in range(repeats):
        for key, fn in (("o", ours), ("t", theirs)):
            start = time.perf_counter()
            fn()
            t[key].append(time.perf_counter() - start)
    med = statistics.median(t["o"])
    return med, statistics.median(t["t"]), max(t["o"]) / med


class Busy:
    """A child process spinning on one core while a row is measured."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def run_cell(rows, family, spec, n, dtype, threads, repeats, busy=False):
    torch.set_num_threads(threads)
    build = FAMILIES[family][0]
    ours, theirs = build(spec, n, dtype)
    if busy:
        with Busy():
            o, t, worst = measure(ours, theirs, repeats)
    else:
        o, t, worst = measure(ours, theirs, repeats)
    row = dict(family=family, params=_label(spec), kind="per-sample" if _is_per_sample(
        family, spec) else "scalar", dtype=str(dtype)[6:], n=n, threads=threads, busy=busy,
               ours=o, torch=t, ratio=o / t, worst=worst)
    rows.append(row)
    print(f"| {family} | {row['params']} | {row['kind']} | {row['dtype']} | {n:.0e} | "
          f"{threads}{' +busy' if busy else ''} | {1e3 * o:.2f} | {1e3 * t:.2f} | "
          f"{o / t:.2f}x | {worst:.2f} |", flush=True)


def speed(quick: bool, repeats: int) -> list[dict]:
    default = torch.get_num_threads()
    n_sweep = 2_000 if quick else 100_000
    ns = (1_000, 10_000) if quick else (1_000, 10_000, 100_000, 1_000_000)
    rows: list[dict] = []
    print("| family | params | kind | dtype | n | threads | reparam ms | torch ms | ratio | "
          "worst/median |\n|---|---|---|---|---:|---|---:|---:|---:|---:|")
    for family, (_, sweep, _) in FAMILIES.items():
        for spec in sweep:
            run_cell(rows, family, spec, n_sweep, F32, default, repeats)
    for family, (_, _, reps) in FAMILIES.items():
        for spec in reps:
            for dtype in (F32, F64):
                for n in ns:
                    for threads in sorted({default, 1}):
                        run_cell(rows, family, spec, n, dtype, threads, repeats)
    for family, (_, _, reps) in FAMILIES.items():
        run_cell(rows, family, reps[0], n_sweep, F32, default, repeats, busy=True)
    torch.set_num_threads(default)
    return rows


def summary(rows: list[dict]) -> None:
    print("\n| family | cells | median ratio | worst ratio (cell) | cells over target |\n"
          "|---|---:|---:|---|---:|")
    for family in FAMILIES:
        rs = [r for r in rows if r["family"] == family]
        worst = max(rs, key=lambda r: r["ratio"])
        target = TARGET.get(family, 2.0)
        over = sum(r["ratio"] > target for r in rs)
        print(f"| {family} | {len(rs)} | {statistics.median(r['ratio'] for r in rs):.2f}x | "
              f"{worst['ratio']:.2f}x ({worst['params']}, {worst['kind']}, {worst['dtype']}, "
              f"n={worst['n']:.0e}, {worst['threads']} thr{', busy' if worst['busy'] else ''}) "
              f"| {over} (target {target:g}x) |")
    unstable = [r for r in rows if r["worst"] > 2.0]
    print(f"\nworst of repeats over median > 2: {len(unstable)} of {len(rows)} cells")
    overall = max(rows, key=lambda r: r["ratio"])
    print(f"WORST cell overall: {overall['family']} {overall['params']} ({overall['kind']}, "
          f"{overall['dtype']}, n={overall['n']:.0e}): {overall['ratio']:.2f}x")


# --- accuracy at the project's own samples -------------------------------------------------
def _mp_gamma_dx_da(a, x):
    """``dx/da = -(dP/da)(a, x) / p(x)``, 40 digits, on the side without cancellation."""
    a, x = mpmath.mpf(a), mpmath.mpf(x)
    dens = mpmath.exp((a - 1) * mpmath.log(x) - x - mpmath.loggamma(a))
    if x < a:
        return -mpmath.diff(lambda s: mpmath.gammainc(s, 0, x, regularized=True), a) / dens
    return mpmath.diff(lambda s: mpmath.gammainc(s, x, mpmath.inf, regularized=True), a) / dens


def _mp_beta_side(p, q, u):
    """``(du/dp, du/dq)`` for ``u ~ Beta(p, q)``, ``u <= 1/2`` given to 40 digits."""
    dens = mpmath.exp((p - 1) * mpmath.log(u) + (q - 1) * mpmath.log1p(-u) - mpmath.log(
        mpmath.beta(p, q)))
    lo, hi, sign = (0, u, -1) if u < p / (p + q) else (u, 1, 1)

    def cdf(s, r):
        return mpmath.betainc(s, r, lo, hi, regularized=True)

    return (sign * mpmath.diff(lambda s: cdf(s, q), p) / dens,
            sign * mpmath.diff(lambda r: cdf(p, r), q) / dens)


def _mp_beta_dx(a, b, la, lb):
    """``(dx/da, dx/db)`` at ``x = G_a / (G_a + G_b)`` from the exact ``log G`` (the sample's
    own point: a rounded ``x`` near 1 would lose ``1 - x``); ``x > 1/2`` through
    ``1 - x ~ Beta(b, a)``."""
    a, b, la, lb = (mpmath.mpf(v) for v in (a, b, la, lb))
    if la <= lb:
        return _mp_beta_side(a, b, 1 / (1 + mpmath.exp(lb - la)))
    dy_db, dy_da = _mp_beta_side(b, a, 1 / (1 + mpmath.exp(la - lb)))
    return -dy_da, -dy_db


def _rel(ours: float, ref, dtype=F64) -> float:
    if abs(ref) < torch.finfo(dtype).tiny:  # below the dtype's range: ours must be ~0 too
        return 0.0 if abs(ours) < 2 * torch.finfo(dtype).tiny else math.inf
    return float(abs(mpmath.mpf(ours) - ref) / abs(ref))


def _gamma_accuracy(dtype, k=4):
    """Per-sample shapes and one scalar shape broadcast over the samples (its own path)."""
    err = 0.0
    for a0 in (1e-3, 0.1, 1.0, 7.0, 10.0, 20.0, 100.0, 1e3, 1e4):
        for scalar in (False, True):
            a = torch.tensor(a0, dtype=dtype) if scalar else torch.full((k,), a0, dtype=dtype)
            a.requires_grad_()
            z = Gamma(a).rsample((k,) if scalar else (),
                                 noise=MonteCarlo(torch.Generator().manual_seed(11)))
            grads = torch.autograd.grad(z, a, torch.eye(k, dtype=dtype), is_grads_batched=True
                                        )[0] if scalar else torch.autograd.grad(z.sum(), a)[0]
            for i in range(k):
                if z[i].item() > torch.finfo(dtype).tiny:  # not clamped (gradient 0 there)
                    ref = _mp_gamma_dx_da(a.reshape(-1)[0 if scalar else i].item(), z[i].item())
                    err = max(err, _rel(grads[i].item(), ref, dtype))
    return err


def _beta_accuracy(dtype, k=3):
    """Per-sample shapes and one scalar pair broadcast over the samples (its own path)."""
    err = 0.0
    for a0, b0 in ((1e-2, 1e-2), (0.5, 0.5), (2.0, 3.0), (1.0, 30.0), (50.0, 50.0), (1e3, 1e3),
                   (1e-2, 1e3), (1e3, 1e-2), (1e4, 1.0)):
        for scalar in (False, True):
            a, b = (torch.tensor(v, dtype=dtype) if scalar else torch.full((k,), v, dtype=dtype)
                    for v in (a0, b0))
            a.requires_grad_(), b.requires_grad_()
            z = Beta(a, b).rsample((k,) if scalar else (),
                                   noise=MonteCarlo(torch.Generator().manual_seed(12)))
            eye = torch.eye(k, dtype=dtype)
            ga, gb = torch.autograd.grad(z, (a, b), eye, is_grads_batched=True) if scalar \
                else torch.autograd.grad(z.sum(), (a, b))
            src = MonteCarlo(torch.Generator().manual_seed(12))  # replay the two Gamma draws
            la, lb = (log_standard_gamma(v.detach(), torch.Size([k]), src) for v in (a, b))
            for i in range(k):
                inside = torch.finfo(dtype).tiny < z[i].item() < 1 - torch.finfo(dtype).eps / 2
                if inside and abs(la[i].item() - lb[i].item()) < 600:  # x, 1 - x > 1e-260
                    j = 0 if scalar else i  # the shapes as rounded to the dtype
                    ra, rb = _mp_beta_dx(a.reshape(-1)[j].item(), b.reshape(-1)[j].item(),
                                         la[i].item(), lb[i].item())
                    err = max(err, _rel(ga[i].item(), ra, dtype), _rel(gb[i].item(), rb, dtype))
    return err


def _student_accuracy(dtype, k=4):
    """``dt/ddf = t (1 / (2 df) - (d log G / d alpha) / 4)`` with ``eps`` and ``G`` replayed
    from the seeded source."""
    err = 0.0
    for df0 in (0.5, 2.0, 15.0, 30.0, 1e3):
        for scalar in (False, True):
            df = torch.tensor(df0, dtype=dtype) if scalar else torch.full((k,), df0, dtype=dtype)
            df.requires_grad_()
            t = StudentT(df).rsample((k,) if scalar else (),
                                     noise=MonteCarlo(torch.Generator().manual_seed(13)))
            src = MonteCarlo(torch.Generator().manual_seed(13))  # replay eps, then G
            eps = src.normal((k,), dtype, t.device)
            log_g = log_standard_gamma(df.detach().expand(k) / 2, torch.Size([k]), src)
            g = torch.autograd.grad(t, df, torch.eye(k, dtype=dtype), is_grads_batched=True)[0] \
                if scalar else torch.autograd.grad(t.sum(), df)[0]
            for i in range(k):
                nu = mpmath.mpf(df.reshape(-1)[0 if scalar else i].item())
                gm = mpmath.exp(mpmath.mpf(log_g[i].item()))
                tm = mpmath.mpf(eps[i].item()) * mpmath.sqrt(nu / (2 * gm))
                ref = tm * (1 / (2 * nu) - _mp_gamma_dx_da(nu / 2, gm) / gm / 4)
                err = max(err, _rel(g[i].item(), ref, dtype))
    return err


def _mp_vmf_dw_dkappa(w, kappa, d):
    """``dw/dkappa = -(dF/dkappa)(w) / p(w)``: the one-signed integral of the score
    ``tanh(eta) - A_d`` over the side of ``eta_w = atanh w`` (in ``w = tanh eta``, smooth)."""
    k, wm = mpmath.mpf(kappa), mpmath.mpf(w)
    a = mpmath.besseli(mpmath.mpf(d) / 2, k) / mpmath.besseli(mpmath.mpf(d) / 2 - 1, k)
    e0 = mpmath.atanh(wm)
    lc0 = mpmath.log(mpmath.cosh(e0))

    def f(e):
        return (mpmath.tanh(e) - a) * (1 - wm * wm) * mpmath.exp(
            k * (mpmath.tanh(e) - wm) - (d - 1) * (mpmath.log(mpmath.cosh(e)) - lc0))

    s = 1 / mpmath.sqrt(d + k)
    steps = [0, s / 4, s, 3 * s, 10 * s, 30 * s, 3, 10, 40, 100]
    below = wm < a
    side = [e0 - v for v in steps[::-1]] if below else [e0 + v for v in steps]
    return (-1 if below else 1) * mpmath.quad(f, side)


def _vmf_accuracy(dtype, k=4):
    """``w = x_1`` at ``mu = e_1`` (the Householder step is then the identity)."""
    err = 0.0
    torch.manual_seed(14)  # the proposals of Wood's sampler
    for d in (5, 10, 100, 1000):
        for k0 in (1e-3, 2.0, 100.0, 1e4):
            mu = torch.zeros(d, dtype=dtype)
            mu[0] = 1
            kappa = torch.full((k,), k0, dtype=dtype, requires_grad=True)
            x = VonMisesFisher(mu.expand(k, d), kappa).rsample(
                noise=MonteCarlo(torch.Generator().manual_seed(14)))
            (g,) = torch.autograd.grad(x[:, 0].sum(), kappa)
            for i in range(k):
                ref = _mp_vmf_dw_dkappa(x[i, 0].item(), kappa[i].item(), d)
                err = max(err, _rel(g[i].item(), ref, dtype))
    return err


def accuracy() -> None:
    mpmath.mp.dps = 40
    print("\n## accuracy: max relative error of dz/dtheta at the families' own samples vs "
          "40-digit mpmath\n\n| family | grid | float64 | float32 |\n|---|---|---:|---:|")
    for name, grid, fn in (("Gamma", "a in 1e-3 .. 1e4", _gamma_accuracy),
                           ("Beta", "(a, b) in 1e-2 .. 1e4, unequal too", _beta_accuracy),
                           ("StudentT", "df in 0.5 .. 1e3", _student_accuracy),
                           ("VonMisesFisher", "d in 5 .. 1000, kappa in 1e-3 .. 1e4",
                            _vmf_accuracy)):
        print(f"| {name} | {grid} | {fn(F64):.1e} | {fn(F32):.1e} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="sweep at n = 2e3, axes at n in {1e3, 1e4} (minutes, not an hour)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--family", action="append", choices=list(FAMILIES),
                    help="only these families (repeatable)")
    args = ap.parse_args()
    for name in set(FAMILIES) - set(args.family or FAMILIES):
        del FAMILIES[name]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} default threads\n")
    if not args.no_speed:
        rows = speed(args.quick, args.repeats)
        summary(rows)
    if not args.no_accuracy:
        accuracy()


if __name__ == "__main__":
    main()

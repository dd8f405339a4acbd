"""Implicit-gradient families vs torch: rsample + backward time, and gradient accuracy.

Speed: rsample + backward of n Gamma, n Beta and n Dirichlet(K=10) samples (parameters
log-uniform in [0.1, 10], float32, one parameter per sample as from an encoder), ours vs
torch.distributions, interleaved, median of --repeats.

Accuracy: max relative error of dz/dtheta against a 40-digit mpmath reference (implicit
function theorem on the regularized incomplete gamma / beta function, Student-t CDF, von
Mises CDF, vMF height CDF) at the 1%..99% quantiles over the shape grids of issue #5, in
float64 and float32 (inputs rounded to the dtype; the reference is taken at the rounded
point). torch's numbers use its own backward formulas at the same points
(``torch._standard_gamma_grad``, ``_Dirichlet_backward`` for Beta).

    python benchmarks/implicit.py [--n 1000000] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import mpmath
import scipy.special as sc
import scipy.stats as st
import torch
from torch.distributions.dirichlet import _Dirichlet_backward

from reparam.distributions import Beta, Dirichlet, Gamma
from reparam.special import (
    beta_dx_dab,
    gamma_dlogx_da,
    student_t_dt_dnu,
    vmf_dw_dkappa,
    von_mises_dtheta_dkappa,
)

mpmath.mp.dps = 40
QUANTILES = (0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99)
TINY = {torch.float64: 1e-300, torch.float32: 1e-37}


# --- speed -------------------------------------------------------------------------------
def _params(n: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.exp(torch.empty(n, k).uniform_(-2.3026, 2.3026, generator=g)).squeeze(-1)


def _time(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def speed(n: int, repeats: int) -> list[tuple[str, float, float]]:
    a, b = _params(n, 1, 0).requires_grad_(), _params(n, 1, 1).requires_grad_()
    alpha = _params(n, 10, 2).requires_grad_()
    cases = {
        "Gamma": (lambda: Gamma(a, 1.0).rsample(), lambda: torch.distributions.Gamma(a, 1.0)
                  .rsample()),
        "Beta": (lambda: Beta(a, b).rsample(), lambda: torch.distributions.Beta(a, b).rsample()),
        "Dirichlet(K=10)": (lambda: Dirichlet(alpha).rsample()[:, 0],
                            lambda: torch.distributions.Dirichlet(alpha).rsample()[:, 0]),
    }
    rows = []
    for name, (ours, theirs) in cases.items():
        times = {"ours": [], "torch": []}
        for _ in range(repeats):  # interleaved
            for who, fn in (("ours", ours), ("torch", theirs)):
                times[who].append(_time(lambda fn=fn: fn().sum().backward(), 1))
        rows.append((name, statistics.median(times["ours"]), statistics.median(times["torch"])))
    return rows


# --- accuracy ----------------------------------------------------------------------------
def _rel(ours: float, ref) -> float:
    ref = float(ref)
    if ref == 0:  # the symmetric centre (t = 0, theta = 0): the derivative is exactly 0
        return 0.0 if ours == 0 else float("inf")
    return abs(ours - ref) / abs(ref)


def _gamma_rows(dtype):
    ours_err = torch_err = 0.0
    for a in (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4):
        for q in QUANTILES:
            x = float(torch.tensor(sc.gammaincinv(a, q), dtype=dtype))
            a_d = float(torch.tensor(a, dtype=dtype))
            if x < TINY[dtype]:
                continue
            am, xm = mpmath.mpf(a_d), mpmath.mpf(x)
            dens = xm ** (am - 1) * mpmath.exp(-xm) / mpmath.gamma(am)
            part = (0, xm) if q < 0.5 else (xm, mpmath.inf)
            sign = -1 if q < 0.5 else 1
            ref = sign * mpmath.diff(lambda s, p=part: mpmath.gammainc(s, *p, regularized=True),
                                     am) / dens
            xt, at = torch.tensor(x, dtype=dtype), torch.tensor(a_d, dtype=dtype)
            ours = (xt.double() * gamma_dlogx_da(torch.log(xt.double()), at.double())).to(dtype)
            ours_err = max(ours_err, _rel(ours.item(), ref))
            torch_err = max(torch_err, _rel(torch._standard_gamma_grad(at, xt).item(), ref))
    return ours_err, torch_err


def _beta_ref(am, bm, xm, lower: bool):
    dens = xm ** (am - 1) * (1 - xm) ** (bm - 1) / mpmath.beta(am, bm)
    lo, hi, sign = (0, xm, -1) if lower else (xm, 1, 1)

    def part(s, r):
        return mpmath.betainc(s, r, lo, hi, regularized=True)

    return (sign * mpmath.diff(lambda s: part(s, bm), am) / dens,
            sign * mpmath.diff(lambda r: part(am, r), bm) / dens)


def _beta_rows(dtype):
    ours_err = torch_err = 0.0
    grid = (1e-2, 0.1, 1.0, 10.0, 300.0)
    for a in grid:
        for b in grid:
            for q in (0.01, 0.5, 0.99):
                x = float(torch.tensor(sc.betaincinv(a, b, q), dtype=dtype))
                if not TINY[dtype] < x < 1 - torch.finfo(dtype).eps:
                    continue
                a_d, b_d = (float(torch.tensor(v, dtype=dtype)) for v in (a, b))
                am, bm, xm = mpmath.mpf(a_d), mpmath.mpf(b_d), mpmath.mpf(x)
                ref_a, ref_b = _beta_ref(am, bm, xm, q < 0.5)
                da, db = beta_dx_dab(torch.tensor(float(mpmath.log(xm)), dtype=torch.float64),
                                     torch.tensor(float(mpmath.log(1 - xm)), dtype=torch.float64),
                                     torch.tensor(a_d, dtype=torch.float64),
                                     torch.tensor(b_d, dtype=torch.float64))
                da, db = da.to(dtype).item(), db.to(dtype).item()
                ours_err = max(ours_err, _rel(da, ref_a), _rel(db, ref_b))
                xs = torch.tensor([x, 1 - x], dtype=dtype)
                conc = torch.tensor([a_d, b_d], dtype=dtype)
                t_a, t_b = _Dirichlet_backward(xs, conc, torch.tensor([1.0, 0.0], dtype=dtype))
                torch_err = max(torch_err, _rel(t_a.item(), ref_a), _rel(t_b.item(), ref_b))
    return ours_err, torch_err


def _student_ref(n, tm):
    dens = mpmath.gamma((n + 1) / 2) / (mpmath.sqrt(n * mpmath.pi) * mpmath.gamma(n / 2)) \
        * (1 + tm**2 / n) ** (-(n + 1) / 2)
    return mpmath.diff(lambda m: mpmath.sign(tm) * mpmath.betainc(
        m / 2, 0.5, 0, m / (m + tm**2), regularized=True) / 2, n) / dens


def _student_rows(dtype):
    err = 0.0
    for nu in (0.1, 1.0, 10.0, 1000.0):
        for q in QUANTILES:
            t = float(torch.tensor(st.t(nu).ppf(q), dtype=dtype))
            n, tm = mpmath.mpf(float(torch.tensor(nu, dtype=dtype))), mpmath.mpf(t)
            ours = student_t_dt_dnu(torch.tensor(t, dtype=dtype),
                                    torch.tensor(float(n), dtype=dtype))
            ref = _student_ref(n, tm)
            err = max(err, _rel(ours.item(), ref))
    return err, None


def _von_mises_ref(k, a, th):
    return -mpmath.quad(lambda u: (mpmath.cos(u) - a)
                        * mpmath.exp(k * (mpmath.cos(u) - mpmath.cos(th))), [0, th])


def _von_mises_rows(dtype):
    err = 0.0
    for kappa in (1e-3, 0.1, 1.0, 10.0, 100.0, 1e3):
        k = mpmath.mpf(float(torch.tensor(kappa, dtype=dtype)))
        a = mpmath.besseli(1, k) / mpmath.besseli(0, k)
        for q in QUANTILES:
            th = mpmath.mpf(float(torch.tensor(st.vonmises(kappa).ppf(q), dtype=dtype)))
            ref = _von_mises_ref(k, a, th)
            ours = von_mises_dtheta_dkappa(torch.tensor(float(th), dtype=dtype),
                                           torch.tensor(float(k), dtype=dtype))
            err = max(err, _rel(ours.item(), ref))
    return err, None


def _vmf_ref(k, a, d, wm):
    def r(u):
        return mpmath.exp(k * (u - wm)) * ((1 - u * u) / (1 - wm * wm)) ** (mpmath.mpf(d - 3) / 2)

    lo, hi, sign = (-1, wm, -1) if wm < a else (wm, 1, 1)
    return sign * mpmath.quad(lambda u: (u - a) * r(u), [lo, hi])


def _vmf_rows(dtype):
    err = 0.0
    for d in (3, 10):
        for kappa in (0.1, 10.0, 1e3):
            k = mpmath.mpf(kappa)
            a = mpmath.besseli(d / 2, k) / mpmath.besseli(d / 2 - 1, k)
            for w in (-0.5, float(a) / 2, 0.5 * (1 + float(a))):
                wm = mpmath.mpf(float(torch.tensor(w, dtype=dtype)))
                ref = _vmf_ref(k, a, d, wm)
                ours = vmf_dw_dkappa(torch.tensor(float(wm), dtype=dtype),
                                     torch.tensor(kappa, dtype=dtype), d)
                err = max(err, _rel(ours.item(), ref))
    return err, None


ACCURACY = {"Gamma dz/dalpha, alpha in [1e-3, 1e4]": _gamma_rows,
            "Beta dz/da, dz/db, a, b in [1e-2, 300]": _beta_rows,
            "StudentT dz/ddf, df in [0.1, 1e3]": _student_rows,
            "VonMises dz/dkappa, kappa in [1e-3, 1e3]": _von_mises_rows,
            "VonMisesFisher dw/dkappa, d in {3, 10}, kappa in [0.1, 1e3]": _vmf_rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"## speed: rsample + backward, n = {args.n}, float32, {args.threads} thread(s)\n")
    print("| family | reparam s | torch s | time / torch |\n|---|---:|---:|---:|")
    for name, ours, theirs in speed(args.n, args.repeats):
        print(f"| {name} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.1f}x |")
    print("\n## accuracy: max relative error of dz/dtheta vs mpmath (40 digits)\n")
    print("| family | dtype | reparam | torch | torch / reparam |\n|---|---|---:|---:|---:|")
    for name, fn in ACCURACY.items():
        for dtype in (torch.float64, torch.float32):
            ours, theirs = fn(dtype)
            t = "n/a" if theirs is None else f"{theirs:.1e}"
            ratio = "" if theirs is None else f"{theirs / max(ours, 1e-17):.0e}x"
            print(f"| {name} | {str(dtype)[6:]} | {ours:.1e} | {t} | {ratio} |")


if __name__ == "__main__":
    main()

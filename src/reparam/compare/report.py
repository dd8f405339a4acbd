"""Figures (matplotlib Agg) and Markdown tables for the two studies."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .problems import COSTS, PARAMS  # noqa: E402

COLORS = {"pathwise": "C0", "score": "C3", "score-ema": "C1", "score-loo": "C2",
          "score-nvil": "C5", "score-cv": "C4", "measure-valued": "C7", "stl": "C8",
          "dreg": "C9"}


def _pos(x: float) -> float:
    return x if x > 1e-20 and math.isfinite(x) else math.nan


def survey_figure(result: dict, path: str | Path) -> Path:
    """One panel per (cost, parameter): per-sample variance vs k, exact lines, MC points."""
    rows = result["rows"]
    costs = list(dict.fromkeys(r["cost"] for r in rows))
    names = list(dict.fromkeys(r["estimator"] for r in rows))
    fig, axes = plt.subplots(len(costs), 2, figsize=(10, 3.2 * len(costs)), squeeze=False)
    for i, cost in enumerate(costs):
        for j, p in enumerate(PARAMS):
            ax = axes[i][j]
            for name in names:
                sel = [r for r in rows if r["cost"] == cost and r["param"] == p
                       and r["estimator"] == name]
                ks = [r["k"] for r in sel]
                c = COLORS.get(name)
                ax.plot(ks, [_pos(r["exact_variance"]) for r in sel], "-", color=c, label=name)
                ax.errorbar(ks, [_pos(r["variance"]) for r in sel],
                            yerr=[r["variance_se"] for r in sel], fmt="o", ms=3, color=c)
            ax.set_yscale("log")
            if cost != "square":
                ax.set_xscale("log")
            ax.set_title(f"{COSTS[cost].label}: d/d{p}")
            ax.set_xlabel("k")
            ax.set_ylabel("variance per sample")
            ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.suptitle("Gradient variance, z ~ N(1, 1): lines = quadrature, dots = Monte Carlo ± se")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _fmt(x: float) -> str:
    return "0" if x == 0 else f"{x:.3g}"


def survey_markdown(result: dict) -> str:
    """Per cost and parameter: exact (Monte Carlo) per-sample variance; ``*`` marks a
    score-function variant with lower exact variance than pathwise."""
    rows = result["rows"]
    cfg = result["config"]
    names = list(dict.fromkeys(r["estimator"] for r in rows))
    out = [f"## Survey problems: z ~ N({cfg['mu']}, {cfg['sigma']}^2), "
           f"S = {cfg['num_samples']} samples, "
           f"{cfg['replicas'] * cfg['repeats']} estimates per cell\n",
           "Per-sample gradient variance (S x Var): exact by quadrature, Monte Carlo in "
           "brackets. `*` = lower than pathwise.\n"]
    for cost in dict.fromkeys(r["cost"] for r in rows):
        for p in PARAMS:
            out.append(f"\n### {COSTS[cost].label}, gradient w.r.t. {p}\n")
            out.append("| k | " + " | ".join(names) + " | score function beats pathwise |")
            out.append("|---" * (len(names) + 2) + "|")
            for k in dict.fromkeys(r["k"] for r in rows if r["cost"] == cost):
                cell = {r["estimator"]: r for r in rows
                        if r["cost"] == cost and r["param"] == p and r["k"] == k}
                pw = cell.get("pathwise", {}).get("exact_variance", math.inf)
                wins = [n for n in names if n.startswith("score")
                        and cell[n]["exact_variance"] < pw]
                vals = [f"{_fmt(cell[n]['exact_variance'])}"
                        f"{'*' if n in wins else ''} ({_fmt(cell[n]['variance'])})"
                        for n in names]
                out.append(f"| {k:g} | " + " | ".join(vals) + f" | {', '.join(wins) or '-'} |")
    out += ["", "Cost: wall time per estimate (amortised over the replicas of one call) and "
            "efficiency 1 / (variance x time) relative to pathwise, median over all cells.\n",
            "| estimator | us / estimate | efficiency vs pathwise (median) |", "|---|---|---|"]
    key = lambda r: (r["cost"], r["k"], r["param"])  # noqa: E731
    ref = {key(r): r["efficiency"] for r in rows if r["estimator"] == "pathwise"}
    for n in names:
        sec = [r["seconds_per_estimate"] for r in rows if r["estimator"] == n]
        ratio = sorted(r["efficiency"] / ref[key(r)] for r in rows
                       if r["estimator"] == n and key(r) in ref
                       and math.isfinite(r["efficiency"]) and math.isfinite(ref[key(r)]))
        med = f"{ratio[len(ratio) // 2]:.3g}" if ratio else "-"
        out.append(f"| {n} | {1e6 * sum(sec) / len(sec):.2f} | {med} |")
    return "\n".join(out) + "\n"


def vae_figures(result: dict, out_dir: str | Path) -> list[Path]:
    """``vae_variance.png`` (encoder-gradient variance and SNR along training) and
    ``vae_training.png`` (test ELBO against steps and seconds)."""
    out_dir = Path(out_dir)
    rows = result["variance"]
    names = list(result["curves"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name in names:
        sel = [r for r in rows if r["estimator"] == name]
        steps = [r["step"] for r in sel]
        c = COLORS.get(name)
        axes[0].errorbar(steps, [r["variance"] for r in sel], yerr=[r["variance_se"] for r in sel],
                         marker="o", color=c, label=name)
        axes[1].plot(steps, [r["median_snr"] for r in sel], marker="o", color=c, label=name)
    axes[0].set_ylabel("total variance of encoder gradient")
    axes[1].set_ylabel("median SNR over encoder weights")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("training step (pathwise run)")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"VAE on {result['data']}: encoder gradient at fixed parameters")
    fig.tight_layout()
    paths = [out_dir / "vae_variance.png", out_dir / "vae_training.png"]
    fig.savefig(paths[0], dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for name in names:
        curve = result["curves"][name]
        for ax, key in zip(axes, ("step", "seconds"), strict=True):
            ax.plot([r[key] for r in curve], [r["test_elbo"] for r in curve],
                    color=COLORS.get(name), label=name)
    axes[0].axhline(result["target_elbo"], color="k", ls=":", lw=1, label="target")
    axes[0].set_xlabel("training step")
    axes[1].set_xlabel("training seconds (this machine)")
    axes[0].set_ylabel("test ELBO (nats)")
    lo = min(r["test_elbo"] for c in result["curves"].values() for r in c[1:] or c)
    hi = max(r["test_elbo"] for c in result["curves"].values() for r in c)
    for ax in axes:
        ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Test ELBO when the encoder is trained with each estimator")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=90)
    plt.close(fig)
    return paths


def vae_markdown(result: dict) -> str:
    cfg = result["config"]
    names = list(result["curves"])
    rows = result["variance"]
    steps = list(dict.fromkeys(r["step"] for r in rows))
    out = [f"## VAE on {result['data']}: latent {cfg['latent_dim']}, hidden {cfg['hidden']}, "
           f"batch {cfg['batch_size']}, S = {cfg['num_samples']} samples, {cfg['steps']} steps\n",
           f"Total variance of the encoder gradient on one batch ({cfg['repeats']} estimates at "
           "fixed parameters of the pathwise run), ratio to pathwise in brackets, and the "
           "median SNR over encoder weights.\n",
           "| estimator | " + " | ".join(f"variance @ step {s}" for s in steps)
           + " | " + " | ".join(f"SNR @ {s}" for s in steps) + " |",
           "|---" * (1 + 2 * len(steps)) + "|"]
    for name in names:
        cell = {r["step"]: r for r in rows if r["estimator"] == name}
        ref = {r["step"]: r for r in rows if r["estimator"] == "pathwise"}
        var = [f"{cell[s]['variance']:.3g} ({cell[s]['variance'] / ref[s]['variance']:.3g}x)"
               for s in steps]
        snr = [f"{cell[s]['median_snr']:.3g}" for s in steps]
        out.append(f"| {name} | " + " | ".join(var + snr) + " |")
    out += ["", f"Steps and seconds to reach test ELBO {result['target_elbo']:.2f} nats (what "
            f"pathwise reaches at {cfg['target_fraction']:.0%} of the run; evaluated every "
            f"{cfg['eval_every']} steps):\n",
            "| estimator | steps to target | seconds to target | s / step | final test ELBO |",
            "|---|---|---|---|---|"]
    for name in names:
        s = result["summary"][name]
        st = "not reached" if s["steps_to_target"] is None else str(s["steps_to_target"])
        sec = "-" if s["seconds_to_target"] is None else f"{s['seconds_to_target']:.1f}"
        out.append(f"| {name} | {st} | {sec} | {s['seconds_per_step'] * 1e3:.1f} ms | "
                   f"{s['final_test_elbo']:.2f} |")
    return "\n".join(out) + "\n"

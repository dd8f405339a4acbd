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
    return "\n".join(out) + "\n"

"""Study 3: discrete estimators on enumerable problems, against exact gradients.

For every problem of :data:`~reparam.compare.discrete_problems.PROBLEMS` and every estimator
that applies, ``replicas x repeats`` gradient estimates of the logits at fixed parameters
(:func:`~reparam.diagnostics.gradient_stats`): total variance, median SNR, time per
estimate, and the z-score of the mean against the exact gradient by enumeration. The
relaxations (Gumbel-softmax, straight-through) get their bias ``|mean - exact| / |exact|``
at each temperature of a grid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from ..diagnostics import gradient_stats
from ..estimators import GumbelSoftmax, get
from .discrete_problems import BIASED, EVALS_PER_SAMPLE, PROBLEMS, Problem, estimators_for

if TYPE_CHECKING:
    from ..estimators import Estimator

TEMPERATURES = (0.1, 0.25, 0.5, 1.0, 2.0)
STATEFUL_WARMUP = 10


@dataclass
class DiscreteStudyConfig:
    replicas: int = 1000
    repeats: int = 8
    seed: int = 0
    device: str = "cpu"
    problems: tuple[str, ...] = tuple(PROBLEMS)
    temperatures: tuple[float, ...] = field(default=TEMPERATURES)


def measure(problem: Problem, est: Estimator, num_samples: int, cfg: DiscreteStudyConfig) -> dict:
    """Statistics of the logits' gradient estimates, vs the exact gradient."""
    value, exact = problem.exact()
    logits = problem.replicas(cfg.replicas).to(cfg.device).detach().requires_grad_()
    exact = exact.to(cfg.device)

    def surrogate():
        return est(problem.cost, problem.dist(logits), num_samples).sum()

    stats = gradient_stats(surrogate, {"logits": logits}, cfg.repeats, warmup=STATEFUL_WARMUP,
                           replica_dim=0)
    s = stats.params["logits"]
    ref = exact.to(torch.float64)
    diff = s.mean - ref
    z = diff / s.mean_se.clamp_min(1e-300)
    norm = float(ref.norm())
    return {"total_variance": s.total_variance, "median_snr": float(s.snr.flatten().median()),
            "seconds_per_estimate": stats.seconds_per_estimate,
            "max_abs_z": float(z.abs().max()), "relative_bias": float(diff.norm()) / norm,
            "relative_bias_se": float(s.mean_se.norm()) / norm,
            "estimates": stats.estimates}


def _rows(cfg: DiscreteStudyConfig, bar) -> list[dict]:
    rows = []
    for pname in cfg.problems:
        problem = PROBLEMS[pname]()
        names = dict(estimators_for(problem))
        if not problem.multi_sample:
            names.update(BIASED)
        for name, S in names.items():
            r = measure(problem, get(name), S, cfg)
            rows.append({"problem": pname, "estimator": name, "num_samples": S,
                         "f_evals": S * EVALS_PER_SAMPLE.get(name, 1),
                         "biased": name in BIASED, **r})
            bar.update()
    return rows


def _bias_rows(cfg: DiscreteStudyConfig, bar) -> list[dict]:
    rows = []
    for pname in cfg.problems:
        problem = PROBLEMS[pname]()
        if problem.multi_sample:
            continue
        for t in cfg.temperatures:
            for st in (False, True):
                r = measure(problem, GumbelSoftmax(t, straight_through=st), 2, cfg)
                rows.append({"problem": pname, "temperature": t,
                             "estimator": "straight-through" if st else "gumbel", **r})
                bar.update()
    return rows


def run_discrete_study(cfg: DiscreteStudyConfig | None = None, progress: bool = True) -> dict:
    """Every (problem, estimator), and the relaxations' bias by temperature; JSON-ready."""
    cfg = cfg or DiscreteStudyConfig()
    torch.manual_seed(cfg.seed)
    n = sum(len(estimators_for(PROBLEMS[p]())) + (0 if PROBLEMS[p]().multi_sample
            else len(BIASED) + 2 * len(cfg.temperatures)) for p in cfg.problems)
    bar = tqdm(total=n, desc="discrete", disable=not progress)
    rows, bias = _rows(cfg, bar), _bias_rows(cfg, bar)
    bar.close()
    config = asdict(cfg)
    config["problems"], config["temperatures"] = list(cfg.problems), list(cfg.temperatures)
    return {"study": "discrete", "config": config, "rows": rows, "bias": bias}


def discrete_markdown(result: dict) -> str:
    cfg = result["config"]
    out = ["## Discrete estimators on enumerable problems\n",
           f"{cfg['replicas'] * cfg['repeats']} estimates per cell at fixed logits; exact "
           "gradients by enumeration. Total variance of one estimate (sum over the logits), "
           "median SNR over the logits, |z| of the mean against the exact gradient (> 5 = "
           "biased), relative bias |mean - exact| / |exact|.\n"]
    for pname in dict.fromkeys(r["problem"] for r in result["rows"]):
        out += [f"\n### {pname}\n", "| estimator | samples | f evals | total variance | "
                "variance x evals | median SNR | us / estimate | max abs z | relative bias |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in result["rows"] if r["problem"] == pname):
            mark = " (biased)" if r["biased"] else ""
            out.append(f"| {r['estimator']}{mark} | {r['num_samples']} | {r['f_evals']} | "
                       f"{r['total_variance']:.4g} | {r['total_variance'] * r['f_evals']:.4g} | "
                       f"{r['median_snr']:.3g} | {1e6 * r['seconds_per_estimate']:.2f} | "
                       f"{r['max_abs_z']:.1f} | {r['relative_bias']:.3f} |")
    out += ["\n### Relaxations: bias by temperature (2 samples per estimate)\n",
            "| problem | estimator | " + " | ".join(f"T = {t:g}" for t in cfg["temperatures"])
            + " |", "|---|---|" + "---|" * len(cfg["temperatures"])]
    bias = result["bias"]
    for key in dict.fromkeys((r["problem"], r["estimator"]) for r in bias):
        cells = [r for r in bias if (r["problem"], r["estimator"]) == key]
        vals = [f"{r['relative_bias']:.3f} ± {r['relative_bias_se']:.3f}" for r in cells]
        out.append(f"| {key[0]} | {key[1]} | " + " | ".join(vals) + " |")
    return "\n".join(out) + "\n"


def discrete_figure(result: dict, path: str | Path) -> object:
    """Left: total variance per estimator and problem (log); right: relaxation bias vs T."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = list(dict.fromkeys(r["problem"] for r in result["rows"]))
    fig, axes = plt.subplots(1, len(problems) + 1, figsize=(4.2 * (len(problems) + 1), 3.8))
    for ax, pname in zip(axes, problems, strict=False):
        sel = [r for r in result["rows"] if r["problem"] == pname]
        ax.scatter([r["total_variance"] for r in sel], range(len(sel)),
                   c=["C3" if r["biased"] else "C0" for r in sel])
        ax.set_yticks(range(len(sel)), [r["estimator"] for r in sel], fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(alpha=0.3, which="both")
        ax.set_title(pname, fontsize=9)
        ax.set_xlabel("total variance (red: biased)")
    ax = axes[-1]
    for key in dict.fromkeys((r["problem"], r["estimator"]) for r in result["bias"]):
        cells = [r for r in result["bias"] if (r["problem"], r["estimator"]) == key]
        ax.errorbar([r["temperature"] for r in cells], [r["relative_bias"] for r in cells],
                    yerr=[r["relative_bias_se"] for r in cells], marker="o", label=" ".join(key))
    ax.set_xscale("log")
    ax.set_xlabel("temperature")
    ax.set_ylabel("|mean - exact| / |exact|")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

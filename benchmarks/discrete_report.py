"""Tables and figures of benchmarks/discrete.py."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PUBLISHED = ("Published (Grathwohl et al. 2018, best train ELBO after 2M steps of batch 24, "
             "one-layer linear): NVIL -112.5, MuProp -111.7, REBAR -111.6, Concrete -111.3, "
             "RELAX -111.20; nonlinear: REBAR -81.01, RELAX -78.13.")


def _ms(r: dict, timing: dict | None, name: str) -> float:
    """ms / step: interleaved (``timing``) if measured, else the run's own clock."""
    if timing and name in timing:
        return timing[name]
    last = r["history"][-1]
    return 1e3 * last["seconds"] / max(last["step"], 1)


def _at_seconds(history: list[dict], budget: float, ms: float) -> dict:
    """The last evaluation row within ``budget`` training seconds at ``ms`` per step."""
    rows = [r for r in history if r["step"] * ms / 1e3 <= budget + 1e-9]
    return rows[-1] if rows else history[0]


def _variance_rows(history: list[dict], columns: int = 5) -> list[dict]:
    """At most ``columns`` evaluation rows, evenly spaced from the first to the last."""
    if len(history) <= columns:
        return history
    picks = sorted({round(i * (len(history) - 1) / (columns - 1)) for i in range(columns)})
    return [history[i] for i in picks]


def _steps_table(arch: str, rows: dict, cfg: dict, timing: dict | None) -> list[str]:
    marks = [h["step"] for h in _variance_rows(next(iter(rows.values()))["history"])]
    out = [f"\n### {arch}: same number of steps ({cfg['steps']}, batch {cfg['batch_size']})\n",
           "| estimator | train ELBO (all 50k) | test bound k=" + str(cfg["bound_k"])
           + f" ({cfg.get('bound_examples') or 10000} imgs) | test NLL k={cfg['nll_k']} "
           f"({cfg['nll_examples']} imgs) | "
           + " | ".join(f"log10 enc. var @ {step}" for step in marks)
           + " | ms / step | steps / s | vs rloo |",
           "|---" * (7 + len(marks)) + "|"]
    ref_ms = _ms(rows["rloo"], timing, "rloo") if "rloo" in rows else math.nan
    for name, r in rows.items():
        ms = _ms(r, timing, name)
        by_step = {h["step"]: h["log10_encoder_var"] for h in r["history"]}
        var = " | ".join(f"{by_step[s]:.2f}" if s in by_step else "" for s in marks)
        out.append(f"| {name} | {r['train_elbo']:.2f} | {r['test_bound']:.2f} | "
                   f"{r['test_nll']:.2f} | {var} | {ms:.1f} | {1e3 / ms:.0f} | {ms / ref_ms:.2f} |")
    return out


def _budget_table(arch: str, entry: dict, cfg: dict, timing: dict | None) -> list[str]:
    if "budget" in entry:
        rows = entry["budget"]
        out = [f"\n### {arch}: same wall-clock budget (fresh runs)\n",
               "| estimator | steps | train ELBO (all 50k) | test bound (10k) | test NLL |",
               "|---|---|---|---|---|"]
        for name, r in rows.items():
            out.append(f"| {name} | {r['history'][-1]['step']} | {r['train_elbo']:.2f} | "
                       f"{r['test_bound']:.2f} | {r['test_nll']:.2f} |")
        return out
    rows = entry["steps"]
    ms = {name: _ms(r, timing, name) for name, r in rows.items()}
    budget = min(r["history"][-1]["step"] * ms[name] / 1e3 for name, r in rows.items())
    clock = "interleaved ms / step" if timing else "each run's own clock"
    out = [f"\n### {arch}: same wall-clock budget ({budget:.0f} training seconds at {clock}, "
           "the fastest run's total; each curve read at its last evaluation within it)\n",
           "| estimator | steps | train ELBO (5k subset) | test bound k=100 "
           f"({cfg.get('curve_examples', 1000)} imgs) |",
           "|---|---|---|---|"]
    for name, r in rows.items():
        h = _at_seconds(r["history"], budget, ms[name])
        out.append(f"| {name} | {h['step']} | {h['train_elbo_5k']:.2f} | "
                   f"{h['test_bound100']:.2f} |")
    return out


def markdown(result: dict) -> str:
    cfg = result["config"]
    out = ["## Binary-latent VAE on statically binarized MNIST (200 Bernoulli latents)\n",
           f"Machine: {result['machine']}. Recipe: batch {cfg['batch_size']}, Adam {cfg['lr']:g} "
           f"(networks), SGD {cfg['prior_lr']:g} (prior logits); multi-sample K = {cfg['iw_k']}. "
           "Train ELBO and test bound are lower bounds on log p(x) (higher is better); "
           "test NLL = -log p(x) estimate (lower is better).", PUBLISHED]
    for arch, entry in result["archs"].items():
        timing = result.get("timing", {}).get(arch)
        out += _steps_table(arch, entry["steps"], cfg, timing)
        out += _budget_table(arch, entry, cfg, timing)
    return "\n".join(out) + "\n"


def figures(result: dict, out_dir: Path) -> list[Path]:
    paths = []
    for key, label in (("step", "training step"),
                       ("seconds", "training seconds (steps x ms / step)")):
        archs = result["archs"]
        fig, axes = plt.subplots(1, len(archs), figsize=(6 * len(archs), 4), squeeze=False)
        for ax, (arch, entry) in zip(axes[0], archs.items(), strict=True):
            timing = result.get("timing", {}).get(arch)
            for i, (name, r) in enumerate(entry["steps"].items()):
                h, ms = r["history"], _ms(r, timing, name)
                xs = [x["step"] if key == "step" else x["step"] * ms / 1e3 for x in h]
                ax.plot(xs, [x["train_elbo_5k"] for x in h], marker=".", label=name,
                        color=f"C{i % 10}", ls="-" if i < 10 else "--")
            later = [x["train_elbo_5k"] for r in entry["steps"].values()
                     for x in r["history"] if x["step"] > 0]
            if later and math.isfinite(min(later)):  # the start (-213) would flatten the rest
                ax.set_ylim(bottom=min(later) - 2.0)
            ax.set_xlabel(label)
            ax.set_ylabel("train ELBO (5k subset, nats)")
            ax.set_title(arch)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        path = Path(out_dir) / f"discrete_{'steps' if key == 'step' else 'seconds'}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths

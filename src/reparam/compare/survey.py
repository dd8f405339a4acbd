"""Study 1: the survey's test problems, Monte Carlo next to quadrature.

For each cost ``f(z; k)`` of :data:`~reparam.compare.problems.COSTS`, each ``k`` of its grid
and each estimator, the gradient of ``E_{N(mu, sigma^2)}[f]`` is estimated ``replicas x
repeats`` times (replicas run as one batch, see :func:`~reparam.diagnostics.gradient_stats`)
and the per-sample variance ``S x Var`` is compared with the exact value by quadrature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from ..diagnostics import gradient_stats
from ..distributions import Normal
from ..estimators import get
from .problems import COSTS, PARAMS, exact

ESTIMATORS = ("pathwise", "score", "score-ema", "score-loo", "score-cv", "measure-valued")
STATEFUL = {"score-ema", "score-cv"}


@dataclass
class SurveyConfig:
    mu: float = 1.0
    sigma: float = 1.0
    num_samples: int = 4
    replicas: int = 1000
    repeats: int = 4
    warmup: int = 10
    seed: int = 0
    device: str = "cpu"
    costs: tuple[str, ...] = tuple(COSTS)
    estimators: tuple[str, ...] = ESTIMATORS
    grid_points: int | None = None   # use every ``len(grid) // grid_points``-th k (tests)


def _grid(name: str, points: int | None) -> tuple[float, ...]:
    grid = COSTS[name].grid
    if points is None or points >= len(grid):
        return grid
    step = len(grid) // points
    return grid[::step][:points]


def monte_carlo(cfg: SurveyConfig, cost_name: str, k: float, estimator: str) -> dict:
    """Statistics of ``replicas x repeats`` gradient estimates at ``(mu, sigma)``."""
    dev = torch.device(cfg.device)
    mu = torch.full((cfg.replicas,), cfg.mu, dtype=torch.float64, device=dev, requires_grad=True)
    sigma = torch.full_like(mu, cfg.sigma).requires_grad_()
    cost, est = COSTS[cost_name], get(estimator)

    def surrogate():
        return est(lambda z: cost.f(z, k, torch), Normal(mu, sigma), cfg.num_samples).sum()

    warmup = cfg.warmup if estimator in STATEFUL else 0
    stats = gradient_stats(surrogate, {"mu": mu, "sigma": sigma}, cfg.repeats,
                           warmup=warmup, replica_dim=0)
    S = cfg.num_samples
    out = {}
    for p in PARAMS:
        s = stats.params[p]
        out[p] = {"mean": float(s.mean), "mean_se": float(s.mean_se),
                  "variance": S * float(s.variance), "variance_se": S * float(s.variance_se),
                  "snr": float(s.snr), "snr_se": float(s.snr_se),
                  "efficiency": stats.efficiency(p)}
    out["seconds_per_estimate"] = stats.seconds_per_estimate
    return out


def run_survey(cfg: SurveyConfig | None = None, progress: bool = True) -> dict:
    """Every (cost, k, estimator): exact and Monte Carlo figures; a JSON-ready dict."""
    cfg = cfg or SurveyConfig()
    torch.manual_seed(cfg.seed)
    rows = []
    jobs = [(c, k) for c in cfg.costs for k in _grid(c, cfg.grid_points)]
    bar = tqdm(total=len(jobs) * len(cfg.estimators), desc="survey", disable=not progress)
    for cost_name, k in jobs:
        ref = exact(COSTS[cost_name], k, cfg.mu, cfg.sigma, cfg.num_samples)
        for name in cfg.estimators:
            mc = monte_carlo(cfg, cost_name, k, name)
            for p in PARAMS:
                rows.append({"cost": cost_name, "label": COSTS[cost_name].label, "k": k,
                             "estimator": name, "param": p,
                             "exact_gradient": ref["gradient"][p],
                             "exact_variance": ref[name][p], **mc[p],
                             "seconds_per_estimate": mc["seconds_per_estimate"]})
            bar.update()
    bar.close()
    config = asdict(cfg)
    config["costs"], config["estimators"] = list(cfg.costs), list(cfg.estimators)
    return {"study": "survey", "config": config, "rows": rows}

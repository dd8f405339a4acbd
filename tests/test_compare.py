"""reparam compare: quadrature against closed forms, Monte Carlo against quadrature, the CLI."""

from __future__ import annotations

import json
import math

import pytest

from reparam.compare.cli import main
from reparam.compare.problems import COSTS, exact
from reparam.compare.survey import SurveyConfig, run_survey


def _closed_gradient(cost, k, mu, sigma):
    if cost == "square":
        return 2 * (mu - k), 2 * sigma
    if cost == "exp":  # E = a^(-1/2) exp(-k mu^2 / a), a = 1 + 2 k sigma^2
        a = 1 + 2 * k * sigma**2
        e = math.exp(-k * mu**2 / a) / math.sqrt(a)
        return e * (-2 * k * mu / a), e * (-2 * k * sigma / a + 4 * k * k * sigma * mu**2 / a**2)
    d = math.exp(-k * k * sigma**2 / 2)  # cos: E = cos(k mu) exp(-k^2 sigma^2 / 2)
    return -k * math.sin(k * mu) * d, -k * k * sigma * math.cos(k * mu) * d


@pytest.mark.parametrize("cost", list(COSTS))
def test_quadrature_gradients_match_closed_forms(cost):
    for k in COSTS[cost].grid[::3]:
        got = exact(COSTS[cost], k, 1.0, 1.0, 4)
        want = _closed_gradient(cost, k, 1.0, 1.0)
        assert got["gradient"]["mu"] == pytest.approx(want[0], rel=1e-7, abs=1e-10)
        assert got["gradient"]["sigma"] == pytest.approx(want[1], rel=1e-7, abs=1e-10)


def test_quadrature_closed_form_variances_square():
    """(z - k)^2: pathwise Var_mu = 4 sigma^2, Var_sigma = 4 (mu - k)^2 + 8 sigma^2;
    measure-valued Var_mu = 0 at k = mu (the two coupled evaluations cancel)."""
    for k in (-2.0, 1.0, 3.0):
        got = exact(COSTS["square"], k, 1.0, 1.0, 4)
        assert got["pathwise"]["mu"] == pytest.approx(4.0, rel=1e-8)
        assert got["pathwise"]["sigma"] == pytest.approx(4 * (1 - k) ** 2 + 8, rel=1e-8)
    assert exact(COSTS["square"], 1.0, 1.0, 1.0, 4)["measure-valued"]["mu"] == 0.0


def test_monte_carlo_agrees_with_quadrature():
    cfg = SurveyConfig(grid_points=2, replicas=1000, repeats=4)
    result = run_survey(cfg, progress=False)
    assert len(result["rows"]) == 3 * 2 * 6 * 2
    for r in result["rows"]:
        where = (r["cost"], r["k"], r["estimator"], r["param"])
        tol = 5 * r["variance_se"] + 1e-9 * abs(r["exact_variance"]) + 1e-20
        assert abs(r["variance"] - r["exact_variance"]) <= tol, where
        assert abs(r["mean"] - r["exact_gradient"]) <= 5 * r["mean_se"] + 1e-12, where


def test_cli_writes_outputs(tmp_path):
    out = tmp_path / "cmp"
    rc = main(["--study", "all", "--out", str(out), "--quiet", "--grid-points", "1",
               "--replicas", "200", "--steps", "30", "--eval-every", "10", "--repeats", "8",
               "--estimators", "pathwise", "score", "score-loo"])
    assert rc == 0
    for name in ("compare.json", "compare.md", "survey.png", "vae_variance.png",
                 "vae_training.png"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "compare.json").read_text())
    assert set(data) == {"survey", "vae", "discrete"}
    var = {r["estimator"]: r["variance"] for r in data["vae"]["variance"] if r["step"] == 30}
    assert var["score"] > 10 * var["pathwise"]      # REINFORCE is far noisier on the VAE
    md = (out / "compare.md").read_text()
    assert "score function beats pathwise" in md and "steps to target" in md


def test_cli_rejects_unknown_study(tmp_path):
    with pytest.raises(SystemExit):
        main(["--study", "bogus", "--out", str(tmp_path)])


@pytest.mark.slow
def test_full_survey_grid_agrees_with_quadrature():
    """The default study (every k of every cost): Monte Carlo within 5 se of quadrature."""
    result = run_survey(SurveyConfig(), progress=False)
    for r in result["rows"]:
        where = (r["cost"], r["k"], r["estimator"], r["param"])
        tol = 5 * r["variance_se"] + 1e-9 * abs(r["exact_variance"]) + 1e-20
        assert abs(r["variance"] - r["exact_variance"]) <= tol, where
        assert abs(r["mean"] - r["exact_gradient"]) <= 5 * r["mean_se"] + 1e-12, where


@pytest.mark.slow
def test_vae_variance_ordering():
    """After some training: pathwise < leave-one-out < plain score function, each by > 5 se,
    and plain REINFORCE needs more steps than pathwise to reach the target ELBO."""
    from reparam.compare.vae_study import VAEStudyConfig, run_vae_study

    cfg = VAEStudyConfig(steps=600, checkpoints=2, repeats=60,
                         estimators=("pathwise", "score", "score-loo"))
    result = run_vae_study(cfg, progress=False)
    last = {r["estimator"]: r for r in result["variance"] if r["step"] == 600}
    for lo, hi in (("pathwise", "score-loo"), ("score-loo", "score")):
        gap = last[hi]["variance"] - last[lo]["variance"]
        assert gap > 5 * math.hypot(last[hi]["variance_se"], last[lo]["variance_se"]), (lo, hi)
    steps = {n: s["steps_to_target"] for n, s in result["summary"].items()}
    assert steps["pathwise"] is not None, steps  # else the comparison below holds vacuously
    assert steps["score"] is None or steps["score"] > steps["pathwise"]

"""The discrete study: exact gradients against independent formulas, the study, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from reparam.compare.cli import main
from reparam.compare.discrete import DiscreteStudyConfig, discrete_markdown, run_discrete_study
from reparam.compare.discrete_problems import PROBLEMS

D64 = torch.float64


def test_bernoulli_exact_gradient_is_sigmoid_prime_times_conditional_difference():
    """``dE/dphi_i = s'(phi_i) (E[f | z_i = 1] - E[f | z_i = 0])``."""
    p = PROBLEMS["bernoulli10"]()
    _, grad = p.exact()
    z = p.states()
    probs = torch.sigmoid(p.logits)
    q = (z * probs + (1 - z) * (1 - probs)).prod(-1)
    f = p.cost(z.unsqueeze(1)).squeeze(1)
    for i in range(10):
        on, off = z[:, i] == 1, z[:, i] == 0
        e1 = (q[on] * f[on]).sum() / q[on].sum()
        e0 = (q[off] * f[off]).sum() / q[off].sum()
        assert float(grad[i]) == pytest.approx(float(probs[i] * (1 - probs[i]) * (e1 - e0)),
                                               rel=1e-10, abs=1e-14)


def test_categorical_exact_gradient_is_the_score_expectation():
    """``dE/dlogits = sum_z q(z) f(z) (z - theta)`` (``z`` one-hot)."""
    p = PROBLEMS["categorical3x4"]()
    _, grad = p.exact()
    z = p.states()
    theta = torch.softmax(p.logits, -1)
    q = (z * theta).sum(-1).prod(-1)
    f = p.cost(z.unsqueeze(1)).squeeze(1)
    want = (q[:, None, None] * f[:, None, None] * (z - theta)).sum(0)
    assert torch.allclose(grad, want, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", ["bernoulli4-iw3", "categorical2x3-iw3"])
def test_multi_sample_exact_gradient_matches_finite_differences(name):
    p = PROBLEMS[name]()
    _, grad = p.exact()
    h = 1e-6
    for idx in [(0,), (len(p.logits) - 1,)] if p.kind == "bernoulli" else [(0, 0), (1, 2)]:
        vals = []
        for sign in (1, -1):
            q = PROBLEMS[name]()
            q.logits = q.logits.clone()
            q.logits[idx] += sign * h
            vals.append(q.exact()[0])
        assert float(grad[idx]) == pytest.approx((vals[0] - vals[1]) / (2 * h), rel=1e-6, abs=1e-9)


def test_study_flags_only_the_biased_estimators():
    cfg = DiscreteStudyConfig(replicas=300, repeats=4, problems=("bernoulli10", "bernoulli4-iw3"),
                              temperatures=(0.1, 1.0))
    result = run_discrete_study(cfg, progress=False)
    for r in result["rows"]:
        assert (r["max_abs_z"] > 5) == r["biased"], (r["problem"], r["estimator"], r["max_abs_z"])
        assert r["total_variance"] > 0 and r["seconds_per_estimate"] > 0
    bias = {(r["estimator"], r["temperature"]): r["relative_bias"] for r in result["bias"]}
    assert bias[("gumbel", 0.1)] < bias[("gumbel", 1.0)]
    md = discrete_markdown(result)
    assert "bernoulli4-iw3" in md and "bias by temperature" in md


def test_cli_discrete_study(tmp_path):
    out = tmp_path / "cmp"
    assert main(["--study", "discrete", "--out", str(out), "--quiet", "--replicas", "100",
                 "--repeats", "4"]) == 0
    data = json.loads((out / "compare.json").read_text())
    assert set(data) == {"discrete"} and (out / "discrete.png").stat().st_size > 0
    names = {r["estimator"] for r in data["discrete"]["rows"]}
    assert {"disarm", "rebar", "relax", "vimco", "disarm-iw", "gumbel"} <= names

"""The discrete study at a binary-latent VAE: every estimator at fixed checkpoints."""

import math

from reparam.compare.cli import main
from reparam.compare.discrete_model import (
    DiscreteModelConfig,
    discrete_model_figure,
    discrete_model_markdown,
    run_discrete_model_study,
)


def test_discrete_study_at_a_binary_latent_model(tmp_path):
    cfg = DiscreteModelConfig(latent_dim=4, checkpoints=(0, 1), repeats=4, batch_size=32)
    result = run_discrete_model_study(cfg)
    rows = result["rows"]
    assert len(rows) == 2 * len(cfg.estimators)
    assert all(math.isfinite(r["log10_total_variance"]) and r["seconds_per_estimate"] > 0
               for r in rows)
    by = {(r["epoch"], r["estimator"]): r for r in rows}
    # DisARM integrates ARM's uniform out: never more variance (a margin for 4 estimates)
    assert by[(1, "disarm")]["log10_total_variance"] <= by[(1, "arm")]["log10_total_variance"] + 0.5
    assert "| 1 | disarm | elbo | 2 |" in discrete_model_markdown(result)
    discrete_model_figure(result, tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 0


def test_cli_flag_adds_the_model_part(tmp_path):
    assert main(["--study", "discrete", "--out", str(tmp_path), "--quiet", "--replicas", "20",
                 "--repeats", "4", "--model-checkpoints", "0"]) == 0
    assert (tmp_path / "discrete_model.png").is_file()
    assert "Discrete estimators at a model" in next(tmp_path.glob("*.md")).read_text()

"""The committed benchmark configs parse and build their models."""

from pathlib import Path

import pytest

from reparam.config import TrainConfig
from reparam.vae.training import build_model

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_builds(path):
    config = TrainConfig.load(path)
    model = build_model(config, 784, (1, 28, 28))
    assert sum(p.numel() for p in model.parameters()) > 0

"""TrainConfig: types, names, ranges and combinations refused with the key named."""

import json
import math

import pytest

from reparam.config import FIXED_ON_RESUME, TrainConfig
from reparam.vae.factory import DEFAULTS


@pytest.mark.parametrize("key, value, expected", [
    ("device", 5, "'device' must be a string"),
    ("hidden", 16, "'hidden' must be a list of integers"),
    ("hidden", [16, True], "'hidden' must be a list of integers"),
    ("lr", True, "'lr' must be a number"),
    ("epochs", 2.0, "'epochs' must be an integer"),
    ("compile", "yes", "'compile' must be a boolean"),
    ("fused", 1, "'fused' must be a boolean"),
    ("time_limit", True, "'time_limit' must be a number or a string"),
    ("seed", None, "'seed' must be an integer"),
    ("free_bits", -1.0, "'free_bits' must be a finite number >= 0"),
    ("free_bits", math.nan, "'free_bits' must be a finite number >= 0"),
    ("lr", math.inf, "'lr' must be a positive finite number"),
    ("beta", math.inf, "'beta' must be a finite number"),
    ("kl", "nope", "'kl' must be one of"),
    ("posterior", "nope", "unknown posterior 'nope'"),
    ("prior", "nope", "unknown prior 'nope'"),
    ("likelihood", "nope", "unknown likelihood 'nope'"),
    ("estimator", "nope", "unknown estimator 'nope'"),
    ("activation", "nope", "unknown activation 'nope'"),
    ("encoder", "nope", "unknown encoder 'nope'"),
    ("binarize", "nope", "unknown binarize 'nope'"),
    ("objective", "nope", "'objective' must be one of"),
])
def test_bad_values_name_the_key(key, value, expected):
    with pytest.raises(ValueError, match=expected):
        TrainConfig(**{key: value})


@pytest.mark.parametrize("changes, expected", [
    (dict(fused=True, compile=True), "'fused' and 'compile' exclude each other"),
    (dict(objective="iwae", estimator="stl"), "biases the IWAE gradient"),
    (dict(estimator="dreg"), "multi-sample estimator"),
    (dict(estimator="iwae"), "multi-sample estimator"),
])
def test_combinations(changes, expected):
    with pytest.raises(ValueError, match=expected):
        TrainConfig(**changes)


def test_accepted_forms():
    assert TrainConfig(time_limit=90).time_limit == 90          # seconds
    assert TrainConfig(hidden=(32, 16)).hidden == [32, 16]      # a tuple of widths is a list
    assert TrainConfig(lr=1).lr == 1                            # an int is a number
    TrainConfig(objective="iwae", estimator="dreg")
    TrainConfig(objective="iwae", estimator="iwae")
    TrainConfig(iwae_from=0.5, estimator="dreg")


@pytest.mark.parametrize("suffix, text, expected", [
    (".toml", "device = 5\n", "'device' must be a string"),
    (".toml", "hidden = 16\n", "'hidden' must be a list of integers"),
    (".toml", "lr = true\n", "'lr' must be a number"),
    (".toml", 'compile = "yes"\n', "'compile' must be a boolean"),
    (".toml", "time_limit = true\n", "'time_limit' must be a number or a string"),
    (".json", "null", "expected a table of settings, got NoneType"),
    (".json", "[1, 2]", "expected a table of settings, got list"),
    (".json", '{"free_bits": -1}', "'free_bits' must be a finite number >= 0"),
])
def test_config_files_name_the_file_and_key(tmp_path, suffix, text, expected):
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    with pytest.raises(ValueError, match=expected) as err:
        TrainConfig.load(path)
    assert str(path) in str(err.value)


def test_defaults_live_in_one_place():
    defaults = TrainConfig.defaults()
    assert defaults == TrainConfig().to_dict()
    assert all(DEFAULTS[k] == defaults[k] for k in DEFAULTS)  # the factory takes them
    import inspect

    from reparam.vae import VAE
    sig = inspect.signature(VAE.__init__).parameters
    assert sig["latent_dim"].default == defaults["latent_dim"]
    assert list(sig["hidden"].default) == defaults["hidden"]
    assert set(FIXED_ON_RESUME) <= set(defaults)


def test_round_trip_through_json(tmp_path):
    config = TrainConfig(hidden=[8], fused=False, time_limit="2m")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    assert TrainConfig.load(path) == config

"""TrainConfig: types, names, ranges and combinations refused with the key named; any
input (hypothesis) gives a config or a ValueError naming the key, nothing else."""

import json
import math
from dataclasses import fields as _fields

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    ("conv_channels", [0, 0], "'conv_channels' must be two positive integers"),
    ("conv_channels", [32], "'conv_channels' must be two positive integers"),
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


# ---------------------------------------------------------------- property-based

KEYS = [f.name for f in _fields(TrainConfig)]
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "auto", "cpu", "cuda:x", "90s", "2h", "-1m", "tanh", "relu", "iaf",
                     "iwae", "dreg", "mc", "cosine", "train+valid", "rollback", "stop", "dynamic",
                     "nope"]),
    st.text(max_size=6), st.lists(st.integers(-2, 64), max_size=3),
    st.lists(st.floats(0, 4), min_size=1, max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, min_size=1, max_size=3))
def test_any_settings_give_a_config_or_a_value_error_naming_a_key(values):
    try:
        config = TrainConfig.from_dict(values)
    except ValueError as err:
        assert any(key in str(err) for key in values), (values, str(err))
        assert str(err).startswith("config: "), str(err)
        return
    for key, value in values.items():  # accepted: kept as given, and round-trips
        assert getattr(config, key) == (list(value) if isinstance(value, tuple) else value) \
            or (isinstance(value, float) and math.isnan(value))
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda k: k not in KEYS),
                       st.integers(), min_size=1, max_size=2))
def test_unknown_settings_are_named(values):
    with pytest.raises(ValueError, match="unknown setting") as info:
        TrainConfig.from_dict(values)
    assert all(repr(k) in str(info.value) for k in values)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=4),
                    lambda inner: st.lists(inner, max_size=2)
                    | st.dictionaries(st.sampled_from(KEYS[:8]), inner, max_size=2), max_leaves=4))
def test_config_files_of_any_json_give_a_config_or_name_the_file(tmp_path, document):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(document))
    try:
        TrainConfig.load(path)
    except ValueError as err:
        assert str(path) in str(err), str(err)

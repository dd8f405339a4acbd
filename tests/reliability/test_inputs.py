"""The evaluate / sample argument space (hypothesis): a valid call exits 0 with finite
results, an invalid one exits 2 with the documented one-line message, nothing else."""

import json
import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from reliability_harness import call_main, named_error, run_cli

TEST_SIZE = 300  # digits' test split
SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def evaluate_error(k, batch_size, subset, refine):
    """The documented message for a bad evaluate call (None: the call is valid)."""
    for flag, value, low in (("--k", k, 1), ("--batch-size", batch_size, 1),
                             ("--subset", subset, 1), ("--refine-steps", refine, 0)):
        if value is not None and value < low:
            return f"argument {flag}: must be an integer >= {low}, got {value}"
    if subset is not None and subset > TEST_SIZE:
        return f"--subset {subset} exceeds the {TEST_SIZE} test examples"
    return None


@SETTINGS
@example(k=3, batch_size=64, subset=None, refine=0)
@example(k=1, batch_size=1, subset=1, refine=1)
@example(k=2, batch_size=400, subset=300, refine=0)
@given(k=st.integers(-2, 6), batch_size=st.integers(-3, 400),
       subset=st.none() | st.integers(-6, 320), refine=st.integers(-2, 2))
def test_evaluate_arguments(trained_run, reliability, k, batch_size, subset, refine):
    argv = ["evaluate", str(trained_run), "--k", str(k), "--batch-size", str(batch_size),
            "--refine-steps", str(refine), "--json", "--quiet"]
    if subset is not None:
        argv += ["--subset", str(subset)]
    expected = evaluate_error(k, batch_size, subset, refine)
    result = call_main(*argv)
    if expected is None:
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
        assert all(math.isfinite(out[key]) for key in ("nll", "elbo", "kl"))
        assert out["num_examples"] == (subset or TEST_SIZE)
        # a standard error needs two examples: one gives null (strict JSON), never NaN
        assert math.isfinite(out["nll_stderr"]) if subset != 1 else out["nll_stderr"] is None
        reliability.case("evaluate, valid arguments (hypothesis)", "exit 0, finite NLL / ELBO / KL")
    else:
        assert result.returncode == 2 and expected in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        reliability.case("evaluate, invalid --k / --batch-size / --subset / --refine-steps "
                         "(hypothesis)", f"{named_error(result)} naming the flag and value")


@SETTINGS
@given(n=st.integers(-4, 70), folder=st.sampled_from(["", "nodir/"]))
def test_sample_arguments(trained_run, tmp_path, reliability, n, folder):
    out = tmp_path / folder / f"s{n}.png"
    result = call_main("sample", str(trained_run), "--n", str(n), "--out", str(out))
    if n < 1:
        expected = f"argument --n: must be an integer >= 1, got {n}"
    elif folder:
        expected = f"--out {out}: folder {out.parent} does not exist"
    else:
        assert result.returncode == 0 and out.stat().st_size > 0, result.stderr
        reliability.case("sample, valid arguments (hypothesis)", "exit 0, the PNG written")
        return
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert not out.exists()
    reliability.case("sample, invalid --n / --out in a missing folder (hypothesis)",
                     f"{named_error(result)} naming the flag and value")


BAD = {
    "evaluate --batch-size -1": (["evaluate", "RUN", "--batch-size", "-1"], "--batch-size"),
    "evaluate --subset 0": (["evaluate", "RUN", "--subset", "0"], "--subset"),
    "evaluate --k x": (["evaluate", "RUN", "--k", "x"], "must be an integer, got 'x'"),
    "evaluate --device tpu": (["evaluate", "RUN", "--device", "tpu"], "--device"),
    "sample --n -3": (["sample", "RUN", "--n", "-3"], "--n"),
    "evaluate of a folder with no run": (["evaluate", "NORUN"], "is not a run directory"),
}


def test_bad_inputs_in_a_subprocess(trained_run, tmp_path, reliability):
    """The same refusals from the installed entry point: status 2, one line, no traceback."""
    for name, (argv, expected) in BAD.items():
        argv = [str(trained_run) if a == "RUN" else str(tmp_path) if a == "NORUN" else a
                for a in argv]
        proc = run_cli(*argv) if name == "sample --n -3" else call_main(*argv)
        assert proc.returncode == 2 and expected in proc.stderr, (name, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        reliability.case("other bad evaluate / sample inputs (letters for numbers, a bad "
                         "device, a folder with no run)", named_error(proc))


def test_the_library_refuses_the_same_values(reliability):
    """``evaluate()`` from Python: a batch size or k below 1 is a ValueError, not garbage."""
    import torch

    from reparam.vae.evaluation import log_likelihood
    from reparam.vae.factory import build_model

    model = build_model({"hidden": [8], "latent_dim": 2}, 16)
    x = torch.rand(4, 16).round()
    for kwargs, message in (({"batch_size": 0}, "batch_size must be"),
                            ({"batch_size": -1}, "batch_size must be"), ({"k": 0}, "k must be")):
        with pytest.raises(ValueError, match=message):
            log_likelihood(model, x, **{"k": 3, **kwargs})
        reliability.case("evaluate() from Python with batch_size / k below 1", "ValueError naming it")

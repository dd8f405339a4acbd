"""Faults while a run trains: SIGKILL / SIGTERM / SIGINT at random steps then resume, a NaN
batch at a chosen step under each ``--on-nan`` policy, divergence, bad values, a lost history
row, a finished run resumed. The real CLI in subprocesses (in-process ``main`` where a case
only repeats a class already run in a subprocess).

Faults come from the test hook ``REPARAM_FAULT`` (:func:`reparam.vae.loop.fault_plan`):
``nan@K`` poisons the batch of optimizer step K, ``SIGTERM@K`` has the process send itself the
signal during step K, as ``kill`` from a shell would.
"""

import json
import random

import pytest
import torch
from reliability_harness import call_main, named_error
from reliability_harness import run_cli as _run_cli

from reparam import runs

# 3 epochs of 6 steps (1348 rows after the 10% validation split, 256 per batch)
RUN = ["--epochs", "3", "--hidden", "16", "--latent-dim", "2", "--batch-size", "256",
       "--eval-samples", "2", "--patience", "2", "--quiet"]
STEPS = 18
EXIT = {"SIGKILL": -9, "SIGTERM": 143, "SIGINT": 130}


def run_cli(*args, **kw):
    return _run_cli(*args, timeout=600, **kw)  # a loaded 2-core machine can be slow


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    proc = run_cli("train", *RUN, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def weights(run):
    return runs.load_weights(run / "model.safetensors")


def history(run):
    return [{k: v for k, v in row.items() if k != "seconds"}
            for row in runs.read_history(run / "history.csv")]


def same_run(a, b):
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa) \
        and history(a) == history(b)


@pytest.mark.parametrize("sig", sorted(EXIT))
def test_signal_at_a_random_step_then_resume(straight, tmp_path, sig, reliability):
    at = random.Random(f"18-{sig}").randint(7, STEPS - 1)  # after the first checkpoint
    out = tmp_path / "run"
    proc = run_cli("train", *RUN, "--out", str(out), env={"REPARAM_FAULT": f"{sig}@{at}"})
    assert proc.returncode == EXIT[sig], proc.stderr
    if sig != "SIGKILL":
        err = proc.stderr.strip().splitlines()
        assert len(err) == 1 and f"reparam train --resume {out}" in err[0], proc.stderr
        assert f"stopped by {sig}" in err[0] and "Traceback" not in proc.stderr
    resumed = run_cli("train", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert same_run(straight, out)
    said = "killed" if sig == "SIGKILL" else "one line naming the resume command"
    reliability.case(f"{sig} at a random step (7-17 of 18), then --resume",
                     f"exit {proc.returncode} ({said}); the resumed run's weights and history "
                     "bit-identical to an uninterrupted run")


@pytest.mark.parametrize("policy", ["skip", "rollback", "stop"])
def test_nan_batch_under_each_policy(straight, tmp_path, policy, reliability, monkeypatch):
    out = tmp_path / "run"
    args = ("train", *RUN, "--out", str(out), "--on-nan", policy)
    if policy == "skip":  # one class in a subprocess, the others in-process
        proc = run_cli(*args, env={"REPARAM_FAULT": "nan@8"})
    else:
        monkeypatch.setenv("REPARAM_FAULT", "nan@8")
        proc = call_main(*args)
    m = json.loads((out / "metrics.json").read_text())
    assert m["non_finite_steps"] == 1 and not runs.non_finite(weights(out))
    if policy == "stop":
        assert proc.returncode == 2 and m["stop_reason"] == "non_finite" and m["epochs"] == 1
        assert "batch holds NaN" in proc.stderr and "Traceback" not in proc.stderr
        outcome = f"{named_error(proc)} with the diagnosis; weights of the last checkpoint"
    else:
        assert proc.returncode == 0 and m["stop_reason"] in ("epochs", "early_stopping")
        assert m["rollbacks"] == (policy == "rollback")
        outcome = "exit 0, the step skipped" + (" and the last checkpoint restored"
                                                 if policy == "rollback" else "")
    reliability.case(f"NaN batch at step 8, --on-nan {policy}",
                     f"{outcome}; metrics.json strict JSON, weights finite")


def strict(path):
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in {path}"))


def test_divergence_is_stopped_with_a_diagnosis(tmp_path, reliability):
    out = tmp_path / "run"
    proc = run_cli("train", *RUN, "--out", str(out), "--lr", "1e6")
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "learning rate too high" in err[0] and "non-finite" in err[0]
    m = strict(out / "metrics.json")
    assert m["stop_reason"] == "non_finite" and m["non_finite_steps"] == 10
    assert not runs.non_finite(weights(out)) and (out / "samples.png").is_file()
    reliability.case("divergence (--lr 1e6)", f"{named_error(proc)} naming the learning rate "
                     "after 10 skipped steps; strict metrics.json, finite weights, figures drawn")


@pytest.mark.parametrize("flag", [("--lr", "inf"), ("--beta", "inf"), ("--lr", "nan"),
                                  ("--on-nan", "ignore"), ("--nan-patience", "0")])
def test_non_finite_and_bad_policy_values_are_refused(tmp_path, flag, reliability):
    proc = call_main("train", *RUN, "--out", str(tmp_path / "run"), *flag)
    assert proc.returncode == 2 and flag[0][2:].replace("-", "_") in proc.stderr, proc.stderr
    assert not (tmp_path / "run").exists()
    reliability.case("--lr inf / nan, --beta inf, --on-nan ignore, --nan-patience 0",
                     f"{named_error(proc)} naming the key; nothing written")


def test_history_row_lost_is_restored_from_the_checkpoint(straight, tmp_path, reliability):
    out = tmp_path / "run"
    assert call_main("train", *RUN, "--out", str(out), "--epochs", "2").returncode == 0
    path = out / "history.csv"
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    proc = run_cli("train", "--resume", str(out), "--epochs", "3", "--quiet")
    assert proc.returncode == 0 and "restored from the checkpoint" in proc.stderr, proc.stderr
    assert same_run(straight, out)
    reliability.case("history.csv row deleted, then --resume",
                     "exit 0, a warning naming the epoch; the row restored from the checkpoint, "
                     "bit-identical to an uninterrupted run")


def test_a_finished_time_limited_run_stays_finished(tmp_path, reliability):
    out = tmp_path / "run"
    first = call_main("train", *RUN, "--epochs", "1000", "--time-limit", "1s", "--out", str(out))
    assert first.returncode == 0, first.stderr
    rows, ckpt = history(out), (out / runs.CHECKPOINT).read_bytes()
    for _ in range(2):
        proc = call_main("train", "--resume", str(out), "--quiet")
        assert proc.returncode == 0 and "already finished (time_limit)" in proc.stdout
    assert history(out) == rows and (out / runs.CHECKPOINT).read_bytes() == ckpt
    reliability.case("resume (twice) of a run that reached its --time-limit",
                     "exit 0, says it is finished; no step trained, no row added")

"""Exact resume of everything that shapes a run (early stopping, a checkpoint written in the
middle of an epoch on a signal), the non-finite step policies, history checked against the
checkpoint, finished runs staying finished, the run-directory lock held by ``train()``."""

import json
import signal
import threading

import pytest
import torch

from reparam import runs
from reparam.errors import CorruptFileError, RunExistsError
from reparam.vae import train
from reparam.vae.loop import FAULT_ENV, fault_plan
from reparam.vae.training import Interrupted, check_history

TINY = dict(hidden=[16], latent_dim=2, batch_size=256, eval_samples=2, progress=False)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0)


def without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_resume_with_patience_is_exact(tmp_path):
    kw = dict(TINY, patience=2, lr=1e-1)
    full = train(epochs=40, out=str(tmp_path / "full"), **kw)
    assert full.metrics["stop_reason"] == "early_stopping" and 3 < len(full.history) < 40
    stop = len(full.history)
    # cut one epoch before the stop: the counter is at 1 and the best weights are not the last
    part = train(epochs=stop - 1, out=str(tmp_path / "part"), **kw)
    resumed = train(resume=part.run_dir, epochs=40, progress=False)
    assert resumed.metrics["stop_reason"] == "early_stopping"
    assert without_seconds(resumed.history) == without_seconds(full.history)
    same_weights(full.model, resumed.model)  # the best validation weights, restored exactly


def test_a_signal_checkpoints_mid_epoch_and_resume_is_exact(tmp_path, monkeypatch):
    full = train(epochs=2, out=str(tmp_path / "full"), **TINY)
    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setenv(FAULT_ENV, "SIGTERM@9")  # during step 3 of epoch 2 (6 steps per epoch)
    with pytest.raises(Interrupted) as info:
        train(epochs=2, out=str(tmp_path / "cut"), **TINY)
    assert info.value.exit_code == 143 and "reparam train --resume" in str(info.value)
    assert signal.getsignal(signal.SIGTERM) is before
    monkeypatch.delenv(FAULT_ENV)
    resumed = train(resume=tmp_path / "cut", progress=False)
    assert without_seconds(resumed.history) == without_seconds(full.history)
    same_weights(full.model, resumed.model)


def test_train_in_a_thread_installs_no_handlers():
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("r", train(epochs=1, save=False, **TINY)))
    thread.start()
    thread.join()
    assert out["r"].metrics["epochs"] == 1


@pytest.mark.parametrize("policy", ["skip", "rollback", "stop"])
def test_a_nan_batch_under_each_policy(tmp_path, monkeypatch, policy):
    first = train(epochs=1, out=str(tmp_path / "one"), **TINY)
    monkeypatch.setenv(FAULT_ENV, "nan@8")  # step 2 of epoch 2 (6 steps per epoch)
    result = train(epochs=3, out=str(tmp_path / policy), on_nan=policy, **TINY)
    m = json.loads((tmp_path / policy / "metrics.json").read_text())
    assert m["non_finite_steps"] == 1 and not runs.non_finite(result.model.state_dict())
    if policy == "stop":
        assert m["stop_reason"] == "non_finite" and m["epochs"] == 1
        assert "batch holds NaN" in m["diagnosis"]
        same_weights(first.model, result.model)  # the last finite checkpoint's weights
    else:
        assert m["stop_reason"] == "epochs" and m["epochs"] == 3
        assert m["rollbacks"] == (policy == "rollback")


def test_divergence_stops_with_a_diagnosis_and_finite_files(tmp_path):
    result = train(epochs=2, out=str(tmp_path / "r"), lr=1e6, nan_patience=3, **TINY)
    text = (tmp_path / "r" / "metrics.json").read_text()
    m = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    assert m["stop_reason"] == "non_finite" and m["non_finite_steps"] == 3
    assert "learning rate too high" in m["diagnosis"]
    assert not runs.non_finite(runs.load_weights(tmp_path / "r" / "model.safetensors"))
    assert result.metrics["test_elbo"] == m["test_elbo"]


def test_fault_plan_is_checked():
    assert fault_plan("nan@3,SIGINT@7") == {3: "nan", 7: "SIGINT"}
    assert fault_plan(None) == {}
    with pytest.raises(ValueError, match="REPARAM_FAULT"):
        fault_plan("boom@3")


def test_history_is_checked_against_the_checkpoint(tmp_path):
    full = train(epochs=3, out=str(tmp_path / "full"), **TINY)
    train(epochs=2, out=str(tmp_path / "part"), **TINY)
    path = tmp_path / "part" / "history.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # the row of epoch 2 lost
    with pytest.warns(UserWarning, match=r"epochs \[2\] are missing; restored"):
        resumed = train(resume=tmp_path / "part", epochs=3, progress=False)
    assert without_seconds(resumed.history) == without_seconds(full.history)
    assert len(path.read_text().splitlines()) == 4
    saved = {"epoch": 1}  # a checkpoint written before it carried the rows
    rows = runs.read_history(path)
    with pytest.warns(UserWarning, match=r"epochs \[2, 3\] come after the checkpoint"):
        assert check_history(path, saved) == (rows[:1], True)
    path.write_text(lines[0] + "\n")
    with pytest.raises(CorruptFileError, match=r"lacks the rows of epochs \[1\]"):
        check_history(path, saved)


def test_a_time_limited_run_that_finished_stays_finished(tmp_path):
    first = train(epochs=1000, time_limit="1s", out=str(tmp_path / "r"), **TINY)
    assert first.metrics["stop_reason"] == "time_limit"
    ckpt = (tmp_path / "r" / runs.CHECKPOINT).read_bytes()
    again = train(resume=tmp_path / "r", progress=False)
    assert again.already_finished == "time_limit" and again.metrics["stop_reason"] == "time_limit"
    assert again.history == first.history
    assert (tmp_path / "r" / runs.CHECKPOINT).read_bytes() == ckpt


def test_train_holds_the_run_directory(tmp_path):
    train(epochs=1, out=str(tmp_path / "r"), **TINY)
    with pytest.raises(RunExistsError, match="already holds a run"):
        train(epochs=1, out=str(tmp_path / "r"), **TINY)
    result = train(epochs=1, latent_dim=3, out=str(tmp_path / "r"), overwrite=True,
                   **{k: v for k, v in TINY.items() if k != "latent_dim"})
    assert result.model.latent_dim == 3 and not (tmp_path / "r" / runs.LOCK).read_text()

"""The run directory: lock, unique names, reuse / overwrite, atomic umask-true writes, named
errors for every unreadable or unwritable run file."""

import errno
import json
import os
import stat
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import save_file

from reparam import runs
from reparam.errors import (
    CorruptFileError,
    DiskFullError,
    IncompatibleRunError,
    NonFiniteError,
    ReparamError,
    RunDirError,
    RunExistsError,
    RunLockedError,
    WriteError,
)

HOLD = ("import sys, time; from reparam import runs; cm = runs.open_run_dir(sys.argv[1]); "
        "cm.__enter__(); print('held', flush=True); time.sleep(60)")


def test_errors_are_value_errors_with_a_hint():
    err = RunLockedError("run directory x is in use", hint="wait")
    assert isinstance(err, ValueError) and isinstance(err, ReparamError)
    assert str(err) == "run directory x is in use; wait"


def test_default_dirs_are_unique_within_one_second(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20260101-000000")
    made = {runs.new_run_dir(tmp_path) for _ in range(50)}
    assert len(made) == 50 and all(p.is_dir() and p.name.startswith("20260101-000000-") for p in made)


def test_lock_names_the_holder_and_dies_with_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")],
                              stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(runs.Path(runs.__file__).parents[1])))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=f"in use by pid {holder.pid} on host"):
            with runs.open_run_dir(tmp_path / "run"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with runs.open_run_dir(tmp_path / "run") as run:  # a dead holder's lock is gone
        assert json.loads((run.path / runs.LOCK).read_text())["pid"] == os.getpid()
        (run.path / runs.CHECKPOINT).write_bytes(b"x")
    assert (tmp_path / "run" / runs.LOCK).read_text() == ""  # released: no holder recorded


def test_reentrant_within_one_process(tmp_path):
    with runs.open_run_dir(tmp_path / "r") as outer:
        (outer.path / "config.json").write_text("{}")
        with runs.open_run_dir(tmp_path / "r") as inner:
            assert inner is outer and inner.depth == 2


def _finished_run(path, marker="old"):
    path.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors", "samples.png"):
        (path / name).write_text(marker)


def test_non_empty_out_is_refused_unless_resume_or_overwrite(tmp_path):
    _finished_run(tmp_path / "r")
    with pytest.raises(RunExistsError, match="already holds a run"):
        with runs.open_run_dir(tmp_path / "r"):
            pass
    with runs.open_run_dir(tmp_path / "r", resume=True):
        pass
    assert (tmp_path / "r" / "model.safetensors").read_text() == "old"
    with runs.open_run_dir(tmp_path / "r", overwrite=True) as run:
        assert runs.run_contents(run.path) == []
        (run.path / "config.json").write_text("new")
    assert [p.name for p in runs.run_contents(tmp_path / "r")] == ["config.json"]
    assert not (tmp_path / "r" / runs.SET_ASIDE).exists()


def test_overwrite_restores_the_old_run_when_the_new_one_fails_early(tmp_path):
    _finished_run(tmp_path / "r")
    with pytest.raises(KeyError):
        with runs.open_run_dir(tmp_path / "r", overwrite=True) as run:
            (run.path / "config.json").write_text("new")
            raise KeyError("boom")
    assert {p.name: p.read_text() for p in runs.run_contents(tmp_path / "r")} == {
        "config.json": "old", "model.safetensors": "old", "samples.png": "old"}


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunExistsError, match="holds no run"):
        with runs.open_run_dir(tmp_path, overwrite=True):
            pass
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_failed_start_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        with runs.open_run_dir(tmp_path / "new") as run:
            (run.path / "config.json").write_text("{}")
            raise ValueError("bad dataset")
    assert not (tmp_path / "new").exists()


def test_resume_needs_a_run(tmp_path):
    with pytest.raises(RunDirError, match="no run to resume"):
        with runs.open_run_dir(tmp_path, resume=True):
            pass


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert runs.current_umask() == umask
        runs.write_json(tmp_path / "m.json", {"a": 1})
        runs.save_weights(tmp_path / "w.safetensors", {"w": torch.ones(2)})
    finally:
        os.umask(old)
    for name in ("m.json", "w.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask


def test_metrics_json_is_strict(tmp_path):
    runs.write_json(tmp_path / "m.json", {"a": float("nan"), "b": [float("inf"), 1.5],
                                          "c": {"d": -float("inf")}})
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "a": None, "b": [None, 1.5], "c": {"d": None}}


def test_full_disk_is_named_and_keeps_the_old_file(tmp_path, monkeypatch):
    runs.write_json(tmp_path / "m.json", {"v": 1})

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(DiskFullError, match="no space left on the device writing"):
        runs.write_json(tmp_path / "m.json", {"v": 2})
    assert json.loads((tmp_path / "m.json").read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temporary file left


def test_unwritable_folder_is_named(tmp_path):
    with pytest.raises(WriteError, match="cannot write"):
        runs.write_json(tmp_path / "missing" / "m.json", {})


def test_non_finite_weights_are_never_written(tmp_path):
    runs.save_weights(tmp_path / "w.safetensors", {"w": torch.ones(3)})
    good = (tmp_path / "w.safetensors").read_bytes()
    with pytest.raises(NonFiniteError, match="non-finite values in w"):
        runs.save_weights(tmp_path / "w.safetensors", {"w": torch.tensor([1.0, float("nan")])})
    assert (tmp_path / "w.safetensors").read_bytes() == good


@pytest.mark.parametrize("data", [b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}",
                                  b"\xff" * 64, b"\x80\x04K\x01."])
def test_unreadable_weights_are_named(tmp_path, data):
    (tmp_path / "w.safetensors").write_bytes(data)
    with pytest.raises(CorruptFileError, match="truncated or corrupt"):
        runs.load_weights(tmp_path / "w.safetensors")


def test_nan_weights_on_disk_are_refused(tmp_path):
    save_file({"w": torch.tensor([1.0, float("nan")])}, tmp_path / "w.safetensors")
    with pytest.raises(CorruptFileError, match="non-finite values"):
        runs.load_weights(tmp_path / "w.safetensors")


def test_model_spec_is_stored_and_compared(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden": [16], "activation": "tanh",
                                                      "epochs": 3}))
    runs.save_weights(tmp_path / "model.safetensors", {"w": torch.ones(2)})
    runs.load_weights(tmp_path / "model.safetensors")  # unchanged config: loads
    (tmp_path / "config.json").write_text(json.dumps({"hidden": [16], "activation": "relu",
                                                      "epochs": 9}))
    with pytest.raises(IncompatibleRunError, match="activation: 'tanh' in the weights, 'relu'"):
        runs.load_weights(tmp_path / "model.safetensors")


def test_weights_without_a_spec_still_load(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"activation": "relu"}))
    save_file({"w": torch.ones(2)}, tmp_path / "model.safetensors")  # an older run's file
    assert runs.load_weights(tmp_path / "model.safetensors")["w"].tolist() == [1.0, 1.0]


def test_load_state_dict_names_the_mismatch():
    model = torch.nn.Linear(3, 2)
    with pytest.raises(IncompatibleRunError, match=r"weight \(2, 4\) in the file, \(2, 3\)"):
        runs.load_state_dict(model, {"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}, "f")
    with pytest.raises(IncompatibleRunError, match="missing bias"):
        runs.load_state_dict(model, {"weight": torch.zeros(2, 3)}, "f")

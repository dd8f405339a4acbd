"""Run files under faults: corrupt, truncated and NaN weights and checkpoints, a diverging
resume, an edited config.json, a read-only run directory, a full disk. Real CLI in
subprocesses."""

import contextlib
import json
import os
import pickle
import struct
import subprocess

import pytest
from reliability_harness import call_main, named_error, run_cli

from reparam import runs

EVAL = ["--k", "4", "--subset", "20", "--quiet"]


def invoke(subprocess_case: bool):
    """The real CLI in a subprocess for one case of each class, in-process for the others."""
    return run_cli if subprocess_case else call_main


def nan_bytes(path):
    """Overwrite the first float tensor's data with NaN bytes (the header stays valid)."""
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    name = next(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32")
    start = 8 + size + header[name]["data_offsets"][0]
    data[start:start + 16] = struct.pack("<4f", *[float("nan")] * 4)
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "garbage header": lambda p: p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json" + b"\0" * 64),
    "NaN bytes": nan_bytes,
    "pickle": lambda p: p.write_bytes(pickle.dumps({"w": 1})),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_weights_are_named(run_copy, kind, reliability):
    CORRUPTIONS[kind](run_copy / "model.safetensors")
    proc = invoke(kind == "NaN bytes")("evaluate", str(run_copy), *EVAL)
    assert proc.returncode == 2, proc.stderr
    assert "model.safetensors" in proc.stderr
    assert ("non-finite" if kind == "NaN bytes" else "truncated or corrupt") in proc.stderr
    assert not (run_copy / "evaluation.json").exists()
    reliability.case("corrupt model.safetensors (truncated, garbage, NaN bytes, pickle)",
                     named_error(proc))


@pytest.mark.parametrize("kind", ["truncated", "NaN bytes"])
def test_corrupt_checkpoint_never_reaches_the_weights(run_copy, kind, reliability):
    weights = (run_copy / "model.safetensors").read_bytes()
    CORRUPTIONS[kind](run_copy / runs.CHECKPOINT)
    proc = invoke(kind == "NaN bytes")("train", "--resume", str(run_copy), "--epochs", "2", "--quiet")
    assert proc.returncode == 2 and "checkpoint.safetensors" in proc.stderr, proc.stderr
    assert (run_copy / "model.safetensors").read_bytes() == weights
    reliability.case("corrupt checkpoint.safetensors on --resume (truncated, NaN bytes)",
                     f"{named_error(proc)}; model.safetensors unchanged")


def test_diverging_resume_keeps_the_finite_checkpoint(run_copy, reliability):
    before = {n: (run_copy / n).read_bytes() for n in (runs.CHECKPOINT, "model.safetensors")}
    proc = call_main("train", "--resume", str(run_copy), "--epochs", "2", "--lr", "1e6", "--quiet")
    assert proc.returncode == 2 and "non-finite" in proc.stderr, proc.stderr
    assert {n: (run_copy / n).read_bytes() for n in before} == before
    reliability.case("divergence to NaN weights (--lr 1e6 on resume)",
                     f"{named_error(proc)}; checkpoint and weights unchanged (finite)")


EDITS = {"hidden": [32], "activation": "relu", "latent_dim": 3}


@pytest.mark.parametrize("key", sorted(EDITS))
def test_config_edited_to_another_model(run_copy, key, reliability):
    config = json.loads((run_copy / "config.json").read_text())
    config[key] = EDITS[key]
    (run_copy / "config.json").write_text(json.dumps(config))
    proc = call_main("evaluate", str(run_copy), *EVAL)
    assert proc.returncode == 2 and f"{key}:" in proc.stderr, proc.stderr
    assert "size mismatch" not in proc.stderr and "Traceback" not in proc.stderr
    reliability.case("config.json edited to another model (hidden, activation, latent_dim)",
                     f"{named_error(proc)} naming the key")


@contextlib.contextmanager
def read_only(path):
    """``path`` read-only: chmod for a normal user, a read-only bind mount for root."""
    if os.geteuid() != 0:
        os.chmod(path, 0o555)
        try:
            yield
        finally:
            os.chmod(path, 0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(path), str(path)],
                             capture_output=True).returncode == 0
    if mounted and (subprocess.run(["mount", "-o", "remount,bind,ro", str(path)],
                                   capture_output=True).returncode != 0 or _writable(path)):
        subprocess.run(["umount", str(path)], capture_output=True)
        mounted = False
    if not mounted:
        pytest.skip("cannot make a read-only directory here (no bind mount)")
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def _writable(path):
    try:
        (path / ".probe").write_bytes(b"")
    except OSError:
        return False
    (path / ".probe").unlink()
    return True


def test_evaluate_on_a_read_only_run(run_copy, reliability):
    with read_only(run_copy):
        proc = run_cli("evaluate", str(run_copy), *EVAL)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.startswith("test NLL")
    assert "the result above was not saved" in proc.stderr and "evaluation.json" in proc.stderr
    assert not (run_copy / "evaluation.json").exists()
    reliability.case("evaluate on a read-only run directory",
                     f"result printed, then {named_error(proc)} (evaluation.json not written)")


@contextlib.contextmanager
def tmpfs(path, size="1m"):
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def fill(folder, keep_pages=0):
    """Fill the file system of ``folder`` with 4 KiB files, then free ``keep_pages`` of them."""
    files = []
    with contextlib.suppress(OSError):
        while True:
            p = folder / f"fill{len(files)}"
            files.append(p)
            p.write_bytes(b"\0" * 4096)
    for p in files[-1 - keep_pages:]:
        p.unlink(missing_ok=True)


def test_full_disk(trained_run, tmp_path, reliability):
    import shutil

    with tmpfs(tmp_path / "small") as disk:
        run = disk / "run"
        shutil.copytree(trained_run, run)
        before = (run / runs.CHECKPOINT).read_bytes()
        fill(disk, keep_pages=2)  # room for config.json, not for a checkpoint
        proc = run_cli("train", "--resume", str(run), "--epochs", "2", "--quiet")
        assert proc.returncode == 2 and "no space left" in proc.stderr, proc.stderr
        assert (run / runs.CHECKPOINT).read_bytes() == before
        assert json.loads((run / "config.json").read_text())["epochs"] in (1, 2)
        assert not list(run.glob(".*.tmp"))
        reliability.case("full disk (tmpfs) while a resumed run writes its checkpoint",
                         f"{named_error(proc)}; the previous checkpoint intact, no temp files")
        fill(disk)
        proc = call_main("evaluate", str(run), *EVAL)
        assert proc.returncode == 2 and proc.stdout.startswith("test NLL"), proc.stderr
        assert "no space left" in proc.stderr and not (run / "evaluation.json").exists()
        reliability.case("full disk (tmpfs) when evaluate writes evaluation.json",
                         f"result printed, then {named_error(proc)}")


def test_config_edited_on_a_run_without_a_stored_spec(run_copy, reliability):
    """Weights written before specs were stored: an edit that changes shapes is still named."""
    from safetensors.torch import load_file, save_file

    weights = run_copy / "model.safetensors"
    save_file(load_file(weights), weights)  # drop the metadata, as an older version wrote it
    assert call_main("evaluate", str(run_copy), *EVAL).returncode == 0  # old runs still load
    config = json.loads((run_copy / "config.json").read_text())
    (run_copy / "config.json").write_text(json.dumps({**config, "hidden": [32]}))
    proc = call_main("evaluate", str(run_copy), *EVAL)
    assert proc.returncode == 2 and "does not fit the model" in proc.stderr, proc.stderr
    reliability.case("config.json edited on a run written without a model spec",
                     f"unchanged: loads (exit 0); edited: {named_error(proc)}")

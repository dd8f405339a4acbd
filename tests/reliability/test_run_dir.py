"""One run, one directory: concurrent writers, same-second defaults, reuse and overwrite,
file modes under a umask. The real CLI in subprocesses."""

import json
import stat

from reliability_harness import TINY, call_main, named_error, run_cli, start_cli
from safetensors.torch import load_file

WRITTEN = ("config.json", "model.safetensors", "checkpoint.safetensors", "metrics.json",
           "history.csv", "samples.png", "loss.png")


def test_two_writers_on_one_out(tmp_path, reliability):
    out = tmp_path / "run"
    procs = [start_cli("train", *TINY, "--hidden", str(h), "--out", str(out)) for h in (16, 24)]
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    codes = sorted(rc for rc, _, _ in results)
    assert codes == [0, 2], results
    loser_err = next(err for rc, _, err in results if rc == 2)
    assert ("in use by pid" in loser_err or "already holds a run" in loser_err), loser_err
    assert "Traceback" not in loser_err and len(loser_err.strip().splitlines()) == 1
    winner = next(h for (rc, _, _), h in zip(results, (16, 24)) if rc == 0)
    config = json.loads((out / "config.json").read_text())
    weights = load_file(out / "model.safetensors")
    assert config["hidden"] == [winner] and weights["encoder.net.0.weight"].shape[0] == winner
    refusal = "naming the lock holder" if "in use by pid" in loser_err else "(run already there)"
    reliability.case("two concurrent writers on one --out",
                     f"one exits 0, the other exits 2 {refusal}; the directory holds the "
                     "winner's config and weights")


def test_same_second_default_dirs_are_distinct(default_runs, reliability):
    assert len(default_runs) == 2 and default_runs[0] != default_runs[1]
    for d in default_runs:
        assert (d / "model.safetensors").is_file() and (d / "metrics.json").is_file()
    reliability.case("two default runs started at the same moment",
                     "two distinct runs/<timestamp>-<suffix> directories, each complete")


def test_reuse_refused_and_overwrite_replaces(run_copy, reliability):
    before = (run_copy / "model.safetensors").read_bytes()
    proc = run_cli("train", *TINY, "--out", str(run_copy))
    assert proc.returncode == 2 and "already holds a run" in proc.stderr
    assert (run_copy / "model.safetensors").read_bytes() == before
    reliability.case("--out naming an existing run (no --resume / --overwrite)",
                     f"{named_error(proc)}; the old run unchanged")
    proc = call_main("train", *TINY, "--latent-dim", "3", "--out", str(run_copy), "--overwrite",
                     umask=0o077)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run_copy / "config.json").read_text())["latent_dim"] == 3
    assert "manifold.png" not in {p.name for p in run_copy.iterdir()}  # 2-D only: the old run's
    assert not (run_copy / ".overwritten").exists()
    reliability.case("--overwrite on an existing run",
                     "exit 0; only the new run's files remain")
    _check_modes(run_copy, 0o077, reliability)


def _check_modes(run, umask, reliability):
    for name in WRITTEN:
        mode = stat.S_IMODE((run / name).stat().st_mode)
        assert mode == 0o666 & ~umask, (name, oct(mode))
    reliability.case("file modes of every run file under a umask",
                     "each file 0o666 & ~umask, PNGs and data alike", n=len(WRITTEN))


def test_modes_follow_umask_022(trained_run, reliability):
    _check_modes(trained_run, 0o022, reliability)

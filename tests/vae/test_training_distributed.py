"""Training under torchrun (2 gloo ranks on 127.0.0.1): the numbers of one process.

Every run trains the digits (hidden 16, latent 2, global batch 32: 47 steps an epoch).
Tolerances: the ranks compute the same per-example terms as one process and differ only in
the order of float32 sums (two half-batch means and an all-reduce for one batch mean), a
relative error of a few float32 epsilons (1.2e-7) per step; over ~140 Adam steps (each
moving a weight by at most ~lr = 1e-3) it stays far below 1e-5 absolute in the weights
(measured: 2e-7 relative in the losses, 6e-8 in the weights).
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from torchrun_helpers import SRC, TIMEOUT_S  # noqa: F401
from torchrun_helpers import child_env as _env
from torchrun_helpers import free_port as _free_port

from reparam import runs

FLAGS = ["--batch-size", "32", "--hidden", "16", "--latent-dim", "2", "--device", "cpu",
         "--quiet"]
STEPS_PER_EPOCH = 47  # the digits training rows in global batches of 32
WEIGHT_ATOL = 1e-5




def _cmd(nproc: int, *args: str, rdzv: list[str] | None = None) -> list[str]:
    where = rdzv or ["--master-addr", "127.0.0.1", "--master-port", str(_free_port())]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
            *where, "-m", "reparam", "train", *FLAGS, *args]


def _start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _wait(proc: subprocess.Popen, code: int = 0) -> str:
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == code, out[-4000:]
    return out


def _steps(run: Path) -> np.ndarray:
    return np.loadtxt(run / "steps.csv", delimiter=",", skiprows=1, ndmin=2)


def _weights(run: Path) -> dict:
    return runs.load_weights(run / "model.safetensors")


def _max_weight_diff(a: Path, b: Path) -> float:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


@pytest.fixture(scope="module")
def runs_1_2(tmp_path_factory) -> dict[str, Path]:
    """One process for 4 epochs; two processes for 3 epochs, then resumed by one to 4."""
    root = tmp_path_factory.mktemp("dist_train")
    one, two = root / "one", root / "two"
    procs = [_start(_cmd(1, "--epochs", "4", "--out", str(one))),
             _start(_cmd(2, "--epochs", "3", "--out", str(two)))]
    for p in procs:
        _wait(p)
    shutil.copytree(two, root / "two_at_3")
    _wait(_start(_cmd(1, "--resume", str(two), "--epochs", "4")))
    return {"one": one, "two": two, "two_at_3": root / "two_at_3"}


def test_two_processes_follow_the_one_process_trajectory(runs_1_2):
    one, two = _steps(runs_1_2["one"]), _steps(runs_1_2["two_at_3"])
    assert one.shape == (4 * STEPS_PER_EPOCH, 3) and two.shape == (3 * STEPS_PER_EPOCH, 3)
    assert np.array_equal(two[:, 0], np.arange(3 * STEPS_PER_EPOCH))
    rel = np.abs(one[:100, 1:] - two[:100, 1:]) / np.abs(one[:100, 1:])
    assert rel.max() < 1e-5, rel.max()
    assert np.std(one[:100, 1]) > 0.1  # the losses move: the comparison means something


def test_only_rank_zero_writes_and_logged_losses_are_global(runs_1_2):
    two = runs_1_2["two_at_3"]
    names = {p.name for p in two.iterdir()}
    assert {"config.json", "checkpoint.safetensors", "history.csv", "metrics.json",
            "model.safetensors", "steps.csv"} <= names
    history = runs.read_history(two / "history.csv")
    reference = runs.read_history(runs_1_2["one"] / "history.csv")[:3]
    assert [r["epoch"] for r in history] == [1, 2, 3]
    for a, b in zip(history, reference, strict=True):
        assert abs(a["train_elbo"] - b["train_elbo"]) <= 1e-5 * abs(b["train_elbo"])
        assert abs(a["test_elbo"] - b["test_elbo"]) <= 1e-5 * abs(b["test_elbo"])


def test_resume_with_another_world_size_continues_the_trajectory(runs_1_2):
    one, two = runs_1_2["one"], runs_1_2["two"]
    steps = _steps(two)
    assert np.array_equal(steps[:, 0], np.arange(4 * STEPS_PER_EPOCH))
    rel = np.abs(steps[:, 1:] - _steps(one)[:, 1:]) / np.abs(_steps(one)[:, 1:])
    assert rel.max() < 1e-5, rel.max()
    assert _max_weight_diff(one, two) < WEIGHT_ATOL
    assert len(runs.read_history(two / "history.csv")) == 4


def test_two_processes_train_on_memory_mapped_rows(runs_1_2, tmp_path):
    """The digits as .npy files, kept mapped (each rank reads its rows of every batch): the
    trajectory of the in-memory one-process run."""
    from reparam.data import load_dataset

    digits = load_dataset("digits")
    for split in ("train", "test"):
        np.save(tmp_path / f"{split}.npy", getattr(digits, split).numpy() > 0.5)
    out = tmp_path / "run"
    _wait(_start(_cmd(2, "--dataset", f"npy:{tmp_path}", "--binarize", "none", "--mmap",
                      "--epochs", "1", "--out", str(out))))
    steps, reference = _steps(out), _steps(runs_1_2["one"])[:STEPS_PER_EPOCH]
    assert np.array_equal(steps[:, 0], reference[:, 0])
    assert (np.abs(steps[:, 1:] - reference[:, 1:]) / np.abs(reference[:, 1:])).max() < 1e-5


@pytest.mark.slow
def test_resume_one_process_run_with_two(runs_1_2, tmp_path):
    out = tmp_path / "run"
    _wait(_start(_cmd(1, "--epochs", "1", "--out", str(out))))
    _wait(_start(_cmd(2, "--resume", str(out), "--epochs", "2")))
    steps, reference = _steps(out), _steps(runs_1_2["one"])[:2 * STEPS_PER_EPOCH]
    assert np.array_equal(steps[:, 0], reference[:, 0])
    assert (np.abs(steps[:, 1:] - reference[:, 1:]) / np.abs(reference[:, 1:])).max() < 1e-5


@pytest.mark.slow
def test_the_autograd_path_matches_too(tmp_path):
    """IWAE has no fused step: autograd gradients through the same weighted all-reduce."""
    outs = [tmp_path / f"run{n}" for n in (1, 2)]
    procs = [_start(_cmd(n, "--epochs", "1", "--objective", "iwae", "--k", "3", "--out", str(o)))
             for n, o in zip((1, 2), outs, strict=True)]
    for p in procs:
        _wait(p)
    assert not runs.read_json(outs[0] / "metrics.json")["fused_step"]
    a, b = _steps(outs[0]), _steps(outs[1])
    assert (np.abs(a[:, 1:] - b[:, 1:]) / np.abs(a[:, 1:])).max() < 1e-5
    assert _max_weight_diff(outs[0], outs[1]) < WEIGHT_ATOL


def _worker_pids(launcher: int) -> dict[int, int]:
    """``{rank: pid}`` of the workers torchrun ``launcher`` started (read from /proc)."""
    found = {}
    for task in Path(f"/proc/{launcher}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            ranks = [int(e[5:]) for e in env if e.startswith(b"RANK=")]
            if ranks:
                found[ranks[0]] = int(child)
    return found


def _wait_for(path: Path, proc: subprocess.Popen, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0][-4000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_killed_rank_restarts_the_group_from_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    rdzv = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}",
            "--max-restarts", "1"]
    proc = _start(_cmd(2, "--epochs", "8", "--out", str(out), rdzv=rdzv))
    _wait_for(out / runs.CHECKPOINT, proc)
    os.kill(_worker_pids(proc.pid)[1], signal.SIGKILL)
    log = _wait(proc)
    assert "restart" in log.lower() or "Restarting" in log, log[-2000:]
    assert [r["epoch"] for r in runs.read_history(out / "history.csv")] == list(range(1, 9))
    assert (out / "model.safetensors").is_file()


@pytest.mark.slow
def test_sigterm_checkpoints_mid_epoch_and_resume_finishes(tmp_path):
    out = tmp_path / "run"
    proc = _start(_cmd(2, "--epochs", "8", "--out", str(out)))
    _wait_for(out / "history.csv", proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=TIMEOUT_S)
    _, meta = runs.read_safetensors(out / runs.CHECKPOINT)
    assert not (out / "model.safetensors").exists()
    _wait(_start(_cmd(2, "--resume", str(out))))
    steps = _steps(out)
    assert np.array_equal(steps[:, 0], np.arange(8 * STEPS_PER_EPOCH))  # no step lost or redone


@pytest.mark.slow
def test_two_node_rendezvous_on_localhost(tmp_path):
    out, port = tmp_path / "run", _free_port()
    nodes = [_start(_cmd(1, "--epochs", "1", "--out", str(out),
                         rdzv=["--nnodes", "2", "--rdzv-backend", "c10d",
                               "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "t"]))
             for _ in range(2)]
    for node in nodes:
        _wait(node)
    assert len(_steps(out)) == STEPS_PER_EPOCH
    assert len(runs.read_history(out / "history.csv")) == 1

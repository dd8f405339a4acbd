"""Sharded evaluation: the same numbers on any number of processes (2 gloo ranks by torchrun)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchrun_helpers import SRC, TIMEOUT_S  # noqa: F401
from torchrun_helpers import child_env as _env
from torchrun_helpers import free_port as _free_port

from reparam.cli import main
from reparam.vae import VAE
from reparam.vae.evaluation import elbo_block_sums, log_likelihood


def torchrun(nproc: int, *args: str) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node nproc -m reparam args...`` on 127.0.0.1, bounded in time."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "-m", "reparam",
           *args]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A digits run trained for one epoch (hidden 16, latent 2), made once per session."""
    out = tmp_path_factory.mktemp("dist") / "run"
    subprocess.run([sys.executable, "-m", "reparam", "train", "--epochs", "1", "--hidden", "16",
                    "--latent-dim", "2", "--out", str(out), "--quiet"],
                   env=_env(), check=True, capture_output=True, timeout=TIMEOUT_S)
    return out


def _model(seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(data_dim=12, latent_dim=3, hidden=(8,)).eval()


def test_block_keyed_noise_does_not_depend_on_the_sharding():
    model, x = _model(), torch.rand(23, 12).round()
    whole = log_likelihood(model, x, k=30, batch_size=5, memory_mb=1e-4, seed=4)
    parts = [log_likelihood(model, x[a:b], k=30, batch_size=5, memory_mb=1e-4, seed=4,
                            first_index=a) for a, b in ((0, 10), (10, 15), (15, 23))]
    assert torch.equal(torch.cat(parts), whole)  # bit for bit
    other = log_likelihood(model, x, k=30, batch_size=5, memory_mb=1e-4, seed=5)
    assert not torch.equal(other, whole)
    sums = elbo_block_sums(model, x, 4, 5, seed=4)
    tail = elbo_block_sums(model, x[10:], 4, 5, seed=4, first_index=10)
    assert sums.shape == (5, 3) and torch.equal(sums[2:], tail)
    with pytest.raises(ValueError, match="multiple of batch_size"):
        log_likelihood(model, x[3:], k=2, batch_size=5, seed=0, first_index=3)


FLAGS = ["--k", "20", "--batch-size", "70", "--device", "cpu", "--quiet", "--json"]
FLOATS = ("nll", "nll_stderr", "elbo", "recon", "kl")


@pytest.fixture(scope="module")
def single(tiny_run) -> dict:
    """The single-process evaluation (300 test rows: 5 blocks of 70, the last short)."""
    assert main(["evaluate", str(tiny_run), *FLAGS]) == 0
    result = json.loads((tiny_run / "evaluation.json").read_text())
    (tiny_run / "evaluation.json").unlink()
    return result


def _same_as_single(run: Path, single: dict, processes: int) -> None:
    dist, ref = json.loads((run / "evaluation.json").read_text()), dict(single)
    (run / "evaluation.json").unlink()
    assert ref.pop("processes") == 1 and dist.pop("processes") == processes
    for key in FLOATS:
        assert dist.pop(key) == pytest.approx(ref.pop(key), rel=1e-6, abs=0), key
    assert dist == ref  # k, examples, active units, split, ...


def test_torchrun_two_processes_give_the_single_process_evaluation(tiny_run, single):
    done = torchrun(2, "evaluate", str(tiny_run), *FLAGS)
    assert done.stdout.count('"nll"') == 1  # rank 0 alone reports (and writes)
    _same_as_single(tiny_run, single, 2)


def test_two_node_rendezvous_gives_the_single_process_evaluation(tiny_run, single):
    """Two torchrun launchers on 127.0.0.1 (``--nnodes 2``, c10d rendezvous), one process each."""
    endpoint = f"127.0.0.1:{_free_port()}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node",
           "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "test",
           "-m", "reparam", "evaluate", str(tiny_run), *FLAGS]
    nodes = [subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    try:
        outs = [node.communicate(timeout=TIMEOUT_S) for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert [node.returncode for node in nodes] == [0, 0], [err[-2000:] for _, err in outs]
    assert sum(out.count('"nll"') for out, _ in outs) == 1
    _same_as_single(tiny_run, single, 2)

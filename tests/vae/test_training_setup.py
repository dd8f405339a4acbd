"""Setup refuses bad runs before anything is written; resume rules; the shared step."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reparam.config import TrainConfig
from reparam.estimators import STL
from reparam.noise import MonteCarlo
from reparam.vae import VAE, elbo, train
from reparam.vae.loop import StepState, step
from reparam.vae.training import setup

SMALL = dict(epochs=1, hidden=[16], latent_dim=2, progress=False, tensorboard=False)
SRC = str(Path(__file__).resolve().parents[2] / "src")


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("bad", [
    dict(posterior="planar", estimator="stl"),   # a flow has no detached log q
    dict(fused=True, prior="mog"),               # the fused step cannot apply
    dict(fused=True, objective="iwae"),
    dict(kl="analytic", prior="mog"),            # no closed-form KL
])
def test_a_failed_start_leaves_no_run_directory(tmp_path, bad):
    out = tmp_path / "run"
    try:
        train(out=str(out), **{**SMALL, **bad})
    except ValueError:
        assert not out.exists()
    else:  # the combination is valid after all: then the run is complete
        assert (out / "metrics.json").is_file()


def test_fused_forced_names_why():
    with pytest.raises(ValueError, match="fused=True but the fused step cannot apply.*objective 'iwae'"):
        train(save=False, fused=True, objective="iwae", **SMALL)


def test_resume_refuses_model_changes_and_keeps_config_json(tmp_path):
    run = train(out=str(tmp_path / "r"), **SMALL).run_dir
    before = (run / "config.json").read_bytes()
    for bad, expected in [(dict(latent_dim=4), r"cannot change \['latent_dim'\]"),
                          (dict(dataset="mnist"), r"cannot change \['dataset'\]"),
                          (dict(out=str(tmp_path / "y")), "conflicts with resume"),
                          (dict(lr=True), "'lr' must be a number")]:
        with pytest.raises(ValueError, match=expected):
            train(resume=run, progress=False, **bad)
        assert (run / "config.json").read_bytes() == before
    with pytest.raises(ValueError, match="exclude each other"):
        train(TrainConfig(), resume=run)
    resumed = train(resume=run, epochs=2, out=str(run), dataset="digits", progress=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2]


def test_step_is_the_objective_plus_one_optimizer_step():
    torch.manual_seed(0)
    model = VAE(12, latent_dim=2, hidden=(8,)).double()
    ref = VAE(12, latent_dim=2, hidden=(8,)).double()
    ref.load_state_dict(model.state_dict())
    x = (torch.rand(5, 12, dtype=torch.float64) > 0.5).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    state = StepState(opt, opt.step, lambda m, xb, beta, noise: elbo(m, xb, 1, beta, noise,
                                                                    estimator=STL()),
                      lr=0.1, beta=1.0)
    out = step(model, x, MonteCarlo(torch.Generator().manual_seed(3)), state)
    loss = elbo(ref, x, 1, noise=MonteCarlo(torch.Generator().manual_seed(3)), estimator="stl")
    loss.loss.backward()
    torch.testing.assert_close(out.loss, loss.loss)
    for p, r in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, r - 0.1 * r.grad, rtol=1e-12, atol=1e-12)


def test_setup_writes_only_config_json_and_train_accepts_estimator_objects(tmp_path):
    run = setup(TrainConfig(out=str(tmp_path / "r"), hidden=[16], epochs=1, tensorboard=False))
    assert _files(run.run_dir) == ["config.json"] and run.fused is not None
    est = STL()
    result = train(save=False, estimator=est, **SMALL)
    assert result.config.estimator == "stl" and not result.metrics["fused_step"]
    with pytest.raises(ValueError, match="register its class"):
        class Mine(STL):
            pass
        train(save=False, estimator=Mine(), **SMALL)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-m", "reparam.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_refuses_bad_starts_without_writing(tmp_path):
    (tmp_path / "bad.toml").write_text("hidden = 16\n")
    for args, expected in [(["--config", "bad.toml"], "'hidden' must be a list of integers"),
                           (["--free-bits", "nan"], "'free_bits' must be a finite number")]:
        done = _cli("train", "--epochs", "1", "--quiet", *args, cwd=tmp_path)
        assert done.returncode == 2 and expected in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert not (tmp_path / "runs").exists()
    done = _cli("train", "--epochs", "1", "--hidden", "16", "--quiet", "--no-tensorboard",
                "--out", "r", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    before = (tmp_path / "r" / "config.json").read_bytes()
    for args, expected in [(["--latent-dim", "4"], "cannot change ['latent_dim']"),
                           (["--config", "bad.toml"], "--config and --resume exclude each other")]:
        done = _cli("train", "--resume", "r", "--quiet", *args, cwd=tmp_path)
        assert done.returncode == 2 and expected in done.stderr, (args, done.stderr)
        assert (tmp_path / "r" / "config.json").read_bytes() == before

"""`reparam` end to end in a temporary directory, and its error messages."""

import csv
import json

import pytest
from PIL import Image
from safetensors.torch import load_file

from reparam.cli import main


def test_train_writes_every_output(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "3", "--hidden", "32", "--latent-dim", "2",
                 "--out", str(out), "--quiet"]) == 0
    assert "test ELBO" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 3 and config["hidden"] == [32] and config["latent_dim"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("train_elbo", "test_elbo", "test_kl", "test_recon", "epochs", "wall_time_s"):
        assert key in metrics
    weights = load_file(out / "model.safetensors")
    assert weights["encoder.net.0.weight"].shape == (32, 64)
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for name in ("reconstructions.png", "samples.png", "loss.png"):
        with Image.open(out / name) as img:
            assert img.size[0] > 50 and img.size[1] > 50


def test_config_file_reproduces_a_run(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", "--epochs", "2", "--hidden", "16", "--out", str(a), "--quiet"]) == 0
    assert main(["train", "--config", str(a / "config.json"), "--out", str(b), "--quiet"]) == 0
    ma = json.loads((a / "metrics.json").read_text())
    mb = json.loads((b / "metrics.json").read_text())
    assert ma["test_elbo"] == mb["test_elbo"] and ma["train_elbo"] == mb["train_elbo"]


def test_toml_config(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('epochs = 1\nhidden = [8]\nlatent_dim = 3\n')
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["latent_dim"] == 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--epochs", "0"], "'epochs' must be a positive integer, got 0"),
        (["train", "--lr", "-1"], "'lr' must be a positive finite number"),
        (["train", "--dataset", "nope"], "unknown dataset 'nope'"),
        (["train", "--activation", "swishy"], "unknown activation 'swishy'"),
        (["train", "--device", "tpu"], "'device' must be cpu, cuda"),
        (["train", "--config", "/does/not/exist.json"], "config file not found"),
    ],
)
def test_bad_input_names_the_problem(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_unknown_flag_is_rejected(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epochz", "3"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --epochz" in capsys.readouterr().err


def test_unwritable_out_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["train", "--epochs", "1", "--out", str(blocker / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot write to run directory" in err and str(blocker) in err


def test_unknown_config_key(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"epochs": 1, "learning_rate": 0.1}')
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "unknown setting(s) ['learning_rate']" in capsys.readouterr().err


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for flag in ("--epochs", "--batch-size", "--lr", "--latent-dim", "--hidden", "--seed",
                 "--device", "--out", "--config", "--resume"):
        assert flag in text


def test_evaluate_sample_plot(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--epochs", "2", "--hidden", "32", "--latent-dim", "2",
                 "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--k", "20", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["nll"] > 0 and result["k"] == 20 and result["num_examples"] == 300
    saved = json.loads((run / "evaluation.json").read_text())
    assert saved["nll"] == result["nll"]
    assert main(["evaluate", str(run), "--k", "5", "--subset", "50", "--quiet"]) == 0
    assert "50 examples" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--k", "20", "--refine-steps", "30", "--json", "--quiet"]) == 0
    refined = json.loads(capsys.readouterr().out)
    assert refined["refine_steps"] == 30 and refined["nll"] < result["nll"] + 1.0
    assert main(["sample", str(run), "--n", "12", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()
    (run / "manifold.png").unlink()
    assert main(["plot", str(run)]) == 0
    for name in ("manifold", "traversals", "latent_scatter", "reconstructions", "loss"):
        assert (run / f"{name}.png").is_file()


def _pixels(path):
    with Image.open(path) as img:
        return img.tobytes()


def test_plot_seed_picks_the_figures_random_draws(tmp_path):
    """`plot --seed N` draws other prior samples and examples; the default is the run's seed."""
    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--hidden", "16", "--seed", "3",
                 "--out", str(run), "--quiet"]) == 0
    trained = {n: _pixels(run / f"{n}.png") for n in ("samples", "reconstructions")}
    assert main(["plot", str(run)]) == 0
    for name, pixels in trained.items():
        assert _pixels(run / f"{name}.png") == pixels
    assert main(["plot", str(run), "--seed", "4"]) == 0
    seed4 = {n: _pixels(run / f"{n}.png") for n in trained}
    for name, pixels in trained.items():
        assert seed4[name] != pixels
    assert main(["plot", str(run), "--seed", "4"]) == 0
    assert {n: _pixels(run / f"{n}.png") for n in trained} == seed4


def test_evaluate_rejects_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_version_in_one_place(capsys):
    from pathlib import Path

    import reparam

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"reparam {reparam.__version__}"
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "reparam.__version__"}
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["reparam"]
    assert (Path(reparam.__file__).parent / "py.typed").is_file()


def test_train_refusals_in_process(tmp_path, capsys):
    """Bad flags and resume collisions: exit 2, the problem named, nothing written."""
    from reparam.cli import main

    for argv, message in [(["--free-bits", "-1"], "'free_bits' must be a finite number"),
                          (["--kl", "nope"], "'kl' must be one of"),
                          (["--posterior", "nope"], "unknown posterior"),
                          (["--fused", "--compile"], "exclude each other"),
                          (["--fused", "--prior", "mog"], "fused step cannot apply")]:
        assert main(["train", *argv, "--out", str(tmp_path / "x"), "--quiet"]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "x").exists()
    run = tmp_path / "r"
    assert main(["train", "--epochs", "1", "--hidden", "16", "--out", str(run), "--quiet",
                 "--no-tensorboard"]) == 0
    before = (run / "config.json").read_bytes()
    for argv, message in [(["--out", str(tmp_path / "y")], "conflicts with resume"),
                          (["--dataset", "mnist"], "cannot change ['dataset']")]:
        assert main(["train", "--resume", str(run), "--quiet", *argv]) == 2
        assert message in capsys.readouterr().err
        assert (run / "config.json").read_bytes() == before

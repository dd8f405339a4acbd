"""The training loop: learning happens, runs are reproducible and resumable."""

import numpy as np
import pytest
import torch

from reparam.data import load_dataset
from reparam.runs import read_json
from reparam.vae import VAE, TrainConfig, elbo, train


def test_training_improves_clearly_over_untrained():
    result = train(TrainConfig(epochs=15), save=False, progress=False)
    m = result.metrics
    # an untrained model sits near -44 nats; a trained one well above -30
    assert m["test_elbo"] > m["initial_test_elbo"] + 10
    assert m["test_kl"] > 0.5  # the latent is used


def test_same_seed_same_numbers():
    a = train(epochs=2, hidden=[32], save=False, progress=False)
    b = train(epochs=2, hidden=[32], save=False, progress=False)
    assert a.metrics["test_elbo"] == b.metrics["test_elbo"]
    c = train(epochs=2, hidden=[32], seed=1, save=False, progress=False)
    assert c.metrics["test_elbo"] != a.metrics["test_elbo"]


def test_resume_continues_exactly(tmp_path):
    full = train(epochs=4, hidden=[32], out=str(tmp_path / "full"), progress=False)
    part = train(epochs=2, hidden=[32], out=str(tmp_path / "part"), progress=False)
    resumed = train(resume=part.run_dir, epochs=4, progress=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert (tmp_path / "part" / "history.csv").read_text().splitlines()[1].startswith("1,")
    for k in full.model.state_dict():
        torch.testing.assert_close(full.model.state_dict()[k], resumed.model.state_dict()[k],
                                   rtol=0, atol=0)
    assert read_json(tmp_path / "part" / "config.json")["epochs"] == 4


def test_elbo_pieces_are_consistent():
    torch.manual_seed(0)
    model = VAE(64, latent_dim=3, hidden=(16,))
    x = (torch.rand(10, 64) > 0.5).float()
    out = elbo(model, x, num_samples=4)
    torch.testing.assert_close(out.elbo, -(out.recon + out.kl))
    torch.testing.assert_close(out.loss.detach(), -out.elbo)
    # the analytic KL equals torch's registered KL against the prior
    q = model.encode(x)
    kl = torch.distributions.kl_divergence(
        torch.distributions.Independent(q, 1), model.prior()).mean()
    torch.testing.assert_close(out.kl, kl.detach())
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_time_limit_stops_the_run(tmp_path):
    result = train(epochs=1000, hidden=[16], time_limit="1s", out=str(tmp_path / "r"), progress=False)
    assert result.metrics["stop_reason"] == "time_limit"
    assert result.metrics["epochs"] < 1000 and result.metrics["wall_time_s"] < 3


def test_schedules_cosine_and_warmup():
    from reparam.vae.training import schedules

    cfg = TrainConfig(lr=1e-3, lr_schedule="cosine", warmup=0.1, beta=1.0)
    assert schedules(cfg, 0.0) == (1e-3, 0.0)
    lr, beta = schedules(cfg, 0.05)
    assert beta == 0.5 and lr < 1e-3
    lr, beta = schedules(cfg, 0.5)
    assert beta == 1.0 and abs(lr - 5e-4) < 1e-12
    assert schedules(cfg, 1.0)[0] < 1e-15


def test_early_stopping_keeps_the_best_validation_model():
    result = train(epochs=60, hidden=[64], patience=2, lr=3e-3, save=False, progress=False)
    valid = [row["valid_elbo"] for row in result.history]
    assert result.metrics["stop_reason"] == "early_stopping"
    assert max(valid) not in valid[-2:]  # stopped after `patience` epochs without improvement


def test_bad_time_limit_and_train_on():
    import pytest

    with pytest.raises(ValueError, match="'time_limit' must be a positive duration"):
        TrainConfig(time_limit="soon")
    with pytest.raises(ValueError, match="has no validation split"):
        train(epochs=1, train_on="train+valid", save=False, progress=False)


def test_iwae_from_switches_objective_and_survives_resume(tmp_path):
    kwargs = dict(hidden=[32], k=3, progress=False)
    switched = train(epochs=4, iwae_from=0.5, save=False, **kwargs)
    plain = train(epochs=4, save=False, **kwargs)
    assert switched.metrics["iwae_from_epoch"] == 3 and plain.metrics["iwae_from_epoch"] is None
    # the same first two epochs, then different objectives (IWAE bound >= ELBO on average)
    assert switched.history[1]["train_elbo"] == plain.history[1]["train_elbo"]
    assert switched.history[2]["train_elbo"] != plain.history[2]["train_elbo"]
    full = train(epochs=4, iwae_from=0.5, out=str(tmp_path / "full"), **kwargs)
    train(epochs=2, out=str(tmp_path / "part"), **kwargs)  # then resumed with the switch
    resumed = train(resume=tmp_path / "part", epochs=4, iwae_from=0.5, progress=False)
    assert resumed.metrics["iwae_from_epoch"] == 3
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(v, resumed.model.state_dict()[k], rtol=0, atol=0)


def test_iwae_from_with_dreg_runs_stl_then_dreg(monkeypatch):
    from reparam.vae import training

    used = []
    for name in ("elbo", "iwae"):
        real = getattr(training, name)

        def spy(*args, _real=real, _name=name, **kw):
            if torch.is_grad_enabled():  # a training step, not the start-up probe
                used.append((_name, type(kw["estimator"]).__name__))
            return _real(*args, **kw)
        monkeypatch.setattr(training, name, spy)
    result = train(epochs=4, iwae_from=0.5, estimator="dreg", hidden=[32], k=3, progress=False,
                   save=False)
    assert result.metrics["iwae_from_epoch"] == 3
    steps = len(used) // 4
    assert set(used[:2 * steps]) == {("elbo", "STL")}
    assert set(used[2 * steps:]) == {("iwae", "DReG")}


def test_dreg_without_iwae_from_is_not_silently_stl():
    import pytest

    with pytest.raises(ValueError, match="'dreg' is a multi-sample estimator"):
        train(epochs=1, estimator="dreg", hidden=[32], progress=False, save=False)


def test_iwae_from_rejects_settings_the_bound_lacks():
    import pytest

    for bad in (dict(iwae_from=1.5), dict(iwae_from=0.5, beta=0.5),
                dict(iwae_from=0.1, warmup=0.2), dict(iwae_from=0.5, estimator="stl"),
                dict(iwae_from=0.5, estimator="score"),
                dict(iwae_from=0.5, objective="iwae")):
        with pytest.raises(ValueError, match="iwae_from"):
            TrainConfig(**bad)


def test_memory_mapped_data_trains_exactly_as_in_memory(tmp_path):
    digits = load_dataset("digits")
    np.save(tmp_path / "train.npy", (digits.train.numpy() * 255).astype(np.uint8))
    np.save(tmp_path / "test.npy", (digits.test.numpy() * 255).astype(np.uint8))
    base = dict(dataset=f"npy:{tmp_path}", binarize="threshold", epochs=2, hidden=[16],
                latent_dim=2, patience=1)  # patience: a validation part carved from the map
    ram = train(TrainConfig(**base, mmap=False), save=False, progress=False)
    mapped = train(TrainConfig(**base, mmap=True), save=False, progress=False)
    keys = ("train_elbo", "test_elbo", "valid_elbo")
    assert [[r[k] for k in keys] for r in mapped.history] == [[r[k] for k in keys] for r in ram.history]
    assert mapped.metrics["test_elbo"] == ram.metrics["test_elbo"]
    with pytest.raises(ValueError, match="npy: data only.*digits"):
        train(TrainConfig(mmap=True, epochs=1), save=False, progress=False)

"""gradient_stats / check_unbiased against exact moments of known estimate distributions."""

from __future__ import annotations

import math

import pytest
import torch

from reparam.diagnostics import check_unbiased, gradient_stats


def _linear_noise(n_rep, scale, gen):
    """A fake estimator whose gradient for ``w`` is ``1 + scale * eps`` per replica."""
    w = torch.zeros(n_rep, dtype=torch.float64, requires_grad=True)

    def surrogate():
        eps = torch.randn(n_rep, dtype=torch.float64, generator=gen)
        return (w * (1.0 + scale * eps)).sum()
    return w, surrogate


def test_moments_and_standard_errors_match_gaussian_theory():
    gen = torch.Generator().manual_seed(0)
    w, surrogate = _linear_noise(5000, 2.0, gen)
    s = gradient_stats(surrogate, {"w": w}, repeats=4, replica_dim=0).params["w"]
    n = 20000
    assert abs(s.mean - 1.0) < 5 * s.mean_se
    assert float(s.mean_se) == pytest.approx(2.0 / math.sqrt(n), rel=0.02)
    assert abs(s.variance - 4.0) < 5 * s.variance_se
    # Gaussian: Var(s^2) = 2 sigma^4 / (n - 1)
    assert float(s.variance_se) == pytest.approx(math.sqrt(2 * 16 / (n - 1)), rel=0.05)
    # SNR = 0.5; Gaussian delta method: Var = (1 + snr^2 / 2) / n
    assert abs(s.snr - 0.5) < 5 * s.snr_se
    assert float(s.snr_se) == pytest.approx(math.sqrt((1 + 0.125) / n), rel=0.05)


def test_snr_standard_error_is_honest_over_repetitions():
    """The spread of SNR estimates over independent runs matches the reported SE."""
    gen = torch.Generator().manual_seed(1)
    snrs, ses = [], []
    for _ in range(40):
        w, surrogate = _linear_noise(500, 1.5, gen)
        s = gradient_stats(surrogate, {"w": w}, repeats=1, replica_dim=0).params["w"]
        snrs.append(float(s.snr))
        ses.append(float(s.snr_se))
    spread = torch.tensor(snrs).std().item()
    assert spread == pytest.approx(sum(ses) / len(ses), rel=0.35)


def test_efficiency_and_timing():
    gen = torch.Generator().manual_seed(2)
    w, surrogate = _linear_noise(10, 1.0, gen)
    res = gradient_stats(surrogate, [("w", w)], repeats=10)
    assert res.estimates == 10 and res.seconds_per_estimate > 0
    assert res.efficiency("w") == pytest.approx(
        1 / (res.params["w"].total_variance * res.seconds_per_estimate))
    d = res.to_dict()
    assert set(d["params"]["w"]) >= {"mean", "variance", "snr", "efficiency"}


def test_check_unbiased_passes_and_fails():
    gen = torch.Generator().manual_seed(3)
    w, surrogate = _linear_noise(2000, 1.0, gen)
    ok = check_unbiased(surrogate, {"w": w}, {"w": torch.ones(())}, repeats=4, replica_dim=0)
    assert ok.passed and ok.max_abs_z < 5
    bad = check_unbiased(surrogate, {"w": w}, {"w": torch.full((), 1.1)}, repeats=4,
                         replica_dim=0)
    assert not bad.passed
    # a reference with its own error widens the test
    wide = check_unbiased(surrogate, {"w": w}, {"w": torch.full((), 1.1)}, repeats=4,
                          replica_dim=0, reference_se={"w": torch.full((), 0.05)})
    assert wide.passed


def test_zero_variance_estimates_compare_exactly():
    w = torch.zeros(3, requires_grad=True)
    exact = check_unbiased(lambda: (w * 2.0).sum(), {"w": w}, {"w": torch.full((3,), 2.0)},
                           repeats=5)
    assert exact.passed
    wrong = check_unbiased(lambda: (w * 2.0).sum(), {"w": w}, {"w": torch.full((3,), 2.1)},
                           repeats=5)
    assert not wrong.passed and math.isinf(wrong.max_abs_z)


def test_infinite_or_nan_standard_errors_never_pass():
    """A standard error of inf (an estimate with an infinite sample) or a nan one must not
    turn z into 0 and pass the test."""
    w = torch.zeros(3, requires_grad=True)
    calls = iter(range(100))

    def surrogate():  # the second estimate of coordinate 0 is inf, coordinate 1 is nan
        i = next(calls)
        scale = torch.tensor([math.inf if i == 1 else 1.0, math.nan if i == 1 else 1.0, 1.0])
        return (w * scale * (1.0 + 0.01 * i)).sum()

    res = check_unbiased(surrogate, {"w": w}, {"w": torch.ones(3)}, repeats=6)
    assert not res.passed
    assert math.isinf(float(res.z["w"][0])) and not res.z["w"][1].isfinite()
    wide = check_unbiased(lambda: (w * 2.0).sum(), {"w": w}, {"w": torch.full((3,), 2.0)},
                          repeats=5, reference_se={"w": torch.full((3,), math.inf)})
    assert not wide.passed


def test_a_nan_z_in_a_later_parameter_is_not_hidden():
    from reparam.diagnostics import Unbiasedness

    res = Unbiasedness({"a": torch.tensor([1.0]), "b": torch.tensor([math.nan])}, 5.0, None)
    assert math.isnan(res.max_abs_z) and not res.passed


def test_errors():
    w = torch.zeros(2)
    with pytest.raises(ValueError, match="does not require grad"):
        gradient_stats(lambda: w.sum(), {"w": w})
    with pytest.raises(ValueError, match="at least one"):
        gradient_stats(lambda: w.sum(), {})
    v = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="at least 4 estimates"):
        gradient_stats(lambda: v.sum(), {"v": v}, repeats=2)

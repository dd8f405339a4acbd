r"""Measure a gradient estimator: bias, variance, signal-to-noise ratio and cost.

``gradient_stats(surrogate, params, repeats)`` calls ``surrogate()`` (a closure returning a
scalar whose gradient is the estimate, e.g. ``lambda: est(f, Normal(mu, sigma), 16).sum()``)
``repeats`` times at fixed parameters and reports, per parameter tensor and coordinate,

- ``mean`` with standard error ``sqrt(v / R)``,
- ``variance`` ``v`` (unbiased) with standard error ``sqrt((m4 - (R-3)/(R-1) v^2) / R)``,
- ``snr = |mean| / sqrt(v)`` with the delta-method error
  ``sqrt((1 + snr^2 (m4/v^2 - 1) / 4 - mean m3 / v^2) / R)``,

plus the wall time per estimate and ``efficiency = 1 / (sum(variance) x time)``, the
figure that compares estimators at equal cost. ``replica_dim`` declares a dimension of
every gradient that holds independent replicas (a batch of copies of the same problem):
each call then yields that many estimates. ``check_unbiased`` z-tests the mean against a
reference gradient.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch

__all__ = ["ParamStats", "GradientStats", "gradient_stats", "Unbiasedness", "check_unbiased"]

Params = Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]]


@dataclass
class ParamStats:
    """Per-coordinate statistics of one parameter tensor's gradient estimates (float64)."""

    mean: torch.Tensor
    mean_se: torch.Tensor
    variance: torch.Tensor
    variance_se: torch.Tensor
    snr: torch.Tensor
    snr_se: torch.Tensor

    @property
    def total_variance(self) -> float:
        return float(self.variance.sum())


@dataclass
class GradientStats:
    params: dict[str, ParamStats]
    estimates: int
    seconds_per_estimate: float

    def efficiency(self, name: str) -> float:
        """``1 / (total variance x seconds per estimate)`` for parameter ``name``."""
        v = self.params[name].total_variance
        return math.inf if v == 0 else 1.0 / (v * self.seconds_per_estimate)

    def to_dict(self) -> dict:
        out = {"estimates": self.estimates, "seconds_per_estimate": self.seconds_per_estimate,
               "params": {}}
        for name, s in self.params.items():
            row = {k: getattr(s, k).tolist() for k in
                   ("mean", "mean_se", "variance", "variance_se", "snr", "snr_se")}
            row["efficiency"] = self.efficiency(name)
            out["params"][name] = row
        return out


class _Moments:
    """Streaming power sums of ``x - shift`` in float64 (shift = first estimate)."""

    def __init__(self) -> None:
        self.n = 0
        self.shift: torch.Tensor | None = None
        zero = torch.zeros((), dtype=torch.float64)  # replaced by the first add
        self.s1, self.s2, self.s3, self.s4 = zero, zero, zero, zero

    def add(self, x: torch.Tensor) -> None:  # x: (n, *shape)
        x = x.detach().to(torch.float64)
        if self.shift is None:
            self.shift = x[0].clone()
            self.s1, self.s2, self.s3, self.s4 = (torch.zeros_like(self.shift) for _ in range(4))
        d = x - self.shift
        d2 = d * d
        self.s1 += d.sum(0)
        self.s2 += d2.sum(0)
        self.s3 += (d2 * d).sum(0)
        self.s4 += (d2 * d2).sum(0)
        self.n += x.shape[0]

    def stats(self) -> ParamStats:
        n = self.n
        if n < 4:
            raise ValueError(f"need at least 4 estimates for standard errors, got {n}")
        assert self.shift is not None  # set by the first add
        a = self.s1 / n
        e2, e3, e4 = self.s2 / n, self.s3 / n, self.s4 / n
        m2 = (e2 - a * a).clamp_min(0)
        m3 = e3 - 3 * a * e2 + 2 * a**3
        m4 = (e4 - 4 * a * e3 + 6 * a * a * e2 - 3 * a**4).clamp_min(0)
        mean = self.shift + a
        var = m2 * n / (n - 1)
        var_se = ((m4 - (n - 3) / (n - 1) * var * var).clamp_min(0) / n).sqrt()
        safe = var > 0
        sd = var.sqrt().where(safe, torch.ones_like(var))
        snr = (mean.abs() / sd).where(safe, torch.full_like(var, math.inf))
        kurt = m4 / (sd**4)
        snr_var = (1 + snr**2 * (kurt - 1) / 4 - mean * m3 / sd**4).clamp_min(0) / n
        snr_se = snr_var.sqrt().where(safe, torch.zeros_like(var))
        return ParamStats(mean, (var / n).sqrt(), var, var_se, snr, snr_se)


def _named(params: Params) -> dict[str, torch.Tensor]:
    named = dict(params.items() if isinstance(params, Mapping) else params)
    if not named:
        raise ValueError("params must name at least one tensor")
    for name, p in named.items():
        if not p.requires_grad:
            raise ValueError(f"params: tensor {name!r} does not require grad")
    return named


def _grads(surrogate, tensors):
    out = surrogate()
    return torch.autograd.grad(out.sum() if out.dim() else out, tensors, allow_unused=True)


def _sync(params: dict[str, torch.Tensor]) -> None:
    dev = next(iter(params.values())).device
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def gradient_stats(surrogate: Callable[[], torch.Tensor], params: Params, repeats: int = 1000,
                   *, warmup: int = 0, replica_dim: int | None = None) -> GradientStats:
    """Call ``surrogate()`` ``warmup + repeats`` times; statistics of ``d surrogate / d params``
    (a non-scalar surrogate is summed) over the last ``repeats`` calls, times
    ``params[...].shape[replica_dim]`` replicas when ``replica_dim`` is given."""
    named = _named(params)
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    tensors = list(named.values())
    for _ in range(warmup):
        _grads(surrogate, tensors)
    moments = {n: _Moments() for n in named}
    seconds = 0.0
    for _ in range(repeats):
        _sync(named)
        t0 = time.perf_counter()
        grads = _grads(surrogate, tensors)
        _sync(named)
        seconds += time.perf_counter() - t0
        for (name, p), g in zip(named.items(), grads, strict=True):
            g = torch.zeros_like(p) if g is None else g
            g = g.unsqueeze(0) if replica_dim is None else g.movedim(replica_dim, 0)
            moments[name].add(g)
    n = next(iter(moments.values())).n
    return GradientStats({k: m.stats() for k, m in moments.items()}, n, seconds / n)


@dataclass
class Unbiasedness:
    """``z = (mean - reference) / sqrt(mean_se^2 + reference_se^2)`` per coordinate."""

    z: dict[str, torch.Tensor]
    threshold: float
    stats: GradientStats

    @property
    def max_abs_z(self) -> float:
        """The largest ``|z|``; ``nan`` when any coordinate's z is nan (never passes)."""
        values = [float(z.abs().max()) for z in self.z.values()]
        return math.nan if any(math.isnan(v) for v in values) else max(values)

    @property
    def passed(self) -> bool:
        return self.max_abs_z < self.threshold


def check_unbiased(surrogate: Callable[[], torch.Tensor], params: Params,
                   reference: Mapping[str, torch.Tensor], repeats: int = 1000, *,
                   reference_se: Mapping[str, torch.Tensor] | None = None,
                   threshold: float = 5.0, warmup: int = 0,
                   replica_dim: int | None = None) -> Unbiasedness:
    """Z-test of the estimator's mean against ``reference`` (exact, quadrature, or a
    high-sample estimate with ``reference_se``). Coordinates whose estimates have zero
    variance must match to ``1e-6`` relative (z = 0 or inf); an infinite or nan standard
    error (an estimate without finite variance) cannot pass (z = inf)."""
    stats = gradient_stats(surrogate, params, repeats, warmup=warmup, replica_dim=replica_dim)
    z = {}
    for name, s in stats.params.items():
        ref = torch.as_tensor(reference[name], dtype=torch.float64).to(s.mean.device)
        se2 = s.mean_se**2
        if reference_se is not None and name in reference_se:
            se2 = se2 + torch.as_tensor(reference_se[name], dtype=torch.float64).to(se2.device)**2
        diff = s.mean - ref
        exact = diff.abs() <= 1e-6 * (1 + ref.abs())
        usable = torch.isfinite(se2) & (se2 > 0)
        z[name] = torch.where(usable, diff / se2.clamp_min(1e-300).sqrt(),
                              torch.where(exact & (se2 == 0), 0.0, math.inf))
    return Unbiasedness(z, threshold, stats)

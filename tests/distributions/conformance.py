"""The conformance table: every reparam family, built from the same arguments as torch's twin.

Each :class:`Case` holds the constructor arguments (given identically to
``torch.distributions.<Family>`` and ``reparam.distributions.<Family>``), points inside the
support, points outside it (below / above), probabilities for ``icdf``, and parameters that
torch refuses. ``twin`` is ``None`` for the families torch does not have (their rows still
run the checks that need no twin: support edges, densities outside the support, samples).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributions as td

import reparam.distributions as D

F64, F32 = torch.float64, torch.float32


def t(*values, dtype=F64) -> torch.Tensor:
    return torch.tensor(values if len(values) != 1 else values[0], dtype=dtype)


@dataclass
class Case:
    """One row: ``family(*args, **kwargs)`` in reparam and (when ``twin``) in torch."""

    id: str
    family: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    inside: Any = None          # a value tensor inside the support (batch-shaped)
    below: Any = None           # values below the support (log_prob -inf, cdf 0)
    above: Any = None           # values above the support (log_prob -inf, cdf 1)
    invalid: tuple = ()         # (args, kwargs) that torch refuses with validate_args=True
    twin: bool = True

    def build(self, lib, validate_args=None):
        cls = getattr(D if lib == "reparam" else td, self.family)
        return cls(*self.args, **self.kwargs, validate_args=validate_args)


def _spd(d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=F64)
    return a @ a.T + d * torch.eye(d, dtype=F64)


_COV = _spd(3)
_LOC3 = t(0.5, -1.0, 2.0)


def _real(family, *extra):
    """Location-scale rows on the real line (inside only)."""
    return [
        Case(f"{family.lower()}", family, (t(0.0, 1.5), t(1.0, 0.3)), inside=t(-0.7, 2.0),
             invalid=(((t(0.0), t(-1.0)), {}),)),
        Case(f"{family.lower()}-floats", family, (0.5, 2.0), inside=t(1.3, dtype=F32)),
    ]


CASES: list[Case] = [
    *_real("Normal"), *_real("Laplace"), *_real("Cauchy"), *_real("Gumbel"),
    Case("logistic", "Logistic", (t(0.0, 1.5), t(1.0, 0.3)), inside=t(-0.7, 2.0), twin=False),
    Case("uniform", "Uniform", (t(-1.0, 0.0), t(2.0, 0.5)), inside=t(0.3, 0.2),
         below=t(-2.0, -1.0), above=t(3.0, 1.0), invalid=(((t(1.0), t(0.0)), {}),)),
    Case("exponential", "Exponential", (t(0.5, 2.0),), inside=t(0.3, 1.7), below=t(-1.0, -0.1),
         invalid=(((t(-1.0),), {}),)),
    Case("exponential-float", "Exponential", (1.5,), inside=t(0.4, dtype=F32)),
    Case("weibull", "Weibull", (t(1.0, 2.5), t(0.7, 3.0)), inside=t(0.3, 2.2),
         below=t(-1.0, -0.1), invalid=(((t(1.0), t(0.0)), {}),)),
    Case("pareto", "Pareto", (t(1.0, 2.5), t(3.0, 0.7)), inside=t(1.3, 4.0),
         below=t(0.5, 2.0), invalid=(((t(1.0), t(-2.0)), {}),)),
    Case("kumaraswamy", "Kumaraswamy", (t(0.5, 2.0), t(0.8, 3.0)), inside=t(0.2, 0.7),
         below=t(-0.5, -0.1), above=t(1.5, 1.1), invalid=(((t(0.0), t(1.0)), {}),)),
    Case("halfnormal", "HalfNormal", (t(1.0, 0.4),), inside=t(0.3, 0.9), below=t(-1.0, -0.2),
         invalid=(((t(-1.0),), {}),)),
    Case("lognormal", "LogNormal", (t(0.0, 1.0), t(1.0, 0.5)), inside=t(0.4, 3.0),
         below=t(-1.0, -0.2), invalid=(((t(0.0), t(0.0)), {}),)),
    Case("gamma", "Gamma", (t(0.6, 3.0), t(1.0, 2.0)), inside=t(0.4, 1.3), below=t(-1.0, -0.2),
         invalid=(((t(0.0), t(1.0)), {}),)),
    Case("beta", "Beta", (t(0.6, 3.0), t(1.5, 2.0)), inside=t(0.4, 0.7), below=t(-1.0, -0.2),
         above=t(1.5, 1.01), invalid=(((t(-1.0), t(1.0)), {}),)),
    Case("beta-floats", "Beta", (2.0, 3.0), inside=t(0.3, dtype=F32)),
    Case("dirichlet", "Dirichlet", (t([[1.5, 2.0, 0.7], [0.3, 1.0, 4.0]]),),
         inside=t([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]),
         below=t([[-0.2, 0.7, 0.5], [1.2, -0.1, -0.1]]), invalid=(((t([1.0, -1.0]),), {}),)),
    Case("studentt", "StudentT", (t(3.0, 0.7), t(0.5, -1.0), t(2.0, 0.5)), inside=t(0.1, -2.0),
         invalid=(((t(-1.0),), {}),)),
    Case("studentt-df", "StudentT", (t(5.0, 2.5),), inside=t(0.3, -0.4)),
    Case("studentt-big-df", "StudentT", (t(1.5, 4.0),), inside=t(0.3, -0.4)),
    Case("vonmises", "VonMises", (t(0.5, -2.0), t(2.0, 0.3)), inside=t(0.1, 2.5),
         invalid=(((t(0.0), t(-1.0)), {}),)),
    Case("relaxed-bernoulli-probs", "RelaxedBernoulli", (t(0.5, 2.0),),
         {"probs": t(0.3, 0.8)}, inside=t(0.2, 0.9), below=t(-0.5, -0.1), above=t(1.5, 1.2),
         invalid=(((t(0.5),), {"probs": t(1.5)}),)),
    Case("relaxed-bernoulli-logits", "RelaxedBernoulli", (t(0.7),), {"logits": t(-1.0, 2.0)},
         inside=t(0.2, 0.9)),
    Case("relaxed-categorical-probs", "RelaxedOneHotCategorical", (t(0.5),),
         {"probs": t(0.1, 0.2, 0.3)}, inside=t(0.2, 0.3, 0.5), below=t(-0.2, 0.7, 0.5),
         invalid=(((t(0.5),), {"probs": t(-0.1, 0.2, 0.3)}),)),
    Case("relaxed-categorical-logits", "RelaxedOneHotCategorical", (t(1.3),),
         {"logits": t([[0.0, 1.0, -2.0], [3.0, 0.0, 0.5]])},
         inside=t([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])),
    Case("mvn-covariance", "MultivariateNormal", (_LOC3, _COV), inside=t(0.0, 0.0, 1.0),
         invalid=(((_LOC3, -_COV), {}),)),
    Case("mvn-precision", "MultivariateNormal", (_LOC3,),
         {"precision_matrix": torch.linalg.inv(_COV)}, inside=t(0.0, 0.0, 1.0)),
    Case("mvn-scale-tril", "MultivariateNormal", (_LOC3,),
         {"scale_tril": torch.linalg.cholesky(_COV)}, inside=t(0.0, 0.0, 1.0),
         invalid=((( _LOC3,), {"scale_tril": -torch.eye(3, dtype=F64)}),)),
    Case("lowrank-mvn", "LowRankMultivariateNormal",
         (_LOC3, t([[1.0], [0.5], [-0.3]]), t(1.0, 2.0, 0.5)), inside=t(0.0, 0.0, 1.0),
         invalid=(((_LOC3, t([[1.0], [0.5], [-0.3]]), t(1.0, -2.0, 0.5)), {}),)),
    Case("truncatednormal", "TruncatedNormal", (t(0.0, 1.0), t(1.0, 2.0), t(-1.0, 0.5),
                                                  t(2.0, 4.0)),
         inside=t(0.5, 1.0), below=t(-1.5, 0.0), above=t(2.5, 5.0), twin=False),
    Case("vonmisesfisher", "VonMisesFisher", (t(0.6, 0.8, 0.0), t(3.0)),
         inside=t(0.0, 0.0, 1.0), twin=False),
]

TWINNED = [c for c in CASES if c.twin]

# Attributes and methods compared value for value (name -> how to read it).
READERS: dict[str, Callable[[Any, Case], Any]] = {
    "mean": lambda d, c: d.mean,
    "mode": lambda d, c: d.mode,
    "variance": lambda d, c: d.variance,
    "stddev": lambda d, c: d.stddev,
    "entropy": lambda d, c: d.entropy(),
    "perplexity": lambda d, c: d.perplexity(),
    "log_prob": lambda d, c: d.log_prob(c.inside),
    "cdf": lambda d, c: d.cdf(c.inside),
    "icdf": lambda d, c: d.icdf(torch.full(d.batch_shape, 0.3, dtype=c.inside.dtype)),
    "enumerate_support": lambda d, c: d.enumerate_support(),
    "batch_shape": lambda d, c: d.batch_shape,
    "event_shape": lambda d, c: d.event_shape,
    "has_rsample": lambda d, c: d.has_rsample,
    "has_enumerate_support": lambda d, c: d.has_enumerate_support,
    "support_inside": lambda d, c: d.support.check(c.inside),
    "expand_log_prob": lambda d, c: d.expand((2,) + d.batch_shape).log_prob(c.inside),
    "expand_mean": lambda d, c: d.expand((2,) + d.batch_shape).mean,
    "expand_shapes": lambda d, c: (d.expand((4,) + d.batch_shape).batch_shape,
                                   d.expand((4,) + d.batch_shape).event_shape),
}


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """``("value", v)`` or ``("error", ExceptionType)``."""
    try:
        return "value", fn()
    except Exception as err:  # noqa: BLE001 - the type is what is compared
        return "error", type(err)


def same_value(a: Any, b: Any, rtol: float | None = None) -> bool:
    """Tensors equal to ``rtol`` (1e-10 in float64, 1e-6 in float32 unless given; NaN matches
    NaN, inf matches inf); other values by ``==``."""
    if torch.is_tensor(a) and torch.is_tensor(b):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        double = a.dtype == F64
        rtol = rtol if rtol is not None else (1e-10 if double else 1e-6)
        atol = 1e-12 if double else 1e-7
        if a.dtype == torch.bool:
            return bool((a == b).all())
        both_nan = torch.isnan(a) & torch.isnan(b)
        close = torch.isclose(a, b, rtol=rtol, atol=atol) | both_nan
        return bool(close.all())
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def perturbed(case: Case) -> Case:
    """The same family at other parameters (``x * 1.3``, ``probs ** 1.3``; a unit-vector
    ``loc`` of a sphere family is kept): a distribution to draw from and not evaluate under."""
    def move(name, x):
        if not torch.is_tensor(x) or (case.family == "VonMisesFisher" and name == 0):
            return x
        return x.pow(1.3) if name == "probs" else x * 1.3

    args = tuple(move(i, a) for i, a in enumerate(case.args))
    kwargs = {k: move(k, v) for k, v in case.kwargs.items()}
    return Case(case.id + "-moved", case.family, args, kwargs, twin=case.twin)

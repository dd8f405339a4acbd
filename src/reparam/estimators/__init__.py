r"""Gradient estimators for ``grad_theta E_{q_theta(z)}[f(z)]``, all with one contract.

``estimator(f, dist, num_samples) -> surrogate``: ``f`` maps samples ``(S, *batch, *event)``
to per-sample costs ``(S, *rest)``; the surrogate's value is the Monte Carlo estimate of
``E[f(z)]`` and its ``backward()`` gives this estimator's gradient for the distribution's
parameters and for the parameters inside ``f``.

- :class:`Pathwise`: ``grad f(g(eps, theta))`` (the reparameterization trick).
- :class:`ScoreFunction`: ``(f(z) - b) grad log q(z)``, baselines in :mod:`.baselines`
  (none, EMA, leave-one-out, learned input-dependent, optimal control variate).
- :class:`MeasureValued`: weak derivatives of the Gaussian (Weibull / Maxwell).
- :class:`STL` (ELBO) and :class:`DReG` (IWAE): estimate ``E[f + log q]`` / the IWAE bound
  with ``log q`` at detached parameters (:func:`detach_params`).
- :class:`IWAE`: the K-sample importance weighted bound, pathwise. IWAE and DReG are
  *multi-sample* estimators (``multi_sample = True``): with ``f = -log p(x, z)`` the
  surrogate's value is ``-(logsumexp_k(-f(z_k) - log q(z_k)) - log K)``, shape ``rest``.
- :class:`Auto`: pathwise when the family has ``rsample``, else leave-one-out REINFORCE.

``get("score-loo")`` builds one by name (the names of :data:`ESTIMATORS`).
"""

from collections.abc import Callable

from ._base import Estimator
from ._views import detach_params, parameters, rebuild
from .arm import ARM, DisARM, DisARMIW
from .auto import Auto
from .baselines import EMA, Baseline, ControlVariate, Learned, LeaveOneOut
from .dreg import DReG
from .measure_valued import MeasureValued
from .multi_sample import IWAE
from .pathwise import Pathwise
from .rebar import REBAR, RELAX
from .relaxation import GumbelSoftmax, StraightThrough
from .score_function import ScoreFunction
from .stl import STL
from .vimco import VIMCO

ESTIMATORS: dict[str, Callable[[], Estimator]] = {
    "pathwise": Pathwise,
    "score": ScoreFunction,
    "score-ema": lambda: ScoreFunction(EMA()),
    "score-loo": lambda: ScoreFunction(LeaveOneOut()),
    "score-nvil": lambda: ScoreFunction(Learned()),
    "score-cv": lambda: ScoreFunction(ControlVariate()),
    "measure-valued": MeasureValued,
    "stl": STL,
    "dreg": DReG,
    "iwae": IWAE,
    "auto": Auto,
    # discrete latents (Bernoulli / one-hot categorical; docs/estimators.md)
    "rloo": lambda: ScoreFunction(LeaveOneOut()),
    "vimco": VIMCO,
    "arm": ARM,
    "disarm": DisARM,
    "disarm-iw": DisARMIW,
    "rebar": REBAR,
    "relax": RELAX,
    "gumbel": GumbelSoftmax,
    "straight-through": StraightThrough,
}


def get(name: str) -> Estimator:
    """A fresh estimator by name (one of :data:`ESTIMATORS`)."""
    try:
        return ESTIMATORS[name]()
    except KeyError:
        raise ValueError(f"unknown estimator {name!r}; choose one of {sorted(ESTIMATORS)}") from None


__all__ = [
    "Estimator", "Pathwise", "ScoreFunction", "MeasureValued", "STL", "DReG", "IWAE", "Auto",
    "Baseline", "EMA", "LeaveOneOut", "Learned", "ControlVariate",
    "detach_params", "parameters", "rebuild", "ESTIMATORS", "get",
    "VIMCO", "ARM", "DisARM", "DisARMIW", "REBAR", "RELAX", "GumbelSoftmax", "StraightThrough",
]

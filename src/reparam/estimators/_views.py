"""Views of a distribution through its parameters: list them, rebuild, detach.

torch has no way to evaluate ``log q(z)`` with the parameters cut from the graph
(pytorch#25783); sticking-the-landing and DReG need exactly that. A family is rebuilt from
its constructor arguments: for every argument that is also in ``arg_constraints`` the
tensor the instance holds is taken; of mutually exclusive arguments (``probs``/``logits``,
``scale``/``logvar``, the three MVN matrices) the one that was given is kept (a family
that derives one from another names the given one in a public ``parameterization``).
``Independent`` is unwrapped and rewrapped. Other constructor arguments found as
attributes (``temperature``, ``total_count`` ...) are passed through unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import torch
from torch.distributions import Distribution, Independent
from torch.distributions.utils import lazy_property

__all__ = ["parameters", "rebuild", "detach_params", "with_live", "constants"]

_EXCLUSIVE = (
    ("probs", "logits"),
    ("logvar", "scale"),
    ("scale_tril", "covariance_matrix", "precision_matrix"),
)
_SKIP = {"self", "validate_args"}


def _present(dist: Distribution, name: str) -> bool:
    static = inspect.getattr_static(type(dist), name, None)
    if isinstance(static, lazy_property):
        return name in dist.__dict__
    return hasattr(dist, name)


def _given(dist: Distribution, group: tuple[str, ...], present: list[str]) -> str:
    """Of several exclusive arguments that are all present, the one the user passed."""
    param = getattr(dist, "_param", None)
    for name in present:
        if param is not None and dist.__dict__.get(name) is param:
            return name
    given = getattr(dist, "parameterization", None)  # e.g. Normal: "logvar" or "scale"
    if given in group:
        return given
    return present[0]


def _arguments(dist: Distribution) -> dict[str, object]:
    """Constructor arguments of ``dist`` (tensors as held: attached to the graph)."""
    names = [
        n for n, p in inspect.signature(type(dist).__init__).parameters.items()
        if n not in _SKIP and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    present = [n for n in names if _present(dist, n)]
    drop: set[str] = set()
    for group in _EXCLUSIVE:
        here = [n for n in group if n in present]
        if len(here) > 1:
            drop |= set(here) - {_given(dist, group, here)}
    return {n: getattr(dist, n) for n in present if n not in drop}


def parameters(dist: Distribution) -> dict[str, torch.Tensor]:
    """The tensors that define ``dist`` (its constrained constructor arguments), attached."""
    if isinstance(dist, Independent):
        return parameters(dist.base_dist)
    return {
        n: v for n, v in _arguments(dist).items()
        if n in dist.arg_constraints and torch.is_tensor(v)
    }


def constants(dist: Distribution) -> dict[str, object]:
    """Constructor arguments that are not parameters (passed through on rebuild)."""
    if isinstance(dist, Independent):
        return constants(dist.base_dist)
    return {n: v for n, v in _arguments(dist).items() if n not in parameters(dist)}


def rebuild(dist: Distribution, params: Mapping[str, torch.Tensor]) -> Distribution:
    """A new instance of ``dist``'s family; ``params`` replace the parameters they name."""
    if isinstance(dist, Independent):
        base = rebuild(dist.base_dist, params)
        return Independent(base, dist.reinterpreted_batch_ndims, validate_args=False)
    kwargs = {**constants(dist), **parameters(dist), **params}
    try:
        return type(dist)(**kwargs, validate_args=False)
    except TypeError as err:
        raise TypeError(
            f"cannot rebuild {type(dist).__name__} from arguments {sorted(kwargs)}: {err}"
        ) from None


def detach_params(dist: Distribution) -> Distribution:
    """``dist`` with every parameter detached: ``log_prob`` then has no parameter gradient,
    only the gradient through its argument (the path through ``z``)."""
    params = parameters(dist)
    if not any(v.requires_grad for v in params.values()):
        return dist  # nothing to detach (also covers parameter-free families)
    return rebuild(dist, {n: v.detach() for n, v in params.items()})


def with_live(dist: Distribution, live: str) -> Distribution:
    """``dist`` with only parameter ``live`` attached to the graph, the others detached."""
    params = parameters(dist)
    if live not in params:
        raise ValueError(f"{type(dist).__name__} has no parameter {live!r}; has {sorted(params)}")
    return rebuild(dist, {n: v if n == live else v.detach() for n, v in params.items()})

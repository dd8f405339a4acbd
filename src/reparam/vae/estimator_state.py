"""The state an estimator learns during a run, as named tensors for the checkpoint.

Stateful estimators keep what they learn in attributes: running baselines (EMA means),
networks (NVIL's baseline, RELAX's control variate), scalars trained with their own
optimizer (REBAR's ``eta`` and temperature) and that optimizer's moments. A resumed run is
bit-identical to a straight one only if these come back too. :func:`estimator_tensors`
walks the estimator's attributes (to depth 3) and names every tensor, every module's state
dict entry and every optimizer's per-parameter state by its attribute path;
:func:`load_estimator_tensors` puts them back (modules and optimizers must exist already:
call the estimator once first, see :func:`reparam.vae.training.setup`).
"""

from __future__ import annotations

from typing import Any

import torch

MAX_DEPTH = 3
OPT = "optimizer-state"  # key part that marks an optimizer's per-parameter state


def _walk(obj: Any, prefix: str, tensors: dict, optimizers: dict, depth: int = 0) -> None:
    if depth > MAX_DEPTH or not hasattr(obj, "__dict__"):
        return
    for key, value in vars(obj).items():
        name = f"{prefix}{key}"
        if torch.is_tensor(value):
            tensors[name] = value
        elif isinstance(value, torch.nn.Module):
            tensors.update({f"{name}.{k}": t for k, t in value.state_dict().items()})
        elif isinstance(value, torch.optim.Optimizer):
            optimizers[name] = value
        elif not isinstance(value, (int, float, str, bool, type(None), tuple, list, dict)):
            _walk(value, f"{name}.", tensors, optimizers, depth + 1)


def estimator_tensors(est: Any) -> dict[str, torch.Tensor]:
    """``{attribute path: tensor}`` (detached copies) of everything ``est`` has learned."""
    tensors: dict[str, torch.Tensor] = {}
    optimizers: dict[str, torch.optim.Optimizer] = {}
    _walk(est, "", tensors, optimizers)
    out = {k: v.detach().clone() for k, v in tensors.items()}
    for name, opt in optimizers.items():
        for pid, state in opt.state_dict()["state"].items():
            out.update({f"{name}.{OPT}.{pid}.{k}": torch.as_tensor(v).clone()
                        for k, v in state.items()})
    return out


def _set(obj: Any, path: str, value: torch.Tensor) -> None:
    *head, last = path.split(".")
    for i, key in enumerate(head):
        obj = getattr(obj, key)
        if isinstance(obj, torch.nn.Module):
            target = obj.state_dict()[".".join([*head[i + 1:], last])]
            with torch.no_grad():
                target.copy_(value)
            return
    current = getattr(obj, last, None)
    if torch.is_tensor(current) and current.shape == value.shape:
        with torch.no_grad():
            current.copy_(value.to(current))
    else:
        setattr(obj, last, value)


def load_estimator_tensors(est: Any, tensors: dict[str, torch.Tensor]) -> None:
    """Put :func:`estimator_tensors`' output back into ``est`` (in place where it can)."""
    optimizers: dict[str, torch.optim.Optimizer] = {}
    _walk(est, "", {}, optimizers)
    states: dict[str, dict[int, dict[str, torch.Tensor]]] = {}
    for key, value in tensors.items():
        if f".{OPT}." in key:
            name, rest = key.split(f".{OPT}.", 1)
            pid, field = rest.split(".", 1)
            states.setdefault(name, {}).setdefault(int(pid), {})[field] = value
        else:
            _set(est, key, value)
    for name, state in states.items():
        if name not in optimizers:
            raise ValueError(f"estimator state: the checkpoint has optimizer {name!r}, the "
                             f"estimator {type(est).__name__} has none by that name")
        opt = optimizers[name]
        opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})

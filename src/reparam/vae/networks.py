"""Building blocks for encoders and decoders."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
}


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: str = "tanh") -> nn.Sequential:
    """``Linear -> act -> ... -> Linear``: ``in_dim -> hidden[0] -> ... -> out_dim``."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    sizes = [in_dim, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(sizes[-1], out_dim))
    return nn.Sequential(*layers)

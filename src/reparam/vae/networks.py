"""Building blocks for encoders and decoders."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class Gated(nn.Module):
    """Gated linear unit (Dauphin et al. 2017; the "GatedDense" of VampPrior):
    ``h = (W x + b) * sigmoid(V x + c)``, one ``Linear(a, 2 b)`` split in two."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, 2 * out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.glu(self.linear(x), dim=-1)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: str = "tanh",
        gated: bool = False) -> nn.Sequential:
    """``Linear -> act -> ... -> Linear``: ``in_dim -> hidden[0] -> ... -> out_dim``; with
    ``gated`` every hidden layer is a :class:`Gated` unit (no activation)."""
    act = make_activation(activation)  # validates the name
    sizes = [in_dim, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [Gated(a, b)] if gated else [nn.Linear(a, b), type(act)()]
    layers.append(nn.Linear(sizes[-1], out_dim))
    return nn.Sequential(*layers)

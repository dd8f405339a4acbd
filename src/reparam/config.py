"""One training configuration, shared by the CLI and the Python API; defaults live here."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _opt(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Every setting of a training run (written to ``config.json``)."""

    dataset: str = _opt("digits", "dataset name (see reparam.data.DATASETS)")
    data_dir: str | None = _opt(None, "folder with local data files (else $REPARAM_DATA_DIR)")
    epochs: int = _opt(100, "number of passes over the training set")
    batch_size: int = _opt(64, "examples per gradient step")
    lr: float = _opt(1e-3, "Adam learning rate")
    latent_dim: int = _opt(8, "dimension L of the latent variable z")
    hidden: list[int] = _opt([256, 256], "hidden layer widths of encoder (decoder mirrors)")
    activation: str = _opt("tanh", "hidden activation: relu, tanh, elu, gelu, softplus")
    num_samples: int = _opt(1, "reparameterized samples of z per example in the training ELBO")
    beta: float = _opt(1.0, "weight of the KL term in the training loss (beta-VAE)")
    eval_samples: int = _opt(16, "samples of z per example when evaluating the ELBO")
    seed: int = _opt(0, "random seed (same seed + same device -> same numbers)")
    device: str = _opt("auto", "cpu, cuda, cuda:N or auto (cuda when available)")
    out: str | None = _opt(None, "run directory (default runs/<timestamp>)")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        positive_ints = ("epochs", "batch_size", "latent_dim", "num_samples", "eval_samples")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"config: '{name}' must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"config: 'lr' must be a positive number, got {self.lr!r}")
        if not (isinstance(self.beta, (int, float)) and self.beta >= 0):
            raise ValueError(f"config: 'beta' must be >= 0, got {self.beta!r}")
        if not self.hidden or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"config: 'hidden' must be positive integers, got {self.hidden!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"config: 'device' must be cpu, cuda, cuda:N or auto, got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"config: unknown setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a ``.json`` or ``.toml`` file (e.g. a run's ``config.json``)."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file not found: {path}")
        text = path.read_text()
        try:
            values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
            raise ValueError(f"config file {path} is not valid {path.suffix[1:]}: {err}") from None
        return cls.from_dict(values)

    def replace(self, **changes: Any) -> TrainConfig:
        return self.from_dict({**self.to_dict(), **changes})

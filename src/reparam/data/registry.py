"""Dataset names to loaders (one dict, no if/elif chain)."""

from __future__ import annotations

from collections.abc import Callable

from .base import Dataset
from .digits import load_digits

DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
}


def load_dataset(name: str = "digits", **kwargs) -> Dataset:
    """Load a dataset by name; ``kwargs`` go to its loader."""
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}"
        ) from None
    return loader(**kwargs)

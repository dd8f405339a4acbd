"""Dataset names to loaders (one dict, no if/elif chain).

Names: ``digits``, ``mnist``, ``fashion-mnist``, ``kmnist``, ``binarized-mnist``; a user's
files with a scheme prefix: ``npy:<path>`` (a ``.npy`` or ``.npz`` file; ``npz:`` is an
alias) and ``folder:<path>`` (a folder of images).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from .amat import load_binarized_mnist
from .base import Dataset
from .digits import load_digits
from .idx import LOADERS as IDX_LOADERS
from .images import load_image_folder
from .user import load_arrays

DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    **IDX_LOADERS,
    "binarized-mnist": load_binarized_mnist,
}
SCHEMES: dict[str, Callable[..., Dataset]] = {
    "npy": load_arrays,
    "npz": load_arrays,
    "folder": load_image_folder,
}
# Keywords a loader may not use (where files live; a seed for data with no randomness):
# dropped for loaders without them, so one CLI can pass --data-dir / --seed for any dataset.
OPTIONAL_KEYS = ("data_dir", "download", "mirror", "seed")


def load_dataset(name: str = "digits", **kwargs: object) -> Dataset:
    """Load a dataset by name (or ``scheme:path``); ``kwargs`` go to its loader."""
    scheme, _, path = name.partition(":")
    args: tuple[str, ...]
    if name in DATASETS:
        loader, args = DATASETS[name], ()
    elif path and scheme in SCHEMES:
        loader, args = SCHEMES[scheme], (path,)
    else:
        hint = f" (your own files: npy:{name} or folder:{name})" if Path(name).exists() else ""
        raise ValueError(
            f"unknown dataset {name!r}; choose one of {sorted(DATASETS)} or "
            f"{', '.join(s + ':<path>' for s in SCHEMES)}{hint}"
        )
    params = inspect.signature(loader).parameters
    for key in OPTIONAL_KEYS:
        if key not in params:
            kwargs.pop(key, None)
    return loader(*args, **kwargs)

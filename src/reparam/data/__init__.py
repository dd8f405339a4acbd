"""Datasets as float tensors in [0, 1], one row per example: ``load_dataset(name, ...)``."""

from .base import Dataset
from .download import ChecksumError, DataFileError, MissingDataError, data_root
from .registry import DATASETS, SCHEMES, load_dataset

__all__ = [
    "DATASETS",
    "SCHEMES",
    "ChecksumError",
    "DataFileError",
    "Dataset",
    "MissingDataError",
    "data_root",
    "load_dataset",
]

"""Datasets as float tensors in [0, 1], one row per example: ``load_dataset(name, ...)``."""

from .base import Dataset
from .registry import DATASETS, load_dataset

__all__ = ["Dataset", "DATASETS", "load_dataset"]

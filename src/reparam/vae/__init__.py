"""The VAE toolkit: model, objectives, training and evaluation."""

from ..config import TrainConfig
from .evaluation import evaluate_elbo
from .model import VAE
from .objectives import Loss, elbo
from .training import TrainResult, train

__all__ = ["VAE", "Loss", "elbo", "train", "TrainConfig", "TrainResult", "evaluate_elbo"]

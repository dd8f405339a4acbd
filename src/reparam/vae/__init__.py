"""The VAE toolkit: model, objectives, training and evaluation."""

from ..config import TrainConfig
from .evaluation import evaluate, evaluate_elbo, log_likelihood
from .factory import build_model
from .model import VAE
from .objectives import Loss, elbo, iwae, linear_warmup, log_weights
from .training import TrainResult, load_run, train

__all__ = ["VAE", "Loss", "elbo", "iwae", "linear_warmup", "log_weights", "build_model", "train",
           "TrainConfig", "TrainResult", "load_run", "evaluate", "evaluate_elbo", "log_likelihood"]

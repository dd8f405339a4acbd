"""Evaluation of a trained model on a dataset, batched, without gradients."""

from __future__ import annotations

import torch

from ..noise import MonteCarlo
from .objectives import elbo


@torch.no_grad()
def evaluate_elbo(model, x: torch.Tensor, num_samples: int = 16, batch_size: int = 1000,
                  generator: torch.Generator | None = None) -> dict[str, float]:
    """Mean ELBO, reconstruction term and KL over ``x`` (nats per example)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    noise = MonteCarlo(generator)
    totals = {"elbo": 0.0, "recon": 0.0, "kl": 0.0}
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size].to(device)
        out = elbo(model, xb, num_samples=num_samples, noise=noise)
        for key in totals:
            totals[key] += float(getattr(out, key)) * xb.shape[0]
    model.train(was_training)
    return {key: value / x.shape[0] for key, value in totals.items()}

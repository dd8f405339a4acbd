"""reparam: the reparameterization trick, its estimators, and a VAE toolkit on PyTorch."""

from . import distributions, noise

__version__ = "0.1.0"

__all__ = ["distributions", "noise", "__version__"]

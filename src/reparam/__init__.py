"""reparam: the reparameterization trick, its estimators, and a VAE toolkit on PyTorch."""

from . import diagnostics, distributions, estimators, noise

__version__ = "0.1.0"

__all__ = ["diagnostics", "distributions", "estimators", "noise", "__version__"]

"""reparam: the reparameterization trick, its estimators, and a VAE toolkit on PyTorch."""

__version__ = "0.1.0"  # the one place the version lives (pyproject.toml reads it)

from . import diagnostics, distributions, estimators, noise  # noqa: E402

__all__ = ["diagnostics", "distributions", "estimators", "noise", "__version__"]

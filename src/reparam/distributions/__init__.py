"""Reparameterized distribution families (all ``torch.distributions.Distribution``s).

Pathwise (reparameterization) gradients: ``z = g(eps, theta)`` with ``eps`` from a
parameter-free noise source (:mod:`reparam.noise`), so ``d f(z) / d theta`` flows through
``g``. Every family here has ``has_rsample = True`` and accepts ``noise=`` in ``rsample``.
"""

from ._base import Reparameterized
from ._builders import InverseCDF, LocationScale, StandardNoise
from .inverse_cdf import Exponential, HalfNormal, Kumaraswamy, LogNormal, Pareto, Weibull
from .kl import kl_normal_normal, kl_normal_standard
from .location_scale import Cauchy, Gumbel, Laplace, Logistic, Uniform
from .multivariate import LowRankMultivariateNormal, MultivariateNormal
from .normal import Normal
from .relaxed import RelaxedBernoulli, RelaxedOneHotCategorical
from .truncated import TruncatedNormal

__all__ = ["Reparameterized", "Normal", "kl_normal_standard", "kl_normal_normal"]
__all__ += ["LocationScale", "InverseCDF", "StandardNoise", "Laplace", "Logistic", "Cauchy",
            "Gumbel", "Uniform", "Exponential", "Weibull", "Pareto", "Kumaraswamy", "HalfNormal",
            "LogNormal", "TruncatedNormal", "MultivariateNormal", "LowRankMultivariateNormal",
            "RelaxedOneHotCategorical", "RelaxedBernoulli"]

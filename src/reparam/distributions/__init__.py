"""Reparameterized distribution families (all ``torch.distributions.Distribution``s).

Pathwise (reparameterization) gradients: ``z = g(eps, theta)`` with ``eps`` from a
parameter-free noise source (:mod:`reparam.noise`), so ``d f(z) / d theta`` flows through
``g``. Every family here has ``has_rsample = True`` and accepts ``noise=`` in ``rsample``.
"""

from ._base import Reparameterized
from ._builders import InverseCDF, LocationScale, StandardNoise
from .beta import Beta
from .dirichlet import Dirichlet
from .discrete import Bernoulli, Categorical, OneHotCategorical  # noqa: F401 (no rsample)
from .gamma import Gamma
from .implicit import implicit_rsample
from .inverse_cdf import Exponential, HalfNormal, Kumaraswamy, LogNormal, Pareto, Weibull
from .kl import kl_normal_normal, kl_normal_standard
from .location_scale import Cauchy, Gumbel, Laplace, Logistic, Uniform
from .multivariate import LowRankMultivariateNormal, MultivariateNormal
from .normal import Normal
from .rejection import RejectionSample, rejection_rsample
from .relaxed import RelaxedBernoulli, RelaxedOneHotCategorical
from .student_t import StudentT
from .truncated import TruncatedNormal
from .von_mises import VonMises
from .von_mises_fisher import HypersphericalUniform, VonMisesFisher

__all__ = ["Reparameterized", "Normal", "kl_normal_standard", "kl_normal_normal"]
__all__ += ["LocationScale", "InverseCDF", "StandardNoise", "Laplace", "Logistic", "Cauchy",
            "Gumbel", "Uniform", "Exponential", "Weibull", "Pareto", "Kumaraswamy", "HalfNormal",
            "LogNormal", "TruncatedNormal", "MultivariateNormal", "LowRankMultivariateNormal",
            "RelaxedOneHotCategorical", "RelaxedBernoulli"]
__all__ += ["Gamma", "Beta", "Dirichlet", "StudentT", "VonMises", "VonMisesFisher",
            "HypersphericalUniform", "implicit_rsample", "rejection_rsample", "RejectionSample"]

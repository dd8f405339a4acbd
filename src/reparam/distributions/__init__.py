"""Reparameterized distribution families (all ``torch.distributions.Distribution``s).

Pathwise (reparameterization) gradients: ``z = g(eps, theta)`` with ``eps`` from a
parameter-free noise source (:mod:`reparam.noise`), so ``d f(z) / d theta`` flows through
``g``. Every family here has ``has_rsample = True`` and accepts ``noise=`` in ``rsample``.
"""

from ._base import Reparameterized
from .kl import kl_normal_normal, kl_normal_standard
from .normal import Normal

__all__ = ["Reparameterized", "Normal", "kl_normal_standard", "kl_normal_normal"]

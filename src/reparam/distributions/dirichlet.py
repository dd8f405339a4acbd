"""Dirichlet(concentration) via normalized Gammas with exact implicit gradients."""

from __future__ import annotations

import torch
import torch.distributions as td
from torch.distributions import constraints
from torch.distributions.kl import register_kl

from ..noise import NoiseSource
from ._base import Reparameterized, TorchDensity, keep_open
from .implicit import implicit_log_gamma


class Dirichlet(TorchDensity, Reparameterized, td.Dirichlet):
    r"""Dirichlet on the simplex with concentration ``alpha`` of shape ``(..., K)``.

    ``rsample``: ``z = softmax(log G)`` with ``G_k ~ Gamma(alpha_k, 1)`` drawn in log space
    (so ``alpha = 1e-3`` gives vertices of the simplex, never NaN) and the exact implicit
    gradient ``d log G_k / d alpha_k`` of each Gamma (Figurnov et al. 2018, Sec. 3); the
    softmax carries it to ``z``. Noise: as :class:`~reparam.distributions.Gamma`.

    Example::

        >>> alpha = torch.ones(8, 10, requires_grad=True)     # an encoder's output, (B, K)
        >>> z = Dirichlet(alpha).rsample()                      # (B, K) on the simplex
    """

    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    support = constraints.simplex
    has_rsample = True
    reparametrized_params = ("concentration",)

    def __init__(self, concentration: torch.Tensor | float, validate_args: bool | None = None):
        concentration = torch.as_tensor(concentration)
        if concentration.dim() < 1:
            raise ValueError("Dirichlet: parameter 'concentration' must have at least one "
                             "dimension (the K categories)")
        self.concentration = concentration
        super().__init__(concentration.shape[:-1], concentration.shape[-1:],
                         validate_args=validate_args)

    def expand(self, batch_shape: torch.Size | tuple[int, ...],
               _instance: Dirichlet | None = None) -> Dirichlet:
        new = self._get_checked_instance(Dirichlet, _instance)
        batch_shape = torch.Size(batch_shape)
        new.concentration = self.concentration.expand(batch_shape + self.event_shape)
        return self._finish_expand(new, batch_shape)

    @property
    def _torch(self) -> td.Dirichlet:
        return td.Dirichlet(self.concentration, validate_args=False)

    mean = property(lambda self: self.concentration / self.concentration.sum(-1, keepdim=True))
    variance = property(lambda self: self._torch.variance)

    def rsample_log(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                    noise: NoiseSource | None = None) -> torch.Tensor:
        """``log z`` (a log-softmax), finite where ``z`` underflows."""
        shape = self._extended_shape(torch.Size(sample_shape))
        log_g = implicit_log_gamma(self.concentration, shape, noise, "Dirichlet")
        return torch.log_softmax(log_g, dim=-1)

    @keep_open()  # each z_k in [tiny, 1 - eps/2], as torch's samples
    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        log_g = implicit_log_gamma(self.concentration, shape, noise, "Dirichlet")
        return torch.softmax(log_g, dim=-1)


@register_kl(Dirichlet, Dirichlet)
def _kl_dirichlet_dirichlet(p: Dirichlet, q: Dirichlet) -> torch.Tensor:
    """Closed form (torch's): ``lgamma`` of the sums and digammas of ``alpha_p``."""
    return td.kl_divergence(p._torch, q._torch)

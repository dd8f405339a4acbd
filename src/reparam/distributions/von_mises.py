"""Von Mises(loc, concentration) on the circle, with an implicit ``rsample``."""

from __future__ import annotations

import math

import torch
import torch.distributions as td
from torch.distributions import constraints

from ..noise import NoiseSource
from ..special import von_mises_dtheta_dkappa
from ._base import Reparameterized
from ._builders import broadcast_params
from .implicit import implicit_rsample


class VonMises(Reparameterized, td.VonMises):
    r"""Von Mises with density ``exp(kappa cos(z - loc)) / (2 pi I_0(kappa))`` on ``(-pi, pi]``.

    torch's ``VonMises`` has no ``rsample``. Here the angle ``theta`` around ``loc`` comes
    from torch's Best-Fisher rejection sampler (its own uniforms, torch's global generator)
    and carries the implicit gradient ``dtheta/dkappa = -(dF/dkappa)(theta) / p(theta)``,
    accurate to ~1e-13 for ``kappa`` in [1e-3, 1e3]; ``z = loc + theta`` (wrapped to
    ``(-pi, pi]``) is pathwise in ``loc``.

    Example::

        >>> kappa = torch.tensor(4.0, requires_grad=True)
        >>> VonMises(torch.tensor(0.0), kappa).rsample((5000,)).cos().mean().backward()
        >>> kappa.grad    # ~ d/dkappa I_1/I_0 = 1 - A^2 - A/kappa
    """

    arg_constraints = {"loc": constraints.real, "concentration": constraints.positive}
    support = constraints.real
    has_rsample = True
    reparametrized_params = ("loc", "concentration")

    def __init__(self, loc, concentration, validate_args: bool | None = None):
        p = broadcast_params("VonMises", loc=loc, concentration=concentration)
        self.loc, self.concentration = p["loc"], p["concentration"]
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(VonMises, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc, new.concentration = (t.expand(batch_shape) for t in (self.loc, self.concentration))
        return self._finish_expand(new, batch_shape)

    @property
    def _torch(self) -> td.VonMises:
        return td.VonMises(self.loc, self.concentration, validate_args=False)

    mean = property(lambda self: self.loc)
    mode = property(lambda self: self.loc)

    def rsample(self, sample_shape=torch.Size(), noise: NoiseSource | None = None):
        shape = self._extended_shape(torch.Size(sample_shape))
        kappa = self.concentration.detach()
        theta = td.VonMises(torch.zeros_like(kappa), kappa).sample(torch.Size(sample_shape))
        theta = implicit_rsample(theta.expand(shape), (self.concentration,),
                                 lambda t, k: (-von_mises_dtheta_dkappa(t, k),))
        return torch.remainder(self.loc + theta + math.pi, 2 * math.pi) - math.pi

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``kappa cos(z - loc) - log(2 pi) - log I_0(kappa)``."""
        if self._validate_args:
            self._validate_sample(value)
        return self._torch.log_prob(value)

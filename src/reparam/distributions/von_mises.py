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
from .rejection import accept_reject, gather

WIDE = 0.5  # below this kappa the proposal is uniform on the circle


def sample_angle(kappa: torch.Tensor, shape: torch.Size, noise: NoiseSource | None = None,
                 ) -> torch.Tensor:
    r"""``theta ~ VM(0, kappa)`` of ``shape`` (float64, no gradient), by rejection.

    ``kappa < 1/2``: ``theta = pi (2u - 1)``, accepted with ``exp(-2 kappa sin^2(theta/2))``
    (rate ``e^-kappa I_0(kappa) >= 0.64``). Otherwise the Gaussian envelope
    ``exp(-2 kappa theta^2 / pi^2) >= exp(kappa (cos theta - 1))`` (as ``|sin(t/2)| >=
    |t| / pi`` on ``[-pi, pi]``): ``theta = pi eps / (2 sqrt kappa)``, accepted with
    ``exp(2 kappa (theta^2 / pi^2 - sin^2(theta/2)))`` (rate >= ``2 / pi`` for every kappa,
    so ``kappa = 1e20`` costs what ``kappa = 2`` does). ``cos theta - 1`` is written as
    ``-2 sin^2(theta/2)``, exact where ``cos theta`` rounds to 1. Rounds are bounded
    (:func:`~reparam.distributions.rejection.accept_reject`); the first uses ``noise``.
    """
    k = kappa.detach().double().expand(shape)
    if not bool(torch.isfinite(k).all()):
        raise ValueError("VonMises: parameter 'concentration' must be finite to sample")
    wide = k < WIDE
    any_wide, all_wide = bool(wide.any()), bool(wide.all())
    sigma = math.pi / 2 * torch.rsqrt(k.clamp_min(WIDE))

    def draw(source, index):
        sh = shape if index is None else torch.Size([index.numel()])
        kk, ww, ss = (gather(t, shape, index) for t in (k, wide, sigma))
        f64 = {"dtype": torch.float64, "device": k.device}
        theta = None if all_wide else ss * source.normal(sh, **f64)
        if any_wide:
            flat = math.pi * (2 * source.uniform(sh, **f64) - 1)
            theta = flat if theta is None else torch.where(ww, flat, theta)
        half = torch.sin(theta / 2)
        log_acc = -2 * kk * half * half
        if not all_wide:
            log_acc = log_acc + torch.where(ww, 0.0, 2 / math.pi ** 2 * kk * theta * theta)
        ok = (theta.abs() <= math.pi) & (torch.log(source.uniform(sh, **f64)) < log_acc)
        return theta.reshape(-1), ok.reshape(-1)

    return accept_reject(draw, shape, noise, "VonMises")


class VonMises(Reparameterized, td.VonMises):
    r"""Von Mises with density ``exp(kappa cos(z - loc)) / (2 pi I_0(kappa))`` on ``(-pi, pi]``.

    torch's ``VonMises`` has no ``rsample``. Here the angle ``theta`` around ``loc`` comes
    from :func:`sample_angle` (bounded rejection driven by the noise source, any ``kappa``
    up to 1e300) and carries the implicit gradient ``dtheta/dkappa = -(dF/dkappa)(theta) / p(theta)``,
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

    def __init__(self, loc: torch.Tensor | float, concentration: torch.Tensor | float,
                 validate_args: bool | None = None):
        p = broadcast_params("VonMises", loc=loc, concentration=concentration)
        self.loc, self.concentration = p["loc"], p["concentration"]
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape: torch.Size | tuple[int, ...],
               _instance: VonMises | None = None) -> VonMises:
        new = self._get_checked_instance(VonMises, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc, new.concentration = (t.expand(batch_shape) for t in (self.loc, self.concentration))
        return self._finish_expand(new, batch_shape)

    @property
    def _torch(self) -> td.VonMises:
        return td.VonMises(self.loc, self.concentration, validate_args=False)

    mean = property(lambda self: self.loc)
    mode = property(lambda self: self.loc)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        theta = sample_angle(self.concentration, shape, noise).to(self.loc.dtype)
        theta = implicit_rsample(theta, (self.concentration,),
                                 lambda t, k: (-von_mises_dtheta_dkappa(t, k),))
        return torch.remainder(self.loc + theta + math.pi, 2 * math.pi) - math.pi

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``kappa cos(z - loc) - log(2 pi) - log I_0(kappa)``."""
        if self._validate_args:
            self._validate_sample(value)
        return self._torch.log_prob(value)

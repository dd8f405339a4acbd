"""Student-t(df, loc, scale) with learnable degrees of freedom (implicit gradient in df)."""

from __future__ import annotations

import math

import torch
import torch.distributions as td
from torch.distributions import constraints

from ..noise import NoiseSource
from ..special import student_t_dt_dnu
from ._base import Reparameterized, TorchDensity
from ._builders import broadcast_params
from .implicit import implicit_rsample, log_standard_gamma


class StudentT(TorchDensity, Reparameterized, td.StudentT):
    r"""Student-t with ``df`` degrees of freedom, ``z = loc + scale * t``, ``t ~ t_df``.

    ``t = eps sqrt(df / (2 G))``, ``eps ~ N(0, 1)`` from the noise source and
    ``G ~ Gamma(df / 2, 1)`` drawn in log space (see :class:`~reparam.distributions.Gamma`).
    ``df`` gets the implicit gradient ``dt/ddf = -(dF/ddf)(t) / p(t)`` (accurate to ~1e-13
    for ``df`` in [0.1, 1e3]); ``loc`` and ``scale`` are pathwise. torch's ``StudentT`` gives
    ``df`` only the gradient of its chi-square construction.

    Example::

        >>> df = torch.tensor(3.0, requires_grad=True)
        >>> StudentT(df).rsample((1000,)).abs().mean().backward()
    """

    arg_constraints = {"df": constraints.positive, "loc": constraints.real,
                       "scale": constraints.positive}
    support = constraints.real
    has_rsample = True
    reparametrized_params = ("df", "loc", "scale")

    def __init__(self, df, loc=0.0, scale=1.0, validate_args: bool | None = None):
        p = broadcast_params("StudentT", df=df, loc=loc, scale=scale)
        self.df, self.loc, self.scale = p["df"], p["loc"], p["scale"]
        super().__init__(self.df.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(StudentT, _instance)
        batch_shape = torch.Size(batch_shape)
        new.df, new.loc, new.scale = (t.expand(batch_shape) for t in (self.df, self.loc, self.scale))
        return self._finish_expand(new, batch_shape)

    @property
    def _torch(self) -> td.StudentT:
        return td.StudentT(self.df, self.loc, self.scale, validate_args=False)

    mean = property(lambda self: self._torch.mean)
    mode = property(lambda self: self.loc)
    variance = property(lambda self: self._torch.variance)

    def rsample(self, sample_shape=torch.Size(), noise: NoiseSource | None = None):
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = self._draw_normal(sample_shape, noise, self.loc)
        df = self.df.detach()
        log_g = log_standard_gamma(df / 2, shape, noise)
        log_abs = torch.log(eps.abs()) + 0.5 * (torch.log(df) - math.log(2.0) - log_g)
        big = math.log(torch.finfo(eps.dtype).max)
        t = torch.sign(eps) * torch.exp(log_abs.clamp(max=big))  # finite even for df ~ 0.1

        def cdf_grad(value, nu):
            return (torch.nan_to_num(-student_t_dt_dnu(value, nu), posinf=0.0, neginf=0.0),)

        t = implicit_rsample(t, (self.df,), cdf_grad)
        return self.loc + self.scale * t



"""Student-t(df, loc, scale) with learnable degrees of freedom (implicit gradient in df)."""

from __future__ import annotations

import math

import torch
import torch.distributions as td
from torch.distributions import constraints

from ..noise import NoiseSource
from ..special import gamma_dlogx_da
from ._base import Reparameterized, TorchDensity
from ._builders import broadcast_params
from .implicit import implicit_attach, log_standard_gamma


class StudentT(TorchDensity, Reparameterized, td.StudentT):
    r"""Student-t with ``df`` degrees of freedom, ``z = loc + scale * t``, ``t ~ t_df``.

    ``t = eps sqrt(df / (2 G))``, ``eps ~ N(0, 1)`` from the noise source and
    ``G ~ Gamma(df / 2, 1)`` drawn in log space (see :class:`~reparam.distributions.Gamma`).
    ``df`` gets the gradient through ``G``'s exact implicit one (see :meth:`rsample`);
    ``loc`` and ``scale`` are pathwise. torch's ``StudentT`` gives ``df`` the same
    construction with its approximate (2e-4) Gamma gradient.
    :func:`reparam.special.student_t_dt_dnu` is the CDF-implicit ``-(dF/ddf)(t) / p(t)``.

    Example::

        >>> df = torch.tensor(3.0, requires_grad=True)
        >>> StudentT(df).rsample((1000,)).abs().mean().backward()
    """

    arg_constraints = {"df": constraints.positive, "loc": constraints.real,
                       "scale": constraints.positive}
    support = constraints.real
    has_rsample = True
    reparametrized_params = ("df", "loc", "scale")

    def __init__(self, df: torch.Tensor | float, loc: torch.Tensor | float = 0.0,
                 scale: torch.Tensor | float = 1.0, validate_args: bool | None = None):
        p = broadcast_params("StudentT", df=df, loc=loc, scale=scale)
        self.df, self.loc, self.scale = p["df"], p["loc"], p["scale"]
        super().__init__(self.df.shape, validate_args=validate_args)

    def expand(self, batch_shape: torch.Size | tuple[int, ...],
               _instance: StudentT | None = None) -> StudentT:
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

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        """``t = eps sqrt(df / (2 G))``, ``log|t| = log|eps| + (log df - log 2 - log G) / 2``.

        ``G`` is a Gamma(df/2) sample with its exact implicit gradient, so ``d log|t| / ddf =
        1 / (2 df) - (d log G / d alpha) / 4``: pathwise through ``(eps, G)``, exact and
        unbiased, for the cost of one Gamma gradient. The difference cancels at large ``df``,
        so it is formed in float64 whatever the dtype. ``df = inf`` is the Normal: ``t = eps``,
        gradient 0.
        """
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = self._draw_normal(sample_shape, noise, self.loc)
        nu = self.df.detach().expand(shape)
        infinite = torch.isinf(nu)
        has_inf = bool(infinite.any())
        if has_inf:
            nu = torch.where(infinite, torch.ones_like(nu), nu)
        log_g = log_standard_gamma(nu / 2, shape, noise, "StudentT", "df")
        log_scale = 0.5 * (torch.log(nu) - math.log(2.0) - log_g)

        def dlog_scale(_, df):  # df unexpanded: one df for all samples takes its own path
            df64 = df.detach().double()
            df64 = torch.where(torch.isinf(df64), 1.0, df64) if has_inf else df64
            d = 0.5 / df64 - 0.25 * gamma_dlogx_da(log_g.double(), df64 / 2)
            return (torch.where(infinite, 0.0, d) if has_inf else d,)

        log_scale = implicit_attach(log_scale, (self.df,), dlog_scale)
        big = math.log(torch.finfo(eps.dtype).max)
        log_abs = (torch.log(eps.abs()) + log_scale).clamp(max=big)  # finite for df ~ 0.1
        t = torch.sign(eps) * torch.exp(log_abs)
        if has_inf:
            t = torch.where(infinite, eps, t)
        return self.loc + self.scale * t

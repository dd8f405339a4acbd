"""Multivariate Gaussians with pluggable noise: Cholesky (O(d^2)) and low-rank (O(d r)).

They extend torch's ``MultivariateNormal`` / ``LowRankMultivariateNormal`` (whose
``log_prob``, ``entropy`` and registered KLs are well kept) with validation that names the
parameter and an ``rsample`` that draws its noise from a :mod:`reparam.noise` source.
"""

from __future__ import annotations

import torch
import torch.distributions as td
from torch.distributions import constraints

from .. import noise as _noise
from ..noise import NoiseSource
from ._base import Reparameterized, describe

__all__ = ["MultivariateNormal", "LowRankMultivariateNormal"]


def _precheck(dist, **params) -> None:
    """``ValueError`` naming the first parameter that breaks its constraint."""
    for name, value in params.items():
        constraint = dist.arg_constraints[name]
        if not bool(constraint.check(value).all()):
            raise ValueError(f"{type(dist).__name__}: parameter '{name}' must be "
                             f"{describe(constraint)} (tensor of shape {tuple(value.shape)})")


class MultivariateNormal(td.MultivariateNormal, Reparameterized):
    r"""``z = loc + L eps``, ``eps ~ N(0, I_d)``, ``L = scale_tril`` (lower triangular,
    positive diagonal): covariance ``L L^T``, cost O(d^2) per sample.

    Example::

        >>> d = MultivariateNormal(torch.zeros(3), torch.eye(3))
        >>> d.rsample((256,), noise=reparam.noise.Sobol(seed=0)).shape
        torch.Size([256, 3])
    """

    arg_constraints = {"loc": constraints.real_vector, "scale_tril": constraints.lower_cholesky}

    def __init__(self, loc, scale_tril, validate_args: bool | None = None):
        for name, value, dim in (("loc", loc, 1), ("scale_tril", scale_tril, 2)):
            if not torch.is_tensor(value) or value.dim() < dim:
                raise ValueError(f"MultivariateNormal: '{name}' must be a tensor with at least "
                                 f"{dim} dimension(s)")
        if scale_tril.shape[-1] != loc.shape[-1] or scale_tril.shape[-2] != loc.shape[-1]:
            raise ValueError(f"MultivariateNormal: 'scale_tril' must be ({loc.shape[-1]}, "
                             f"{loc.shape[-1]}) to match 'loc', got {tuple(scale_tril.shape)}")
        super().__init__(loc, scale_tril=scale_tril, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(MultivariateNormal, _instance)
        return super().expand(batch_shape, _instance=new)

    def rsample(self, sample_shape=torch.Size(), noise: NoiseSource | None = None) -> torch.Tensor:
        eps = self._draw_normal(sample_shape, noise, self.loc)  # (*S, *B, d)
        return self.loc + (self._unbroadcasted_scale_tril @ eps.unsqueeze(-1)).squeeze(-1)



class LowRankMultivariateNormal(td.LowRankMultivariateNormal, Reparameterized):
    r"""``z = loc + W eps_r + sqrt(D) * eps_d`` with ``W = cov_factor`` (d x r) and
    ``D = cov_diag``: covariance ``W W^T + diag(D)``, cost O(d r) per sample.

    Both noise blocks come from one draw of ``r + d`` coordinates, so quasi-random noise
    (Sobol) stays a single low-discrepancy point per sample.
    """

    arg_constraints = {"loc": constraints.real_vector, "cov_factor": constraints.real,
                       "cov_diag": constraints.positive}

    def __init__(self, loc, cov_factor, cov_diag, validate_args: bool | None = None):
        for name, value, dim in (("loc", loc, 1), ("cov_factor", cov_factor, 2),
                                 ("cov_diag", cov_diag, 1)):
            if not torch.is_tensor(value) or value.dim() < dim:
                raise ValueError(f"LowRankMultivariateNormal: '{name}' must be a tensor with at "
                                 f"least {dim} dimension(s)")
        if validate_args is not False:  # before torch factorizes the capacitance matrix
            _precheck(self, loc=loc, cov_factor=cov_factor, cov_diag=cov_diag)
        try:
            super().__init__(loc, cov_factor, cov_diag, validate_args=validate_args)
        except RuntimeError as err:
            raise ValueError(f"LowRankMultivariateNormal: shapes of 'loc', 'cov_factor', "
                             f"'cov_diag' do not fit: {err}") from None

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(LowRankMultivariateNormal, _instance)
        return super().expand(batch_shape, _instance=new)

    def rsample(self, sample_shape=torch.Size(), noise: NoiseSource | None = None) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        r = self.cov_factor.shape[-1]
        eps = self._draw_noise(shape[:-1] + (r + shape[-1],), noise)
        eps_w, eps_d = eps[..., :r], eps[..., r:]
        w_eps = (self._unbroadcasted_cov_factor @ eps_w.unsqueeze(-1)).squeeze(-1)
        return self.loc + w_eps + self._unbroadcasted_cov_diag.sqrt() * eps_d

    def _draw_noise(self, shape: torch.Size, noise: NoiseSource | None) -> torch.Tensor:
        return _noise.resolve(noise).normal(shape, self.loc.dtype, self.loc.device)

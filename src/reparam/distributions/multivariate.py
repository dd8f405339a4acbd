"""Multivariate Gaussians with pluggable noise: Cholesky (O(d^2)) and low-rank (O(d r)).

They subclass torch's ``MultivariateNormal`` / ``LowRankMultivariateNormal`` (whose
``log_prob``, ``entropy`` and registered KLs are well kept) with validation that names the
parameter and an ``rsample`` that draws its noise from a :mod:`reparam.noise` source.
"""

from __future__ import annotations

import torch
import torch.distributions as td

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


def _resolve_validate(validate_args: bool | None) -> bool:
    return td.Distribution._validate_args if validate_args is None else validate_args


class MultivariateNormal(Reparameterized, td.MultivariateNormal):
    r"""``z = loc + L eps``, ``eps ~ N(0, I_d)``, ``L`` the Cholesky factor of the covariance:
    cost O(d^2) per sample.

    torch's signature and meaning: give exactly one of ``covariance_matrix``,
    ``precision_matrix`` or ``scale_tril`` (the second positional argument is the
    covariance). Parameters are checked before torch factorizes them (``ValueError`` naming
    the parameter, unless ``validate_args=False``).

    Example::

        >>> d = MultivariateNormal(torch.zeros(3), torch.eye(3))
        >>> d.rsample((256,), noise=reparam.noise.Sobol(seed=0)).shape
        torch.Size([256, 3])
    """

    def __init__(self, loc: torch.Tensor, covariance_matrix: torch.Tensor | None = None,
                 precision_matrix: torch.Tensor | None = None, scale_tril: torch.Tensor | None = None,
                 validate_args: bool | None = None):
        given = {n: v for n, v in (("covariance_matrix", covariance_matrix),
                                   ("precision_matrix", precision_matrix),
                                   ("scale_tril", scale_tril)) if v is not None}
        if len(given) != 1:
            raise ValueError("MultivariateNormal: give exactly one of 'covariance_matrix', "
                             "'precision_matrix' or 'scale_tril'")
        (name, matrix), = given.items()
        for label, value, dim in (("loc", loc, 1), (name, matrix, 2)):
            if not torch.is_tensor(value) or value.dim() < dim:
                raise ValueError(f"MultivariateNormal: '{label}' must be a tensor with at least "
                                 f"{dim} dimension(s)")
        if matrix.shape[-2:] != (loc.shape[-1], loc.shape[-1]):
            raise ValueError(f"MultivariateNormal: '{name}' must be ({loc.shape[-1]}, "
                             f"{loc.shape[-1]}) to match 'loc', got {tuple(matrix.shape)}")
        if validate_args is not False:
            _precheck(self, loc=loc, **given)
        td.MultivariateNormal.__init__(self, loc, covariance_matrix, precision_matrix,
                                       scale_tril, validate_args=False)
        self._validate_args = _resolve_validate(validate_args)

    def expand(self, batch_shape: torch.Size | tuple[int, ...],
               _instance: MultivariateNormal | None = None) -> MultivariateNormal:
        new = self._get_checked_instance(MultivariateNormal, _instance)
        td.MultivariateNormal.expand(self, batch_shape, _instance=new)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        eps = self._draw_normal(sample_shape, noise, self.loc)  # (*S, *B, d)
        return self.loc + (self._unbroadcasted_scale_tril @ eps.unsqueeze(-1)).squeeze(-1)


class LowRankMultivariateNormal(Reparameterized, td.LowRankMultivariateNormal):
    r"""``z = loc + W eps_r + sqrt(D) * eps_d`` with ``W = cov_factor`` (d x r) and
    ``D = cov_diag``: covariance ``W W^T + diag(D)``, cost O(d r) per sample.

    Both noise blocks come from one draw of ``r + d`` coordinates, so quasi-random noise
    (Sobol) stays a single low-discrepancy point per sample.
    """

    def __init__(self, loc: torch.Tensor, cov_factor: torch.Tensor, cov_diag: torch.Tensor,
                 validate_args: bool | None = None):
        for name, value, dim in (("loc", loc, 1), ("cov_factor", cov_factor, 2),
                                 ("cov_diag", cov_diag, 1)):
            if not torch.is_tensor(value) or value.dim() < dim:
                raise ValueError(f"LowRankMultivariateNormal: '{name}' must be a tensor with at "
                                 f"least {dim} dimension(s)")
        if validate_args is not False:  # before torch factorizes the capacitance matrix
            _precheck(self, loc=loc, cov_factor=cov_factor, cov_diag=cov_diag)
        try:
            td.LowRankMultivariateNormal.__init__(self, loc, cov_factor, cov_diag,
                                                  validate_args=False)
        except RuntimeError as err:
            raise ValueError(f"LowRankMultivariateNormal: shapes of 'loc', 'cov_factor', "
                             f"'cov_diag' do not fit: {err}") from None
        self._validate_args = _resolve_validate(validate_args)

    def expand(self, batch_shape: torch.Size | tuple[int, ...],
               _instance: LowRankMultivariateNormal | None = None) -> LowRankMultivariateNormal:
        new = self._get_checked_instance(LowRankMultivariateNormal, _instance)
        td.LowRankMultivariateNormal.expand(self, batch_shape, _instance=new)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        r = self.cov_factor.shape[-1]
        eps = self._draw_noise(shape[:-1] + (r + shape[-1],), noise)
        eps_w, eps_d = eps[..., :r], eps[..., r:]
        w_eps = (self._unbroadcasted_cov_factor @ eps_w.unsqueeze(-1)).squeeze(-1)
        return self.loc + w_eps + self._unbroadcasted_cov_diag.sqrt() * eps_d

    def _draw_noise(self, shape: torch.Size, noise: NoiseSource | None) -> torch.Tensor:
        return _noise.resolve(noise).normal(shape, self.loc.dtype, self.loc.device)

"""Noise sources: where the randomness of a reparameterized sample comes from.

The reparameterization trick writes a sample as ``z = g(eps, theta)`` with ``eps`` drawn
from a fixed, parameter-free distribution. Families in :mod:`reparam.distributions` never
call ``torch.randn`` / ``torch.rand`` themselves; they ask a noise source for standard
normal or standard uniform draws of a given shape. Swapping the source changes the Monte
Carlo scheme without touching the family:

- :class:`MonteCarlo`: independent draws (the default).
- :class:`Antithetic`: pairs ``(eps, -eps)`` / ``(u, 1 - u)`` along the first sample axis.
- :class:`Sobol`: randomized quasi-Monte Carlo, scrambled Sobol points along the first
  sample axis, mapped to normals through the inverse CDF (Buchholz et al. 2018).

Every source takes the first dimension of ``shape`` as the number of Monte Carlo points;
the remaining dimensions are the coordinates of one point.
"""

from __future__ import annotations

import math

import torch

__all__ = ["NoiseSource", "MonteCarlo", "Antithetic", "Sobol", "DEFAULT_NOISE", "resolve"]

Shape = tuple[int, ...] | torch.Size


def _as_shape(shape: Shape) -> torch.Size:
    return torch.Size(shape)


class NoiseSource:
    """Contract: ``normal(shape, dtype, device)`` and ``uniform(shape, dtype, device)``."""

    def normal(self, shape: Shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        raise NotImplementedError

    def uniform(self, shape: Shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Standard uniform draws strictly inside (0, 1), so inverse CDFs stay finite."""
        raise NotImplementedError

    def rejection_source(self, family: str) -> NoiseSource:
        """The source that redraws the proposals a rejection sampler (of ``family``) rejected.

        A rejection sampler takes its first round of proposals from this source (so
        antithetic pairs survive wherever both are accepted) and later rounds, for the
        rejected entries only, from the source returned here; a source that cannot drive a
        rejection sampler raises ``ValueError``. Default: the source itself (i.i.d. draws).
        """
        return self


class MonteCarlo(NoiseSource):
    """Independent draws from ``torch.randn`` / ``torch.rand``, optionally from ``generator``."""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def normal(self, shape: Shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        return torch.randn(_as_shape(shape), dtype=dtype, device=device, generator=self.generator)

    def uniform(self, shape: Shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        u = torch.empty(_as_shape(shape), dtype=dtype, device=device)
        # [tiny, 1) in one fused pass: tiny + (1 - tiny) * r with r in [0, 1) keeps 0 out
        return u.uniform_(torch.finfo(dtype).tiny, 1.0, generator=self.generator)

    def __repr__(self) -> str:
        return "MonteCarlo()"


class Antithetic(NoiseSource):
    """Antithetic pairs: the second half of the first axis mirrors the first half.

    ``eps_{n/2 + i} = -eps_i`` for normals and ``u_{n/2 + i} = 1 - u_i`` for uniforms. The
    first dimension of ``shape`` must be even. Unbiased; the variance drops for costs
    that are monotone in ``eps`` (and vanishes for odd ones).
    """

    def __init__(self, base: NoiseSource | None = None) -> None:
        self.base = base if base is not None else MonteCarlo()

    @staticmethod
    def _half(shape: Shape) -> torch.Size:
        shape = _as_shape(shape)
        if len(shape) == 0 or shape[0] % 2:
            raise ValueError(
                f"Antithetic noise needs an even number of samples along the first axis, "
                f"got shape {tuple(shape)}"
            )
        return torch.Size((shape[0] // 2, *shape[1:]))

    def normal(self, shape: Shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        eps = self.base.normal(self._half(shape), dtype, device)
        return torch.cat([eps, -eps])

    def uniform(self, shape: Shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        u = self.base.uniform(self._half(shape), dtype, device)
        top = 1.0 - torch.finfo(dtype).eps / 2  # 1 - u rounds to 1 for u < eps / 4: keep it < 1
        return torch.cat([u, (1.0 - u).clamp_(max=top)])

    def rejection_source(self, family: str) -> NoiseSource:
        """Rejected entries lose their partner: they are redrawn from the base source."""
        return self.base.rejection_source(family)

    def __repr__(self) -> str:
        return f"Antithetic({self.base!r})"


class Sobol(NoiseSource):
    """Randomized quasi-Monte Carlo: scrambled Sobol points (Owen scrambling via torch).

    Point ``i`` of the sequence fills index ``i`` of the first axis; the remaining
    dimensions (at most 21201 in total) are the coordinates of the point. Normals are
    ``Phi^{-1}(u)``. Each call draws a fresh scramble from a generator seeded by ``seed``,
    so successive calls are independent randomizations (the estimate stays unbiased).
    For best results use a power of two as the number of points.
    """

    MAX_DIM = torch.quasirandom.SobolEngine.MAXDIM

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._rng = torch.Generator()
        if seed is None:
            self._rng.seed()
        else:
            self._rng.manual_seed(seed)

    def uniform(self, shape: Shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        shape = _as_shape(shape)
        n = shape[0] if len(shape) else 1
        dim = math.prod(shape[1:])
        if dim > self.MAX_DIM:
            raise ValueError(
                f"Sobol noise supports at most {self.MAX_DIM} coordinates per point, "
                f"got {dim} for shape {tuple(shape)}"
            )
        scramble_seed = int(torch.randint(0, 2**62, (), generator=self._rng))
        engine = torch.quasirandom.SobolEngine(dim, scramble=True, seed=scramble_seed)
        u = engine.draw(n, dtype=torch.float64)
        eps = torch.finfo(dtype).eps
        u = u.clamp_(eps / 2, 1.0 - eps / 2).to(dtype=dtype, device=device)
        return u.reshape(shape)

    def normal(self, shape: Shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        u = self.uniform(shape, torch.float64, torch.device("cpu"))
        return torch.special.ndtri(u).to(dtype=dtype, device=device)

    def rejection_source(self, family: str) -> NoiseSource:
        raise ValueError(
            f"{family} samples by rejection, which Sobol (RQMC) noise cannot drive: the "
            f"accepted points are no longer low-discrepancy. Use MonteCarlo or Antithetic noise."
        )

    def __repr__(self) -> str:
        return f"Sobol(seed={self.seed})"


DEFAULT_NOISE = MonteCarlo()


def resolve(noise: NoiseSource | None) -> NoiseSource:
    """The source to use: ``noise`` itself, or the default :class:`MonteCarlo`."""
    if noise is None:
        return DEFAULT_NOISE
    if not isinstance(noise, NoiseSource):
        raise TypeError(f"noise must be a reparam.noise.NoiseSource, got {type(noise).__name__}")
    return noise

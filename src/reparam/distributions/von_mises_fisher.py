"""Von Mises-Fisher on the sphere ``S^{d-1}`` (any ``d >= 2``) and the uniform prior on it."""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints
from torch.distributions.kl import register_kl

from ..noise import NoiseSource
from ..special import bessel_ratio, log_iv, vmf_dw_dkappa
from ._base import Reparameterized
from .implicit import implicit_rsample, log_standard_gamma
from .rejection import RejectionSample, accepted_noise, gather, rejection_rsample


class _Sphere(constraints.Constraint):
    """Unit vectors along the last dimension."""

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        tol = 10 * torch.finfo(value.dtype).eps ** 0.5
        return (value.norm(dim=-1) - 1).abs() < tol

    def __repr__(self) -> str:
        return "sphere"


sphere = _Sphere()


def _log_sphere_area(d: int) -> float:
    """``log |S^{d-1}| = log 2 + (d/2) log pi - lgamma(d/2)``."""
    return math.log(2) + d / 2 * math.log(math.pi) - math.lgamma(d / 2)


class VonMisesFisher(Reparameterized):
    r"""vMF with density ``C_d(kappa) exp(kappa mu^T x)`` on the unit sphere in ``R^d``,
    ``log C_d = nu log kappa - (nu + 1) log(2 pi) - log I_nu(kappa)``, ``nu = d/2 - 1``.

    Sampling is Wood's (1994): the height ``w = mu^T x`` by rejection from
    ``h(eps, kappa) = (1 - (1+b) eps) / (1 - (1-b) eps)``, ``eps ~ Beta((d-1)/2, (d-1)/2)``
    (two Gammas from the noise source, rounds bounded), a direction ``v`` uniform on
    ``S^{d-2}`` (normals from the noise source), ``x = H (w, sqrt(1-w^2) v)`` with the
    Householder reflection ``H e_1 = mu``.

    - ``rsample``: ``w`` carries the exact implicit gradient ``dw/dkappa`` (unbiased, no
      correction term needed); ``mu`` is pathwise.
    - ``rsample_rejection``: the rejection reparameterization of Naesseth et al., returning a
      :class:`RejectionSample`; use ``.surrogate(cost)`` for the unbiased gradient.

    Example (a VAE posterior, encoder outputs ``(B, d)`` and ``(B,)``)::

        >>> q = VonMisesFisher(F.normalize(h, dim=-1), F.softplus(k) + 1)
        >>> z = q.rsample()                                   # (B, d)
        >>> kl = kl_divergence(q, HypersphericalUniform(d))   # (B,)
    """

    arg_constraints = {"loc": constraints.real_vector, "concentration": constraints.positive}
    support = sphere
    has_rsample = True
    reparametrized_params = ("loc", "concentration")

    def __init__(self, loc: torch.Tensor, concentration: torch.Tensor | float,
                 validate_args: bool | None = None):
        loc, concentration = torch.as_tensor(loc), torch.as_tensor(concentration)
        if loc.dim() < 1 or loc.shape[-1] < 2:
            raise ValueError("VonMisesFisher: parameter 'loc' must end in a dimension d >= 2")
        if validate_args is not False and not bool(
                ((loc.detach().norm(dim=-1) - 1).abs() < 1e-4 * loc.shape[-1]).all()):
            raise ValueError("VonMisesFisher: parameter 'loc' must be a unit vector "
                             "(normalize the encoder output)")
        try:
            batch = torch.broadcast_shapes(loc.shape[:-1], concentration.shape)
        except RuntimeError as err:
            raise ValueError(f"VonMisesFisher: 'loc' and 'concentration' do not broadcast: "
                             f"{err}") from None
        self.d = loc.shape[-1]
        self.loc = loc.expand(batch + loc.shape[-1:])
        self.concentration = concentration.expand(batch)
        super().__init__(batch, loc.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape: torch.Size | tuple[int, ...],
               _instance: VonMisesFisher | None = None) -> VonMisesFisher:
        batch_shape = torch.Size(batch_shape)
        return VonMisesFisher(self.loc.expand(batch_shape + self.event_shape),
                              self.concentration.expand(batch_shape), validate_args=False)

    @property
    def _nu(self) -> float:
        return self.d / 2 - 1

    @property
    def mean(self) -> torch.Tensor:
        """``E[x] = A_d(kappa) mu``."""
        return bessel_ratio(self._nu, self.concentration).unsqueeze(-1) * self.loc

    def _log_normalizer(self) -> torch.Tensor:
        k = self.concentration
        return self._nu * torch.log(k) - (self._nu + 1) * math.log(2 * math.pi) \
            - log_iv(self._nu, k)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``kappa mu^T x + log C_d(kappa)`` on the sphere; ``-inf`` off it (validation off)."""
        if self._validate_args:
            self._validate_sample(value)
        lp = self.concentration * (self.loc * value).sum(-1) + self._log_normalizer()
        return torch.where(sphere.check(value), lp, -math.inf)

    def entropy(self) -> torch.Tensor:
        """``H = -kappa A_d(kappa) - log C_d(kappa)``."""
        k = self.concentration
        return -k * bessel_ratio(self._nu, k) - self._log_normalizer()

    # --- Wood's sampler ---------------------------------------------------------------
    def _wood(self, kappa: torch.Tensor):
        """``b``, ``x0 = (1-b)/(1+b)`` and ``c = kappa x0 + (d-1) log(1 - x0^2)``."""
        m = self.d - 1
        b = m / (2 * kappa + torch.sqrt(4 * kappa * kappa + m * m))
        x0 = (1 - b) / (1 + b)
        return b, x0, kappa * x0 + m * torch.log1p(-x0 * x0)

    def _proposal(self, shape: torch.Size):
        """Wood's proposal for ``shape``: ``(propose, log_accept, h, b)``, no gradient."""
        m = self.d - 1
        kappa = self.concentration.detach().expand(shape)
        half = torch.full((), m / 2, dtype=kappa.dtype, device=kappa.device)
        b0, x00, c0 = self._wood(kappa)

        def propose(source, sh):  # eps ~ Beta(m/2, m/2) = G1 / (G1 + G2) from the source
            log_g1, log_g2 = (log_standard_gamma(half, sh, source, "VonMisesFisher")
                              for _ in range(2))
            return torch.exp(log_g1 - torch.logaddexp(log_g1, log_g2))

        def h(eps, b):
            return (1 - (1 + b) * eps) / (1 - (1 - b) * eps)

        def log_accept(eps, index):
            k, bb, xx, cc = (gather(t, shape, index) for t in (kappa, b0, x00, c0))
            w = h(eps, bb)
            return k * w + m * torch.log1p(-xx * w) - cc

        return propose, log_accept, h, b0

    def _height_value(self, shape: torch.Size, noise) -> torch.Tensor:
        """Wood's height ``w`` alone (no log weight: the implicit gradient needs none)."""
        propose, log_accept, h, b = self._proposal(shape)
        return h(accepted_noise(propose, log_accept, shape, noise, "VonMisesFisher"), b)

    def _height(self, shape: torch.Size, noise) -> RejectionSample:
        """Wood's height ``w = h(eps, kappa)``, pathwise in ``kappa``, and its log weight."""
        m = self.d - 1
        propose, log_accept, h, _ = self._proposal(shape)
        kappa = self.concentration.expand(shape)
        b = self._wood(kappa)[0]
        k0 = self.concentration  # the normalizer once per batch entry, not per sample
        log_norm = self._nu * torch.log(k0) - log_iv(self._nu, k0)
        log_q = lambda w: kappa * w + (m - 2) / 2 * torch.log1p(-w * w) + log_norm  # noqa: E731
        log_dh = lambda eps: torch.log(2 * b) - 2 * torch.log1p(-(1 - b) * eps)  # noqa: E731
        return rejection_rsample(propose, log_accept, lambda e: h(e, b), log_q, log_dh, shape,
                                 noise, "VonMisesFisher")

    def _place(self, w: torch.Tensor, shape: torch.Size, noise) -> torch.Tensor:
        """``y = H x``, ``x = w e_1 + s z``: normals ``z`` with ``z_1 = 0``, ``s = sqrt(1 - w^2)
        / |z|``, and the Householder reflection ``H = I - c u u^T``, ``u = e_1 - mu``, ``c = 2 /
        u^T u`` (``H e_1 = mu``; ``c = 0`` for ``mu = e_1``). For one ``mu``, ``y = s z + w
        e_1 - c (u^T x) u`` is one ``addmm`` (few full-size temporaries: at ``d = 1000`` each
        costs as much as the rest of the sample)."""
        z = self._draw_normal(shape, noise, self.loc)
        z[..., 0] = 0
        s = torch.sqrt((1 - w) * (1 + w)) / z.norm(dim=-1)
        e1 = torch.zeros_like(self.loc)
        e1[..., 0] = 1
        u = e1 - self.loc
        uu = (u * u).sum(-1, keepdim=True)
        coef = torch.where(uu > 1e-20, 2 / uu.clamp_min(1e-20), torch.zeros_like(uu))
        if u.dim() == 1:
            fz, fs, fw = z.reshape(-1, z.shape[-1]), s.reshape(-1), w.reshape(-1)
            proj = fw * u[0] + fs * (fz @ u)  # u^T x
            left, right = torch.stack([fw, -proj], -1), torch.stack([e1, coef * u])
            return torch.addmm(fz * fs.unsqueeze(-1), left, right).view(z.shape)
        x = torch.cat([w.unsqueeze(-1), (z * s.unsqueeze(-1))[..., 1:]], -1)
        return x - ((u * x).sum(-1, keepdim=True) * coef) * u

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        with torch.no_grad():
            w = self._height_value(shape, noise)
        w = implicit_rsample(w, (self.concentration,),
                             lambda value, k: (-vmf_dw_dkappa(value, k, self.d),))
        return self._place(w, sample_shape, noise)

    def rsample_rejection(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                          noise: NoiseSource | None = None) -> RejectionSample:
        """Naesseth et al.: ``value`` is pathwise through ``h(eps, kappa)``; add the correction
        with ``.surrogate(cost)`` (``cost`` of shape ``sample_shape + batch_shape``)."""
        shape = torch.Size(sample_shape) + self.batch_shape
        hs = self._height(shape, noise)
        return RejectionSample(self._place(hs.value, sample_shape, noise), hs.log_weight)


class HypersphericalUniform(Reparameterized):
    """The uniform distribution on the unit sphere ``S^{d-1}`` in ``R^d`` (the vMF prior)."""

    arg_constraints: dict = {}
    support = sphere
    has_rsample = True

    def __init__(self, d: int, batch_shape: torch.Size | tuple[int, ...] = torch.Size(),
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None):
        if int(d) < 2:
            raise ValueError(f"HypersphericalUniform: 'd' must be >= 2, got {d}")
        self.d, self.dtype, self.device = int(d), dtype, device
        super().__init__(torch.Size(batch_shape), torch.Size([self.d]), validate_args=False)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        like = torch.empty((), dtype=self.dtype, device=self.device)
        x = self._draw_normal(sample_shape, noise, like)
        return x / x.norm(dim=-1, keepdim=True)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``-log |S^{d-1}|`` on the sphere, ``-inf`` off it."""
        if self._validate_args:
            self._validate_sample(value)
        inside = torch.full(value.shape[:-1], -_log_sphere_area(self.d), dtype=value.dtype,
                            device=value.device)
        return torch.where(sphere.check(value), inside, -math.inf)

    def entropy(self) -> torch.Tensor:
        return torch.full(self.batch_shape, _log_sphere_area(self.d), dtype=self.dtype,
                          device=self.device)


@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_uniform(p: VonMisesFisher, q: HypersphericalUniform) -> torch.Tensor:
    """``KL = kappa A_d(kappa) + log C_d(kappa) + log |S^{d-1}|``."""
    if p.d != q.d:
        raise ValueError(f"KL(vMF || uniform): dimensions differ ({p.d} vs {q.d})")
    return -p.entropy() + _log_sphere_area(p.d)

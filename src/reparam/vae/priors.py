"""Priors p(z): modules (so learnable priors train with the model) returning a distribution.

Each prior has ``forward() -> distribution`` with event shape (L,) (``log_prob(z)`` of shape
``z.shape[:-1]``), ``sample(n, generator)`` and ``latent_dim``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily
from torch.distributions import Normal as TorchNormal

from ..distributions import HypersphericalUniform, Normal
from ..noise import MonteCarlo
from .mixture import DiagonalMixture


class StandardNormalPrior(nn.Module):
    """``p(z) = N(0, I_L)``."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.register_buffer("_zero", torch.zeros(()), persistent=False)

    def forward(self) -> Independent:
        zeros = self._zero.expand(self.latent_dim)
        return Independent(TorchNormal(zeros, torch.ones_like(zeros), validate_args=False), 1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, dtype=self._zero.dtype, device=self._zero.device,
                           generator=generator)


class SphericalUniformPrior(nn.Module):
    """``p(z)`` uniform on the unit sphere ``S^{L-1}`` (the hyperspherical VAE's prior)."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.register_buffer("_zero", torch.zeros(()), persistent=False)

    def forward(self) -> HypersphericalUniform:
        return HypersphericalUniform(self.latent_dim, dtype=self._zero.dtype,
                                     device=self._zero.device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        x = torch.randn(n, self.latent_dim, dtype=self._zero.dtype, device=self._zero.device,
                        generator=generator)
        return x / x.norm(dim=-1, keepdim=True)


class MixturePrior(nn.Module):
    r"""Learnable mixture of K diagonal Gaussians:
    ``p(z) = sum_k pi_k N(z; m_k, diag(exp(v_k)))``, ``pi = softmax(logits)``.

    Means start at ``N(0, init_scale^2)`` draws, log-variances at 0, weights uniform.
    """

    def __init__(self, latent_dim: int, num_components: int = 10, init_scale: float = 1.0) -> None:
        super().__init__()
        if int(num_components) < 1:
            raise ValueError(f"MixturePrior: 'num_components' must be >= 1, got {num_components}")
        self.latent_dim, self.num_components = int(latent_dim), int(num_components)
        self.means = nn.Parameter(init_scale * torch.randn(self.num_components, self.latent_dim))
        self.logvars = nn.Parameter(torch.zeros(self.num_components, self.latent_dim))
        self.logits = nn.Parameter(torch.zeros(self.num_components))

    def forward(self) -> DiagonalMixture:
        return DiagonalMixture(self.means, self.logvars, self.logits, validate_args=False)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self().sample((n,), generator=generator)


class VampPrior(nn.Module):
    r"""VampPrior (Tomczak & Welling 2018): the aggregated posterior of K learnable
    pseudo-inputs, ``p(z) = (1/K) sum_k q(z | u_k)``.

    ``encoder`` maps a batch of inputs (K, D) to ``q(z|u)`` (a diagonal ``Normal`` of batch
    shape (K, L), or a distribution of batch (K,) and event (L,)); it is held by reference,
    not registered, so the encoder's weights are stored once (in the VAE's encoder).
    Pseudo-inputs are ``u_k = hardtanh(p_k, 0, 1)`` (data in [0, 1]) when ``clamp``;
    ``p`` starts at ``init`` rows (e.g. training examples) or ``N(init_mean, init_std^2)``.
    """

    def __init__(self, encoder: nn.Module, latent_dim: int, data_dim: int,
                 num_components: int = 500, *, init: torch.Tensor | None = None,
                 init_mean: float = 0.5, init_std: float = 0.05, clamp: bool = True) -> None:
        super().__init__()
        if int(num_components) < 1:
            raise ValueError(f"VampPrior: 'num_components' must be >= 1, got {num_components}")
        self.latent_dim, self.num_components, self.clamp = int(latent_dim), int(num_components), clamp
        self._encoder = (encoder,)  # a tuple: not a submodule, no duplicate weights
        start = (init.detach().clone().float() if init is not None
                 else init_mean + init_std * torch.randn(self.num_components, int(data_dim)))
        if start.shape != (self.num_components, int(data_dim)):
            raise ValueError(f"VampPrior: 'init' must have shape ({num_components}, {data_dim}), "
                             f"got {tuple(start.shape)}")
        self.pseudo_inputs = nn.Parameter(start)

    def inputs(self) -> torch.Tensor:
        """The pseudo-inputs ``u`` (K, D) as the encoder sees them."""
        u = self.pseudo_inputs
        return F.hardtanh(u, 0.0, 1.0) if self.clamp else u

    def components(self) -> torch.distributions.Distribution:
        """``q(z|u_k)`` as a distribution of batch (K,) and event (L,)."""
        q = self._encoder[0](self.inputs())
        return Independent(q, 1) if len(q.event_shape) == 0 else q

    def forward(self) -> DiagonalMixture | MixtureSameFamily:
        """The uniform mixture: a :class:`DiagonalMixture` (fast density) for a diagonal
        Gaussian encoder, else torch's ``MixtureSameFamily`` over the encoder's posteriors."""
        q = self._encoder[0](self.inputs())
        if isinstance(q, Normal):
            return DiagonalMixture(q.loc, q.logvar, validate_args=False)
        comp = Independent(q, 1) if len(q.event_shape) == 0 else q
        logits = torch.zeros(self.num_components, dtype=self.pseudo_inputs.dtype,
                             device=self.pseudo_inputs.device)
        return MixtureSameFamily(Categorical(logits=logits, validate_args=False), comp,
                                 validate_args=False)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = self.pseudo_inputs.device
        k = torch.randint(0, self.num_components, (n,), generator=generator, device=device)
        q = self._encoder[0](self.inputs()[k])
        return q.rsample(noise=MonteCarlo(generator))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log p(z) = logsumexp_k log q(z|u_k) - log K``."""
        return self().log_prob(z)

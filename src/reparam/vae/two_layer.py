"""Two stochastic layers (the hierarchical VampPrior model of Tomczak & Welling 2018, in the
spirit of Burda et al. 2016): latents ``z = (z1, z2)`` concatenated in that order,

    q(z1, z2 | x) = q(z2 | x) q(z1 | x, z2)        p(x, z1, z2) = p(x | z1, z2) p(z1 | z2) p(z2)

so the rest of the toolkit sees one latent of size ``L1 + L2``: the encoder returns a joint
posterior (``rsample_with_log_prob``), the prior a joint ``log_prob``, the decoder reads
``cat(z1, z2)``. ``p(z2)`` is any prior module (standard, mixture, VampPrior on ``q(z2|x)``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from ..distributions import Normal
from ..noise import NoiseSource


def _detached_call(module: nn.Module, *args: torch.Tensor) -> torch.Tensor:
    """``module(*args)`` with every weight detached (gradients flow to ``args`` only)."""
    params = {n: p.detach() for n, p in module.named_parameters()}
    return functional_call(module, params, args)


class HierarchicalPosterior:
    r"""``z2 ~ q(z2|x) = N(mu2, exp(v2))``, ``z1 ~ q(z1|x, z2) = N(mu1(h, z2), exp(v1(h, z2)))``;
    ``log q(z) = log q(z2|x) + log q(z1|x, z2)``. ``log_prob_detached`` evaluates the same with
    the encoder's weights (and ``h = features(x)``) cut from the graph, for STL and DReG."""

    has_rsample = True

    def __init__(self, encoder: TwoLayerEncoder, h: torch.Tensor, top: Normal,
                 lower_shift: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        self.encoder, self.h, self.top = encoder, h, top
        # per-example (d_mu1, d_logvar1) added to q(z1|x,z2)'s outputs (proposal refinement)
        self.lower_shift = lower_shift

    def _lower(self, z2: torch.Tensor, detach: bool = False) -> Normal:
        h = self.h.detach() if detach else self.h
        q1 = self.encoder.lower(h, z2, detach)
        if self.lower_shift is None:
            return q1
        d_mu, d_logvar = self.lower_shift
        return Normal(q1.loc + d_mu, logvar=q1.logvar + d_logvar, validate_args=False)

    def rsample_with_log_prob(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                              noise: NoiseSource | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        z2 = self.top.rsample(sample_shape, noise=noise)            # (S, B, L2)
        q1 = self._lower(z2)
        z1 = q1.rsample(noise=noise)                                # (S, B, L1)
        log_q = self.top.log_prob(z2).sum(-1) + q1.log_prob(z1).sum(-1)
        return torch.cat([z1, z2], -1), log_q

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                noise: NoiseSource | None = None) -> torch.Tensor:
        return self.rsample_with_log_prob(sample_shape, noise)[0]

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
               noise: NoiseSource | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, noise)

    def log_prob(self, z: torch.Tensor, detach: bool = False) -> torch.Tensor:
        z1, z2 = z.split([self.encoder.latent_dim1, self.encoder.latent_dim2], -1)
        top = self.top
        if detach:
            top = Normal(top.loc.detach(), logvar=top.logvar.detach(), validate_args=False)
        return top.log_prob(z2).sum(-1) + self._lower(z2, detach).log_prob(z1).sum(-1)

    def log_prob_detached(self, z: torch.Tensor) -> torch.Tensor:
        return self.log_prob(z, detach=True)

    @property
    def mean(self) -> torch.Tensor:
        """``(E[z1 | x, z2 = E[z2|x]], E[z2|x])``: a point for reconstructions."""
        z2 = self.top.mean
        return torch.cat([self._lower(z2).mean, z2], -1)


class TwoLayerEncoder(nn.Module):
    """``features: x -> h`` (width ``H``), ``top: h -> (mu2, logvar2)``,
    ``lower: (h, g(z2)) -> (mu1, logvar1)`` with ``g: z2 -> H``."""

    def __init__(self, features: nn.Module, width: int, latent_dim1: int, latent_dim2: int,
                 z2_net: nn.Module, joint_net: nn.Module) -> None:
        super().__init__()
        self.features, self.z2_net, self.joint_net = features, z2_net, joint_net
        self.top_head = nn.Linear(width, 2 * latent_dim2)
        self.latent_dim1, self.latent_dim2 = int(latent_dim1), int(latent_dim2)

    def top(self, x: torch.Tensor) -> Normal:
        """``q(z2|x)`` (what a VampPrior on z2 encodes its pseudo-inputs with)."""
        mu, logvar = self.top_head(self.features(x)).chunk(2, -1)
        return Normal(mu, logvar=logvar, validate_args=False)

    def lower(self, h: torch.Tensor, z2: torch.Tensor, detach: bool = False) -> Normal:
        call = _detached_call if detach else (lambda m, *a: m(*a))
        g = call(self.z2_net, z2)                                   # (S, B, H)
        joint = torch.cat([h.expand(*g.shape[:-1], h.shape[-1]), g], -1)
        mu, logvar = call(self.joint_net, joint).chunk(2, -1)
        return Normal(mu, logvar=logvar, validate_args=False)

    def forward(self, x: torch.Tensor) -> HierarchicalPosterior:
        h = self.features(x)
        mu, logvar = self.top_head(h).chunk(2, -1)
        return HierarchicalPosterior(self, h, Normal(mu, logvar=logvar, validate_args=False))


class _JointPrior:
    """``log p(z1, z2) = log p(z2) + log N(z1; m(z2), exp(v(z2)))``."""

    def __init__(self, top, net: nn.Module, latent_dim1: int) -> None:
        self.top, self.net, self.latent_dim1 = top, net, latent_dim1

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        z1, z2 = z[..., :self.latent_dim1], z[..., self.latent_dim1:]
        mu, logvar = self.net(z2).chunk(2, -1)
        return self.top.log_prob(z2) + Normal(mu, logvar=logvar, validate_args=False).log_prob(z1).sum(-1)


class HierarchicalPrior(nn.Module):
    """``p(z1, z2) = p(z2) p(z1|z2)``; ``top`` is the prior module of z2, ``net: z2 -> 2 L1``."""

    def __init__(self, top: nn.Module, net: nn.Module, latent_dim1: int) -> None:
        super().__init__()
        self.top, self.net, self.latent_dim1 = top, net, int(latent_dim1)
        self.latent_dim = self.latent_dim1 + top.latent_dim

    def forward(self) -> _JointPrior:
        return _JointPrior(self.top(), self.net, self.latent_dim1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z2 = self.top.sample(n, generator)
        mu, logvar = self.net(z2).chunk(2, -1)
        eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
        return torch.cat([mu + torch.exp(0.5 * logvar) * eps, z2], -1)

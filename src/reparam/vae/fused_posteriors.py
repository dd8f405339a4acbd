r"""The posterior's part of the fused ELBO step: draw ``z`` from the encoder's output, the
closed-form KL to the prior, and the gradient back to the encoder's output.

Each head has ``draw(out, S, noise) -> (z (S, B, L), sum_b KL, ctx)`` and
``backward(ctx, dz (S, B, L), c) -> dL/d out`` with ``c = beta / B`` the KL's weight; the
draws come from the same noise-source calls as the family's ``rsample((S,), noise)``, so a
fused step follows autograd to float rounding.

- Gaussian, standard normal prior: ``z = mu + exp(logvar / 2) eps``,
  ``KL = sum (mu^2 + expm1(logvar) - logvar) / 2``.
- Gamma, ``Gamma(a0, b0)`` prior: ``(a, b) = softplus(out) + 1e-3``, ``z = G / b`` with
  ``G ~ Gamma(a, 1)`` and ``dz/da = z d log G / da`` (the implicit gradient),
  ``dz/db = -z / b``; ``dKL/da = (a - a0) psi'(a) + b0 / b - 1``, ``dKL/db = a0 / b - a b0 / b^2``.
- Dirichlet, ``Dir(alpha0)`` prior: ``alpha = softplus(out) + 1e-3``, ``z = softmax(log G)``,
  ``dL/d log G_k = z_k (g_k - <g, z>)``; ``dKL/dalpha_k = (alpha_k - alpha0_k) psi'(alpha_k)
  - psi'(A) (A - A0)``, ``A = sum alpha``.

Samples the family clamps into its open support (``[tiny, 1 - eps / 2]``) get a zero
gradient there, as in autograd.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..distributions.implicit import dlog_gamma_da, log_standard_gamma
from ..noise import NoiseSource, resolve
from .encoders import GaussianEncoder
from .latent_families import MIN_CONCENTRATION, DirichletEncoder, DirichletPrior, GammaEncoder, GammaPrior
from .priors import StandardNormalPrior

_SOFTPLUS_THRESHOLD = 20.0  # F.softplus is the identity past this (its gradient 1)


def _softplus_grad(out: torch.Tensor) -> torch.Tensor:
    """``d softplus(out) / d out`` as torch's backward: ``sigmoid(out)``, 1 past the threshold."""
    return torch.sigmoid(out).masked_fill_(out > _SOFTPLUS_THRESHOLD, 1.0)


def _inside(z: torch.Tensor, upper: bool) -> torch.Tensor:
    """Entries the family's clamp into ``[tiny, 1 - eps / 2]`` (or ``[tiny, inf)``) leaves."""
    info = torch.finfo(z.dtype)
    keep = z >= info.tiny
    return keep & (z <= 1 - info.eps / 2) if upper else keep


class GaussianHead:
    """``(mu, logvar) = out``; standard normal prior."""

    def __init__(self, latent_dim: int) -> None:
        self.latent_dim = latent_dim

    def draw(self, out: torch.Tensor, s: int, noise: NoiseSource | None) -> tuple:
        L = self.latent_dim
        mu, logvar = out[:, :L], out[:, L:]
        eps = resolve(noise).normal((s, out.shape[0], L), mu.dtype, mu.device)
        std = logvar.mul(0.5).exp_()
        z = torch.addcmul(mu, std, eps)
        var_m1 = torch.expm1(logvar)
        kl = var_m1.sub(logvar).addcmul_(mu, mu).sum().div_(2)
        return z, kl, (mu, eps, std, var_m1)

    def backward(self, ctx: tuple, dz: torch.Tensor, c: float) -> torch.Tensor:
        mu, eps, std, var_m1 = ctx
        L, s = self.latent_dim, dz.shape[0]
        d_out = torch.empty(mu.shape[0], 2 * L, dtype=mu.dtype, device=mu.device)
        d_mu, d_logvar = d_out[:, :L], d_out[:, L:]
        torch.add(dz.sum(0) if s > 1 else dz[0], mu, alpha=c, out=d_mu)
        dz_eps = (dz * eps).sum(0) if s > 1 else dz[0].mul_(eps[0])      # (z - mu) = std eps
        torch.mul(dz_eps, std, out=d_logvar).add_(var_m1, alpha=c).mul_(0.5)
        return d_out


class GammaHead:
    """``(a, b) = softplus(out) + 1e-3``, ``q = Gamma(a, b)``; prior ``Gamma(a0, b0)``."""

    def __init__(self, latent_dim: int, prior: GammaPrior) -> None:
        self.latent_dim, self.prior = latent_dim, prior

    def draw(self, out: torch.Tensor, s: int, noise: NoiseSource | None) -> tuple:
        a, rate = (F.softplus(out) + MIN_CONCENTRATION).chunk(2, dim=-1)
        log_g = log_standard_gamma(a, torch.Size((s,) + a.shape), noise, "Gamma")
        z_raw = torch.exp(log_g - torch.log(rate))
        a0, b0 = self.prior.params.to(a.dtype).unbind()
        # KL = a0 log(b / b0) + lgamma(a0) - lgamma(a) + (a - a0) psi(a) + (b0 - b) a / b
        kl = (torch.log(rate / b0).mul_(a0).sub_(torch.lgamma(a)).add_(torch.lgamma(a0))
              .addcmul_(a - a0, torch.digamma(a)).addcmul_(b0 - rate, a / rate)).sum()
        return z_raw.clamp_min(torch.finfo(z_raw.dtype).tiny), kl, (out, a, rate, log_g, z_raw, a0, b0)

    def backward(self, ctx: tuple, dz: torch.Tensor, c: float) -> torch.Tensor:
        out, a, rate, log_g, z_raw, a0, b0 = ctx
        g = dz.mul_(z_raw).masked_fill_(~_inside(z_raw, upper=False), 0.0)  # dL / d log z
        d_a = (g * dlog_gamma_da(log_g, a)).sum(0)
        d_a.add_((a - a0) * torch.special.polygamma(1, a) + b0 / rate - 1.0, alpha=c)
        d_rate = g.sum(0).div_(rate).neg_().add_((a0 - a * b0 / rate) / rate, alpha=c)
        return torch.cat([d_a, d_rate], dim=-1).mul_(_softplus_grad(out))


class DirichletHead:
    """``alpha = softplus(out) + 1e-3``, ``q = Dir(alpha)``; prior ``Dir(alpha0)``."""

    def __init__(self, latent_dim: int, prior: DirichletPrior) -> None:
        self.latent_dim, self.prior = latent_dim, prior

    def draw(self, out: torch.Tensor, s: int, noise: NoiseSource | None) -> tuple:
        alpha = F.softplus(out) + MIN_CONCENTRATION
        log_g = log_standard_gamma(alpha, torch.Size((s,) + alpha.shape), noise, "Dirichlet")
        z_raw = torch.softmax(log_g, dim=-1)
        alpha0 = self.prior.concentration.to(alpha.dtype)
        total, total0 = alpha.sum(-1), alpha0.sum()
        # KL = lgamma(A) - lgamma(A0) - sum (lgamma(alpha) - lgamma(alpha0))
        #      + sum (alpha - alpha0) (psi(alpha) - psi(A))
        kl = (torch.lgamma(total).sum() - torch.lgamma(total0) * alpha.shape[0]
              - (torch.lgamma(alpha).sum() - torch.lgamma(alpha0).sum() * alpha.shape[0])
              + ((alpha - alpha0) * (torch.digamma(alpha) - torch.digamma(total)[:, None])).sum())
        info = torch.finfo(z_raw.dtype)
        z = z_raw.clamp(info.tiny, 1 - info.eps / 2)
        return z, kl, (out, alpha, alpha0, log_g, z_raw)

    def backward(self, ctx: tuple, dz: torch.Tensor, c: float) -> torch.Tensor:
        out, alpha, alpha0, log_g, z = ctx
        g = dz.masked_fill_(~_inside(z, upper=True), 0.0)
        d_log_g = (g - (g * z).sum(-1, keepdim=True)).mul_(z)            # softmax backward
        d_alpha = (d_log_g * dlog_gamma_da(log_g, alpha)).sum(0)
        total, total0 = alpha.sum(-1, keepdim=True), alpha0.sum()
        d_kl = (alpha - alpha0) * torch.special.polygamma(1, alpha) \
            - torch.special.polygamma(1, total) * (total - total0)
        return d_alpha.add_(d_kl, alpha=c).mul_(_softplus_grad(out))


# (encoder, prior) -> the head for that pair
_HEADS: dict[tuple[type, type], Any] = {
    (GaussianEncoder, StandardNormalPrior): lambda L, prior: GaussianHead(L),
    (GammaEncoder, GammaPrior): GammaHead,
    (DirichletEncoder, DirichletPrior): DirichletHead,
}


def posterior_head(model: nn.Module) -> GaussianHead | GammaHead | DirichletHead | None:
    """The head for the model's (encoder, prior) pair, or None where there is none."""
    make = _HEADS.get((type(model.encoder), type(model.prior_module)))
    return None if make is None else make(model.latent_dim, model.prior_module)


def encoder_out_dim(head: GaussianHead | GammaHead | DirichletHead) -> int:
    """Width of the encoder output the head reads: ``2 L`` (Gaussian, Gamma) or ``L``."""
    return head.latent_dim * (1 if isinstance(head, DirichletHead) else 2)

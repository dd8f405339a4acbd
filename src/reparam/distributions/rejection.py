r"""Rejection-sampling reparameterization (Naesseth, Ruiz, Linderman & Blei, 2017).

A sampler proposes ``z = h(eps, theta)`` with ``eps ~ s`` and accepts with some probability;
the accepted ``eps`` has density ``pi(eps; theta) = s(eps) q(h(eps, theta); theta) /
r(h(eps, theta); theta)`` (``q`` the target, ``r`` the proposal density of ``z``). Then

    grad E_q[f(z)] = E_pi[grad_theta f(h(eps, theta))]                       (g_rep)
                   + E_pi[f(h(eps, theta)) grad_theta log(q(h; theta) / r(h; theta))]   (g_cor)

with ``log(q / r) = log q(h(eps, theta); theta) + log |dh/deps| - log s(eps)``.
:func:`rejection_rsample` returns the accepted ``z`` (differentiable through ``h``) and this
log weight; :meth:`RejectionSample.surrogate` turns per-sample costs into a loss whose
gradient is ``g_rep + g_cor`` (unbiased), with the value of the costs unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .. import noise as _noise

__all__ = ["RejectionSample", "rejection_rsample", "accepted_noise", "accept_reject", "gather"]


@dataclass
class RejectionSample:
    """Accepted samples ``value = h(eps, theta)`` and ``log_weight = log q(h) + log|dh/deps|``."""

    value: torch.Tensor
    log_weight: torch.Tensor

    def surrogate(self, cost: torch.Tensor) -> torch.Tensor:
        """``cost + stop(cost) * (log_weight - stop(log_weight))``: same value, and its
        gradient adds the correction ``f grad log(q / r)`` to the pathwise one."""
        lw = self.log_weight
        return cost + cost.detach() * (lw - lw.detach())


def gather(t: torch.Tensor, shape: torch.Size, index: torch.Tensor | None) -> torch.Tensor:
    """``t`` broadcast to ``shape``, or its flat entries ``index`` (a draw's parameters)."""
    t = t.expand(shape)
    return t if index is None else t.reshape(-1).index_select(0, index)


MAX_ROUNDS = 64  # every sampler here accepts >= 60% a round: a miss after 64 is < 1e-25


Draw = Callable[[_noise.NoiseSource, "torch.Tensor | None"], tuple[torch.Tensor, torch.Tensor]]


def accept_reject(draw: Draw, shape: torch.Size, noise: _noise.NoiseSource | None,
                  family: str, max_rounds: int = MAX_ROUNDS) -> torch.Tensor:
    """Vectorized accept-reject with a bounded number of rounds (no gradient).

    ``draw(source, index)`` returns ``(candidates, accepted)``: for ``index = None`` of
    ``shape`` (the first round, from ``noise`` itself), else for the flat entries ``index``
    (1-d, from ``noise.rejection_source(family)``). Each later round redraws only the entries
    still rejected. Raises ``RuntimeError`` if some entry is rejected ``max_rounds`` times
    (for the samplers here a probability below 1e-25: a sign of a bad parameter).
    """
    source = _noise.resolve(noise)
    redraw = source.rejection_source(family)
    with torch.no_grad():
        value, ok = draw(source, None)
        value, ok = value.reshape(-1).clone(), ok.reshape(-1).clone()
        for _ in range(max_rounds):
            if bool(ok.all()):
                return value.view(shape)
            index = ok.logical_not().nonzero().squeeze(1)
            cand, good = draw(redraw, index)
            value.index_copy_(0, index, torch.where(good, cand, value.index_select(0, index)))
            ok.index_copy_(0, index, good)
    if bool(ok.all()):
        return value.view(shape)
    raise RuntimeError(f"{family}: {int((~ok).sum())} proposals still rejected after "
                       f"{max_rounds} rounds (parameters out of the sampler's range?)")


def rejection_rsample(propose: Callable[[_noise.NoiseSource, torch.Size], torch.Tensor],
                      log_accept: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
                      transform: Callable[[torch.Tensor], torch.Tensor],
                      log_target: Callable[[torch.Tensor], torch.Tensor],
                      log_abs_dh: Callable[[torch.Tensor], torch.Tensor],
                      shape: torch.Size, noise: _noise.NoiseSource | None = None,
                      family: str = "rejection sampler",
                      max_rounds: int = MAX_ROUNDS) -> RejectionSample:
    """Accept-reject ``eps`` (bounded, :func:`accept_reject`), then reparameterize.

    ``propose(source, shape)`` draws proposals ``eps`` of a shape (no gradient);
    ``log_accept(eps, index)`` is their log acceptance probability (``index`` the flat
    entries they are for, ``None`` for all), compared with ``log U``, ``U`` from the source;
    ``transform(eps) = h(eps, theta)``, ``log_target(z) = log q(z; theta)`` and
    ``log_abs_dh(eps) = log |dh/deps|`` are differentiable in ``theta``.
    """
    eps = accepted_noise(propose, log_accept, shape, noise, family, max_rounds)
    z = transform(eps)
    return RejectionSample(z, log_target(z) + log_abs_dh(eps))


def accepted_noise(propose: Callable[[_noise.NoiseSource, torch.Size], torch.Tensor],
                   log_accept: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
                   shape: torch.Size, noise: _noise.NoiseSource | None = None,
                   family: str = "rejection sampler", max_rounds: int = MAX_ROUNDS
                   ) -> torch.Tensor:
    """The accepted ``eps`` of :func:`rejection_rsample` (no gradient, no log weight): for
    a sample whose gradient comes another way (an implicit one)."""
    def draw(source, index):
        sh = shape if index is None else torch.Size([index.numel()])
        eps = propose(source, sh)
        log_u = torch.log(source.uniform(sh, eps.dtype, eps.device))
        return eps.reshape(-1), (log_u < log_accept(eps, index)).reshape(-1)

    return accept_reject(draw, shape, noise, family, max_rounds)

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

__all__ = ["RejectionSample", "rejection_rsample"]


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


def rejection_rsample(propose: Callable[[], torch.Tensor],
                      log_accept: Callable[[torch.Tensor], torch.Tensor],
                      transform: Callable[[torch.Tensor], torch.Tensor],
                      log_target: Callable[[torch.Tensor], torch.Tensor],
                      log_abs_dh: Callable[[torch.Tensor], torch.Tensor],
                      noise: _noise.NoiseSource | None = None,
                      max_rounds: int = 10_000) -> RejectionSample:
    """Accept-reject ``eps`` until every entry is accepted, then reparameterize.

    ``propose()`` draws a full tensor of proposals ``eps`` (no gradient); ``log_accept(eps)``
    is the log acceptance probability (compared with ``log U``, ``U`` from ``noise``);
    ``transform(eps) = h(eps, theta)``, ``log_target(z) = log q(z; theta)`` and
    ``log_abs_dh(eps) = log |dh/deps|`` are differentiable in ``theta``.
    """
    source = _noise.resolve(noise)
    eps = None
    done = None
    for _ in range(max_rounds):
        with torch.no_grad():
            cand = propose()
            if eps is None:
                eps, done = cand.clone(), torch.zeros(cand.shape, dtype=torch.bool,
                                                      device=cand.device)
            log_u = torch.log(source.uniform(cand.shape, cand.dtype, cand.device))
            ok = ~done & (log_u < log_accept(cand))
            eps = torch.where(ok, cand, eps)
            done = done | ok
        if bool(done.all()):
            break
    else:
        raise RuntimeError(f"rejection sampler: not all proposals accepted in {max_rounds} rounds")
    z = transform(eps)
    return RejectionSample(z, log_target(z) + log_abs_dh(eps))

r"""Discrete latents whose samples come from a noise source: Bernoulli and categorical.

Drop-ins for torch's namesakes (same constructor, ``log_prob``, ``entropy``, ``expand``
and KL pairs: torch's ``register_kl`` entries for the parents apply through the class
hierarchy; the Bernoulli pair has its own log-space, broadcasting KL). Only the sampler
differs: ``sample(sample_shape, noise=None)`` asks a :mod:`reparam.noise` source for
standard uniforms ``u`` and maps them through :meth:`from_uniform`,

- Bernoulli: ``b = 1[u < sigmoid(logits)]`` (inverse CDF), so antithetic uniforms
  ``(u, 1 - u)`` give the coupled pairs of ARM / DisARM;
- categorical: ``k = argmax_j(logits_j + g_j)``, ``g = -log(-log u)`` (Gumbel-max), one
  uniform per category.

They have no ``rsample``: gradients come from :mod:`reparam.estimators` (score function,
ARM, DisARM, REBAR, RELAX, or the relaxations).

Example::

    >>> q = Bernoulli(logits=torch.zeros(3))
    >>> b = q.sample((4,), noise=Antithetic())  # rows 2, 3 mirror rows 0, 1
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import distributions as td

from .. import noise as _noise

__all__ = ["Bernoulli", "Categorical", "OneHotCategorical", "gumbel", "kl_bernoulli_bernoulli"]


def gumbel(u: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise ``g = -log(-log u)`` from uniforms in (0, 1)."""
    return -torch.log(-torch.log(u))


def _uniform(shape: torch.Size, noise, like: torch.Tensor) -> torch.Tensor:
    return _noise.resolve(noise).uniform(shape, like.dtype, like.device)


class Bernoulli(td.Bernoulli):
    r"""Factorized Bernoulli; ``b = 1[u < sigmoid(logits)]`` with ``u`` from a noise source.

    ``log p(b) = b l - softplus(l)`` (``l`` the logits); ``H = softplus(l) - l sigmoid(l)``.
    """

    def noise_shape(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Size:
        """The shape of the uniforms one call to :meth:`sample` draws."""
        return self._extended_shape(torch.Size(sample_shape))

    def from_uniform(self, u: torch.Tensor) -> torch.Tensor:
        """``1[u < sigmoid(logits)]`` as floats (``u`` of shape ``(*sample, *batch)``)."""
        return (u < self.probs).to(self.probs.dtype)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
               noise: _noise.NoiseSource | None = None) -> torch.Tensor:
        with torch.no_grad():
            u = _uniform(self.noise_shape(sample_shape), noise, self.probs)
            return self.from_uniform(u)


@td.register_kl(Bernoulli, Bernoulli)
def kl_bernoulli_bernoulli(p: Bernoulli, q: Bernoulli) -> torch.Tensor:
    r"""``KL = s(a) (log s(a) - log s(b)) + s(-a) (log s(-a) - log s(-b))`` (``a``, ``b`` the
    logits, ``s`` the sigmoid) in log space; broadcasts (torch's Bernoulli KL does not
    broadcast its batch shapes)."""
    a, b = p.logits, q.logits
    return (torch.sigmoid(a) * (F.logsigmoid(a) - F.logsigmoid(b))
            + torch.sigmoid(-a) * (F.logsigmoid(-a) - F.logsigmoid(-b)))


class Categorical(td.Categorical):
    r"""Categorical over ``{0, ..., K-1}`` sampled by Gumbel-max from a noise source.

    ``k = argmax_j(logits_j - log(-log u_j))``; ``log p(k) = logits_k - logsumexp(logits)``.
    """

    def noise_shape(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Size:
        return self._extended_shape(torch.Size(sample_shape)) + self._param.shape[-1:]

    def from_uniform(self, u: torch.Tensor) -> torch.Tensor:
        """The Gumbel-max index for uniforms ``u`` of shape ``(*sample, *batch, K)``."""
        return (self.logits + gumbel(u)).argmax(-1)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
               noise: _noise.NoiseSource | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.from_uniform(_uniform(self.noise_shape(sample_shape), noise, self.logits))


class OneHotCategorical(td.OneHotCategorical):
    r"""One-hot categorical (event ``(K,)``) sampled by Gumbel-max from a noise source."""

    def noise_shape(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Size:
        return self._extended_shape(torch.Size(sample_shape))

    def from_uniform(self, u: torch.Tensor) -> torch.Tensor:
        """The one-hot Gumbel-max sample for uniforms ``u`` of shape ``(*sample, *batch, K)``."""
        k = self.logits.shape[-1]
        return F.one_hot((self.logits + gumbel(u)).argmax(-1), k).to(self.logits.dtype)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
               noise: _noise.NoiseSource | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.from_uniform(_uniform(self.noise_shape(sample_shape), noise, self.logits))

r"""The training step of the standard MLP VAE with its backward pass written out.

For the model most runs train (MLP encoder and decoder, Gaussian posterior from
``(mu, logvar)``, standard normal prior, Bernoulli likelihood, ELBO with analytic KL,
pathwise gradients) a step is six matrix products forward and about ten backward; autograd's
graph bookkeeping around them costs a large share of the step on a CPU. :class:`FusedELBOStep`
computes the same loss and the same gradients with the chain rule in closed form:

    h_i = act(h_{i-1} W_i^T + b_i),  (mu, logvar) = h W^T + b,  z = mu + exp(logvar / 2) eps
    loss = mean_b [ sum_d BCE(l_bd, x_bd) + beta * sum_j (mu^2 + expm1(logvar) - logvar) / 2 ]
    dL/dl = (sigmoid(l) - x) / (S B)
    dL/dmu = sum_s dL/dz + beta mu / B,  dL/dlogvar = sum_s dL/dz (z - mu) / 2 + beta expm1(logvar) / (2 B)
    linear layer: dW = d^T h, db = sum_b d, dh = d W;  tanh: d (1 - y^2);  relu: d [y > 0]

and writes them into ``p.grad``; the optimizer then steps as usual. The posterior's part (the
draw of ``z``, the KL, ``dL/d(encoder output)``) is a head of
:mod:`reparam.vae.fused_posteriors`: the Gaussian above, and the Gamma and Dirichlet
posteriors with their priors (implicit gradients). With ``bf16`` the matrix
products take bfloat16 copies of their operands and accumulate in float32 (2x faster on CPUs
with AVX512-BF16 or AMX); weights, gradients, the optimizer and every elementwise step stay
float32, so this is mixed precision with float32 master weights. The noise comes from the
same noise source call as ``q.rsample((S,), noise)``, so with the same generator the run
follows the autograd path to float rounding (tests/vae/test_fused.py checks the gradients
against :func:`reparam.vae.elbo`, the one ELBO, to 1e-10 in float64). :func:`fused_step` returns
``None`` for any other model or objective (:func:`why_not_fused` says why), and
:func:`reparam.vae.train` then uses autograd.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._torch_compat import tanh_backward, threshold_backward
from ..estimators import Estimator, Pathwise
from ..noise import NoiseSource
from .fused_posteriors import encoder_out_dim, posterior_head
from .likelihoods import BernoulliLikelihood
from .model import VAE
from .networks import Tanh, tanh_from_doubled_
from .objectives import KL_MODES, Loss, resolve_estimator

_ACTIVATIONS = {Tanh: "tanh", nn.Tanh: "tanh", nn.ReLU: "relu"}
# bf16 products pay only on wide layers: on a 2-core AVX512-BF16 CPU a 100x784 by 784x300
# product takes ~150 us in bf16 vs ~290 us in float32, while the 40/80-wide latent products
# are slower in bf16 (casts and oneDNN overhead); those stay float32
BF16_MIN_WIDTH = 128


def _layers(net: nn.Module) -> list[tuple[nn.Linear, str | None]] | None:
    """``[(linear, activation after it or None)]`` for ``Linear -> act -> ... -> Linear``."""
    if not isinstance(net, nn.Sequential) or len(net) % 2 != 1:
        return None
    layers = []
    for i, module in enumerate(net):
        if i % 2 == 0:
            if type(module) is not nn.Linear or module.bias is None:
                return None
            layers.append([module, None])
        elif type(module) in _ACTIVATIONS:
            layers[-1][1] = _ACTIVATIONS[type(module)]
        else:
            return None
    return [tuple(layer) for layer in layers]


class FusedELBOStep:
    """``step(x, beta, noise) -> Loss``: the negative ELBO of ``model`` on ``x`` (B, D) with
    ``num_samples`` draws of z, its gradient written into every parameter's ``.grad``."""

    def __init__(self, model: VAE, encoder_layers: Sequence, decoder_layers: Sequence,
                 num_samples: int = 1, bf16: bool = False) -> None:
        self.num_samples = num_samples
        self.low = torch.bfloat16 if bf16 else None  # dtype of the products' operands
        self.low_layers = {id(linear) for linear, _ in [*encoder_layers, *decoder_layers]
                           if bf16 and min(linear.in_features, linear.out_features)
                           >= BF16_MIN_WIDTH}
        self.encoder, self.decoder = list(encoder_layers), list(decoder_layers)
        self.latent_dim = model.latent_dim
        self.head = posterior_head(model)

    @staticmethod
    def _act_(out: torch.Tensor, name: str | None, doubled: bool = False) -> torch.Tensor:
        """The activation, in place; ``doubled``: ``out`` holds ``2 a`` (tanh's CPU form)."""
        if name == "tanh":
            if out.device.type != "cpu":
                return out.tanh_()
            return tanh_from_doubled_(out if doubled else out.mul_(2))  # ~5x torch.tanh on a CPU
        if name == "relu":
            return out.clamp_min_(0)
        return out

    @staticmethod
    def _act_backward(d: torch.Tensor, y: torch.Tensor, name: str | None) -> torch.Tensor:
        if name == "tanh":
            return tanh_backward(d, y)
        if name == "relu":
            return threshold_backward(d, y, 0)
        return d

    @staticmethod
    def _grad_buffer(p: torch.Tensor) -> torch.Tensor:
        if p.grad is None:
            p.grad = torch.empty_like(p)
        return p.grad

    def _forward(self, layers, h: torch.Tensor) -> tuple[list[torch.Tensor], list]:
        """Inputs of every layer, then the output: ``[h_0, h_1, ..., out]``; with bf16 also
        the bfloat16 copies of the inputs and weights the backward products reuse."""
        acts, lows = [h], []
        for linear, act in layers:
            if id(linear) not in self.low_layers:
                lows.append(None)
                doubled = act == "tanh" and h.device.type == "cpu"  # 2 a from the product itself
                out = torch.addmm(linear.bias, h, linear.weight.t(), beta=1 + doubled,
                                  alpha=1 + doubled)
            else:  # bf16 operands, float32 accumulation, bias added in float32
                h_low, w_low = h.to(self.low), linear.weight.to(self.low)
                lows.append((h_low, w_low))
                out, doubled = torch.mm(h_low, w_low.t()).float().add_(linear.bias), False
            h = self._act_(out, act, doubled)
            acts.append(h)
        return acts, lows

    def _backward(self, layers, acts: list[torch.Tensor], lows: list, d: torch.Tensor,
                  need_input_grad: bool, scale: float = 1.0) -> torch.Tensor | None:
        """Gradients of the layers' weights and biases from ``d = dL/d out / scale``; dL/d input.
        ``scale`` multiplies the last layer's products (one pass fewer than scaling ``d``)."""
        for i in reversed(range(len(layers))):
            linear, act = layers[i]
            d = self._act_backward(d, acts[i + 1], act)
            if scale != 1.0 and lows[i] is not None:  # bf16 products: scale d itself
                d, scale = d.mul_(scale), 1.0
            bias_grad = torch.sum(d, 0, out=self._grad_buffer(linear.bias))
            if scale != 1.0:
                bias_grad.mul_(scale)
            if lows[i] is None:
                self._grad_buffer(linear.weight).addmm_(d.t(), acts[i], beta=0, alpha=scale)
                if i > 0 or need_input_grad:
                    d = torch.addmm(d.new_zeros(()), d, linear.weight, beta=0, alpha=scale)
            else:
                (h_low, w_low), d_low = lows[i], d.to(self.low)
                self._grad_buffer(linear.weight).copy_(torch.mm(d_low.t(), h_low))
                if i > 0 or need_input_grad:
                    d = torch.mm(d_low, w_low).float()
            scale = 1.0
        return d if need_input_grad else None

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, beta: float = 1.0,
                 noise: NoiseSource | None = None) -> Loss:
        s, b, L = self.num_samples, x.shape[0], self.latent_dim
        enc, enc_low = self._forward(self.encoder, x)
        z, kl_sum, ctx = self.head.draw(enc[-1], s, noise)                # z (S, B, L)
        dec, dec_low = self._forward(self.decoder, z.reshape(s * b, L))
        logits = dec[-1]
        xs = x if s == 1 else x.repeat(s, 1)
        recon = F.binary_cross_entropy_with_logits(logits, xs, reduction="sum").div_(s * b)
        kl = kl_sum.div_(b)

        d_logits = logits.sigmoid_().sub_(xs)  # S B dL/dl; the logits are not needed any more
        dz = self._backward(self.decoder, dec, dec_low, d_logits, need_input_grad=True,
                            scale=1.0 / (s * b))
        d_out = self.head.backward(ctx, dz.reshape(s, b, L), beta / b)
        self._backward(self.encoder, enc, enc_low, d_out, need_input_grad=False)
        neg_elbo = recon + kl
        loss = neg_elbo if beta == 1.0 else recon + beta * kl
        return Loss(loss=loss, elbo=-neg_elbo, recon=recon, kl=kl)


def why_not_fused(model: nn.Module, *, objective: str = "elbo",
                  estimator: Estimator | str = "pathwise", kl: str = "auto",
                  free_bits: float = 0.0, bf16: bool = False) -> str | None:
    """Why :class:`FusedELBOStep` does not apply to this model and objective (None: it does).
    It applies to the standard MLP VAE on the ELBO with the pathwise estimator and analytic KL,
    every parameter trainable, float32 (or float64 without ``bf16``)."""
    if kl not in KL_MODES:
        raise ValueError(f"kl must be one of {list(KL_MODES)}, got {kl!r}")
    est = resolve_estimator(estimator)
    checks = (
        (objective == "elbo", f"objective {objective!r} (the fused step is the ELBO's)"),
        (type(est) is Pathwise, f"estimator {est!r} (the fused step is the pathwise gradient)"),
        (kl != "mc" and free_bits == 0, "a Monte Carlo KL or free bits"),
        (isinstance(model, VAE) and posterior_head(model) is not None
         and type(model.decoder.likelihood) is BernoulliLikelihood,
         "a model other than a Gaussian, Gamma or Dirichlet posterior with its standard prior "
         "(standard normal, Gamma, Dirichlet) and a Bernoulli likelihood"),
        (all(p.requires_grad for p in model.parameters()), "frozen parameters"),
    )
    for ok, reason in checks:
        if not ok:
            return reason
    encoder, decoder = _layers(model.encoder.net), _layers(model.decoder.net)
    if (encoder is None or decoder is None or encoder[-1][1] or decoder[-1][1]
            or encoder[-1][0].out_features != encoder_out_dim(posterior_head(model))):
        return "networks other than Linear / tanh / relu MLPs"
    dtypes = (torch.float32,) if bf16 else (torch.float32, torch.float64)
    if not all(p.dtype in dtypes for p in model.parameters()):
        return f"parameters not in {[str(d) for d in dtypes]}"
    return None


def fused_step(model: nn.Module, *, objective: str = "elbo",
               estimator: Estimator | str = "pathwise", kl: str = "auto",
               free_bits: float = 0.0, num_samples: int = 1,
               bf16: bool = False) -> FusedELBOStep | None:
    """A :class:`FusedELBOStep` where :func:`why_not_fused` finds nothing against it, else None.
    ``bf16``: bfloat16 operands in the matrix products (float32 models only)."""
    if why_not_fused(model, objective=objective, estimator=estimator, kl=kl,
                     free_bits=free_bits, bf16=bf16) is not None:
        return None
    encoder, decoder = _layers(model.encoder.net), _layers(model.decoder.net)
    return FusedELBOStep(model, encoder, decoder, num_samples, bf16)

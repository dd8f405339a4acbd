"""``build_model(spec, data_dim, image_shape)``: a VAE from string/number options.

Options (defaults in :data:`DEFAULTS`, from :class:`reparam.config.TrainConfig`): ``encoder``
(mlp | conv), ``hidden`` (widths; the
decoder mirrors them; conv nets use ``hidden[-1]`` for their dense layer), ``activation``,
``gated`` (gated MLP units), ``conv_channels``, ``posterior`` (gaussian | full-cov | planar |
iaf | vmf | dirichlet | gamma | bernoulli: binary latents), ``flow_length``, ``flow_hidden``
(IAF MADE width), ``flow_context`` (context size from the encoder), ``prior`` (standard | mog |
vamp | sphere | dirichlet | gamma | bernoulli: learned logits), ``prior_components``,
``likelihood``
(bernoulli | gaussian | gaussian-learned | continuous-bernoulli | discretized-logistic),
``stochastic_layers`` (1 | 2), ``latent_dim`` (z, or z1 with two layers), ``latent_dim2``
(z2; ``None`` = ``latent_dim``). ``hidden = []`` (MLP, one stochastic layer): one linear layer
each way (the "linear" sigmoid belief network of REBAR / RELAX / DisARM).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from ..config import TrainConfig
from .conv import ConvDecoder, ConvEncoder
from .discrete_latent import BernoulliEncoder, BernoulliPrior
from .encoders import FlowEncoder, FullCovEncoder, GaussianEncoder, VMFEncoder
from .flows import FLOWS
from .latent_families import DirichletEncoder, DirichletPrior, GammaEncoder, GammaPrior
from .likelihoods import LIKELIHOODS
from .model import VAE, Decoder
from .networks import make_activation, mlp
from .priors import MixturePrior, SphericalUniformPrior, StandardNormalPrior, VampPrior
from .two_layer import HierarchicalPrior, TwoLayerEncoder

MODEL_KEYS = ("encoder", "hidden", "activation", "gated", "conv_channels", "posterior",
              "flow_length", "flow_hidden", "flow_context", "prior", "prior_components",
              "likelihood", "stochastic_layers", "latent_dim", "latent_dim2")
# the model options' defaults are TrainConfig's (the one place defaults live)
DEFAULTS: dict[str, Any] = {key: TrainConfig.defaults()[key] for key in MODEL_KEYS}


def _choose(kind: str, table: dict[str, Any], name: str) -> Any:
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; choose one of {sorted(table)}")
    return table[name]


def _net_in(s: dict, data_dim: int, image_shape, out_dim: int) -> nn.Module:
    """x (.., D) -> (.., out_dim)."""
    if s["encoder"] == "conv":
        return ConvEncoder(image_shape, out_dim, s["conv_channels"], s["hidden"][-1], s["activation"])
    return mlp(data_dim, s["hidden"], out_dim, s["activation"], s["gated"])


def _net_out(s: dict, latent: int, data_dim: int, image_shape, ppd: int) -> nn.Module:
    """z (.., L) -> (.., ppd * D)."""
    if s["encoder"] == "conv":
        return ConvDecoder(latent, image_shape, ppd, s["conv_channels"], s["hidden"][-1],
                           s["activation"])
    return mlp(latent, tuple(reversed(s["hidden"])), ppd * data_dim, s["activation"], s["gated"])


def _gaussian(s, L, net_in) -> nn.Module:
    return GaussianEncoder(net_in(2 * L))


def _full_cov(s, L, net_in) -> nn.Module:
    return FullCovEncoder(net_in(FullCovEncoder.out_dim(L)), L)


def _flow(s, L, net_in) -> nn.Module:
    C = s["flow_context"]
    layers = FLOWS[s["posterior"]](L, C, s["flow_length"], hidden=s["flow_hidden"])
    return FlowEncoder(net_in(2 * L + C), L, C, layers)


def _vmf(s, L, net_in) -> nn.Module:
    return VMFEncoder(net_in(L + 1), L)


POSTERIORS: dict[str, Callable[..., nn.Module]] = {
    "gaussian": _gaussian, "full-cov": _full_cov, "planar": _flow, "iaf": _flow, "vmf": _vmf,
    "dirichlet": lambda s, L, net_in: DirichletEncoder(net_in(L)),
    "gamma": lambda s, L, net_in: GammaEncoder(net_in(2 * L)),
    "bernoulli": lambda s, L, net_in: BernoulliEncoder(net_in(L), s["data_dim"]),
}

PRIORS: dict[str, Callable[..., nn.Module]] = {
    "standard": lambda s, L, encode, D: StandardNormalPrior(L),
    "mog": lambda s, L, encode, D: MixturePrior(L, s["prior_components"]),
    "vamp": lambda s, L, encode, D: VampPrior(encode, L, D, s["prior_components"]),
    "sphere": lambda s, L, encode, D: SphericalUniformPrior(L),
    "dirichlet": lambda s, L, encode, D: DirichletPrior(L),
    "gamma": lambda s, L, encode, D: GammaPrior(L),
    "bernoulli": lambda s, L, encode, D: BernoulliPrior(L),
}
# the natural prior of each posterior family, for prior="auto"
AUTO_PRIOR = {"vmf": "sphere", "dirichlet": "dirichlet", "gamma": "gamma", "bernoulli": "bernoulli"}
# families whose support differs from R^L: posterior and prior must be the same family
SAME_SUPPORT = ("dirichlet", "gamma", "bernoulli")


def _validate(spec: dict[str, Any], data_dim: int, image_shape) -> dict[str, Any]:
    unknown = sorted(set(spec) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"model spec: unknown option(s) {unknown}; known: {sorted(DEFAULTS)}")
    s = {**DEFAULTS, **spec}
    s["hidden"], s["conv_channels"] = list(s["hidden"]), list(s["conv_channels"])
    _choose("encoder", {"mlp": 0, "conv": 0}, s["encoder"])
    _choose("posterior", POSTERIORS, s["posterior"])
    if s["prior"] == "auto":
        s["prior"] = AUTO_PRIOR.get(s["posterior"], "standard")
    _choose("prior", PRIORS, s["prior"])
    for family in SAME_SUPPORT:  # the support of q must match that of p
        if (s["posterior"] == family) != (s["prior"] == family):
            raise ValueError(f"model spec: posterior {family!r} (support of z) needs prior "
                             f"{family!r} and vice versa; got posterior {s['posterior']!r}, "
                             f"prior {s['prior']!r}")
    _choose("likelihood", LIKELIHOODS, s["likelihood"])
    _choose("stochastic_layers", {1: 0, 2: 0}, s["stochastic_layers"])
    make_activation(s["activation"])
    if s["latent_dim2"] is None:
        s["latent_dim2"] = s["latent_dim"]
    for key in ("latent_dim", "latent_dim2", "flow_length", "flow_hidden", "flow_context",
                "prior_components"):
        if not isinstance(s[key], int) or s[key] < 1:
            raise ValueError(f"model spec: {key!r} must be a positive integer, got {s[key]!r}")
    if any(not isinstance(h, int) or h < 1 for h in s["hidden"]):
        raise ValueError(f"model spec: 'hidden' must be positive integers, got {s['hidden']!r}")
    if not s["hidden"] and (s["encoder"] == "conv" or s["stochastic_layers"] == 2):
        raise ValueError("model spec: 'hidden' = [] (linear networks) needs encoder 'mlp' with "
                         "one stochastic layer (conv and two-layer models need a hidden width)")
    if s["encoder"] == "conv":
        shape: Sequence[int] = image_shape or ()
        if len(shape) != 3 or shape[0] * shape[1] * shape[2] != data_dim:
            raise ValueError(f"model spec: encoder 'conv' needs image_shape (C, H, W) with "
                             f"C*H*W = data_dim = {data_dim}, got {image_shape}")
    if s["stochastic_layers"] == 2 and s["posterior"] != "gaussian":
        raise ValueError("model spec: stochastic_layers=2 supports posterior 'gaussian' only")
    on_sphere = s["posterior"] == "vmf"
    if (on_sphere and s["prior"] not in ("sphere", "vamp")) or (s["prior"] == "sphere" and not on_sphere):
        raise ValueError("model spec: posterior 'vmf' lives on the sphere: use it with prior "
                         "'sphere' (or 'vamp'), and prior 'sphere' only with posterior 'vmf'")
    if s["prior"] == "vamp" and s["posterior"] in ("planar", "iaf"):
        raise ValueError("model spec: prior 'vamp' needs a posterior with a density "
                         "(gaussian or full-cov), not a flow")
    return s


def build_model(spec: dict[str, Any], data_dim: int, image_shape: Sequence[int] | None = None) -> VAE:
    """A :class:`VAE` from ``spec`` (options and defaults: :data:`DEFAULTS`)."""
    s = _validate(dict(spec), int(data_dim), image_shape)
    likelihood = LIKELIHOODS[s["likelihood"]]()
    L, s["data_dim"] = s["latent_dim"], int(data_dim)
    if s["stochastic_layers"] == 2:
        return _two_layer(s, data_dim, image_shape, likelihood)
    encoder = POSTERIORS[s["posterior"]](s, L, lambda out: _net_in(s, data_dim, image_shape, out))
    prior = PRIORS[s["prior"]](s, L, encoder, data_dim)
    net = _net_out(s, L, data_dim, image_shape, likelihood.params_per_dim)
    return VAE(encoder=encoder, decoder=Decoder(net, likelihood), prior=prior)


def _two_layer(s: dict, data_dim: int, image_shape, likelihood) -> VAE:
    L1, L2, H, act = s["latent_dim"], s["latent_dim2"], s["hidden"][-1], s["activation"]
    features = nn.Sequential(_net_in(s, data_dim, image_shape, H), make_activation(act))
    z2_net = nn.Sequential(mlp(L2, [], H, act), make_activation(act))
    joint_net = mlp(2 * H, [H], 2 * L1, act, s["gated"])
    encoder = TwoLayerEncoder(features, H, L1, L2, z2_net, joint_net)
    top = PRIORS[s["prior"]](s, L2, encoder.top, data_dim)
    prior = HierarchicalPrior(top, mlp(L2, [H], 2 * L1, act, s["gated"]), L1)
    net = _net_out(s, L1 + L2, data_dim, image_shape, likelihood.params_per_dim)
    return VAE(encoder=encoder, decoder=Decoder(net, likelihood), prior=prior)

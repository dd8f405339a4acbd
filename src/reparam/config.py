"""One training configuration, shared by the CLI and the Python API; defaults live here."""

from __future__ import annotations

import json
import math
import sys
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _opt(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | float | int) -> float:
    """``"90s"``, ``"30m"``, ``"2h"`` or a number of seconds -> seconds."""
    try:
        if isinstance(text, (int, float)):
            seconds = float(text)
        elif text and text[-1] in _UNITS:
            seconds = float(text[:-1]) * _UNITS[text[-1]]
        else:
            seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"config: 'time_limit' must be a positive duration like 90s, 30m or 2h, "
                         f"got {text!r}")
    return seconds


CHOICES: dict[str, tuple[str, ...]] = {
    "kl": ("auto", "analytic", "mc"), "lr_schedule": ("constant", "cosine"),
    "train_on": ("train", "train+valid"), "objective": ("elbo", "iwae"),
    "on_nan": ("skip", "rollback", "stop"),
}
# settings a resumed run keeps (its model, data and random streams); the others may change
FIXED_ON_RESUME = (
    "dataset", "binarize", "batch_size", "latent_dim", "hidden", "activation", "encoder", "gated",
    "conv_channels", "posterior", "flow_length", "flow_hidden", "flow_context", "prior",
    "prior_components", "likelihood", "stochastic_layers", "latent_dim2", "train_on", "seed",
)
# the estimator of the ELBO phase before 'iwae_from' switches to the bound
ELBO_PHASE = {"pathwise": "pathwise", "iwae": "pathwise", "dreg": "stl"}
_NAMES = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string"}


def _type_ok(value: Any, hint: Any) -> bool:
    """``value`` has type ``hint`` (int, float, str, bool, list[int], X | None); a bool is not
    a number, an int is a float."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is list:
        return isinstance(value, list) and all(_type_ok(v, args[0]) for v in value)
    if args:  # X | None
        return any(_type_ok(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is list:
        return f"a list of {_describe(args[0])}s".replace("an integers", "integers")
    if args:
        return " or ".join(_describe(a) for a in args)
    return "null" if hint is type(None) else _NAMES[hint]


def _check_types(config: Any) -> None:
    hints = typing.get_type_hints(type(config))
    for f in fields(config):
        hint = float | str | None if f.name == "time_limit" else hints[f.name]  # 90 = 90 s
        value = getattr(config, f.name)
        if not _type_ok(value, hint):
            raise ValueError(f"config: {f.name!r} must be {_describe(hint)}, got "
                             f"{type(value).__name__} {value!r}")


# posteriors whose samples are discrete (no reparameterization)
DISCRETE_POSTERIORS = ("bernoulli",)
# estimators that differentiate through z = g(eps, theta): refused for discrete posteriors
NEEDS_REPARAMETERIZATION = {
    "pathwise": "differentiates through z = g(eps, theta)",
    "stl": "is a pathwise estimator (sticking the landing)",
    "iwae": "is the pathwise gradient of the IWAE bound",
    "dreg": "is a pathwise estimator (doubly reparameterized)",
    "measure-valued": "uses the Gaussian's weak derivatives",
}
DISCRETE_HINT = ("score, score-loo / rloo, vimco, arm, disarm, disarm-iw, rebar, relax, gumbel, "
                 "straight-through")
# the default samples per example of estimators that need more than one (pairs, leave-one-out)
MIN_SAMPLES = {"score-loo": 2, "rloo": 2, "arm": 2, "disarm": 2}
PAIRED = ("arm", "disarm")  # antithetic pairs: an even number of samples


def _check_latent_estimator(config: Any, factory: Any) -> None:
    """A discrete posterior needs an estimator that does not reparameterize, and a
    discrete-only estimator (ARM, DisARM, REBAR, RELAX, the relaxations) a discrete posterior."""
    name, posterior = config.estimator, config.posterior
    discrete = posterior in DISCRETE_POSTERIORS
    if discrete and name in NEEDS_REPARAMETERIZATION:
        raise ValueError(f"config: estimator {name!r} {NEEDS_REPARAMETERIZATION[name]}, and "
                         f"posterior {posterior!r} has discrete samples with no such path: "
                         f"choose one of {DISCRETE_HINT}")
    if not discrete and getattr(factory, "discrete_only", False):
        raise ValueError(f"config: estimator {name!r} is for discrete latents (Bernoulli "
                         f"logits) and posterior {posterior!r} is continuous: use posterior "
                         f"'bernoulli', or a continuous estimator (pathwise, stl, score, ...)")


def _check_samples(config: Any, multi: bool) -> None:
    """Enough samples for the estimator: pairs for ARM / DisARM, two for leave-one-out and VIMCO."""
    name, S = config.estimator, config.num_samples
    if S is not None and S < MIN_SAMPLES.get(name, 1):
        raise ValueError(f"config: estimator {name!r} needs num_samples >= "
                         f"{MIN_SAMPLES[name]} (got {S}); leave it unset for the default")
    if S is not None and name in PAIRED and S % 2:
        raise ValueError(f"config: estimator {name!r} draws antithetic pairs: num_samples must "
                         f"be even, got {S}")
    if multi and name == "vimco" and config.k < 2:
        raise ValueError(f"config: estimator 'vimco' needs k >= 2 samples (leave-one-out "
                         f"signals), got k = {config.k}")


@dataclass
class TrainConfig:
    """Every setting of a training run (written to ``config.json``)."""

    dataset: str = _opt("digits", "dataset name (see reparam.data.DATASETS)")
    data_dir: str | None = _opt(None, "folder with local data files (else $REPARAM_DATA_DIR)")
    binarize: str | None = _opt(None, "none, threshold or dynamic (resampled every batch); "
                                      "default: the dataset's own (digits: threshold)")
    mmap: bool | None = _opt(None, "npy: data: --mmap keeps .npy files memory-mapped (each batch, "
                                   "and each process, reads only its rows), --no-mmap reads them "
                                   "into memory; unset: mapped from 256 MiB")
    epochs: int = _opt(100, "number of passes over the training set")
    batch_size: int = _opt(64, "examples per gradient step")
    lr: float = _opt(1e-3, "Adam learning rate")
    latent_dim: int = _opt(8, "dimension L of the latent variable z")
    hidden: list[int] = _opt([256, 256], "hidden layer widths of encoder (decoder mirrors); none "
                                         "(a bare --hidden) = one linear layer each way",
                             nargs="*")
    activation: str = _opt("tanh", "hidden activation: relu, tanh, elu, gelu, softplus")
    encoder: str = _opt("mlp", "encoder/decoder networks: mlp, or conv (28x28 / 32x32 images)")
    gated: bool = _opt(False, "gated (GLU) hidden units in the MLPs")
    conv_channels: list[int] = _opt([32, 64], "channels of the two conv layers (encoder conv)")
    posterior: str = _opt("gaussian", "q(z|x): gaussian, full-cov, planar, iaf, vmf, dirichlet, gamma, "
                                      "bernoulli (binary latents: discrete estimators)")
    flow_length: int = _opt(4, "number of flow steps (planar / iaf posteriors)")
    flow_hidden: int = _opt(64, "hidden width of IAF's masked networks")
    flow_context: int = _opt(64, "size of the context vector the encoder passes to IAF")
    prior: str = _opt("auto", "p(z): standard, mog (mixture of Gaussians), vamp (VampPrior), sphere, "
                              "dirichlet, gamma, bernoulli (learned logits); auto = the "
                              "posterior's natural prior")
    prior_components: int = _opt(500, "mixture components / VampPrior pseudo-inputs")
    likelihood: str = _opt("bernoulli", "p(x|z): bernoulli, gaussian, gaussian-learned, "
                                        "continuous-bernoulli, discretized-logistic")
    stochastic_layers: int = _opt(1, "1, or 2 for the two-stochastic-layer model (z1, z2)")
    latent_dim2: int | None = _opt(None, "size of the top latent z2 (two layers; default latent_dim)")
    objective: str = _opt("elbo", "elbo, or iwae (importance weighted bound with --k samples)")
    k: int = _opt(5, "importance samples per example for --objective iwae")
    iwae_from: float | None = _opt(None, "train on the ELBO until this fraction of the run (epochs "
                                         "or time limit), then on the IWAE bound with --k samples "
                                         "(--estimator dreg: STL, then DReG)")
    estimator: str = _opt("pathwise", "gradient estimator, a name from reparam.estimators."
                                      "ESTIMATORS: pathwise, stl, score, score-loo, ... (elbo); "
                                      "iwae (= pathwise), dreg (iwae)")
    kl: str = _opt("auto", "KL term: auto (closed form when available), analytic, mc")
    free_bits: float = _opt(0.0, "free bits: per-dimension KL floor lambda in nats (0 = off)")
    num_samples: int | None = _opt(None, "samples of z per example in the training ELBO; default "
                                         "1, or 2 for estimators that need pairs or a leave-one-"
                                         "out baseline (score-loo, rloo, arm, disarm)")
    beta: float = _opt(1.0, "weight of the KL term in the training loss (beta-VAE)")
    eval_samples: int = _opt(16, "samples of z per example when evaluating the ELBO")
    lr_schedule: str = _opt("constant", "constant, or cosine decay to 0 over the run (epochs or time limit)")
    warmup: float = _opt(0.0, "KL warm-up: beta rises linearly from 0 over this fraction of the run")
    time_limit: str | None = _opt(None, "stop training after this long, e.g. 90s, 30m, 2h")
    train_on: str = _opt("train", "train, or train+valid (when the dataset has a validation split)")
    patience: int | None = _opt(None, "early stopping: epochs without validation improvement")
    checkpoint_every: int = _opt(1, "write the checkpoint every N epochs (always at the end)")
    on_nan: str = _opt("skip", "a step with a non-finite loss or gradient: skip (the step is "
                               "not applied), rollback (also restore the model and optimizer of "
                               "the last checkpoint) or stop; every policy stops after "
                               "nan_patience such steps in a row, keeping the last finite weights")
    nan_patience: int = _opt(10, "non-finite steps in a row after which training stops")
    compile: bool = _opt(False, "torch.compile the model")
    fused: bool | None = _opt(None, "the step with the backward written out (standard MLP VAE "
                                    "on the ELBO; same loss and gradients, no autograd graph): "
                                    "--fused forces it (an error where it cannot apply), "
                                    "--no-fused turns it off; unset: used where it applies")
    bf16: bool = _opt(False, "bfloat16 matrix products with float32 weights: the fused step's "
                             "products, or torch.autocast elsewhere (CPU and CUDA)")
    tensorboard: bool = _opt(True, "write TensorBoard event files when tensorboard is installed")
    seed: int = _opt(0, "random seed (same seed + same device -> same numbers)")
    device: str = _opt("auto", "cpu, cuda, cuda:N or auto (cuda when available)")
    out: str | None = _opt(None, "run directory (default runs/<timestamp>)")

    def __post_init__(self) -> None:
        for f in fields(self):  # a tuple of widths is a list of widths
            if isinstance(getattr(self, f.name), tuple):
                setattr(self, f.name, list(getattr(self, f.name)))
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting: its type, then its range."""
        _check_types(self)
        positive_ints = ("epochs", "batch_size", "latent_dim", "eval_samples",
                         *(("num_samples",) if self.num_samples is not None else ()))
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"config: '{name}' must be a positive integer, got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"config: 'lr' must be a positive finite number, got {self.lr!r}")
        if not (self.beta >= 0 and math.isfinite(self.beta)):
            raise ValueError(f"config: 'beta' must be a finite number >= 0, got {self.beta!r}")
        if not (self.free_bits >= 0 and math.isfinite(self.free_bits)):
            raise ValueError(f"config: 'free_bits' must be a finite number >= 0 (nats), "
                             f"got {self.free_bits!r}")
        for name in ("kl", "lr_schedule", "train_on", "objective", "on_nan"):
            if getattr(self, name) not in CHOICES[name]:
                raise ValueError(f"config: {name!r} must be one of {list(CHOICES[name])}, "
                                 f"got {getattr(self, name)!r}")
        if self.fused and self.compile:
            raise ValueError("config: 'fused' and 'compile' exclude each other: the fused step "
                             "has no autograd graph for torch.compile (leave 'fused' unset or "
                             "pass --no-fused to compile)")
        if any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"config: 'hidden' must be positive integers, got {self.hidden!r}")
        if len(self.conv_channels) != 2 or any(not isinstance(c, int) or c < 1
                                               for c in self.conv_channels):
            raise ValueError(f"config: 'conv_channels' must be two positive integers, "
                             f"got {self.conv_channels!r}")
        if self.encoder == "conv" and not self.hidden:
            raise ValueError("config: encoder 'conv' needs a hidden width after its conv layers "
                             "('hidden' is empty: give one, e.g. --hidden 256)")
        if self.k < 1:
            raise ValueError(f"config: 'k' must be a positive integer, got {self.k!r}")
        if self.iwae_from is not None:
            if not (isinstance(self.iwae_from, (int, float)) and 0 <= self.iwae_from <= 1):
                raise ValueError(f"config: 'iwae_from' must be a fraction in [0, 1], "
                                 f"got {self.iwae_from!r}")
            if self.objective != "elbo" or self.estimator not in ELBO_PHASE:
                raise ValueError(f"config: 'iwae_from' switches from the ELBO to the IWAE bound: "
                                 f"it needs objective 'elbo' and estimator one of "
                                 f"{sorted(ELBO_PHASE)}, got {self.objective!r} and "
                                 f"{self.estimator!r}")
            if self.beta != 1.0 or self.free_bits > 0 or self.warmup > self.iwae_from:
                raise ValueError(f"config: the IWAE bound has no KL weight: 'iwae_from' "
                                 f"({self.iwae_from}) needs beta = 1, no free bits and the "
                                 f"warm-up ({self.warmup}) over by then")
        if not (isinstance(self.warmup, (int, float)) and 0 <= self.warmup <= 1):
            raise ValueError(f"config: 'warmup' must be a fraction in [0, 1], got {self.warmup!r}")
        if self.time_limit is not None:
            parse_duration(self.time_limit)
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise ValueError(f"config: 'patience' must be a positive integer, got {self.patience!r}")
        if self.nan_patience < 1:
            raise ValueError(f"config: 'nan_patience' must be a positive integer, "
                             f"got {self.nan_patience!r}")
        if not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 1:
            raise ValueError(f"config: 'checkpoint_every' must be a positive integer, "
                             f"got {self.checkpoint_every!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"config: 'device' must be cpu, cuda, cuda:N or auto, got {self.device!r}")
        self._check_names()

    def _check_names(self) -> None:
        """Every name against its table, and the estimator against the objective."""
        from .data.binarize import MODES
        from .estimators import ESTIMATORS
        from .vae.factory import POSTERIORS, PRIORS
        from .vae.likelihoods import LIKELIHOODS
        from .vae.networks import ACTIVATIONS

        tables = {"estimator": ESTIMATORS, "posterior": POSTERIORS,
                  "prior": {**PRIORS, "auto": None}, "likelihood": LIKELIHOODS,
                  "activation": ACTIVATIONS, "encoder": ("mlp", "conv"),
                  "binarize": (None, *MODES)}
        for name, table in tables.items():
            if getattr(self, name) not in table:
                known = sorted(str(k) for k in table if k is not None)
                raise ValueError(f"config: unknown {name} {getattr(self, name)!r}; choose one of {known}")
        multi = bool(getattr(ESTIMATORS[self.estimator], "multi_sample", False))
        if self.objective == "iwae" and not (multi or self.estimator == "pathwise"):
            raise ValueError(f"config: objective 'iwae' needs a multi-sample estimator (iwae, "
                             f"dreg) or pathwise, got {self.estimator!r}"
                             + (" ('stl' biases the IWAE gradient: use 'dreg')"
                                if self.estimator == "stl" else ""))
        if self.objective == "elbo" and multi and self.iwae_from is None:
            raise ValueError(f"config: estimator {self.estimator!r} is a multi-sample estimator "
                             f"of the IWAE bound: use objective 'iwae' (or 'iwae_from')")
        _check_latent_estimator(self, ESTIMATORS[self.estimator])
        _check_samples(self, multi)

    def samples(self) -> int:
        """Samples of z per example in the training ELBO: ``num_samples``, or the estimator's
        default (:data:`MIN_SAMPLES`, else 1)."""
        return self.num_samples or MIN_SAMPLES.get(self.estimator, 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every setting's default (the one place defaults live)."""
        return {f.name: f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
                for f in fields(cls)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        if not isinstance(values, dict):
            raise ValueError(f"config: expected a table of settings, got "
                             f"{type(values).__name__} {values!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"config: unknown setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a ``.json`` or ``.toml`` file (e.g. a run's ``config.json``)."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file not found: {path}")
        text = path.read_text()
        try:
            values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
            raise ValueError(f"config file {path} is not valid {path.suffix[1:]}: {err}") from None
        try:
            return cls.from_dict(values)
        except ValueError as err:
            raise ValueError(f"config file {path}: {err}") from None

    def replace(self, **changes: Any) -> TrainConfig:
        return self.from_dict({**self.to_dict(), **changes})

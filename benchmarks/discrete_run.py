"""One resumable training run of the binary-latent VAE with one estimator (benchmarks/discrete.py)."""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from reparam import runs
from reparam.estimators import get
from reparam.vae.bernoulli_latent import BernoulliLatentVAE, elbo, importance_bound, loss
from reparam.vae.estimator_state import estimator_tensors, load_estimator_tensors
from reparam.vae.optim import AdamStep, adam

#: Samples per estimate (2 evaluations of f where the estimator allows; REBAR/RELAX use 3
#: per sample). Multi-sample estimators use --iw-k instead.
NUM_SAMPLES = {"rebar": 1, "relax": 1}


@dataclass
class RunConfig:
    arch: str
    estimator: str
    steps: int
    max_seconds: float | None = None
    batch_size: int = 50
    lr: float = 1e-4
    prior_lr: float = 1e-2
    iw_k: int = 2
    eval_every: int = 500
    checkpoint_every: int = 1000
    variance_repeats: int = 20
    curve_examples: int = 1000
    seed: int = 0

    def num_samples(self, est) -> int:
        if getattr(est, "multi_sample", False):
            return self.iw_k
        return NUM_SAMPLES.get(self.estimator, 2)


def _optim_tensors(prefix: str, opt: torch.optim.Optimizer) -> dict:
    return {f"{prefix}.{pid}.{key}": torch.as_tensor(value)
            for pid, ps in opt.state_dict()["state"].items() for key, value in ps.items()}


def _load_optim(prefix: str, opt: torch.optim.Optimizer, tensors: dict) -> None:
    st: dict = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            pid, name = key[len(prefix) + 1:].split(".", 1)
            st.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": st, "param_groups": opt.state_dict()["param_groups"]})


def _save(run_dir: Path, model, opts, est, state: dict) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    for i, opt in enumerate(opts):
        tensors.update(_optim_tensors(f"optim{i}", opt))
    tensors.update({f"est.{k}": v for k, v in estimator_tensors(est).items()})
    tensors["rng"] = torch.get_rng_state()
    runs.save_weights(run_dir / runs.CHECKPOINT, tensors, {"state": json.dumps(state)})


def _load(run_dir: Path, model, opts, est) -> dict:
    path = run_dir / runs.CHECKPOINT
    with safe_open(str(path), framework="pt") as fh:
        state = json.loads(fh.metadata()["state"])
    tensors = runs.load_weights(path)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    for i, opt in enumerate(opts):
        _load_optim(f"optim{i}", opt, tensors)
    load_estimator_tensors(est, {k[4:]: v for k, v in tensors.items() if k.startswith("est.")})
    torch.set_rng_state(tensors["rng"])
    return state


_PERM: dict[tuple[int, int, int], torch.Tensor] = {}


def _batches(n: int, batch: int, seed: int, step: int) -> torch.Tensor:
    """Indices of step ``step``'s batch: epochs are seeded permutations (resumable)."""
    per_epoch = n // batch
    epoch, pos = divmod(step, per_epoch)
    key = (n, seed, epoch)
    if key not in _PERM:
        _PERM.clear()
        _PERM[key] = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
    return _PERM[key][pos * batch:(pos + 1) * batch]


def encoder_log10_variance(model, x, est, num_samples: int, repeats: int) -> float:
    """``log10`` of the mean per-coordinate variance of the encoder-weight gradient on the
    fixed batch ``x`` (``repeats`` estimates; a copy of the estimator, so its state is kept)."""
    est = copy.deepcopy(est)
    params = list(model.encoder.parameters())
    grads = []
    for _ in range(repeats):
        objective, _ = loss(model, x, est, num_samples)
        grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(objective, params)]))
    var = torch.stack(grads).double().var(0).mean()
    return math.log10(max(float(var), 1e-300))


def _build(cfg: RunConfig, data):
    torch.manual_seed(cfg.seed)
    model = BernoulliLatentVAE(data.dim, 200, cfg.arch, train_mean=data.train.mean(0))
    nets = [p for n, p in model.named_parameters() if n != "prior_logits"]
    opts = [adam(nets, cfg.lr), torch.optim.SGD([model.prior_logits], lr=cfg.prior_lr)]
    return model, opts, get(cfg.estimator)


def _stepper(opts):
    """One call that steps every optimizer (the fused Adam through :class:`AdamStep`)."""
    calls = [AdamStep(opts[0]), *[opt.step for opt in opts[1:]]]
    return lambda: [call() for call in calls]


def _evaluate(model, data, est, cfg: RunConfig, fixed: dict) -> dict:
    with torch.no_grad():
        train_elbo = float(elbo(model, fixed["train"]).mean())
        bound = float(importance_bound(model, fixed["test"][:cfg.curve_examples], 100).mean())
    var = encoder_log10_variance(model, fixed["batch"], est, cfg.num_samples(est),
                                 cfg.variance_repeats)
    return {"train_elbo_5k": train_elbo, "test_bound100": bound, "log10_encoder_var": var}


def _fixed(data, cfg: RunConfig) -> dict:
    g = torch.Generator().manual_seed(1234)
    return {"train": data.train[torch.randperm(len(data.train), generator=g)[:5000]],
            "test": data.test[torch.randperm(len(data.test), generator=g)[:1000]],
            "batch": data.train[torch.randperm(len(data.train), generator=g)[:cfg.batch_size]]}


def train_run(cfg: RunConfig, data, run_dir: Path):
    """Train (or resume) until ``cfg.steps`` steps or ``cfg.max_seconds`` training seconds;
    returns ``(model, history)``; history rows every ``eval_every`` steps."""
    run_dir.mkdir(parents=True, exist_ok=True)
    model, opts, est = _build(cfg, data)
    S = cfg.num_samples(est)
    fixed = _fixed(data, cfg)
    state = {"step": 0, "seconds": 0.0, "history": [], "objective": []}
    if (run_dir / runs.CHECKPOINT).is_file():
        loss(model, fixed["batch"], est, S)  # materialise lazily built estimator parts
        state = _load(run_dir, model, opts, est)
    runs.write_json(run_dir / "config.json", asdict(cfg))
    if not state["history"]:
        state["history"].append({"step": 0, "seconds": 0.0, "objective": math.nan,
                                 **_evaluate(model, data, est, cfg, fixed)})
    window: list[float] = []
    step_all = _stepper(opts)
    while state["step"] < cfg.steps and (cfg.max_seconds is None
                                         or state["seconds"] < cfg.max_seconds):
        x = data.train[_batches(len(data.train), cfg.batch_size, cfg.seed, state["step"])]
        t0 = time.perf_counter()
        objective, per = loss(model, x, est, S)
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        objective.backward()
        step_all()
        state["seconds"] += time.perf_counter() - t0
        state["step"] += 1
        window.append(-float(per.mean()))
        if state["step"] % cfg.eval_every == 0:
            row = {"step": state["step"], "seconds": state["seconds"],
                   "objective": sum(window) / len(window), **_evaluate(model, data, est, cfg, fixed)}
            state["history"].append(row)
            window = []
        if state["step"] % cfg.checkpoint_every == 0:
            _save(run_dir, model, opts, est, state)
    _save(run_dir, model, opts, est, state)
    runs.write_history(run_dir / "history.csv", state["history"])
    return model, state["history"]


def final_eval(model, data, run_dir: Path, bound_k: int, nll_k: int, nll_examples: int,
               seed: int, bound_examples: int | None = None) -> dict:
    """Train ELBO (all 50k, one sample each), test ``bound_k`` bound (all 10k, or a seeded
    subset of ``bound_examples``) and test NLL (``nll_k`` samples on a seeded subset of
    ``nll_examples``); cached in metrics.json."""
    path = run_dir / "metrics.json"
    state = json.loads(path.read_text()) if path.is_file() else {}
    step = int(runs.read_history(run_dir / "history.csv")[-1]["step"])
    key = [step, bound_k, nll_k, nll_examples, bound_examples]
    if state.get("key") == key:
        return state["metrics"]
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    perm = torch.randperm(len(data.test), generator=torch.Generator().manual_seed(seed))
    bound_set = data.test if bound_examples is None else data.test[perm[:bound_examples]]
    metrics = {"train_elbo": float(elbo(model, data.train).mean()),
               "test_bound": float(importance_bound(model, bound_set, bound_k).mean()),
               "test_nll": -float(importance_bound(model, data.test[perm[:nll_examples]],
                                                   nll_k).mean())}
    metrics["eval_seconds"] = time.perf_counter() - t0
    runs.write_json(path, {"key": key, "metrics": metrics})
    return metrics


def time_steps(data, arch: str, names: list[str], steps: int, rounds: int, cfg: RunConfig) -> dict:
    """Median milliseconds per training step of each estimator, interleaved: ``rounds``
    rounds, each timing ``steps`` steps of every estimator in turn on the same batches."""
    torch.manual_seed(cfg.seed)
    runs_ = {}
    for name in names:
        c = RunConfig(**{**asdict(cfg), "arch": arch, "estimator": name})
        model, opts, est = _build(c, data)
        runs_[name] = (model, opts, _stepper(opts), est, c.num_samples(est))
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds + 1):  # round 0 warms up (lazy parts, first optimizer step)
        for name, (model, opts, step_all, est, S) in runs_.items():
            t0 = time.perf_counter()
            for s in range(steps):
                x = data.train[_batches(len(data.train), cfg.batch_size, cfg.seed, s)]
                objective, _ = loss(model, x, est, S)
                for opt in opts:
                    opt.zero_grad(set_to_none=True)
                objective.backward()
                step_all()
            if r:
                times[name].append(1e3 * (time.perf_counter() - t0) / steps)
    return {n: sorted(t)[len(t) // 2] for n, t in times.items()}

"""``reparam`` command line: parse flags, call the library, report. Nothing else lives here."""

from __future__ import annotations

import argparse
import json
import sys
import typing
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import torch

from .config import TrainConfig


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`TrainConfig` field; defaults stay in the dataclass."""
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
        help_text = f"{f.metadata['help']} (default: {default})"
        kwargs: dict[str, typing.Any] = {"default": argparse.SUPPRESS, "help": help_text,
                                         "dest": f.name}
        if hint is bool:
            kwargs.update(action=argparse.BooleanOptionalAction)
        elif typing.get_origin(hint) is list:
            kwargs.update(nargs="+", type=typing.get_args(hint)[0], metavar="N")
        else:
            base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
            kwargs.update(type=base, metavar=f.name.upper())
        parser.add_argument(flag, **kwargs)


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    base = TrainConfig.load(args.config) if args.config else TrainConfig()
    return base.replace(**given)


def cmd_train(args: argparse.Namespace) -> int:
    from .vae.training import train

    if args.resume:
        names = {f.name for f in fields(TrainConfig)}
        overrides = {k: v for k, v in vars(args).items() if k in names}
        result = train(resume=args.resume, progress=not args.quiet, **overrides)
    else:
        result = train(_config_from_args(args), progress=not args.quiet)
    m = result.metrics
    print(f"run directory: {result.run_dir}")
    print(f"test ELBO {m['test_elbo']:.3f} nats (untrained {m['initial_test_elbo']:.3f}), "
          f"train ELBO {m['train_elbo']:.3f}, KL {m['test_kl']:.3f}, "
          f"{m['epochs']} epochs in {m['wall_time_s']:.1f} s")
    if args.json:
        print(json.dumps(m, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from . import parallel, runs
    from .vae.evaluation import evaluate
    from .vae.training import load_run

    with parallel.session(args.device) as device:  # a no-op without torchrun
        config, model, data = load_run(args.run_dir, str(device), args.data_dir)
        x = data.test
        if args.subset is not None:
            gen = torch.Generator().manual_seed(args.seed)
            x = x[torch.randperm(x.shape[0], generator=gen)[:args.subset]]
        result = evaluate(model, x, k=args.k, batch_size=args.batch_size, seed=args.seed,
                          progress=not args.quiet, refine_steps=args.refine_steps)
        result.update(dataset=data.name, split="test" if args.subset is None else
                      f"test, seeded random subset of {args.subset} (seed {args.seed})",
                      processes=parallel.world_size())
        parallel.on_main(runs.write_json, Path(args.run_dir) / "evaluation.json", result)
    if not parallel.is_main():
        return 0
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(f"test NLL {result['nll']:.2f} +- {result['nll_stderr']:.2f} nats (k={args.k}, "
              f"{result['num_examples']} examples), ELBO {result['elbo']:.2f}, "
              f"KL {result['kl']:.2f}, active units {result['active_units']}/{result['latent_dim']}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from . import viz
    from .vae.training import load_run

    _, model, data = load_run(args.run_dir, args.device)
    gen = torch.Generator(next(model.parameters()).device).manual_seed(args.seed)
    means = model.sample(args.n, generator=gen)
    out = Path(args.out) if args.out else Path(args.run_dir) / "samples.png"
    viz.save_samples(out, means, data.image_shape)
    if args.npy:
        import numpy as np

        np.save(Path(args.npy), means.cpu().numpy())
    print(f"wrote {out}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from . import runs
    from .vae.training import load_run, write_figures

    config, model, data = load_run(args.run_dir, args.device)
    history_path = Path(args.run_dir) / "history.csv"
    history = runs.read_history(history_path) if history_path.is_file() else []
    written = write_figures(Path(args.run_dir), model, data, history, config.seed)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _run_dir_parser(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `reparam train`")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reparam",
        description="The reparameterization trick: train, evaluate and compare VAEs and "
                    "gradient estimators.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser(
        "train", help="train a VAE (default: MLP VAE on the embedded digits data)",
        description="Train a VAE by minimising the negative ELBO with reparameterized samples "
                    "z = mu + exp(logvar / 2) * eps. Writes config.json, model.safetensors, "
                    "metrics.json, history.csv and PNG figures into the run directory.")
    _add_config_flags(train)
    train.add_argument("--config", metavar="FILE", default=None,
                       help="JSON or TOML config (e.g. a run's config.json); flags override it")
    train.add_argument("--resume", metavar="RUN_DIR", default=None,
                       help="continue the run in RUN_DIR from its last checkpoint")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--json", action="store_true", help="print metrics.json to stdout")

    ev = _run_dir_parser(sub, "evaluate", "test log-likelihood by importance sampling, ELBO, KL, "
                                          "active units; writes evaluation.json")
    ev.add_argument("--k", type=int, default=5000, help="importance samples per example (default: 5000)")
    ev.add_argument("--batch-size", type=int, default=100, help="examples per batch (default: 100)")
    ev.add_argument("--subset", type=int, default=None,
                    help="evaluate a seeded random subset of N test examples (default: all)")
    ev.add_argument("--data-dir", default=None, help="folder with the dataset's files")
    ev.add_argument("--refine-steps", type=int, default=0, metavar="N",
                    help="refine each example's Gaussian proposal with N Adam steps on the ELBO "
                         "before importance sampling (tighter estimate; default: 0)")
    ev.add_argument("--json", action="store_true", help="print evaluation.json to stdout")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")

    sa = _run_dir_parser(sub, "sample", "decode samples from the prior into an image grid")
    sa.add_argument("--n", type=int, default=64, help="number of samples (default: 64)")
    sa.add_argument("--out", default=None, help="PNG path (default: RUN_DIR/samples.png)")
    sa.add_argument("--npy", default=None, help="also save the pixel means as a .npy array")

    _run_dir_parser(sub, "plot", "regenerate every figure of a run")
    sub.add_parser("compare", help="compare gradient estimators: the survey's test problems and a "
                                   "VAE study (see `reparam compare --help`)", add_help=False)
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": cmd_train, "evaluate": cmd_evaluate, "sample": cmd_sample, "plot": cmd_plot}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["compare"]:  # the study has its own parser
        from .compare.cli import main as compare_main

        return compare_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ValueError as err:
        print(f"reparam {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

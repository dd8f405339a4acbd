"""``reparam`` command line: parse flags, call the library, report. Nothing else lives here."""

from __future__ import annotations

import argparse
import json
import sys
import typing
from collections.abc import Callable
from dataclasses import fields

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
        if typing.get_origin(hint) is list:
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
    train.set_defaults(func=cmd_train)
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"train": cmd_train}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"reparam {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

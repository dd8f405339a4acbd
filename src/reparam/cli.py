"""``reparam`` command line: parse flags, call the library, report. Nothing else lives here."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
import typing
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import torch

from . import __version__
from .config import TrainConfig
from .errors import BadArgumentError, WriteError


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``reparam CMD: error: ...``) and exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_type(name: str, low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]``, else an error naming the range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value
    parse.__name__ = name
    return parse


POSITIVE = _int_type("positive", 1)
NON_NEGATIVE = _int_type("non_negative", 0)
SEED = _int_type("seed", 0, 2**63 - 1)


def DEVICE(text: str) -> str:  # noqa: N802 (an argparse type)
    """``auto`` or a device torch can parse (``cpu``, ``cuda``, ``cuda:1``, ...)."""
    if text != "auto":
        try:
            torch.device(text)
        except (RuntimeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda or cuda:N, got {text!r}") from None
    return text


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
        if hint is bool or set(typing.get_args(hint)) == {bool, type(None)}:
            kwargs.update(action=argparse.BooleanOptionalAction)
        elif typing.get_origin(hint) is list:
            kwargs.update(nargs=f.metadata.get("nargs", "+"), type=typing.get_args(hint)[0],
                          metavar="N")
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
    from . import parallel, runs
    from .vae.training import Interrupted, train

    if args.resume and args.overwrite:
        raise BadArgumentError("--resume and --overwrite contradict each other",
                               hint="--resume continues the run, --overwrite replaces it")
    if args.resume and args.config:
        raise ValueError(f"--config and --resume exclude each other: a resumed run keeps its "
                         f"stored config ({args.resume}/config.json); pass single flags such as "
                         f"--epochs to extend it")
    config = None if args.resume else _config_from_args(args)  # validated before any write
    out = args.resume or config.out
    if parallel.launched():  # torchrun: data-parallel training, rank 0 writes
        return _train_distributed(args, config)
    try:
        with runs.open_run_dir(out, resume=bool(args.resume), overwrite=args.overwrite) as run:
            if args.resume:
                names = {f.name for f in fields(TrainConfig)}
                overrides = {k: v for k, v in vars(args).items() if k in names}
                result = train(resume=args.resume, progress=not args.quiet, **overrides)
            else:
                result = train(config.replace(out=str(run.path)), progress=not args.quiet)
    except Interrupted as err:  # SIGINT / SIGTERM: checkpoint written, 130 / 143
        print(f"reparam train: {err}", file=sys.stderr)
        return err.exit_code
    return _report_training(args, result)


def _train_distributed(args: argparse.Namespace, config) -> int:
    from .vae import distributed

    names = {f.name for f in fields(TrainConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in names} if args.resume else {}
    result, status = distributed.train(config, resume=args.resume, overwrite=args.overwrite,
                                       progress=not args.quiet, **overrides)
    return _report_training(args, result) if result is not None and status == 0 else status


def _report_training(args: argparse.Namespace, result) -> int:
    """Print the outcome; a stop on non-finite steps is an error line (status 2) after it."""
    from . import runs

    m = result.metrics
    if result.already_finished:
        print(f"{result.run_dir} is already finished ({result.already_finished}): nothing "
              f"trained (raise --epochs or --time-limit to go on)")
    print(f"run directory: {result.run_dir}")
    print(f"test ELBO {m['test_elbo']:.3f} nats (untrained {m['initial_test_elbo']:.3f}), "
          f"train ELBO {m['train_elbo']:.3f}, KL {m['test_kl']:.3f}, "
          f"{m['epochs']} epochs in {m['wall_time_s']:.1f} s")
    if args.json:
        print(json.dumps(runs.strict_json(m), indent=2, allow_nan=False))
    if m["stop_reason"] == "non_finite":
        sys.stdout.flush()
        print(f"reparam train: error: training stopped after {m['non_finite_steps']} non-finite "
              f"steps (loss or gradient NaN / inf; policy --on-nan {result.config.on_nan}); likely "
              f"cause: {m['diagnosis']}; {result.run_dir} keeps the weights of the last finite "
              f"checkpoint (epoch {m['epochs']}); resume with a lower --lr: reparam train "
              f"--resume {result.run_dir} --lr ...", file=sys.stderr)
        return 2
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from . import parallel
    from .vae.evaluation import evaluate
    from .vae.training import load_run

    with parallel.session(args.device) as device:  # a no-op without torchrun
        config, model, data = load_run(args.run_dir, str(device), args.data_dir)
        x = data.test
        if args.subset is not None:
            if args.subset > x.shape[0]:
                raise BadArgumentError(f"--subset {args.subset} exceeds the {x.shape[0]} test "
                                       f"examples of {data.name}", hint="omit --subset to use all")
            gen = torch.Generator().manual_seed(args.seed)
            x = x[torch.randperm(x.shape[0], generator=gen)[:args.subset]]
        result = evaluate(model, x, k=args.k, batch_size=args.batch_size, seed=args.seed,
                          progress=not args.quiet, refine_steps=args.refine_steps)
        result.update(dataset=data.name, split="test" if args.subset is None else
                      f"test, seeded random subset of {args.subset} (seed {args.seed})",
                      processes=parallel.world_size())
        if parallel.is_main():
            _report_evaluation(args, result)
    return 0


def _report_evaluation(args: argparse.Namespace, result: dict) -> None:
    """Print the result, then write ``evaluation.json`` (rank 0 only under torchrun)."""
    from . import runs

    if args.json:  # strict JSON, as evaluation.json (one example: nll_stderr is null)
        print(json.dumps(runs.strict_json(result), indent=2, sort_keys=True, allow_nan=False))
    else:
        print(f"test NLL {result['nll']:.2f} +- {result['nll_stderr']:.2f} nats (k={args.k}, "
              f"{result['num_examples']} examples), ELBO {result['elbo']:.2f}, "
              f"KL {result['kl']:.2f}, 100-sample bound {result['bound_100']:.2f}, "
              f"active units {result['active_units']}/{result['latent_dim']}")
    sys.stdout.flush()  # the result is out before a failed write is reported
    try:
        runs.write_json(Path(args.run_dir) / "evaluation.json", result)
    except WriteError as err:
        raise type(err)(f"the result above was not saved: {err.message}", hint=err.hint) from None


def cmd_sample(args: argparse.Namespace) -> int:
    from . import viz

    out = Path(args.out) if args.out else Path(args.run_dir) / "samples.png"
    for flag, path in (("--out", out), ("--npy", args.npy and Path(args.npy))):
        if path and not path.parent.is_dir():
            raise BadArgumentError(f"{flag} {path}: folder {path.parent} does not exist",
                                   hint="create it first or choose another path")
    from .vae.training import load_run

    _, model, data = load_run(args.run_dir, args.device)
    gen = torch.Generator(next(model.parameters()).device).manual_seed(args.seed)
    means = model.sample(args.n, generator=gen)
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
    seed = config.seed if args.seed is None else args.seed
    written = write_figures(Path(args.run_dir), model, data, history, seed)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _run_dir_parser(sub, name: str, help_text: str, seed_default: int | None = 0
                    ) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `reparam train`")
    p.add_argument("--device", default="auto", type=DEVICE,
                   help="cpu, cuda, cuda:N or auto (default: auto)")
    p.add_argument("--seed", type=SEED, default=seed_default, help="random seed (default: "
                   + ("the run's training seed" if seed_default is None else str(seed_default)) + ")")
    _debug_flag(p)
    return p


def _debug_flag(parser: argparse.ArgumentParser, default: typing.Any = argparse.SUPPRESS) -> None:
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show the traceback of an error (also: REPARAM_DEBUG=1)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="reparam",
        description="The reparameterization trick: train, evaluate and compare VAEs and "
                    "gradient estimators.",
    )
    parser.add_argument("--version", action="version", version=f"reparam {__version__}")
    _debug_flag(parser, default=False)
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
    train.add_argument("--overwrite", action="store_true",
                       help="replace the run already in --out (default: refuse a non-empty --out)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--json", action="store_true", help="print metrics.json to stdout")
    _debug_flag(train)

    ev = _run_dir_parser(sub, "evaluate", "test log-likelihood by importance sampling, ELBO, KL, "
                                          "active units; writes evaluation.json")
    ev.add_argument("--k", type=POSITIVE, default=5000, help="importance samples per example (default: 5000)")
    ev.add_argument("--batch-size", type=POSITIVE, default=100, help="examples per batch (default: 100)")
    ev.add_argument("--subset", type=POSITIVE, default=None,
                    help="evaluate a seeded random subset of N test examples (default: all)")
    ev.add_argument("--data-dir", default=None, help="folder with the dataset's files")
    ev.add_argument("--refine-steps", type=NON_NEGATIVE, default=0, metavar="N",
                    help="refine each example's Gaussian proposal with N Adam steps on the ELBO "
                         "before importance sampling (tighter estimate; default: 0)")
    ev.add_argument("--json", action="store_true", help="print evaluation.json to stdout")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")

    sa = _run_dir_parser(sub, "sample", "decode samples from the prior into an image grid")
    sa.add_argument("--n", type=POSITIVE, default=64, help="number of samples (default: 64)")
    sa.add_argument("--out", default=None, help="PNG path (default: RUN_DIR/samples.png)")
    sa.add_argument("--npy", default=None, help="also save the pixel means as a .npy array")

    _run_dir_parser(sub, "plot", "regenerate every figure of a run", seed_default=None)
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
    debug = args.debug or os.environ.get("REPARAM_DEBUG", "") not in ("", "0")
    try:
        return COMMANDS[args.command](args)
    except EXPECTED as err:  # a named failure: one line, status 2 (--debug: the traceback too)
        if debug:
            traceback.print_exc()
        print(f"reparam {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside the training loop (which checkpoints first)
        print(f"reparam {args.command}: interrupted", file=sys.stderr)
        return 130


# Expected failures: bad values and named errors (ValueError, incl. reparam.errors), and I/O.
EXPECTED = (ValueError, OSError)


def one_line(err: BaseException) -> str:
    """The error as one line: an ``OSError`` as ``reason: path``, other lines joined."""
    if isinstance(err, OSError) and not isinstance(err, ValueError) and err.strerror:
        text = f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    else:
        text = str(err) or type(err).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``reparam compare``: run the estimator studies and write figures, JSON and Markdown."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .discrete import DiscreteStudyConfig, discrete_figure, discrete_markdown, run_discrete_study
from .report import survey_figure, survey_markdown, vae_figures, vae_markdown
from .survey import SurveyConfig, run_survey
from .vae_study import VAEStudyConfig, run_vae_study


def _survey(args) -> tuple[dict, str]:
    cfg = SurveyConfig(num_samples=args.num_samples or 4, replicas=args.replicas,
                       repeats=args.repeats or 4, seed=args.seed, device=args.device,
                       grid_points=args.grid_points)
    result = run_survey(cfg, progress=not args.quiet)
    survey_figure(result, args.out / "survey.png")
    return result, survey_markdown(result)


def _vae(args) -> tuple[dict, str]:
    cfg = VAEStudyConfig(data=args.data, data_dir=args.data_dir, steps=args.steps or 2000,
                         num_samples=args.num_samples or 4, repeats=args.repeats or 100,
                         seed=args.seed, device=args.device)
    if args.eval_every:
        cfg.eval_every = args.eval_every
    if args.estimators:
        cfg.estimators = tuple(args.estimators)
    result = run_vae_study(cfg, progress=not args.quiet)
    vae_figures(result, args.out)
    return result, vae_markdown(result)


def _discrete(args) -> tuple[dict, str]:
    cfg = DiscreteStudyConfig(replicas=min(args.replicas, 1000), repeats=args.repeats or 8,
                              seed=args.seed, device=args.device)
    result = run_discrete_study(cfg, progress=not args.quiet)
    discrete_figure(result, args.out / "discrete.png")
    text = discrete_markdown(result)
    if args.model_checkpoints:  # the same estimators at a binary-latent VAE
        from .discrete_model import (
            DiscreteModelConfig,
            discrete_model_figure,
            discrete_model_markdown,
            run_discrete_model_study,
        )

        mcfg = DiscreteModelConfig(data=args.data, data_dir=args.data_dir, seed=args.seed,
                                   device=args.device, repeats=args.repeats or 50,
                                   checkpoints=tuple(args.model_checkpoints))
        result["model"] = run_discrete_model_study(mcfg)
        discrete_model_figure(result["model"], args.out / "discrete_model.png")
        text += "\n" + discrete_model_markdown(result["model"])
    return result, text


STUDIES = {"survey": _survey, "vae": _vae, "discrete": _discrete}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reparam compare",
        description="Compare gradient estimators: the survey's test problems (quadrature vs "
                    "Monte Carlo) and a VAE trained with each estimator.")
    p.add_argument("--study", choices=[*STUDIES, "all"], default="all")
    p.add_argument("--out", type=Path, default=Path("compare"), help="output directory")
    p.add_argument("--data", default="digits", help="VAE study dataset (digits, ...)")
    p.add_argument("--data-dir", default=None, help="where datasets live")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--steps", type=int, default=None, help="VAE training steps (2000)")
    p.add_argument("--repeats", type=int, default=None,
                   help="estimator calls per measurement (survey 4 x replicas, VAE 100)")
    p.add_argument("--replicas", type=int, default=1000, help="survey: replicas per call")
    p.add_argument("--num-samples", type=int, default=None, help="samples per estimate (4)")
    p.add_argument("--grid-points", type=int, default=None, help="survey: k values per cost")
    p.add_argument("--eval-every", type=int, default=None, help="VAE: steps between test evals")
    p.add_argument("--estimators", nargs="+", default=None, help="VAE: estimator names")
    p.add_argument("--model-checkpoints", type=int, nargs="+", default=None, metavar="EPOCH",
                   help="discrete: also at a binary-latent VAE trained with DisARM, read after "
                        "these epochs (0 = initialised), e.g. 0 1 3")
    p.add_argument("--quiet", action="store_true", help="no progress bars, no tables on stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    studies = list(STUDIES) if args.study == "all" else [args.study]
    results, markdown = {}, ["# reparam compare\n"]
    for name in studies:
        t0 = time.perf_counter()
        result, md = STUDIES[name](args)
        result["seconds"] = time.perf_counter() - t0
        results[name] = result
        markdown.append(md)
    (args.out / "compare.json").write_text(json.dumps(results, indent=1))
    (args.out / "compare.md").write_text("\n".join(markdown))
    if not args.quiet:
        print("\n".join(markdown))
    print(f"wrote {args.out / 'compare.md'}, compare.json and figures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

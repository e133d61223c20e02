"""``python -m landscape.report CHECKPOINT --dataset NAME --budget quick -o DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import _cli

__all__ = ["main"]

# eps when neither --eps nor the run's config gives one (the usual L-inf budgets)
DEFAULT_EPS = {"mnist": 0.3, "fashion-mnist": 0.1, "cifar10": 8 / 255}


def _parser() -> argparse.ArgumentParser:
    p = _cli.Parser(
        prog="python -m landscape.report",
        description=(
            "Analyse a trained model and write one self-contained HTML report (robust "
            "accuracy with gradient-masking checks, Hessian eigenvalues and spectral "
            "density, clean and adversarial loss surfaces with an interactive 3D "
            "view, gradient scattering), one PNG per section and report.json with "
            "every number. Finished sections are cached in OUT/cache: rerunning the "
            "same command resumes."
        ),
    )
    p.add_argument(
        "checkpoint",
        help="a run folder (python -m landscape.train) or a checkpoint file "
        "{'model': state_dict, 'arch': NAME, 'arch_kwargs': {...}}",
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="mnist, fashion-mnist, cifar10, cifar10-jpeg, ... (default: the run's)",
    )
    p.add_argument("--data-root", default=None, help="dataset folder (default: cache)")
    p.add_argument(
        "--budget",
        default="quick",
        choices=["quick", "standard", "thorough"],
        help="how much work: quick (seconds to minutes on a CPU), standard, thorough",
    )
    p.add_argument(
        "--eps",
        type=float,
        default=None,
        help="attack budget (default: the run's training eps, else the dataset's "
        "usual one: mnist 0.3, fashion-mnist 0.1, cifar10 8/255)",
    )
    p.add_argument("--norm", default="linf", choices=["linf", "l2"])
    p.add_argument(
        "--sections",
        nargs="+",
        default=None,
        choices=["accuracy", "curvature", "surface", "scattering"],
        help="only these sections (default: all)",
    )
    _cli.add_model_flags(p)
    p.add_argument("--title", default=None, help="page title")
    p.add_argument("--seed", type=int, default=0)
    _cli.add_common(p, out="report", out_help="output folder", trust=True)
    return p


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 after an error)."""
    return _cli.run(_main, argv, "python -m landscape.report")


def _dataset(args: argparse.Namespace, cfg: dict) -> str:
    name = args.dataset or cfg.get("dataset") or (cfg.get("data") or {}).get("dataset")
    if isinstance(name, dict):  # a typed DatasetSpec written out
        name = name.get("name")
    if not name:
        raise _cli.CLIError("no dataset", "pass --dataset (the run records none)")
    return str(name)


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from .. import data as _data
    from ._budget import BUDGETS
    from ._build import build_report

    net, cfg = _cli.load_checkpoint(
        args.checkpoint,
        arch=args.arch,
        arch_kwargs=args.arch_kwargs,
        device=_cli.device(args),
        trust=args.trust_checkpoint,
    )
    dataset = _dataset(args, cfg)
    eps = args.eps or cfg.get("eps") or DEFAULT_EPS.get(dataset.lower())
    if not eps:
        raise _cli.CLIError(f"no eps for dataset {dataset!r}", "pass --eps")
    b = BUDGETS[args.budget]
    n_train = max(b.hessian_num, b.surface_num, b.scatter_num)
    train = _data.load_dataset(dataset, args.data_root, num_samples=n_train)
    test = _data.load_dataset(
        dataset, args.data_root, split="test", num_samples=b.eval_num
    )
    path = Path(args.checkpoint)
    rep = build_report(
        net,
        None,
        train,
        test_data=test,
        eps=float(eps),
        norm=args.norm,
        budget=b,
        sections=args.sections,
        out_dir=args.out,
        title=args.title or f"landscape report: {path.name}",
        description=f"Checkpoint <code>{path}</code>, dataset {dataset}.",
        seed=args.seed,
        progressbar=_cli.progress(args),
    )
    print(f"wrote {rep.html} ({len(rep.figures)} figures, numbers in {rep.json})")
    if rep.cached:
        print(f"loaded from the cache: {', '.join(rep.cached)}")
    return 0

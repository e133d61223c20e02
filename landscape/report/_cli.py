"""``python -m landscape.report``: analyse a trained model and write one
self-contained HTML report (robust accuracy with gradient-masking checks, Hessian
eigenvalues and spectral density, clean and adversarial loss surfaces with an
interactive 3D view, gradient scattering), one PNG per section and report.json with
every number. Finished sections are cached in OUT/cache: rerunning the same command
resumes.

Example:
    python -m landscape.report CHECKPOINT --dataset NAME --budget quick -o DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .. import _cli, checkpoints, data

__all__ = ["main"]

# eps when neither --eps nor the run's config gives one (the usual L-inf budgets)
DEFAULT_EPS = {
    "mnist": 0.3,
    "fashion-mnist": 0.1,
    "cifar10": 8 / 255,
    "cifar10-jpeg": 8 / 255,
    "cifar100": 8 / 255,
    "svhn": 8 / 255,
    "tiny-imagenet": 8 / 255,
    "imagenet": 4 / 255,
}


def _parser() -> argparse.ArgumentParser:
    p = _cli.parser("python -m landscape.report", __doc__)
    _cli.add_checkpoint(p)
    _cli.add_data(p, dataset=None)
    _cli.add_choice(
        p,
        "--budget",
        ["quick", "standard", "reviewer"],
        "how much work; evaluates with the preset of the same name (quick: PGD-20, "
        "standard: AutoAttack's standard version, reviewer: the reviewer protocol)",
    )
    p.add_argument(
        "--eps",
        type=float,
        default=None,
        help="attack budget (default: the run's training eps or a zoo model's "
        "threat model, else the dataset's usual one: mnist 0.3, fashion-mnist 0.1, "
        "cifar10 / cifar100 / svhn / tiny-imagenet 8/255, imagenet 4/255)",
    )
    _cli.add_choice(
        p,
        "--norm",
        ["linf", "l2"],
        "attack norm (default: a zoo model's threat model, else linf)",
        optional=True,
    )
    p.add_argument(
        "--sections",
        nargs="+",
        default=None,
        choices=["accuracy", "curvature", "surface", "scattering"],
        help="only these sections (default: all)",
    )
    p.add_argument("--title", default=None, help="page title")
    p.add_argument("--seed", type=int, default=0)
    _cli.add_common(p, out="report")
    return p


def _main(args: argparse.Namespace) -> int:
    from ._budget import BUDGETS
    from ._build import build_report

    out = _cli.out_folder(args, "report", args.checkpoint)
    net = checkpoints.load_model(args.checkpoint, **_cli.checkpoint_options(args))
    cfg = checkpoints.run_config(args.checkpoint, trust=args.trust_checkpoint)
    # a published model's registry entry stands in for a run config (data set, eps)
    cfg = {**checkpoints.published_config(net), **cfg}
    recorded = checkpoints.recorded_dataset(cfg)
    dataset = _cli.dataset_name(args, recorded)
    trained = (cfg.get("attack") or {}).get("eps")  # the run's training attack
    eps = args.eps or trained or DEFAULT_EPS.get(dataset.lower())
    if not eps:
        raise _cli.CLIError(f"no eps for dataset {dataset!r}", "pass --eps")
    b = BUDGETS[args.budget]
    n_train = max(b.hessian_num, b.surface_num, b.scatter_num)
    train = data.load_dataset(
        **_cli.data_options(args, recorded, split="train", num_samples=n_train)
    )
    test = data.load_dataset(
        **_cli.data_options(args, recorded, split="test", num_samples=b.eval_num)
    )
    path = Path(args.checkpoint)
    rep = build_report(
        net,
        None,
        train,
        test_data=test,
        eps=float(eps),
        norm=args.norm or cfg.get("norm") or "linf",
        budget=b,
        sections=args.sections,
        out_dir=out,
        title=args.title or f"landscape report: {path.name}",
        description=f"Checkpoint <code>{path}</code>, dataset {dataset}.",
        generator=torch.Generator().manual_seed(args.seed),
        progressbar=_cli.progress(args),
    )
    print(f"wrote {rep.html} ({len(rep.figures)} figures, numbers in {rep.json})")
    if rep.cached:
        print(f"loaded from the cache: {', '.join(rep.cached)}")
    return 0


main = _cli.entry(_parser, _main)

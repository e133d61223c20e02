"""``python -m landscape.report CHECKPOINT --dataset NAME --budget quick -o DIR``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

__all__ = ["main", "load_model"]

# eps when neither --eps nor the run's config gives one (the usual L-inf budgets)
DEFAULT_EPS = {"mnist": 0.3, "fashion-mnist": 0.1, "cifar10": 8 / 255}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m landscape.report",
        description=(
            "Analyse a trained model and write one self-contained HTML report (robust "
            "accuracy with gradient-masking checks, Hessian eigenvalues and spectral "
            "density, clean and adversarial loss surfaces with an interactive 3D "
            "view, gradient scattering), one PNG per section and report.json with "
            "every number. Finished sections are cached in DIR/cache: rerunning the "
            "same command resumes."
        ),
    )
    p.add_argument(
        "checkpoint",
        help="a run folder (python -m landscape.train), a checkpoint inside one, or a "
        "checkpoint file {'model': state_dict, 'arch': NAME, 'arch_kwargs': {...}}",
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
    p.add_argument("--model", default=None, help="architecture name (models.build)")
    p.add_argument(
        "--model-kwargs", default="{}", help="JSON keyword arguments for --model"
    )
    p.add_argument("--title", default=None, help="page title")
    p.add_argument("--device", default=None, help="cpu / cuda (default: cuda if any)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out", default="report", help="output folder")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="progress bars (default: on when stderr is a terminal)",
    )
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def _run_config(path: Path) -> dict:
    folder = path if path.is_dir() else path.parent
    cfg = folder / "config.json"
    return json.loads(cfg.read_text()) if cfg.exists() else {}


def load_model(
    path: str | Path, *, model: str | None = None, model_kwargs: dict | None = None
) -> torch.nn.Module:
    """The model in a run folder or checkpoint file, in eval mode, on the CPU.

    Args:
        path: a run folder, a checkpoint in one, or a file holding
            ``{"model": state_dict, "arch": name, "arch_kwargs": {...}}``.
        model: an architecture name for :func:`landscape.models.build` (needed for a
            bare state dict).
        model_kwargs: its keyword arguments.

    Raises:
        FileNotFoundError: no such file or folder.
        ValueError: the architecture cannot be told from the file (pass ``model``).
    """
    from .. import models, train

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if model is None and _run_config(path):
        return train.load_model(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else ckpt
    name = model or (ckpt.get("arch") if isinstance(ckpt, dict) else None)
    if not name:
        raise ValueError(
            f"{path} names no architecture: pass --model NAME (and --model-kwargs)"
        )
    kwargs = model_kwargs or (ckpt.get("arch_kwargs") if model is None else {}) or {}
    net = models.build(name, **kwargs)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path} does not fit architecture {name!r}: {err}") from err
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    from .. import data as _data
    from ._budget import BUDGETS
    from ._build import build_report

    path = Path(args.checkpoint)
    try:
        net = load_model(
            path, model=args.model, model_kwargs=json.loads(args.model_kwargs)
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    cfg = _run_config(path)
    dataset = (
        args.dataset or cfg.get("dataset") or (cfg.get("data") or {}).get("dataset")
    )
    if not dataset:
        print("error: no --dataset given and the run records none", file=sys.stderr)
        return 2
    eps = args.eps or cfg.get("eps") or DEFAULT_EPS.get(dataset.lower())
    if not eps:
        print(f"error: pass --eps (no default for {dataset!r})", file=sys.stderr)
        return 2
    device = torch.device(
        args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    )
    b = BUDGETS[args.budget]
    n_train = max(b.hessian_num, b.surface_num, b.scatter_num)
    train = _data.load_dataset(dataset, args.data_root, num_samples=n_train)
    test = _data.load_dataset(
        dataset, args.data_root, split="test", num_samples=b.eval_num
    )
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    rep = build_report(
        net.to(device),
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
        progressbar=progress,
    )
    print(f"wrote {rep.html} ({len(rep.figures)} figures, numbers in {rep.json})")
    if rep.cached:
        print(f"loaded from the cache: {', '.join(rep.cached)}")
    return 0

"""``python -m landscape.hessian``: curvature of a trained model's loss on a fixed
data subset: top Hessian eigenvalues (Lanczos), spectral density (stochastic Lanczos
quadrature) and trace (Hutchinson / Hutch++), on clean data and on adversarial data
attacked once at the model (PGD at each --eps). Results are written as .npz + .json
files (landscape.io.Result) and summary.json into the folder -o (default
runs/hessian/<name of the checkpoint>).

Examples::

    python -m landscape.hessian runs/mnist-lenet --eps 0 0.1 0.3 --num-eigenvalues 5 --density --trace
    python -m landscape.hessian weights.pt --arch lenet --num-samples 500 --dtype float64
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import _cli
from ..attacks._cli import add_attack, attack_from_args

__all__ = ["main"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _parser() -> argparse.ArgumentParser:
    p = _cli.parser("python -m landscape.hessian", __doc__, examples=True)
    _cli.add_checkpoint(p)
    _cli.add_data(p, dataset=None, split="train", splits=["train", "test"])
    p.add_argument(
        "--batch-size", type=_cli.positive_int, default=500, help="HVP batch size"
    )
    add_attack(p, eps=[0.0], sweep=True, steps=20, title="attack (eps 0: clean data)")
    p.add_argument(
        "--num-eigenvalues",
        type=_cli.nonnegative_int,
        default=5,
        help="eigenvalues to compute (5; 0: none)",
    )
    p.add_argument("--which", default="LA", choices=["LA", "SA", "LM"])
    p.add_argument("--tol", type=float, default=1e-6, help="Lanczos residual tolerance")
    p.add_argument(
        "--max-iter", type=int, default=None, help="Lanczos iterations (eigenvalues)"
    )
    p.add_argument("--density", action="store_true", help="spectral density (SLQ)")
    p.add_argument("--trace", action="store_true", help="trace estimate")
    for flag, default, text in (
        ("--density-max-iter", 100, "SLQ Lanczos steps per probe"),
        ("--num-runs", 3, "SLQ probes"),
        ("--num-matvecs", 100, "trace HVP budget"),
    ):
        p.add_argument(
            flag, type=_cli.positive_int, default=default, help=f"{text} ({default})"
        )
    p.add_argument(
        "--trace-method", default="hutch++", choices=["hutchinson", "hutch++"]
    )
    p.add_argument("--dtype", default="float32", choices=list(_DTYPES))
    p.add_argument("--seed", type=int, default=0)
    _cli.add_common(p, num_samples=1000, out="hessian")
    return p


def _curvature(args, model, batches, out: Path, tag: str, gen) -> dict:
    """The analyses the flags ask for on one set of batches; saves each result and
    returns the summary row's numbers."""
    from ._api import top_eigenvalues, trace
    from ._spectrum import lanczos_density

    loss_fn = nn.CrossEntropyLoss()
    common = dict(
        dtype=_DTYPES[args.dtype], generator=gen, progressbar=_cli.progress(args)
    )
    row: dict = {}
    if args.num_eigenvalues > 0:
        eig = top_eigenvalues(
            model,
            loss_fn,
            batches,
            num=args.num_eigenvalues,
            **_cli.pick(args, "which", "tol", "max_iter"),
            **common,
        )
        if _cli.is_main():  # under torchrun: every rank holds the whole result
            eig.save(out / f"eigenpairs_{tag}.npz")
        row["eigenvalues"] = np.round(eig.eigenvalues, 6).tolist()
        row["hvps"] = eig.num_matvecs
    if args.density:
        dens = lanczos_density(
            model,
            loss_fn,
            batches,
            max_iter=args.density_max_iter,
            num_runs=args.num_runs,
            **common,
        )
        if _cli.is_main():
            dens.save(out / f"density_{tag}.npz")
    if args.trace:
        method = args.trace_method
        tr = trace(
            model,
            loss_fn,
            batches,
            num_matvecs=args.num_matvecs,
            method=method,
            **common,
        )
        if _cli.is_main():
            tr.save(out / f"trace_{tag}.npz")
        row["trace"] = [round(tr.estimate, 4), round(tr.std_error, 4)]
    return row


def _work(args: argparse.Namespace, num: int) -> str:
    """What the flags ask for, for the start line of the progress."""
    work = [f"top {args.num_eigenvalues} eigenvalues"] if args.num_eigenvalues else []
    work += ["spectral density"] if args.density else []
    work += [f"{args.trace_method} trace"] if args.trace else []
    return f"{', '.join(work) or 'nothing'} on {num} images"


def _main(args: argparse.Namespace) -> int:
    import dataclasses

    from .. import attacks, checkpoints
    from .._progress import bar
    from .._utils import seed_everything

    gen = seed_everything(args.seed)
    out = _cli.out_folder(args, "hessian", args.checkpoint)
    model, clean = checkpoints.model_and_batches(args)
    out.mkdir(parents=True, exist_ok=True)
    summary = []
    attack = attack_from_args(args)  # at the first eps
    show = _cli.progress(args)
    for eps in bar(
        args.eps,
        desc="hessian",
        unit="eps",
        enabled=show,
        about=_work(args, sum(len(yb) for _, yb in clean)),
    ):
        batches = (
            clean
            if eps == 0
            else attacks.perturb_batches(
                model,
                clean,
                dataclasses.replace(attack, eps=eps),
                generator=gen,
                progressbar=show,
            )
        )
        row = {"eps": eps, **_curvature(args, model, batches, out, f"eps{eps:g}", gen)}
        summary.append(row)
        print(json.dumps(row))
    _cli.write_summary(out, args.checkpoint, summary)
    return 0


main = _cli.entry(_parser, _main)

"""``python -m landscape.hessian``: curvature of a trained model's loss on a fixed
data subset: top Hessian eigenvalues (Lanczos), spectral density (stochastic Lanczos
quadrature) and trace (Hutchinson / Hutch++), on clean data and on adversarial data
attacked once at the model (PGD at each --eps). Results are written as .npz + .json
files (landscape.io.Result) into --out."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import _cli

__all__ = ["main", "load_checkpoint_model"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def load_checkpoint_model(
    path: str | Path,
    *,
    model: str | None = None,
    model_kwargs: dict | None = None,
    trust: bool = False,
) -> tuple[nn.Module, dict]:
    """Load a model from a training-run folder, a checkpoint file or a state_dict.

    Accepted: a run folder of :func:`landscape.train.adversarial_train` (its
    ``final.pt`` and ``config.json``); a checkpoint ``{"model": state_dict, "config":
    {"model": name, "model_kwargs": {...}, ...}}``; a checkpoint inside a run folder;
    or any state_dict file together with ``model`` (a ``landscape.models.build`` name).
    Files load with ``weights_only=True`` (a pickled module needs ``trust=True``).

    Returns:
        ``(model in eval mode, config dict or {})``.
    """
    return _cli.load_checkpoint(path, arch=model, arch_kwargs=model_kwargs, trust=trust)


def _parser() -> argparse.ArgumentParser:
    p = _cli.parser(
        "python -m landscape.hessian",
        __doc__,
        epilog=(
            "examples:\n"
            "  python -m landscape.hessian runs/mnist-lenet --eps 0 0.1 0.3 --top-k 5 "
            "--density --trace\n"
            "  python -m landscape.hessian weights.pt --arch lenet --num-samples 500 "
            "--dtype float64"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _cli.add_checkpoint(p)
    _cli.add_data(p, dataset=None, split="train", splits=["train", "test"])
    p.add_argument(
        "--batch-size", type=_cli.positive_int, default=500, help="HVP batch size"
    )
    p.add_argument(
        "--eps",
        type=float,
        nargs="+",
        default=[0.0],
        help="attack budgets; 0 = clean data (default: 0)",
    )
    p.add_argument("--norm", default="linf", choices=["linf", "l2"])
    p.add_argument("--steps", type=int, default=20, help="PGD steps (20)")
    p.add_argument(
        "--alpha", type=float, default=None, help="PGD step (2.5 eps / steps)"
    )
    p.add_argument(
        "--top-k",
        type=_cli.nonnegative_int,
        default=5,
        help="eigenvalues to compute (5; 0: none)",
    )
    p.add_argument("--which", default="LA", choices=["LA", "SA", "LM"])
    p.add_argument("--tol", type=float, default=1e-6, help="Lanczos residual tolerance")
    p.add_argument("--max-iter", type=int, default=None, help="Lanczos iterations")
    p.add_argument("--density", action="store_true", help="spectral density (SLQ)")
    p.add_argument("--num-iters", type=int, default=100, help="SLQ Lanczos steps (100)")
    p.add_argument("--num-runs", type=int, default=3, help="SLQ probes (3)")
    p.add_argument("--trace", action="store_true", help="trace estimate")
    p.add_argument("--num-probes", type=int, default=100, help="trace HVP budget (100)")
    p.add_argument(
        "--trace-method", default="hutch++", choices=["hutchinson", "hutch++"]
    )
    p.add_argument("--dtype", default="float32", choices=list(_DTYPES))
    p.add_argument("--seed", type=int, default=0)
    _cli.add_common(p, num_samples=1000, out="data/results/hessian", out_help="folder")
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
    if args.top_k > 0:
        eig = top_eigenvalues(
            model,
            loss_fn,
            batches,
            num=args.top_k,
            **_cli.pick(args, "which", "tol", "max_iter"),
            **common,
        )
        eig.save(out / f"eigenpairs_{tag}.npz")
        row["eigenvalues"] = np.round(eig.eigenvalues, 6).tolist()
        row["hvps"] = eig.num_hvps
    if args.density:
        dens = lanczos_density(
            model,
            loss_fn,
            batches,
            **_cli.pick(args, "num_iters", "num_runs"),
            **common,
        )
        dens.save(out / f"density_{tag}.npz")
    if args.trace:
        method = args.trace_method
        tr = trace(
            model, loss_fn, batches, num_probes=args.num_probes, method=method, **common
        )
        tr.save(out / f"trace_{tag}.npz")
        row["trace"] = [round(tr.estimate, 4), round(tr.std_error, 4)]
    return row


def _main(args: argparse.Namespace) -> int:
    from .. import attacks, data
    from .._utils import seed_everything
    from ..io import atomic_write
    from ._api import adversarial_data

    gen = seed_everything(args.seed)
    model, cfg = _cli.load_model(args)
    x, y = _cli.load_data(args, cfg, seed=args.seed)
    clean = list(
        data.batches(x, y, batch_size=args.batch_size, device=_cli.device(args))
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = []
    for eps in args.eps:
        batches = (
            clean
            if eps == 0
            else adversarial_data(
                model,
                clean,
                attacks.PGD(eps=eps, **_cli.pick(args, "norm", "alpha", "steps")),
                generator=gen,
            )
        )
        row = {"eps": eps, **_curvature(args, model, batches, out, f"eps{eps:g}", gen)}
        summary.append(row)
        print(json.dumps(row))
    with atomic_write(out / "summary.json", "w") as f:
        json.dump({"checkpoint": str(args.checkpoint), "rows": summary}, f, indent=1)
    print(f"wrote {out}/")
    return 0


main = _cli.entry(_parser, _main)

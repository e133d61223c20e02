"""``python -m landscape.evaluate``: robust evaluation of a checkpoint or run folder.

Example:
    python -m landscape.evaluate runs/mnist_pgd --dataset mnist --num-samples 1000 \\
        --eps 0.1 0.2 0.3 --preset standard --out data/results/eval_mnist
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from ._presets import PRESETS
from ._protocol import evaluate


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m landscape.evaluate",
        description="Robust evaluation (clean accuracy, attacks in sequence, pointwise "
        "worst case, eps sweep, gradient-masking checks). Writes <out>_<norm>.npz/.json "
        "(EvalResult) and a readable <out>_<norm>.txt table.",
    )
    p.add_argument(
        "model",
        help="run folder or checkpoint of landscape.train, or a "
        "file holding a torch.save'd nn.Module",
    )
    p.add_argument(
        "--ensemble",
        action="store_true",
        help="evaluate the end-of-period ensemble of a run folder",
    )
    p.add_argument(
        "--dataset",
        default="mnist",
        help="mnist | fashion-mnist | cifar10 | cifar10-jpeg (default mnist)",
    )
    p.add_argument(
        "--data-root",
        default=os.environ.get("LANDSCAPE_DATA"),
        help="data folder (default $LANDSCAPE_DATA)",
    )
    p.add_argument("--split", default="test")
    p.add_argument(
        "--num-samples",
        type=int,
        default=1000,
        help="evaluation points (stratified; default 1000)",
    )
    p.add_argument(
        "--eps",
        type=float,
        nargs="+",
        required=True,
        help="budget(s) for the first norm; a sweep if several",
    )
    p.add_argument(
        "--eps-l2",
        type=float,
        nargs="+",
        default=None,
        help="budget(s) for L2 when --norm includes l2 after linf",
    )
    p.add_argument(
        "--norm",
        nargs="+",
        default=None,
        choices=["linf", "l2"],
        help="norms (default: linf; reviewer: linf and l2)",
    )
    p.add_argument("--preset", default="quick", choices=PRESETS)
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply all step/restart/query budgets (e.g. 0.05 on CPU)",
    )
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--restarts", type=int, default=None)
    p.add_argument("--queries", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument(
        "--no-checks", action="store_true", help="skip gradient-masking checks"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--out",
        default="data/results/eval",
        help="output prefix (default data/results/eval)",
    )
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="ignore and overwrite an existing state file",
    )
    p.add_argument("--progressbar", action="store_true")
    return p


def _load_model(path: str, ensemble: bool, device: str) -> torch.nn.Module:
    p = Path(path)
    if p.is_file():
        from .. import io

        net = io.module_in(io.load_torch(p, map_location=device))
        if net is not None:
            return net.to(device).eval()
    from .. import train

    if ensemble:
        return train.load_ensemble(p, device=device)
    return train.load_model(p, device=device)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .. import data

    model = _load_model(args.model, args.ensemble, args.device)
    x, y = data.load_dataset(
        args.dataset, args.data_root, split=args.split, num_samples=args.num_samples
    )
    norms = args.norm or (["linf", "l2"] if args.preset == "reviewer" else ["linf"])
    for i, norm in enumerate(norms):
        eps = args.eps if i == 0 or args.eps_l2 is None else args.eps_l2
        if norm == "l2" and i > 0 and args.eps_l2 is None:
            print("skipping l2: pass --eps-l2 for its budgets")
            continue
        out = Path(f"{args.out}_{norm}")
        state = Path(str(out) + ".state.pt")
        if args.no_resume and state.exists():
            state.unlink()
        res = evaluate(
            model,
            (x, y),
            eps=eps,
            norm=norm,
            preset=args.preset,
            scale=args.scale,
            steps=args.steps,
            restarts=args.restarts,
            queries=args.queries,
            batch_size=args.batch_size,
            checks=not args.no_checks,
            state_path=state,
            generator=torch.Generator().manual_seed(args.seed),
            progressbar=args.progressbar,
        )
        res.save(out.with_suffix(".npz"))
        res.save_table(out.with_suffix(".txt"))
        state.unlink(missing_ok=True)
        print(res.table())
        print(f"wrote {out}.npz, {out}.npz.json, {out}.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m landscape.scattering CHECKPOINT ...``: the command-line tool."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
from torch import nn

from .. import _cli, _utils
from ._measure import scattering

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = _cli.Parser(
        prog="python -m landscape.scattering",
        description="Gradient scattering of the adversarial loss (Prop. 2 of Liu et al. "
        "2020) for a trained model: gradient-Lipschitz ratio, gradient cosine, "
        "excess and perturbation cosine at w and w + s v.",
    )
    p.add_argument(
        "checkpoint",
        help="a run folder of landscape.train, a training checkpoint, or a state "
        "dict (with --arch)",
    )
    _cli.add_model_flags(p)
    p.add_argument(
        "--activation",
        default="relu",
        help="activation for --arch (relu/softplus/gelu/tanh)",
    )
    p.add_argument(
        "--smooth-twin",
        default=None,
        metavar="ACT",
        help="also measure models.smooth_twin(model, ACT) (e.g. softplus)",
    )
    p.add_argument("--dataset", default="mnist", help="landscape.data name (mnist)")
    p.add_argument("--data-root", default=None, help="data folder ($LANDSCAPE_DATA)")
    p.add_argument("--split", default="test")
    p.add_argument("--batch-size", type=_cli.positive_int, default=128)
    p.add_argument("--eps", type=float, nargs="+", required=True)
    p.add_argument("--scales", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2, 1e-1])
    p.add_argument(
        "--directions", default="unit", choices=["unit", "random", "filter", "hessian"]
    )
    p.add_argument("--num-directions", type=_cli.positive_int, default=4)
    p.add_argument("--norm", default="linf", choices=["linf", "l2"])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--no-random-start", action="store_true")
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    _cli.add_common(
        p,
        num_samples=512,
        out=None,
        out_required=True,
        out_help="result path (.npz)",
        trust=True,
    )
    return p


def _load_model(args: argparse.Namespace, device: torch.device) -> nn.Module:
    kwargs = args.arch_kwargs
    if args.arch is not None:
        shape = (3, 32, 32) if args.dataset.startswith("cifar") else (1, 28, 28)
        kwargs = {
            "activation": args.activation,
            "in_shape": shape,
            "dataset": args.dataset,
            **(kwargs or {}),
        }
    model, _ = _cli.load_checkpoint(
        args.checkpoint,
        arch=args.arch,
        arch_kwargs=kwargs,
        device=device,
        trust=args.trust_checkpoint,
    )
    return model


def main(argv: list[str] | None = None) -> int:
    """Command line: measure scattering for a checkpoint and save the result."""
    return _cli.run(_main, argv, "python -m landscape.scattering")


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    device = _cli.device(args)
    gen = _utils.seed_everything(args.seed)
    model = _load_model(args, device)
    from .. import data as ldata

    x, y = ldata.load_dataset(
        args.dataset,
        args.data_root,
        split=args.split,
        num_samples=args.num_samples,
        seed=args.seed,
    )
    batches = [
        (x[i : i + args.batch_size], y[i : i + args.batch_size])
        for i in range(0, len(x), args.batch_size)
    ]
    targets = {"model": model}
    if args.smooth_twin:
        from .. import models

        targets["twin"] = models.smooth_twin(model, activation=args.smooth_twin)
    out = Path(args.out)
    for label, m in targets.items():
        res = scattering(
            m,
            None,
            batches,
            eps=args.eps,
            scales=args.scales,
            directions=args.directions,
            num_directions=args.num_directions,
            norm=args.norm,
            steps=args.steps,
            random_start=not args.no_random_start,
            chunk_size=args.chunk_size,
            generator=gen,
            progressbar=_cli.progress(args),
        )
        res = dataclasses.replace(
            res,
            meta={**res.meta, "checkpoint": str(args.checkpoint), "model_label": label},
        )
        path = out if label == "model" else out.with_name(out.stem + "_twin.npz")
        res.save(path)
        exc = res.excess().mean(axis=(1, 2))
        for e, ex, r in zip(res.eps, exc, res.ratio[:, :, 0].mean(axis=(1, 2))):
            print(
                f"[{label}] eps={e:g}: excess={ex:.4g} ratio@s={res.scales[0]:g}: "
                f"{r:.4g}"
            )
        print(f"wrote {path}")
    return 0

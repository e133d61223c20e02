"""``python -m landscape.sharpness``: sharpness of a trained model's loss on a data
subset: worst case (APGD in weight space) and average case (weight noise), plain or
adaptive, per batch of ``--m`` examples (m-sharpness), on clean data or, with
``--eps``, on the adversarial loss (inputs attacked once at the weights, or again at
every perturbed weight with ``--reattack``). Each measure is written as a .npz + .json
result (landscape.io.Result) into --out, with a summary.json of all of them.

Examples::

    python -m landscape.sharpness runs/cifar --kind worst --norm linf --adaptive element --rho 0.002 0.005
    python -m landscape.sharpness runs/cifar --kind average --rho 0.1 --eps 8/255 --reattack --m 128
"""

from __future__ import annotations

import argparse
import json

from torch import nn

from .. import _cli
from ..attacks._cli import add_attack, attack_from_args
from ._measures import AverageCase, Measure, WorstCase

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = _cli.parser("python -m landscape.sharpness", __doc__, examples=True)
    _cli.add_checkpoint(p)
    _cli.add_data(p, dataset=None, split="train", splits=["train", "test"])
    p.add_argument(
        "--batch-size",
        type=_cli.positive_int,
        default=256,
        help="examples per batch (256); with --m, split further",
    )
    g = p.add_argument_group("measure")
    g.add_argument(
        "--kind",
        nargs="+",
        choices=["worst", "average"],
        default=["worst"],
        help="worst case (APGD in weight space) and/or average case (noise)",
    )
    g.add_argument(
        "--rho",
        type=_cli.number,
        nargs="+",
        required=True,
        help="radii (one measure per radius); relative to |w| with --adaptive",
    )
    _cli.add_choice(
        g,
        "--norm",
        ["l2", "linf"],
        "worst case: the ball's norm (l2)",
        dest="weight_norm",
    )
    _cli.add_choice(
        g, "--noise", ["gaussian", "uniform"], "average case: the noise (gaussian)"
    )
    _cli.add_choice(
        g,
        "--adaptive",
        ["element", "filter"],
        "scale the ball by |w| per entry or by the filter norms",
        optional=True,
    )
    g.add_argument(
        "--m",
        type=_cli.positive_int,
        default=None,
        help="m-sharpness: examples per batch of the maximum / expectation",
    )
    _cli.add_choice(
        g,
        "--ignore",
        ["bn", "biasbn"],
        "keep the normalisation parameters (bn) or all 1-D ones fixed",
        optional=True,
    )
    g.add_argument(
        "--max-iter", type=_cli.positive_int, default=20, help="worst case: steps (20)"
    )
    g.add_argument(
        "--num-samples-noise",
        dest="num_noise",
        type=_cli.positive_int,
        default=10,
        help="average case: noise draws per batch (10)",
    )
    add_attack(
        p,
        eps=0.0,
        steps=10,
        norm_flag="--attack-norm",
        title="attack (--eps 0: clean data)",
    )
    p.add_argument(
        "--reattack",
        action="store_true",
        help="attack again at every perturbed weight (default: once at the weights)",
    )
    p.add_argument("--seed", type=int, default=0)
    _cli.add_common(p, num_samples=1024, out="sharpness")
    return p


def _measures(args: argparse.Namespace) -> list[Measure]:
    attack = attack_from_args(args) if args.eps else None
    adversarial = None if attack is None else "reattack" if args.reattack else "fixed"
    common = dict(
        adaptive=args.adaptive,
        m=args.m,
        ignore=args.ignore,
        attack=attack,
        adversarial=adversarial,
    )
    out: list[Measure] = []
    for kind in args.kind:
        for rho in args.rho:
            if kind == "worst":
                out.append(
                    WorstCase(
                        rho=rho,
                        norm=args.weight_norm,
                        max_iter=args.max_iter,
                        **common,
                    )
                )
            else:
                out.append(
                    AverageCase(
                        rho=rho, noise=args.noise, num_samples=args.num_noise, **common
                    )
                )
    return out


def _main(args: argparse.Namespace) -> int:
    from .. import checkpoints
    from .._utils import seed_everything

    measures = _measures(args)  # bad settings fail before any loading
    out = _cli.out_folder(args, "sharpness", args.checkpoint)  # before the work
    gen = seed_everything(args.seed)
    model, batches = checkpoints.model_and_batches(args)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for m in measures:
        res = m(
            model,
            nn.CrossEntropyLoss(),
            batches,
            gen,
            progressbar=_cli.progress(args),
        )
        path = out / f"sharpness_{m.name}.npz"
        if _cli.is_main():  # under torchrun: every rank holds the whole result
            path = res.save(path)
        row = {
            "measure": m.name,
            "value": res.value,
            "std_error": res.std_error,
            "loss": float((res.loss * res.sizes).sum() / res.sizes.sum()),
            "num_grad": res.num_grad,
            "num_forward": res.num_forward,
            "file": str(path),
        }
        rows.append(row)
        print(json.dumps(row))
    _cli.write_summary(out, args.checkpoint, rows)
    return 0


main = _cli.entry(_parser, _main)

"""``python -m landscape.scattering``: gradient scattering of the
adversarial loss (Prop. 2 of Liu et al. 2020) for a trained model:
gradient-Lipschitz ratio, gradient cosine, excess and perturbation cosine at w and
w + s v. Writes scattering.npz (a ScatteringResult; scattering_twin.npz with
--smooth-twin) into the folder -o (default runs/scattering/<name of the checkpoint>).
"""

from __future__ import annotations

import argparse
import dataclasses

from torch import nn

from .. import _cli, _utils, checkpoints, data
from ..attacks._cli import add_attack, attack_from_args
from ._measure import scattering

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = _cli.parser("python -m landscape.scattering", __doc__)
    _cli.add_checkpoint(p)
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
    _cli.add_data(p, split="test")
    p.add_argument("--batch-size", type=_cli.positive_int, default=128)
    p.add_argument("--scales", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2, 1e-1])
    p.add_argument(
        "--directions", default="unit", choices=["unit", "filter", "hessian"]
    )
    p.add_argument("--num-directions", type=_cli.positive_int, default=4)
    add_attack(p, kinds=("pgd", "fgsm-rs"), eps_required=True, sweep=True, steps=10)
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    _cli.add_common(p, num_samples=512, out="scattering")
    return p


def _load_model(args: argparse.Namespace) -> nn.Module:
    kwargs = args.arch_kwargs
    if args.arch is not None:
        shape = (3, 32, 32) if args.dataset.startswith("cifar") else (1, 28, 28)
        kwargs = {
            "activation": args.activation,
            "in_shape": shape,
            "dataset": args.dataset,
            **(kwargs or {}),
        }
    return checkpoints.load_model(
        args.checkpoint, **_cli.checkpoint_options(args, arch_kwargs=kwargs)
    )


def _main(args: argparse.Namespace) -> int:
    gen = _utils.seed_everything(args.seed)
    folder = _cli.out_folder(args, "scattering", args.checkpoint)
    model = _load_model(args)

    x, y = data.load_dataset(**_cli.data_options(args, seed=args.seed))
    batches = data.batches(x, y, batch_size=args.batch_size)
    targets = {"model": model}
    if args.smooth_twin:
        from .. import models

        targets["twin"] = models.smooth_twin(model, activation=args.smooth_twin)
    attack = attack_from_args(args)  # at the first eps; scattering sweeps eps
    for label, m in targets.items():
        res = scattering(
            m,
            None,
            batches,
            attack=attack,
            **_cli.pick(args, "eps", "scales", "directions", "num_directions"),
            chunk_size=args.chunk_size,
            generator=gen,
            progressbar=_cli.progress(args),
        )
        res = dataclasses.replace(
            res,
            meta={**res.meta, "checkpoint": str(args.checkpoint), "model_label": label},
        )
        path = folder / (
            "scattering.npz" if label == "model" else "scattering_twin.npz"
        )
        if _cli.is_main():  # under torchrun: every rank holds the whole result
            path = res.save(path)
        exc = res.excess().mean(axis=(1, 2))
        for e, ex, r in zip(res.eps, exc, res.ratio[:, :, 0].mean(axis=(1, 2))):
            print(
                f"[{label}] eps={e:g}: excess={ex:.4g} ratio@s={res.scales[0]:g}: "
                f"{r:.4g}"
            )
        print(f"wrote {path}")
    return 0


main = _cli.entry(_parser, _main)

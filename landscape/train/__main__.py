"""``python -m landscape.train``: adversarial training with the paper's presets and
eps / lr schedules (constant, warm-up, periodic), per-epoch robust metrics,
checkpoints, exact resume and end-of-period ensembles. Rerun with the same --run-dir
to resume.

Examples::

    python -m landscape.train mnist-lenet --smoke --run-dir runs/smoke
    python -m landscape.train mnist-lenet --eps-schedule cosine --run-dir runs/lenet_cos
    python -m landscape.train cifar10-resnet18 --eps-schedule periodic \\
        --lr-schedule periodic --periods 3 --run-dir runs/r18_pas
    torchrun --nproc-per-node 4 -m landscape.train cifar10-resnet18 --run-dir runs/r18

Running the same command again with the same ``--run-dir`` resumes the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from .. import _cli
from ..attacks._cli import add_attack, attack_from_args
from ..schedules import EPS_SCHEDULES, LR_SCHEDULES
from ._config import PRESETS, DataRecord, TrainConfig, preset, smoke

__all__ = ["main"]


def _periods(s: str) -> Any:
    """``3`` (equal periods) or ``0,40,80,120`` (boundaries)."""
    try:
        if "," in s:
            return [float(v) for v in s.split(",") if v.strip()]
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--periods takes a count (3) or boundaries (0,40,80,120), got {s!r}"
        ) from None


_json = _cli.json_dict
_pos = _cli.positive_int


def _parser() -> argparse.ArgumentParser:
    p = _cli.parser(
        "python -m landscape.train",
        __doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("preset", choices=sorted(PRESETS), help="the paper's setting")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="shrink to seconds on a CPU (2 epochs, 512 train / 64 test images): "
        "checks that the setup runs, not meant to learn",
    )
    p.add_argument(
        "--run-dir",
        "-o",
        "--out",
        default=None,
        help="run folder (default ./runs/<preset>, relative to the current folder)",
    )
    p.add_argument(
        "--data-root",
        default=None,
        help="dataset folder (default $LANDSCAPE_DATA, else the per-user cache)",
    )
    p.add_argument(
        "--num-train",
        "--num-samples",
        type=_pos,
        default=None,
        help="stratified training subset (default: all; 512 with --smoke)",
    )
    p.add_argument("--num-test", type=_pos, default=None, help="test subset size")
    g = p.add_argument_group("training overrides (default: the preset's value)")
    g.add_argument("--epochs", type=_pos)
    g.add_argument("--batch-size", type=_pos)
    g.add_argument("--optimizer", choices=["sgd", "adam"])
    g.add_argument("--lr", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--eps-schedule", help=f"one of {sorted(EPS_SCHEDULES)}")
    g.add_argument("--eps-kwargs", type=_json, help="JSON, e.g. '{\"ramp\": 0.5}'")
    g.add_argument("--lr-schedule", help=f"one of {sorted(LR_SCHEDULES)}")
    g.add_argument(
        "--lr-kwargs", type=_json, help="JSON, e.g. '{\"milestones\": [50]}'"
    )
    g.add_argument(
        "--periods", type=_periods, help="count (3) or boundaries (0,40,80,120)"
    )
    g.add_argument("--eval-num", type=int, help="test images evaluated per epoch")
    g.add_argument(
        "--eval-steps", type=int, help="PGD steps of the per-epoch evaluation"
    )
    g.add_argument(
        "--checkpoint-every", type=int, help="resume checkpoint every N iterations"
    )
    g.add_argument("--seed", type=int)
    g.add_argument("--width", type=float, default=None, help="model width factor")
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile")
    add_attack(
        p,
        kinds=("pgd", "fgsm-rs", "none"),
        title="training attack (default: the preset's; --eps is the target budget)",
    )
    _cli.add_common(p)
    return p


_SCIENCE_FLAGS = (
    "epochs", "batch_size", "optimizer", "lr", "weight_decay", "eps_schedule",
    "eps_kwargs", "lr_schedule", "lr_kwargs", "periods", "seed",
)  # fmt: skip


def _config(args: argparse.Namespace) -> TrainConfig:
    """The preset's config with the given flags replaced."""
    cfg = preset(args.preset)
    over: dict[str, Any] = {
        k: getattr(args, k) for k in _SCIENCE_FLAGS if getattr(args, k) is not None
    }
    for kind in ("eps", "lr"):  # a new schedule does not inherit the preset's params
        name = over.get(f"{kind}_schedule")
        if name is not None and name != getattr(cfg, f"{kind}_schedule"):
            over.setdefault(f"{kind}_kwargs", {})
    over["attack"] = attack_from_args(args, cfg.attack)
    rt: dict[str, Any] = {}
    for k in ("eval_num", "checkpoint_every", "compile"):
        if getattr(args, k) is not None:
            rt[k] = getattr(args, k)
    if args.eval_steps is not None:
        from ._eval import eval_attack

        ev = eval_attack(cfg)
        rt["eval_attack"] = dataclasses.replace(ev, steps=args.eval_steps)
    atk, ev = over["attack"], rt.get("eval_attack", cfg.runtime.eval_attack)
    if atk is not None and ev is not None and ev.norm != atk.norm:
        # the per-epoch evaluation follows the training attack's threat model (an
        # evaluation PGD starts at x for L2, as the evaluation presets)
        change: dict[str, Any] = {"norm": atk.norm}
        if getattr(ev, "keep", None) == "best":
            change["random_start"] = atk.norm == "linf"
        rt["eval_attack"] = dataclasses.replace(ev, **change)
    over["runtime"] = dataclasses.replace(cfg.runtime, **rt)
    cfg = dataclasses.replace(cfg, **over)
    if args.smoke:
        cfg = smoke(cfg)
    if args.width is not None:
        cfg = dataclasses.replace(
            cfg, model_kwargs={**cfg.model_kwargs, "width": args.width}
        )
    return cfg


def _main(args: argparse.Namespace) -> int:
    import torch

    from .. import data as _data
    from .. import models as _models
    from ._loop import adversarial_train

    try:
        cfg = _config(args)
    except (ValueError, TypeError) as err:
        prog = "python -m landscape.train"
        raise _cli.CLIError(f"{prog}: {err}", f"see {prog} --help") from None
    run_dir = Path(
        args.run_dir or f"runs/{args.preset}{'-smoke' if args.smoke else ''}"
    )
    _cli.check_run_folder(run_dir)
    num_train = args.num_train or (512 if args.smoke else None)
    num_test = args.num_test or (
        64 if args.smoke else min(cfg.runtime.eval_num, 10_000)
    )
    dataset = cfg.dataset.name
    (x, y), (xt, yt) = (
        _data.load_dataset(
            dataset,
            args.data_root,
            split=split,
            num_samples=num,
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        for split, num in (("train", num_train), ("test", num_test))
    )
    device = _cli.device(args)  # torchrun: cuda:LOCAL_RANK, its group set up
    cfg = dataclasses.replace(
        cfg,
        dataset=DataRecord(dataset, num_train=len(x), num_test=len(xt)),
        # dataset= sets the input shape, the class count and the normalisation
        model_kwargs={"dataset": dataset, **cfg.model_kwargs},
    )
    torch.manual_seed(cfg.seed)
    model = _models.build(cfg.model, **cfg.model_kwargs).to(device)
    loader = _data.batches(
        x,
        y,
        batch_size=cfg.batch_size,
        shuffle=cfg.shuffle,
        seed=cfg.seed,
        device=device,
        drop_last=cfg.drop_last,
    )
    # adversarial_train locks the run folder (one process per run folder)
    res = adversarial_train(
        model,
        loader,
        cfg,
        test_data=(xt, yt),
        run_dir=run_dir,
        progressbar=_cli.progress(args),
    )
    if _cli.is_main():
        m = res.metrics
        print(
            f"{args.preset}: {len(m['epoch'])} epochs, train acc {m['train_acc'][-1]:.4f}, "
            f"test clean {m['test_clean_acc'][-1]:.4f}, robust@"
            f"{0.0 if cfg.attack is None else cfg.attack.eps:.4g} "
            f"{m['test_robust_acc'][-1]:.4f}; run folder {run_dir}",
            file=sys.stdout,
        )
        if args.smoke:
            print(
                "(a smoke run checks that the setup runs end to end: 2 epochs on 512 "
                "images are not meant to learn, so chance-level accuracy is expected; "
                "drop --smoke to train)",
                file=sys.stdout,
            )
    return 0


main = _cli.entry(_parser, _main)

if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m landscape.connectivity``: train a curve between two trained models, and
scan loss / accuracy along it (or along the straight line).

Examples::

    python -m landscape.connectivity train runs/a runs/b --run-dir runs/curve_ab \\
        --dataset mnist --num-train 2000 --epochs 5 --eps 0.3 --steps 5 --lr 0.01
    python -m landscape.connectivity scan runs/curve_ab --num-samples 500 --eps 0.3 \\
        --steps 20 -o runs/curve_ab/scan
    python -m landscape.connectivity scan --line runs/a runs/b --num-samples 500 \\
        --eps 0.3 -o runs/line_ab

``A`` and ``B`` are run folders of ``python -m landscape.train`` (their
``final.pt``) or checkpoint files inside one; the architecture is rebuilt from the
run's ``config.json``. Every checkpoint is read with ``weights_only=True``. Running
``train`` again with the same ``--run-dir`` (``-o``) resumes the run. ``scan`` writes
scan.npz (a CurveScan) into the folder -o (default
runs/connectivity/<name of the curve run, or line-A-B>).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .. import _cli, checkpoints, io
from ..attacks._cli import add_attack, attack_from_args

__all__ = ["main"]

PROG = "python -m landscape.connectivity"


def _common(p: argparse.ArgumentParser, **kw) -> None:
    _cli.add_data(p, dataset=None)
    p.add_argument("--seed", type=int, default=0, help="seed (0)")
    _cli.add_common(p, **kw)


def _parser() -> argparse.ArgumentParser:
    p = _cli.parser(
        PROG,
        __doc__,
        epilog="Run `... train --help` or `... scan --help` for the options.",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_cli.Parser)
    t = sub.add_parser(
        "train", help="train a Bezier curve / polygonal chain between A and B"
    )
    t.add_argument("a", help="the model at t=0 (run folder or checkpoint)")
    t.add_argument("b", help="the model at t=1")
    t.add_argument(
        "--run-dir",
        "-o",
        "--out",
        required=True,
        help="folder for the curve run (resumable)",
    )
    t.add_argument("--kind", default="bezier", choices=("bezier", "polychain"))
    t.add_argument("--num-bends", type=int, default=1)
    t.add_argument("--num-train", type=int, default=None, help="training images (all)")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"))
    t.add_argument("--lr", type=float, default=0.01)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--eps-schedule", default="constant")
    t.add_argument("--lr-schedule", default="constant")
    t.add_argument("--checkpoint-every", type=int, default=0)
    add_attack(
        t,
        kinds=("pgd", "fgsm-rs", "none"),
        eps=0.0,
        steps=10,
        title="training attack (--eps 0: clean curve training)",
    )
    _common(t)
    s = sub.add_parser("scan", help="loss / accuracy along a trained curve or the line")
    s.add_argument("curve", nargs="?", help="a curve run folder (or its curve.pt)")
    s.add_argument(
        "--line", nargs=2, metavar=("A", "B"), help="scan the straight line A-B"
    )
    s.add_argument("--num-points", type=int, default=21)
    s.add_argument(
        "--num-bn", type=int, default=2000, help="training images for BatchNorm"
    )
    s.add_argument("--batch-size", type=int, default=500)
    add_attack(
        s,
        kinds=("pgd", "apgd"),
        eps=0.0,
        steps=20,
        title="evaluation attack (--eps 0: clean only)",
    )
    _common(
        s,
        num_samples=1000,
        out="connectivity",
        out_default="runs/connectivity/<name of the curve run, or line-A-B>",
    )
    return p


def _load_model(path: str, device: Any):
    """An endpoint through the one checkpoint loader (weights_only=True): a run
    folder of ``landscape.train`` or a checkpoint file."""
    model = checkpoints.load_model(path, device=device)
    cfg = checkpoints.run_config(path)
    info = {
        "model": cfg.get("model"),
        "model_kwargs": cfg.get("model_kwargs") or {},
        "dataset": checkpoints.recorded_dataset(cfg),
        "path": str(path),
    }
    return model, info


def _train(args, device) -> str:
    import torch

    from .. import data, train
    from ._bn import has_batchnorm
    from ._curves import CurveModel

    a, info = _load_model(args.a, device)
    b, info_b = _load_model(args.b, device)
    if (info["model"], info["model_kwargs"]) != (
        info_b["model"],
        info_b["model_kwargs"],
    ):
        raise ValueError(f"{args.a} and {args.b} are different architectures")
    attack = attack_from_args(args)
    cfg = train.TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        weight_decay=args.weight_decay,
        attack=attack,
        eps_schedule=args.eps_schedule,
        lr_schedule=args.lr_schedule,
        # no running statistics between the endpoints: BatchNorm on batch statistics
        attack_train_mode=attack is not None and has_batchnorm(a),
        seed=args.seed,
        runtime=train.Runtime(
            eval_num=0, co_check_num=0, checkpoint_every=args.checkpoint_every
        ),
    )
    name = _cli.dataset_name(args, info["dataset"])
    x, y = data.load_dataset(
        name,
        args.data_root,
        num_samples=args.num_train,
        generator=torch.Generator().manual_seed(args.seed),
    )
    loader = data.batches(
        x, y, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed, device=device
    )
    run_dir = Path(args.run_dir)
    model = CurveModel(a, b, kind=args.kind, num_bends=args.num_bends)
    torch.manual_seed(args.seed)
    # adversarial_train locks the run folder and refuses a resume with other
    # endpoints (they are part of the curve model's state)
    res = train.adversarial_train(
        model, loader, cfg, run_dir=run_dir, progressbar=_cli.progress(args)
    )
    if _cli.is_main():  # under torchrun: rank 0 writes (adversarial_train too)
        model.curve().to("cpu").save(run_dir / "curve.pt", config=cfg.to_dict())
        with io.atomic_write(run_dir / "endpoints.json", "w") as f:
            json.dump({"a": info, "b": info_b, "dataset": name}, f, indent=1)
    m = res.metrics
    return (
        f"{args.kind} curve ({args.num_bends} bend(s)) trained for {len(m['epoch'])} "
        f"epochs: train loss {m['train_loss'][-1]:.4f}, acc {m['train_acc'][-1]:.4f} "
        f"at random t; curve in {run_dir / 'curve.pt'}"
    )


def _scan(args, device) -> str:
    import torch

    from .. import data
    from ._curves import Curve, init_curve
    from ._scan import scan_curve

    if (args.curve is None) == (args.line is None):
        raise ValueError("pass a curve run folder, or --line A B (not both)")
    if args.line:
        a_name, b_name = (_cli.run_name(p) for p in args.line)
        folder = _cli.out_folder(args, "connectivity", f"line-{a_name}-{b_name}")
    else:
        folder = _cli.out_folder(args, "connectivity", args.curve)
    if args.line:
        a, info = _load_model(args.line[0], device)
        b, _ = _load_model(args.line[1], device)
        curve = init_curve(a, b, kind="line")
    else:
        p = Path(args.curve)
        if not p.exists():
            raise FileNotFoundError(
                f"{p} does not exist - pass a curve run folder of `{PROG} train` "
                "(or its curve.pt), or --line A B"
            )
        run = p if p.is_dir() else p.parent
        ends = run / "endpoints.json"
        if not ends.exists():
            raise FileNotFoundError(f"{ends} not found: is {run} a curve run folder?")
        record = io.read_json(ends)  # a truncated file is named
        info = record.get("a") if isinstance(record, dict) else None
        if not isinstance(info, dict) or "path" not in info:
            raise io.CorruptFileError(
                f"{ends} does not record the endpoints ({{'a': {{'path': ...}}, ...}}) "
                f"- retrain the curve with `{PROG} train`"
            )
        a, _ = _load_model(info["path"], device)
        curve = Curve.load(p / "curve.pt" if p.is_dir() else p)
    name = _cli.dataset_name(args, info["dataset"])
    xt, yt = data.load_dataset(
        name,
        args.data_root,
        split="test",
        num_samples=args.num_samples,
        generator=torch.Generator().manual_seed(args.seed),
    )
    test = data.batches(xt, yt, batch_size=args.batch_size, device=device)
    train_data = None
    from ._bn import has_batchnorm

    if has_batchnorm(a):
        x, y = data.load_dataset(
            name,
            args.data_root,
            num_samples=args.num_bn,
            generator=torch.Generator().manual_seed(args.seed),
        )
        train_data = data.batches(x, y, batch_size=args.batch_size, device=device)
    attack = attack_from_args(args, keep="best")
    scan = scan_curve(
        a,
        torch.nn.CrossEntropyLoss(),
        test,
        curve,
        num=args.num_points,
        attack=attack,
        train_data=train_data,
        generator=torch.Generator().manual_seed(args.seed),
        progressbar=_cli.progress(args),
    )
    out = folder / "scan.npz"
    if _cli.is_main():  # under torchrun: rank 0 writes
        out = scan.save(out)
    line = f"{scan.kind}: clean loss barrier {scan.clean_barrier:.4f}, clean acc {scan.clean_acc.min():.4f} (min)"
    if attack is not None:
        line += f"; robust loss barrier {scan.robust_barrier:.4f}, robust acc {scan.robust_acc.min():.4f} (min)"
    return f"{line}; wrote {out}"


def _body(args: argparse.Namespace) -> int:
    if args.command == "train":  # the output, before the work (scan: out_folder)
        io.check_writable(args.run_dir, folder=True, what="--run-dir")
    device = _cli.device(args)
    print(_train(args, device) if args.command == "train" else _scan(args, device))
    return 0


main = _cli.entry(_parser, _body)


if __name__ == "__main__":
    raise SystemExit(main())

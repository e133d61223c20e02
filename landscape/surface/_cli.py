"""``python -m landscape.surface compute``: a loss surface (or line) around a checkpoint.

Examples::

    python -m landscape.surface compute runs/mnist_eps0.3 --dataset mnist \\
        --num-samples 1000 --grid -1 1 21 --adversarial fixed --eps 0.3 \\
        -o runs/mnist_eps0.3/surface
    python -m landscape.plot runs/mnist_eps0.3/surface/surface.npz \\
        -o runs/mnist_eps0.3/surface
    python -m landscape.surface compute runs/a --to runs/b -o runs/line_ab

The surface is saved as ``surface.npz`` (a :class:`landscape.surface.Surface`) in the
folder -o (default runs/surface/<name of the checkpoint>); draw it with
``python -m landscape.plot``. ``--partial FILE`` saves the grid every
``--save-interval`` seconds; rerunning the same command resumes from it.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import _cli, checkpoints
from .. import io as lio
from ..attacks._cli import add_attack, attack_from_args

__all__ = ["main"]

PROG = "python -m landscape.surface"


def _grid(values: list[float], flag: str) -> np.ndarray:
    lo, hi, num = values
    if num != int(num) or num < 2:
        raise _cli.CLIError(
            f"{flag} MIN MAX NUM takes a whole number of points >= 2, got NUM={num:g}",
            f"e.g. {flag} -1 1 21",
        )
    return np.linspace(lo, hi, int(num))


def _data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    _cli.add_data(g, split="test")
    g.add_argument(
        "--data",
        type=Path,
        default=None,
        help="a torch file holding (x, y) or {'x':..., 'y':...} instead of --dataset",
    )
    g.add_argument(
        "--batch-size",
        default="auto",
        help="evaluation batch size, or 'auto' (measured)",
    )


def _grid_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("directions and grid")
    for flag, default, text in (
        ("--grid", [-1.0, 1.0, 21], "x grid"),
        ("--ygrid", None, "y grid (default: same as --grid)"),
    ):
        g.add_argument(
            flag,
            nargs=3,
            type=float,
            default=default,
            metavar=("MIN", "MAX", "NUM"),
            help=text,
        )
    g.add_argument(
        "--line", action="store_true", help="a 1D line along the first direction"
    )
    _cli.add_choice(g, "--norm", ["filter", "layer", "none"], "direction normalisation")
    _cli.add_choice(g, "--ignore", ["biasbn", "none"], "zero biases and BatchNorm")
    g.add_argument(
        "--orthogonal",
        action="store_true",
        help="Gram-Schmidt the second random direction",
    )
    g.add_argument(
        "--directions",
        type=Path,
        default=None,
        help="torch file with a list of direction dicts (instead of random ones)",
    )
    g.add_argument(
        "--save-directions",
        type=Path,
        default=None,
        help="save the directions used to this torch file",
    )
    g.add_argument(
        "--to",
        type=Path,
        nargs="+",
        default=None,
        metavar="CKPT",
        help="one checkpoint: the line towards it; two: the plane through all three",
    )


def _attack_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("adversarial")
    _cli.add_choice(
        g,
        "--adversarial",
        ["clean", "fixed", "reattack"],
        "clean loss, examples attacked once at the centre, or re-attacked at every "
        "point",
    )
    add_attack(g, steps=10, norm_flag="--attack-norm")


def _run_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    _cli.add_choice(g, "--strategy", ["auto", "loop", "vmap"], "evaluation strategy")
    g.add_argument(
        "--partial",
        type=Path,
        default=None,
        help="partial-results file for resuming an interrupted run",
    )
    g.add_argument(
        "--save-interval",
        type=float,
        default=60.0,
        help="seconds between saves of --partial (0: after every grid point)",
    )
    g.add_argument(
        "--seed", type=int, default=0, help="seed for directions and attacks"
    )


def compute_parser(prog: str = f"{PROG} compute") -> argparse.ArgumentParser:
    """The parser of ``compute``."""
    p = _cli.Parser(
        prog=prog,
        description=(
            "Compute a loss surface (or line) around a checkpoint and save it (draw "
            "it with python -m landscape.plot). Directions are filter-normalised "
            "random directions (Li et al. 2018) unless --to or --directions says "
            "otherwise."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _cli.add_checkpoint(p.add_argument_group("model"))
    _data_args(p)
    _grid_args(p)
    _attack_args(p)
    _run_args(p)
    _cli.add_common(p, num_samples=1000, out="surface")
    return p


def _load_data(args: argparse.Namespace) -> list:
    if args.data is not None:
        obj = lio.load_torch(args.data, trust=args.trust_checkpoint, kind="tensors")
        if isinstance(obj, dict) and {"x", "y"} <= set(obj):
            x, y = obj["x"], obj["y"]
        elif isinstance(obj, (tuple, list)) and len(obj) == 2:
            x, y = obj
        else:
            raise _cli.CLIError(
                f"{args.data} holds no (x, y) pair",
                "save {'x': images, 'y': labels} or (x, y) with torch.save",
            )
    else:
        from .. import data

        x, y = data.load_dataset(**_cli.data_options(args))
    x, y = x[: args.num_samples], y[: args.num_samples]
    return [(torch.as_tensor(x), torch.as_tensor(y))]


def _directions(args, model, load, gen) -> tuple[list, dict[str, Any]]:
    from .. import directions as D

    if args.to:
        if len(args.to) > 2:
            raise _cli.CLIError(
                f"--to takes one checkpoint (line) or two (plane), got {len(args.to)}",
                "pass one or two checkpoints",
            )
        others = [load(c) for c in args.to]
        if len(others) == 1:
            args.line = True
            return [D.interpolation_direction(model, others[0])], {
                "directions": f"interpolation to {args.to[0]}"
            }
        plane = D.plane_directions(model, *others)
        return plane.directions, {
            "directions": "plane",
            "points": plane.coords.tolist(),
        }
    if args.directions is not None:
        obj = lio.load_torch(
            args.directions, trust=args.trust_checkpoint, kind="tensors"
        )
        return D.eigen_directions(obj, like=model), {"directions": str(args.directions)}
    dirs = D.random_directions(
        model,
        num=1 if args.line else 2,
        norm=None if args.norm == "none" else args.norm,
        ignore=None if args.ignore == "none" else args.ignore,
        orthogonal=args.orthogonal,
        generator=gen,
    )
    return dirs, {"directions": "random", "norm": args.norm, "ignore": args.ignore}


def _surface(args, model, data, dirs, gen):
    from .. import surface as S

    xs = _grid(args.grid, "--grid")
    ys = _grid(args.ygrid, "--ygrid") if args.ygrid else xs
    bs = args.batch_size if args.batch_size in ("auto", None) else int(args.batch_size)
    adversarial = None if args.adversarial == "clean" else args.adversarial
    attack = None
    if adversarial is not None:
        attack = attack_from_args(args)
        if attack is None:
            raise _cli.CLIError(
                f"--adversarial {adversarial} needs an attack budget", "pass --eps"
            )
    common = dict(
        adversarial=adversarial,
        attack=attack,
        **_cli.pick(args, "strategy", "save_interval"),
        batch_size=bs,
        partial_path=args.partial,
        generator=gen,
        progressbar=_cli.progress(args),
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    if args.line:
        return S.loss_surface(model, loss_fn, data, dirs[:1], xs=xs, **common)
    if len(dirs) < 2:
        raise _cli.CLIError(
            "a 2D surface needs two directions", "pass --line or two directions"
        )
    return S.loss_surface(model, loss_fn, data, dirs[:2], xs=xs, ys=ys, **common)


def compute(args: argparse.Namespace) -> int:
    """Run ``compute`` on parsed arguments (under ``torchrun``: the grid points
    shared out over the processes, rank 0 writes); returns the exit status."""
    _cli.set_threads(args)
    with _cli.process_group(args):
        return _compute(args)


def _compute(args: argparse.Namespace) -> int:
    _grid(args.grid, "--grid")  # bad grids fail before any loading
    if args.ygrid:
        _grid(args.ygrid, "--ygrid")
    folder = _cli.out_folder(args, "surface", args.checkpoint)
    if args.save_directions:  # every output is checked before the work
        lio.check_writable(args.save_directions, what="--save-directions")
    if args.partial:
        lio.check_writable(args.partial, what="--partial")

    def load(path):
        return checkpoints.load_model(path, **_cli.checkpoint_options(args))

    model = load(args.checkpoint)
    data = _load_data(args)
    gen = torch.Generator().manual_seed(args.seed)
    dirs, meta = _directions(args, model, load, gen)
    if args.save_directions and _cli.is_main():
        lio.atomic_save_torch(
            [{k: v.cpu() for k, v in d.items()} for d in dirs], args.save_directions
        )
    surf = _surface(args, model, data, dirs, gen)  # locks --partial while it runs
    surf = dataclasses.replace(
        surf, meta={**surf.meta, "checkpoint": str(Path(args.checkpoint)), **meta}
    )
    if _cli.is_main():  # under torchrun: every rank holds the whole surface
        path = surf.save(folder / "surface.npz")
        print(f"saved {path} (loss at the centre {surf.center_loss:.4g})")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = _cli.Parser(
        prog=PROG,
        description="Loss surfaces and lines around a checkpoint (Li et al. 2018).",
        epilog=f"Run `{PROG} compute --help` for the options.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "compute",
        help="compute a surface or line around a checkpoint and save it",
        add_help=False,
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 after an error)."""
    return _cli.run(_main, argv, PROG, trust_flag=_cli.TRUST_FLAG)


def _main(argv: list[str]) -> int:
    if argv and argv[0] == "compute":
        return compute(compute_parser().parse_args(argv[1:]))
    if any(a in ("-h", "--help") for a in argv):
        _parser().parse_args(["--help"])
    raise _cli.CLIError(
        f"{PROG} takes a command, got {' '.join(argv) or 'none'}",
        f"run {PROG} compute CHECKPOINT -o DIR (see {PROG} compute --help)",
    )

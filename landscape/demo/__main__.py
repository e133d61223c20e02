"""``python -m landscape.demo``: the main job: a small real study of the loss
landscape of adversarial training on MNIST (train at several eps with a constant and
a periodic schedule, evaluate, Hessian, gradient scattering, 2D surfaces), writing
figures and a summary to a run folder. A few minutes on 2 CPU cores; an interrupted
run resumes. See :mod:`landscape.demo`."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from .. import _cli, io
from ._run import run_demo
from ._spec import DemoConfig

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = _cli.parser(
        "python -m landscape.demo",
        __doc__,
        epilog="Example: python -m landscape.demo --out runs/demo && "
        "cat runs/demo/summary.md",
    )
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        help="run folder (default ./runs/demo, or ./runs/demo-smoke with --smoke, "
        "relative to the current folder)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny version (well under a minute) for tests",
    )
    p.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="data folder holding mnist/ (default $LANDSCAPE_DATA, else the per-user "
        "cache; missing files are downloaded and md5-verified)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="delete an earlier run in --out and start over",
    )
    _cli.add_common(p)
    return p


def _main(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = DemoConfig.smoke() if args.smoke else DemoConfig()
    out = args.out or Path("runs") / ("demo-smoke" if args.smoke else "demo")
    io.check_writable(out, folder=True, what="--out")  # before the work
    t0, c0 = time.perf_counter(), time.process_time()
    run_demo(
        cfg,
        out,
        data_root=args.data_root,
        device=args.device,
        progressbar=_cli.progress(args),
        fresh=args.fresh,
    )
    print()
    print((out / "summary.md").read_text())
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"wall time {time.perf_counter() - t0:.0f} s, CPU {time.process_time() - c0:.0f} s "
        f"(load average {load}); results in {out}/ (summary.md, summary.json, figures/)"
    )
    return 0


main = _cli.entry(_parser, _main)

if __name__ == "__main__":
    raise SystemExit(main())

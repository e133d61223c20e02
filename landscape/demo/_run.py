"""``run_demo``: the stages in order over one run folder (locked while it runs)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import _utils, io
from . import _stages as S
from ._figures import figures
from ._spec import DemoConfig
from ._summary import summary

__all__ = ["run_demo"]


def _check_folder(cfg: DemoConfig, out: Path) -> None:
    cfg_path = out / "demo_config.json"
    if not cfg_path.exists():
        with io.atomic_write(cfg_path, "w") as f:
            json.dump(cfg.to_dict(), f, indent=1)
    elif io.read_json(cfg_path) != cfg.to_dict():
        raise RuntimeError(
            f"{out} holds a demo run with another configuration - pass --fresh to "
            "start over there, or choose another --out"
        )


def run_demo(
    cfg: DemoConfig,
    out: str | os.PathLike,
    *,
    data_root: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    progressbar: bool = True,
    fresh: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the demo in ``out`` and return the summary dict.

    Args:
        cfg: sizes and settings.
        out: run folder; finished stages found there are reused.
        data_root: data folder (default ``$LANDSCAPE_DATA``, else the per-user cache).
        device: torch device (default CUDA when available).
        progressbar: progress of every stage (a bar on a terminal, lines in a log).
        fresh: delete a previous run in ``out`` first.

    Raises:
        RuntimeError: ``out`` holds a demo run with another configuration (use
            ``fresh=True`` / ``--fresh`` or another folder).
        landscape.io.LockedError: another process runs a demo in ``out``.
    """
    out = Path(out)
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    with io.lock(out):
        _check_folder(cfg, out)
        _utils.seed_everything(cfg.seed)
        ctx = S.Context(cfg, out, dev, progressbar)
        timings: dict[str, float] = {}
        cpu: dict[str, float] = {}  # CPU seconds: comparable across machine loads

        def stage(name: str, fn: Callable[[], Any]) -> Any:
            S.log(f"== {name}")
            t0, c0 = time.perf_counter(), time.process_time()
            res = fn()
            timings[name] = round(time.perf_counter() - t0, 2)
            cpu[name] = round(time.process_time() - c0, 2)
            return res

        stage("data", lambda: S.data_stage(ctx, data_root))
        res = {"train": stage("train", lambda: S.train_stage(ctx))}
        S.load_models(ctx)
        for name, fn in (
            ("evaluate", S.eval_stage),
            ("hessian", S.hessian_stage),
            ("scattering", S.scatter_stage),
            ("surface", S.surface_stage),
        ):
            res[name] = stage(name, lambda fn=fn: fn(ctx))
        paths = stage("figures", lambda: figures(ctx, res))
        return summary(ctx, res, timings, paths, cpu=cpu)

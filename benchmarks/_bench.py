"""Timing helpers shared by the benchmarks (``python benchmarks/bench_x.py`` puts this
folder on ``sys.path``)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from landscape import io

__all__ = ["times", "load", "run", "save_json"]


def times(
    fn: Callable[[], object],
    repeats: int,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn``, one per call, on ``clock`` (wall time by
    default; ``time.process_time`` for the CPU time of this process)."""
    out = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def load() -> str:
    """The machine's load averages over 1, 5 and 15 minutes (what ``uptime`` shows),
    recorded with every result in benchmarks/README.md."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def run(main: Callable[[], int]) -> None:
    """Run a benchmark's ``main`` between two prints of the machine's :func:`load`
    and exit with its status."""
    print(f"load average at start: {load()}")
    status = main()
    print(f"load average at end: {load()}")
    raise SystemExit(status)


def save_json(path: Path, state: dict) -> None:
    """Write a benchmark's resumable state atomically (a killed run keeps the last
    complete file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_write(path, "w") as f:
        json.dump(state, f, indent=1)

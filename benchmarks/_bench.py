"""Timing helpers shared by the benchmarks (``python benchmarks/bench_x.py`` puts this
folder on ``sys.path``)."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["times"]


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

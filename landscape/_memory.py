"""Memory budgets: how much an analysis may hold beyond one batch.

An analysis whose memory would otherwise grow with the data or the iterations (the
cached double-backward graph of the Hessian over the whole data set, the Lanczos
basis) asks :func:`budget` how many bytes it may use on its device and chooses the
formulation (graph or recompute) or the place (device or host memory) that fits.
``max_memory`` (bytes) overrides the default: half of the free memory of a CUDA
device at the time of the call, a quarter of the available host memory on CPU. A
cached Hessian graph, which grows with the data set, gets at most
:data:`GRAPH_DEFAULT` (1 GiB) unless ``max_memory`` says more (:func:`graph_budget`),
so that an analysis's memory follows the batch, not the data set, by default.
"""

from __future__ import annotations

import torch

__all__ = [
    "GRAPH_DEFAULT",
    "budget",
    "check_max_memory",
    "graph_budget",
    "host_available",
]

_FALLBACK_HOST = 4 << 30  # when /proc/meminfo cannot be read
GRAPH_DEFAULT = 1 << 30  # bytes a cached Hessian graph may take by default


def check_max_memory(max_memory: int | float | None) -> int | None:
    """``max_memory`` as an int number of bytes (None stays None).

    Raises:
        ValueError: not a positive number of bytes.
    """
    if max_memory is None:
        return None
    try:
        v = int(max_memory)
    except (TypeError, ValueError):
        raise TypeError(
            f"max_memory must be a number of bytes (e.g. 8 << 30 for 8 GiB) or None, "
            f"got {max_memory!r}"
        ) from None
    if v <= 0:
        raise ValueError(f"max_memory must be > 0 bytes, got {max_memory!r}")
    return v


def host_available() -> int:
    """Bytes of host memory available to new allocations (``MemAvailable`` of
    ``/proc/meminfo``; 4 GiB where it cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _FALLBACK_HOST


def budget(device: torch.device | str, max_memory: int | None = None) -> int:
    """Bytes an analysis may hold on ``device`` beyond one batch: ``max_memory`` when
    given, else half of the CUDA device's free memory, else a quarter of the
    available host memory."""
    if max_memory is not None:
        return int(max_memory)
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free) // 2
    return host_available() // 4


def graph_budget(device: torch.device | str, max_memory: int | None = None) -> int:
    """Bytes a cached graph over the whole data set may take: ``max_memory`` when
    given, else the smaller of :data:`GRAPH_DEFAULT` and :func:`budget` (a graph
    larger than that is recomputed per batch: memory of one batch, one more forward
    pass per product)."""
    if max_memory is not None:
        return int(max_memory)
    return min(GRAPH_DEFAULT, budget(device))

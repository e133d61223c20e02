"""The one distributed engine (``torch.distributed`` under ``torchrun``): rank and
world size, the process group, sharding and the reductions every analysis uses.

An analysis called while a process group is initialised runs data-parallel: every
rank calls it with the same arguments, takes its share of the work (``owned``: the
batches, grid points or (eps, batch) pairs with ``index % world == rank``) and the
shares are combined by a collective (``all_reduce_sum``, ``all_gather_arrays``), so
every rank returns the single-process answer and no rank waits on another doing
work alone. Without a process group everything here is a no-op (rank 0 of 1).

``torchrun`` sets ``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``...; :func:`setup`
initialises the default group from them (NCCL on CUDA, gloo on CPU).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "setup",
    "info",
    "is_main",
    "shard",
    "owned",
    "all_reduce_sum",
    "all_reduce_max",
    "all_gather_arrays",
    "all_gather_objects",
    "barrier",
]


def setup(device: torch.device) -> tuple[int, int]:
    """``(rank, world_size)``; initialises the default process group from the
    environment (``torchrun``) when ``WORLD_SIZE > 1`` and no group exists yet."""
    if not dist.is_available():
        return 0, 1
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def info() -> tuple[int, int]:
    """``(rank, world size)`` of an initialised process group, else ``(0, 1)``."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def is_main(rank: int) -> bool:
    return rank == 0


def shard(x: Tensor, rank: int, world: int) -> Tensor:
    """This rank's contiguous slice of a global batch (every example of the batch goes
    to exactly one rank)."""
    if world == 1:
        return x
    return torch.tensor_split(x, world)[rank]


def owned(index: int, rank: int, world: int) -> bool:
    """Whether work item ``index`` (a batch, a grid point) belongs to ``rank``:
    round robin, ``index % world == rank``."""
    return index % world == rank


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _reduce(t: Tensor, op) -> Tensor:
    dev = _collective_device()
    buf = t if t.device == dev else t.to(dev)
    dist.all_reduce(buf, op=op)
    if buf is not t:
        t.copy_(buf)
    return t


def all_reduce_sum(t: Tensor, world: int) -> Tensor:
    """Sum ``t`` over ranks, in place (no-op for a single process)."""
    if world > 1:
        _reduce(t, dist.ReduceOp.SUM)
    return t


def all_reduce_max(t: Tensor, world: int) -> Tensor:
    """Maximum of ``t`` over ranks, in place (no-op for a single process)."""
    if world > 1:
        _reduce(t, dist.ReduceOp.MAX)
    return t


def all_gather_arrays(values: np.ndarray, world: int) -> list[np.ndarray]:
    """Every rank's ``values`` (same shape on all ranks), as float64 arrays in rank
    order (``[values]`` for a single process)."""
    if world == 1:
        return [np.asarray(values, dtype=np.float64)]
    t = torch.as_tensor(np.asarray(values), dtype=torch.float64)
    t = t.to(_collective_device())
    out = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(out, t)
    return [o.cpu().numpy() for o in out]


def all_gather_objects(obj: Any, world: int) -> list[Any]:
    """Every rank's picklable ``obj`` in rank order (``[obj]`` for one process)."""
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def barrier(world: int) -> None:
    """Wait for every rank (no-op for a single process)."""
    if world > 1:
        dist.barrier()

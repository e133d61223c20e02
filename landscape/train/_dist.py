"""Data-parallel helpers (torch.distributed / torchrun): rank, world size, sharding."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["setup", "shard", "all_reduce_sum", "is_main"]


def setup(device: torch.device) -> tuple[int, int]:
    """``(rank, world_size)``; initialises the default process group from the
    environment (``torchrun`` sets ``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``...) when
    ``WORLD_SIZE > 1`` and no group exists yet (NCCL on CUDA, gloo on CPU)."""
    if not dist.is_available():
        return 0, 1
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main(rank: int) -> bool:
    return rank == 0


def shard(x: Tensor, rank: int, world: int) -> Tensor:
    """This rank's contiguous slice of a global batch (DistributedSampler-equivalent:
    every example of the global batch goes to exactly one rank)."""
    if world == 1:
        return x
    return torch.tensor_split(x, world)[rank]


def all_reduce_sum(t: Tensor, world: int) -> Tensor:
    """Sum ``t`` over ranks (no-op for a single process)."""
    if world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t

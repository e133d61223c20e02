"""Deterministic in-memory loaders and stratified subsets."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from .. import _utils

__all__ = ["Batches", "batches", "subset_indices"]


def subset_indices(
    y: Tensor,
    num_samples: int,
    *,
    stratified: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Indices of a random sample of ``num_samples`` samples, in random order.

    Stratified selection keeps the class proportions: class ``k`` gets
    ``floor(num_samples * n_k / N)`` samples plus one for the classes with the largest
    remainders, drawn uniformly at random within the class. The chosen indices are
    then shuffled, so every prefix of the sample is itself a random sample (a data set
    stored sorted by class never gives a batch of a few classes).

    Args:
        y: integer labels ``(N,)`` (any labels when ``stratified=False``).
        num_samples: sample size, ``0 <= num_samples <= N``.
        stratified: keep class proportions.
        generator: draws the sample (default: a seed drawn from torch's global RNG).

    Returns:
        int64 indices in random order.

    Example:
        >>> y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
        >>> idx = subset_indices(y, 10, generator=torch.Generator().manual_seed(0))
        >>> torch.bincount(y[idx]).tolist()
        [5, 3, 2]
    """
    n = len(y)
    if not 0 <= num_samples <= n:
        raise ValueError(f"num_samples must be in [0, {n}], got {num_samples}")
    g, _ = _utils.make_generator(generator)
    if not stratified:
        return torch.randperm(n, generator=g)[:num_samples]
    y = y.detach().cpu()
    classes, counts = torch.unique(y, return_counts=True)
    exact = counts.double() * num_samples / n
    quota = exact.floor().long()
    rest = num_samples - int(quota.sum())
    if rest > 0:
        frac = exact - quota.double()
        order = sorted(range(len(classes)), key=lambda k: (-float(frac[k]), k))
        for k in order[:rest]:
            quota[k] += 1
    picks = []
    for c, q in zip(classes, quota):
        idx = (y == c).nonzero().flatten()
        picks.append(idx[torch.randperm(len(idx), generator=g)[: int(q)]])
    chosen = torch.cat(picks)
    return chosen[torch.randperm(len(chosen), generator=g)]


def _epoch_seed(seed: int, epoch: int) -> int:
    """Seed of an epoch's permutation: the trainer's historical formula, kept so that
    training runs (and their resumes) see the orders they always saw."""
    return (int(seed) * 1_000_003 + int(epoch) * 7919 + 1) % 2**63


class Batches:
    """Re-iterable, deterministic mini-batches over tensors kept on one device.

    The package's one in-memory loader (``landscape.train`` batches ``(x, y)``
    tensors with it).

    The whole dataset is moved to ``device`` once (MNIST is ~190 MB as float32), so
    iterating costs one gather per batch and no host-to-device copy. If it would take
    more than half the free GPU memory (or the move runs out of memory) the data stays
    in pinned host memory and each batch is copied (with a warning).

    With ``shuffle=True`` each pass over the data uses the permutation of its epoch,
    drawn from a generator seeded by ``(seed, epoch)``. (It takes a ``seed``, not a
    ``generator``: each epoch's order must be recomputable from the seed alone, so that
    a resumed training run sees the orders of the run it continues.) The epoch advances by one after
    every pass; :meth:`set_epoch` sets it explicitly (e.g. when resuming), so both
    ``for e in range(E): loader.set_epoch(e); ...`` and plain repeated iteration give
    the same orders.

    Batches are fresh tensors (not views), so modifying one in place never alters the
    stored data.

    Example:
        >>> b = Batches(torch.arange(5.0), torch.arange(5), batch_size=2)
        >>> len(b), [yb.tolist() for _, yb in b]
        (3, [[0, 1], [2, 3], [4]])
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        *,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        device: torch.device | str | None = None,
        drop_last: bool = False,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(
                f"x and y differ in length: x has {len(x)} samples but y has {len(y)}"
            )
        if len(x) == 0:
            raise ValueError("the data is empty: pass at least one sample")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self._copy_to: torch.device | None = None
        if device is not None:
            device = torch.device(device)
            try:
                if device.type == "cuda" and x.device != device:
                    free, _ = torch.cuda.mem_get_info(device)
                    if x.numel() * x.element_size() > free // 2:
                        raise torch.OutOfMemoryError("dataset > half the free memory")
                x, y = x.to(device), y.to(device)
            except torch.OutOfMemoryError:
                warnings.warn(
                    f"dataset ({x.numel() * x.element_size() / 2**20:.0f} MiB) does not "
                    f"fit on {device}; keeping it in pinned host memory and copying each "
                    "batch",
                    stacklevel=2,
                )
                if torch.cuda.is_available():
                    x, y = x.pin_memory(), y.pin_memory()
                self._copy_to = device
        self.x, self.y = x, y
        self.device = device if device is not None else x.device

    @property
    def num_samples(self) -> int:
        """Number of samples in the dataset."""
        return len(self.x)

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` for the next pass."""
        self.epoch = int(epoch)

    def order(self, epoch: int | None = None) -> Tensor:
        """Sample order of a pass (``epoch`` defaults to the next one), on CPU."""
        e = self.epoch if epoch is None else int(epoch)
        if not self.shuffle:
            return torch.arange(self.num_samples)
        g = torch.Generator().manual_seed(_epoch_seed(self.seed, e))
        return torch.randperm(self.num_samples, generator=g)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        idx = self.order().to(self.x.device)
        self.epoch += 1
        for i in range(len(self)):
            j = idx[i * self.batch_size : (i + 1) * self.batch_size]
            xb, yb = self.x.index_select(0, j), self.y.index_select(0, j)
            if self._copy_to is not None:
                xb = xb.to(self._copy_to, non_blocking=True)
                yb = yb.to(self._copy_to, non_blocking=True)
            yield xb, yb

    def __repr__(self) -> str:
        return (
            f"Batches(num_samples={self.num_samples}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, seed={self.seed}, device={self.device}, "
            f"epoch={self.epoch})"
        )


def batches(x: Tensor, y: Tensor, **options: Any) -> Batches:
    """Deterministic in-memory loader over ``(x, y)``: ``Batches(x, y, **options)``,
    with the options ``batch_size`` (required), ``shuffle``, ``seed``, ``device`` and
    ``drop_last`` of :class:`Batches`.

    Example:
        >>> loader = batches(torch.zeros(10, 3), torch.arange(10), batch_size=4,
        ...                  shuffle=True, seed=1)
        >>> first = [yb.tolist() for _, yb in loader]
        >>> loader.set_epoch(0)
        >>> first == [yb.tolist() for _, yb in loader]
        True
    """
    return Batches(x, y, **options)

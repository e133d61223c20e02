"""Training data: the loader of a run, evaluation subsets, the fixed batch."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import _utils
from .._batches import is_pair
from ..data import Batches
from ._config import TrainConfig

__all__ = [
    "as_loader",
    "eval_subset",
    "fixed_batch",
    "fixed_subset",
    "stratified_indices",
    "validation_split",
]


def stratified_indices(y: Tensor, num: int, seed: int) -> Tensor:
    """``num`` indices of ``y`` in increasing order, stratified by class (class ``k``
    gets ``floor(num n_k / N)`` plus one for the largest remainders), drawn at random
    within each class from a generator seeded with ``seed`` (CPU)."""
    labels = y.detach().cpu()
    n = len(labels)
    g = torch.Generator().manual_seed(int(seed))
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * num / n
    quota = exact.floor().long()
    order = torch.argsort(-(exact - quota.double()), stable=True)
    quota[order[: num - int(quota.sum())]] += 1
    held = torch.zeros(n, dtype=torch.bool)
    for c, q in zip(classes.tolist(), quota.tolist()):
        idx = (labels == c).nonzero().flatten()
        held[idx[torch.randperm(len(idx), generator=g)[:q]]] = True
    return held.nonzero().flatten()


def fixed_subset(loader: Any, data: Any, num: int, seed: int) -> Any:
    """``num`` training examples fixed for the whole run (the per-epoch training
    metrics, the tracked batch, the averaged model's BatchNorm batch): a seeded
    stratified subset, in dataset order, of the ``(x, y)`` tensors (the first
    examples of any other loader, which may hold one class only when the data are
    sorted by class); None for ``num <= 0``."""
    if num <= 0:
        return None
    if isinstance(loader, Batches):
        x, y = loader.x, loader.y
    elif is_pair(data):
        x, y = data
    else:
        return _utils.first_examples(data, num)
    if num >= len(y):
        return x, y
    idx = stratified_indices(y, num, seed).to(y.device)
    return x[idx.to(x.device)], y[idx]


def validation_split(
    data: Any, num: int, seed: int
) -> tuple[Any, tuple[Tensor, Tensor] | None]:
    """``(training data, (x_val, y_val))``: ``num`` examples of the ``(x, y)``
    tensors held out, stratified by class (class ``k`` gets ``floor(num n_k / N)``
    plus one for the largest remainders, drawn at random within the class from a
    generator seeded with ``seed``), both parts in dataset order; ``num = 0``: the
    data as it is and None.

    Raises:
        TypeError: ``data`` is a loader (pass ``(x, y)`` tensors to split).
        ValueError: ``num`` leaves no training example.
    """
    if num <= 0:
        return data, None
    if not is_pair(data):
        raise TypeError(
            "a validation split (val_num > 0) needs the training data as (x, y) "
            f"tensors, got {type(data).__name__}: pass the tensors, or val_num=0"
        )
    x, y = data
    n = len(y)
    if num >= n:
        raise ValueError(
            f"val_num={num} leaves no training example of the {n}: use fewer"
        )
    held = stratified_indices(y, num, seed)
    mask = torch.zeros(n, dtype=torch.bool, device=held.device)
    mask[held] = True
    keep = (~mask).nonzero().flatten().to(y.device)
    val = held.to(y.device)
    return (x[keep], y[keep]), (x[val], y[val])


def as_loader(data: Any, cfg: TrainConfig) -> Any:
    """The run's loader: ``(x, y)`` tensors as :class:`landscape.data.Batches` of the
    config's batching (reshuffled per epoch from ``seed`` and the epoch number, so a
    resumed run sees the same order), or the caller's deterministic loader."""
    if is_pair(data):
        x, y = data
        return Batches(
            x,
            y,
            batch_size=cfg.batch_size,
            shuffle=cfg.shuffle,
            seed=cfg.seed,
            drop_last=cfg.drop_last,
        )
    if not hasattr(data, "__iter__") or not hasattr(data, "__len__"):
        raise TypeError(
            "data must be an (x, y) pair of tensors or a re-iterable, len()-able loader "
            f"of (x, y) batches (e.g. landscape.data.batches), got {type(data).__name__}"
        )
    if len(data) == 0:
        raise ValueError("the training loader yields no batches")
    return data


def eval_subset(data: Any, num: int, batch_size: int) -> list[tuple[Tensor, Tensor]]:
    """At most ``num`` examples of ``data`` as a list of batches (CPU)."""
    if num <= 0 or data is None:
        return []
    if is_pair(data):
        x, y = data[0][:num], data[1][:num]
        return [
            (x[i : i + batch_size], y[i : i + batch_size])
            for i in range(0, len(x), batch_size)
        ]
    out, seen = [], 0
    for xb, yb in data:
        take = min(len(xb), num - seen)
        out.append((xb[:take], yb[:take]))
        seen += take
        if seen >= num:
            break
    return out


def fixed_batch(loader: Any, data: Any, num: int) -> tuple[Tensor, Tensor] | None:
    """A fixed training batch for the catastrophic-overfitting check."""
    if num <= 0:
        return None
    if isinstance(loader, Batches):  # the first examples
        return loader.x[:num], loader.y[:num]
    return _utils.first_examples(data, num)

"""Training-data augmentation of a batch: seeded, on the batch's device, no state.

The trainer augments every training batch (``TrainConfig.augment``) with a generator
derived from the run's seed, the epoch and the batch index, so a run resumed in the
middle of an epoch draws exactly what the uninterrupted run drew, and no RNG state
needs saving.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["augment", "crop_flip"]


def crop_flip(
    x: Tensor,
    generator: torch.Generator,
    *,
    padding: int = 4,
    part: tuple[int, int] | None = None,
) -> Tensor:
    """Random crop with zero padding and random horizontal flip of every image.

    Each image of ``x`` (``(N, C, H, W)``) is padded by ``padding`` zeros on every
    side, cropped back to ``H x W`` at an offset drawn uniformly from
    ``{0, ..., 2 padding}^2`` and mirrored left-right with probability 1/2:
    torchvision's ``RandomCrop(H, padding=padding)`` (fill 0) followed by
    ``RandomHorizontalFlip()``, the CIFAR-10 augmentation of Liu et al.'s released
    code (``util/dataset.py``), done for the whole batch at once.

    Args:
        x: images ``(N, C, H, W)``.
        generator: draws the offsets and flips (on ``x``'s device).
        padding: pixels of zero padding per side (>= 0).
        part: ``(offset, total)``: ``x`` is rows ``offset:offset + len(x)`` of a
            batch of ``total`` images (a rank's shard): the draws are those of the
            whole batch, so the shards of all ranks together are bitwise the
            augmented whole batch.

    Returns:
        A new tensor of ``x``'s shape, dtype and device.

    Example:
        >>> x = torch.arange(16.0).view(1, 1, 4, 4)
        >>> out = crop_flip(x, torch.Generator().manual_seed(0), padding=0)
        >>> bool(torch.equal(out, x) or torch.equal(out, x.flip(3)))
        True
    """
    if x.ndim != 4:
        raise ValueError(f"crop_flip takes images (N, C, H, W), got {tuple(x.shape)}")
    if int(padding) < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    n, c, h, w = x.shape
    p = int(padding)
    dev = x.device
    start, total = (0, n) if part is None else (int(part[0]), int(part[1]))
    if not 0 <= start <= start + n <= total:
        raise ValueError(f"part {part} does not hold the {n} images of x")
    i = torch.randint(0, 2 * p + 1, (total,), generator=generator, device=dev)
    j = torch.randint(0, 2 * p + 1, (total,), generator=generator, device=dev)
    flip = torch.rand(total, generator=generator, device=dev) < 0.5
    i, j, flip = i[start : start + n], j[start : start + n], flip[start : start + n]
    xp = F.pad(x, (p, p, p, p)) if p else x
    rows = (i[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = j[:, None] + torch.arange(w, device=dev)
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    batch = torch.arange(n, device=dev)[:, None, None, None]
    chan = torch.arange(c, device=dev)[None, :, None, None]
    return xp[batch, chan, rows, cols]


_AUGMENT = {"crop_flip": crop_flip}


def augment(
    name: str,
    x: Tensor,
    generator: torch.Generator,
    *,
    part: tuple[int, int] | None = None,
) -> Tensor:
    """The augmentation ``name`` of :data:`landscape.train.TrainConfig`'s
    ``augment`` applied to the batch ``x`` (``part``: ``(offset, total)`` when ``x``
    is a rank's shard of a batch of ``total``, see :func:`crop_flip`).

    Raises:
        ValueError: an unknown name (the message lists the choices).
    """
    if name not in _AUGMENT:
        raise ValueError(
            f"unknown augmentation {name!r}; choose one of {sorted(_AUGMENT)}"
        )
    return _AUGMENT[name](x, generator, part=part)

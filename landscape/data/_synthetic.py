"""Synthetic Gaussian mixtures (separable or overlapping) and binary subsets."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import _utils

__all__ = ["gaussian_mixture", "binary_subset"]


def _check_labels(labels: str) -> str:
    if labels not in ("index", "pm1"):
        raise ValueError(f"labels must be 'index' or 'pm1', got {labels!r}")
    return labels


def gaussian_mixture(
    num_samples: int,
    dim: int,
    *,
    num_classes: int = 2,
    margin: float = 1.0,
    noise: float = 1.0,
    separable: bool = False,
    generator: torch.Generator | None = None,
    labels: str = "index",
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Gaussian mixture with balanced classes, in random order.

    ``margin`` is the distance from the data to the decision boundary of the reference
    classifier, which is known in closed form:

    * Binary (``num_classes=2``): the boundary is the hyperplane ``x[0] = 0``.
      Overlapping: ``x = s * margin * e_0 + noise * z`` with ``s = +-1`` the class and
      ``z ~ N(0, I)``. Separable: the first coordinate is folded,
      ``x[0] = s * (margin + noise * |z_0|)``, so every point satisfies
      ``s * x[0] >= margin``: the set is linearly separable with geometric margin at least
      ``margin`` (in l2 and, since ``||e_0||_1 = 1``, under any linf perturbation
      smaller than ``margin``).
    * Multi-class: class ``k`` is centred at ``sqrt(2) * c * e_k`` and the reference
      classifier is ``argmax_j x[j]`` over the first ``num_classes`` coordinates.
      Overlapping: ``c = margin`` (each mean is at distance ``margin`` from every
      pairwise boundary). Separable: ``c = margin + 2 * noise`` and points closer than
      ``margin`` to a pairwise boundary, i.e. with ``(x[k] - x[j]) / sqrt(2) < margin``,
      are redrawn; every point then has margin ``>= margin``.

    Args:
        num_samples: number of points (classes get ``num_samples // num_classes``, the
            first ``num_samples % num_classes`` classes one more).
        dim: input dimension (``>= num_classes`` for multi-class data).
        num_classes: number of classes (>= 2).
        margin: distance to the boundary (see above), >= 0.
        noise: standard deviation of the isotropic Gaussian noise, >= 0.
        separable: guarantee linear separability with the margin.
        generator: draws the data (default: a seed drawn from torch's global RNG);
            a generator with the same seed gives the same data.
        labels: ``"index"`` (int64 in ``0..K-1``) or ``"pm1"`` (binary only: float
            ``-1``/``+1`` labels in ``dtype``; class 0 is ``-1``).
        dtype: floating dtype of ``x``.

    Returns:
        ``(x, y)`` with ``x`` of shape ``(num_samples, dim)``.

    Example:
        >>> x, y = gaussian_mixture(200, 5, margin=0.5, separable=True, labels="pm1")
        >>> bool((y * x[:, 0] >= 0.5).all()), x.shape
        (True, torch.Size([200, 5]))
    """
    _check_labels(labels)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if labels == "pm1" and num_classes != 2:
        raise ValueError("labels='pm1' needs num_classes=2; use labels='index'")
    if num_classes > 2 and dim < num_classes:
        raise ValueError(
            f"multi-class mixtures place class k along axis k: dim ({dim}) must be >= "
            f"num_classes ({num_classes})"
        )
    if dim < 1 or num_samples < 0:
        raise ValueError("dim must be >= 1 and num_samples >= 0")
    if margin < 0 or noise < 0:
        raise ValueError(f"margin and noise must be >= 0, got {margin}, {noise}")
    g, _ = _utils.make_generator(generator)
    counts = [
        num_samples // num_classes + (k < num_samples % num_classes)
        for k in range(num_classes)
    ]
    y = torch.cat(
        [torch.full((c,), k, dtype=torch.int64) for k, c in enumerate(counts)]
    )
    y = y[torch.randperm(num_samples, generator=g)]
    f64 = torch.float64
    if num_classes == 2:
        s = (2 * y - 1).to(f64)
        x = noise * torch.randn(num_samples, dim, generator=g, dtype=f64)
        x[:, 0] = s * (margin + (x[:, 0].abs() if separable else x[:, 0] * s))
    else:
        c = margin + 2 * noise if separable else margin
        x = torch.empty(num_samples, dim, dtype=f64)
        todo = torch.arange(num_samples)
        for _ in range(10_000):
            n = len(todo)
            if n == 0:
                break
            xt = noise * torch.randn(n, dim, generator=g, dtype=f64)
            xt[torch.arange(n), y[todo]] += math.sqrt(2) * c
            x[todo] = xt
            if not separable:
                break
            head = xt[:, :num_classes]
            own = head.gather(1, y[todo, None])
            gap = (own - head) / math.sqrt(2)
            gap.scatter_(1, y[todo, None], math.inf)
            todo = todo[gap.min(dim=1).values < margin]
        else:  # pragma: no cover - acceptance is > 80% per round
            raise RuntimeError("rejection sampling did not converge")
    x = x.to(dtype)
    if labels == "pm1":
        return x, (2 * y - 1).to(dtype)
    return x, y


def binary_subset(
    x: Tensor,
    y: Tensor,
    classes: tuple[int, int] = (0, 1),
    labels: str = "pm1",
) -> tuple[Tensor, Tensor]:
    """Keep the samples of two classes and relabel them.

    Args:
        x: inputs, first dimension indexing samples.
        y: integer labels.
        classes: ``(a, b)``; ``a`` becomes ``-1`` (or 0), ``b`` becomes ``+1`` (or 1).
        labels: ``"pm1"`` (float labels in ``x``'s dtype) or ``"index"`` (int64 0/1).

    Returns:
        ``(x_sub, y_sub)`` in the original order.

    Example:
        >>> x = torch.arange(6.0)[:, None]; y = torch.tensor([0, 1, 2, 1, 0, 2])
        >>> xs, ys = binary_subset(x, y, classes=(2, 0))
        >>> xs.flatten().tolist(), ys.tolist()
        ([0.0, 2.0, 4.0, 5.0], [1.0, -1.0, 1.0, -1.0])
    """
    _check_labels(labels)
    a, b = (int(c) for c in classes)
    if a == b:
        raise ValueError(f"classes must be two different labels, got {classes}")
    keep = (y == a) | (y == b)
    if not bool(keep.any()):
        raise ValueError(f"no samples with label {a} or {b}")
    xs, ys = x[keep], y[keep]
    pos = ys == b
    if labels == "pm1":
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        return xs, pos.to(dtype) * 2 - 1
    return xs, pos.to(torch.int64)

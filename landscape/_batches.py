"""The one owner of what ``data`` may be, and of its validation.

Every public analysis (surface, scattering, hessian, attacks, evaluate, linear,
training) hands its ``data`` argument to :func:`as_batches`. ``data`` is one
of:

- an ``(x, y)`` pair of tensors: **one** batch (``batch_size=`` splits it);
- a list or tuple of ``(x, y)`` batches;
- a re-iterable loader of ``(x, y)`` batches, e.g. a ``torch.utils.data.DataLoader``
  over a ``Dataset`` (workers and pinned memory welcome) or
  :class:`landscape.data.Batches`. A one-shot iterator (a generator) is read once
  into a list, kept where its tensors are.

The result is a re-iterable :class:`Batched` that moves each batch to the model's
device when it is reached (never the whole loader at once) and casts floating
inputs to the model's dtype. The first pass validates every batch (later passes do
not) and raises a ``ValueError`` that says what to do for: uint8 images, float
images in [0, 255], channels-last images for a channels-first model, an empty batch
(batch size 0), ``x`` and ``y`` of different lengths, empty data, and for class
labels (``labels="class"``, or integer labels of a classifier) float or one-hot
labels and labels outside ``[0, num_classes)``; inputs (or float targets) with NaN
or inf raise a :class:`landscape._finite.NonFiniteError` that names the batch and
the first such example. It also warns, once per call, when the labels cover far
fewer of a classifier's classes than a random sample of that size would (a batch cut
from data sorted by class).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _utils
from ._finite import NonFiniteError, count_nonfinite

__all__ = ["Batched", "as_batches", "is_class_loss", "is_pair"]

_LABELS = ("auto", "class", "any")


def is_pair(data: Any) -> bool:
    """True for an ``(x, y)`` pair of tensors (one batch), False for anything else.

    Example:
        >>> x, y = torch.zeros(4, 2), torch.zeros(4)
        >>> is_pair((x, y)), is_pair([(x, y), (x, y)])
        (True, False)
    """
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and isinstance(data[0], Tensor)
        and isinstance(data[1], Tensor)
    )


def is_class_loss(loss_fn: Any) -> bool:
    """True when ``loss_fn`` expects class-index labels (cross-entropy, NLL).

    Example:
        >>> is_class_loss(torch.nn.CrossEntropyLoss()), is_class_loss(torch.nn.MSELoss())
        (True, False)
    """
    if isinstance(loss_fn, (nn.CrossEntropyLoss, nn.NLLLoss)):
        return True
    return loss_fn in (F.cross_entropy, F.nll_loss)


def _first_conv_channels(model: nn.Module | None) -> int | None:
    if model is None:
        return None
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return None


class Batched:
    """Validated ``(x, y)`` batches of a source, moved lazily to ``device``.

    Built by :func:`as_batches`; iterate it as often as needed (the source must be
    re-iterable, which :func:`as_batches` ensures).
    """

    def __init__(
        self,
        source: Iterable,
        *,
        device: torch.device,
        dtype: torch.dtype | None,
        model: nn.Module | None,
        labels: str,
        num_classes: int | None,
        images: bool | None,
        name: str,
    ) -> None:
        self.source = source
        self.device = device
        self.dtype = dtype
        self.model = model
        self.labels = labels
        self.num_classes = num_classes
        self.images = images
        self.name = name
        self.num_samples: int | None = None
        self._checked = False
        self._channels = _first_conv_channels(model)
        self._seen: set[int] = set()  # class labels met in the checking pass

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return (batch for _, batch in self.numbered())

    def iter(
        self,
        *,
        owned: Callable[[int], bool] | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of :meth:`numbered` without their indices."""
        for _, batch in self.numbered(owned=owned, start=start, stop=stop):
            yield batch

    def numbered(
        self,
        *,
        owned: Callable[[int], bool] | None = None,
        start: int = 0,
        stop: int | None = None,
        take: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
    ) -> Iterator[tuple[int, tuple[Tensor, Tensor]]]:
        """``(index, (x, y))``: the batches, validated (first pass) and moved to the
        device one at a time.

        Args:
            owned: ``owned(i)`` False skips batch ``i`` (this process's share under
                ``torch.distributed``: ``landscape._dist.owned``).
            start: skip the batches before it (a resumed epoch).
            stop: read no batch from this index on (the source is not read to its
                end).
            take: ``take(x, y)``: the part of each validated batch that moves to
                the device (a rank's shard of a global training batch: the other
                ranks' examples never move here).

        A skipped batch is neither validated nor moved. Validation runs on the
        batch where the loader made it (host memory for a ``DataLoader``: no read
        back from the device) before it moves.
        """
        check = not self._checked
        count = n = 0
        whole = start == 0 and owned is None and stop is None
        for i, batch in enumerate(self.source):
            if stop is not None and i >= stop:
                break
            count += 1
            if i < start or (owned is not None and not owned(i)):
                continue
            x, y = self._unpack(batch, i)
            if check:
                self._check_batch(x, y, i)
                self._check_labels(x, y, i)
            n += len(x)
            if take is not None:
                x, y = take(x, y)
            x = x.to(self.device, non_blocking=True)
            if self.dtype is not None and x.is_floating_point():
                x = x.to(self.dtype)
            y = y.to(self.device, non_blocking=True)
            yield i, (x, y)
        if count == 0:
            raise ValueError(
                f"{self.name} yields no batches: pass a non-empty (x, y) pair, a list "
                "of (x, y) batches or a DataLoader over a non-empty Dataset"
            )
        if check and (whole or stop is None):
            self._checked = True
            if whole:
                self.num_samples = n
                self._warn_coverage(n)

    def to_list(self) -> list[tuple[Tensor, Tensor]]:
        """All batches, validated and on the device (for data that is small enough)."""
        return list(self)

    # -- validation ----------------------------------------------------------------
    def _unpack(self, batch: Any, i: int) -> tuple[Tensor, Tensor]:
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            x, y = batch
            if isinstance(x, Tensor) and isinstance(y, Tensor):
                return x, y
        what = type(batch).__name__
        if isinstance(batch, (tuple, list)):
            what = f"{what} of {len(batch)} items"
        raise TypeError(
            f"{self.name}: batch {i} is a {what}, not an (x, y) pair of tensors; "
            "pass (x, y) batches (a Dataset goes inside a DataLoader)"
        )

    def _check_batch(self, x: Tensor, y: Tensor, i: int) -> None:
        where = f"{self.name}: batch {i}"
        if x.ndim == 0 or len(x) == 0:
            raise ValueError(
                f"{where} is empty (batch size 0): use batch_size >= 1 and drop "
                "empty batches"
            )
        if x.ndim < 2 and self.labels == "class":
            raise ValueError(
                f"{where}: x of shape {tuple(x.shape)} has no batch dimension: pass "
                "inputs with a leading batch dimension, one label per example"
            )
        if y.ndim == 0 or len(x) != len(y):
            raise ValueError(
                f"{where}: x of shape {tuple(x.shape)} does not match {y.numel()} "
                "labels: x and y must have the same length"
            )
        if not x.is_floating_point():
            if x.dtype == torch.uint8:
                raise ValueError(
                    f"{where} holds uint8 images (values 0..255): convert them with "
                    "x.float() / 255, the models expect floats in [0, 1]"
                )
            raise ValueError(
                f"{where} holds {x.dtype} inputs: pass floating inputs "
                "(images as floats in [0, 1])"
            )
        lo, hi = torch.stack(torch.aminmax(x.detach())).tolist()  # one host read
        if not (math.isfinite(lo) and math.isfinite(hi)):
            rows = (~torch.isfinite(x.detach().reshape(len(x), -1))).any(1)
            first = int(rows.nonzero()[0, 0])
            raise NonFiniteError(
                f"{where} holds inputs that are not finite ({count_nonfinite(x)}; "
                f"{int(rows.sum())} of {len(x)} examples, the first is example "
                f"{first}) - drop or repair those examples (NaN pixels come from a "
                "broken file or a division by zero in the preprocessing)"
            )
        if y.is_floating_point() and not bool(torch.isfinite(y).all()):
            raise NonFiniteError(
                f"{where} holds targets that are not finite ({count_nonfinite(y)}) - "
                "drop or repair those examples"
            )
        image = x.ndim >= 3 if self.images is None else self.images
        if image:
            if hi > 1.0 + 1e-4 and lo >= 0.0:
                raise ValueError(
                    f"{where} has image values in [{lo:g}, {hi:g}], not [0, 1]: "
                    "divide the images by 255"
                )
            if self.images and (lo < -1e-4 or hi > 1.0 + 1e-4):
                warnings.warn(
                    f"{where} has inputs in [{lo:g}, {hi:g}]; attacks clip inputs to "
                    "[0, 1] (put any normalisation inside the model)",
                    stacklevel=4,
                )
        c = self._channels
        if c is not None and x.ndim == 3 and not self._takes(x):
            raise ValueError(
                f"{where}: images of shape {tuple(x.shape)} have no channel dimension "
                f"and the model (whose first convolution takes {c} channel(s)) "
                "cannot take them: pass x.unsqueeze(1) (images as (N, C, H, W))"
            )
        if c is not None and x.ndim == 4 and x.shape[1] != c and x.shape[-1] == c:
            raise ValueError(
                f"{where} looks channels-last (shape {tuple(x.shape)}) but the model's "
                f"first convolution takes {c} channels first: pass x.permute(0, 3, 1, 2)"
            )

    def _takes(self, x: Tensor) -> bool:
        """Whether the model runs on one example of ``x`` (a probe forward)."""
        assert self.model is not None
        x1 = x[:1].to(_utils.model_device(self.model), _utils.model_dtype(self.model))
        try:
            with torch.no_grad(), _utils.eval_mode(self.model):
                self.model(x1)
        except RuntimeError:
            return False
        return True

    def _classes(self, x: Tensor) -> int | None:
        if self.num_classes is None and self.model is not None:
            x1 = x[:1].to(self.device)
            if self.dtype is not None and x1.is_floating_point():
                x1 = x1.to(self.dtype)
            with torch.no_grad(), _utils.eval_mode(self.model):
                out = self.model(x1)
            if isinstance(out, Tensor) and out.ndim == 2 and out.shape[1] > 1:
                self.num_classes = int(out.shape[1])
            else:
                self.num_classes = 0  # not a classifier: no range check
        return self.num_classes or None

    def _check_labels(self, x: Tensor, y: Tensor, i: int) -> None:
        if self.labels == "any":
            return
        where = f"{self.name}: batch {i}"
        if self.labels == "class":
            if y.is_floating_point() or y.dtype == torch.bool:
                if y.ndim == 2:
                    raise ValueError(
                        f"{where} has one-hot (or soft) labels of shape "
                        f"{tuple(y.shape)}: pass class indices, y.argmax(1)"
                    )
                raise ValueError(
                    f"{where} has {y.dtype} labels: pass class indices as integers "
                    "(y.long())"
                )
            if y.ndim != 1:
                raise ValueError(
                    f"{where} has labels of shape {tuple(y.shape)}: labels must be a "
                    "1-D tensor of class indices, one per example"
                )
        elif y.is_floating_point() or y.ndim != 1 or y.dtype == torch.bool:
            return  # regression targets or labels the loss understands
        lo, hi = int(y.min()), int(y.max())
        k = self._classes(x)
        if lo < 0 or (k is not None and hi >= k):
            rng = f"[0, {k - 1}]" if k is not None else "[0, num_classes)"
            raise ValueError(
                f"{where} has labels in [{lo}, {hi}] but the model's classes are "
                f"{rng}: pass class indices that match the model's outputs"
            )
        if k is not None and len(self._seen) < k:
            self._seen.update(torch.unique(y).tolist())

    def _warn_coverage(self, n: int) -> None:
        """Warn when the data covers far fewer of the model's classes than a random
        sample of its size would: fewer than half of the expected
        ``K (1 - (1 - 1/K)^n)``, e.g. ``x[:256]`` of a data set sorted by class."""
        k, c = self.num_classes, len(self._seen)
        if not k or k < 3 or not c or c >= k:
            return
        expected = k * (1.0 - (1.0 - 1.0 / k) ** n)
        if c >= 0.5 * expected:
            return
        shown = ", ".join(map(str, sorted(self._seen)[:8]))
        warnings.warn(
            f"{self.name} covers only {c} of the model's {k} classes ({n} examples, "
            f"labels {shown}{', ...' if c > 8 else ''}): the analysis describes those "
            "classes only. A slice of data sorted by class does this (x[:n] of an "
            "image folder); draw a stratified random sample instead, e.g. "
            "landscape.data.load_dataset(..., num_samples=n), or shuffle before "
            "slicing",
            stacklevel=3,
        )


def as_batches(
    data: Any,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    model: nn.Module | None = None,
    labels: str = "auto",
    num_classes: int | None = None,
    images: bool | None = None,
    batch_size: int | None = None,
    name: str = "data",
) -> Batched:
    """Turn ``data`` into validated ``(x, y)`` batches on the model's device.

    Args:
        data: an ``(x, y)`` pair (one batch), a list/tuple of batches, or a
            re-iterable loader (e.g. a ``DataLoader``); see the module docstring.
        device: where batches go (default: the model's device, else CPU).
        dtype: floating inputs are cast to it (default: the model's dtype).
        model: the model the batches feed: device/dtype defaults, the number of
            classes for the label check (one forward of one example), channel order.
        labels: ``"class"`` (class indices required), ``"auto"`` (integer labels are
            range-checked against the model's classes, float targets pass) or
            ``"any"``.
        num_classes: for the label range check (default: read from the model).
        images: ``True``: the inputs are attacked (checked for [0, 255] images
            whatever their shape, and a warning for values outside [0, 1], which
            attacks clip); ``None``: inputs of >= 3 dimensions are checked for
            [0, 255] images; ``False``: no range check.
        batch_size: split an ``(x, y)`` pair into batches of this size.
        name: how error messages name the argument.

    Returns:
        A re-iterable :class:`Batched`.

    Raises:
        TypeError: ``data`` is not one of the accepted forms.
        ValueError: a validation failed (the message says how to fix it).

    Example:
        >>> x, y = torch.rand(5, 3), torch.tensor([0, 1, 0, 1, 1])
        >>> [len(xb) for xb, _ in as_batches((x, y))]
        [5]
        >>> [len(xb) for xb, _ in as_batches((x, y), batch_size=2)]
        [2, 2, 1]
        >>> list(as_batches((x * 255, y), images=True))
        Traceback (most recent call last):
        ...
        ValueError: data: batch 0 has image values in [...], not [0, 1]: divide the images by 255
    """
    if labels not in _LABELS:
        raise ValueError(f"labels must be one of {_LABELS}, got {labels!r}")
    if isinstance(data, Batched):
        return data
    if device is None:
        device = _utils.model_device(model) if model is not None else "cpu"
    if dtype is None and model is not None:
        dtype = _utils.model_dtype(model)
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if is_pair(data):
        x, y = data
        if batch_size is None or x.ndim == 0:
            source: Iterable = [(x, y)]
        else:
            b = int(batch_size)
            source = [(x[i : i + b], y[i : i + b]) for i in range(0, len(x), b)]
            source = source or [(x, y)]
    elif isinstance(data, Tensor):
        raise TypeError(
            f"{name} is a single tensor; pass an (x, y) pair or a list of (x, y) batches"
        )
    elif isinstance(data, torch.utils.data.Dataset) and not hasattr(data, "__iter__"):
        raise TypeError(
            f"{name} is a Dataset of single examples: wrap it in "
            "torch.utils.data.DataLoader(dataset, batch_size=...)"
        )
    elif isinstance(data, (list, tuple)):
        source = data
    elif isinstance(data, Iterable):
        if iter(data) is data:  # a one-shot iterator: read it once
            source = list(data)
        else:
            source = data
    else:
        raise TypeError(
            f"{name} must be an (x, y) pair, a list of (x, y) batches or a re-iterable "
            f"loader of batches, got {type(data).__name__}"
        )
    return Batched(
        source,
        device=torch.device(device),
        dtype=dtype,
        model=model,
        labels=labels,
        num_classes=num_classes,
        images=images,
        name=name,
    )

"""The :class:`Surface` result (and the private partial-grid file)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..io import Result

__all__ = ["Surface"]


@dataclass(frozen=True)
class Surface(Result):
    """Loss (and accuracy) on a 2D grid spanned by two directions, or on a 1D line.

    Attributes:
        xs: grid coordinates along the first direction.
        ys: coordinates along the second direction (``None`` for a line).
        loss: shape ``(len(ys), len(xs))`` (``(len(xs),)`` for a line).
        accuracy: same shape, or ``None`` when the task has no class labels.
        meta: call arguments (adversarial mode, eps, strategy, batch size, seed,
            timing) and, after ``save``, provenance.
    """

    SHAPES = {"xs": "X", "ys": "Y", "loss": "Y? X", "accuracy": "Y? X"}

    xs: np.ndarray
    ys: np.ndarray | None
    loss: np.ndarray
    accuracy: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def is_line(self) -> bool:
        """True for a 1D line (``ys is None``)."""
        return self.ys is None

    @property
    def center_loss(self) -> float:
        """Loss at the grid point nearest the origin."""
        ix = int(np.argmin(np.abs(np.asarray(self.xs))))
        if self.is_line:
            return float(self.loss[ix])
        iy = int(np.argmin(np.abs(np.asarray(self.ys))))
        return float(self.loss[iy, ix])


@dataclass(frozen=True)
class _Partial(Result):
    SHAPES = {"xs": "M ...", "loss": "M", "accuracy": "M", "done": "M"}
    NONFINITE = {
        "loss": "NaN at the points not computed yet",
        "accuracy": "NaN at the points not computed yet (or without class labels)",
    }

    xs: np.ndarray
    ys: np.ndarray | None
    loss: np.ndarray
    accuracy: np.ndarray
    done: np.ndarray
    meta: dict = field(default_factory=dict)

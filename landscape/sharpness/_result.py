"""The result of a sharpness measurement."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import io

__all__ = ["Sharpness"]


@dataclass(frozen=True)
class Sharpness(io.Result):
    """A sharpness value and what it is made of, per batch of ``m`` examples.

    Attributes:
        value: the sharpness: the mean over batches (weighted by their sizes) of the
            loss increase (worst case: the largest loss found in the ball minus the
            loss at the weights; average case: the mean loss under the noise minus
            the loss at the weights).
        per_batch: the loss increase of each batch, shape ``(num_batches,)``.
        loss: the loss at the unperturbed weights, per batch (the robust loss when
            the measure re-attacks the inputs).
        perturbed_loss: the worst (or mean) perturbed loss, per batch.
        sizes: examples per batch.
        std_error: average case: the Monte-Carlo standard error of ``value`` (from
            the spread of the samples); worst case: None.
        num_grad: gradient passes (forward + backward of one batch) the measure
            took, attacks included.
        num_forward: forward-only passes of one batch.
        measure: the measure's settings (:meth:`WorstCase.to_dict` /
            :meth:`AverageCase.to_dict`).
        meta: provenance, seed, world size.
    """

    value: float
    per_batch: np.ndarray
    loss: np.ndarray
    perturbed_loss: np.ndarray
    sizes: np.ndarray
    std_error: float | None = None
    num_grad: int = 0
    num_forward: int = 0
    measure: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The measure's name (as in metric columns)."""
        return str(self.measure.get("label") or self.meta.get("name", "sharpness"))

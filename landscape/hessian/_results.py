"""Result dataclasses of the curvature analyses (save/load via :class:`io.Result`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..io import Result

__all__ = ["Eigenpairs", "TraceEstimate"]


@dataclass(frozen=True)
class Eigenpairs(Result):
    """Extreme eigenvalues of a Hessian and (optionally) their eigenvectors.

    Attributes:
        eigenvalues: shape ``(num,)``, ordered as requested (``which="LA"``: descending,
            ``"SA"``: ascending, ``"LM"``: by decreasing magnitude).
        vectors: ``name -> array (num, *param_shape)``: the unit eigenvectors stacked,
            keyed like ``model.named_parameters()`` (empty when not requested). Use
            :attr:`eigenvectors` for a list of per-eigenvector dicts of tensors.
            From :func:`~landscape.hessian.eigsh` on an operator without a parameter
            layout (a matrix, a scipy operator): one entry ``"flat"``, ``(num, n)``.
        residuals: ``||H v - theta v||`` per pair (Ritz residuals for Lanczos).
        num_matvecs: Hessian-vector products used.
        converged: whether every requested pair met ``tol``.
        method: ``"lanczos"``, ``"power"`` or ``"pyhessian"``.
        meta: call arguments and provenance.
    """

    SHAPES = {"eigenvalues": "K", "vectors": "K ...", "residuals": "K"}

    eigenvalues: np.ndarray
    vectors: dict = field(default_factory=dict, repr=False)
    residuals: np.ndarray | None = None
    num_matvecs: int = 0
    converged: bool = True
    method: str = "lanczos"
    meta: dict = field(default_factory=dict)

    @property
    def eigenvectors(self) -> list[dict[str, Tensor]]:
        """One ``dict[name -> Tensor]`` per eigenvalue (usable as surface directions)."""
        if not self.vectors:
            return []
        k = len(self.eigenvalues)
        return [
            {n: torch.as_tensor(np.asarray(a)[i]) for n, a in self.vectors.items()}
            for i in range(k)
        ]


@dataclass(frozen=True)
class TraceEstimate(Result):
    """A stochastic estimate of the Hessian trace with a confidence interval.

    Attributes:
        estimate: the trace estimate.
        std_error: its standard error (sample std of the probe terms / sqrt(#probes)).
        ci_low, ci_high: ``estimate -/+ z * std_error`` at level ``confidence``.
        confidence: the interval's level (0.95).
        samples: per-probe values ``v^T H v`` (Hutchinson), of the residual part
            (Hutch++; the exact low-rank part is ``meta["low_rank_part"]``), or the
            leave-one-out estimates (XTrace).
        num_matvecs: Hessian-vector products used.
        method: ``"hutchinson"``, ``"hutch++"``, ``"xtrace"`` or ``"pyhessian"``.
        meta: call arguments and provenance.
    """

    SHAPES = {"samples": "S"}
    NONFINITE = {
        "std_error": "inf from a single probe (no spread to estimate)",
        "ci_low": "-inf from a single probe",
        "ci_high": "inf from a single probe",
    }

    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95
    samples: np.ndarray | None = field(default=None, repr=False)
    num_matvecs: int = 0
    method: str = "hutchinson"
    meta: dict = field(default_factory=dict)

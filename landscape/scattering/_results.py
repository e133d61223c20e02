"""Result dataclasses of the scattering measurements and the excess fit."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..io import Result

__all__ = [
    "ScatteringResult",
    "GradNormStats",
    "TrainingGradNorms",
    "fit_excess",
    "concat_eps",
]


@dataclass(frozen=True)
class ScatteringResult(Result):
    """Gradient scattering statistics; arrays are indexed ``[eps, direction, scale,
    batch]`` (shape ``(E, D, S, B)``) unless noted.

    Attributes:
        eps: budgets, shape ``(E,)``.
        scales: step sizes ``s``, shape ``(S,)``.
        step_norm: ``||s v||`` per direction and scale, shape ``(D, S)``.
        grad_diff: ``||g(w + s v) - g(w)||``.
        ratio: ``grad_diff / step_norm``.
        cosine: cosine between ``g(w)`` and ``g(w + s v)``.
        grad_norm_pert: ``||g(w + s v)||``.
        pert_cosine: mean over examples of the cosine between ``x_adv - x`` at ``w`` and
            at ``w + s v`` (1 when both are zero, e.g. eps = 0).
        sign_cosine: the same for ``sign(x_adv - x)``.
        grad_norm: ``||g(w)||`` per eps and batch, shape ``(E, B)``.
        loss: adversarial loss at ``w``, shape ``(E, B)``.
        meta: settings, seeds and provenance.
    """

    SHAPES = {
        "eps": "E",
        "scales": "S",
        "step_norm": "D S",
        **dict.fromkeys(
            "grad_diff ratio cosine grad_norm_pert pert_cosine sign_cosine".split(),
            "E D S B",
        ),
        "grad_norm": "E B",
        "loss": "E B",
    }

    eps: np.ndarray
    scales: np.ndarray
    step_norm: np.ndarray
    grad_diff: np.ndarray
    ratio: np.ndarray
    cosine: np.ndarray
    grad_norm_pert: np.ndarray
    pert_cosine: np.ndarray
    sign_cosine: np.ndarray
    grad_norm: np.ndarray
    loss: np.ndarray
    meta: dict = field(default_factory=dict)

    def excess(self, *, max_scale: float | None = None) -> np.ndarray:
        """Intercept of ``||delta g||`` against ``s`` (least squares over the scales
        ``<= max_scale``), shape ``(E, D, B)``: the non-vanishing ``2 eps L_wx`` term.

        The fit is on ``||delta g||`` vs ``||s v||`` so filter-normalised directions of
        different lengths are comparable. Needs at least two scales.
        """
        return fit_excess(
            self.step_norm, self.grad_diff, max_scale=max_scale, scales=self.scales
        )[0]

    def relative_excess(self, *, max_scale: float | None = None) -> np.ndarray:
        """The excess (:meth:`excess`) divided by ``||g(w)||`` of the same eps and
        batch, shape ``(E, D, B)``: the scattering relative to the gradient's size, so
        that a larger gradient at a larger eps does not by itself read as more
        scattering (NaN where ``||g(w)|| = 0``).

        Example:
            >>> from landscape.scattering import ScatteringResult
            >>> sn = np.array([[1e-2, 1e-1]])  # one direction, two scales
            >>> gd = np.array([[[[0.52], [0.7]]]])  # 0.5 + 2 ||s v||: excess 0.5
            >>> r = ScatteringResult(
            ...     eps=np.array([0.1]), scales=np.array([1e-2, 1e-1]), step_norm=sn,
            ...     grad_diff=gd, ratio=gd / sn[None, :, :, None], cosine=gd * 0,
            ...     grad_norm_pert=gd * 0, pert_cosine=gd * 0, sign_cosine=gd * 0,
            ...     grad_norm=np.array([[2.0]]), loss=np.array([[1.0]]))
            >>> r.relative_excess().round(6).tolist()
            [[[0.25]]]
        """
        norm = np.asarray(self.grad_norm, dtype=np.float64)[:, None, :]  # (E, 1, B)
        exc = self.excess(max_scale=max_scale)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(norm > 0, exc / np.where(norm > 0, norm, 1.0), np.nan)


@dataclass(frozen=True)
class GradNormStats(Result):
    """Gradient norms of the adversarial loss per eps.

    Attributes:
        eps: budgets, shape ``(E,)``.
        per_example: ``||grad_w loss(x_i_adv, y_i)||`` for every example, ``(E, N)``.
        batch: norm of the mini-batch gradient, ``(E, B)``.
        meta: settings and provenance.
    """

    SHAPES = {"eps": "E", "per_example": "E N", "batch": "E B"}

    eps: np.ndarray
    per_example: np.ndarray
    batch: np.ndarray
    meta: dict = field(default_factory=dict)

    def summary(self) -> dict[str, np.ndarray]:
        """Mean, std and the 5/25/50/75/95 % quantiles of the per-example norms per eps."""
        q = np.quantile(self.per_example, [0.05, 0.25, 0.5, 0.75, 0.95], axis=1)
        return {
            "mean": self.per_example.mean(axis=1),
            "std": self.per_example.std(axis=1),
            "q05": q[0],
            "q25": q[1],
            "median": q[2],
            "q75": q[3],
            "q95": q[4],
        }


@dataclass(frozen=True)
class TrainingGradNorms(Result):
    """Gradient norms logged by a trainer, per logged epoch.

    Attributes:
        epoch: epoch numbers, shape ``(T,)``.
        eps: eps in force at each epoch (NaN where not logged), shape ``(T,)``.
        values: every logged metric whose name mentions a gradient norm, ``(T,)`` each.
        target_eps: the run's target eps (from ``config.json``), NaN if unknown.
        meta: where it was read from.
    """

    SHAPES = {"epoch": "T", "eps": "T", "values": "T"}
    NONFINITE = {
        "eps": "NaN where the run did not log eps",
        "values": "NaN where the run did not log the metric",
        "target_eps": "NaN when the run records no target eps",
    }

    epoch: np.ndarray
    eps: np.ndarray
    values: dict[str, np.ndarray]
    target_eps: float = float("nan")
    meta: dict = field(default_factory=dict)


def fit_excess(
    step_norm: np.ndarray,
    grad_diff: np.ndarray,
    *,
    max_scale: float | None = None,
    scales: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line ``||delta g|| = a + b ||delta w||`` per curve.

    Args:
        step_norm: ``||s v||``, shape ``(D, S)``.
        grad_diff: ``||delta g||``, shape ``(E, D, S, B)``.
        max_scale: keep only scales ``s <= max_scale`` (``scales`` must be given).
        scales: the scales ``s`` (``(S,)``), to apply ``max_scale``.

    Returns:
        ``(intercept, slope)``, each of shape ``(E, D, B)``.

    Example:
        >>> sn = np.array([[1e-3, 1e-2, 1e-1]])
        >>> gd = (0.5 + 2.0 * sn)[None, :, :, None]
        >>> a, b = fit_excess(sn, gd)
        >>> bool(np.allclose(a, 0.5) and np.allclose(b, 2.0))
        True
    """
    step_norm = np.asarray(step_norm, dtype=np.float64)
    grad_diff = np.asarray(grad_diff, dtype=np.float64)
    keep = np.ones(step_norm.shape[1], dtype=bool)
    if max_scale is not None:
        if scales is None:
            raise ValueError("max_scale needs scales")
        keep = np.asarray(scales) <= max_scale
    if keep.sum() < 2:
        raise ValueError("the excess fit needs at least two scales")
    t = step_norm[:, keep][None, :, :, None]  # (1, D, S', 1)
    g = grad_diff[:, :, keep, :]
    tm, gm = t.mean(axis=2, keepdims=True), g.mean(axis=2, keepdims=True)
    slope = ((t - tm) * (g - gm)).sum(axis=2) / ((t - tm) ** 2).sum(axis=2)
    intercept = gm[:, :, 0, :] - slope * tm[:, :, 0, :]
    return intercept, slope


def concat_eps(results: Sequence[ScatteringResult]) -> ScatteringResult:
    """Join results along the eps axis, e.g. models trained at different eps each
    measured at its own eps. Scales, directions' lengths (``step_norm``) and the
    number of batches must agree.

    Raises:
        ValueError: empty input or mismatched scales / shapes.
    """
    results = list(results)
    if not results:
        raise ValueError("concat_eps needs at least one result")
    first = results[0]
    for r in results[1:]:
        if r.grad_diff.shape[1:] != first.grad_diff.shape[1:] or not np.allclose(
            r.step_norm, first.step_norm
        ):
            raise ValueError(
                "results differ in directions, scales or batches; measure them with "
                "the same scales, number of (unit) directions and batches"
            )
    kw = {
        f.name: np.concatenate([getattr(r, f.name) for r in results])
        for f in dataclasses.fields(ScatteringResult)
        if f.name not in ("scales", "step_norm", "meta")
    }
    meta = {"parts": [r.meta for r in results]}
    return ScatteringResult(
        scales=first.scales, step_norm=first.step_norm, meta=meta, **kw
    )

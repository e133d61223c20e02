"""Mode connectivity: loss and accuracy along curves between two models.

- :func:`plot_curve_scan`: one metric (loss or accuracy) against t for one or several
  :class:`landscape.connectivity.CurveScan` results, clean (solid) and under the
  attack (dashed) in the same colour.
- :func:`plot_connectivity`: loss and accuracy side by side (two axes).

pyplot is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes

__all__ = ["plot_curve_scan", "plot_connectivity"]


def _labelled(scans: Any, labels: Sequence[str] | None) -> list[tuple[str, Any]]:
    if isinstance(scans, Mapping):
        return [(str(k), v) for k, v in scans.items()]
    if hasattr(scans, "ts"):
        scans = [scans]
    scans = list(scans)
    if labels is None:
        labels = [
            s.kind
            if s.kind == "line"
            else f"{s.kind} ({s.meta.get('num_bends', '?')} bend)"
            for s in scans
        ]
    if len(labels) != len(scans):
        raise ValueError(f"{len(labels)} labels for {len(scans)} scans")
    return list(zip(map(str, labels), scans))


def plot_curve_scan(
    scans: Any,
    ax: Axes | None = None,
    *,
    metric: str = "loss",
    labels: Sequence[str] | None = None,
    robust: bool = True,
    percent: bool = True,
    legend: bool = True,
) -> Axes:
    """Loss or accuracy along t, clean (solid) and robust (dashed), curves overlaid.

    Args:
        scans: a ``CurveScan``, a list of them, or ``{label: scan}``.
        ax: axis to draw on (default: a new one).
        metric: ``"loss"`` or ``"acc"``.
        labels: legend labels for a list (default: the curve kinds).
        robust: also draw the robust curve where the scan has one.
        percent: accuracy in percent.
        legend: draw the legend.

    Returns:
        The axis.
    """
    from ._style import new_axes

    if metric not in ("loss", "acc"):
        raise ValueError(f"metric must be 'loss' or 'acc', got {metric!r}")
    ax = new_axes(ax)
    scale = 100.0 if (metric == "acc" and percent) else 1.0
    for i, (label, s) in enumerate(_labelled(scans, labels)):
        color = f"C{i % 10}"
        ax.plot(
            s.ts,
            scale * getattr(s, f"clean_{metric}"),
            color=color,
            label=f"{label}, clean",
        )
        rob = getattr(s, f"robust_{metric}")
        if robust and rob is not None:
            eps = s.meta.get("eps")
            tag = "robust" if eps is None else f"robust (eps={eps:g})"
            ax.plot(
                s.ts, scale * rob, color=color, linestyle="--", label=f"{label}, {tag}"
            )
    ax.set_xlabel("t along the curve")
    ax.set_ylabel(
        "loss" if metric == "loss" else ("accuracy (%)" if percent else "accuracy")
    )
    ax.set_xlim(0, 1)
    if legend:
        ax.legend()
    return ax


def plot_connectivity(
    scans: Any,
    axes=None,
    *,
    labels: Sequence[str] | None = None,
    robust: bool = True,
    title: str | None = None,
):
    """Loss (left) and accuracy (right) along t for several curves (see
    :func:`plot_curve_scan`), one legend to the right. Returns the two axes."""
    import matplotlib.pyplot as plt

    from ._style import PAPER_STYLE

    if axes is None:
        with plt.rc_context(PAPER_STYLE):
            _, axes = plt.subplots(1, 2, figsize=(8.0, 3.0))
    kw = dict(labels=labels, robust=robust, legend=False)
    plot_curve_scan(scans, axes[0], metric="loss", **kw)
    plot_curve_scan(scans, axes[1], metric="acc", **kw)
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5))  # outside the data
    if title:
        axes[0].figure.suptitle(title)
    return axes

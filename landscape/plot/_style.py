"""Shared paper styling and small helpers for every plot."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend import Legend

__all__ = [
    "PAPER_STYLE",
    "figure_of",
    "legend",
    "new_axes",
    "paper_style",
    "savefig",
    "subplots",
]

PAPER_STYLE: dict = {
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.4,
    "figure.constrained_layout.use": True,
}


@contextmanager
def paper_style(rc: dict | None = None) -> Iterator[None]:
    """``plt.rc_context(PAPER_STYLE)`` (plus ``rc``) that keeps interactive mode.

    The first figure of a Jupyter kernel loads the inline backend, which switches
    matplotlib's interactive mode on. A plain ``plt.rc_context`` restores every rc
    value on exit, ``interactive`` included, so when that first figure is created
    inside it, interactive mode ends up off and every later cell shows only text
    (``Text(0, 0.5, 'lr')``) instead of its figure. This context keeps whatever
    interactive mode the body left.

    Args:
        rc: extra rc values on top of ``PAPER_STYLE``.
    """
    interactive = matplotlib.is_interactive()
    try:
        with plt.rc_context({**PAPER_STYLE, **(rc or {})}):
            try:
                yield
            finally:
                interactive = matplotlib.is_interactive()
    finally:
        matplotlib.interactive(interactive)


def subplots(*args: Any, **kwargs: Any) -> tuple[Figure, Any]:
    """``plt.subplots(*args, **kwargs)`` styled with ``PAPER_STYLE``.

    Safe as the first figure of a Jupyter kernel (see :func:`paper_style`): use it
    instead of ``with plt.rc_context(PAPER_STYLE): plt.subplots(...)``.

    Returns:
        ``(figure, axes)`` as from ``plt.subplots``.
    """
    with paper_style():
        return plt.subplots(*args, **kwargs)


def new_axes(ax=None, figsize: tuple[float, float] = (4.0, 3.0)):
    """Return ``ax`` or a fresh axis in a new figure styled with ``PAPER_STYLE``."""
    if ax is not None:
        return ax
    _, ax = subplots(figsize=figsize)
    return ax


def figure_of(drawn: Any) -> Any:
    """The matplotlib ``Figure`` of what a plot function returned: a Figure, an Axes,
    or an array / list of Axes.

    Raises:
        TypeError: ``drawn`` holds no matplotlib figure.
    """
    if hasattr(drawn, "savefig"):
        return drawn
    if isinstance(drawn, np.ndarray) and drawn.size:
        drawn = drawn.flat[0]
    elif isinstance(drawn, (list, tuple)) and drawn:
        drawn = drawn[0]
    fig = getattr(drawn, "figure", None)
    if fig is None or not hasattr(fig, "savefig"):
        raise TypeError(
            f"{type(drawn).__name__} is not a matplotlib Figure or Axes - pass what a "
            "landscape.plot function returned (a plotly figure: use write_html)"
        )
    return fig


def savefig(drawn: Any, path: str | Path, *, close: bool = True) -> list[Path]:
    """Save what a plot function returned (a Figure, an Axes or an array of Axes) to
    ``path``; a path without suffix is written as both PNG and PDF. Writes are atomic
    (temporary file then rename).

    Args:
        drawn: the plot function's return value.
        path: the file (its suffix picks the format).
        close: close the figure afterwards.

    Returns:
        The files written.
    """
    from ..io import atomic_write

    fig = figure_of(drawn)
    path = Path(path)
    targets = (
        [path] if path.suffix else [path.with_suffix(".png"), path.with_suffix(".pdf")]
    )
    for t in targets:
        with atomic_write(t, "wb") as f:
            fig.savefig(f, format=t.suffix.lstrip("."), bbox_inches="tight")
    if close:
        plt.close(fig)
    return targets


def _data_points(ax) -> np.ndarray:
    """Display coordinates of what is drawn on ``ax``: line vertices (segments
    subdivided, so a segment crossing a box counts) and collection points/paths."""
    pts = []
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=float)
        if len(xy) > 1:
            t = np.linspace(0.0, 1.0, 16)[:-1, None, None]
            xy = np.concatenate(
                [(xy[:-1] + t * (xy[1:] - xy[:-1])).reshape(-1, 2), xy[-1:]]
            )
        pts.append(line.get_transform().transform(xy))
    for coll in ax.collections:
        offsets = np.asarray(coll.get_offsets(), dtype=float).reshape(-1, 2)
        if len(offsets) > 1:
            pts.append(coll.get_offset_transform().transform(offsets))
        for path in coll.get_paths():
            pts.append(coll.get_transform().transform(path.vertices))
    pts = [p for p in pts if len(p)]
    if not pts:
        return np.zeros((0, 2))
    out = np.concatenate(pts)
    return out[np.isfinite(out).all(axis=1)]


def _covers_data(ax, leg=None) -> bool:
    """Whether the legend of ``ax`` (or ``leg``) lies over any drawn data point."""
    leg = leg if leg is not None else ax.get_legend()
    if leg is None:
        return False
    ax.figure.draw_without_rendering()
    box = leg.get_window_extent()
    pts = _data_points(ax)
    inside = (
        (pts[:, 0] >= box.x0)
        & (pts[:, 0] <= box.x1)
        & (pts[:, 1] >= box.y0)
        & (pts[:, 1] <= box.y1)
    )
    return bool(inside.any())


def legend(ax: Axes, **kwargs: Any) -> Legend | None:
    """``ax.legend(**kwargs)`` that never covers the curves.

    The legend goes to matplotlib's ``"best"`` place inside the axes; when every place
    inside would hide part of the data, it moves outside, to the right of the axes.

    Args:
        ax: the axis.
        **kwargs: passed to ``ax.legend``.

    Returns:
        The legend (None when nothing on ``ax`` has a label).
    """
    handles, _ = ax.get_legend_handles_labels()
    if not handles:
        return None
    leg = ax.legend(**kwargs)
    if "loc" not in kwargs and _covers_data(ax, leg):
        leg.remove()
        leg = ax.legend(
            loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs
        )
    return leg

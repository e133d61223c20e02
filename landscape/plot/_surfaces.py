"""Loss surfaces and lines: matplotlib contours and curves, plotly interactive 3D.

Every function takes a :class:`landscape.surface.Surface` (or anything with ``xs``,
``ys``, ``loss``, ``accuracy`` and ``meta``). Matplotlib functions take an optional
``ax`` and return the axis (or an array of axes); plotly functions return a
``plotly.graph_objects.Figure`` and :func:`write_html` writes it as one self-contained
HTML file (plotly.js embedded, works offline).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.ticker import FuncFormatter, NullFormatter

from ._style import legend, new_axes, paper_style

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "contour_interactive",
    "plot_line",
    "plot_surface",
    "plot_surfaces",
    "surface_3d",
    "surfaces_3d",
    "write_html",
]

_LABELS = {"loss": "loss", "accuracy": "accuracy"}


def _values(surf: Any, which: str) -> np.ndarray:
    if which not in _LABELS:
        raise ValueError(f"which must be 'loss' or 'accuracy', got {which!r}")
    z = getattr(surf, which)
    if z is None:
        raise ValueError(f"this surface has no {which} (no class labels in its data)")
    return np.asarray(z, dtype=float)


def _grid_values(
    surf: Any, which: str, log: bool, where: str
) -> tuple[np.ndarray, str]:
    """The values of a 2D surface as drawn (``log10`` with ``log``) and their label."""
    if getattr(surf, "ys", None) is None:
        raise ValueError(f"{where} needs a 2D surface (this one is a 1D line)")
    z, zlab = _values(surf, which), _LABELS[which]
    if log:
        z, zlab = np.log10(np.clip(z, 1e-300, None)), f"log10 {zlab}"
    return z, zlab


def _default_label(surf: Any, which: str) -> str:
    meta = getattr(surf, "meta", None) or {}
    mode = meta.get("adversarial", "clean")
    if mode in (None, "clean"):
        return f"clean {which}"
    return f"{mode} adversarial {which} (eps={meta.get('eps')})"


def _norm(z: np.ndarray, log: bool, vmin: float | None, vmax: float | None):
    finite = z[np.isfinite(z)]
    lo = float(finite.min()) if vmin is None else float(vmin)
    hi = float(finite.max()) if vmax is None else float(vmax)
    if hi <= lo:
        hi = lo + 1e-12 * max(1.0, abs(lo))
    if log:
        if lo <= 0:
            warnings.warn(
                f"log scale needs positive values (min {lo:g}); using a linear scale",
                stacklevel=3,
            )
            return Normalize(lo, hi), False
        return LogNorm(lo, hi), True
    return Normalize(lo, hi), False


def _levels(norm, levels: int | Sequence[float], log: bool) -> np.ndarray:
    if not isinstance(levels, int):
        return np.asarray(levels, dtype=float)
    if log:
        return np.geomspace(norm.vmin, norm.vmax, levels)
    return np.linspace(norm.vmin, norm.vmax, levels)


def _nice_ticks(lo: float, hi: float, log: bool) -> np.ndarray:
    """Round colour-bar tick values in ``[lo, hi]``: ``1, 2, 5 x 10^k`` (or finer
    mantissas) on a log scale that spans enough of a decade, else evenly spaced steps
    of ``1, 2, 2.5, 5 x 10^k``. Never the level values themselves (0.285, 0.471)."""
    from matplotlib.ticker import MaxNLocator

    if log and lo > 0:
        k = np.arange(np.floor(np.log10(lo)), np.ceil(np.log10(hi)) + 1)
        for subs in ((1,), (1, 2, 5), (1, 2, 3, 5), tuple(range(1, 10))):
            t = np.sort((np.asarray(subs)[:, None] * 10.0**k).ravel())
            t = t[(t >= lo * (1 - 1e-9)) & (t <= hi * (1 + 1e-9))]
            if len(t) >= 3:
                return t
    t = MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    span = 1e-9 * max(abs(lo), abs(hi), 1e-300)
    return t[(t >= lo - span) & (t <= hi + span)]


def _colorbar(cs, ax, label: str, **kw):
    cb = (ax[0] if isinstance(ax, list) else ax).figure.colorbar(
        cs, ax=ax, label=label, **kw
    )
    norm = cs.norm
    ticks = _nice_ticks(float(norm.vmin), float(norm.vmax), isinstance(norm, LogNorm))
    cb.set_ticks(ticks)
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.6g}"))
    cb.ax.yaxis.set_minor_formatter(NullFormatter())
    return cb


def plot_surface(
    surf: Any,
    ax: Axes | None = None,
    *,
    kind: str = "contour",
    which: str = "loss",
    levels: int | Sequence[float] = 30,
    log: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    center: bool = True,
    points: Sequence[Sequence[float]] | None = None,
    point_labels: Sequence[str] | None = None,
    colorbar: bool = True,
    clabel: bool = False,
    title: str | None = None,
) -> Axes:
    """Contour (``kind="contour"``) or filled contour (``"contourf"``) of a surface.

    Args:
        surf: a 2D :class:`~landscape.surface.Surface` (a line is drawn with
            :func:`plot_line`).
        ax: axis to draw on (default: a new figure).
        kind: ``"contour"`` or ``"contourf"``.
        which: ``"loss"`` or ``"accuracy"``.
        levels: number of levels or explicit level values.
        log: log-scaled levels and colours (for losses spanning decades).
        vmin, vmax: colour range (share them across panels for a common scale).
        cmap: matplotlib colour map.
        center: mark the origin (the model) with a star.
        points: extra ``(x, y)`` points to mark, e.g. ``Plane.coords``.
        point_labels: labels for ``points``.
        colorbar: add a colour bar.
        clabel: write level values on the contour lines.
        title: axis title (default from the surface's meta).

    Returns:
        The matplotlib axis.
    """
    if getattr(surf, "ys", None) is None:
        return plot_line(surf, ax, which=which, log=log, title=title)
    if kind not in ("contour", "contourf"):
        raise ValueError(f"kind must be 'contour' or 'contourf', got {kind!r}")
    z = np.ma.masked_invalid(_values(surf, which))
    ax = new_axes(ax, figsize=(3.6, 3.0))
    norm, log = _norm(z.filled(np.nan), log, vmin, vmax)
    lv = _levels(norm, levels, log)
    draw = ax.contourf if kind == "contourf" else ax.contour
    with paper_style():
        cs = draw(surf.xs, surf.ys, z, levels=lv, cmap=cmap, norm=norm, extend="both")
        if clabel and kind == "contour":
            ax.clabel(cs, inline=True, fontsize=6, fmt="%.3g")
        if center:
            ax.plot(0, 0, marker="*", ms=9, color="red", mec="white", mew=0.6, zorder=5)
        if points is not None:
            pts = np.asarray(points, dtype=float).reshape(-1, 2)
            ax.plot(
                pts[:, 0], pts[:, 1], "o", ms=5, color="black", mfc="white", zorder=5
            )
            for (px, py), lab in zip(pts, point_labels or []):
                ax.annotate(lab, (px, py), xytext=(4, 4), textcoords="offset points")
        if colorbar:
            _colorbar(cs, ax, _LABELS[which])
        ax.set_xlabel(r"$\alpha$ (direction 1)")
        ax.set_ylabel(r"$\beta$ (direction 2)")
        ax.set_title(title if title is not None else _default_label(surf, which))
        ax.set_aspect("auto")
        ax.grid(False)
    return ax


def plot_line(
    surfs: Any | Sequence[Any],
    ax: Axes | None = None,
    *,
    which: str = "loss",
    log: bool = False,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    center: bool = True,
) -> Axes:
    """1D curves of one or several lines (a 2D surface contributes its ``y = 0`` row).

    Args:
        surfs: a Surface or a list of them.
        ax: axis to draw on.
        which: ``"loss"`` or ``"accuracy"``.
        log: log-scaled y axis.
        labels: legend entries (default from each surface's meta).
        title: axis title.
        center: a dotted vertical line at the origin.

    Returns:
        The matplotlib axis.
    """
    if not isinstance(surfs, (list, tuple)):
        surfs = [surfs]
    ax = new_axes(ax)
    with paper_style():
        for i, s in enumerate(surfs):
            z = _values(s, which)
            if getattr(s, "ys", None) is not None:
                z = z[int(np.argmin(np.abs(np.asarray(s.ys))))]
            lab = labels[i] if labels is not None else _default_label(s, which)
            ax.plot(s.xs, z, label=lab)
        if log:
            ax.set_yscale("log")
        if center:
            ax.axvline(0.0, color="grey", ls=":", lw=0.8)
        ax.set_xlabel(r"$\alpha$")
        ax.set_ylabel(_LABELS[which])
        if title:
            ax.set_title(title)
        if len(surfs) > 1 or labels is not None:
            legend(ax)
    return ax


def plot_surfaces(
    surfs: Sequence[Any],
    *,
    titles: Sequence[str] | None = None,
    kind: str = "contourf",
    which: str = "loss",
    levels: int | Sequence[float] = 30,
    log: bool = False,
    share_scale: bool = True,
    ncols: int | None = None,
    cmap: str = "viridis",
    panel_size: tuple[float, float] = (2.6, 2.4),
    axes: np.ndarray | None = None,
) -> np.ndarray:
    """Several surfaces side by side (e.g. one per training eps).

    With ``share_scale`` every panel uses the same colour range and levels and one
    colour bar serves them all, so heights compare across panels. A ``None`` entry
    leaves its panel empty, with its title as a note (e.g. the adversarial surface of
    an eps = 0 model, which would only repeat its clean surface).

    Args:
        surfs: 2D surfaces, or ``None`` for an empty panel.
        titles: panel titles (for an empty panel: the note written in it).
        kind, which, levels, log, cmap: as for :func:`plot_surface`.
        share_scale: one colour scale for all panels.
        ncols: panels per row (default all in one row).
        panel_size: inches per panel.
        axes: existing axes to draw on (at least ``len(surfs)``).

    Returns:
        The array of axes (``axes.flat[0].figure`` is the figure).
    """
    surfs = list(surfs)
    drawn = [s for s in surfs if s is not None]
    if not drawn:
        raise ValueError("plot_surfaces needs at least one surface")
    n = len(surfs)
    if axes is None:
        ncols = ncols or n
        nrows = -(-n // ncols)
        with paper_style():
            _, axes = plt.subplots(
                nrows,
                ncols,
                figsize=(panel_size[0] * ncols + 0.8, panel_size[1] * nrows),
                squeeze=False,
                sharex=True,
                sharey=True,
            )
    axes = np.asarray(axes, dtype=object).reshape(-1)
    vmin = vmax = None
    lv: Any = levels
    if share_scale:
        allz = np.concatenate([_values(s, which).ravel() for s in drawn])
        norm, use_log = _norm(allz, log, None, None)
        vmin, vmax = norm.vmin, norm.vmax
        lv = _levels(norm, levels, use_log)
    for i, (s, ax) in enumerate(zip(surfs, axes)):
        if s is None:
            _empty_panel(ax, titles[i] if titles is not None else "")
            continue
        plot_surface(
            s,
            ax,
            kind=kind,
            which=which,
            levels=lv,
            log=log,
            vmin=vmin,
            vmax=vmax,
            cmap=cmap,
            colorbar=not share_scale,
            title=titles[i] if titles is not None else None,
        )
        row = i - i % (ncols or n)  # first panel of this row
        if any(t is not None for t in surfs[row:i]):  # a panel on its left has one
            ax.set_ylabel("")
    for ax in axes[n:]:
        ax.set_visible(False)
    if share_scale:
        cs = next(c for a in axes[:n] for c in a.collections if hasattr(c, "norm"))
        _colorbar(cs, list(axes[:n]), _LABELS[which], shrink=0.9)
    return axes


def _empty_panel(ax, note: str) -> None:
    ax.set_axis_off()  # not set_xticks([]): that would clear every shared axis
    ax.text(0.5, 0.5, note, ha="center", va="center", wrap=True, transform=ax.transAxes)


def _title(surf: Any, which: str, title: str | None) -> str:
    return title if title is not None else _default_label(surf, which)


def surface_3d(
    surf: Any,
    *,
    which: str = "loss",
    log: bool = False,
    title: str | None = None,
    colorscale: str = "Viridis",
    contours: bool = True,
) -> go.Figure:
    """Interactive 3D surface (plotly), with the origin marked.

    Args:
        surf: a 2D surface.
        which: ``"loss"`` or ``"accuracy"``.
        log: plot ``log10`` of the values.
        title: figure title.
        colorscale: plotly colour scale.
        contours: project contour lines onto the floor.

    Returns:
        ``plotly.graph_objects.Figure``; save it with :func:`write_html`.
    """
    import plotly.graph_objects as go

    z, zlab = _grid_values(surf, which, log, "surface_3d")
    trace = go.Surface(
        x=np.asarray(surf.xs),
        y=np.asarray(surf.ys),
        z=z,
        colorscale=colorscale,
        colorbar={"title": {"text": zlab}},
        contours={"z": {"show": contours, "project": {"z": True}, "usecolormap": True}},
    )
    ix = int(np.argmin(np.abs(surf.xs)))
    iy = int(np.argmin(np.abs(surf.ys)))
    mark = go.Scatter3d(
        x=[surf.xs[ix]],
        y=[surf.ys[iy]],
        z=[z[iy, ix]],
        mode="markers",
        marker={"size": 5, "color": "red"},
        name="model",
    )
    fig = go.Figure([trace, mark])
    fig.update_layout(
        title=_title(surf, which, title),
        scene={"xaxis_title": "alpha", "yaxis_title": "beta", "zaxis_title": zlab},
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
    )
    return fig


def surfaces_3d(
    surfs: Sequence[Any],
    *,
    titles: Sequence[str] | None = None,
    which: str = "loss",
    log: bool = False,
    ncols: int | None = None,
    colorscale: str = "Viridis",
    share_scale: bool = True,
    height_per_row: int = 420,
) -> go.Figure:
    """Several interactive 3D surfaces side by side in one plotly figure (one HTML).

    Args:
        surfs: 2D surfaces.
        titles: one title per panel.
        which: ``"loss"`` or ``"accuracy"``.
        log: plot ``log10`` of the values.
        ncols: panels per row (default all in one row).
        colorscale: plotly colour scale.
        share_scale: one colour range (and z range) for every panel.
        height_per_row: figure height per row of panels, in pixels.

    Returns:
        ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    surfs = list(surfs)
    if not surfs or any(getattr(s, "ys", None) is None for s in surfs):
        raise ValueError("surfaces_3d needs one or more 2D surfaces")
    n = len(surfs)
    ncols = ncols or n
    nrows = -(-n // ncols)
    zs = [_grid_values(s, which, log, "surfaces_3d")[0] for s in surfs]
    zlab = f"log10 {_LABELS[which]}" if log else _LABELS[which]
    lo = float(min(np.nanmin(z) for z in zs))
    hi = float(max(np.nanmax(z) for z in zs))
    fig = make_subplots(
        rows=nrows,
        cols=ncols,
        specs=[[{"type": "surface"}] * ncols for _ in range(nrows)],
        subplot_titles=list(titles) if titles is not None else None,
    )
    for i, (s, z) in enumerate(zip(surfs, zs)):
        kw = {"cmin": lo, "cmax": hi} if share_scale else {}
        fig.add_trace(
            go.Surface(
                x=np.asarray(s.xs),
                y=np.asarray(s.ys),
                z=z,
                colorscale=colorscale,
                showscale=(i == 0) or not share_scale,
                colorbar={"title": {"text": zlab}},
                **kw,
            ),
            row=i // ncols + 1,
            col=i % ncols + 1,
        )
    scene = {"xaxis_title": "alpha", "yaxis_title": "beta", "zaxis_title": zlab}
    if share_scale:
        scene["zaxis"] = {"range": [lo, hi]}
    fig.update_scenes(**scene)
    fig.update_layout(
        height=height_per_row * nrows, margin={"l": 0, "r": 0, "t": 40, "b": 0}
    )
    return fig


def contour_interactive(
    surf: Any,
    *,
    which: str = "loss",
    log: bool = False,
    title: str | None = None,
    colorscale: str = "Viridis",
    ncontours: int = 30,
) -> go.Figure:
    """Interactive contour map (plotly) with hover values and the origin marked.

    Returns:
        ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go

    z, zlab = _grid_values(surf, which, log, "contour_interactive")
    fig = go.Figure(
        [
            go.Contour(
                x=np.asarray(surf.xs),
                y=np.asarray(surf.ys),
                z=z,
                colorscale=colorscale,
                ncontours=ncontours,
                colorbar={"title": {"text": zlab}},
            ),
            go.Scatter(
                x=[0.0],
                y=[0.0],
                mode="markers",
                marker={"symbol": "star", "size": 12, "color": "red"},
                name="model",
            ),
        ]
    )
    fig.update_layout(
        title=_title(surf, which, title), xaxis_title="alpha", yaxis_title="beta"
    )
    return fig


def write_html(fig: Any, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Write a plotly figure as one self-contained HTML file (plotly.js embedded, no
    CDN), atomically.

    Args:
        fig: a ``plotly.graph_objects.Figure``.
        path: the ``.html`` file.
        title: the page title (the browser tab); default the figure's title, else
            the file name.

    Returns:
        The path written.
    """
    import html as _html

    from ..io import atomic_write

    path = Path(path)
    if title is None:
        title = fig.layout.title.text or path.stem.replace("_", " ")
    page = fig.to_html(include_plotlyjs=True, full_html=True)
    page = page.replace("<head>", f"<head><title>{_html.escape(str(title))}</title>", 1)
    with atomic_write(path, "w") as f:
        f.write(page)
    return path

"""The figures of the main job (``python -m landscape.demo``), built from saved results.

Each function takes results (``TrainResult``, ``ScatteringResult``, ``Surface``) or
plain numbers per training eps and returns axes (or a plotly figure); the demo only
saves what they return.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from ._style import PAPER_STYLE, new_axes

__all__ = [
    "plot_training_overview",
    "plot_values_vs_eps",
    "plot_scattering_overview",
    "surfaces_menu",
]


def plot_training_overview(runs: Mapping[str, Any]) -> np.ndarray:
    """Four panels per run: robust training loss (with log 10 = chance), robust
    training accuracy, test robust accuracy and distance from the initialisation.

    Args:
        runs: ``{label: TrainResult}``.

    Returns:
        The array of four axes.
    """
    import matplotlib.pyplot as plt

    from ._curves import plot_distance_from_init, plot_learning_curves

    with plt.rc_context(PAPER_STYLE):
        _, axes = plt.subplots(1, 4, figsize=(13, 2.9))
    plot_learning_curves(runs, axes[0], keys=("train_loss",))
    axes[0].axhline(np.log(10), color="k", lw=0.6, ls=":", label="log 10 (chance)")
    axes[0].set_ylabel("loss")
    panels = [
        ("robust training loss", None),
        ("robust training accuracy (%)", ("train_acc",)),
        ("test robust accuracy (%), target eps", ("test_robust_acc",)),
    ]
    for ax, (title, keys) in zip(axes, panels):
        if keys is not None:
            plot_learning_curves(runs, ax, keys=keys)
        ax.set_title(title)
    plot_distance_from_init(runs, axes[3])
    axes[3].set_title("distance from the initialisation")
    for ax in axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs 1, 2 (not 1.5)
    # one legend for the four panels, below them in a readable size (it was in the
    # first panel only, at 6 pt); a run's label without the first panel's metric
    _legend_below(axes[0], rename=lambda label: label.split(": ")[0])
    return axes


def _legend_below(ax: Axes, rename: Any = None) -> None:
    """Move ``ax``'s legend below the figure, in one row or a few (a legend outside
    an axis's right edge left half of a wide figure empty)."""
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    handles, labels = ax.get_legend_handles_labels()
    if rename is not None:
        labels = [rename(label) for label in labels]
    ax.figure.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(len(labels), 6),
        fontsize=8,
        frameon=False,
    )


def plot_values_vs_eps(
    eps: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    ax: Axes | None = None,
    *,
    xlabel: str = "training eps",
    ylabel: str = "value",
    log: bool = False,
    ylim: tuple[float, float] | None = None,
) -> Axes:
    """One line per named series against the training eps.

    Args:
        eps: the x values.
        curves: ``{legend label: one value per eps}``.
        ax: axis (default: a new one).
        xlabel, ylabel: axis labels.
        log: logarithmic y axis.
        ylim: y limits.

    Returns:
        The axis.
    """
    ax = new_axes(ax, figsize=(4.4, 3.0))
    for (label, vals), marker in zip(curves.items(), "os^vD<>"):
        ax.plot(list(eps), list(vals), marker + "-", label=label)
    if log:
        ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return ax


def plot_scattering_overview(res: Any) -> np.ndarray:
    """Gradient-Lipschitz ratio against the scale, and the excess against eps.

    Args:
        res: a ``ScatteringResult`` over several eps.

    Returns:
        The two axes.
    """
    import matplotlib.pyplot as plt

    from ._scatter import plot_excess_vs_eps, plot_ratio_vs_scale

    with plt.rc_context(PAPER_STYLE):
        _, axes = plt.subplots(1, 2, figsize=(8.0, 3.0))
    plot_ratio_vs_scale(res, ax=axes[0])
    _legend_below(axes[0])  # one entry per eps: below the panels, not beside them
    plot_excess_vs_eps(res, ax=axes[1])
    axes[1].set_xlabel("eps (training = attack)")
    return axes


def surfaces_menu(surfs: Mapping[str, Any], *, log: bool = True) -> Any:
    """One plotly figure holding every surface, with a menu to switch between them
    (one self-contained HTML file instead of one large file per surface).

    Args:
        surfs: ``{label: 2D Surface}``.
        log: plot ``log10`` of the loss.

    Returns:
        ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go

    from ._surfaces import surface_3d

    keys = list(surfs)
    figs = [surface_3d(surfs[k], log=log, title=k) for k in keys]
    fig = go.Figure(layout=figs[0].layout)
    owner: list[int] = []
    for i, f in enumerate(figs):
        for tr in f.data:
            tr.visible = i == 0
            fig.add_trace(tr)
            owner.append(i)
    buttons = [
        dict(
            label=k,
            method="update",
            args=[{"visible": [o == i for o in owner]}, {"title": k}],
        )
        for i, k in enumerate(keys)
    ]
    fig.update_layout(
        updatemenus=[dict(buttons=buttons, direction="down", x=0.0, y=1.12)],
        title=keys[0],
    )
    return fig

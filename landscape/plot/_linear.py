"""Plots for linear-classifier theory (:mod:`landscape.linear`): ||w||, clean and robust
error, and distance from initialisation across eps / eps*, with gamma and eps* marked
and PGD-trained points over the closed-form curves (figure 1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes

from ._style import legend as _legend
from ._style import new_axes, paper_style

if TYPE_CHECKING:
    from ..linear import LinearSweep

__all__ = ["plot_linear_sweep", "plot_linear_sweeps"]

_QUANTITIES = {
    "w_norm": r"$\|w\|_2$",
    "w_dual_norm": r"$\|w\|_{p^*}$",
    "error": "error",
    "dist_init": r"$\|w - w_0\|_2$",
    "robust_loss": "robust loss",
}


def _mark(ax, sweep, rel: bool) -> None:
    from matplotlib.transforms import blended_transform_factory

    scale = sweep.eps_star if rel and sweep.eps_star > 0 else 1.0
    tr = blended_transform_factory(ax.transData, ax.transAxes)
    ax.text(
        sweep.eps_star / scale,
        0.97,
        r" $\epsilon^*$",
        transform=tr,
        fontsize=7,
        va="top",
        ha="left",
    )
    if sweep.gamma > 0:
        ax.text(
            sweep.gamma / scale,
            0.97,
            r"$\gamma$ ",
            transform=tr,
            fontsize=7,
            va="top",
            ha="right",
            color="tab:purple",
        )
    ax.axvline(
        sweep.eps_star / scale, color="k", lw=0.9, ls="--", label=r"$\epsilon^*$"
    )
    if sweep.gamma > 0:
        ax.axvline(
            sweep.gamma / scale,
            color="tab:purple",
            lw=0.9,
            ls=":",
            label=r"$\gamma_{p^*}$",
        )


def plot_linear_sweep(
    sweep: LinearSweep,
    ax: Axes | None = None,
    *,
    quantity: str = "w_norm",
    rel: bool = True,
    show_pgd: bool = True,
    legend: bool = True,
    title: str | None = None,
) -> Axes:
    """One panel of a :class:`landscape.linear.LinearSweep` against eps (or eps/eps*).

    Args:
        sweep: the sweep result.
        ax: matplotlib axis (a new one if None).
        quantity: ``"w_norm"``, ``"w_dual_norm"``, ``"error"`` (clean and robust,
            train and test, with the majority rate), ``"dist_init"`` or
            ``"robust_loss"``.
        rel: x axis ``eps / eps*`` (else eps).
        show_pgd: overlay the PGD-trained points.
        legend: draw a legend.
        title: panel title (default: the sweep's label).

    Returns:
        The axis.
    """
    if quantity not in _QUANTITIES:
        raise ValueError(
            f"quantity must be one of {sorted(_QUANTITIES)}, got {quantity!r}"
        )

    ax = new_axes(ax)
    scale = sweep.eps_star if rel and sweep.eps_star > 0 else 1.0
    xs = np.asarray(sweep.eps) / scale
    px = np.asarray(sweep.pgd_eps) / scale
    has_pgd = show_pgd and px.size > 0
    with paper_style():
        if quantity == "error":
            ax.plot(xs, sweep.clean_error, color="tab:blue", label="clean (train)")
            ax.plot(xs, sweep.robust_error, color="tab:red", label="robust (train)")
            if np.isfinite(np.asarray(sweep.test_clean_error, float)).any():
                for vals, color, what in (
                    (sweep.test_clean_error, "tab:blue", "clean"),
                    (sweep.test_robust_error, "tab:red", "robust"),
                ):
                    ax.plot(
                        xs, vals, color=color, ls="-.", lw=1.0, label=f"{what} (test)"
                    )
            ax.axhline(
                sweep.majority_error if sweep.bias else 0.5,
                color="0.5",
                lw=0.8,
                label="constant classifier",
            )
            if has_pgd:
                ax.plot(
                    px,
                    sweep.pgd_clean_error,
                    "o",
                    mfc="none",
                    color="tab:blue",
                    label="PGD-AT clean",
                )
                ax.plot(
                    px,
                    sweep.pgd_robust_error,
                    "s",
                    mfc="none",
                    color="tab:red",
                    label="PGD-AT robust",
                )
            ax.set_ylim(-0.04, 1.06)  # room for a marker at 0 or 1 (none clipped)
        else:
            ax.plot(
                xs, getattr(sweep, quantity), color="tab:green", label="closed form"
            )
            pgd_name = {
                "w_norm": "pgd_w_norm",
                "dist_init": "pgd_dist_init",
                "robust_loss": "pgd_robust_loss",
            }.get(quantity)
            if has_pgd and pgd_name is not None:
                ax.plot(
                    px,
                    getattr(sweep, pgd_name),
                    "o",
                    mfc="none",
                    color="k",
                    label="PGD-AT",
                )
            if quantity == "robust_loss":
                ax.axhline(np.log(2.0), color="0.5", lw=0.8, label=r"$\log 2$")
        _mark(ax, sweep, rel)
        ax.set_xlabel(r"$\epsilon / \epsilon^*$" if rel else r"$\epsilon$")
        ax.set_ylabel(_QUANTITIES[quantity])
        if title is None:
            title = sweep.label
        if title:
            ax.set_title(title)
        if legend:
            _legend(ax, frameon=False, fontsize=6)
    return ax


def plot_linear_sweeps(
    sweeps: Sequence[LinearSweep],
    axes: np.ndarray | None = None,
    *,
    quantities: tuple[str, ...] = ("w_norm", "error", "dist_init"),
    rel: bool = True,
) -> np.ndarray:
    """A grid of panels: one row per sweep, one column per quantity (figure 1).

    Args:
        sweeps: a sequence of :class:`landscape.linear.LinearSweep`.
        axes: an array of axes of shape ``(len(sweeps), len(quantities))`` or None.
        quantities: the columns (see :func:`plot_linear_sweep`).
        rel: x axis ``eps / eps*``.

    Returns:
        The 2-D array of axes.
    """
    import matplotlib.pyplot as plt

    sweeps = list(sweeps)
    if axes is None:
        with paper_style():
            _, axes = plt.subplots(
                len(sweeps),
                len(quantities),
                figsize=(3.0 * len(quantities), 2.3 * len(sweeps)),
                squeeze=False,
            )
    axes = np.asarray(axes).reshape(len(sweeps), len(quantities))
    for i, sw in enumerate(sweeps):
        for j, q in enumerate(quantities):
            plot_linear_sweep(
                sw,
                axes[i, j],
                quantity=q,
                rel=rel,
                legend=(i == 0),
                title=f"{sw.label}" if j == 0 else "",
            )
    return axes

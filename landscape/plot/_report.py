"""The composite figures of ``landscape.report``: curvature and scattering panels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure

from ._curvature import plot_density, plot_eigenvalues
from ._scatter import plot_excess_vs_eps, plot_ratio_vs_scale
from ._style import subplots

__all__ = ["curvature_figure", "scattering_figure"]


def curvature_figure(tops: Mapping[str, Any], densities: Mapping[str, Any]) -> Figure:
    """Top Hessian eigenvalues (left) and spectral densities (right), one line per
    loss (e.g. ``{"clean": ..., "adversarial": ...}``).

    Args:
        tops: ``{label: Eigenpairs}``.
        densities: ``{label: Density}``.

    Returns:
        The matplotlib Figure.
    """
    fig, axes = subplots(1, 2, figsize=(8.0, 3.0))
    for i, (label, eig) in enumerate(tops.items()):
        plot_eigenvalues(eig, axes[0], label=label, color=f"C{i}")
    axes[0].set_title("top Hessian eigenvalues")
    plot_density(dict(densities), axes[1])
    axes[1].set_title("spectral density (SLQ)")
    return fig


def scattering_figure(res: Any) -> Figure:
    """Gradient-Lipschitz ratio against the scale ``s`` per eps (left) and the excess
    ``||delta g||`` as ``s -> 0`` against eps (right).

    Args:
        res: a :class:`~landscape.scattering.ScatteringResult`.

    Returns:
        The matplotlib Figure.
    """
    fig, axes = subplots(1, 2, figsize=(8.0, 3.0))
    plot_ratio_vs_scale(res, ax=axes[0])
    axes[0].set_title("gradient-Lipschitz ratio")
    if len(res.scales) > 1:
        plot_excess_vs_eps(res, ax=axes[1])
        axes[1].set_title(r"excess as $s \to 0$")
    else:
        axes[1].set_axis_off()
    return fig

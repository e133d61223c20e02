"""Shared paper styling and small helpers for every plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

__all__ = ["PAPER_STYLE", "new_axes", "savefig"]

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


def new_axes(ax=None, figsize: tuple[float, float] = (4.0, 3.0)):
    """Return ``ax`` or a fresh axis in a new figure styled with ``PAPER_STYLE``."""
    if ax is not None:
        return ax
    with plt.rc_context(PAPER_STYLE):
        fig, ax = plt.subplots(figsize=figsize)
    return ax


def savefig(fig, path: str | Path, *, close: bool = True) -> list[Path]:
    """Save ``fig`` to ``path``; a path without suffix is written as both PNG and PDF.
    Writes are atomic (temporary file then rename)."""
    from ..io import atomic_write

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

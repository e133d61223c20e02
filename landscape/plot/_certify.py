"""Plots of certified robustness: the bracket [certified, attacked] of robust accuracy
against eps (:class:`landscape.evaluate.EvalResult` from ``evaluate(...,
certify=True)``, optionally with more :class:`landscape.certify.CertifyResult`)."""

from __future__ import annotations

import numpy as np

from ._style import new_axes

__all__ = ["plot_certified"]


def plot_certified(result, ax=None, *, others: dict | None = None):
    """Robust accuracy (%) against eps: attacked (upper bound, the evaluation's pointwise
    worst case), certified (lower bound, CROWN) and the band between them, where the
    true robust accuracy lies; ``others`` adds ``{label: CertifyResult}`` lines (e.g.
    IBP). Returns the axis.

    Raises:
        ValueError: ``result`` holds no certificate (run with ``certify=True``).
    """
    if getattr(result, "certified", None) is None:
        raise ValueError("plot_certified needs evaluate(..., certify=True) results")
    ax = new_axes(ax)
    eps = np.atleast_1d(np.asarray(result.eps, dtype=float))
    order = np.argsort(eps)
    cert, att = (100 * np.asarray(v)[order] for v in result.bracket)
    eps = eps[order]
    ax.fill_between(eps, cert, att, color="C0", alpha=0.15, lw=0, label="bracket")
    ax.plot(eps, att, marker="o", color="C3", label=f"attacked ({result.preset})")
    ax.plot(eps, cert, marker="s", color="C0", label="certified (CROWN)")
    for i, (label, other) in enumerate((others or {}).items()):
        o = np.argsort(np.asarray(other.eps, dtype=float))
        ax.plot(
            np.asarray(other.eps, dtype=float)[o],
            100 * np.asarray(other.certified_accuracy)[o],
            ls="--",
            marker=".",
            color=f"C{i + 4}",
            label=f"certified ({label})",
        )
    ax.axhline(100 * result.clean_accuracy, ls=":", color="0.5", label="clean")
    sym = "$\\ell_\\infty$" if result.norm == "linf" else "$\\ell_2$"
    ax.set_xlabel(rf"$\epsilon$ ({sym})")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.legend(frameon=False, fontsize=7)
    return ax

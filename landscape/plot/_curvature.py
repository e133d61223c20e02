"""Curvature plots: top Hessian eigenvalues, spectral densities, traces.

- :func:`plot_eigenvalues`: the eigenvalues of one :class:`~landscape.hessian.Eigenpairs`.
- :func:`plot_eigenvalues_vs_eps`: top eigenvalues against the (training or attack) eps.
- :func:`plot_density`: an SLQ :class:`~landscape.hessian.Density` (log scale option).
- :func:`plot_trace`: trace estimates against eps with their confidence intervals.

Each takes results and an optional ``ax`` and returns the ax.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from ._style import legend, new_axes

__all__ = ["plot_eigenvalues", "plot_eigenvalues_vs_eps", "plot_density", "plot_trace"]


def _values(e: Any) -> np.ndarray:
    return np.asarray(getattr(e, "eigenvalues", e), dtype=float).reshape(-1)


def plot_eigenvalues(
    eig: Any, ax: Axes | None = None, *, label: str | None = None, **kw: Any
) -> Axes:
    """Eigenvalues of one result (or array) against their index (1 = largest).

    Args:
        eig: an ``Eigenpairs`` or a 1-D array.
        ax: axis (default: a new one).
        label: legend entry.
        **kw: passed to ``ax.plot``.
    """
    ax = new_axes(ax)
    v = _values(eig)
    kw.setdefault("marker", "o")
    ax.plot(np.arange(1, len(v) + 1), v, label=label, **kw)
    ax.set_xlabel("index")
    ax.set_ylabel("Hessian eigenvalue")
    if label:
        legend(ax)
    return ax


def plot_eigenvalues_vs_eps(
    eps: Sequence[float],
    eigs: Sequence[Any] | np.ndarray,
    ax: Axes | None = None,
    *,
    num: int | None = None,
    log: bool = False,
    label: str | None = None,
    xlabel: str = r"training $\epsilon$",
    **kw: Any,
):
    """Top Hessian eigenvalues (one line per index) against eps.

    Args:
        eps: the x values.
        eigs: one ``Eigenpairs`` (or array of eigenvalues) per eps, or an array
            ``(len(eps), num)``.
        ax: axis (default: a new one).
        num: draw the first ``num`` eigenvalues (default all).
        log: logarithmic y axis (only positive values are shown).
        label: prefix of the legend entries.
        xlabel: x-axis label.
        **kw: passed to ``ax.plot``.
    """
    ax = new_axes(ax)
    rows = [_values(e) for e in eigs]
    kmax = min(len(r) for r in rows) if num is None else num
    vals = np.array([r[:kmax] for r in rows])
    eps = np.asarray(eps, dtype=float)
    order = np.argsort(eps)
    kw.setdefault("marker", "o")
    for i in range(kmax):
        lab = f"{label + ' ' if label else ''}$\\lambda_{{{i + 1}}}$"
        alpha = 1.0 if i == 0 else max(0.35, 1.0 - 0.15 * i)
        ax.plot(eps[order], vals[order, i], label=lab, alpha=alpha, **kw)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("top Hessian eigenvalues")
    legend(ax, fontsize="small")
    return ax


def plot_density(
    dens: Any,
    ax: Axes | None = None,
    *,
    log: bool = True,
    floor: float = 1e-8,
    label: str | None = None,
    **kw: Any,
):
    """Spectral density estimate (SLQ) against the eigenvalue.

    Args:
        dens: a ``Density`` (``grid``, ``density``) or a dict ``{label: Density}``.
        ax: axis (default: a new one).
        log: logarithmic density axis (the usual view: a bulk near 0 and outliers).
        floor: values below this are clipped on the log axis.
        label: legend entry (single density).
        **kw: passed to ``ax.plot``.
    """
    ax = new_axes(ax)
    items = dens.items() if isinstance(dens, Mapping) else [(label, dens)]
    for lab, d in items:
        y = np.asarray(d.density, dtype=float)
        if log:
            y = np.maximum(y, floor)
        ax.plot(np.asarray(d.grid), y, label=lab, **kw)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (log)" if log else "density")
    if any(lab for lab, _ in items):
        legend(ax, fontsize="small")
    return ax


def plot_trace(
    eps: Sequence[float],
    traces: Sequence[Any],
    ax: Axes | None = None,
    *,
    label: str | None = None,
    xlabel: str = r"training $\epsilon$",
    **kw: Any,
):
    """Trace estimates against eps with their confidence intervals as error bars.

    Args:
        eps: the x values.
        traces: one ``TraceEstimate`` per eps (``estimate``, ``ci_low``, ``ci_high``).
        ax: axis (default: a new one).
        label: legend entry.
        xlabel: x-axis label.
        **kw: passed to ``ax.errorbar``.
    """
    ax = new_axes(ax)
    est = np.array([t.estimate for t in traces], dtype=float)
    lo = np.array([t.ci_low for t in traces], dtype=float)
    hi = np.array([t.ci_high for t in traces], dtype=float)
    kw.setdefault("marker", "o")
    kw.setdefault("capsize", 3)
    ax.errorbar(
        np.asarray(eps, dtype=float), est, yerr=[est - lo, hi - est], label=label, **kw
    )
    ax.set_xlabel(xlabel)
    conf = getattr(traces[0], "confidence", 0.95) if len(traces) else 0.95
    ax.set_ylabel(f"Hessian trace ({100 * conf:.0f}% CI)")
    if label:
        legend(ax)
    return ax

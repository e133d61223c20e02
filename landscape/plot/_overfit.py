"""Robust overfitting and the landscape along a run (issue 26).

- :func:`plot_band`: the mean over seeds (rows) as a line, +- one standard deviation
  as a band.
- :func:`plot_robust_overfitting`: robust accuracy on the fixed training subset, the
  validation split and the test data per epoch (``train_robust_acc``,
  ``val_robust_acc``, ``test_robust_acc``), the best-by-validation epoch marked.
- :func:`plot_tracked`: the landscape metrics recorded along the run
  (``Runtime(track=Tracking(...))``: ``lam_max_*``, ``trace_*``, ``grad_norm_*``,
  ``sharp_*``) at the tracked epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from ._curves import _metrics, _one, _runs
from ._style import legend, new_axes

__all__ = ["plot_band", "plot_robust_overfitting", "plot_tracked", "tracked_keys"]

_SPLITS = (("train", ":"), ("val", "--"), ("test", "-"))


def plot_band(ax, x, ys, *, scale: float = 1.0, label: str | None = None, **kw):
    """Mean over the rows of ``ys`` (seeds) against ``x`` as a line, +- one sample
    standard deviation as a band (none for one row); values times ``scale``."""
    ys = np.atleast_2d(np.asarray(ys, float)) * scale
    m = np.nanmean(ys, axis=0)
    sd = np.nanstd(ys, axis=0, ddof=1) if ys.shape[0] > 1 else np.zeros_like(m)
    (line,) = ax.plot(x, m, label=label, **kw)
    ax.fill_between(x, m - sd, m + sd, color=line.get_color(), alpha=0.2, lw=0)
    return ax


def plot_robust_overfitting(
    result: Any, ax: Axes | None = None, *, percent: bool = True
):
    """Robust accuracy per epoch on train (dotted), validation (dashed) and test
    (solid), one colour per run; a marker at the best validation epoch (``best.pt``).

    Args:
        result: a ``TrainResult``, a run folder, or ``{label: result}`` / a list.
        ax: axis to draw on.
        percent: accuracies in percent.
    """
    ax = new_axes(ax)
    scale = 100.0 if percent else 1.0
    for i, (name, r) in enumerate(_runs(result).items()):
        m = _metrics(r)
        for split, ls in _SPLITS:
            key = f"{split}_robust_acc"
            if key in m and np.isfinite(m[key].astype(float)).any():
                label = ": ".join(p for p in (name, split) if p)
                ax.plot(m["epoch"], scale * m[key].astype(float), color=f"C{i % 10}",
                        ls=ls, label=label)  # fmt: skip
        summary = getattr(_one(r), "summary", None) or {}
        best = summary.get("best_epoch")
        if best is not None and "test_robust_acc" in m:
            j = int(np.flatnonzero(m["epoch"] == best)[0])
            ax.plot(best, scale * float(m["test_robust_acc"][j]), marker="*",
                    color=f"C{i % 10}", ms=9, ls="none")  # fmt: skip
    ax.set_xlabel("epoch")
    ax.set_ylabel("robust accuracy (%)" if percent else "robust accuracy")
    legend(ax)
    return ax


def tracked_keys(metrics: dict) -> list[str]:
    """The tracked landscape columns of a run's metrics (``lam_max_*``, ``trace_*``,
    ``sharp_*``; not the Lanczos residuals) that hold a finite value."""
    prefixes = ("lam_max_", "trace_", "sharp_")
    return [
        k
        for k in sorted(metrics)
        if k.startswith(prefixes)
        and "residual" not in k
        and np.isfinite(np.asarray(metrics[k], float)).any()
    ]


def plot_tracked(
    result: Any,
    ax: Axes | None = None,
    *,
    keys: Sequence[str] | None = None,
    log: bool = False,
):
    """Tracked landscape metrics against the epoch (only the tracked epochs), one
    colour per run, one marker per metric.

    Raises:
        KeyError: a key the run did not log.
    """
    ax = new_axes(ax)
    markers = "o^sDvx+"
    for i, (name, r) in enumerate(_runs(result).items()):
        m = _metrics(r)
        ks = tracked_keys(m) if keys is None else list(keys)
        for j, key in enumerate(ks):
            if key not in m:
                raise KeyError(
                    f"run {name or 0} has no metric {key!r}; have {sorted(m)}"
                )
            y = m[key].astype(float)
            ok = np.isfinite(y)
            ax.plot(m["epoch"][ok], y[ok], color=f"C{i % 10}",
                    marker=markers[j % len(markers)], ms=3,
                    label=": ".join(p for p in (name, key) if p))  # fmt: skip
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("landscape metric")
    legend(ax)
    return ax

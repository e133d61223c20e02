"""Schedules and learning curves.

- :func:`plot_schedule`: an eps or lr schedule against the (fractional) epoch.
- :func:`plot_eps_lr`: a training config's eps schedule with its lr on a twin axis.
- :func:`plot_learning_curves`: metric columns of one or several runs against epochs
  (train / test, clean / robust accuracy or loss) on shared axes.
- :func:`plot_distance_from_init`: ``||w - w0||`` per epoch for one or several runs.
- :func:`plot_run`: a 2x2 summary of a run (accuracy, loss, eps & lr, distance).

Each takes a result (a :class:`landscape.train.TrainResult`, a run folder, or a dict
``{label: result}`` for several runs) and an optional ``ax``, and returns the ax.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from ._style import legend, new_axes

__all__ = [
    "plot_schedule",
    "plot_eps_lr",
    "plot_learning_curves",
    "plot_distance_from_init",
    "plot_run",
]

_LABELS = {
    "train_acc": "train (adv.)",
    "test_clean_acc": "test clean",
    "test_robust_acc": "test robust (target eps)",
    "test_robust_acc_sched": "test robust (scheduled eps)",
    "train_loss": "train loss (adv.)",
    "test_clean_loss": "test clean loss",
}


def plot_schedule(
    schedule: Any,
    ax: Axes | None = None,
    *,
    num: int = 400,
    end: float | None = None,
    label: str | None = None,
    **kw: Any,
):
    """Draw a schedule (anything with ``sample(num, end=...)``, e.g. from
    :func:`landscape.schedules.make_schedule`) against the epoch.

    Args:
        schedule: the schedule.
        ax: axis to draw on (default: a new one).
        num: number of sample points (period restarts show as steep drops).
        end: last epoch (default the schedule's horizon).
        label: legend entry.
        **kw: passed to ``ax.plot``.
    """
    ax = new_axes(ax)
    ts, vs = schedule.sample(num, end=end)
    ax.plot(ts, vs, label=label, **kw)
    ax.set_xlabel("epoch")
    if label:
        legend(ax)
    return ax


def plot_eps_lr(config: Any, ax=None, *, num: int = 400):
    """A :class:`landscape.train.TrainConfig`'s eps schedule (left axis) and learning
    rate (right, dashed). Returns the eps axis; the lr axis is ``ax.lr_axis``."""
    ax = new_axes(ax)
    end = float(config.epochs)
    plot_schedule(config.eps_fn(), ax, num=num, end=end, color="C0")
    ax.set_ylabel("eps", color="C0")
    ax2 = ax.twinx()
    ts, vs = config.lr_fn().sample(num, end=end)
    ax2.plot(ts, vs, color="C3", linestyle="--")
    ax2.set_ylabel("learning rate", color="C3")
    ax.lr_axis = ax2
    return ax


def _runs(result: Any) -> dict[str, Any]:
    """``{label: TrainResult}`` from a result, a run folder, or a mapping / list of them."""
    if isinstance(result, Mapping) and "metrics" not in result:
        return {str(k): _one(v) for k, v in result.items()}
    if isinstance(result, Sequence) and not isinstance(result, (str, bytes)):
        out = {}
        for i, r in enumerate(result):
            one = _one(r)
            out[str(getattr(one, "run_dir", None) or i)] = one
        return out
    return {"": _one(result)}


def _one(r: Any) -> Any:
    if isinstance(r, (str, os.PathLike)):
        from ..train import load_run

        return load_run(r)
    return r


def _metrics(r: Any) -> dict[str, np.ndarray]:
    m = r["metrics"] if isinstance(r, Mapping) else r.metrics
    return {k: np.asarray(v) for k, v in m.items()}


def plot_learning_curves(
    result: Any,
    ax: Axes | None = None,
    *,
    keys: Sequence[str] = ("train_acc", "test_clean_acc", "test_robust_acc"),
    percent: bool = True,
):
    """Per-epoch metric columns of one run, or of several runs on shared axes (one
    colour per run, one line style per metric).

    Args:
        result: a ``TrainResult``, a run folder, or ``{label: result}`` / a list.
        ax: axis to draw on.
        keys: metric columns (``train_acc``, ``test_clean_acc``, ``test_robust_acc``,
            ``test_robust_acc_sched``, ``train_loss``, ``test_clean_loss``, ...).
        percent: show accuracies (keys ending in ``_acc``) in percent.

    Raises:
        KeyError: a key that a run did not log (the message lists the logged ones).
    """
    ax = new_axes(ax)
    runs = _runs(result)
    styles = ["-", "--", ":", "-."]
    for i, (name, r) in enumerate(runs.items()):
        m = _metrics(r)
        for j, key in enumerate(keys):
            if key not in m:
                raise KeyError(
                    f"run {name or 0} has no metric {key!r}; have {sorted(m)}"
                )
            y = m[key].astype(float)
            if percent and key.endswith("_acc"):
                y = 100 * y
            parts = [p for p in (name, _LABELS.get(key, key)) if p]
            ax.plot(
                m["epoch"],
                y,
                color=f"C{i % 10}",
                linestyle=styles[j % 4],
                label=": ".join(parts),
            )
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs 1, 2 (not 1.5)
    ax.set_ylabel(_ylabel(keys, percent))
    legend(ax)
    return ax


def _ylabel(keys: Sequence[str], percent: bool) -> str:
    """What the y axis shows: ``accuracy (%)``, ``loss``, or the metric names."""
    kinds: list[str] = []
    for k in keys:
        if k.endswith("_acc"):
            kind = "accuracy (%)" if percent else "accuracy"
        elif k.endswith("_loss"):
            kind = "loss"
        else:
            kind = k.replace("_", " ")
        if kind not in kinds:
            kinds.append(kind)
    return " / ".join(kinds)


def plot_distance_from_init(result: Any, ax=None):
    """``||w - w0||`` after each epoch for one or several runs (Liu et al., Fig. 2:
    large budgets keep the weights close to the initialisation)."""
    ax = new_axes(ax)
    for i, (name, r) in enumerate(_runs(result).items()):
        m = _metrics(r)
        ax.plot(m["epoch"], m["dist_init"], color=f"C{i % 10}", label=name or None)
    ax.set_xlabel("epoch")
    ax.set_ylabel(r"$\|w - w_0\|$")
    if len(_runs(result)) > 1:
        legend(ax)
    return ax


def plot_run(result: Any, axes=None):
    """2x2 summary of one run: accuracies, losses, eps and lr per epoch, distance
    from init; 2x3 when the run logged robust overfitting (a validation split or a
    fixed training subset: :func:`plot_robust_overfitting`) or landscape metrics
    (:func:`plot_tracked`). Returns the axes array."""
    import matplotlib.pyplot as plt

    from ._overfit import plot_robust_overfitting, plot_tracked, tracked_keys
    from ._style import paper_style

    r = _one(result)
    m = _metrics(r)
    overfit = any(
        k in m and np.isfinite(m[k].astype(float)).any()
        for k in ("val_robust_acc", "train_robust_acc")
    )
    tracked = tracked_keys(m)
    if axes is None:
        wide = overfit or bool(tracked)
        with paper_style():
            _, axes = plt.subplots(2, 3 if wide else 2, figsize=(12 if wide else 8, 6))
    axes = np.asarray(axes)
    if axes.shape[-1] == 3:
        if overfit:
            plot_robust_overfitting(r, axes[0, 2])
        if tracked:
            plot_tracked(r, axes[1, 2])
        axes = axes[:, :2]
    plot_learning_curves(r, axes.flat[0])
    plot_learning_curves(r, axes.flat[1], keys=("train_loss", "test_clean_loss"))
    ax = axes.flat[2]
    ax.plot(m["epoch"], m["eps"], color="C0", marker=".", label="eps (last batch)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("eps", color="C0")
    ax2 = ax.twinx()
    ax2.plot(m["epoch"], m["lr"], color="C3", linestyle="--")
    ax2.set_ylabel("learning rate", color="C3")
    plot_distance_from_init(r, axes.flat[3])
    return axes

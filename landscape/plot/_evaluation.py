"""Plots of robust evaluations (:class:`landscape.evaluate.EvalResult`): robust accuracy
against eps (per attack of the sequence and overall), per-attack bars, and a combined
figure with the table of gradient-masking checks."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ._style import legend, new_axes, paper_style

__all__ = ["plot_robust_accuracy", "plot_attack_bars", "evaluation_figure"]


def plot_robust_accuracy(
    result, ax=None, *, per_attack: bool = True, label: str | None = None
):
    """Robust accuracy (%) against eps: overall (thick), after each attack of the
    sequence (thin, cumulative) and the clean accuracy (dashed). Returns the axis."""
    ax = new_axes(ax)
    eps = np.atleast_1d(np.asarray(result.eps, dtype=float))
    order = np.argsort(eps)
    eps = eps[order]
    if per_attack:
        for name, acc in result.per_attack_accuracy().items():
            ax.plot(
                eps,
                100 * np.asarray(acc)[order],
                marker=".",
                lw=0.9,
                alpha=0.8,
                label=f"after {name}",
            )
    ax.plot(
        eps,
        100 * result.robust_accuracy[order],
        marker="o",
        lw=2.0,
        color="k",
        label=label or f"robust ({result.preset})",
    )
    ax.axhline(100 * result.clean_accuracy, ls="--", color="0.5", label="clean")
    ax.set_xlabel(
        r"$\epsilon$ ("
        + ("$\\ell_\\infty$" if result.norm == "linf" else "$\\ell_2$")
        + ")"
    )
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    legend(ax, frameon=False)
    return ax


def plot_attack_bars(result, ax=None):
    """Grouped bars: robust accuracy (%) after each attack of the sequence, one group
    per eps, with the number of points each attack broke first written on top."""
    ax = new_axes(ax)
    per = result.per_attack_accuracy()
    counts = result.broken_counts()
    names = list(per)
    eps = np.atleast_1d(np.asarray(result.eps, dtype=float))
    width = 0.8 / max(len(names), 1)
    xs = np.arange(len(eps))
    for i, name in enumerate(names):
        vals = 100 * np.asarray(per[name])
        bars = ax.bar(xs + (i - (len(names) - 1) / 2) * width, vals, width, label=name)
        for b, c in zip(bars, np.asarray(counts[name])):
            ax.annotate(
                f"-{int(c)}",
                (b.get_x() + b.get_width() / 2, b.get_height()),
                ha="center",
                va="bottom",
                fontsize=6,
            )
    ax.set_xticks(xs, [f"{e:.3g}" for e in eps])
    ax.set_xlabel(r"$\epsilon$")
    ax.set_ylabel("robust accuracy after attack (%)")
    ax.set_ylim(0, 105)
    legend(ax, frameon=False, fontsize=7, title="-n: points it broke first",
           title_fontsize=6)  # fmt: skip
    return ax


def evaluation_figure(results: Sequence, *, title: str | None = None):
    """One figure: for each result (e.g. L-inf and L2) its eps curve and its bars, and a
    text panel with the gradient-masking checks. Returns the matplotlib Figure."""
    results = list(results) if isinstance(results, (list, tuple)) else [results]
    with paper_style():
        fig, axes = plt.subplots(
            len(results) + 1,
            2,
            figsize=(8, 3 * len(results) + 1.6),
            gridspec_kw={"height_ratios": [3] * len(results) + [1.6]},
            squeeze=False,
        )
    for r, res in enumerate(results):
        plot_robust_accuracy(res, axes[r, 0])
        axes[r, 0].set_title(f"{res.preset}, {res.norm}")
        plot_attack_bars(res, axes[r, 1])
    gs = axes[-1, 0].get_gridspec()
    for a in axes[-1]:
        a.remove()
    tax = fig.add_subplot(gs[-1, :])
    tax.axis("off")
    lines = []
    for res in results:
        for name, c in (res.checks or {}).items():
            tag = {True: "PASS", False: "FAIL"}.get(c.get("passed"), "n/a")
            lines.append(f"[{res.norm}] {tag:4s} {name}: {c.get('detail', '')}")
    tax.text(
        0,
        1,
        "\n".join(lines) or "no checks run",
        va="top",
        family="monospace",
        fontsize=6,
    )
    if title:
        fig.suptitle(title)
    return fig

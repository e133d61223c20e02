"""Plots of gradient-scattering statistics (:mod:`landscape.scattering`).

Every function takes a result (or a ``{label: result}`` dict) and an optional axis and
returns the axis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.axes import Axes

from ._style import legend, new_axes

if TYPE_CHECKING:
    from ..scattering import GradNormStats, ScatteringResult, TrainingGradNorms

__all__ = [
    "plot_scattering_distribution",
    "plot_excess_vs_eps",
    "plot_ratio_vs_scale",
    "plot_perturbation_cosine",
    "plot_gradient_scatter",
    "plot_cosine_map",
    "plot_gradnorm_distribution",
    "plot_training_gradnorms",
]

_LABELS = {
    "ratio": r"$\|\Delta g\| / \|\Delta w\|$",
    "cosine": r"$\cos(g(w), g(w + s v))$",
    "grad_diff": r"$\|\Delta g\|$",
    "pert_cosine": r"$\cos(\delta(w), \delta(w + s v))$",
    "sign_cosine": r"$\cos(\mathrm{sign}\,\delta(w), \mathrm{sign}\,\delta(w+sv))$",
}


def _colors(n: int) -> list:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("viridis")
    return [cmap(i / max(n - 1, 1) * 0.9) for i in range(n)]


def _as_dict(results: Any) -> dict[str, Any]:
    if isinstance(results, Mapping):
        return {str(k): v for k, v in results.items()}
    return {"": results}


def plot_scattering_distribution(
    res: ScatteringResult,
    *,
    stat: str = "ratio",
    scale_index: int = 0,
    kind: str = "violin",
    log: bool | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Distribution over directions and mini-batches of one statistic, per eps.

    Args:
        res: a :class:`~landscape.scattering.ScatteringResult`.
        stat: ``"ratio"``, ``"cosine"``, ``"grad_diff"``, ``"pert_cosine"`` or
            ``"sign_cosine"``.
        scale_index: which scale ``s`` (default the smallest, index 0).
        kind: ``"violin"`` (one violin per eps) or ``"hist"`` (overlaid histograms).
        log: log axis for the values (default: True for ratio/grad_diff).
        ax: axis to draw on.

    Returns:
        The axis.
    """
    if stat not in _LABELS:
        raise ValueError(f"stat must be one of {sorted(_LABELS)}, got {stat!r}")
    ax = new_axes(ax)
    vals = np.asarray(getattr(res, stat))[:, :, scale_index, :]
    groups = [v.reshape(-1) for v in vals]
    if log is None:
        log = stat in ("ratio", "grad_diff")
    if log:
        groups = [np.log10(np.clip(g, 1e-300, None)) for g in groups]
    labels = [f"{e:g}" for e in res.eps]
    colors = _colors(len(groups))
    name = _LABELS[stat] if not log else r"$\log_{10}$ " + _LABELS[stat]
    if kind == "violin":
        parts = ax.violinplot(groups, showmedians=True)
        for body, c in zip(parts["bodies"], colors):
            body.set_facecolor(c)
            body.set_alpha(0.6)
        ax.set_xticks(range(1, len(groups) + 1), labels)
        ax.set_xlabel(r"$\epsilon$")
        ax.set_ylabel(name)
    elif kind == "hist":
        lo = min(float(g.min()) for g in groups)
        hi = max(float(g.max()) for g in groups)
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-12, 30)
        for g, c, lab in zip(groups, colors, labels):
            ax.hist(g, bins=bins, color=c, alpha=0.5, label=rf"$\epsilon$={lab}")
        ax.set_xlabel(name)
        ax.set_ylabel("count")
        legend(ax)
    else:
        raise ValueError(f"kind must be 'violin' or 'hist', got {kind!r}")
    ax.set_title(f"s = {res.scales[scale_index]:g}")
    return ax


def plot_excess_vs_eps(
    results: ScatteringResult | Mapping[str, ScatteringResult],
    *,
    max_scale: float | None = None,
    fit: bool | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Excess ``||delta g||`` as ``s -> 0`` (the fitted intercept) against eps, with the
    spread over directions and batches (25-75 % band) and a least-squares line
    ``a + c eps`` (Proposition 2: ``2 eps L_wx``, linear in eps; ``a`` collects what a
    ReLU network scatters even at eps = 0).

    A straight line only summarises points that grow with eps. By default
    (``fit=None``) the line is drawn only when the medians increase monotonically in
    eps; otherwise the legend says that the points are not monotone and no line is
    drawn. ``fit=True`` draws it anyway (labelled "not monotone" where so).

    Args:
        results: one result or ``{label: result}`` (e.g. ReLU and its smooth twin).
        max_scale: fit the intercept on scales ``<= max_scale`` only.
        fit: draw the linear fit ``excess = a + c eps``: ``None`` (default) when the
            medians are monotone in eps, ``True`` always, ``False`` never.
        ax: axis.

    Returns:
        The axis.
    """
    ax = new_axes(ax)
    items = _as_dict(results)
    for (label, res), c in zip(items.items(), _colors(len(items) + 1)):
        exc = res.excess(max_scale=max_scale).reshape(len(res.eps), -1)
        med = np.median(exc, axis=1)
        q1, q3 = np.quantile(exc, [0.25, 0.75], axis=1)
        e = np.asarray(res.eps, dtype=float)
        monotone = bool(np.all(np.diff(med[np.argsort(e)]) >= 0))
        name = f"{label}: " if label else ""
        note = "" if monotone or len(e) < 3 else " (not monotone in eps)"
        ax.plot(e, med, "o-", color=c, label=(label or "median") + note)
        ax.fill_between(e, q1, q3, color=c, alpha=0.2)
        if len(e) > 1 and (fit or (fit is None and monotone)):
            slope, icpt = np.polyfit(e, med, 1)
            ax.plot(
                e,
                icpt + slope * e,
                "--",
                color=c,
                lw=1,
                label=f"{name}fit {icpt:.2g} + {slope:.3g} eps{note}",
            )
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel(r"$\epsilon$")
    ax.set_ylabel(r"excess $\|\Delta g\|$ as $s \to 0$")
    legend(ax)
    return ax


def plot_ratio_vs_scale(res: ScatteringResult, *, stat: str = "ratio", ax=None):
    """Median (and 25-75 % band) of ``stat`` against the scale ``s``, one line per eps
    (log-log). For a smooth model at eps = 0 the ratio is flat (``||H v||``); a ratio
    that grows as ``s -> 0`` is gradient scattering."""
    ax = new_axes(ax)
    vals = np.asarray(getattr(res, stat))
    for e, c in zip(range(len(res.eps)), _colors(len(res.eps))):
        v = np.moveaxis(vals[e], 1, 0).reshape(len(res.scales), -1)
        med = np.median(v, axis=1)
        q1, q3 = np.quantile(v, [0.25, 0.75], axis=1)
        ax.plot(res.scales, med, "o-", color=c, label=rf"$\epsilon$={res.eps[e]:g}")
        ax.fill_between(res.scales, q1, q3, color=c, alpha=0.2)
    ax.set_xscale("log")
    if stat in ("ratio", "grad_diff"):
        ax.set_yscale("log")
    ax.set_xlabel("scale s")
    ax.set_ylabel(_LABELS.get(stat, stat))
    legend(ax)
    return ax


def plot_perturbation_cosine(res: ScatteringResult, *, signs: bool = False, ax=None):
    """How much the adversarial perturbations move: mean cosine between ``x_adv - x``
    at ``w`` and at ``w + s v`` (or of their signs) against ``s``, per eps."""
    ax = plot_ratio_vs_scale(res, stat="sign_cosine" if signs else "pert_cosine", ax=ax)
    ax.set_yscale("linear")
    return ax


def plot_gradient_scatter(
    res: ScatteringResult,
    *,
    scale_index: int | None = None,
    ax: Axes | None = None,
) -> Axes:
    """The scattering picture: every gradient ``g(w + s v)`` drawn relative to
    ``g(w)``, as (component along ``g(w)``, component orthogonal to it) divided by
    ``||g(w)||``. A smooth loss keeps the cloud at (1, 0); scattering spreads it, more
    for larger eps.

    Args:
        res: a scattering result.
        scale_index: one scale, or None for all (marker size grows with ``s``).
        ax: axis.

    Returns:
        The axis.
    """
    ax = new_axes(ax, figsize=(4.0, 3.4))
    idx = range(len(res.scales)) if scale_index is None else [scale_index]
    g0 = np.asarray(res.grad_norm)[:, None, None, :]
    rel = np.asarray(res.grad_norm_pert) / np.where(g0 > 0, g0, 1.0)
    cos = np.clip(np.asarray(res.cosine), -1.0, 1.0)
    par, perp = rel * cos, rel * np.sqrt(1 - cos**2)
    for e, c in zip(range(len(res.eps)), _colors(len(res.eps))):
        for k, si in enumerate(idx):
            ax.scatter(
                par[e, :, si].ravel(),
                perp[e, :, si].ravel(),
                s=6 + 6 * k,
                color=c,
                alpha=0.6,
                edgecolors="none",
                label=rf"$\epsilon$={res.eps[e]:g}" if k == 0 else None,
            )
    ax.scatter([1.0], [0.0], marker="x", color="k", zorder=5, label=r"$g(w)$")
    ax.set_xlabel(r"component along $g(w)$ / $\|g(w)\|$")
    ax.set_ylabel(r"orthogonal component / $\|g(w)\|$")
    legend(ax, fontsize=7)
    return ax


def plot_cosine_map(res: ScatteringResult, *, stat: str = "cosine", ax=None):
    """Heat map of ``1 - mean(stat)`` over eps (rows) and scales (columns), log colour
    scale: the per-step decorrelation of gradients (or perturbations)."""
    from matplotlib.colors import LogNorm

    ax = new_axes(ax)
    m = 1.0 - np.asarray(getattr(res, stat)).mean(axis=(1, 3))
    m = np.clip(m, 1e-12, None)
    im = ax.imshow(
        m,
        aspect="auto",
        origin="lower",
        cmap="magma",
        norm=LogNorm(vmin=m.min(), vmax=max(m.max(), m.min() * 10)),
    )
    ax.set_xticks(range(len(res.scales)), [f"{s:g}" for s in res.scales])
    ax.set_yticks(range(len(res.eps)), [f"{e:g}" for e in res.eps])
    ax.set_xlabel("scale s")
    ax.set_ylabel(r"$\epsilon$")
    ax.grid(False)
    ax.figure.colorbar(im, ax=ax, label=f"1 - mean {stat}")
    return ax


def plot_gradnorm_distribution(
    stats: GradNormStats, *, kind: str = "violin", log: bool = True, ax=None
):
    """Per-example gradient norms of the adversarial loss, one violin (or histogram)
    per eps."""
    ax = new_axes(ax)
    groups = [np.asarray(v).reshape(-1) for v in stats.per_example]
    if log:
        groups = [np.log10(np.clip(g, 1e-300, None)) for g in groups]
    name = (r"$\log_{10}$ " if log else "") + r"$\|\nabla_w \ell(x_i^{adv})\|$"
    labels = [f"{e:g}" for e in stats.eps]
    if kind == "violin":
        parts = ax.violinplot(groups, showmedians=True)
        for body, c in zip(parts["bodies"], _colors(len(groups))):
            body.set_facecolor(c)
        ax.set_xticks(range(1, len(groups) + 1), labels)
        ax.set_xlabel(r"$\epsilon$")
        ax.set_ylabel(name)
    elif kind == "hist":
        for g, c, lab in zip(groups, _colors(len(groups)), labels):
            ax.hist(g, bins=30, color=c, alpha=0.5, label=rf"$\epsilon$={lab}")
        ax.set_xlabel(name)
        legend(ax)
    else:
        raise ValueError(f"kind must be 'violin' or 'hist', got {kind!r}")
    return ax


def plot_training_gradnorms(
    runs: TrainingGradNorms | Mapping[Any, TrainingGradNorms],
    *,
    key: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Gradient norm against epoch, one line per run (label: the dict key, e.g. the
    training eps, else the run's target eps).

    Args:
        runs: one :class:`~landscape.scattering.TrainingGradNorms` or a dict of them.
        key: which logged metric (default: the first, preferring ``grad_norm``).
        ax: axis.

    Returns:
        The axis.
    """
    ax = new_axes(ax)
    items = runs.items() if isinstance(runs, Mapping) else [(None, runs)]
    items = list(items)
    for (label, t), c in zip(items, _colors(len(items))):
        k = key or next(
            (c for c in ("grad_norm", "grad_norm_mean") if c in t.values),
            sorted(t.values)[0],
        )
        if label is None:
            label = f"eps={t.target_eps:g}" if np.isfinite(t.target_eps) else k
        elif isinstance(label, float):
            label = rf"$\epsilon$={label:g}"
        ax.plot(t.epoch, t.values[k], "o-", ms=3, color=c, label=str(label))
    ax.set_xlabel("epoch")
    ax.set_ylabel("gradient norm")
    ax.set_yscale("log")
    legend(ax)
    return ax

"""The demo's figures: drawn by :mod:`landscape.plot` from the stages' results."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ._spec import runs
from ._stages import Context

__all__ = ["figures"]


def _label(tag: str) -> str:
    """A run tag as a reader's label: ``constant_eps0.2/fixed`` -> ``eps = 0.2, fixed``.

    Example:
        >>> _label("constant_eps0.2/fixed"), _label("periodic_eps0.3+ensemble")
        ('eps = 0.2, fixed', 'periodic eps = 0.3 ensemble')
    """
    text = tag.replace("constant_", "").replace("+ensemble", " ensemble")
    text = re.sub(r"eps(?=[0-9.])", "eps = ", text)
    return text.replace("_", " ").replace("/", ", ")


def figures(ctx: Context, res: dict[str, dict[str, Any]]) -> list[Path]:
    """Every figure into ``out/figures`` (PNG + PDF, one interactive HTML)."""
    from .. import plot, scattering

    cfg, figdir = ctx.cfg, ctx.out / "figures"
    const = [r for r in runs(cfg) if r.schedule == "constant"]
    eps = [r.eps for r in const]
    written: list[Path] = []

    def save(axes: Any, name: str) -> None:
        ax = axes.flat[0] if hasattr(axes, "flat") else axes
        written.extend(plot.savefig(ax.figure, figdir / name))

    train_runs = {_label(t): r for t, r in res["train"].items()}
    save(plot.plot_training_overview(train_runs), "learning_curves")
    ev = res["evaluate"]
    acc = {
        "clean": [ev[f"{r.tag}/quick@train_eps"]["clean_acc"] for r in const],
        "robust @ training eps": [
            ev[f"{r.tag}/quick@train_eps"]["robust_acc"] for r in const
        ],
        f"robust @ eps={cfg.eval_eps:g}": [
            ev[f"{r.tag}/quick@{cfg.eval_eps:g}"]["robust_acc"] for r in const
        ],
    }
    ax = plot.plot_values_vs_eps(
        eps,
        acc,
        xlabel="training eps (constant schedule)",
        ylabel="test accuracy (PGD-20)",
        ylim=(-0.02, 1.02),
    )
    save(ax, "accuracy_vs_eps")
    h = res["hessian"]
    top = {
        "clean loss": [h[r.tag]["clean"][0] for r in const],
        "adversarial loss (training eps)": [h[r.tag]["adversarial"][0] for r in const],
    }
    ax = plot.plot_values_vs_eps(
        eps, top, ylabel=r"top Hessian eigenvalue $\lambda_{max}$", log=True
    )
    save(ax, "hessian_top_eigenvalue")
    joined = scattering.concat_eps(list(res["scattering"].values()))
    save(plot.plot_scattering_overview(joined), "scattering")
    surfs = {_label(k): s for k, s in res["surface"].items()}
    # one colour scale per panel, its bar next to it: a shared (log) scale over eps
    # 0 ... 0.3 left the flat eps = 0.3 panels a single colour
    save(
        plot.plot_surfaces(
            list(surfs.values()),
            titles=list(surfs),
            log=True,
            share_scale=False,
            ncols=2,
            panel_size=(3.3, 2.6),
        ),
        "surfaces",
    )
    written.append(plot.write_html(plot.surfaces_menu(surfs), figdir / "surfaces.html"))
    return written

"""``build_report``: run the sections, draw the figures, write the page and the JSON."""

from __future__ import annotations

import dataclasses
import html
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import _batches, _finite, _utils, io, plot
from ._budget import Budget
from ._budget import budget as _budget
from ._html import page
from ._sections import SECTIONS, Context, fingerprint, first_samples, run_section

__all__ = ["Report", "build_report"]


@dataclasses.dataclass(frozen=True)
class Report:
    """Where a report went and what it found.

    Attributes:
        html: the self-contained page (``report.html``).
        json: every number (``report.json``).
        figures: ``{section: PNG path}``.
        numbers: the content of ``report.json``.
        cached: the sections loaded from the cache instead of computed.
    """

    html: Path
    json: Path
    figures: dict
    numbers: dict
    cached: tuple = ()


def _draw(name: str, results: dict, eps: float):
    if name == "accuracy":
        return plot.evaluation_figure([results["eval"]])
    if name == "curvature":
        return plot.curvature_figure(
            {"clean": results["top_clean"], "adversarial": results["top_adversarial"]},
            {
                "clean": results["density_clean"],
                "adversarial": results["density_adversarial"],
            },
        )
    if name == "surface":
        axes = plot.plot_surfaces(
            [results["clean"], results["adversarial"]],
            titles=["clean loss", f"adversarial loss (eps={eps:g}, fixed)"],
            log=bool(min(results["clean"].loss.min(), 1.0) > 0),
        )
        return axes[0].figure
    return plot.scattering_figure(results["scattering"])


def _surface_3d(results: dict, eps: float) -> str:
    fig = plot.surfaces_3d(
        [results["clean"], results["adversarial"]],
        titles=["clean loss", f"adversarial loss (eps={eps:g})"],
    )
    return fig.to_html(full_html=False, include_plotlyjs=True)


def _progress(items: Sequence[str], enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(items, desc="report", unit="section", disable=not enabled)


def _stopped(err: io.Interrupted, name: str, done: list, cache: Path) -> io.Interrupted:
    """SIGTERM / SIGINT in a section: say which, what it saved itself (a surface's
    partial file) and which sections are cached (resumable if any of it is)."""
    where = f"build_report in the {name} section" + (
        f" ({err.where})" if err.where else ""
    )
    if not done:
        return io.Interrupted(err.signal, where, resumable=err.resumable)
    return io.Interrupted(
        err.signal, f"{where}; {', '.join(done)} cached in {cache}", resumable=True
    )


def build_report(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None,
    data: Any,
    *,
    eps: float,
    out_dir: str | Path,
    test_data: Any = None,
    norm: str = "linf",
    budget: str | Budget = "quick",
    sections: Sequence[str] | None = None,
    title: str | None = None,
    description: str = "",
    generator: torch.Generator | None = None,
    progressbar: bool = False,
) -> Report:
    """Analyse a model and write one self-contained HTML report about it.

    Sections: robust accuracy with the gradient-masking checks explained, top Hessian
    eigenvalues and spectral density (clean and adversarial), a 2D clean and
    adversarial loss surface with an interactive 3D view, and gradient scattering.
    ``out_dir`` receives ``report.html`` (opens offline: images and plotly.js are
    inlined), ``report.json`` (every number), one PNG per section under ``figures/``
    and the cached results under ``cache/``. Rerunning with the same model, data and
    settings loads finished sections from the cache, so an interrupted report resumes.

    Args:
        model: a classifier returning logits (left unchanged; analysed in eval mode).
        loss_fn: ``(logits, y) -> scalar``; ``None`` means cross-entropy.
        data: training examples for the curvature, surface and scattering sections:
            an ``(x, y)`` pair of tensors or an iterable of batches (a ``DataLoader``
            streams; only the first examples the budget needs are read).
        eps: the attack budget, in input units (pixels in [0, 1]).
        out_dir: output folder.
        test_data: examples for the robust-accuracy table (default ``data``).
        norm: ``"linf"`` or ``"l2"``.
        budget: ``"quick"``, ``"standard"``, ``"thorough"`` or a
            :class:`~landscape.report.Budget`.
        sections: a subset of ``("accuracy", "curvature", "surface", "scattering")``.
        title: page title (default "landscape report").
        description: an HTML fragment about the model and data, shown at the top.
        generator: its seed seeds every section's own generator (a cached section
            does not shift the others) and is part of the cache's fingerprint, so a
            rerun resumes only with the same seed; ``None``: a seed drawn from
            torch's global RNG (:func:`landscape.seed_everything` makes it
            repeatable).
        progressbar: progress bars (tqdm) for the sections and inside them.

    Returns:
        A :class:`Report` with the paths and the numbers.

    Raises:
        ValueError: an unknown section or budget, a non-positive eps, or data that
            does not yield ``(x, y)`` batches.
    """
    b = _budget(budget)
    names = list(sections) if sections is not None else list(SECTIONS)
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    if not _utils.check_eps(eps) > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    _finite.check_model(model, name="build_report: model")
    out = io.check_writable(out_dir, folder=True, what="out_dir")
    n_train = max(b.hessian_num, b.surface_num, b.scatter_num)
    train = first_samples(data, n_train)
    test = first_samples(data if test_data is None else test_data, b.eval_num)
    for name, part in (("data", train), ("test_data", test)):  # checked before work
        for _ in _batches.as_batches(part, model=model, name=name):
            pass
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "cache").mkdir(exist_ok=True)
    _, seed = _utils.make_generator(generator)
    settings = {"budget": dataclasses.asdict(b), "eps": eps, "norm": norm, "seed": seed}
    fp = fingerprint(model, train + test, settings)
    ctx = Context(
        model=model,
        loss_fn=loss_fn or nn.CrossEntropyLoss(),
        train=train,
        test=test,
        eps=float(eps),
        norm=norm,
        budget=b,
        cache=out / "cache",
        seed=seed,
        progressbar=progressbar,
        fingerprint=fp,
    )
    numbers: dict[str, Any] = {}
    pngs: dict[str, Path] = {}
    div3d, cached, timings = None, [], {}
    for name in _progress(names, progressbar):
        t0 = time.perf_counter()
        try:
            numbers[name], results, hit = run_section(ctx, name)
        except io.Interrupted as err:  # the finished sections are in the cache
            raise _stopped(err, name, list(numbers), ctx.cache) from None
        timings[name] = round(time.perf_counter() - t0, 3)
        cached += [name] if hit else []
        fig = _draw(name, results, ctx.eps)
        pngs[name] = plot.savefig(fig, out / "figures" / f"{name}.png")[0]
        if name == "surface":
            div3d = _surface_3d(results, ctx.eps)
    n_params = sum(p.numel() for p in model.parameters())
    summary = {
        "title": title or "landscape report",
        "model": type(model).__name__,
        "num_parameters": n_params,
        "eps": ctx.eps,
        "norm": norm,
        "budget": b.name,
        "sections": numbers,
        "seconds": timings,
        "cached": cached,
        "fingerprint": fp,
        "provenance": io.provenance(),
    }
    intro = (
        f"<p>{html.escape(type(model).__name__)} with {n_params:,} parameters; "
        f"attack budget eps = {ctx.eps:g} ({html.escape(norm)}); "
        f"<code>{b.name}</code> budget. {description}</p>"
    )
    json_path = out / "report.json"
    with io.atomic_write(json_path, "w") as f:
        json.dump(summary, f, indent=1, default=str)
    html_path = out / "report.html"
    text = page(summary["title"], intro, numbers, pngs, div3d)
    with io.atomic_write(html_path, "w") as f:
        f.write(text)
    return Report(html_path, json_path, pngs, summary, tuple(cached))

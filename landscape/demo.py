"""``python -m landscape.demo``: a real, small version of the study on MNIST.

The main job (``make demo``). On 2 CPU cores it takes a few minutes:

1. **data**: a stratified MNIST subset (downloaded and md5-verified on first use into
   ``./data``, or read from ``--data-root`` / ``$LANDSCAPE_DATA``).
2. **train**: LeNet adversarially trained (PGD) at several eps with a constant eps
   schedule, and one run with the periodic eps / lr schedule whose end-of-period
   checkpoints form an ensemble (:mod:`landscape.train`).
3. **evaluate**: clean and robust accuracy under the quick protocol (PGD-20) at each
   model's training eps and at a common eps, and one stronger attack (the "standard"
   protocol: APGD-CE, APGD-T, Square) on the largest-eps models
   (:mod:`landscape.evaluate`).
4. **hessian**: top Hessian eigenvalue of the clean and of the adversarial loss
   (Lanczos, :mod:`landscape.hessian`).
5. **scattering**: gradient scattering of the adversarial loss per eps: the
   gradient-Lipschitz ratio ``||g(w + s v) - g(w)|| / ||s v||`` at small ``s`` and its
   non-vanishing excess (:mod:`landscape.scattering`).
6. **surface**: 2D filter-normalised loss surfaces (clean and adversarial) around two
   of the models (:mod:`landscape.surface`), static and as interactive HTML.
7. **figures + summary**: PNG and PDF figures, ``summary.md`` and ``summary.json``.

Everything goes to a run folder (default ``runs/demo/``). Each finished stage is cached
there (atomic writes), so an interrupted demo resumes where it stopped; training
resumes mid-run through the trainer's own checkpoints. ``--smoke`` is a tiny version
(under a minute) used by the tests.

Example:
    ``python -m landscape.demo --out runs/demo``  then open ``runs/demo/summary.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import _utils, io

__all__ = ["DemoConfig", "run_demo", "main"]

_Data = tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Sizes and settings of the demo (saved as ``demo_config.json`` in the run folder).

    Attributes:
        dataset: dataset name for :func:`landscape.data.load_dataset`.
        model: architecture for :func:`landscape.models.build`; ``width`` its width.
        num_train / num_test: stratified subset sizes.
        epochs, batch_size, lr: Adam training (constant lr for constant-eps runs).
        eps_list: training budgets of the constant-schedule runs.
        train_steps: PGD steps during training (step ``2.5 eps / steps``).
        periodic_eps / periods: target eps and number of periods of the periodic run
            (eps and lr restart every period; end-of-period models form the ensemble).
        eval_num: test examples for the evaluation; ``eval_eps`` a common budget every
            model is also evaluated at; ``strong_preset`` / ``strong_num``: the stronger
            protocol and its number of examples (on the largest-eps models);
            ``strong_scale`` multiplies its steps, restarts and queries.
        hessian_num: training examples for the Hessian; ``hessian_k`` eigenvalues.
        scatter_num / scatter_directions / scatter_scales: scattering settings.
        surface_eps: training eps of the models that get 2D surfaces.
        surface_points / surface_range / surface_num: grid size, half-width and
            number of examples of the surfaces.
        attack_steps: PGD steps of the analyses' attacks (Hessian, surface).
        seed: seed for data subsets, initialisation, attacks and directions.
    """

    dataset: str = "mnist"
    model: str = "lenet"
    width: float = 1
    num_train: int = 2000
    num_test: int = 500
    epochs: int = 4
    batch_size: int = 50
    lr: float = 1e-3
    eps_list: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3)
    train_steps: int = 5
    periodic_eps: float = 0.3
    periods: int = 2
    eval_num: int = 500
    eval_eps: float = 0.1
    strong_preset: str = "standard"
    strong_num: int = 100
    strong_scale: float = 1.0
    hessian_num: int = 500
    hessian_k: int = 1
    scatter_num: int = 256
    scatter_directions: int = 2
    scatter_scales: tuple[float, ...] = (1e-3, 1e-2, 1e-1)
    surface_eps: tuple[float, ...] = (0.0, 0.2, 0.3)
    surface_points: int = 11
    surface_range: float = 1.0
    surface_num: int = 500
    attack_steps: int = 10
    seed: int = 0

    @classmethod
    def smoke(cls) -> DemoConfig:
        """A tiny configuration that runs in well under a minute on one CPU core."""
        return cls(
            num_train=256,
            num_test=128,
            epochs=2,
            batch_size=64,
            eps_list=(0.0, 0.3),
            train_steps=2,
            eval_num=64,
            strong_num=16,
            strong_scale=0.05,
            hessian_num=64,
            scatter_num=32,
            scatter_directions=1,
            scatter_scales=(1e-2, 1e-1),
            surface_points=5,
            surface_num=64,
            attack_steps=3,
        )

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


# ----------------------------------------------------------------------------- runs


@dataclasses.dataclass(frozen=True)
class _RunSpec:
    tag: str
    eps: float
    schedule: str  # "constant" or "periodic"


def _runs(cfg: DemoConfig) -> list[_RunSpec]:
    runs = [_RunSpec(f"constant_eps{e:g}", float(e), "constant") for e in cfg.eps_list]
    runs.append(
        _RunSpec(f"periodic_eps{cfg.periodic_eps:g}", cfg.periodic_eps, "periodic")
    )
    return runs


def _train_config(cfg: DemoConfig, run: _RunSpec) -> Any:
    from .train import TrainConfig

    kw: dict[str, Any] = dict(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        optimizer="adam",
        lr=cfg.lr,
        eps=run.eps,
        attack="pgd" if run.eps > 0 else "none",
        steps=cfg.train_steps,
        eval_num=min(cfg.eval_num, 200),
        eval_steps=cfg.train_steps,
        co_check_num=min(64, cfg.num_train),
        seed=cfg.seed,
        model=cfg.model,
        model_kwargs={"width": cfg.width, "dataset": cfg.dataset},
        data={
            "name": cfg.dataset,
            "num_train": cfg.num_train,
            "num_test": cfg.num_test,
        },
    )
    if run.schedule == "periodic":
        kw.update(eps_schedule="periodic", lr_schedule="periodic", periods=cfg.periods)
    return TrainConfig(**kw)


# ------------------------------------------------------------------------ caching


class _Cache:
    """A JSON file of finished items (``{key: value}``) rewritten atomically."""

    def __init__(self, path: Path):
        self.path = path
        self.items: dict[str, Any] = {}
        if path.exists():
            try:
                self.items = json.loads(path.read_text())
            except json.JSONDecodeError:
                warnings.warn(f"{path} is unreadable; recomputing it", stacklevel=2)

    def get(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self.items:
            self.items[key] = io._jsonable(fn())
            with io.atomic_write(self.path, "w") as f:
                json.dump(self.items, f, indent=1)
        return self.items[key]


def _cached_result(path: Path, cls: type, fn: Callable[[], Any]) -> Any:
    if path.exists():
        try:
            return cls.load(path)
        except (io.CorruptFileError, TypeError, KeyError) as err:
            warnings.warn(f"{path} unreadable ({err}); recomputing", stacklevel=2)
    res = fn()
    res.save(path)
    return res


# ------------------------------------------------------------------------ the job


def _loss_fn() -> nn.Module:
    return nn.CrossEntropyLoss()


def _fixed_batches(
    x: Tensor, y: Tensor, num: int, batch_size: int, device: torch.device
) -> list[tuple[Tensor, Tensor]]:
    x, y = x[:num].to(device), y[:num].to(device)
    return [
        (x[i : i + batch_size], y[i : i + batch_size])
        for i in range(0, len(x), batch_size)
    ]


def _log(msg: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(msg, file=sys.stdout)


def _train_stage(
    cfg: DemoConfig, out: Path, data: _Data, device: torch.device, progressbar: bool
) -> dict[str, Any]:
    from . import models, train

    (x, y), (xt, yt) = data
    results: dict[str, Any] = {}
    for run in _runs(cfg):
        run_dir = out / "train" / run.tag
        if (run_dir / "final.pt").exists():
            _log(f"[train] {run.tag}: finished earlier, loading {run_dir}")
            res = train.load_run(run_dir)
        else:
            _log(f"[train] {run.tag}: eps={run.eps:g} schedule={run.schedule}")
            torch.manual_seed(cfg.seed)
            model = models.build(cfg.model, width=cfg.width, dataset=cfg.dataset).to(
                device
            )
            res = train.adversarial_train(
                model,
                (x.to(device), y.to(device)),
                _train_config(cfg, run),
                test_data=(xt.to(device), yt.to(device)),
                run_dir=run_dir,
                progressbar=progressbar,
            )
        results[run.tag] = res
    return results


def _models(cfg: DemoConfig, out: Path, device: torch.device) -> dict[str, nn.Module]:
    from . import train

    return {
        r.tag: train.load_model(out / "train" / r.tag, device=device).eval()
        for r in _runs(cfg)
    }


def _evaluate_one(
    model: nn.Module,
    data: list[tuple[Tensor, Tensor]],
    *,
    eps: float,
    preset: str,
    scale: float,
    checks: bool,
    generator: torch.Generator,
) -> dict[str, Any]:
    """Clean and robust accuracy with :mod:`landscape.evaluate` (quick = PGD-20)."""
    from . import evaluate

    res = evaluate.evaluate(
        model,
        data,
        eps=eps,
        norm="linf",
        preset=preset,
        scale=scale,
        checks=checks,
        generator=generator,
    )
    row: dict[str, Any] = {
        "clean_acc": float(res.clean_accuracy),
        "robust_acc": float(np.atleast_1d(res.robust_accuracy)[0]),
        "attacks": [str(a) for a in res.attacks],
        "per_attack": {
            k: float(np.atleast_1d(v)[0]) for k, v in res.per_attack_accuracy().items()
        },
    }
    if res.checks:
        row["checks"] = {k: v.get("passed") for k, v in res.checks.items()}
    return row


def _eval_row(
    cfg: DemoConfig, model: nn.Module, d: list, eps: float, preset: str
) -> dict[str, Any]:
    g = torch.Generator().manual_seed(cfg.seed)
    strong = preset != "quick"
    row = _evaluate_one(
        model,
        d,
        eps=eps,
        preset=preset,
        scale=cfg.strong_scale if strong else 1.0,
        checks=strong,
        generator=g,
    )
    return {"eps": eps, "preset": preset, "num": sum(len(b[1]) for b in d), **row}


def _eval_stage(
    cfg: DemoConfig,
    out: Path,
    models_: dict[str, nn.Module],
    data: _Data,
    device: torch.device,
    progressbar: bool,
) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from . import train

    _, (xt, yt) = data
    test = _fixed_batches(xt, yt, cfg.eval_num, 250, device)
    strong = _fixed_batches(xt, yt, cfg.strong_num, 250, device)
    cache = _Cache(out / "results" / "eval.json")
    eps_max = max(cfg.eps_list)
    jobs: list[tuple[str, str, nn.Module, float, str, list]] = []
    for tag, m in models_.items():
        eps_train = float(tag.split("eps")[-1])
        jobs.append((f"{tag}/quick@train_eps", tag, m, eps_train, "quick", test))
        jobs.append(
            (f"{tag}/quick@{cfg.eval_eps:g}", tag, m, cfg.eval_eps, "quick", test)
        )
    periodic = [r for r in _runs(cfg) if r.schedule == "periodic"][0]
    ens = train.load_ensemble(out / "train" / periodic.tag, device=device)
    ens_tag = f"{periodic.tag}+ensemble"
    jobs.append(
        (f"{ens_tag}/quick@train_eps", ens_tag, ens, periodic.eps, "quick", test)
    )
    jobs.append(
        (f"{ens_tag}/quick@{cfg.eval_eps:g}", ens_tag, ens, cfg.eval_eps, "quick", test)
    )
    for tag, m in [
        (f"constant_eps{eps_max:g}", models_[f"constant_eps{eps_max:g}"]),
        (periodic.tag, models_[periodic.tag]),
        (ens_tag, ens),
    ]:
        e = eps_max if tag.startswith("constant") else periodic.eps
        jobs.append(
            (
                f"{tag}/{cfg.strong_preset}@train_eps",
                tag,
                m,
                e,
                cfg.strong_preset,
                strong,
            )
        )
    for key, _tag, model, eps, preset, d in tqdm(
        jobs, desc="evaluate", disable=not progressbar
    ):
        cache.get(key, lambda m=model, e=eps, p=preset, d=d: _eval_row(cfg, m, d, e, p))
    return cache.items


def _hessian_stage(
    cfg: DemoConfig,
    out: Path,
    models_: dict[str, nn.Module],
    data: _Data,
    device: torch.device,
    progressbar: bool,
) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from . import hessian

    (x, y), _ = data
    clean = _fixed_batches(x, y, cfg.hessian_num, 250, device)
    cache = _Cache(out / "results" / "hessian.json")
    for tag, m in tqdm(models_.items(), desc="hessian", disable=not progressbar):
        eps = float(tag.split("eps")[-1])

        def compute(m=m, eps=eps):
            g = torch.Generator().manual_seed(cfg.seed)
            row: dict[str, Any] = {"eps": eps}
            ev = hessian.top_eigenvalues(
                m, _loss_fn(), clean, k=cfg.hessian_k, generator=g, return_vectors=False
            )
            row["clean"] = [float(v) for v in ev.eigenvalues]
            row["clean_num_hvps"] = int(ev.num_hvps)
            if eps > 0:
                adv = hessian.adversarial_data(
                    m,
                    clean,
                    eps=eps,
                    steps=cfg.attack_steps,
                    alpha=2.5 * eps / cfg.attack_steps,
                    generator=g,
                )
                ev = hessian.top_eigenvalues(
                    m,
                    _loss_fn(),
                    adv,
                    k=cfg.hessian_k,
                    generator=g,
                    return_vectors=False,
                )
                row["adversarial"] = [float(v) for v in ev.eigenvalues]
            else:
                row["adversarial"] = row["clean"]
            return row

        cache.get(tag, compute)
    return cache.items


def _scatter_stage(
    cfg: DemoConfig,
    out: Path,
    models_: dict[str, nn.Module],
    data: _Data,
    device: torch.device,
    progressbar: bool,
) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from . import scattering

    (x, y), _ = data
    batches = _fixed_batches(x, y, cfg.scatter_num, cfg.scatter_num, device)
    results = {}
    for run in tqdm(
        [r for r in _runs(cfg) if r.schedule == "constant"],
        desc="scattering",
        disable=not progressbar,
    ):
        m = models_[run.tag]
        path = out / "results" / f"scattering_{run.tag}.npz"

        def compute(m=m, run=run):
            return scattering.scattering(
                m,
                _loss_fn(),
                batches,
                eps=[run.eps],
                scales=cfg.scatter_scales,
                directions="random",
                num_directions=cfg.scatter_directions,
                steps=cfg.attack_steps,
                generator=torch.Generator().manual_seed(cfg.seed),
            )

        results[run.tag] = _cached_result(path, scattering.ScatteringResult, compute)
    return results


def _surface_stage(
    cfg: DemoConfig,
    out: Path,
    models_: dict[str, nn.Module],
    data: _Data,
    device: torch.device,
    progressbar: bool,
) -> dict[str, Any]:
    from . import directions, surface

    (x, y), _ = data
    d = _fixed_batches(x, y, cfg.surface_num, 250, device)
    xs = np.linspace(-cfg.surface_range, cfg.surface_range, cfg.surface_points)
    results = {}
    for eps in cfg.surface_eps:
        tag = f"constant_eps{eps:g}"
        if tag not in models_:
            continue
        m = models_[tag]
        dirs = directions.random_directions(
            m,
            num=2,
            norm="filter",
            ignore="biasbn",
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        for kind in ("clean", "adversarial") if eps > 0 else ("clean",):
            path = out / "results" / f"surface_{tag}_{kind}.npz"
            kw: dict[str, Any] = {}
            if kind == "adversarial":
                kw = dict(
                    adversarial="fixed",
                    eps=eps,
                    steps=cfg.attack_steps,
                    alpha=2.5 * eps / cfg.attack_steps,
                    generator=torch.Generator().manual_seed(cfg.seed),
                )
            results[f"{tag}/{kind}"] = _cached_result(
                path,
                surface.Surface,
                lambda m=m, dirs=dirs, kw=kw: surface.loss_surface(
                    m, _loss_fn(), d, dirs, xs=xs, ys=xs, progressbar=progressbar, **kw
                ),
            )
    return results


# ---------------------------------------------------------------------- figures


def _figures(
    cfg: DemoConfig,
    out: Path,
    train_res: dict[str, Any],
    evals: dict[str, Any],
    hess: dict[str, Any],
    scat: dict[str, Any],
    surfs: dict[str, Any],
) -> list[Path]:
    """Draw every figure of the demo into ``out/figures`` (PNG + PDF, one HTML)."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import plot

    figdir = out / "figures"
    written: list[Path] = []
    constant = [r for r in _runs(cfg) if r.schedule == "constant"]

    # 1. learning curves: train robust loss / accuracy and distance from init per epoch
    runs = {
        tag.replace("constant_", "").replace("_", " "): r
        for tag, r in train_res.items()
    }
    with plt.rc_context(plot.PAPER_STYLE):
        fig, axes = plt.subplots(1, 4, figsize=(13, 2.9))
    plot.plot_learning_curves(runs, axes[0], keys=("train_loss",))
    axes[0].axhline(np.log(10), color="k", lw=0.6, ls=":", label="log 10 (chance)")
    axes[0].legend(fontsize=6)
    axes[0].set_title("robust training loss")
    plot.plot_learning_curves(runs, axes[1], keys=("train_acc",))
    axes[1].set_title("robust training accuracy (%)")
    plot.plot_learning_curves(runs, axes[2], keys=("test_robust_acc",))
    axes[2].set_title("test robust accuracy (%), target eps")
    plot.plot_distance_from_init(runs, axes[3])
    axes[3].set_title("distance from the initialisation")
    for ax in axes[[1, 2, 3]]:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    written += plot.savefig(fig, figdir / "learning_curves")

    # 2. accuracy per training eps (quick protocol) and the strong protocol
    if evals:
        with plt.rc_context(plot.PAPER_STYLE):
            fig, ax = plt.subplots(figsize=(4.4, 3.0))
        eps = [r.eps for r in constant]
        for key, lab, mk in [
            ("clean_acc", "clean", "o"),
            ("robust_acc", "robust @ training eps", "s"),
        ]:
            vals = [evals[f"{r.tag}/quick@train_eps"][key] for r in constant]
            ax.plot(eps, vals, mk + "-", label=lab)
        vals = [
            evals[f"{r.tag}/quick@{cfg.eval_eps:g}"]["robust_acc"] for r in constant
        ]
        ax.plot(eps, vals, "^-", label=f"robust @ eps={cfg.eval_eps:g}")
        ax.set_xlabel("training eps (constant schedule)")
        ax.set_ylabel("test accuracy (PGD-20)")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
        written += plot.savefig(fig, figdir / "accuracy_vs_eps")

    # 3. top Hessian eigenvalue vs eps
    if hess:
        with plt.rc_context(plot.PAPER_STYLE):
            fig, ax = plt.subplots(figsize=(4.0, 3.0))
        e = [hess[r.tag]["eps"] for r in constant]
        ax.plot(
            e, [hess[r.tag]["clean"][0] for r in constant], "o-", label="clean loss"
        )
        ax.plot(
            e,
            [hess[r.tag]["adversarial"][0] for r in constant],
            "s-",
            label="adversarial loss (training eps)",
        )
        ax.set_yscale("log")
        ax.set_xlabel("training eps")
        ax.set_ylabel(r"top Hessian eigenvalue $\lambda_{max}$")
        ax.legend(fontsize=7)
        written += plot.savefig(fig, figdir / "hessian_top_eigenvalue")

    # 4. gradient scattering per eps (each model at its own training eps)
    if scat:
        from . import scattering

        joined = scattering.concat_eps(list(scat.values()))
        with plt.rc_context(plot.PAPER_STYLE):
            fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.0))
        plot.plot_ratio_vs_scale(joined, ax=axes[0])
        plot.plot_excess_vs_eps(joined, ax=axes[1])
        axes[1].set_xlabel("eps (training = attack)")
        written += plot.savefig(fig, figdir / "scattering")

    # 5. surfaces: static side by side, and interactive HTML
    if surfs:
        keys = list(surfs)
        axes = plot.plot_surfaces(
            [surfs[k] for k in keys],
            titles=[k.replace("constant_", "").replace("/", " ") for k in keys],
            log=True,
        )
        written += plot.savefig(axes.flat[0].figure, figdir / "surfaces")
        html = _interactive_surfaces(surfs, keys)
        written.append(plot.write_html(html, figdir / "surfaces.html"))
    return written


def _interactive_surfaces(surfs: dict[str, Any], keys: list[str]) -> Any:
    """One plotly figure holding every surface, with a menu to switch between them
    (one self-contained HTML file instead of one multi-megabyte file per surface)."""
    import plotly.graph_objects as go

    from . import plot

    figs = [
        plot.surface_3d(surfs[k], log=True, title=k.replace("/", " ")) for k in keys
    ]
    fig = go.Figure(layout=figs[0].layout)
    owner: list[int] = []
    for i, f in enumerate(figs):
        for tr in f.data:
            tr.visible = i == 0
            fig.add_trace(tr)
            owner.append(i)
    buttons = [
        dict(
            label=k.replace("constant_", "").replace("/", " "),
            method="update",
            args=[{"visible": [o == i for o in owner]}, {"title": k.replace("/", " ")}],
        )
        for i, k in enumerate(keys)
    ]
    fig.update_layout(
        updatemenus=[dict(buttons=buttons, direction="down", x=0.0, y=1.12)],
        title=keys[0].replace("/", " "),
    )
    return fig


# ---------------------------------------------------------------------- summary


def _summary(
    cfg: DemoConfig,
    out: Path,
    train_res: dict[str, Any],
    evals: dict[str, Any],
    hess: dict[str, Any],
    scat: dict[str, Any],
    surfs: dict[str, Any],
    timings: dict[str, float],
    missing: dict[str, str],
    figures: list[Path],
    device: torch.device,
) -> dict[str, Any]:
    """Collect the numbers per run, write ``summary.json`` and ``summary.md``."""
    runs = {}
    for r in _runs(cfg):
        tr = train_res[r.tag]
        row: dict[str, Any] = {
            "eps": r.eps,
            "schedule": r.schedule,
            "final_train_loss": tr.final("train_loss"),
            "final_train_acc": tr.final("train_acc"),
            "dist_init": tr.final("dist_init") if "dist_init" in tr.metrics else None,
        }
        for key, name in [
            ("quick@train_eps", "quick_train_eps"),
            (f"quick@{cfg.eval_eps:g}", f"quick_eps{cfg.eval_eps:g}"),
            (f"{cfg.strong_preset}@train_eps", f"{cfg.strong_preset}_train_eps"),
        ]:
            ev = evals.get(f"{r.tag}/{key}")
            if ev is not None:
                if name == "quick_train_eps":
                    row["clean_acc"] = ev["clean_acc"]
                row[f"robust_acc_{name}"] = ev["robust_acc"]
        if r.tag in hess:
            row["hessian_top_clean"] = hess[r.tag]["clean"][0]
            row["hessian_top_adversarial"] = hess[r.tag]["adversarial"][0]
        if r.tag in scat:
            res = scat[r.tag]
            row["scatter_ratio_median_smallest_s"] = float(
                np.median(np.asarray(res.ratio)[0, :, 0])
            )
            row["scatter_cosine_median_smallest_s"] = float(
                np.median(np.asarray(res.cosine)[0, :, 0])
            )
            row["scatter_excess_median"] = float(np.median(res.excess()))
        for kind in ("clean", "adversarial"):
            s = surfs.get(f"{r.tag}/{kind}")
            if s is not None:
                row[f"surface_{kind}_center_loss"] = s.center_loss
                row[f"surface_{kind}_max_loss"] = float(np.max(s.loss))
        runs[r.tag] = row
    ens = {k.split("/", 1)[1]: v for k, v in evals.items() if "+ensemble" in k}
    summary = {
        "config": cfg.to_dict(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "timings_s": timings,
        "total_s": round(sum(timings.values()), 1),
        "cumulative_timings_s": _cumulative_timings(out, timings),
        "runs": runs,
        "ensemble": ens,
        "evaluations": evals,
        "missing": missing,
        "figures": [str(p.relative_to(out)) for p in figures],
        "provenance": io.provenance(),
    }
    with io.atomic_write(out / "summary.json", "w") as f:
        json.dump(io._jsonable(summary), f, indent=1)
    with io.atomic_write(out / "summary.md", "w") as f:
        f.write(_markdown(cfg, summary))
    return summary


def _cumulative_timings(out: Path, timings: dict[str, float]) -> dict[str, float]:
    """Add this invocation's stage times to ``results/timings.json`` (a resumed run
    reports the compute spent over every invocation, not only the last one)."""
    path = out / "results" / "timings.json"
    total: dict[str, float] = {}
    if path.exists():
        try:
            total = json.loads(path.read_text())
        except json.JSONDecodeError:
            total = {}
    for k, v in timings.items():
        total[k] = round(total.get(k, 0.0) + v, 2)
    with io.atomic_write(path, "w") as f:
        json.dump(total, f, indent=1)
    return total


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100 * v:.1f}" if pct else f"{v:.3g}"


def _findings(cfg: DemoConfig, s: dict[str, Any]) -> list[str]:
    """Plain statements read off the numbers (no claim beyond them)."""
    runs = s["runs"]
    const = {t: r for t, r in runs.items() if r["schedule"] == "constant"}
    out = []
    stalled = [
        t for t, r in const.items() if r["final_train_acc"] < 0.2 and r["eps"] > 0
    ]
    moved = ", ".join(
        f"eps={r['eps']:g}: {_fmt(r['dist_init'])}" for r in const.values()
    )
    if stalled:
        eps_s = ", ".join(f"{const[t]['eps']:g}" for t in stalled)
        out.append(
            f"Constant-schedule training stalled near the initialisation at eps = {eps_s}"
            f" (robust training accuracy below 20 % after {cfg.epochs} epochs)."
        )
    else:
        out.append(
            "No constant-schedule run stalled (all reached >= 20 % robust training accuracy)."
        )
    out.append(f"Distance from the initialisation after training: {moved}.")
    per = [t for t, r in runs.items() if r["schedule"] == "periodic"]
    for t in per:
        p = runs[t]
        c = const.get(f"constant_eps{p['eps']:g}")
        if c is not None and "clean_acc" in p and "clean_acc" in c:
            out.append(
                f"At eps = {p['eps']:g} the periodic schedule reached "
                f"{_fmt(p['clean_acc'], True)} % clean / "
                f"{_fmt(p.get('robust_acc_quick_train_eps'), True)} % robust (PGD-20) "
                f"accuracy, the constant one {_fmt(c['clean_acc'], True)} % / "
                f"{_fmt(c.get('robust_acc_quick_train_eps'), True)} %."
            )
    if all("hessian_top_clean" in r for r in const.values()):
        out.append(
            "Top Hessian eigenvalue (clean / adversarial loss): "
            + ", ".join(
                f"eps={r['eps']:g}: {_fmt(r['hessian_top_clean'])} / "
                f"{_fmt(r['hessian_top_adversarial'])}"
                for r in const.values()
            )
            + "."
        )
    if all("scatter_ratio_median_smallest_s" in r for r in const.values()):
        s0 = min(cfg.scatter_scales)
        out.append(
            f"Gradient-Lipschitz ratio at s = {s0:g} (median): "
            + ", ".join(
                f"eps={r['eps']:g}: {_fmt(r['scatter_ratio_median_smallest_s'])}"
                for r in const.values()
            )
            + "; a ratio that is much larger for eps > 0 than for eps = 0 is gradient "
            "scattering (Proposition 2)."
        )
    return out


def _markdown(cfg: DemoConfig, s: dict[str, Any]) -> str:
    sp = cfg.strong_preset
    lines = [
        "# landscape demo: a small study on MNIST",
        "",
        f"{cfg.model} (width {cfg.width:g}) on {cfg.num_train} {cfg.dataset} training images, "
        f"{cfg.epochs} epochs of PGD-{cfg.train_steps} adversarial training (Adam, lr "
        f"{cfg.lr:g}); evaluated on {cfg.eval_num} test images (quick protocol = PGD-20; "
        f"'{sp}' protocol on {cfg.strong_num}). Device: {s['device']} "
        f"({s['threads']} threads), total {s['total_s']:.0f} s. This is a CPU-size "
        "illustration, not the paper's full experiment.",
        "",
        f"| run | clean acc % | robust % @ train eps | robust % @ {cfg.eval_eps:g} | "
        f"{sp} % @ train eps (n={cfg.strong_num}) | dist from init | lambda_max clean | lambda_max adv | "
        "scatter excess |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for tag, r in s["runs"].items():
        lines.append(
            f"| {tag} | {_fmt(r.get('clean_acc'), True)} | "
            f"{_fmt(r.get('robust_acc_quick_train_eps'), True)} | "
            f"{_fmt(r.get(f'robust_acc_quick_eps{cfg.eval_eps:g}'), True)} | "
            f"{_fmt(r.get(f'robust_acc_{sp}_train_eps'), True)} | "
            f"{_fmt(r.get('dist_init'))} | {_fmt(r.get('hessian_top_clean'))} | "
            f"{_fmt(r.get('hessian_top_adversarial'))} | "
            f"{_fmt(r.get('scatter_excess_median'))} |"
        )
    for key, ev in s["ensemble"].items():
        lines.append(
            f"\nEnsemble of the periodic run's end-of-period models, {key}: clean "
            f"{_fmt(ev['clean_acc'], True)} %, robust {_fmt(ev['robust_acc'], True)} % "
            f"(eps {ev['eps']:g})."
        )
    failed = sorted(
        f"{k} {name}"
        for k, ev in s["evaluations"].items()
        for name, ok in (ev.get("checks") or {}).items()
        if ok is False
    )
    checked = [k for k, ev in s["evaluations"].items() if ev.get("checks")]
    if checked:
        lines.append(
            f"\nGradient-masking checks ran with the '{sp}' protocol on {len(checked)} "
            "models: "
            + ("all passed." if not failed else "FAILED: " + "; ".join(failed) + ".")
        )
    lines += ["", "## Findings (computed from the numbers above)", ""]
    lines += [f"- {f}" for f in _findings(cfg, s)]
    lines += [
        "",
        "## What to look for",
        "",
        "- Learning curves (`figures/learning_curves.png`): the larger the training eps, "
        "the slower the robust training loss falls and the closer the weights stay to "
        "their initialisation (the paper's 'large eps stalls' observation).",
        "- Hessian (`figures/hessian_top_eigenvalue.png`) and surfaces "
        "(`figures/surfaces.png`, `figures/surfaces.html`, interactive): curvature of clean vs "
        "adversarial loss per training eps.",
        "- Scattering (`figures/scattering.png`): the ratio "
        "||g(w+sv)-g(w)||/||sv|| grows as s -> 0 when eps > 0 (non-vanishing excess, "
        "Proposition 2); at eps = 0 it stays bounded.",
    ]
    if s["missing"]:
        lines += ["", "## Not run", ""] + [
            f"- {k}: {v}" for k, v in s["missing"].items()
        ]
    cum = s.get("cumulative_timings_s", {})
    lines += [
        "",
        "## Stage timings (s): this invocation / all invocations in this folder",
    ]
    lines += [""] + [
        f"- {k}: {v:.1f} / {cum.get(k, v):.1f}" for k, v in s["timings_s"].items()
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- run


def run_demo(
    cfg: DemoConfig,
    out: str | os.PathLike,
    *,
    data_root: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    progressbar: bool = True,
    fresh: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the demo in ``out`` and return the summary dict.

    Args:
        cfg: sizes and settings.
        out: run folder; finished stages found there are reused.
        data_root: data folder (default ``$LANDSCAPE_DATA``, else ``./data``).
        device: torch device (default CUDA when available).
        progressbar: tqdm progress bars.
        fresh: delete a previous run in ``out`` first.

    Raises:
        RuntimeError: ``out`` holds a demo run with another configuration (use
            ``fresh=True`` / ``--fresh`` or another folder).
    """
    from . import data as ldata

    out = Path(out)
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "demo_config.json"
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if old != cfg.to_dict():
            raise RuntimeError(
                f"{out} holds a demo run with another configuration; pass --fresh to "
                "start over there, or choose another --out"
            )
    else:
        with io.atomic_write(cfg_path, "w") as f:
            json.dump(cfg.to_dict(), f, indent=1)
    dev = (
        torch.device(device)
        if device is not None
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    _utils.seed_everything(cfg.seed)
    timings: dict[str, float] = {}
    missing: dict[str, str] = {}

    def stage(name: str, fn: Callable[[], Any], needs: tuple[str, ...] = ()) -> Any:
        import importlib

        for mod in needs:
            try:
                importlib.import_module(f"landscape.{mod}")
            except ImportError as err:
                missing[name] = f"landscape.{mod} is not available ({err})"
                _log(f"[{name}] skipped: {missing[name]}")
                return {}
        _log(f"== {name}")
        t0 = time.perf_counter()
        res = fn()
        timings[name] = round(time.perf_counter() - t0, 2)
        return res

    def load():
        x, y = ldata.load_dataset(
            cfg.dataset,
            data_root,
            split="train",
            num_samples=cfg.num_train,
            seed=cfg.seed,
        )
        xt, yt = ldata.load_dataset(
            cfg.dataset,
            data_root,
            split="test",
            num_samples=cfg.num_test,
            seed=cfg.seed,
        )
        return (x, y), (xt, yt)

    data = stage("data", load)
    train_res = stage(
        "train",
        lambda: _train_stage(cfg, out, data, dev, progressbar),
    )
    models_ = _models(cfg, out, dev)
    evals = stage(
        "evaluate",
        lambda: _eval_stage(cfg, out, models_, data, dev, progressbar),
        ("evaluate",),
    )
    hess = stage(
        "hessian",
        lambda: _hessian_stage(cfg, out, models_, data, dev, progressbar),
        ("hessian",),
    )
    scat = stage(
        "scattering",
        lambda: _scatter_stage(cfg, out, models_, data, dev, progressbar),
        ("scattering",),
    )
    surfs = stage(
        "surface",
        lambda: _surface_stage(cfg, out, models_, data, dev, progressbar),
        ("directions", "surface"),
    )
    figures = stage(
        "figures", lambda: _figures(cfg, out, train_res, evals, hess, scat, surfs)
    )
    return _summary(
        cfg, out, train_res, evals, hess, scat, surfs, timings, missing, figures, dev
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m landscape.demo",
        description="The main job: a small real study of the loss landscape of "
        "adversarial training on MNIST (train at several eps with a constant and a "
        "periodic schedule, evaluate, Hessian, gradient scattering, 2D surfaces), "
        "writing figures and a summary to a run folder. A few minutes on 2 CPU cores; "
        "an interrupted run resumes.",
        epilog="Example: python -m landscape.demo --out runs/demo && "
        "cat runs/demo/summary.md",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run folder (default runs/demo, or runs/demo-smoke with --smoke)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny version (well under a minute) for tests",
    )
    p.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="data folder holding mnist/ (default $LANDSCAPE_DATA, else ./data; "
        "missing files are downloaded and md5-verified)",
    )
    p.add_argument(
        "--device", default=None, help="torch device (default cuda if available)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="delete an earlier run in --out and start over",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = DemoConfig.smoke() if args.smoke else DemoConfig()
    out = args.out or Path("runs") / ("demo-smoke" if args.smoke else "demo")
    t0 = time.perf_counter()
    try:
        summary = run_demo(
            cfg,
            out,
            data_root=args.data_root,
            device=args.device,
            progressbar=not args.no_progress,
            fresh=args.fresh,
        )
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print()
    print((out / "summary.md").read_text())
    print(
        f"wall time {time.perf_counter() - t0:.0f} s; results in {out}/ "
        f"(summary.md, summary.json, figures/)"
    )
    if summary["missing"]:
        print("some stages did not run: " + "; ".join(summary["missing"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

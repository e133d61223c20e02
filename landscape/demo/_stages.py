"""The stages of the demo, each a short function over one :class:`Context` whose cache
(:func:`landscape.io.cached` files under ``out/results``) makes a rerun resume."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import io
from ._spec import DemoConfig, RunSpec, model_kwargs, runs, train_config

__all__ = [
    "Context",
    "Record",
    "data_stage",
    "train_stage",
    "load_models",
    "eval_stage",
    "hessian_stage",
    "scatter_stage",
    "surface_stage",
]

Batches = list[tuple[Tensor, Tensor]]


@dataclasses.dataclass(frozen=True)
class Record(io.Result):
    """A cached item of plain numbers (an evaluation row, eigenvalues)."""

    values: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Context:
    """What every stage reads: settings, run folder, device, data, models, the cache."""

    cfg: DemoConfig
    out: Path
    device: torch.device
    progressbar: bool = False
    data: tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None
    models: dict[str, nn.Module] = dataclasses.field(default_factory=dict)

    def result(self, name: str, cls: type, compute: Callable[[], Any]) -> Any:
        """A cached :class:`landscape.io.Result` at ``out/results/<name>.npz``."""
        return io.cached(self.out / "results" / f"{name}.npz", compute, cls)

    def record(self, name: str, compute: Callable[[], dict]) -> dict:
        """A cached dict of plain numbers at ``out/results/<name>.npz``."""
        return self.result(name, Record, lambda: Record(compute())).values

    def batches(self, split: str, num: int, batch_size: int) -> Batches:
        """The first ``num`` examples of the train or test subset, on the device."""
        assert self.data is not None, "run data_stage first"
        x, y = self.data[0] if split == "train" else self.data[1]
        x, y = x[:num].to(self.device), y[:num].to(self.device)
        return [
            (x[i : i + batch_size], y[i : i + batch_size])
            for i in range(0, len(x), batch_size)
        ]

    def generator(self) -> torch.Generator:
        """A fresh generator seeded with the demo's seed."""
        return torch.Generator().manual_seed(self.cfg.seed)


def log(msg: str) -> None:
    """One line of progress on stdout (between progress bars)."""
    from .._progress import write

    write(msg, file=sys.stdout)


def _loss_fn() -> nn.Module:
    return nn.CrossEntropyLoss()


def data_stage(ctx: Context, data_root: str | Path | None) -> None:
    """Load the stratified train and test subsets into ``ctx.data``."""
    from .. import data

    cfg = ctx.cfg
    train, test = (
        data.load_dataset(
            cfg.dataset,
            data_root,
            split=s,
            num_samples=n,
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        for s, n in (("train", cfg.num_train), ("test", cfg.num_test))
    )
    ctx.data = (train, test)


def train_stage(ctx: Context) -> dict[str, Any]:
    """Train every run (or load a finished one); ``{tag: TrainResult}``."""
    from .. import models, train

    assert ctx.data is not None, "run data_stage first"
    cfg, results = ctx.cfg, {}
    (x, y), (xt, yt) = ctx.data
    for run in runs(cfg):
        run_dir = ctx.out / "train" / run.folder
        if (run_dir / "final.pt").exists():
            log(f"[train] {run.tag}: finished earlier, loading {run_dir}")
            results[run.tag] = train.load_run(run_dir)
            continue
        log(f"[train] {run.tag}: eps={run.eps:g} schedule={run.schedule}")
        torch.manual_seed(cfg.seed)
        model = models.build(cfg.model, **model_kwargs(cfg))
        results[run.tag] = train.adversarial_train(
            model.to(ctx.device),
            (x.to(ctx.device), y.to(ctx.device)),
            train_config(cfg, run),
            test_data=(xt.to(ctx.device), yt.to(ctx.device)),
            run_dir=run_dir,
            progressbar=ctx.progressbar,
        )
    return results


def load_models(ctx: Context) -> None:
    """Load every final model and the periodic run's ensemble into ``ctx.models``."""
    from .. import checkpoints

    for run in runs(ctx.cfg, ensemble=True):
        folder = ctx.out / "train" / run.folder
        ctx.models[run.tag] = checkpoints.load_model(
            folder, ensemble=run.ensemble, device=ctx.device
        )


def _eval_jobs(cfg: DemoConfig) -> list[tuple[str, RunSpec, float, str]]:
    """``(key, run, eps, preset)``: every model at its own eps and at ``eval_eps``
    (quick), and the strong protocol on the largest-eps constant run, the periodic
    run and its ensemble."""
    jobs = []
    for run in runs(cfg, ensemble=True):
        jobs.append((f"{run.tag}/quick@train_eps", run, run.eps, "quick"))
        jobs.append((f"{run.tag}/quick@{cfg.eval_eps:g}", run, cfg.eval_eps, "quick"))
    eps_max = max(cfg.eps_list)
    for run in runs(cfg, ensemble=True):
        if run.schedule == "periodic" or run.eps == eps_max:
            key = f"{run.tag}/{cfg.strong_preset}@train_eps"
            jobs.append((key, run, run.eps, cfg.strong_preset))
    return jobs


def _eval_row(ctx: Context, model: nn.Module, eps: float, preset: str) -> dict:
    from .. import evaluate

    cfg, strong = ctx.cfg, preset != "quick"
    num = cfg.strong_num if strong else cfg.eval_num
    d = ctx.batches("test", num, 250)
    res = evaluate.evaluate(
        model,
        d,
        eps=eps,
        norm="linf",
        preset=preset,
        scale=cfg.strong_scale if strong else 1.0,
        checks=strong,
        generator=ctx.generator(),
    )
    per = res.per_attack_accuracy().items()
    row: dict[str, Any] = {
        "eps": eps,
        "preset": preset,
        "num": sum(len(b[1]) for b in d),
        "clean_acc": float(res.clean_accuracy),
        "robust_acc": float(np.atleast_1d(res.robust_accuracy)[0]),
        "attacks": [str(a) for a in res.attacks],
        "per_attack": {k: float(np.atleast_1d(v)[0]) for k, v in per},
    }
    if res.checks:
        row["checks"] = {k: v.get("passed") for k, v in res.checks.items()}
    return row


def eval_stage(ctx: Context) -> dict[str, dict]:
    """Clean and robust accuracy of every job; ``{key: row}``."""
    from .._progress import bar

    out = {}
    jobs = _eval_jobs(ctx.cfg)
    for key, run, eps, preset in bar(
        jobs,
        desc="evaluate",
        unit="evaluations",
        enabled=ctx.progressbar,
        about=f"{len(runs(ctx.cfg, ensemble=True))} models, presets "
        f"{', '.join(sorted({j[3] for j in jobs}))}",
    ):
        model = ctx.models[run.tag]
        out[key] = ctx.record(
            f"eval/{key}", lambda m=model, e=eps, p=preset: _eval_row(ctx, m, e, p)
        )
    return out


def _top_eigenvalues(ctx: Context, model: nn.Module, run: RunSpec) -> dict:
    from .. import attacks, hessian

    cfg, g = ctx.cfg, ctx.generator()
    clean = ctx.batches("train", cfg.hessian_num, 250)

    def top(batches):
        ev = hessian.top_eigenvalues(
            model, _loss_fn(), batches, num=cfg.num_eigenvalues, generator=g,
            return_vectors=False,
        )  # fmt: skip
        return [float(v) for v in ev.eigenvalues], int(ev.num_matvecs)

    row: dict[str, Any] = {"eps": run.eps}
    row["clean"], row["clean_num_matvecs"] = top(clean)
    row["adversarial"] = row["clean"]
    if run.eps > 0:
        attack = attacks.PGD(eps=run.eps, steps=cfg.attack_steps)  # step 2.5 eps/steps
        adv = attacks.perturb_batches(model, clean, attack, generator=g)
        row["adversarial"], _ = top(adv)
    return row


def hessian_stage(ctx: Context) -> dict[str, dict]:
    """Top Hessian eigenvalues of the clean and adversarial loss per run."""
    from .._progress import bar

    out = {}
    for run in bar(
        runs(ctx.cfg),
        desc="hessian",
        unit="models",
        enabled=ctx.progressbar,
        about=f"top {ctx.cfg.num_eigenvalues} eigenvalues, clean and adversarial",
    ):
        model = ctx.models[run.tag]
        out[run.tag] = ctx.record(
            f"hessian/{run.tag}", lambda m=model, r=run: _top_eigenvalues(ctx, m, r)
        )
    return out


def scatter_stage(ctx: Context) -> dict[str, Any]:
    """Gradient scattering of each constant-schedule model at its own eps."""
    from .. import attacks, scattering
    from .._progress import bar

    cfg = ctx.cfg
    batches = ctx.batches("train", cfg.scatter_num, cfg.scatter_num)
    const = [r for r in runs(cfg) if r.schedule == "constant"]
    out = {}
    for run in bar(const, desc="scattering", unit="models", enabled=ctx.progressbar):
        model = ctx.models[run.tag]
        out[run.tag] = ctx.result(
            f"scattering_{run.tag}",
            scattering.ScatteringResult,
            lambda m=model, r=run: scattering.scattering(
                m,
                _loss_fn(),
                batches,
                eps=[r.eps],
                scales=cfg.scatter_scales,
                attack=attacks.PGD(eps=r.eps, steps=cfg.attack_steps),
                directions="unit",
                num_directions=cfg.scatter_directions,
                generator=ctx.generator(),
            ),
        )
    return out


def _surface(ctx: Context, model: nn.Module, eps: float, adversarial: bool) -> Any:
    from .. import attacks, directions, surface

    cfg = ctx.cfg
    xs = np.linspace(-cfg.surface_range, cfg.surface_range, cfg.surface_points)
    dirs = directions.random_directions(
        model, num=2, norm="filter", ignore="biasbn", generator=ctx.generator()
    )
    kw: dict[str, Any] = {}
    if adversarial:
        kw = dict(
            adversarial="fixed",
            attack=attacks.PGD(eps=eps, steps=cfg.attack_steps),  # step 2.5 eps/steps
            generator=ctx.generator(),
        )
    d = ctx.batches("train", cfg.surface_num, 250)
    return surface.loss_surface(
        model, _loss_fn(), d, dirs, xs=xs, ys=xs, progressbar=ctx.progressbar, **kw
    )


def surface_stage(ctx: Context) -> dict[str, Any]:
    """2D filter-normalised surfaces (clean, and adversarial for eps > 0)."""
    from .. import surface

    out = {}
    for run in runs(ctx.cfg):
        if run.schedule != "constant" or run.eps not in ctx.cfg.surface_eps:
            continue
        model = ctx.models[run.tag]
        for kind in ("clean", "adversarial") if run.eps > 0 else ("clean",):
            out[f"{run.tag}/{kind}"] = ctx.result(
                f"surface_{run.tag}_{kind}",
                surface.Surface,
                lambda m=model, r=run, k=kind: _surface(ctx, m, r.eps, k != "clean"),
            )
    return out

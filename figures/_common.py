"""Shared helpers for the figure scripts in ``figures/``.

Every ``figures/figNN_name.py`` follows one pattern (STYLE.md section 10)::

    import _common

    def compute(ctx: _common.Context) -> _common.FigureData: ...   # the expensive part
    def draw(data: _common.FigureData, ctx: _common.Context) -> list[Path]: ...

    main = _common.figure_main(__doc__, "fig02_learning_curves", compute, draw)

(:func:`figure_main` makes the ``main(argv)`` that parses the common flags, computes
through the cache, draws and reports what was written; ``study=_study.tier(...)``
hands ``--study`` / ``--from-results`` over to the study tier, ``_study.run``.)

Sizes: ``--smoke`` (tiny, CPU, < 30 s, results and figures in runs/figures/<name>-smoke or
``--out-dir``), the default CPU size (a few minutes: an illustration), ``--study`` (the
CPU study tier of ``figures/_study.py``: converged models, seeds and confidence
intervals, sized for about an hour of one CPU core per figure; models are shared
between figures and every trained model / evaluation is cached on its own, so a killed
run resumes) and ``--full`` (the paper's size, for a GPU session). ``--from-results``
redraws a figure from the committed study tables in ``results/`` without computing. ``compute()`` results are cached as ``data/results/<key>_<size>.npz`` (plus a
JSON sidecar) and reused unless ``--recompute`` is given, so a second run only redraws.
Figures go to ``figures/out/`` (git-ignored) unless ``--out-dir`` says otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from landscape import io as lio  # noqa: E402

__all__ = [
    "REPO",
    "RESULTS",
    "FIGURES_OUT",
    "PUBLISHED",
    "Context",
    "FigureData",
    "parser",
    "setup",
    "cached",
    "save_figure",
    "write_markdown",
    "evaluate",
    "failed_checks",
    "report",
    "figure_main",
    "paper_lenet_config",
    "model_for",
    "num_params",
    "small_lenet_config",
    "mnist",
    "commit",
    "train_warmup",
]

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "data" / "results"
# committed study tables and figures, per study budget (``LANDSCAPE_STUDY_BUDGET``,
# see ``figures/_study.py``): ``cpu`` (the paper's recipe scaled down, the default)
# publishes to results/cpu/; ``v1`` / ``v1-long`` are the earlier recipe's committed
# record in results/ and results/long/ (redrawn with ``--from-results``)
STUDY_BUDGETS = {"cpu": "cpu", "v1": "", "v1-long": "long"}
STUDY_BUDGET = os.environ.get("LANDSCAPE_STUDY_BUDGET", "cpu")
PUBLISHED = REPO / "results" / STUDY_BUDGETS.get(STUDY_BUDGET, STUDY_BUDGET)
FIGURES_OUT = REPO / "figures" / "out"


@dataclasses.dataclass(frozen=True)
class FigureData(lio.Result):
    """What a figure's ``compute()`` returns and the cache stores.

    Attributes:
        arrays: named numeric arrays (curves, grids, eigenvalues...), stored in the npz.
        table: anything JSON-able (numbers, rows of a table, labels), stored in the
            JSON sidecar.
        meta: provenance and settings (size, seed, device, wall time); filled on save.
    """

    NONFINITE = {  # like TrainResult's metrics, which figures cache as they are
        "arrays": "NaN where a run's metric was not measured in an epoch (tracked "
        "epochs only, no loss from a keep='best' attack); each figure filters them"
    }

    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    table: dict[str, Any] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Context:
    """Settings shared by ``compute()`` and ``draw()`` of one figure script run.

    Attributes:
        name: the figure's stem, e.g. ``"fig02_learning_curves"``.
        size: ``"smoke"``, ``"cpu"`` (default), ``"study"`` or ``"full"``.
        out_dir: where figures are written.
        cache_dir: where ``compute()`` results are cached.
        recompute: ignore the cache.
        device: torch device for the computation.
        data_root: explicit data folder, or None (``LANDSCAPE_DATA``, else ``./data``).
        seed: seed for everything.
        from_results: only redraw from the committed tables in ``results/``.
        collect: study tier: tables from finished work only, no training.
    """

    name: str
    size: str
    out_dir: Path
    cache_dir: Path
    recompute: bool
    device: torch.device
    data_root: Path | None
    seed: int
    from_results: bool = False
    collect: bool = False

    def pick(self, smoke: Any, cpu: Any, full: Any, study: Any = None) -> Any:
        """Return the value for the current size: ``ctx.pick(200, 2000, 60000)``
        (``study`` defaults to the ``cpu`` value)."""
        if self.size == "study":
            return cpu if study is None else study
        return {"smoke": smoke, "cpu": cpu, "full": full}[self.size]

    @property
    def generator(self) -> torch.Generator:
        """A fresh CPU generator seeded with ``seed``."""
        return torch.Generator().manual_seed(self.seed)


def parser(doc: str | None, *, prog: str | None = None) -> argparse.ArgumentParser:
    """The common argument parser of a figure script (add your own options to it).

    Args:
        doc: the script's module docstring (shown by ``--help``).
        prog: program name (defaults to the script's file name).

    Returns:
        An ``argparse.ArgumentParser`` with ``--smoke``, ``--full``, ``--recompute``,
        ``--out-dir``, ``--cache-dir``, ``--data-root``, ``--device`` and ``--seed``.
    """
    p = argparse.ArgumentParser(
        prog=prog,
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--smoke",
        action="store_true",
        help="tiny CPU run (< 30 s) for the tests; writes to --out-dir, else "
        "runs/figures/<figure>-smoke under the current folder (never to data/results), "
        "and prints the paths",
    )
    size.add_argument(
        "--full",
        action="store_true",
        help="the paper's size (meant for a GPU session; hours on a CPU)",
    )
    size.add_argument(
        "--study",
        action="store_true",
        help="the CPU study tier: converged models, >= 2-3 seeds, confidence "
        "intervals (about an hour of one core per figure; resumable, shared cache)",
    )
    size.add_argument(
        "--from-results",
        action="store_true",
        help="redraw the study-tier figure from the committed tables in results/ "
        "(no training, no evaluation)",
    )
    p.add_argument(
        "--collect",
        action="store_true",
        help="with --study: build the tables from the finished models and "
        "evaluations only (no training; the rest is marked not run)",
    )
    p.add_argument(
        "--recompute",
        action="store_true",
        help="ignore cached results in the cache folder and compute again",
    )
    p.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="folder for the figures (default: figures/out/, or "
        "runs/figures/<figure>-smoke with --smoke)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="folder for cached compute() results (default: data/results/, or "
        "OUT_DIR/results with --smoke)",
    )
    p.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="folder holding mnist/ etc. (default: $LANDSCAPE_DATA, else ./data; "
        "missing files are downloaded and verified)",
    )
    p.add_argument(
        "--device",
        default=None,
        help="torch device, e.g. cpu or cuda (default: cuda when available)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for everything (0)")
    return p


def setup(args: argparse.Namespace, name: str) -> Context:
    """Turn parsed arguments into a :class:`Context`: pick the size and the folders,
    seed everything, and keep torch to one thread on CPU (the machines are shared)."""
    from_results = bool(getattr(args, "from_results", False))
    study = bool(getattr(args, "study", False)) or from_results
    size = "smoke" if args.smoke else "full" if args.full else "cpu"
    size = "study" if study else size
    if args.out_dir is not None:
        out_dir = Path(args.out_dir)
    elif size == "smoke":
        out_dir = Path("runs") / "figures" / f"{name}-smoke"
    elif size == "study":
        out_dir = PUBLISHED
    else:
        out_dir = FIGURES_OUT
    out_dir.mkdir(parents=True, exist_ok=True)
    if from_results:
        cache_dir = PUBLISHED
    elif args.cache_dir is not None:
        cache_dir = Path(args.cache_dir)
    elif size == "smoke":
        cache_dir = out_dir / "results"
    else:
        cache_dir = RESULTS
    if args.device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(int(os.environ.get("LANDSCAPE_THREADS", "1")))
    from landscape import seed_everything

    seed_everything(args.seed)
    return Context(
        name=name,
        size=size,
        out_dir=out_dir,
        cache_dir=cache_dir,
        recompute=bool(args.recompute),
        device=device,
        data_root=Path(args.data_root) if args.data_root is not None else None,
        seed=int(args.seed),
        from_results=from_results,
        collect=bool(getattr(args, "collect", False)),
    )


def cached(
    ctx: Context, key: str, compute: Callable[[], FigureData], *, log: bool = True
) -> FigureData:
    """Load ``<cache_dir>/<key>_<size>.npz`` if it exists (and ``--recompute`` was not
    given); otherwise run ``compute()``, record its wall time and settings in ``meta``,
    save it atomically and return it."""
    path = ctx.cache_dir / f"{key}_{ctx.size}.npz"
    if ctx.from_results and not path.exists():
        raise SystemExit(
            f"[{ctx.name}] {path} not found: the study tables of this figure are not "
            "committed (not run yet); run the script with --study first"
        )
    if path.exists() and (not ctx.recompute or ctx.from_results):
        try:
            data = FigureData.load(path)
        except (lio.CorruptFileError, TypeError) as err:
            print(f"[{ctx.name}] cache {path} unreadable ({err}); recomputing")
        else:
            if log:
                print(f"[{ctx.name}] using cached results {_rel(path)}")
            return data
    if log:
        print(f"[{ctx.name}] computing ({ctx.size} size on {ctx.device}) ...")
    t0 = time.perf_counter()
    data = compute()
    meta = dict(data.meta)
    meta.update(
        size=ctx.size,
        seed=ctx.seed,
        device=str(ctx.device),
        compute_seconds=round(time.perf_counter() - t0, 2),
        command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        commit=commit(),
        threads=torch.get_num_threads(),
    )
    data = dataclasses.replace(data, meta=meta)
    data.save(path)
    if log:
        print(
            f"[{ctx.name}] computed in {meta['compute_seconds']:.1f} s, "
            f"cached to {_rel(path)}"
        )
    return FigureData.load(path)


def commit() -> str:
    """The git commit of the code that runs: ``$LANDSCAPE_COMMIT`` (set for a run from an
    exported snapshot of the tree), else ``git rev-parse HEAD`` of this repository
    (``+dirty`` when tracked files differ), else ``"unknown"``."""
    env = os.environ.get("LANDSCAPE_COMMIT")
    if env:
        return env
    import subprocess

    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--"],
            capture_output=True,
        ).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def mnist(ctx: Context, num_train: int, num_test: int) -> tuple[torch.Tensor, ...]:
    """``(x, y, x_test, y_test)``: stratified MNIST subsets from ``ctx.data_root``
    (``landscape.data.load_dataset``), on the CPU."""
    from landscape import data

    x, y = data.load_dataset(
        "mnist",
        ctx.data_root,
        num_samples=num_train,
        generator=torch.Generator().manual_seed(0),
    )
    xt, yt = data.load_dataset(
        "mnist",
        ctx.data_root,
        split="test",
        num_samples=num_test,
        generator=torch.Generator().manual_seed(0),
    )
    return x, y, xt, yt


def mnist_or_synthetic(
    ctx: Context, n: int, split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` MNIST images of ``split`` (downloaded unless ``--smoke``), or, without a
    data folder, ``n`` synthetic images (ten noisy prototypes, with a warning) that keep
    a smoke run going."""
    import warnings

    from landscape import data

    try:
        return data.load_dataset(
            "mnist",
            ctx.data_root,
            split=split,
            num_samples=n,
            generator=torch.Generator().manual_seed(ctx.seed),
            download=ctx.size != "smoke",
        )
    except Exception as err:  # no data folder
        warnings.warn(
            f"MNIST unavailable ({err}); using synthetic images", stacklevel=2
        )
        g = torch.Generator().manual_seed(ctx.seed + (split == "test"))
        y = torch.randint(0, 10, (n,), generator=g)
        proto = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        return (proto[y] + 0.3 * torch.randn(n, 1, 28, 28, generator=g)).clamp(0, 1), y


def train_warmup(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    epochs: int,
    lr: float,
    steps: int,
    ctx: Context,
):
    """PGD adversarial training (Adam, batch 64) with eps ramped linearly from 0 over
    the first half of the epochs (without the ramp a small LeNet trained from scratch
    at eps = 0.3 stays at the constant classifier); no per-epoch evaluation.
    Returns the :class:`landscape.train.TrainResult`; ``model`` is trained in place."""
    from landscape import attacks
    from landscape.data import batches
    from landscape.train import Runtime, TrainConfig, adversarial_train

    tc = TrainConfig(
        epochs=epochs,
        batch_size=64,
        optimizer="adam",
        lr=lr,
        attack=attacks.PGD(eps=eps, steps=steps) if eps > 0 else None,
        eps_schedule="linear",
        eps_kwargs={"warmup": max(epochs // 2, 1)},
        seed=ctx.seed,
        runtime=Runtime(eval_num=0, co_check_num=0, amp="off", channels_last=False),
    )
    loader = batches(
        x, y, batch_size=64, shuffle=True, seed=ctx.seed, device=ctx.device
    )
    return adversarial_train(model, loader, tc)


def save_figure(
    fig: Any, ctx: Context, stem: str | None = None, *, title: str | None = None
) -> list[Path]:
    """Save a matplotlib figure as PNG and PDF in ``ctx.out_dir`` (atomic writes),
    under the suptitle ``title`` (font size 9) when one is given."""
    from landscape.plot import savefig

    if title is not None:
        fig.suptitle(title, fontsize=9)
    return savefig(fig, ctx.out_dir / (stem or ctx.name))


def evaluate(
    ctx: Context, model: torch.nn.Module, data: Any, *, eps: float, **kw: Any
) -> tuple[Any, float, dict[str, bool | None]]:
    """:func:`landscape.evaluate.evaluate` as the figures run it (seeded with
    ``ctx.seed``, gradient-masking checks except with ``--smoke``, progress bar);
    ``kw`` are its options (``preset``, ``scale``...). Returns the result, the robust
    accuracy at ``eps`` and ``{check: passed}``."""
    from landscape import evaluate as lev

    res = lev.evaluate(
        model,
        data,
        eps=eps,
        checks=ctx.size != "smoke",
        generator=torch.Generator().manual_seed(ctx.seed),
        progressbar=True,
        **kw,
    )
    robust = float(np.atleast_1d(res.robust_accuracy)[0])
    return res, robust, {k: v.get("passed") for k, v in (res.checks or {}).items()}


def failed_checks(checks: dict[str, dict[str, bool | None]]) -> list[str]:
    """Markdown lines naming the gradient-masking checks that failed, from
    ``{row: {check: passed}}`` (none when all passed or did not run)."""
    failed = sorted(
        f"{k}: {n}" for k, c in checks.items() for n, ok in c.items() if ok is False
    )
    if not failed:
        return []
    return ["", "Gradient-masking checks that failed: " + "; ".join(failed)]


def write_markdown(ctx: Context, text: str) -> Path:
    """Write a figure's table as ``<out_dir>/<name>.md`` (atomic write)."""
    path = ctx.out_dir / f"{ctx.name}.md"
    with lio.atomic_write(path, "w") as f:
        f.write(text)
    return path


def report(ctx: Context, paths: list[Path], note: str | None = None) -> None:
    """Print what was written (and a note on the size, e.g. that a CPU size is far from
    the paper's numbers)."""
    for p in paths:
        print(f"[{ctx.name}] wrote {_rel(Path(p))}")
    if note:
        print(f"[{ctx.name}] note: {note}")


def network(ctx: Context, smoke_hidden: tuple[int, ...]) -> dict:
    """``model`` / ``model_kw`` of a figure's tiers: an MLP with ``smoke_hidden``
    units under ``--smoke``, LeNet with a 256-unit layer by default, the paper's
    network under ``--full`` (LeNet width 16, fc 1,024, no input normalisation)."""
    return dict(
        model=ctx.pick("mlp", "lenet", "lenet"),
        model_kw=ctx.pick(
            {"hidden": smoke_hidden},
            {"hidden_size": 256},
            {"width": 16, "mean": 0.0, "std": 1.0},
        ),
    )


def figure_main(
    doc: str | None,
    name: str,
    compute: Callable[[Context], FigureData],
    draw: Callable[[FigureData, Context], list[Path]],
    *,
    show: Callable[[FigureData, Context], None] | None = None,
    note: str | Callable[[Context], str] | None = None,
    full_note: bool = False,
    study: Callable[[Context, str], int] | None = None,
) -> Callable[[list[str] | None], int]:
    """The ``main(argv)`` of a figure script: parse the common flags (:func:`parser`,
    :func:`setup`); with ``--study`` / ``--from-results`` hand over to
    ``study(ctx, name)`` (``_study.tier``) when the script has a study tier; else
    ``compute(ctx)`` through :func:`cached`, ``draw(data, ctx)``, ``show(data, ctx)``
    (prints the numbers) and :func:`report` the files written with ``note`` (a note
    on the CPU sizes, or a function of the context that makes it: left out with
    ``--full`` unless ``full_note``). ``main`` returns the exit status, 0."""

    def main(argv: list[str] | None = None) -> int:
        ctx = setup(parser(doc).parse_args(argv), name)
        if study is not None and ctx.size == "study":
            return study(ctx, name)
        data = cached(ctx, name, lambda: compute(ctx))
        paths = draw(data, ctx)
        if show is not None:
            show(data, ctx)
        text = None if ctx.size == "full" and not full_note else note
        report(ctx, paths, text(ctx) if callable(text) else text)
        return 0

    return main


def paper_lenet_config(ctx: Context, eps: float, *, eval_num: int | None = None):
    """The paper's MNIST LeNet training at a constant ``eps`` (preset ``mnist-lenet``:
    LeNet width 16, 3,274,634 parameters, no normalisation, Adam 1e-4, batch 128, 100
    epochs; its PGD start in [-step, step] with the learning-curve rule of the
    paper's review, step 0.01 and ``eps / 0.01 + 10`` steps; plain training at eps 0),
    seeded with ``ctx.seed``; ``eval_num`` test images per epoch (default the
    preset's). Build its network with :func:`model_for`."""
    import dataclasses

    from landscape import train

    cfg = train.preset("mnist-lenet")
    steps = int(round(eps / 0.01)) + 10
    attack = dataclasses.replace(
        cfg.attack, eps=eps, steps=steps, alpha=0.01, alpha_rel=None
    )
    rt = cfg.runtime if eval_num is None else dataclasses.replace(
        cfg.runtime, eval_num=eval_num
    )  # fmt: skip
    return dataclasses.replace(
        cfg,
        attack=attack if eps > 0 else None,
        eps_schedule="constant",
        eps_kwargs={},
        seed=ctx.seed,
        runtime=rt,
    )


def model_for(cfg, dataset: str = "mnist"):
    """The network of a training config: ``landscape.models.build(cfg.model,
    **cfg.model_kwargs)`` (the presets' paper networks: LeNet width 16 without
    normalisation), or the width-1 LeNet of the CPU tiers when the config names no
    model (13,514 parameters, MNIST normalisation)."""
    from landscape import models

    if cfg.model is None:
        return models.build("lenet", dataset=dataset)
    return models.build(cfg.model, **{"dataset": dataset, **cfg.model_kwargs})


def num_params(model) -> int:
    """Parameters of a model (every figure states its model's size)."""
    return sum(p.numel() for p in model.parameters())


def small_lenet_config(
    ctx: Context,
    s: dict,
    eps: float,
    *,
    eval_num: int = 1000,
    eval_steps: int | None = None,
):
    """A CPU-size MNIST LeNet training run: ``s["epochs"]`` epochs of batch 50, Adam at
    ``s["lr"]``, PGD-``s["steps"]`` at ``eps`` (plain training at eps 0), no
    constant-classifier check, seeded with ``ctx.seed``; the per-epoch evaluation on
    ``eval_num`` test images with the quick preset's PGD of ``eval_steps`` steps
    (default 10)."""
    from landscape import attacks, evaluate, train

    eval_attack = None
    if eval_steps is not None:
        eval_attack = evaluate.preset_attacks("quick", eps, steps=eval_steps)[0]
    return train.TrainConfig(
        epochs=s["epochs"],
        batch_size=50,
        optimizer="adam",
        lr=s["lr"],
        attack=attacks.PGD(eps=eps, steps=s["steps"]) if eps > 0 else None,
        seed=ctx.seed,
        model="lenet",
        runtime=train.Runtime(
            eval_num=eval_num, eval_attack=eval_attack, co_check_num=0
        ),
    )


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)

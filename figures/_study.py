"""The CPU study tier (``--study``) of the figure scripts: the paper's MNIST recipe
scaled down, one shared, seeded zoo of models, cached per model and per evaluation,
and the statistics of the claims.

Every model is a :func:`landscape.train.adversarial_train` run folder under
``<cache>/study/runs/<key>/`` (config, metrics, end-of-period checkpoints, exact
resume), so a killed run resumes where it stopped and a model is trained once for all
the figures that use it. Every evaluation of a model (test accuracy, Hessian, a
robustness protocol) is a JSON file under ``<cache>/study/evals/<key>/``, written
atomically when it finishes, with its wall and CPU seconds; ``train_cost.json`` holds
the training's. A lock file per run folder keeps two processes from training the
same model at once (the second waits).

The recipe (:data:`SIZE`; Liu et al., NeurIPS 2020, README of the released code,
``train.preset("mnist-lenet")``) and what the CPU tier scales down:

=================  =========================================  ======================
setting            paper (``--full``)                          CPU study tier
=================  =========================================  ======================
network            LeNet width 16 (conv 32 / 64, fc 1024),     LeNet width 2 (conv
                   3,274,634 parameters                        4 / 8, fc 128), 52,506
data               60,000 training images; 10,000 test         16,000 (a fixed random
                                                               subset); first 2,000
epochs             100                                         16
attack             PGD-50, step 0.01 at eps 0.4 (eps/40),      PGD-5, step eps(t)/4
                   following eps(t); start in [-step, step]    (the same travel, 1.25
                                                               eps); same start
batch, optimiser   128, Adam lr 1e-4 constant                  128, Adam lr 2e-3
                                                               constant (see below)
eps schedules      constant; ``cycle_cos`` 0 -> 1.5 eps capped  the same shapes over
                   at eps (0.4 from epoch 61); ``cycle_linear``  16 epochs, per epoch
                   slope 2 eps, per epoch
input              [0, 1], no normalisation                    the same
=================  =========================================  ======================

The learning rate is the one change beyond size, and it is a different recipe: the
paper takes 46,875 Adam steps (60,000 / 128 x 100), the tier 2,000 (16,000 / 128 x
16); an Adam step moves each weight by about the learning rate, so the tier's lr is
the paper's times the ratio of steps, rounded (1e-4 x 23 ~ 2e-3). Claim 5 varies it
x1/3 and x3.

``periodic`` (the paper has no MNIST periodic run; its CIFAR-10 periodic runs are
saved at epochs 100 / 150 / 200 of 200): three periods ``[0, E/2, 3E/4, E]``, in each
eps ``cycle_cos`` from 0 to 1.5 eps capped at eps (the MNIST shape) and the lr
``cycle_jump`` (x0.1 at half and at three quarters of the period); its ensemble is
the softmax average of the three end-of-period models. The other schedules are one
period (their ensemble would be the final model alone).

Claim 7 (:func:`madry_spec`): Madry et al.'s recipe on their full-width CNN and the
full training set (eps 0.3 constant, Adam 1e-4, batch 50, no normalisation), with
PGD-10 of step 0.04 (Madry: PGD-40 of step 0.01; 10 x 0.04 is the same 0.4 of travel;
a PGD-10 of step 2.5 eps / 10 = 0.075 let the model mask against its training attack:
0.90 training adversarial accuracy, 0.07 under PGD-20 of step 0.03 after 2 epochs) from
a random point of the eps-ball (Madry's start), for :data:`MADRY_EPOCHS` epochs.

Statistics: mean, standard deviation and a 95 % t-interval over seeds
(:func:`summary`); two groups are compared with Welch's t-test (:func:`welch`; groups
without variance get no p-value); :func:`seeds_needed` is the number of seeds per
group a two-sided test at 5 % needs for 80 % power at the observed effect and spread.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _common  # noqa: E402  (figures/ is on sys.path wherever _study is imported)
import numpy as np
import torch

__all__ = [
    "SIZE",
    "Spec",
    "train_run",
    "load_final",
    "memo",
    "final_eval",
    "summary",
    "welch",
    "seeds_needed",
    "seeds_needed_one",
    "write_csv",
    "publish",
    "run",
    "verdict_line",
    "fmt_p",
    "p_eq",
    "effect",
    "verdict",
]

#: The recipe and sizes of the CPU study tier (see the module docstring).
SIZE: dict[str, Any] = dict(
    width=2,
    num_train=16000,
    num_test=2000,
    epochs=16,
    steps=5,
    alpha_rel=0.25,
    batch_size=128,
    lr=2e-3,
    eval_num=500,
    eval_steps=10,
    seeds=(0, 1, 2),
    eps=(0.0, 0.1, 0.2, 0.3, 0.4),
    final_steps=20,
    protocol_num=1000,
)

#: The models of the study are this recipe's (budget ``cpu``, published to
#: ``results/cpu/``); the committed tables of the earlier recipe (LeNet with a fixed
#: fc of 1,024 units at width 1, 212,234 parameters, Adam lr 2e-3, batch 256, PGD-5 of
#: step 2.5 eps / 5 from a random point of the eps-ball, schedules updated per
#: iteration, MNIST normalisation, 4 periods for every schedule) stay as a record in
#: ``results/`` (budget ``v1``: 8,000 images, 8 epochs) and ``results/long/``
#: (``v1-long``: 16,000 images, 16 epochs) and are redrawn with
#: ``LANDSCAPE_STUDY_BUDGET=v1`` / ``v1-long`` and ``--from-results``.
BUDGETS = _common.STUDY_BUDGETS
BUDGET = _common.STUDY_BUDGET
if BUDGET not in BUDGETS:
    raise SystemExit(
        f"error: LANDSCAPE_STUDY_BUDGET={BUDGET!r} is not a study budget - use one "
        f"of {sorted(BUDGETS)}"
    )

#: Claim 7's training length (full MNIST, PGD-10): what fits the CPU budget of a
#: sitting (~11 CPU min per epoch on this machine; Madry et al. train 100,000 steps
#: of batch 50 = 83 epochs, with PGD-40).
MADRY_EPOCHS = 3


@dataclasses.dataclass(frozen=True)
class Spec:
    """One model of the zoo.

    Attributes:
        eps: target training eps (eps = 0 is always plain training, ``constant``).
        seed: initialisation, data order and attack seed.
        schedule: ``constant | linear | cosine | periodic`` (see the module
            docstring: the paper's constant, ``cycle_linear`` and ``cycle_cos``; our
            periodic).
        activation: ``relu`` or ``gelu`` (the smooth twin).
        lr: Adam learning rate (None: :data:`SIZE`).
        arch / width: ``landscape.models.build`` name and width factor (None:
            :data:`SIZE`'s LeNet width).
        epochs / steps / num_train / batch_size: training length, PGD steps,
            training images (0: all 60,000), batch (None: :data:`SIZE`).
        recipe: ``"paper"`` (the scaled paper recipe) or ``"madry"`` (claim 7).
    """

    eps: float
    seed: int
    schedule: str = "cosine"
    activation: str = "relu"
    lr: float | None = None
    arch: str = "lenet"
    width: float | None = None
    epochs: int | None = None
    steps: int | None = None
    num_train: int | None = None
    batch_size: int | None = None
    recipe: str = "paper"

    def __post_init__(self):
        if self.eps == 0:
            object.__setattr__(self, "schedule", "constant")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; use {SCHEDULES}")
        if self.recipe not in ("paper", "madry"):
            raise ValueError(f"unknown recipe {self.recipe!r}")

    @property
    def key(self) -> str:
        """Run-folder name: recipe, architecture, schedule, eps, lr, seed and sizes."""
        return (
            f"{self.recipe}-{self.arch}-w{self.get('width'):g}-{self.activation}"
            f"-{self.schedule}-eps{self.eps:g}-lr{self.get('lr'):g}-s{self.seed}"
            f"-n{self.get('num_train')}-e{self.get('epochs')}-k{self.get('steps')}"
            f"-b{self.get('batch_size')}"
        )

    def get(self, name: str) -> Any:
        v = getattr(self, name)
        return SIZE[name] if v is None else v

    @property
    def periods(self) -> list[int] | None:
        """The period boundaries (``periodic``: ``[0, E/2, 3E/4, E]``), else None."""
        if self.schedule != "periodic":
            return None
        e = int(self.get("epochs"))
        return sorted({0, e // 2, (3 * e) // 4, e})

    def attack(self):
        """The training attack (None at eps 0)."""
        from landscape import attacks

        if self.eps <= 0:
            return None
        if self.recipe == "madry":
            return attacks.PGD(eps=self.eps, steps=self.get("steps"), alpha=0.04)
        return attacks.PGD(
            eps=self.eps,
            steps=self.get("steps"),
            alpha_rel=SIZE["alpha_rel"],
            random_start="step",
        )

    def eval_attack(self):
        """The per-epoch robust accuracy's attack, a cheap indicator (never a
        verdict): a training PGD-10 of step eps / 4 batch by batch (LeNet); for the
        Madry CNN the evaluation PGD-20 of step 0.1 eps (best iterate), the attack
        that exposed the masking of a large-step training attack."""
        from landscape import attacks

        if self.recipe == "madry":
            return attacks.PGD(
                eps=self.eps, steps=20, alpha_rel=0.1, loss="ce", keep="best"
            )
        return attacks.PGD(eps=self.eps, steps=SIZE["eval_steps"], alpha_rel=0.25)

    def config(self):
        from landscape import train

        epochs = self.get("epochs")
        eps_schedule, eps_kwargs = train.paper_eps_schedule(
            "cosine" if self.schedule == "periodic" else self.schedule, self.eps, 1.5
        )
        lr_schedule, lr_kwargs = "constant", {}
        if self.schedule == "periodic":
            lr_schedule, lr_kwargs = "cycle_jump", {"drops": [0.5, 0.75], "gamma": 0.1}
        return train.TrainConfig(
            epochs=epochs,
            batch_size=self.get("batch_size"),
            optimizer="adam",
            lr=self.get("lr"),
            attack=self.attack(),
            eps_schedule=eps_schedule,
            eps_kwargs=eps_kwargs,
            lr_schedule=lr_schedule,
            lr_kwargs=lr_kwargs,
            periods=self.periods,
            schedule_update="epoch",
            seed=self.seed,
            model=self.arch,
            model_kwargs={k: v for k, v in _build_kwargs(self).items() if k != "name"},
            dataset=train.DataRecord("mnist", num_train=self.get("num_train") or 60000),
            # the per-epoch robust accuracy: a training PGD (step eps / 4) batch by
            # batch, a cheap indicator, never a verdict
            runtime=train.Runtime(
                eval_num=SIZE["eval_num"] if self.recipe == "paper" else 1000,
                eval_attack=self.eval_attack(),
                co_check_num=0,
                checkpoint_every=0 if self.recipe == "paper" else 300,
                amp="off",
                channels_last=False,
            ),
        )


SCHEDULES = ("constant", "linear", "cosine", "periodic")


def _build_kwargs(spec: Spec) -> dict:
    """``landscape.models.build`` keywords of a spec's network: inputs in [0, 1]
    without normalisation (the paper's and Madry's)."""
    return dict(
        name=spec.arch,
        dataset="mnist",
        width=spec.get("width") if spec.arch == "lenet" else 1,
        activation=spec.activation,
        mean=0.0,
        std=1.0,
    )


def madry_spec(seed: int = 0) -> Spec:
    """Claim 7's model: Madry's CNN at full width (3,274,634 parameters) on all 60,000
    training images, eps 0.3 constant, PGD-10 of step 0.04, Adam 1e-4, batch 50,
    :data:`MADRY_EPOCHS` epochs (see the module docstring)."""
    return Spec(
        eps=0.3,
        seed=seed,
        schedule="constant",
        arch="madry_cnn",
        width=1,
        lr=1e-4,
        epochs=MADRY_EPOCHS,
        steps=10,
        num_train=0,
        batch_size=50,
        recipe="madry",
    )


def num_params(spec: Spec) -> int:
    """Parameters of a spec's network."""
    from landscape import models

    return sum(p.numel() for p in models.build(**_build_kwargs(spec)).parameters())


def root(ctx) -> Path:
    return Path(ctx.cache_dir) / "study"


_DATA: dict[tuple, tuple[torch.Tensor, ...]] = {}


def mnist(ctx, num_train: int | None = None) -> tuple[torch.Tensor, ...]:
    """``(x, y, x_test, y_test)``: ``num_train`` training images (0: all 60,000; else
    a fixed random subset, drawn here from seed 0 so that it does not depend on
    ``landscape.data``'s subset rule) and the first :data:`SIZE` ``num_test`` test
    images (loaded once per process)."""
    n = SIZE["num_train"] if num_train is None else int(num_train)
    key = (str(ctx.data_root), n)
    if key not in _DATA:
        from landscape import data

        x, y = data.load_dataset("mnist", ctx.data_root)
        if n:
            g = torch.Generator().manual_seed(0)
            idx = torch.randperm(len(y), generator=g)[:n].sort().values
            x, y = x[idx], y[idx]
        xt, yt = data.load_dataset("mnist", ctx.data_root, split="test")
        _DATA[key] = (x, y, xt[: SIZE["num_test"]], yt[: SIZE["num_test"]])
    return _DATA[key]


class _Lock:
    """An exclusive lock file (``O_EXCL``) holding the owner's pid; a lock whose owner
    is gone is taken over. Waits (polling) while another live process holds it."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text() or 0)
                    os.kill(pid, 0)
                except (ValueError, ProcessLookupError):
                    self.path.unlink(missing_ok=True)  # stale lock
                    continue
                except (FileNotFoundError, PermissionError):
                    continue
                time.sleep(10)
                continue
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return self

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def _finished(run_dir: Path, epochs: int) -> bool:
    from landscape import train

    if not (run_dir / "final.pt").exists():
        return False
    try:
        res = train.load_run(run_dir)
    except (FileNotFoundError, ValueError):
        return False
    ep = res.metrics.get("epoch")
    return ep is not None and len(ep) and int(np.asarray(ep)[-1]) >= epochs


def train_run(ctx, spec: Spec, *, compute: bool = True) -> Path | None:
    """Train (or resume, or just find) the model of ``spec``; returns its run folder
    (None when it is not finished and ``compute`` is False). The wall and CPU
    seconds of every sitting are added up in ``evals/<key>/train_cost.json``."""
    from landscape import models, train

    run_dir = root(ctx) / "runs" / spec.key
    if _finished(run_dir, spec.get("epochs")):
        return run_dir
    if not compute:
        return None
    with _Lock(run_dir.parent / (run_dir.name + ".lock")):
        if _finished(run_dir, spec.get("epochs")):
            return run_dir
        x, y, xt, yt = mnist(ctx, spec.get("num_train"))
        cfg = spec.config()
        torch.manual_seed(spec.seed)
        model = models.build(**_build_kwargs(spec)).to(ctx.device)
        t0, c0 = time.perf_counter(), time.process_time()
        print(f"[study] training {spec.key} ...", flush=True)
        try:
            train.adversarial_train(
                model,
                (x.to(ctx.device), y.to(ctx.device)),
                cfg,
                test_data=(xt[: cfg.runtime.eval_num], yt[: cfg.runtime.eval_num]),
                run_dir=run_dir,
            )
        finally:
            _add_cost(ctx, spec, time.perf_counter() - t0, time.process_time() - c0)
        print(
            f"[study] trained {spec.key} in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    return run_dir


def _add_cost(ctx, spec: Spec, wall: float, cpu: float) -> None:
    """Add a training sitting's seconds to ``evals/<key>/train_cost.json``."""
    from landscape.io import atomic_write

    path = root(ctx) / "evals" / spec.key / "train_cost.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    out = {
        "seconds": round(old.get("seconds", 0.0) + wall, 2),
        "cpu_seconds": round(old.get("cpu_seconds", 0.0) + cpu, 2),
        "sittings": int(old.get("sittings", 0)) + 1,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as f:
        json.dump(out, f)


def load_final(ctx, spec: Spec, *, ensemble: bool = False) -> torch.nn.Module:
    """The final model (or the end-of-period ensemble) of a finished run."""
    from landscape import checkpoints, models

    run_dir = root(ctx) / "runs" / spec.key
    template = models.build(**_build_kwargs(spec))
    return checkpoints.load_model(
        run_dir, template, ensemble=ensemble, device=ctx.device
    )


def memo(
    ctx, spec: Spec, name: str, fn: Callable[[], dict], *, compute: bool = True
) -> dict | None:
    """The JSON evaluation ``name`` of ``spec`` (computed by ``fn`` and cached)."""
    from landscape.io import atomic_write

    path = root(ctx) / "evals" / spec.key / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    if not compute:
        return None
    t0, c0 = time.perf_counter(), time.process_time()
    out = dict(fn())
    out["seconds"] = round(time.perf_counter() - t0, 2)
    out["cpu_seconds"] = round(time.process_time() - c0, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as f:
        json.dump(out, f)
    print(f"[study] {spec.key} {name}: {out['seconds']:.0f} s", flush=True)
    return out


def _measure(
    ctx,
    spec: Spec,
    name: str,
    fn: Callable[[torch.nn.Module, tuple[torch.Tensor, ...]], dict],
    *,
    compute: bool,
    ensemble: bool = False,
) -> dict | None:
    """The evaluation ``name`` of ``spec`` (:func:`memo`): ``fn(model, data)`` with the
    final model (or the end-of-period ensemble) and the run's :func:`mnist` data
    ``(x, y, x_test, y_test)``, training the model first if needed. None when it is
    not available (``compute`` off)."""
    if train_run(ctx, spec, compute=compute) is None:
        return None

    def run() -> dict:
        model = load_final(ctx, spec, ensemble=ensemble)
        return fn(model, mnist(ctx, spec.get("num_train")))

    return memo(ctx, spec, name, run, compute=compute)


def final_eval(ctx, spec: Spec, *, compute: bool = True) -> dict | None:
    """Train (if needed) and measure the final model on :data:`SIZE` ``num_test`` test
    images: clean accuracy and loss; PGD-20 (step 2.5 eps / 20, best iterate: a
    labelled cheap indicator, never a verdict) accuracy at the training eps and at
    0.1 and 0.3; the robust test loss at the training eps (cross-entropy at the last
    iterate of a PGD-20 that ascends it from a random start); the last logged
    training metrics. None when not available (``compute`` off)."""

    def fn(model: torch.nn.Module, data: tuple[torch.Tensor, ...]) -> dict:
        from landscape import attacks, train

        _, _, xt, yt = data
        xt, yt = xt.to(ctx.device), yt.to(ctx.device)
        out: dict[str, Any] = {}
        k = SIZE["final_steps"]
        with torch.no_grad():
            logits = model(xt)
        out["clean_acc"] = float((logits.argmax(1) == yt).float().mean())
        out["clean_loss"] = float(torch.nn.functional.cross_entropy(logits, yt))
        for e in sorted({spec.eps, 0.1, 0.3} - {0.0}):
            best = attacks.PGD(eps=e, steps=k, loss="ce", keep="best")
            correct = []
            g = torch.Generator().manual_seed(0)
            for i in range(0, len(xt), 500):
                xa = best(model, xt[i : i + 500], yt[i : i + 500], g)
                with torch.no_grad():
                    correct.append(model(xa).argmax(1) == yt[i : i + 500])
            out[f"pgd20_acc@{e:g}"] = float(torch.cat(correct).float().mean())
        if spec.eps > 0:
            ascend = attacks.PGD(eps=spec.eps, steps=k)  # last iterate, loss ascent
            g = torch.Generator().manual_seed(0)
            total = 0.0
            for i in range(0, len(xt), 500):
                xa = ascend(model, xt[i : i + 500], yt[i : i + 500], g)
                with torch.no_grad():
                    total += float(
                        torch.nn.functional.cross_entropy(
                            model(xa), yt[i : i + 500], reduction="sum"
                        )
                    )
            out["robust_loss"] = total / len(yt)
        m = train.load_run(root(ctx) / "runs" / spec.key).metrics
        for key in ("train_loss", "train_acc", "dist_init", "time"):
            if key in m:
                out[f"final_{key}"] = float(np.asarray(m[key])[-1])
        out["num_params"] = num_params(spec)
        return out

    return _measure(ctx, spec, "final_eval", fn, compute=compute)


def curves(ctx, spec: Spec) -> dict[str, np.ndarray]:
    """Per-epoch metric columns of a run folder."""
    from landscape import train

    m = train.load_run(root(ctx) / "runs" / spec.key).metrics
    return {k: np.asarray(v, dtype=float) for k, v in m.items()}


# ------------------------------------------------------------------- statistics


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample std, n and the 95 % t-interval of the mean of ``values``."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    n = len(v)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci95": [None, None]}
    mean = float(v.mean())
    std = float(v.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / np.sqrt(n)) if n > 1 else np.nan
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "ci95": [mean - half, mean + half] if n > 1 else [None, None],
        "values": v.tolist(),
    }


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Welch's t-test of ``mean(a) != mean(b)``: difference, its 95 % interval
    (Welch-Satterthwaite), t, p, significant at 5 %. With fewer than 2 values in a
    group, or no variance in either group (e.g. two stalled groups at the same
    constant), there is no test: p is None and ``note`` says why (a p-value would be
    0 or undefined, not evidence)."""
    from scipy import stats

    a = np.asarray([x for x in a if x is not None and np.isfinite(x)], float)
    b = np.asarray([x for x in b if x is not None and np.isfinite(x)], float)
    out: dict[str, Any] = {"diff": None, "ci95": [None, None], "t": None, "p": None}
    out.update(significant=None, n=[len(a), len(b)], note=None)
    if len(a) < 2 or len(b) < 2:
        out["note"] = "fewer than 2 seeds"
        if len(a) and len(b):
            out["diff"] = float(a.mean() - b.mean())
        return out
    diff = float(a.mean() - b.mean())
    out["diff"] = diff
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        out["note"] = "no variance"
        return out
    with warnings.catch_warnings():
        # a group of identical values (a stalled model at the constant classifier's
        # accuracy) beside one with variance: scipy warns of "catastrophic
        # cancellation" in that group's zero variance, which is exact here
        warnings.simplefilter("ignore", RuntimeWarning)
        t, p = stats.ttest_ind(a, b, equal_var=False)
    dof = (va + vb) ** 2 / (
        (va**2 / (len(a) - 1) if va else 0.0) + (vb**2 / (len(b) - 1) if vb else 0.0)
    )
    half = float(stats.t.ppf(0.975, dof) * math.sqrt(va + vb))
    out.update(
        t=float(t),
        p=float(p),
        significant=bool(p < 0.05),
        ci95=[diff - half, diff + half],
    )
    return out


def seeds_needed(
    effect: float, std: float, *, power: float = 0.8, alpha: float = 0.05
) -> int | None:
    """Seeds per group that a two-sided two-sample t-test at level ``alpha`` needs
    to detect a difference ``effect`` with probability ``power`` when each group
    has standard deviation ``std`` (noncentral t, equal groups; the same formula
    gives the seeds of a one-sample test of a per-seed slope with ``std`` its
    spread: call it with ``two_sample=False``, see :func:`seeds_needed_one`).
    None when the effect is 0 or the spread unknown.

    Example:
        >>> seeds_needed(1.0, 1.0)  # a one-standard-deviation effect
        17
    """
    from scipy import stats

    if not (effect and std and np.isfinite(effect) and np.isfinite(std)):
        return None
    d = abs(effect) / std
    for n in range(2, 10_000):
        dof = 2 * n - 2
        crit = stats.t.ppf(1 - alpha / 2, dof)
        nc = d * math.sqrt(n / 2)
        if 1 - stats.nct.cdf(crit, dof, nc) + stats.nct.cdf(-crit, dof, nc) >= power:
            return n
    return None


def seeds_needed_one(
    mean: float, std: float, *, power: float = 0.8, alpha: float = 0.05
) -> int | None:
    """Seeds a two-sided one-sample t-test (e.g. of per-seed slopes against 0) needs
    to detect ``mean`` with probability ``power`` when the per-seed values have
    standard deviation ``std``. None when the mean is 0 or the spread unknown.

    Example:
        >>> seeds_needed_one(1.0, 1.0)
        10
    """
    from scipy import stats

    if not (mean and std and np.isfinite(mean) and np.isfinite(std)):
        return None
    d = abs(mean) / std
    for n in range(2, 10_000):
        crit = stats.t.ppf(1 - alpha / 2, n - 1)
        nc = d * math.sqrt(n)
        if (
            1 - stats.nct.cdf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc)
            >= power
        ):
            return n
    return None


def fmt_p(w: dict[str, Any]) -> str:
    """A :func:`welch` p-value as text: ``"no variance"`` / ``"fewer than 2 seeds"``
    when there is no test (never ``0.0``), ``"< 0.0001"`` below that, else two
    significant digits.

    Example:
        >>> fmt_p(welch([1.0, 1.0], [0.0, 0.0]))
        'no variance'
        >>> fmt_p({"p": 0.00231})
        '0.0023'
    """
    p = w.get("p")
    if p is None:
        return w.get("note") or "no test"
    if p < 1e-4:
        return "< 0.0001"
    return f"{p:.2g}"


def p_eq(w: dict[str, Any]) -> str:
    """``"p = 0.0023"`` / ``"p < 0.0001"`` (:func:`fmt_p` with its relation).

    Example:
        >>> p_eq({"p": 1e-6}), p_eq({"p": 0.00231})
        ('p < 0.0001', 'p = 0.0023')
    """
    s = fmt_p(w)
    return f"p {s}" if s.startswith("<") else f"p = {s}"


def effect(
    w: dict[str, Any], scale: float = 1.0, digits: int = 1, unit: str = ""
) -> str:
    """A :func:`welch` difference as text, reported as an effect only when its 95 %
    interval excludes 0: ``"+82.8 points [80.1, 85.5], p = 0.0023"``; else ``"no
    significant difference (-3.0 [-50.0, +2.0] includes 0)"``; without a test the
    difference and why there is no p-value.

    Example:
        >>> effect({"diff": -0.24, "ci95": [-0.5, 0.02], "p": 0.08}, 100, 0, " points")
        'no significant difference (-24 points [-50, +2] includes 0, p = 0.08)'
    """
    d = w.get("diff")
    if d is None:
        return "no data"
    lo, hi = w.get("ci95") or [None, None]
    num = f"{d * scale:+.{digits}f}{unit}"
    if lo is None or hi is None:
        return f"{num} ({fmt_p(w)}, no interval)"
    ci = f"[{lo * scale:.{digits}f}, {hi * scale:+.{digits}f}]"
    if lo <= 0 <= hi:
        return f"no significant difference ({num} {ci} includes 0, {p_eq(w)})"
    return f"{num} {ci}, {p_eq(w)}"


def verdict(
    w: dict[str, Any], direction: int, *, need: int | None = None, what: str = ""
) -> str:
    """The claim table's verdict word for a :func:`welch` (or :func:`slope_test`
    summary) result whose claimed sign is ``direction`` (+1 / -1): **holds**
    (significant in that direction), **does not hold** (significant the other way),
    else **undecided** with why (no variance, too few seeds) and ``need``, the seeds
    per group a decisive test needs at the observed effect and spread. "does not
    hold" for a well-powered null and "not tested at this size" are the caller's.

    Example:
        >>> verdict({"diff": 0.8, "ci95": [0.7, 0.9], "p": 0.002}, +1)
        'holds (p = 0.002)'
        >>> verdict({"diff": 0.1, "ci95": [-0.2, 0.4], "p": 0.4}, +1, need=12)
        'undecided (interval includes 0; a decisive test needs 12 seeds per group)'
    """
    lo, hi = w.get("ci95") or [None, None]
    p = w.get("p")
    if p is not None and lo is not None and (lo > 0 or hi < 0):
        word = "holds" if (lo > 0) == (direction > 0) else "does not hold"
        return f"{word} ({p_eq(w)}{what})"
    why = w.get("note") or "interval includes 0"
    tail = f"; a decisive test needs {need} seeds per group" if need else ""
    return f"undecided ({why}{tail})"


def fmt(s: dict[str, Any], scale: float = 1.0, digits: int = 1) -> str:
    """``"mean +- std"`` of a :func:`summary` (times ``scale``), or ``"not run"``."""
    if not s or s.get("mean") is None:
        return "not run"
    if s.get("n", 0) < 2:
        return f"{s['mean'] * scale:.{digits}f} (1 seed)"
    return f"{s['mean'] * scale:.{digits}f} +- {s['std'] * scale:.{digits}f}"


def eps_slope(
    per: dict[float, list[dict]], value: Callable[[dict], float], seeds: Sequence[int]
) -> dict[str, Any] | None:
    """The per-seed slope test (:func:`slope_test`) of ``value`` against eps over the
    models of ``per`` (eps -> models with a ``"seed"``), one line per seed of
    ``seeds``; None when no seed has models at two eps."""
    xs, ys = [], []
    for seed in seeds:
        pts = [
            (e, value(g)) for e, got in per.items() for g in got if g["seed"] == seed
        ]
        xs.append([p[0] for p in pts])
        ys.append([p[1] for p in pts])
    return slope_test(xs, ys) if any(len(x) > 1 for x in xs) else None


def eps_rows(
    group: str,
    per: dict[float, list[dict]],
    value: Callable[[dict], float],
    label: str,
    columns: Sequence[tuple[Callable[[dict], float], float, int]],
) -> tuple[list[list], dict[str, dict]]:
    """The per-eps table rows of a claim figure and the Welch tests of ``value``
    against eps 0: per eps with models, ``[group, eps, n, final train loss, clean
    accuracy (%), *columns, p]``, each column ``(value of a model, scale, digits)``
    as mean +- std; the tests are keyed ``"<group>: <label> eps <eps> vs 0"``."""
    base = [value(g) for g in per.get(0.0, [])]
    rows, tests = [], {}
    for eps, got in per.items():
        if not got:
            continue
        w = welch([value(g) for g in got], base) if eps > 0 else {"p": None}
        tests[f"{group}: {label} eps {eps:g} vs 0"] = w
        cols = [fmt(summary([f(g) for g in got]), sc, d) for f, sc, d in columns]
        loss = fmt(summary([g["final_train_loss"] for g in got]), digits=3)
        acc = fmt(summary([g["clean_acc"] for g in got]), 100)
        rows.append([group, eps, len(got), loss, acc, *cols,
                     fmt_p(w) if w.get("n") else None])  # fmt: skip
    return rows, tests


def write_csv(
    path: Path,
    columns: Sequence[str],
    rows: Sequence[Sequence],
    *,
    meta: dict | None = None,
) -> Path:
    """A small CSV table (atomic write); with ``meta`` (a study table's), headed by a
    ``# commit ...; command: ...`` line."""
    import csv
    import io as _io

    from landscape.io import atomic_write

    buf = _io.StringIO()
    if meta is not None:
        buf.write(f"# commit {meta.get('commit')}; command: {meta.get('command')}\n")
    w = csv.writer(buf)
    w.writerow(columns)
    w.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as f:
        f.write(buf.getvalue())
    return path


# --------------------------------------------------------------- the claims' zoo


def zoo(
    schedules: Sequence[str] = ("constant",),
    eps: Sequence[float] = SIZE["eps"],
    seeds: Sequence[int] = SIZE["seeds"],
    **kw,
) -> list[Spec]:
    """The specs of a grid (eps = 0 appears once, as plain training)."""
    out: list[Spec] = []
    for sch in schedules:
        for e in eps:
            for s in seeds:
                spec = Spec(eps=float(e), seed=int(s), schedule=sch, **kw)
                if spec not in out:
                    out.append(spec)
    return out


def hessian_attack(eps: float):
    """The adversarial examples of the Hessian measurements: the paper's
    (``run/calc_hessian.py`` and its README example, and the NeurIPS review's
    description): PGD of step 0.01 with ``eps / 0.01 + 10`` steps (20 at 0.1, 50 at
    0.4), starting uniformly in ``[-0.01, 0.01]``, last iterate."""
    from landscape import attacks

    return attacks.PGD(
        eps=eps, steps=int(round(eps / 0.01)) + 10, alpha=0.01, random_start="step"
    )


def hessian_eval(ctx, spec: Spec, *, compute: bool = True) -> dict | None:
    """Top-5 Hessian eigenvalues (Lanczos) of the clean and the adversarial training
    loss and the Hutch++ trace (60 probes) of the adversarial one, on the first 1,000
    training images (adversarial examples of :func:`hessian_attack` at the training
    eps, generated once at the final model; the paper: top-20 by power iteration on
    all 60,000)."""

    def fn(model: torch.nn.Module, data: tuple[torch.Tensor, ...]) -> dict:
        from landscape import attacks, hessian

        x, y, _, _ = data
        fixed = [(x[i : i + 500], y[i : i + 500]) for i in range(0, 1000, 500)]
        lf = torch.nn.CrossEntropyLoss()
        g = torch.Generator().manual_seed(0)
        adv = fixed
        if spec.eps > 0:
            adv = attacks.perturb_batches(
                model, fixed, hessian_attack(spec.eps), generator=g
            )
        ec = hessian.top_eigenvalues(
            model, lf, fixed, num=5, generator=g, return_vectors=False
        )
        ea = ec
        if spec.eps > 0:
            ea = hessian.top_eigenvalues(
                model, lf, adv, num=5, generator=g, return_vectors=False
            )
        tr = hessian.trace(
            model, lf, adv, num_matvecs=60, method="hutch++", generator=g
        )
        with torch.no_grad():
            loss_adv = float(np.mean([float(lf(model(a), b)) for a, b in adv]))
            loss_clean = float(np.mean([float(lf(model(a), b)) for a, b in fixed]))
        return {
            "top_clean": np.asarray(ec.eigenvalues).tolist(),
            "top_adv": np.asarray(ea.eigenvalues).tolist(),
            "trace_adv": float(tr.estimate),
            "trace_adv_se": float(tr.std_error),
            "loss_adv": loss_adv,
            "loss_clean": loss_clean,
        }

    return _measure(ctx, spec, "hessian", fn, compute=compute)


SCATTER_SCALES = (1e-4, 1e-3, 1e-2, 1e-1)


def scattering_eval(ctx, spec: Spec, *, compute: bool = True) -> dict | None:
    """Gradient scattering of the adversarial loss at the training eps (4 random
    directions, scales 1e-4..1e-1, PGD-10 recomputed at ``w + s v`` with the same
    start) on 256 test images; the excess ``||delta g||`` as s -> 0 (intercept), also
    relative to ``||g(w)||`` (``excess_rel``; for evaluations cached before it existed,
    :func:`excess_rel` gives excess / mean ``||g||``)."""

    def fn(model: torch.nn.Module, data: tuple[torch.Tensor, ...]) -> dict:
        from landscape import attacks, scattering

        _, _, xt, yt = data
        ev = [(xt[i : i + 128], yt[i : i + 128]) for i in range(0, 256, 128)]
        res = scattering.scattering(
            model,
            None,
            ev,
            eps=[spec.eps],
            scales=SCATTER_SCALES,
            attack=attacks.PGD(eps=spec.eps, steps=10),
            directions="unit",
            num_directions=4,
            generator=torch.Generator().manual_seed(spec.seed),
        )
        return {
            "excess": float(res.excess().mean()),
            # the excess relative to ||g(w)|| per batch (claim 2's second measure)
            "excess_rel": float(np.nanmean(res.relative_excess())),
            # arrays of shape (E, D, S, B): eps, direction, scale, batch
            "ratio": np.asarray(res.ratio).mean(axis=(0, 1, 3)).tolist(),
            "grad_diff": np.asarray(res.grad_diff).mean(axis=(0, 1, 3)).tolist(),
            "cosine": np.asarray(res.cosine).mean(axis=(0, 1, 3)).tolist(),
            "pert_cosine": np.asarray(res.pert_cosine).mean(axis=(0, 1, 3)).tolist(),
            "grad_norm": float(np.asarray(res.grad_norm).mean()),
            "loss": float(np.asarray(res.loss).mean()),
        }

    return _measure(ctx, spec, "scattering", fn, compute=compute)


def excess_rel(sc: dict) -> float:
    """A scattering evaluation's excess relative to ``||g(w)||``: the recorded
    per-batch mean, else (older caches) the excess over the mean gradient norm."""
    if sc.get("excess_rel") is not None:
        return float(sc["excess_rel"])
    return float(sc["excess"]) / float(sc["grad_norm"])


def protocol_eval(
    ctx,
    spec: Spec,
    protocol: str,
    *,
    eps: float | None = None,
    num: int | None = None,
    ensemble: bool = False,
    compute: bool = True,
) -> dict | None:
    """``landscape.evaluate.evaluate`` with a preset at its full attack budgets on the
    first ``num`` test images (default :data:`SIZE` ``protocol_num``), for the final
    model or the end-of-period ensemble, with the gradient-masking checks on
    (recorded with the result: ``checks`` and ``failed_checks``); resumable: the
    protocol's per-batch state file is kept next to the result."""
    num = SIZE["protocol_num"] if num is None else int(num)
    if train_run(ctx, spec, compute=compute) is None:
        return None
    from landscape import evaluate

    eps = spec.eps if eps is None else eps
    name = f"{protocol}{'_ens' if ensemble else ''}_eps{eps:g}_n{num}"
    # a result or a half-done state of an older definition of the preset (e.g. the
    # standard protocol before FAB-T joined it) is stale: drop it and recompute
    preset = evaluate.preset_attacks(protocol, eps)
    current = [a.name for a in preset]
    folder = root(ctx) / "evals" / spec.key
    defn = [a.to_dict() for a in preset]
    sig = hashlib.sha1(repr(defn).encode()).hexdigest()[:8]
    cached = folder / f"{name}.json"
    if cached.exists() and json.loads(cached.read_text()).get("attacks") != current:
        print(f"[study] {spec.key} {name}: stale ({current} now), recomputing")
        cached.unlink()
    for old in folder.glob(f"{name}*.state.pt"):
        if old.name != f"{name}.{sig}.state.pt":
            old.unlink()

    def fn() -> dict:
        model = load_final(ctx, spec, ensemble=ensemble)
        _, _, xt, yt = mnist(ctx, spec.get("num_train"))
        state = folder / f"{name}.{sig}.state.pt"
        res = evaluate.evaluate(
            model,
            (xt[:num].to(ctx.device), yt[:num].to(ctx.device)),
            eps=eps,
            preset=protocol,
            checks=True,
            state_path=state,
            generator=torch.Generator().manual_seed(0),
        )
        checks = {
            k: {"passed": v.get("passed"), "detail": str(v.get("detail", ""))}
            for k, v in (res.checks or {}).items()
        }
        out = {
            "clean_acc": float(res.clean_accuracy),
            "robust_acc": float(np.atleast_1d(res.robust_accuracy)[0]),
            "per_attack": {
                k: float(np.atleast_1d(v)[0])
                for k, v in res.per_attack_accuracy().items()
            },
            "attacks": list(res.attacks),
            "num": num,
            "checks": checks,
            "failed_checks": sorted(
                k for k, v in checks.items() if v["passed"] is False
            ),
        }
        state.unlink(missing_ok=True)
        return out

    return memo(ctx, spec, name, fn, compute=compute)


# ------------------------------------------------------------- publishing, plots


def cost(ctx, spec: Spec) -> float:
    """Seconds this model cost so far: training wall time plus its evaluations."""
    from landscape import train

    total = 0.0
    run_dir = root(ctx) / "runs" / spec.key
    if (run_dir / "config.json").exists():
        m = train.load_run(run_dir).metrics
        if "time_total" in m and len(m["time_total"]):
            total += float(np.asarray(m["time_total"])[-1])
    for p in (root(ctx) / "evals" / spec.key).glob("*.json"):
        total += float(json.loads(p.read_text()).get("seconds", 0.0))
    return total


def assemble(ctx, name: str, fn: Callable[..., Any]):
    """A study figure's ``FigureData``: loaded from ``results/`` with
    ``--from-results``; else built by ``fn(compute=...)`` from the zoo's caches
    (training what is missing unless ``--collect``), stamped with the commit of this
    code, the commit that ran the models (``<cache>/study/COMMIT`` when present), the
    command, the date and the machine load."""
    import _common

    if ctx.from_results:
        path = _common.PUBLISHED / f"{name}_study.npz"
        if not path.exists():
            raise SystemExit(
                f"[{name}] {path} not found: this figure's study tables are not "
                "committed (not run); run it with --study first"
            )
        return _common.FigureData.load(path)
    t0 = time.perf_counter()
    fd = fn(compute=not ctx.collect)
    runs_commit = root(ctx) / "COMMIT"
    meta = dict(fd.meta)
    meta.update(
        size="study",
        commit=_common.commit(),
        runs_commit=runs_commit.read_text().strip() if runs_commit.exists() else None,
        command=" ".join(["python", Path(sys.argv[0]).name, *sys.argv[1:]]),
        date=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        load_average=list(os.getloadavg()),
        num_cpus=os.cpu_count(),
        threads=torch.get_num_threads(),
        collect_only=bool(ctx.collect),
        assemble_seconds=round(time.perf_counter() - t0, 2),
    )
    return dataclasses.replace(fd, meta=meta)


def figure_data(
    arrays: dict, columns: Sequence[str], rows: list, cost: float, **extra: Any
):
    """A study figure's ``FigureData``: its arrays and the table ``{"columns", "rows",
    **extra, "size": SIZE, "compute_seconds": cost}`` (every study table records the
    zoo's size and what its models cost)."""
    import _common

    table = {"columns": list(columns), "rows": rows, **extra}
    table.update(size=dict(SIZE), compute_seconds=round(cost, 1))
    return _common.FigureData(arrays=arrays, table=table)


def publish(
    ctx, key: str, fd, columns: Sequence[str], rows: Sequence[Sequence]
) -> list[Path]:
    """Copy a study figure's table (``FigureData``: npz + JSON, with commit, command
    and wall time in its meta) into ``results/`` and write its CSV there; a redraw
    from ``results/`` (``--from-results``) writes nothing but the figures."""
    import _common

    if ctx.from_results:
        return []
    npz = _common.PUBLISHED / f"{key}_study.npz"
    fd.save(npz)
    csv = write_csv(_common.PUBLISHED / f"{key}_study.csv", columns, rows, meta=fd.meta)
    return [npz, Path(f"{npz}.json"), csv]


def run(
    ctx,
    name: str,
    compute: Callable[..., Any],
    draw: Callable[..., list[Path]],
    *,
    more: Callable[..., list[Path]] | None = None,
    tables: Sequence[str] = ("rows",),
    test_line: Callable[[str, dict], str | None] | None = None,
) -> int:
    """The ``--study`` / ``--from-results`` main of a figure script: the table
    (:func:`assemble` of ``compute(ctx, compute=...)``), its figures
    (``draw(fd, ctx)``), the table published in ``results/`` (:func:`publish`, plus
    what ``more(fd, ctx)`` writes), the rows of ``fd.table[t]`` for each of
    ``tables`` and one ``test_line(key, test)`` per entry of ``fd.table["tests"]``
    (None: not printed) on stdout, and the files written. Returns 0."""
    import _common

    fd = assemble(ctx, name, functools.partial(compute, ctx))
    paths = draw(fd, ctx)
    paths += publish(ctx, name, fd, fd.table["columns"], fd.table["rows"])
    if more is not None:
        paths += more(fd, ctx)
    for t in tables:
        for r in fd.table[t]:
            print(f"[{name}] " + " | ".join(str(v) for v in r))
    if test_line is not None:
        for k, test in fd.table["tests"].items():
            line = test_line(k, test)
            if line is not None:
                print(f"[{name}] {line}")
    _common.report(ctx, paths)
    return 0


def tier(
    compute: Callable[..., Any], draw: Callable[..., list[Path]], **options: Any
) -> Callable[..., int]:
    """A figure script's study tier, for ``_common.figure_main(study=...)``: the
    ``study(ctx, name)`` that calls :func:`run` with ``compute``, ``draw`` and its
    ``options`` (``more``, ``tables``, ``test_line``)."""
    return lambda ctx, name: run(ctx, name, compute, draw, **options)


def verdict_line(digits: int) -> Callable[[str, dict], str | None]:
    """A ``test_line`` for :func:`run`: ``"<key>: <verdict> (<slope>)"`` of each
    :func:`slope_test` (tests without a verdict are not printed)."""

    def line(key: str, test: dict) -> str | None:
        if "verdict" not in test:
            return None
        return f"{key}: {test['verdict']} ({fmt(test['slope'], digits=digits)})"

    return line


#: the earlier recipe's network (budgets v1 / v1-long): LeNet width 1 with a fixed
#: fc of 1,024 units, MNIST normalisation
V1_MODEL = "LeNet w1 (fc 1,024), 212,234 params"


_V1_SIZES = {
    "v1": {"num_train": 8000, "epochs": 8, "steps": 5},
    "v1-long": {"num_train": 16000, "epochs": 16, "steps": 5},
}


def recipe_label(fd=None) -> str:
    """Which recipe and size a study figure's data comes from: the budget's model
    and parameters, images, epochs and training attack (from ``fd.table["size"]``
    when given, else :data:`SIZE`)."""
    size = dict(SIZE)
    size.update(_V1_SIZES.get(BUDGET, {}))  # tables without their size (fig05)
    if fd is not None:
        size.update(fd.table.get("size") or {})
    if BUDGET == "cpu":
        spec = Spec(eps=0.4, seed=0)
        recipe = (
            f"paper's recipe scaled down: LeNet w{spec.get('width'):g}, "
            f"{num_params(spec):,} params"
        )
    else:
        recipe = f"earlier recipe ({BUDGET}): {V1_MODEL}"
    return (
        f"{recipe}, {int(size['num_train']):,} MNIST images, {size['epochs']} epochs, "
        f"PGD-{size['steps']}"
    )


def save_claim(fig, ctx, fd, what: str, spread: str) -> list[Path]:
    """Save a claim's figure titled ``"<what><recipe, network, size>; <spread>"``
    (:func:`recipe_label`): every study figure states its recipe, model, parameters
    and size, and what its error bars are."""
    return _common.save_figure(fig, ctx, title=f"{what}{recipe_label(fd)}; {spread}")


def band(ax, x, ys, label: str | None = None, *, log: bool = False, **kw) -> None:
    """Mean over seeds (rows of ``ys``) as a line, +- one std as a band (none for one
    seed); ``log``: a log axis, the band clipped at the smallest positive value so it
    does not fall off the axis."""
    ys = np.atleast_2d(np.asarray(ys, float))
    m = np.nanmean(ys, axis=0)
    (line,) = ax.plot(x, m, label=label, **kw)
    if ys.shape[0] < 2:
        return
    sd = np.nanstd(ys, axis=0, ddof=1)
    lo, hi = m - sd, m + sd
    if log:
        floor = np.nanmin(ys[ys > 0]) if np.any(ys > 0) else 1e-12
        lo = np.maximum(lo, floor / 2)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)


def stalled(row: dict | None) -> bool | None:
    """A run that stayed at the constant classifier: test clean accuracy < 20 % (the
    constant classifier gets 11.35 % on MNIST's test set; its training loss is log 10)."""
    if row is None or "clean_acc" not in row:
        return None
    return bool(row["clean_acc"] < 0.2)


def slope_test(xs_per_seed: Sequence[Sequence[float]], ys_per_seed) -> dict[str, Any]:
    """Least-squares slope of y against x fitted per seed, summarised over seeds
    (mean, std, 95 % t-interval, the one-sample t-test's p against 0, or None with a
    ``note``); ``increasing`` when the interval lies above 0,
    ``decreasing`` when below, else ``undecided``. Plus the Spearman correlation of
    all (x, y) points pooled."""
    from scipy import stats

    slopes = [
        float(np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)[0])
        for x, y in zip(xs_per_seed, ys_per_seed)
        if len(x) >= 2
    ]
    s = summary(slopes)
    if s["n"] > 1 and s["std"] > 0:
        s["p"] = float(stats.ttest_1samp(slopes, 0.0).pvalue)
    else:
        s["p"] = None
        s["note"] = "fewer than 2 seeds" if s["n"] < 2 else "no variance"
    verdict = "undecided"
    if s["n"] > 1 and s["ci95"][0] is not None:
        if s["ci95"][0] > 0:
            verdict = "increasing"
        elif s["ci95"][1] < 0:
            verdict = "decreasing"
    px = [v for x in xs_per_seed for v in x]
    py = [v for y in ys_per_seed for v in y]
    rho, p = stats.spearmanr(px, py) if len(px) > 2 else (np.nan, np.nan)
    return {
        "slope": s,
        "verdict": verdict,
        "spearman": float(rho),
        "spearman_p": float(p),
    }

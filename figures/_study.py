"""The CPU study tier (``--study``) of the figure scripts: one shared, seeded zoo of
MNIST models, cached per model and per evaluation, and the statistics of the claims.

Every model is a :func:`landscape.train.adversarial_train` run folder under
``<cache>/study/runs/<key>/`` (config, metrics, end-of-period checkpoints, exact
resume), so a killed run resumes where it stopped and a model is trained once for all
the figures that use it. Every evaluation of a model (test accuracy, Hessian,
scattering, a robustness protocol) is a JSON file under ``<cache>/study/evals/``,
written atomically when it finishes. A lock file per run folder keeps two processes
from training the same model at once (the second waits).

Sizes (:data:`SIZE`): LeNet (width 1) on a stratified 8,000-image MNIST subset, 8
epochs of PGD-5 training (step ``2.5 eps / 5``, Adam lr 2e-3, batch 256: on one
shared CPU core a LeNet step is overhead-bound, and batch 256 trains ~3x more images
per CPU-second than batch 64), seeds 0, 1, 2; per-epoch robust test accuracy on 500
test images (PGD-10), final metrics on 2,000 test images (PGD-20). Schedules:
``constant``; ``linear`` / ``cosine`` warm-up of eps over the first 4 epochs;
``periodic`` (4 periods of 2 epochs, eps rising along a half cosine with peak 1.5 x
the target and capped at it, as in ``fig06``). Every run writes end-of-period
checkpoints at epochs 2, 4, 6, 8 (its 4-member ensemble).

Statistics: mean, standard deviation and a 95 % t-interval over seeds
(:func:`summary`); two groups are compared with Welch's t-test (:func:`welch`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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
    "write_csv",
    "publish",
    "run",
    "verdict_line",
]

SIZE: dict[str, Any] = dict(
    num_train=8000,
    num_test=2000,
    epochs=8,
    periods=4,
    steps=5,
    batch_size=256,
    lr=2e-3,
    eval_num=500,
    eval_steps=10,
    seeds=(0, 1, 2),
    eps=(0.0, 0.1, 0.2, 0.3, 0.4),
    final_steps=20,
)

#: Training budgets of the zoo, chosen by ``LANDSCAPE_STUDY_BUDGET`` (default ``base``).
#: ``long``: twice the training images and twice the epochs (4x the adversarial
#: image-steps, warm-up over the first 8 epochs), for claims 1-3 on models that
#: are closer to convergence; its tables and figures go to ``results/long/``.
BUDGETS: dict[str, dict[str, Any]] = {
    "base": {},
    "long": dict(num_train=16000, epochs=16),
}
BUDGET = os.environ.get("LANDSCAPE_STUDY_BUDGET", "base")
if BUDGET not in BUDGETS:
    raise SystemExit(
        f"error: LANDSCAPE_STUDY_BUDGET={BUDGET!r} is not a study budget - use one "
        f"of {sorted(BUDGETS)}"
    )
SIZE.update(BUDGETS[BUDGET])


@dataclasses.dataclass(frozen=True)
class Spec:
    """One model of the zoo.

    Attributes:
        eps: target training eps (eps = 0 is always plain training, ``constant``).
        seed: initialisation, shuffles and attack seed.
        schedule: ``constant | linear | cosine | periodic`` (eps schedule).
        activation: ``relu`` or ``gelu`` (the smooth twin).
        lr: Adam learning rate.
        arch / width: ``landscape.models.build`` name and width factor.
        epochs / steps / num_train: training length, PGD steps, training images
            (None: :data:`SIZE`).
    """

    eps: float
    seed: int
    schedule: str = "constant"
    activation: str = "relu"
    lr: float = 2e-3
    arch: str = "lenet"
    width: float = 1.0
    epochs: int | None = None
    steps: int | None = None
    num_train: int | None = None

    def __post_init__(self):
        if self.eps == 0:
            object.__setattr__(self, "schedule", "constant")

    @property
    def key(self) -> str:
        """Run-folder name: architecture, schedule, eps, lr, seed and the sizes."""
        return (
            f"{self.arch}-w{self.width:g}-{self.activation}-{self.schedule}"
            f"-eps{self.eps:g}-lr{self.lr:g}-s{self.seed}-n{self.get('num_train')}"
            f"-e{self.get('epochs')}-k{self.get('steps')}-b{SIZE['batch_size']}"
        )

    def get(self, name: str) -> Any:
        v = getattr(self, name)
        return SIZE[name] if v is None else v

    def config(self):
        from landscape import attacks, train

        epochs = self.get("epochs")
        kw: dict[str, Any] = {}
        if self.schedule in ("linear", "cosine"):
            kw["eps_kwargs"] = {"warmup": epochs / 2}
        elif self.schedule == "periodic":
            kw["eps_kwargs"] = {"shape": "cosine", "peak": 1.5 * self.eps}
        steps = self.get("steps")
        return train.TrainConfig(
            epochs=epochs,
            batch_size=SIZE["batch_size"],
            optimizer="adam",
            lr=self.lr,
            attack=attacks.PGD(eps=self.eps, steps=steps) if self.eps > 0 else None,
            eps_schedule=self.schedule,
            periods=SIZE["periods"],
            seed=self.seed,
            model=self.arch,
            model_kwargs={
                "dataset": "mnist",
                "width": self.width,
                "activation": self.activation,
            },
            dataset=train.DataRecord("mnist", num_train=self.get("num_train")),
            # the per-epoch robust accuracy: a training PGD (step eps / 4) batch by
            # batch, cheaper than the evaluation protocol
            runtime=train.Runtime(
                eval_num=SIZE["eval_num"],
                eval_attack=attacks.PGD(
                    eps=self.eps, steps=SIZE["eval_steps"], alpha_rel=0.25
                ),
                co_check_num=0,
                amp="off",
                channels_last=False,
            ),
            **kw,
        )


def root(ctx) -> Path:
    return Path(ctx.cache_dir) / "study"


_DATA: dict[tuple, tuple[torch.Tensor, ...]] = {}


def mnist(ctx, num_train: int | None = None) -> tuple[torch.Tensor, ...]:
    """``(x, y, x_test, y_test)``: the stratified training subset and the first
    :data:`SIZE` ``num_test`` test images (loaded once per process)."""
    n = num_train or SIZE["num_train"]
    key = (str(ctx.data_root), n)
    if key not in _DATA:
        from landscape import data

        x, y = data.load_dataset(
            "mnist",
            ctx.data_root,
            num_samples=n,
            generator=torch.Generator().manual_seed(0),
        )
        xt, yt = data.load_dataset(
            "mnist",
            ctx.data_root,
            split="test",
            num_samples=SIZE["num_test"],
            generator=torch.Generator().manual_seed(0),
        )
        _DATA[key] = (x, y, xt, yt)
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
    (None when it is not finished and ``compute`` is False)."""
    from landscape import models, train

    run_dir = root(ctx) / "runs" / spec.key
    if _finished(run_dir, spec.get("epochs")):
        return run_dir
    if not compute:
        return None
    with _Lock(run_dir.with_suffix(".lock")):
        if _finished(run_dir, spec.get("epochs")):
            return run_dir
        x, y, xt, yt = mnist(ctx, spec.get("num_train"))
        cfg = spec.config()
        torch.manual_seed(spec.seed)
        model = models.build(**_build_kwargs(spec)).to(ctx.device)
        t0 = time.perf_counter()
        print(f"[study] training {spec.key} ...", flush=True)
        train.adversarial_train(
            model,
            (x.to(ctx.device), y.to(ctx.device)),
            cfg,
            test_data=(xt[: SIZE["eval_num"]], yt[: SIZE["eval_num"]]),
            run_dir=run_dir,
        )
        print(
            f"[study] trained {spec.key} in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    return run_dir


def _build_kwargs(spec: Spec) -> dict:
    return dict(
        name=spec.arch,
        dataset="mnist",
        width=spec.width,
        activation=spec.activation,
    )


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
    t0 = time.perf_counter()
    out = dict(fn())
    out["seconds"] = round(time.perf_counter() - t0, 2)
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
    images: clean accuracy and PGD-20 accuracy at the training eps and at 0.1 and 0.3,
    plus the last logged training metrics. None when not available (``compute`` off)."""

    def fn(model: torch.nn.Module, data: tuple[torch.Tensor, ...]) -> dict:
        from landscape import attacks, train

        _, _, xt, yt = data
        xt, yt = xt.to(ctx.device), yt.to(ctx.device)
        out: dict[str, Any] = {}
        with torch.no_grad():
            out["clean_acc"] = float((model(xt).argmax(1) == yt).float().mean())
        for e in sorted({spec.eps, 0.1, 0.3} - {0.0}):
            g = torch.Generator().manual_seed(0)
            correct = []
            for i in range(0, len(xt), 500):
                xa = attacks.pgd(  # the evaluation PGD: best iterate
                    model,
                    xt[i : i + 500],
                    yt[i : i + 500],
                    eps=e,
                    alpha=2.5 * e / SIZE["final_steps"],
                    steps=SIZE["final_steps"],
                    loss="ce",
                    keep="best",
                    generator=g,
                )
                with torch.no_grad():
                    correct.append(model(xa).argmax(1) == yt[i : i + 500])
            out[f"pgd20_acc@{e:g}"] = float(torch.cat(correct).float().mean())
        m = train.load_run(root(ctx) / "runs" / spec.key).metrics
        for k in ("train_loss", "train_acc", "dist_init", "time"):
            if k in m:
                out[f"final_{k}"] = float(np.asarray(m[k])[-1])
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
    """Welch's t-test of ``mean(a) != mean(b)``: difference, t, p, significant at 5 %.
    Two groups of identical constants give p = 1 (no evidence of a difference);
    different constants p = 0."""
    from scipy import stats

    a = np.asarray([x for x in a if x is not None], float)
    b = np.asarray([x for x in b if x is not None], float)
    if len(a) < 2 or len(b) < 2:
        return {"diff": None, "t": None, "p": None, "significant": None}
    diff = float(a.mean() - b.mean())
    if a.std() == 0 and b.std() == 0:
        p = 1.0 if diff == 0 else 0.0
        return {"diff": diff, "t": None, "p": p, "significant": p < 0.05}
    t, p = stats.ttest_ind(a, b, equal_var=False)
    return {"diff": diff, "t": float(t), "p": float(p), "significant": bool(p < 0.05)}


def fmt(s: dict[str, Any], scale: float = 1.0, digits: int = 1) -> str:
    """``"mean +- std"`` of a :func:`summary` (times ``scale``), or ``"not run"``."""
    if not s or s.get("mean") is None:
        return "not run"
    if s.get("n", 0) < 2:
        return f"{s['mean'] * scale:.{digits}f} (1 seed)"
    return f"{s['mean'] * scale:.{digits}f} +- {s['std'] * scale:.{digits}f}"


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


def hessian_eval(ctx, spec: Spec, *, compute: bool = True) -> dict | None:
    """Top-5 Hessian eigenvalues (Lanczos) of the clean and the adversarial training
    loss and the Hutch++ trace (60 probes) of the adversarial one, on the first 1,000
    training images (adversarial examples: PGD-20 at the training eps, generated once
    at the final model)."""

    def fn(model: torch.nn.Module, data: tuple[torch.Tensor, ...]) -> dict:
        from landscape import attacks, hessian

        x, y, _, _ = data
        fixed = [(x[i : i + 500], y[i : i + 500]) for i in range(0, 1000, 500)]
        lf = torch.nn.CrossEntropyLoss()
        g = torch.Generator().manual_seed(0)
        adv = fixed
        if spec.eps > 0:
            adv = attacks.perturb_batches(
                model, fixed, attacks.PGD(eps=spec.eps, steps=20), generator=g
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
    start) on 256 test images; the excess ``||delta g||`` as s -> 0 (intercept)."""

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
            # arrays of shape (E, D, S, B): eps, direction, scale, batch
            "ratio": np.asarray(res.ratio).mean(axis=(0, 1, 3)).tolist(),
            "grad_diff": np.asarray(res.grad_diff).mean(axis=(0, 1, 3)).tolist(),
            "cosine": np.asarray(res.cosine).mean(axis=(0, 1, 3)).tolist(),
            "pert_cosine": np.asarray(res.pert_cosine).mean(axis=(0, 1, 3)).tolist(),
            "grad_norm": float(np.asarray(res.grad_norm).mean()),
            "loss": float(np.asarray(res.loss).mean()),
        }

    return _measure(ctx, spec, "scattering", fn, compute=compute)


def protocol_eval(
    ctx,
    spec: Spec,
    protocol: str,
    *,
    eps: float | None = None,
    num: int = 1000,
    ensemble: bool = False,
    compute: bool = True,
) -> dict | None:
    """``landscape.evaluate.evaluate`` with a preset at its full attack budgets on the
    first ``num`` test images, for the final model or the end-of-period ensemble
    (resumable: the protocol's per-batch state file is kept next to the result)."""
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
            checks=False,
            state_path=state,
            generator=torch.Generator().manual_seed(0),
        )
        out = {
            "clean_acc": float(res.clean_accuracy),
            "robust_acc": float(np.atleast_1d(res.robust_accuracy)[0]),
            "per_attack": {
                k: float(np.atleast_1d(v)[0])
                for k, v in res.per_attack_accuracy().items()
            },
            "attacks": list(res.attacks),
            "num": num,
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


def verdict_line(digits: int) -> Callable[[str, dict], str | None]:
    """A ``test_line`` for :func:`run`: ``"<key>: <verdict> (<slope>)"`` of each
    :func:`slope_test` (tests without a verdict are not printed)."""

    def line(key: str, test: dict) -> str | None:
        if "verdict" not in test:
            return None
        return f"{key}: {test['verdict']} ({fmt(test['slope'], digits=digits)})"

    return line


def band(ax, x, ys, label: str | None = None, **kw) -> None:
    """Mean over seeds (rows of ``ys``) as a line, +- one std as a band."""
    ys = np.atleast_2d(np.asarray(ys, float))
    m = np.nanmean(ys, axis=0)
    sd = np.nanstd(ys, axis=0, ddof=1) if ys.shape[0] > 1 else np.zeros_like(m)
    (line,) = ax.plot(x, m, label=label, **kw)
    ax.fill_between(x, m - sd, m + sd, color=line.get_color(), alpha=0.2, lw=0)


def stalled(row: dict | None) -> bool | None:
    """A run that stayed at the constant classifier: test clean accuracy < 20 % (the
    constant classifier gets 11.35 % on MNIST's test set; its training loss is log 10)."""
    if row is None or "clean_acc" not in row:
        return None
    return bool(row["clean_acc"] < 0.2)


def slope_test(xs_per_seed: Sequence[Sequence[float]], ys_per_seed) -> dict[str, Any]:
    """Least-squares slope of y against x fitted per seed, summarised over seeds
    (mean, std, 95 % t-interval); ``increasing`` when the interval lies above 0,
    ``decreasing`` when below, else ``undecided``. Plus the Spearman correlation of
    all (x, y) points pooled."""
    from scipy import stats

    slopes = [
        float(np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)[0])
        for x, y in zip(xs_per_seed, ys_per_seed)
        if len(x) >= 2
    ]
    s = summary(slopes)
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


def madry_spec(seed: int = 0) -> Spec:
    """Claim 7's model: Madry's MNIST CNN shape at width 0.5 (16 / 32 channels, fc
    512), eps = 0.3 warmed up linearly over 4 of the 8 epochs, PGD-10."""
    return Spec(
        eps=0.3, seed=seed, schedule="linear", arch="madry_cnn", width=0.5, steps=10
    )

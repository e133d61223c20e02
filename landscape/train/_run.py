"""Run folders: config.json, metrics.jsonl / metrics.csv, checkpoints, TrainResult."""

from __future__ import annotations

import contextlib
import csv
import io as _io
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import io
from ._config import TrainConfig

__all__ = [
    "TrainResult",
    "RunFolderError",
    "load_run",
    "write_metrics",
    "read_metrics",
    "rng_state",
    "set_rng_state",
    "summarize",
    "RESUME",
    "INIT",
    "BEST",
    "AVERAGED",
    "SUMMARY",
]

RESUME = "resume.pt"
INIT = "init.pt"
BEST = "best.pt"  # the model of the best validation robust accuracy
AVERAGED = "averaged.pt"  # the weight average (EMA / SWA) at the end
SUMMARY = "summary.json"
FORMAT = "landscape.train/1"


class RunFolderError(RuntimeError):
    """A run folder that cannot be resumed with this configuration."""


def folder_lock(folder: str | Path | None, main: bool = True):
    """:func:`landscape.io.lock` on a run folder (created if missing) for the main
    rank, so that a second process on the same folder gets ``io.LockedError`` (naming
    the holder's pid) instead of interleaving its writes; no lock without a folder."""
    if folder is None or not main:
        return contextlib.nullcontext()
    folder = io.check_writable(folder, folder=True, what="run_dir")
    folder.mkdir(parents=True, exist_ok=True)
    return io.lock(folder)


@dataclass(frozen=True)
class TrainResult(io.Result):
    """Per-epoch metrics of a training run, its config and where its files are.

    Attributes:
        metrics: column name -> per-epoch array (``epoch``, ``train_loss``,
            ``train_acc``, ``test_clean_acc``, ``test_robust_acc`` (target eps),
            ``test_robust_acc_sched`` (scheduled eps), ``grad_norm_mean``,
            ``grad_norm_max``, ``dist_init``, ``eps``, ``lr``, ``co_flag``, ``time``...).
            With a validation split, a fixed training subset, an averaged model or
            landscape tracking also ``val_*``, ``train_clean_*`` / ``train_robust_*``,
            ``avg_test_*`` / ``avg_val_*``, ``lam_max_*``, ``trace_*``,
            ``grad_norm_*``, ``sharp_*``, ``time_track``; ``time_eval``.
        config: the :class:`TrainConfig` as a dict.
        summary: robust overfitting and cost at a glance (:func:`summarize`).
        run_dir: the run folder (None for a run without one).
        checkpoints: end-of-period checkpoint files, in order (the ensemble members).
    """

    SHAPES = {"metrics": "T"}
    NONFINITE = {"metrics": "NaN where a column was not measured in an epoch"}

    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    run_dir: str | None = None
    checkpoints: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def final(self, key: str) -> float:
        """Last logged value of a metric column."""
        if key not in self.metrics:
            raise KeyError(f"no metric {key!r}; have {sorted(self.metrics)}")
        return float(np.asarray(self.metrics[key])[-1])


def columns(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    return {k: np.array([r.get(k, math.nan) for r in rows]) for k in keys}


def _fmt(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else str(v)
    return v


def write_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """(Re)write metrics.jsonl and metrics.csv atomically from all rows so far."""
    with io.atomic_write(run_dir / "metrics.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps({k: _fmt(v) for k, v in r.items()}) + "\n")
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    for r in rows:
        w.writerow(r)
    with io.atomic_write(run_dir / "metrics.csv", "w") as f:
        f.write(buf.getvalue())


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                r = json.loads(line)
            except ValueError as err:
                raise io.CorruptFileError(
                    f"{path} is truncated or corrupt (line {i}: {err}) - delete it; "
                    "resuming the run rewrites it"
                ) from None
            rows.append({k: (math.nan if v is None else v) for k, v in r.items()})
    return rows


def load_run(run_dir: str | Path) -> TrainResult:
    """Read a run folder written by :func:`adversarial_train` (config and metrics).

    Raises:
        FileNotFoundError: no ``config.json`` in the folder.
    """
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"{run_dir} is not a folder - pass the run folder of adversarial_train"
            if run_dir.exists()
            else f"{run_dir} does not exist - pass the run folder of adversarial_train"
        )
    if not cfg_path.exists():
        raise FileNotFoundError(
            f"{cfg_path} not found: is {run_dir} a run folder of adversarial_train?"
        )
    config = io.read_json(cfg_path)
    rows = read_metrics(run_dir)
    ckpts = sorted(str(p) for p in run_dir.glob("ckpt_epoch*.pt"))
    try:
        summary = summarize(rows, TrainConfig.from_dict(config))
    except (TypeError, ValueError):  # a config recorded with a custom callable
        summary = summarize(rows, None)
    return TrainResult(
        metrics=columns(rows),
        config=config,
        summary=summary,
        run_dir=str(run_dir),
        checkpoints=ckpts,
        meta={"provenance": io.provenance()},
    )


def _value(rows: list[dict[str, Any]], i: int | None, key: str) -> float | None:
    if i is None:
        return None
    v = rows[i].get(key)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _argmax(rows: list[dict[str, Any]], key: str) -> int | None:
    """The first row with the largest finite ``key`` (a strict improvement keeps
    the earlier epoch), or None."""
    best, at = -math.inf, None
    for i, r in enumerate(rows):
        v = r.get(key)
        if isinstance(v, (int, float)) and math.isfinite(v) and v > best:
            best, at = v, i
    return at


def _gap(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def summarize(rows: list[dict[str, Any]], config: TrainConfig | None) -> dict:
    """The summary of a run's metrics rows (``summary.json``, :attr:`TrainResult.summary`).

    - ``best_epoch``: the epoch of the best validation robust accuracy (the first,
      as ``best.pt`` keeps it; Rice et al. 2020's early stopping), with
      ``best_val_robust_acc`` / ``last_val_robust_acc`` and the test robust accuracy
      there and at the last epoch; ``best_minus_last``: their difference (the
      robust overfitting of the run, > 0 when the last model is worse);
    - ``oracle_epoch`` / ``oracle_test_robust_acc``: the best test robust accuracy
      (Rice et al.'s "best" checkpoint, chosen on the test set);
    - ``robust_gap_last`` / ``robust_gap_best``: the robust generalisation gap,
      fixed-training-subset robust accuracy minus test robust accuracy, at the last
      and the best epoch; ``robust_loss_gap_last``: test minus training robust loss
      (None when the evaluation attack is not a training PGD, ``keep="last"``: the
      evaluation protocol's per-point worst case gives accuracies only);
    - ``avg_test_robust_acc_last``: the averaged model's, when there is one;
    - ``eval_attack``: the name of the attack of the robust metrics;
    - ``time_train``, ``time_eval``, ``time_track`` (seconds, summed over epochs)
      and ``track_overhead = time_track / time_train``.
    """
    out: dict[str, Any] = {"epochs": len(rows)}
    if config is not None:
        from ._eval import eval_attack

        out["eval_attack"] = eval_attack(config).name
    if not rows:
        return out
    last = len(rows) - 1
    best = _argmax(rows, "val_robust_acc")
    if best is not None:
        out["best_epoch"] = int(rows[best]["epoch"])
        out["best_val_robust_acc"] = _value(rows, best, "val_robust_acc")
        out["last_val_robust_acc"] = _value(rows, last, "val_robust_acc")
        out["best_test_robust_acc"] = _value(rows, best, "test_robust_acc")
    out["last_test_robust_acc"] = _value(rows, last, "test_robust_acc")
    out["best_minus_last"] = _gap(
        out.get("best_test_robust_acc"), out["last_test_robust_acc"]
    )
    oracle = _argmax(rows, "test_robust_acc")
    if oracle is not None:
        out["oracle_epoch"] = int(rows[oracle]["epoch"])
        out["oracle_test_robust_acc"] = _value(rows, oracle, "test_robust_acc")
    out["robust_gap_last"] = _gap(
        _value(rows, last, "train_robust_acc"), out["last_test_robust_acc"]
    )
    out["robust_gap_best"] = _gap(
        _value(rows, best, "train_robust_acc"), out.get("best_test_robust_acc")
    )
    out["robust_loss_gap_last"] = _gap(
        _value(rows, last, "test_robust_loss"), _value(rows, last, "train_robust_loss")
    )
    avg = _value(rows, last, "avg_test_robust_acc")
    if avg is not None:
        out["avg_test_robust_acc_last"] = avg
    times = {k: 0.0 for k in ("time", "time_eval", "time_track")}
    for r in rows:
        for k in times:
            v = r.get(k)
            if isinstance(v, (int, float)) and math.isfinite(v):
                times[k] += float(v)
    out["time_train"], out["time_eval"] = times["time"], times["time_eval"]
    out["time_track"] = times["time_track"]
    out["track_overhead"] = (
        times["time_track"] / times["time"] if times["time"] > 0 else None
    )
    return out


def check_config(run_dir: Path, config: TrainConfig) -> None:
    """Raise :class:`RunFolderError` when ``run_dir`` was made with other science
    settings (the runtime settings, such as ``checkpoint_every`` or ``eval_num``,
    may change on resume)."""
    path = run_dir / "config.json"
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RunFolderError(
            f"{path} is not valid JSON ({err}); restore it or use a new run folder"
        ) from err
    try:
        old = TrainConfig.from_dict(raw).science_dict()
    except (TypeError, ValueError) as err:
        raise RunFolderError(
            f"run folder {run_dir} holds a config this version cannot read ({err}); "
            "use a new run folder"
        ) from err
    new = config.science_dict()
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:6])
        raise RunFolderError(
            f"run folder {run_dir} was written by another configuration ({detail}); "
            "resume with the same config, or use a new run folder"
        )


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every RNG state that training touches, as tensors and plain Python values (so
    ``resume.pt`` loads with ``torch.load(..., weights_only=True)``)."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {
            "version": int(version),
            "state": torch.tensor(mt, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "generators": {k: g.get_state() for k, g in generators.items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(
    state: dict[str, Any], generators: dict[str, torch.Generator]
) -> None:
    """Restore :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate(
        (py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"])
    )
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["kind"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for k, g in generators.items():
        if k in state["generators"]:
            g.set_state(state["generators"][k].to("cpu"))

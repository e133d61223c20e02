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
    "RESUME",
    "INIT",
]

RESUME = "resume.pt"
INIT = "init.pt"
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
        config: the :class:`TrainConfig` as a dict.
        run_dir: the run folder (None for a run without one).
        checkpoints: end-of-period checkpoint files, in order (the ensemble members).
    """

    SHAPES = {"metrics": "T"}
    NONFINITE = {"metrics": "NaN where a column was not measured in an epoch"}

    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
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
    return TrainResult(
        metrics=columns(rows),
        config=config,
        run_dir=str(run_dir),
        checkpoints=ckpts,
        meta={"provenance": io.provenance()},
    )


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

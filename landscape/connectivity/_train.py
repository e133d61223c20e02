"""Curve training: the bends of a curve minimise the (adversarial) loss at random t."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from .. import _utils, attacks, io
from .._batches import as_batches
from ..schedules import make_schedule
from ..train import RunFolderError, TensorBatches
from ..train._run import folder_lock
from ._bn import has_batchnorm
from ._curves import KINDS, Curve, curve_point, init_curve, load_weights
from ._scan import _At

__all__ = ["CurveConfig", "CurveTrainResult", "train_curve"]

FORMAT = "landscape.connectivity.run/1"
RESUME, CURVE, ENDPOINTS = "resume.pt", "curve.pt", "endpoints.pt"


@dataclass(frozen=True)
class CurveConfig:
    """Everything that defines a curve-training run (``config.json`` in the folder).

    Attributes:
        kind / num_bends: the curve (``"bezier"`` with 1 bend: quadratic Bezier;
            ``"polychain"``: polygonal chain).
        epochs / batch_size / shuffle: passes over the data and batching.
        optimizer: ``"sgd"`` (``momentum``) or ``"adam"``; ``lr`` peak learning rate;
            ``weight_decay`` on the bends.
        eps / norm: target training budget and norm (``eps=0``: clean training).
        eps_schedule / eps_kwargs, lr_schedule / lr_kwargs: schedules from
            :mod:`landscape.schedules` (by name and parameters), evaluated at the
            fractional epoch every iteration.
        attack: ``"pgd"``, ``"fgsm"`` (FGSM with random start) or ``"none"``.
        steps / alpha / alpha_rel / random_start: the training attack (absolute step
            ``alpha``, else ``alpha_rel`` times the scheduled eps, else
            ``2.5 / steps`` for PGD and 1.25 for FGSM).
        attack_train_mode: run the attack with BatchNorm on batch statistics; default
            (None): on for models with BatchNorm (there are no running statistics
            between the endpoints), off otherwise.
        checkpoint_every: also write the resume checkpoint every this many iterations.
        seed: seeds the shuffles, the t samples, the attack and dropout.
    """

    kind: str = "bezier"
    num_bends: int = 1
    epochs: int = 10
    batch_size: int = 128
    shuffle: bool = True
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    eps: float = 0.0
    norm: str = "linf"
    eps_schedule: str = "constant"
    eps_kwargs: dict = field(default_factory=dict)
    lr_schedule: str = "constant"
    lr_kwargs: dict = field(default_factory=dict)
    attack: str = "pgd"
    steps: int = 10
    alpha: float | None = None
    alpha_rel: float | None = None
    random_start: bool = True
    attack_train_mode: bool | None = None
    checkpoint_every: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.kind not in KINDS or self.kind == "line":
            raise ValueError(
                f"kind must be 'bezier' or 'polychain' (a line has nothing to train), "
                f"got {self.kind!r}"
            )
        for name in ("num_bends", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(
                f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}"
            )
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError("lr must be > 0 and weight_decay >= 0")
        object.__setattr__(self, "norm", _utils.check_training_attack(self))
        if int(self.checkpoint_every) < 0:
            raise ValueError(
                f"checkpoint_every must be >= 0, got {self.checkpoint_every}"
            )
        self.eps_fn()
        self.lr_fn()

    def eps_fn(self):
        """The eps schedule (target ``eps``)."""
        kw = {"value": self.eps, "epochs": self.epochs, **self.eps_kwargs}
        return make_schedule(self.eps_schedule, kind="eps", **kw)

    def lr_fn(self):
        """The learning-rate schedule (peak ``lr``)."""
        kw = {"value": self.lr, **self.lr_kwargs}
        if self.lr_schedule not in ("step", "multistep"):
            kw.setdefault("epochs", self.epochs)
        return make_schedule(self.lr_schedule, kind="lr", **kw)

    def step_size(self, eps_t: float) -> float:
        """Training attack step size at the scheduled budget ``eps_t``."""
        if self.alpha is not None:
            return float(self.alpha)
        if self.alpha_rel is not None:
            return float(self.alpha_rel) * eps_t
        return 1.25 * eps_t if self.attack == "fgsm" else 2.5 * eps_t / int(self.steps)

    def training_attack(self, eps_t: float) -> attacks.Attack:
        """The training attack at the scheduled budget ``eps_t`` (an attack value:
        :class:`landscape.attacks.PGD` or :class:`landscape.attacks.FGSMRS`)."""
        if self.attack == "fgsm":
            return attacks.FGSMRS(
                eps=eps_t, norm=self.norm, alpha=self.step_size(eps_t)
            )
        return attacks.PGD(
            eps=eps_t,
            norm=self.norm,
            steps=int(self.steps),
            alpha=self.step_size(eps_t),
            random_start=self.random_start,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CurveConfig:
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown CurveConfig fields {unknown}")
        return cls(**d)


@dataclass(frozen=True)
class CurveTrainResult:
    """What :func:`train_curve` returns.

    Attributes:
        curve: the trained :class:`Curve` (on the CPU).
        metrics: per-epoch columns (``epoch``, ``train_loss``, ``train_acc``, ``eps``,
            ``lr``, ``bend_distance`` from the line, ``time``...).
        config: the :class:`CurveConfig` as a dict.
        run_dir: the run folder (None without one).
    """

    curve: Curve
    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    run_dir: str | None = None
    meta: dict = field(default_factory=dict)


@dataclass
class _Run:
    """Mutable training state (what the resume checkpoint holds)."""

    bends: list[dict[str, Tensor]]
    opt: torch.optim.Optimizer
    gens: dict[str, torch.Generator]
    epoch: int = 0
    batch: int = 0
    iteration: int = 0
    elapsed: float = 0.0
    rows: list = field(default_factory=list)
    accum: dict | None = None

    def state(self, cfg: CurveConfig) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "config": cfg.to_dict(),
            "bends": [{k: v.detach().cpu() for k, v in b.items()} for b in self.bends],
            "optimizer": self.opt.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                **{k: g.get_state() for k, g in self.gens.items()},
            },
            "epoch": self.epoch,
            "batch": self.batch,
            "iteration": self.iteration,
            "elapsed": self.elapsed,
            "rows": copy.deepcopy(self.rows),
            "accum": copy.deepcopy(self.accum),
        }

    def restore(self, s: dict[str, Any]) -> None:
        with torch.no_grad():
            for b, saved in zip(self.bends, s["bends"]):
                for k, v in b.items():
                    v.copy_(saved[k])
        self.opt.load_state_dict(s["optimizer"])
        torch.set_rng_state(s["rng"]["torch"])
        for k, g in self.gens.items():
            g.set_state(s["rng"][k])
        for k in ("epoch", "batch", "iteration", "elapsed", "rows", "accum"):
            setattr(self, k, s[k])


def _loader(data: Any, cfg: CurveConfig) -> Any:
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(t, Tensor) for t in data)
    ):
        return TensorBatches(
            data[0],
            data[1],
            batch_size=cfg.batch_size,
            shuffle=cfg.shuffle,
            seed=cfg.seed,
        )
    if not hasattr(data, "__len__"):
        raise TypeError(
            "data must be (x, y) tensors or a re-iterable loader with len(), e.g. "
            "landscape.data.batches(...)"
        )
    return data


def _write_metrics(folder: Path, rows: list[dict[str, Any]]) -> None:
    with io.atomic_write(folder / "metrics.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def _open_folder(folder: Path, cfg: CurveConfig, curve: Curve, run: _Run, resume: bool):
    """Start a new run folder, or restore ``run`` from the one there."""
    if (folder / "config.json").exists():
        if not resume:
            raise RunFolderError(
                f"{folder} already holds a curve run; pass resume=True to continue it "
                "or choose a new folder"
            )
        old = json.loads((folder / "config.json").read_text())
        diff = sorted(
            k
            for k in set(old) | set(cfg.to_dict())
            if old.get(k) != cfg.to_dict().get(k)
        )
        if diff:
            raise RunFolderError(
                f"{folder} was written by another curve configuration (differs in "
                f"{diff[:6]}); resume with the same config or use a new folder"
            )
        ends = load_weights(folder / ENDPOINTS)
        for side, saved in (("start", ends["start"]), ("end", ends["end"])):
            mine = getattr(curve, side)
            if any(not torch.equal(mine[k].cpu(), saved[k]) for k in mine):
                raise RunFolderError(
                    f"the {side} model differs from the one {folder} was trained with"
                )
        if (folder / RESUME).exists():
            s = load_weights(folder / RESUME)
            if not isinstance(s, dict) or s.get("format") != FORMAT:
                raise io.CorruptFileError(
                    f"{folder / RESUME} is not a curve-training state"
                )
            run.restore(s)
        return
    folder.mkdir(parents=True, exist_ok=True)
    io.atomic_save_torch(
        {
            "start": {k: v.cpu() for k, v in curve.start.items()},
            "end": {k: v.cpu() for k, v in curve.end.items()},
        },
        folder / ENDPOINTS,
    )
    with io.atomic_write(folder / "config.json", "w") as f:
        json.dump(cfg.to_dict(), f, indent=1)


def train_curve(
    model_a: nn.Module,
    model_b: nn.Module,
    data: tuple[Tensor, Tensor] | Iterable,
    config: CurveConfig | dict,
    *,
    run_dir: str | Path | None = None,
    resume: bool = True,
    progressbar: bool = False,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> CurveTrainResult:
    """Train a curve between two models (Garipov et al., 2018; adversarially as in
    Liu et al., 2020, Appendix C).

    Every batch draws ``t ~ U(0, 1)``, perturbs the batch with the training attack
    (:meth:`CurveConfig.training_attack`: ``attacks.PGD`` or ``attacks.FGSMRS``) at
    ``theta(t)``, and takes one optimizer step on the cross-entropy at ``theta(t)``
    with respect to the bends only; the endpoints stay fixed. eps and lr follow the
    config's schedules. The forward runs in train mode through ``functional_call``;
    BatchNorm uses batch statistics and its running-statistics updates go to scratch
    buffers (re-estimate them with :func:`scan_curve` / :func:`bn_statistics`).

    The two models are never modified (modes included). With ``run_dir`` the folder
    receives ``config.json``, ``endpoints.pt``, ``metrics.jsonl``, ``resume.pt``
    (every epoch and every ``checkpoint_every`` iterations: bends, optimizer, RNG
    states, position) and ``curve.pt`` (the trained :class:`Curve`). Calling again with
    the same folder, config and models resumes exactly: on CPU the bends are
    bit-identical to an uninterrupted run. Every file loads with ``weights_only=True``.

    Args:
        model_a: the model at ``t = 0``.
        model_b: the model at ``t = 1`` (same architecture, device and dtype).
        data: ``(x, y)`` tensors (batched and reshuffled per epoch from the seed) or a
            deterministic loader with ``len()`` (``set_epoch`` is called if present).
        config: a :class:`CurveConfig` (or its dict).
        run_dir: run folder (None: no files, no resume).
        resume: continue a run found in ``run_dir`` (False: an existing run is an
            error).
        progressbar: a tqdm bar over the batches.
        callback: called after every step with ``{"epoch", "batch", "iteration",
            "t", "loss", "eps", "lr"}``.

    Returns:
        :class:`CurveTrainResult` (``.curve`` is the trained curve).

    Raises:
        RunFolderError: the folder holds a run with another config or other models.
        FloatingPointError: the loss became NaN or infinite (lower the lr).
        landscape.io.LockedError: another live process is training in ``run_dir``.
    """
    cfg = CurveConfig.from_dict(config) if isinstance(config, dict) else config
    if not isinstance(cfg, CurveConfig):
        raise TypeError(f"config must be a CurveConfig, got {type(cfg).__name__}")
    for m in (model_a, model_b):
        if not isinstance(m, nn.Module):
            raise TypeError(f"models must be nn.Modules, got {type(m).__name__}")
    folder = Path(run_dir) if run_dir is not None else None
    with folder_lock(folder):  # one process per run folder
        return _train_curve(
            model_a, model_b, data, cfg, folder, resume, progressbar, callback
        )


def _train_curve(model_a, model_b, data, cfg, folder, resume, progressbar, callback):
    """:func:`train_curve` after its checks, with ``folder`` locked."""
    device = _utils.model_device(model_a)
    curve = init_curve(model_a, model_b, kind=cfg.kind, num_bends=cfg.num_bends).to(
        device
    )
    bends = [
        {k: v.clone().requires_grad_(True) for k, v in b.items()} for b in curve.bends
    ]
    flat = [v for b in bends for v in b.values()]
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(
            flat, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.Adam(flat, lr=cfg.lr, weight_decay=cfg.weight_decay)
    cuda_ids = []
    if device.type == "cuda":
        cuda_ids = [
            torch.cuda.current_device() if device.index is None else device.index
        ]
    with torch.random.fork_rng(devices=cuda_ids):
        torch.manual_seed(_utils.derive_seed(cfg.seed, "curve", "dropout"))
        gens = {
            "t": _utils.derived_generator(cfg.seed, "curve", "t"),
            "attack": _utils.derived_generator(
                cfg.seed, "curve", "attack", device=device
            ),
        }
        run = _Run(bends, opt, gens)
        if folder is not None:
            _open_folder(folder, cfg, curve, run, resume)
        with _utils.train_mode(model_a):
            _loop(
                model_a,
                curve,
                _loader(data, cfg),
                cfg,
                run,
                folder,
                progressbar,
                callback,
            )
    trained = curve.replace(
        bends=tuple({k: v.detach().clone() for k, v in b.items()} for b in bends)
    ).to("cpu")
    if folder is not None:
        trained.save(folder / CURVE, config=cfg.to_dict())
    keys: list[str] = []
    for r in run.rows:
        keys += [k for k in r if k not in keys]
    return CurveTrainResult(
        curve=trained,
        metrics={k: np.array([r.get(k, math.nan) for r in run.rows]) for k in keys},
        config=cfg.to_dict(),
        run_dir=str(folder) if folder is not None else None,
        meta={"device": str(device), "num_threads": torch.get_num_threads()},
    )


def _step(model, curve, cfg, run, x, y, t, eps_t, attack_train):
    """One optimizer step at ``theta(t)``; returns (loss sum, correct)."""
    params = curve_point(t, curve.start, curve.end, run.bends, kind=cfg.kind)
    state = {**params, **curve.buffers(t)}  # fresh buffers: BN updates are scratch
    if cfg.attack != "none" and eps_t > 0:
        at = _At(model, {k: v.detach() for k, v in state.items()})
        atk = cfg.training_attack(eps_t)
        x = atk(at, x, y, run.gens["attack"], train=attack_train)
    out = functional_call(model, state, (x,))
    loss_sum = F.cross_entropy(out, y, reduction="sum")
    run.opt.zero_grad(set_to_none=True)
    (loss_sum / len(y)).backward()
    run.opt.step()
    return float(loss_sum.detach()), float((out.detach().argmax(1) == y).sum())


def _bend_distance(curve: Curve, bends: list[dict[str, Tensor]]) -> float:
    """Distance of the bends from their initial points on the line."""
    with torch.no_grad():
        sq = 0.0
        for b, b0 in zip(bends, curve.bends):
            sq += sum(float(((b[k] - b0[k]).double() ** 2).sum()) for k in b)
    return math.sqrt(sq)


def _loop(model, curve, loader, cfg, run, folder, progressbar, callback) -> None:
    from tqdm.auto import tqdm

    eps_fn, lr_fn = cfg.eps_fn(), cfg.lr_fn()
    attacked = cfg.attack != "none" and cfg.eps > 0
    batches = as_batches(loader, model=model, labels="class", images=attacked)
    attack_train = (
        has_batchnorm(model) if cfg.attack_train_mode is None else cfg.attack_train_mode
    )
    nb = len(loader)
    bar = tqdm(
        total=cfg.epochs * nb,
        initial=run.epoch * nb + run.batch,
        desc="train_curve",
        disable=not progressbar,
    )
    for epoch in range(run.epoch, cfg.epochs):
        t0 = time.perf_counter()
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        if run.accum is None or run.batch == 0:
            run.accum = {"loss": 0.0, "correct": 0.0, "n": 0, "t": 0.0, "time": 0.0}
        for b, (x, y) in enumerate(batches):
            if b < run.batch:
                continue
            pos = epoch + b / nb
            eps_t, lr_t = float(eps_fn(pos)), float(lr_fn(pos))
            for g in run.opt.param_groups:
                g["lr"] = lr_t
            t = float(torch.rand((), generator=run.gens["t"], dtype=torch.float64))
            ls, cs = _step(model, curve, cfg, run, x, y, t, eps_t, attack_train)
            if not math.isfinite(ls):
                raise FloatingPointError(
                    f"curve training diverged at epoch {epoch + 1}, batch {b + 1} "
                    f"(t={t:.3f}, lr={lr_t:g}); lower the learning rate"
                )
            run.iteration += 1
            a = run.accum
            a["loss"], a["correct"], a["n"], a["t"] = (
                a["loss"] + ls,
                a["correct"] + cs,
                a["n"] + len(y),
                a["t"] + t,
            )
            a["eps"], a["lr"] = eps_t, lr_t
            bar.update(1)
            if callback is not None:
                callback(
                    {
                        "epoch": epoch,
                        "batch": b,
                        "iteration": run.iteration,
                        "t": t,
                        "loss": ls / len(y),
                        "eps": eps_t,
                        "lr": lr_t,
                    }
                )
            if (
                folder is not None
                and cfg.checkpoint_every
                and run.iteration % cfg.checkpoint_every == 0
                and b + 1 < nb
            ):
                a["time"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                run.epoch, run.batch = epoch, b + 1
                io.atomic_save_torch(run.state(cfg), folder / RESUME)
        a = run.accum
        a["time"] += time.perf_counter() - t0
        run.elapsed += a["time"]
        run.rows.append(
            {
                "epoch": epoch + 1,
                "iteration": run.iteration,
                "train_loss": a["loss"] / max(a["n"], 1),
                "train_acc": a["correct"] / max(a["n"], 1),
                "eps": a.get("eps", 0.0),
                "lr": a.get("lr", 0.0),
                "bend_distance": _bend_distance(curve, run.bends),
                "time": a["time"],
                "time_total": run.elapsed,
            }
        )
        run.epoch, run.batch, run.accum = epoch + 1, 0, None
        if folder is not None:
            _write_metrics(folder, run.rows)
            io.atomic_save_torch(run.state(cfg), folder / RESUME)
    bar.close()

"""Training configuration: :class:`TrainConfig` (the settings that define what a run
computes, with the training attack as an attack value), its :class:`Runtime` part
(how the run is executed and monitored), the :class:`DataRecord` of the data, the
paper's presets and building schedules from a config."""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from .. import attacks
from ..attacks._base import CALLABLE, callable_name, is_recorded_callable
from ..schedules import Schedule, make_schedule, period_boundaries
from ._objective import AWP, EMA, SWA, Objective, check_kind, from_record, record
from ._track import Tracking

__all__ = [
    "TrainConfig",
    "Runtime",
    "DataRecord",
    "LOSSES",
    "PRESETS",
    "preset",
    "smoke",
    "cifar10_periodic",
    "paper_eps_schedule",
    "AUGMENTATIONS",
]

_OPTIMIZERS = ("sgd", "adam")
# the schedules that follow the period boundaries of ``TrainConfig.periods``
_PERIODIC = ("periodic", "cyclic", "pas", "cycle_cos", "cycle_linear", "cycle_jump")
# ``TrainConfig.augment`` values (implemented in ``_augment.py``)
AUGMENTATIONS = ("crop_flip",)


def _mse(out: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """Squared error between the logits and the one-hot labels, summed over classes."""
    err = (out - F.one_hot(y, out.shape[1]).to(out.dtype)).pow(2).sum(1)
    return err.sum() if reduction == "sum" else err.mean()


# Named training losses ``fn(logits, y, reduction="mean" | "sum")``; a config names
# one (JSON-safe) or holds a callable ``(logits, y) -> mean loss``.
LOSSES: dict[str, Callable[..., Tensor]] = {
    "cross_entropy": F.cross_entropy,
    "mse": _mse,
}


def _attack_or_none(value: Any, where: str) -> attacks.Attack | None:
    if value is not None and not isinstance(value, attacks.Attack):
        raise TypeError(
            f"{where} must be an attack value (e.g. attacks.PGD(eps=0.3, steps=10)) "
            f"or None, got {type(value).__name__}"
        )
    return value


@dataclass(frozen=True)
class DataRecord:
    """The data a run was trained on, recorded in ``config.json``.

    Attributes:
        name: dataset name of :func:`landscape.data.load_dataset` (``"mnist"``,
            ``"fashion-mnist"``, ``"cifar10"``, ...); None when unknown.
        num_train: training examples used (None: the whole split).
        num_test: test examples used by the evaluation (None: unknown).
    """

    name: str | None = None
    num_train: int | None = None
    num_test: int | None = None

    def __post_init__(self):
        if self.name is not None and not isinstance(self.name, str):
            raise TypeError(f"the dataset name must be a string, got {self.name!r}")
        for key in ("num_train", "num_test"):
            v = getattr(self, key)
            if v is not None and int(v) < 1:
                raise ValueError(f"{key} must be >= 1, got {v}")


@dataclass(frozen=True)
class Runtime:
    """How a run is executed, checkpointed and monitored (saved in ``config.json``;
    may change when a run is resumed). Per-epoch metrics and checkpoints never feed
    back into the weights; ``amp``, ``channels_last``, ``compile``,
    ``attack_onednn`` and ``num_threads`` change only the floating-point rounding.

    Attributes:
        eval_num: test examples used by the per-epoch evaluation (0: no evaluation).
        eval_attack: the attack of the per-epoch robust accuracy, run at the target
            and at the scheduled eps (``dataclasses.replace(eval_attack, eps=e)``;
            its own eps is not used; its norm must be the training attack's).
            None: the ``"quick"`` evaluation preset's PGD with 10 steps
            (:func:`landscape.evaluate.preset_attacks`). An evaluation attack
            (``keep="best"`` PGD, APGD, ...) runs through
            :func:`landscape.evaluate.robust_accuracy` (the protocol: the points
            still correct, a seed per batch); a training PGD (``keep="last"``)
            attacks every batch once, one generator over the batches (cheaper).
            Either way a failure raises.
        eval_every: evaluate every this many epochs (and always at the last one).
        co_check_num: size of the fixed training batch checked for catastrophic
            overfitting each epoch (0 disables; only single-step training is
            checked); ``co_threshold``: flag when FGSM accuracy exceeds PGD accuracy
            on it by more than this.
        checkpoint_every: also write the resume checkpoint every this many iterations
            (0: only at the end of each epoch).
        amp: the precision of training: ``"off"`` (float32, the default: never
            lowered silently) or ``"bf16"`` (bfloat16 autocast of the training
            forward passes and the training attack, on CPU or CUDA; the loss in
            float32). The per-epoch evaluation, the catastrophic-overfitting check
            and the tracked analyses always run in the model's own precision, so
            the measured accuracies do not depend on this flag.
        channels_last: use channels_last memory format on CUDA.
        compile: wrap the model in ``torch.compile``.
        attack_onednn: oneDNN (mkldnn) for the training attack on CPU: ``"on"``,
            ``"off"`` or ``"auto"`` (off when every convolution has <= 16 channels:
            oneDNN's input-gradient convolution is 3-5x slower than PyTorch's own
            kernel for such thin layers, e.g. LeNet, and faster for wide ones).
        num_threads: torch CPU threads during the run (None: leave as set; the
            seeded CPU result depends on it), restored on return.
        train_eval_num: size of the fixed training subset (its first examples) whose
            clean and robust accuracy and loss are logged per epoch (``train_clean_acc``,
            ``train_robust_acc``, ... under ``eval_attack`` at the target eps; 0: none):
            with the validation split (``TrainConfig.val_num``, logged as ``val_*``)
            and the test data (``test_*``) the curves of robust overfitting.
        track: landscape metrics along the run (:class:`Tracking`: Hessian, gradient
            norm and sharpness of a fixed batch at chosen epochs), or None.

    The device is the model's (move the model to train elsewhere).
    """

    eval_num: int = 1000
    eval_attack: attacks.Attack | None = None
    eval_every: int = 1
    co_check_num: int = 128
    co_threshold: float = 0.2
    checkpoint_every: int = 0
    amp: str = "off"
    channels_last: bool = True
    compile: bool = False
    attack_onednn: str = "auto"
    num_threads: int | None = None
    train_eval_num: int = 0
    track: Tracking | None = None

    def __post_init__(self):
        _attack_or_none(self.eval_attack, "eval_attack")
        if self.track is not None and not isinstance(self.track, Tracking):
            raise TypeError(
                f"track must be a Tracking or None, got {type(self.track).__name__}"
            )
        if self.attack_onednn not in ("auto", "on", "off"):
            raise ValueError(
                f"attack_onednn must be 'auto', 'on' or 'off', got {self.attack_onednn!r}"
            )
        if self.amp not in ("off", "bf16"):
            raise ValueError(
                f"amp must be 'off' (float32, the default) or 'bf16' (bfloat16 "
                f"autocast of training), got {self.amp!r}"
            )
        for name in ("eval_num", "co_check_num", "checkpoint_every", "train_eval_num"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if int(self.eval_every) < 1:
            raise ValueError(f"eval_every must be >= 1, got {self.eval_every}")
        if self.num_threads is not None and int(self.num_threads) < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["eval_attack"] = (
            None if self.eval_attack is None else self.eval_attack.to_dict()
        )
        d["track"] = None if self.track is None else self.track.to_dict()
        return json.loads(json.dumps(d))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Runtime:
        d = dict(d)
        if d.get("eval_attack") is not None:
            d["eval_attack"] = attacks.Attack.from_dict(d["eval_attack"])
        if d.get("track") is not None:
            d["track"] = Tracking.from_dict(d["track"])
        return cls(**d)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run, saved as ``config.json`` in the run
    folder: its fields are the science settings (a resumed run must match them
    exactly) and ``runtime`` holds the :class:`Runtime` settings (they may change on
    resume). Built and read as written::

        cfg = TrainConfig(epochs=2, attack=attacks.PGD(eps=0.3, steps=10),
                          runtime=Runtime(amp="off"))
        cfg.attack.eps, cfg.runtime.amp

    Attributes:
        epochs: number of passes over the training data.
        batch_size: global batch size (split across ranks under DDP).
        optimizer: ``"sgd"`` (momentum ``momentum``, optional Nesterov) or ``"adam"``.
        lr: peak learning rate (the lr schedule's target value).
        weight_decay: L2 penalty (coupled, as in ``torch.optim``).
        attack: the training attack, an attack value (e.g. ``attacks.PGD(eps=0.3,
            steps=10)``, ``attacks.FGSMRS(eps=8/255)``); its ``eps`` is the TARGET
            budget of the eps schedule, and every batch attacks with
            ``dataclasses.replace(attack, eps=eps_t)`` at the scheduled ``eps_t`` (a
            relative step size ``alpha_rel`` follows it). An attack whose ``loss``
            is None ascends ``loss_fn``. None: standard training.
        eps_schedule / eps_kwargs: eps schedule name (``constant | linear | cosine |
            periodic``) and extra parameters (``warmup``, ``ramp``, ``start``, ...).
        lr_schedule / lr_kwargs: lr schedule name (``constant | step | cosine |
            periodic | onecycle``) and extra parameters (``milestones``, ``final``...).
        periods: period boundaries (or a count of equal periods) shared by the periodic
            eps and lr schedules; end-of-period checkpoints form the ensemble. ``None``
            means one period (the whole run).
        schedule_update: ``"iteration"`` (fractional epoch per batch) or ``"epoch"``
            (the integer epoch: eps and lr constant within an epoch, the paper's
            code's default).
        augment: training-data augmentation of every batch (before the attack):
            None, or ``"crop_flip"`` (the paper's CIFAR-10 ``RandomCrop(32,
            padding=4)`` with zero padding and ``RandomHorizontalFlip()``; see
            :func:`landscape.train.augment`), drawn from a generator derived from
            ``seed``, the epoch and the batch index (so a resumed run draws the
            same).
        attack_train_mode: run the attack with the model in train mode (BatchNorm batch
            statistics; a :class:`~landscape.attacks.PGD` attack); default eval mode.
        shuffle / drop_last: batching of ``(x, y)`` tensors.
        seed: seeds the shuffles, the attack's random starts, the model's per-batch
            randomness and torch's global RNG (dropout) for the run (inside a fork:
            the caller's stream is neither used nor advanced).
        loss_fn: the training loss: a name of :data:`LOSSES` (``"cross_entropy"``,
            ``"mse"``) or a callable ``(logits, y) -> mean loss`` (recorded by its
            qualified name; pass it again to resume).
        model / model_kwargs: optional ``landscape.models.build`` spec, recorded so
            :func:`load_members` can rebuild the architecture.
        dataset: the data the run is trained on (:class:`DataRecord`), recorded only.
        objective: the training loss of the clean and the adversarial batch
            (:class:`TRADES`, :class:`MART`), or None: ``loss_fn`` at the adversarial
            batch (PGD-AT).
        awp: adversarial weight perturbation (:class:`AWP`) on top of the objective,
            or None.
        averaging: a weight average kept beside the model (:class:`EMA`,
            :class:`SWA`): evaluated per epoch (``avg_*`` metrics) and saved as
            ``averaged.pt``; or None.
        val_num: training examples held out as a validation split (stratified by
            class, chosen by ``val_seed``, the same for every ``seed``; ``data``
            must be ``(x, y)`` tensors): their clean and robust accuracy and loss
            are logged per epoch (``val_*``) and the model with the best validation
            robust accuracy is kept as ``best.pt`` (Rice et al., 2020). 0: none.
        val_seed: the seed of the validation split.
        runtime: the :class:`Runtime` settings.

    Example:
        >>> from landscape import attacks
        >>> cfg = TrainConfig(epochs=2, attack=attacks.PGD(eps=0.1, steps=5),
        ...                   runtime=Runtime(amp="off"))
        >>> cfg.attack.eps, cfg.runtime.amp
        (0.1, 'off')
        >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    attack: attacks.Attack | None = None
    eps_schedule: str = "constant"
    eps_kwargs: dict = field(default_factory=dict)
    lr_schedule: str = "constant"
    lr_kwargs: dict = field(default_factory=dict)
    periods: Any = None
    schedule_update: str = "iteration"
    augment: str | None = None
    attack_train_mode: bool = False
    shuffle: bool = True
    drop_last: bool = False
    seed: int = 0
    loss_fn: str | Callable[[Tensor, Tensor], Tensor] = "cross_entropy"
    model: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    dataset: DataRecord = field(default_factory=DataRecord)
    objective: Objective | None = None
    awp: AWP | None = None
    averaging: EMA | SWA | None = None
    val_num: int = 0
    val_seed: int = 0
    runtime: Runtime = field(default_factory=Runtime)

    def __post_init__(self):
        self._check_optimisation()
        self._check_attack()
        self._check_objective()
        if not isinstance(self.dataset, DataRecord):
            raise TypeError(
                f"dataset must be a DataRecord, got {type(self.dataset).__name__}"
            )
        if not isinstance(self.runtime, Runtime):
            raise TypeError(
                f"runtime must be a Runtime, got {type(self.runtime).__name__}"
            )
        if not callable(self.loss_fn) and not (
            self.loss_fn in LOSSES or is_recorded_callable(self.loss_fn)
        ):
            raise ValueError(
                f"unknown loss_fn {self.loss_fn!r}; choose one of {sorted(LOSSES)} "
                "or pass a callable (logits, y) -> loss"
            )
        # Build once so bad schedule names / parameters fail at construction.
        self.eps_fn()
        self.lr_fn()
        if self.periods is not None:
            frac = [b for b in self.boundaries()[1:-1] if abs(b - round(b)) > 1e-9]
            if frac:
                warnings.warn(
                    f"period boundaries {frac} do not fall on a whole epoch: the "
                    "end-of-period checkpoints (ensemble members) are written at epoch "
                    f"ends {self.period_end_epochs()}, so they are not end-of-period "
                    "models; choose epochs divisible by the number of periods or "
                    "integer boundaries",
                    stacklevel=3,
                )

    def _check_optimisation(self) -> None:
        if int(self.epochs) < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; choose one of {_OPTIMIZERS}"
            )
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.schedule_update not in ("iteration", "epoch"):
            raise ValueError(
                "schedule_update must be 'iteration' or 'epoch', "
                f"got {self.schedule_update!r}"
            )
        if self.augment is not None and self.augment not in AUGMENTATIONS:
            raise ValueError(
                f"unknown augment {self.augment!r}; choose None or one of "
                f"{sorted(AUGMENTATIONS)}"
            )

    def _check_attack(self) -> None:
        atk = _attack_or_none(self.attack, "attack")
        if self.attack_train_mode and not isinstance(atk, attacks.PGD):
            raise ValueError(
                "attack_train_mode runs a PGD attack with the model in train mode: "
                f"give attack=attacks.PGD(...) (got {type(atk).__name__})"
            )
        ev = self.runtime.eval_attack if isinstance(self.runtime, Runtime) else None
        if ev is not None and atk is not None and ev.norm != atk.norm:
            raise ValueError(
                f"the per-epoch eval_attack's norm ({ev.norm}) must be the training "
                f"attack's ({atk.norm})"
            )

    def _check_objective(self) -> None:
        check_kind(self.objective, Objective, "objective")
        check_kind(self.awp, AWP, "awp")
        check_kind(self.averaging, (EMA, SWA), "averaging")
        if int(self.val_num) != self.val_num or self.val_num < 0:
            raise ValueError(f"val_num must be an integer >= 0, got {self.val_num!r}")
        obj = self.objective
        if obj is None:
            return
        name = type(obj).__name__
        if not isinstance(self.attack, attacks.PGD):
            raise ValueError(
                f"the {name} objective trains on adversarial examples: give "
                f"attack=attacks.PGD(...) (got {type(self.attack).__name__})"
            )
        if self.loss_fn != "cross_entropy":
            raise ValueError(
                f"the {name} objective is defined with the cross-entropy: use "
                f"loss_fn='cross_entropy' (got {self.loss_fn!r})"
            )
        if (
            type(obj).attack_loss is not Objective.attack_loss  # e.g. TRADES' KL
            and not self.attack.random_start
        ):
            raise ValueError(
                f"the {name} attack ascends a loss whose gradient is zero at x: give "
                "the attack random_start=True"
            )

    # -- schedules ---------------------------------------------------------------
    def boundaries(self) -> tuple[float, ...]:
        """Period boundaries (``(0, epochs)`` when ``periods`` is None)."""
        if self.periods is None:
            return (0.0, float(self.epochs))
        return period_boundaries(self.periods, self.epochs)

    def period_end_epochs(self) -> list[int]:
        """Epoch counts after which an end-of-period checkpoint is written."""
        ends = sorted({int(round(b)) for b in self.boundaries()[1:]})
        return [e for e in ends if 1 <= e <= int(self.epochs)] or [int(self.epochs)]

    def _schedule(self, kind: str) -> Schedule:
        name = self.eps_schedule if kind == "eps" else self.lr_schedule
        kw = dict(self.eps_kwargs if kind == "eps" else self.lr_kwargs)
        kw.setdefault("value", target_eps(self) if kind == "eps" else self.lr)
        key = str(name).lower()
        if key in _PERIODIC:
            kw.setdefault("periods", self.boundaries())
        if key not in ("step", "multistep"):
            kw.setdefault("epochs", self.epochs)
        return make_schedule(name, kind=kind, **kw)

    def eps_fn(self) -> Schedule:
        """The eps schedule (target ``attack.eps``)."""
        return self._schedule("eps")

    def lr_fn(self) -> Schedule:
        """The learning-rate schedule (peak ``lr``)."""
        return self._schedule("lr")

    # -- the loss ----------------------------------------------------------------
    def summed_loss(self) -> Callable[[Tensor, Tensor], Tensor]:
        """The training loss summed over the batch, ``(logits, y) -> scalar``.

        Raises:
            ValueError: a config read back from a file that recorded a callable.
        """
        fn = self.loss_fn
        if callable(fn):
            return lambda out, y: fn(out, y) * len(y)
        if fn in LOSSES:
            named = LOSSES[fn]
            return lambda out, y: named(out, y, reduction="sum")
        raise ValueError(
            f"this config was recorded with a custom loss_fn ({fn[len(CALLABLE) :]}); "
            "pass that callable as loss_fn=... to train or resume with it"
        )

    # -- (de)serialisation -------------------------------------------------------
    def science_dict(self) -> dict[str, Any]:
        """The science settings, JSON-ready (what a resumed run must match)."""
        d = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "runtime"
        }
        d["attack"] = None if self.attack is None else self.attack.to_dict()
        d["dataset"] = dataclasses.asdict(self.dataset)
        for name in ("objective", "awp", "averaging"):
            d[name] = record(getattr(self, name))
        d["loss_fn"] = callable_name(self.loss_fn) if callable(self.loss_fn) else (
            self.loss_fn
        )  # fmt: skip
        return json.loads(json.dumps(d))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the science settings and ``"runtime"`` nested (attacks as
        their :meth:`~landscape.attacks.Attack.to_dict`)."""
        return {**self.science_dict(), "runtime": self.runtime.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], **callables: Any) -> TrainConfig:
        """The config of :meth:`to_dict` (a ``config.json``); ``callables`` pass the
        callables it recorded by name again (``loss_fn=...``; an attack's custom
        loss: ``dataclasses.replace`` the attack).

        Raises:
            ValueError: keys that are no setting.
        """
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown TrainConfig fields {unknown}; a config.json of an older "
                "version must be migrated"
            )
        if d.get("attack") is not None:
            d["attack"] = attacks.Attack.from_dict(d["attack"])
        if "dataset" in d:
            d["dataset"] = DataRecord(**d["dataset"])
        d["objective"] = from_record(d.get("objective"), Objective)
        d["awp"] = from_record(d.get("awp"), AWP)
        d["averaging"] = from_record(d.get("averaging"), (EMA, SWA))
        if "runtime" in d:
            d["runtime"] = Runtime.from_dict(d["runtime"])
        d.update(callables)
        return cls(**d)


def target_eps(config: TrainConfig) -> float:
    """The target budget of a run: its attack's eps (0 without an attack)."""
    return 0.0 if config.attack is None else config.attack.eps


def _cifar10_preset(model: str) -> TrainConfig:
    """The paper's CIFAR-10 setting for ``model`` (Liu et al., NeurIPS 2020, released
    code): the network at the paper's width 8 (ours ``width=0.5``: its channel unit
    is 4 / 8, ours 64), no input normalisation (its ``DataNormalizeLayer(bias=0,
    scale=1)``), crop (padding 4) + flip augmentation, SGD lr 0.1 momentum 0.9,
    weight decay 1e-3 (every released CIFAR checkpoint is named ``wd1e-3``; the
    code's default is 1e-4), batch 128, 200 epochs, PGD-10 with step ``eps / 4``
    (2/255 at 8/255; it follows eps(t)) starting uniformly in ``[-step, step]``,
    eps = 8/255 constant, lr x0.1 at epochs 100 and 150 (the ``jump`` schedule of
    its README's curve-training example; the released code gives no lr for plain
    adversarial training), schedules updated per epoch. The periodic runs
    (:func:`cifar10_periodic`) add three periods [0, 100), [100, 150), [150, 200)."""
    return TrainConfig(
        dataset=DataRecord("cifar10"),
        model=model,
        model_kwargs={"width": 0.5, "mean": 0.0, "std": 1.0},
        epochs=200,
        batch_size=128,
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        weight_decay=1e-3,
        attack=attacks.PGD(eps=8 / 255, steps=10, alpha_rel=0.25, random_start="step"),
        eps_schedule="constant",
        lr_schedule="step",
        lr_kwargs={"milestones": [100, 150], "gamma": 0.1},
        schedule_update="epoch",
        augment="crop_flip",
    )


def cifar10_periodic(config: TrainConfig, schedule: str) -> TrainConfig:
    """The paper's CIFAR-10 run of ``schedule`` (``"constant"``, ``"cosine"``,
    ``"linear"``) made periodic: three periods ``[0, 100, 150, 200]`` (scaled to
    ``config.epochs``; the released periodic checkpoints are saved at epochs 100, 150
    and 200: the ensemble members), the lr ``cycle_jump`` in each period (x0.1 at
    half and three quarters of it: our choice, the released code does not give the
    periodic lr; its ``cos_cycle_jump`` cannot follow unequal periods), eps constant
    or ``cycle_cos`` / ``cycle_linear`` per period from 0 to the peak ``2 eps`` (16/255,
    the checkpoints' ``max16``) capped at eps. All values in [0, 1] units: the
    released code reads a schedule value >= 1 as x/255 and one < 1 as raw, so an eps
    schedule written in /255 units would attack at raw budgets up to ~1 early in a
    ramp (the unit hazard); we never mix units."""
    e = int(config.epochs)
    periods = [0, e // 2, (3 * e) // 4, e]
    eps_schedule, eps_kwargs = paper_eps_schedule(schedule, target_eps(config), 2.0)
    return dataclasses.replace(
        config,
        periods=periods,
        eps_schedule=eps_schedule,
        eps_kwargs=eps_kwargs,
        lr_schedule="cycle_jump",
        lr_kwargs={"drops": [0.5, 0.75], "gamma": 0.1},
    )


def paper_eps_schedule(schedule: str, eps: float, peak: float) -> tuple[str, dict]:
    """``(eps_schedule, eps_kwargs)`` of the paper's run family ``schedule`` at the
    target ``eps``: ``"constant"``; ``"cosine"`` = ``cycle_cos`` from 0 to
    ``peak x eps`` (MNIST 1.5: 0.6 at 0.4; CIFAR-10 2: 16/255 at 8/255), capped at
    eps; ``"linear"`` = ``cycle_linear`` from 0 rising by ``2 eps`` per period (the
    released checkpoints' ``max0.8`` / ``max16``), capped at eps.

    Example:
        >>> paper_eps_schedule("cosine", 0.4, 1.5)
        ('cycle_cos', {'peak': 0.6000000000000001})
    """
    if schedule == "constant":
        return "constant", {}
    if schedule == "cosine":
        return "cycle_cos", {"peak": peak * eps}
    if schedule == "linear":
        return "cycle_linear", {"slope": 2.0 * eps}
    raise ValueError(
        f"unknown schedule family {schedule!r}; choose constant, cosine or linear"
    )


def _mnist_preset(
    model: str,
    *,
    eps: float,
    steps: int,
    batch_size: int,
    attack: attacks.PGD,
    **setting: Any,
) -> TrainConfig:
    """An MNIST setting with Adam 1e-4, constant lr, no input normalisation and the
    per-epoch evaluation PGD-20 (the quick preset's); ``setting`` adds the rest."""
    return TrainConfig(
        dataset=DataRecord("mnist"),
        batch_size=batch_size,
        optimizer="adam",
        lr=1e-4,
        attack=attack,
        lr_schedule="constant",
        runtime=Runtime(
            eval_attack=attacks.PGD(
                eps=eps, steps=20, loss="ce", keep="best", random_start=True
            )
        ),
        model=model,
        **setting,
    )


# The paper's settings (Liu et al., NeurIPS 2020; its released code and README).
PRESETS: dict[str, TrainConfig] = {
    # The README's MNIST command: LeNet width 16 (conv 32 / 64, fc 1024), no input
    # normalisation, Adam 1e-4 constant, batch 128 (the code's default), 100 epochs,
    # PGD-50 at eps 0.4 with step 0.01 at eps 0.4 that follows eps(t) (alpha_rel
    # 0.025; the code divides by eps + 1e-6) from a start uniform in [-step, step],
    # eps cycle_cos from 0 to 0.6 over one period [0, 100) capped at 0.4 (0.4 from
    # epoch 61 on), per epoch (epoch 0 is clean).
    "mnist-lenet": _mnist_preset(
        "lenet",
        eps=0.4,
        steps=50,
        batch_size=128,
        attack=attacks.PGD(eps=0.4, steps=50, alpha_rel=0.025, random_start="step"),
        model_kwargs={"width": 16, "mean": 0.0, "std": 1.0},
        epochs=100,
        eps_schedule="cycle_cos",
        eps_kwargs={"peak": 0.6},
        schedule_update="epoch",
    ),
    # CIFAR-10 VGG-16 / ResNet-18 at the paper's width 8; periodic runs: see
    # cifar10_periodic.
    "cifar10-vgg16": _cifar10_preset("vgg16"),
    "cifar10-resnet18": _cifar10_preset("resnet18"),
    # Madry et al.'s MNIST challenge: their CNN (conv 32 / 64, fc 1024), inputs in
    # [0, 1] without normalisation, eps 0.3 constant, PGD-40 step 0.01 from a random
    # point of the eps-ball, Adam 1e-4, batch 50, 100,000 iterations (83.3 epochs).
    "madry-mnist": _mnist_preset(
        "madry_cnn",
        eps=0.3,
        steps=40,
        batch_size=50,
        attack=attacks.PGD(eps=0.3, steps=40, alpha=0.01),
        model_kwargs={"mean": 0.0, "std": 1.0},
        epochs=84,
        eps_schedule="constant",
    ),
}


def preset(name: str) -> TrainConfig:
    """The :class:`TrainConfig` of a named preset (change it with
    ``dataclasses.replace``; a new schedule does not inherit the preset's
    schedule parameters: replace ``eps_kwargs`` / ``lr_kwargs`` along with it).

    Raises:
        ValueError: unknown preset (the message lists the choices).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def smoke(config: TrainConfig) -> TrainConfig:
    """Shrink a config to seconds on a CPU (few epochs, steps and eval examples)."""
    epochs = min(int(config.epochs), 2)
    rt = config.runtime
    kw: dict[str, Any] = dict(epochs=epochs, batch_size=min(int(config.batch_size), 64))
    atk = config.attack
    if isinstance(atk, attacks.PGD):
        steps = min(atk.steps, 3)
        change: dict[str, Any] = {"steps": steps}
        if atk.alpha is not None:  # an absolute step would not cross the ball
            change.update(alpha=None, alpha_rel=2.5 / steps)
        if not isinstance(atk, attacks.FGSMRS):
            kw["attack"] = dataclasses.replace(atk, **change)
    ev = rt.eval_attack
    if ev is None:
        from ..evaluate import preset_attacks

        ev = preset_attacks("quick", target_eps(config), atk.norm if atk else "linf")[0]
    if isinstance(ev, attacks.PGD):
        ev = dataclasses.replace(ev, steps=min(ev.steps, 3))
    kw["runtime"] = dataclasses.replace(
        rt,
        eval_num=min(int(rt.eval_num), 64),
        eval_attack=ev,
        co_check_num=min(int(rt.co_check_num), 32),
        compile=False,
    )
    if "width" in config.model_kwargs:
        width = min(float(config.model_kwargs["width"]), 1.0)
        kw["model_kwargs"] = {**config.model_kwargs, "width": width}
    if config.periods is not None:
        kw["periods"] = min(epochs, 2)
    if config.lr_schedule in ("step", "multistep"):
        kw["lr_kwargs"] = {"milestones": [epochs], "gamma": 0.1}
    if config.eps_schedule in ("linear", "cosine") and "warmup" in config.eps_kwargs:
        kw["eps_kwargs"] = {**config.eps_kwargs, "warmup": max(epochs / 2, 0.5)}
    return dataclasses.replace(config, **kw)

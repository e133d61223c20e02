"""Training configuration: the science settings (:class:`Science`, with a typed
:class:`DatasetSpec` and a ``loss_fn``), the runtime settings (:class:`Runtime`), the
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

from .. import _utils
from ..schedules import Schedule, make_schedule, period_boundaries

__all__ = [
    "TrainConfig",
    "Science",
    "Runtime",
    "DatasetSpec",
    "LOSSES",
    "PRESETS",
    "preset",
    "smoke",
]

_OPTIMIZERS = ("sgd", "adam")


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

_CALLABLE = "callable:"


@dataclass(frozen=True)
class DatasetSpec:
    """The data a run was trained on (recorded in ``config.json``; read it back with
    :meth:`from_config` instead of guessing keys).

    Attributes:
        name: dataset name of :func:`landscape.data.load_dataset` (``"mnist"``,
            ``"fashion-mnist"``, ``"cifar10"``, ...); None when unknown.
        num_train: training examples used (None: the whole split).
        num_test: test examples used by the evaluation (None: unknown).
        extra: anything else the caller recorded (plain JSON values).

    Example:
        >>> DatasetSpec.from_config({"data": {"dataset": "fashion-mnist"}}).name
        'fashion-mnist'
        >>> DatasetSpec.from_config({"dataset": {"name": "mnist", "num_train": 500}})
        DatasetSpec(name='mnist', num_train=500, num_test=None, extra={})
    """

    name: str | None = None
    num_train: int | None = None
    num_test: int | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.name is not None and not isinstance(self.name, str):
            raise TypeError(f"dataset name must be a string, got {self.name!r}")
        for key in ("num_train", "num_test"):
            v = getattr(self, key)
            if v is not None and int(v) < 1:
                raise ValueError(f"dataset {key} must be >= 1, got {v}")

    @classmethod
    def coerce(cls, value: Any) -> DatasetSpec:
        """A spec from a spec, a name, a dict (old ``data={...}`` too) or None."""
        if isinstance(value, DatasetSpec):
            return value
        if value is None:
            return cls()
        if isinstance(value, str):
            return cls(name=value)
        if isinstance(value, dict):
            d = dict(value)
            name = d.pop("name", None)
            alias = d.pop("dataset", None)  # the old train CLI wrote "dataset"
            if name is not None and alias is not None and name != alias:
                raise ValueError(f"dataset name given twice: {name!r} and {alias!r}")
            extra = dict(d.pop("extra", None) or {})
            num_train, num_test = d.pop("num_train", None), d.pop("num_test", None)
            return cls(name or alias, num_train, num_test, {**extra, **d})
        raise TypeError(
            f"dataset must be a DatasetSpec, a name or a dict, got {type(value).__name__}"
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DatasetSpec:
        """The dataset of a ``config.json`` dict, new (``"dataset"``) or old
        (``"data": {"name" | "dataset": ...}``) format."""
        if config.get("dataset") is not None:
            return cls.coerce(config["dataset"])
        return cls.coerce(config.get("data") or None)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


@dataclass(frozen=True)
class Science:
    """The settings that define what a run computes: the problem, the optimisation,
    the adversary and the schedules (saved in ``config.json``; a resumed run must
    match them exactly).

    Attributes:
        epochs: number of passes over the training data.
        batch_size: global batch size (split across ranks under DDP).
        optimizer: ``"sgd"`` (momentum ``momentum``, optional Nesterov) or ``"adam"``.
        lr: peak learning rate (the lr schedule's target value).
        weight_decay: L2 penalty (coupled, as in ``torch.optim``).
        eps: TARGET adversarial budget (input units: 0.3 for MNIST, 8/255 for CIFAR-10).
        norm: ``"linf"`` or ``"l2"``.
        eps_schedule / eps_kwargs: eps schedule name (``constant | linear | cosine |
            periodic``) and extra parameters (``warmup``, ``ramp``, ``start``, ...).
        lr_schedule / lr_kwargs: lr schedule name (``constant | step | cosine |
            periodic | onecycle``) and extra parameters (``milestones``, ``final``...).
        periods: period boundaries (or a count of equal periods) shared by the periodic
            eps and lr schedules; end-of-period checkpoints form the ensemble. ``None``
            means one period (the whole run).
        schedule_update: ``"iteration"`` (fractional epoch per batch) or ``"epoch"``.
        attack: ``"pgd"``, ``"fgsm"`` (FGSM with random start) or ``"none"``.
        steps: PGD steps during training.
        alpha_rel: step size relative to the scheduled eps (follows the schedule);
            default ``2.5 / steps`` for PGD and ``1.25`` for FGSM.
        alpha: absolute step size (overrides ``alpha_rel``; e.g. 0.01 on MNIST).
        random_start: start the attack at a uniform point of the ball.
        attack_train_mode: run the attack with the model in train mode (BatchNorm batch
            statistics); default eval mode.
        shuffle / drop_last: batching of ``(x, y)`` tensors.
        seed: seeds the shuffles, the attack's random starts and torch's global
            RNG (dropout) for the run (inside a fork: the caller's stream is
            neither used nor advanced).
        loss_fn: the training loss (also the one the training attack ascends): a
            name of :data:`LOSSES` (``"cross_entropy"``, ``"mse"``) or a callable
            ``(logits, y) -> mean loss`` (recorded by its qualified name; pass it
            again to resume).
        model / model_kwargs: optional ``landscape.models.build`` spec, recorded so
            :func:`load_members` can rebuild the architecture.
        dataset: the data the run is trained on (:class:`DatasetSpec`; a name or a
            dict is accepted), recorded only.
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    eps: float = 0.0
    norm: str = "linf"
    eps_schedule: str = "constant"
    eps_kwargs: dict = field(default_factory=dict)
    lr_schedule: str = "constant"
    lr_kwargs: dict = field(default_factory=dict)
    periods: Any = None
    schedule_update: str = "iteration"
    attack: str = "pgd"
    steps: int = 10
    alpha_rel: float | None = None
    alpha: float | None = None
    random_start: bool = True
    attack_train_mode: bool = False
    shuffle: bool = True
    drop_last: bool = False
    seed: int = 0
    loss_fn: str | Callable[[Tensor, Tensor], Tensor] = "cross_entropy"
    model: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    dataset: DatasetSpec = field(default_factory=DatasetSpec)

    def __post_init__(self):
        object.__setattr__(self, "dataset", DatasetSpec.coerce(self.dataset))
        self._check_optimisation()
        self._check_attack()
        if not callable(self.loss_fn) and not (
            self.loss_fn in LOSSES or str(self.loss_fn).startswith(_CALLABLE)
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
                    stacklevel=4,
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

    def _check_attack(self) -> None:
        object.__setattr__(self, "norm", _utils.check_training_attack(self))

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
        kw.setdefault("value", self.eps if kind == "eps" else self.lr)
        key = str(name).lower()
        if key in ("periodic", "cyclic", "pas"):
            kw.setdefault("periods", self.boundaries())
        if key not in ("step", "multistep"):
            kw.setdefault("epochs", self.epochs)
        return make_schedule(name, kind=kind, **kw)

    def eps_fn(self) -> Schedule:
        """The eps schedule (target ``eps``)."""
        return self._schedule("eps")

    def lr_fn(self) -> Schedule:
        """The learning-rate schedule (peak ``lr``)."""
        return self._schedule("lr")

    def step_size(self, eps_t: float) -> float:
        """Training attack step size at scheduled budget ``eps_t``."""
        if self.alpha is not None:
            return float(self.alpha)
        if self.alpha_rel is not None:
            return float(self.alpha_rel) * eps_t
        if self.attack == "fgsm":
            return 1.25 * eps_t
        return 2.5 * eps_t / max(int(self.steps), 1)

    # -- the loss ----------------------------------------------------------------
    def loss_name(self) -> str:
        """``loss_fn`` as recorded in ``config.json``."""
        if callable(self.loss_fn):
            fn = self.loss_fn
            mod = getattr(fn, "__module__", None) or "?"
            name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
            return f"{_CALLABLE}{mod}.{name}"
        return str(self.loss_fn)

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
            f"this config was recorded with a custom loss_fn ({fn[len(_CALLABLE) :]}); "
            "pass that callable as loss_fn=... to train or resume with it"
        )

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["dataset"] = self.dataset.to_dict()
        d["loss_fn"] = self.loss_name()
        return json.loads(json.dumps(d))


@dataclass(frozen=True)
class Runtime:
    """How a run is executed, checkpointed and monitored (saved in ``config.json``;
    may change when a run is resumed). Per-epoch metrics and checkpoints never feed
    back into the weights; ``amp``, ``channels_last``, ``compile``,
    ``attack_onednn`` and ``num_threads`` change only the floating-point rounding.

    Attributes:
        eval_num: test examples used by the per-epoch evaluation (0: no evaluation).
        eval_steps / eval_alpha_rel: steps of the per-epoch robust evaluation (kept
            small for CPU) and the relative step size of ``eval_attack="pgd"``.
        eval_attack: ``"auto"``: :func:`landscape.evaluate.robust_accuracy` with the
            ``"quick"`` preset (the evaluation PGD, best iterate) and
            ``eval_steps`` steps; ``"pgd"``: the training PGD kernel with step
            ``eval_alpha_rel * eps`` (cheaper). Either way a failure raises.
        eval_every: evaluate every this many epochs (and always at the last one).
        co_check_num: size of the fixed training batch checked for catastrophic
            overfitting each epoch (0 disables; only single-step training is
            checked); ``co_threshold``: flag when FGSM accuracy exceeds PGD accuracy
            on it by more than this.
        checkpoint_every: also write the resume checkpoint every this many iterations
            (0: only at the end of each epoch).
        amp: ``"auto"`` (bf16 autocast on CUDA, off on CPU), ``"bf16"`` or ``"off"``.
        channels_last: use channels_last memory format on CUDA.
        compile: wrap the model in ``torch.compile``.
        attack_onednn: oneDNN (mkldnn) for the training attack on CPU: ``"on"``,
            ``"off"`` or ``"auto"`` (off when every convolution has <= 16 channels:
            oneDNN's input-gradient convolution is 3-5x slower than PyTorch's own
            kernel for such thin layers, e.g. LeNet, and faster for wide ones).
        num_threads: torch CPU threads during the run (None: leave as set; the
            seeded CPU result depends on it), restored on return.

    The device is the model's (move the model to train elsewhere).
    """

    eval_num: int = 1000
    eval_steps: int = 10
    eval_alpha_rel: float = 0.25
    eval_attack: str = "auto"
    eval_every: int = 1
    co_check_num: int = 128
    co_threshold: float = 0.2
    checkpoint_every: int = 0
    amp: str = "auto"
    channels_last: bool = True
    compile: bool = False
    attack_onednn: str = "auto"
    num_threads: int | None = None

    def __post_init__(self):
        if self.eval_attack not in ("auto", "pgd"):
            raise ValueError(
                f"eval_attack must be 'auto' or 'pgd', got {self.eval_attack!r}"
            )
        if self.attack_onednn not in ("auto", "on", "off"):
            raise ValueError(
                f"attack_onednn must be 'auto', 'on' or 'off', got {self.attack_onednn!r}"
            )
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"amp must be 'auto', 'bf16' or 'off', got {self.amp!r}")
        for name in ("eval_num", "eval_steps", "co_check_num", "checkpoint_every"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if int(self.eval_every) < 1:
            raise ValueError(f"eval_every must be >= 1, got {self.eval_every}")
        if not self.eval_alpha_rel > 0:
            raise ValueError(
                f"the step size eval_alpha_rel must be > 0, got {self.eval_alpha_rel}"
            )
        if self.num_threads is not None and int(self.num_threads) < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


_SCIENCE = tuple(f.name for f in dataclasses.fields(Science))
_RUNTIME = tuple(f.name for f in dataclasses.fields(Runtime))


@dataclass(frozen=True, init=False)
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json`` in the run
    folder): the :class:`Science` settings and the :class:`Runtime` settings.

    Construct it from the parts or from flat keywords, which go to the part that owns
    them; read any setting flat as well (``cfg.eps`` is ``cfg.science.eps``,
    ``cfg.amp`` is ``cfg.runtime.amp``). ``data={...}``, the old untyped dataset
    record, becomes ``dataset=DatasetSpec(...)``. ``config.json`` stays one flat
    object (the keys of both parts), so files of older runs load too.

    Example:
        >>> cfg = TrainConfig(epochs=2, eps=0.1, amp="off", data={"name": "mnist"})
        >>> cfg.science.eps, cfg.runtime.amp, cfg.eps, cfg.dataset.name
        (0.1, 'off', 0.1, 'mnist')
        >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    science: Science
    runtime: Runtime

    def __init__(
        self,
        science: Science | None = None,
        runtime: Runtime | None = None,
        **settings: Any,
    ):
        if "data" in settings:
            if "dataset" in settings:
                raise TypeError("give dataset= or the older data=, not both")
            settings["dataset"] = settings.pop("data")
        unknown = sorted(set(settings) - set(_SCIENCE) - set(_RUNTIME))
        if unknown:
            raise TypeError(
                f"TrainConfig got unknown settings {unknown}; science settings: "
                f"{sorted(_SCIENCE)}; runtime settings: {sorted(_RUNTIME)}"
            )
        sci = {k: v for k, v in settings.items() if k in _SCIENCE}
        run = {k: v for k, v in settings.items() if k in _RUNTIME}
        science = Science() if science is None and not sci else science
        if science is None:
            science = Science(**sci)
        elif sci:
            science = dataclasses.replace(science, **sci)
        runtime = dataclasses.replace(runtime or Runtime(), **run)
        if not isinstance(science, Science) or not isinstance(runtime, Runtime):
            raise TypeError("science must be a Science and runtime a Runtime")
        object.__setattr__(self, "science", science)
        object.__setattr__(self, "runtime", runtime)

    def __getattr__(self, name: str) -> Any:
        # Flat read access: settings and schedule helpers of the two parts.
        if name.startswith("_") or name in ("science", "runtime"):
            raise AttributeError(name)
        for part in (self.__dict__.get("science"), self.__dict__.get("runtime")):
            if part is not None and hasattr(part, name):
                return getattr(part, name)
        raise AttributeError(f"TrainConfig has no setting {name!r}")

    # -- (de)serialisation -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready flat dict of both parts (tuples become lists)."""
        return {**self.science.to_dict(), **self.runtime.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """A config from :meth:`to_dict` (or an older ``config.json``: flat, with the
        untyped ``data`` dict and no ``loss_fn``; or ``{"science", "runtime"}``).

        Raises:
            ValueError: keys that are no setting of either part.
        """
        if set(d) <= {"science", "runtime"}:
            d = {**(d.get("science") or {}), **(d.get("runtime") or {})}
        d = dict(d)
        if "data" in d and "dataset" not in d:
            d["dataset"] = d.pop("data")
        unknown = sorted(set(d) - set(_SCIENCE) - set(_RUNTIME))
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        if isinstance(d.get("dataset"), dict):
            d["dataset"] = DatasetSpec.coerce(d["dataset"])
        return cls(**d)

    def replace(self, **kw: Any) -> TrainConfig:
        """A copy with some settings (flat names, or ``science=`` / ``runtime=``)
        changed (validated again)."""
        science = kw.pop("science", self.science)
        runtime = kw.pop("runtime", self.runtime)
        return TrainConfig(science, runtime, **kw)


def _cifar10_preset(model: str) -> dict[str, Any]:
    """The paper's CIFAR-10 setting for ``model``: eps=8/255, SGD 0.1, PGD-10 step
    eps/4, step lr decay at epochs 100 and 150."""
    return dict(
        dataset="cifar10",
        model=model,
        epochs=200,
        batch_size=128,
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        eps=8 / 255,
        attack="pgd",
        steps=10,
        alpha_rel=0.25,
        eps_schedule="constant",
        lr_schedule="step",
        lr_kwargs={"milestones": [100, 150], "gamma": 0.1},
    )


def _mnist_preset(model: str, **setting: Any) -> dict[str, Any]:
    """An MNIST setting with Adam 1e-4, PGD step 0.01, constant eps and lr, and the
    per-epoch evaluation PGD-20 (step eps/10); ``setting`` adds the rest."""
    return dict(
        dataset="mnist",
        model=model,
        epochs=100,
        optimizer="adam",
        lr=1e-4,
        attack="pgd",
        alpha=0.01,
        eps_schedule="constant",
        lr_schedule="constant",
        eval_steps=20,
        eval_alpha_rel=0.1,
        **setting,
    )


# The paper's settings (Liu et al., NeurIPS 2020, Sec. 4-5 and the authors' README).
PRESETS: dict[str, dict[str, Any]] = {
    # LeNet on MNIST, eps=0.4, Adam 1e-4, PGD step 0.01 with eps/0.01 + 10 = 50 steps;
    # eps schedule constant / linear / cosine (--eps-schedule). The authors' runs use
    # LeNet width 16.
    "mnist-lenet": _mnist_preset(
        "lenet", model_kwargs={"width": 16}, batch_size=100, eps=0.4, steps=50
    ),
    # CIFAR-10 VGG-16 / ResNet-18, eps=8/255, SGD 0.1, PGD-10 step eps/4; constant vs
    # periodic eps and lr (--eps-schedule periodic --lr-schedule periodic --periods 3).
    "cifar10-vgg16": _cifar10_preset("vgg16"),
    "cifar10-resnet18": _cifar10_preset("resnet18"),
    # Madry et al.'s MNIST challenge: eps=0.3, PGD-40 step 0.01, Adam 1e-4.
    "madry-mnist": _mnist_preset("madry_cnn", batch_size=50, eps=0.3, steps=40),
}


def preset(name: str, **overrides: Any) -> tuple[TrainConfig, dict[str, Any]]:
    """``(TrainConfig, extras)`` for a named preset; ``extras`` repeats the dataset
    name and the model name (``cfg.dataset.name``, ``cfg.model``). Overrides replace
    preset fields.

    Raises:
        ValueError: unknown preset (the message lists the choices).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    d = dict(PRESETS[name])
    dataset = d["dataset"]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for kind in ("eps", "lr"):  # a new schedule does not inherit the preset's params
        name = overrides.get(f"{kind}_schedule")
        if name is not None and name != d.get(f"{kind}_schedule"):
            d.pop(f"{kind}_kwargs", None)
    d.update(overrides)
    return TrainConfig(**d), {"dataset": dataset, "model": d.get("model")}


def smoke(config: TrainConfig) -> TrainConfig:
    """Shrink a config to seconds on a CPU (few epochs, steps and eval examples)."""
    epochs = min(int(config.epochs), 2)
    kw: dict[str, Any] = dict(
        epochs=epochs,
        steps=min(int(config.steps), 3),
        eval_num=min(int(config.eval_num), 64),
        eval_steps=min(int(config.eval_steps), 3),
        co_check_num=min(int(config.co_check_num), 32),
        batch_size=min(int(config.batch_size), 64),
        compile=False,
    )
    if "width" in config.model_kwargs:
        kw["model_kwargs"] = {**config.model_kwargs, "width": 1}
    if config.alpha is not None:
        kw["alpha"] = None
        kw["alpha_rel"] = 2.5 / kw["steps"]
    if config.periods is not None:
        kw["periods"] = min(epochs, 2)
    if config.lr_schedule in ("step", "multistep"):
        kw["lr_kwargs"] = {"milestones": [epochs], "gamma": 0.1}
    if config.eps_schedule in ("linear", "cosine") and "warmup" in config.eps_kwargs:
        kw["eps_kwargs"] = {**config.eps_kwargs, "warmup": max(epochs / 2, 0.5)}
    return config.replace(**kw)

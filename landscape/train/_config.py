"""Training configuration, the paper's presets and building schedules from a config."""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from typing import Any

from .. import _utils
from ..schedules import Schedule, make_schedule, period_boundaries

__all__ = ["TrainConfig", "PRESETS", "preset", "smoke"]

_OPTIMIZERS = ("sgd", "adam")
_ATTACKS = ("pgd", "fgsm", "none")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json`` in the run folder).

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
        eval_num: test examples used by the per-epoch evaluation (0: no evaluation).
        eval_steps / eval_alpha_rel: PGD steps and relative step size of the per-epoch
            robust evaluation (kept small for CPU).
        eval_attack: ``"auto"`` (``landscape.evaluate.robust_accuracy(preset="quick")``
            when that module exists, else PGD) or ``"pgd"``.
        eval_every: evaluate every this many epochs (and always at the last one).
        co_check_num: size of the fixed training batch checked for catastrophic
            overfitting each epoch (0 disables); ``co_threshold``: flag when FGSM
            accuracy exceeds PGD accuracy on it by more than this.
        checkpoint_every: also write the resume checkpoint every this many iterations
            (0: only at the end of each epoch).
        seed: seeds the shuffles, the attack's random starts and torch's global
            RNG (dropout) for the run (inside a fork: the caller's stream is
            neither used nor advanced).
        amp: ``"auto"`` (bf16 autocast on CUDA, off on CPU), ``"bf16"`` or ``"off"``.
        channels_last: use channels_last memory format on CUDA.
        compile: wrap the model in ``torch.compile``.
        attack_onednn: oneDNN (mkldnn) for the training attack on CPU: ``"on"``,
            ``"off"`` or ``"auto"`` (off when every convolution has <= 16 channels:
            oneDNN's input-gradient convolution is 3-5x slower than PyTorch's own
            kernel for such thin layers, e.g. LeNet, and faster for wide ones).
        model / model_kwargs: optional ``landscape.models.build`` spec, recorded so
            :func:`load_members` can rebuild the architecture.
        data: optional description of the data (name, sizes), recorded only.
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
    eval_num: int = 1000
    eval_steps: int = 10
    eval_alpha_rel: float = 0.25
    eval_attack: str = "auto"
    eval_every: int = 1
    co_check_num: int = 128
    co_threshold: float = 0.2
    checkpoint_every: int = 0
    seed: int = 0
    amp: str = "auto"
    channels_last: bool = True
    compile: bool = False
    attack_onednn: str = "auto"
    model: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)

    def __post_init__(self):
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
        _utils.check_eps(self.eps)
        object.__setattr__(self, "norm", _utils.check_norm(self.norm))
        if self.attack not in _ATTACKS:
            raise ValueError(
                f"unknown attack {self.attack!r}; choose one of {_ATTACKS}"
            )
        if self.attack == "pgd" and int(self.steps) < 1:
            raise ValueError(f"PGD training needs steps >= 1, got {self.steps}")
        for name in ("alpha_rel", "alpha", "eval_alpha_rel"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(
                    f"the step size {name} must be > 0, got {v} (a step larger than "
                    "eps is fine: FGSM-RS uses alpha_rel=1.25)"
                )
        if self.schedule_update not in ("iteration", "epoch"):
            raise ValueError(
                "schedule_update must be 'iteration' or 'epoch', "
                f"got {self.schedule_update!r}"
            )
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

    # -- (de)serialisation -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        return cls(**d)

    def replace(self, **kw: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **kw)


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


# The paper's settings (Liu et al., NeurIPS 2020, Sec. 4-5 and the authors' README).
PRESETS: dict[str, dict[str, Any]] = {
    # LeNet on MNIST, eps=0.4, Adam 1e-4, PGD step 0.01 with eps/0.01 + 10 = 50 steps;
    # eps schedule constant / linear / cosine (--eps-schedule).
    "mnist-lenet": dict(
        dataset="mnist",
        model="lenet",
        model_kwargs={"width": 16},  # the authors' runs use LeNet width 16
        epochs=100,
        batch_size=100,
        optimizer="adam",
        lr=1e-4,
        eps=0.4,
        attack="pgd",
        steps=50,
        alpha=0.01,
        eps_schedule="constant",
        lr_schedule="constant",
        eval_steps=20,
        eval_alpha_rel=0.1,
    ),
    # CIFAR-10 VGG-16 / ResNet-18, eps=8/255, SGD 0.1, PGD-10 step eps/4; constant vs
    # periodic eps and lr (--eps-schedule periodic --lr-schedule periodic --periods 3).
    "cifar10-vgg16": _cifar10_preset("vgg16"),
    "cifar10-resnet18": _cifar10_preset("resnet18"),
    # Madry et al.'s MNIST challenge: eps=0.3, PGD-40 step 0.01, Adam 1e-4.
    "madry-mnist": dict(
        dataset="mnist",
        model="madry_cnn",
        epochs=100,
        batch_size=50,
        optimizer="adam",
        lr=1e-4,
        eps=0.3,
        attack="pgd",
        steps=40,
        alpha=0.01,
        eps_schedule="constant",
        lr_schedule="constant",
        eval_steps=20,
        eval_alpha_rel=0.1,
    ),
}


def preset(name: str, **overrides: Any) -> tuple[TrainConfig, dict[str, Any]]:
    """``(TrainConfig, extras)`` for a named preset; ``extras`` holds ``dataset`` and
    ``model`` (not training options). Overrides replace preset fields.

    Raises:
        ValueError: unknown preset (the message lists the choices).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    d = dict(PRESETS[name])
    dataset = d.pop("dataset")
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

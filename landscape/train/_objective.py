"""Training objectives that act on the landscape, as values handed to the one trainer:
the loss (:class:`TRADES`, :class:`MART`; None: the training loss at the adversarial
batch), adversarial weight perturbation (:class:`AWP`) and weight averaging
(:class:`EMA`, :class:`SWA`). Each is a frozen dataclass, recorded in ``config.json``
by :func:`record` and read back by :func:`from_record`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Objective",
    "TRADES",
    "MART",
    "AWP",
    "EMA",
    "SWA",
    "trades_loss",
    "mart_loss",
    "record",
    "from_record",
]

_REGISTRY: dict[str, type] = {}


def _registered(cls: type) -> type:
    _REGISTRY[cls.__name__] = cls
    return cls


def _positive(value: Any, name: str, *, zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not zero):
        raise ValueError(
            f"{name} must be a finite number {'>=' if zero else '>'} 0, got {value!r}"
        )
    return v


def _count(value: Any, name: str, low: int = 0) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or int(value) != value
    ):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _names(kinds: type | tuple[type, ...]) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(k.__name__ for k in kinds)


def check_kind(value: Any, kinds: type | tuple[type, ...], name: str) -> None:
    """Raise ``TypeError`` unless ``value`` is None or one of ``kinds``."""
    if value is not None and not isinstance(value, kinds):
        raise TypeError(
            f"{name} must be a {_names(kinds)} value or None, got {type(value).__name__}"
        )


def record(value: Any) -> dict[str, Any] | None:
    """``{"kind": class name, **settings}`` (None stays None): how ``config.json``
    records an objective, AWP or averaging value."""
    if value is None:
        return None
    out = {"kind": type(value).__name__}
    out.update({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    return out


def from_record(d: dict[str, Any] | None, base: type | tuple[type, ...]) -> Any:
    """The value of :func:`record` (None stays None), checked to be a ``base``.

    Raises:
        ValueError: not a record of a ``base`` value, or unknown settings.
    """
    if d is None:
        return None
    if not isinstance(d, dict) or d.get("kind") not in _REGISTRY:
        raise ValueError(f"not a recorded training value (a dict with 'kind'): {d!r}")
    d = dict(d)
    cls = _REGISTRY[d.pop("kind")]
    if not issubclass(cls, base):
        raise ValueError(f"{cls.__name__} is not a {_names(base)} value")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{cls.__name__} has no settings {unknown}")
    return cls(**d)


# ------------------------------------------------------------------- the losses
def trades_loss(out_clean: Tensor, out_adv: Tensor, y: Tensor, beta: float) -> Tensor:
    """The TRADES loss (Zhang et al., 2019) of a batch, as the reference code
    (``yaodongyu/TRADES``, ``trades.py``) computes it: ``CE(f(x), y) + beta *
    KL(p(x) || p(x'))``, the cross-entropy a batch mean and the KL divergence summed
    over the classes and averaged over the batch (``KLDivLoss(size_average=False) /
    batch_size``); the gradient flows through both arguments of the KL.

    Example:
        >>> z = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
        >>> y = torch.tensor([0, 1])
        >>> diff = trades_loss(z, z, y, 6.0) - F.cross_entropy(z, y)  # KL(p || p) = 0
        >>> abs(float(diff)) < 1e-6
        True
    """
    natural = F.cross_entropy(out_clean, y)
    robust = F.kl_div(
        F.log_softmax(out_adv, dim=1), F.softmax(out_clean, dim=1), reduction="sum"
    ) / len(y)
    return natural + beta * robust


def mart_loss(out_clean: Tensor, out_adv: Tensor, y: Tensor, beta: float) -> Tensor:
    """The MART loss (Wang et al., 2020) of a batch, as the reference code
    (``YisenWang/MART``, ``mart.py``) computes it, its constants included:
    ``BCE(p(x'), y) + beta * mean_i KL(p(x_i) || p(x'_i)) (1.0000001 - p_y(x_i))``
    with ``BCE = CE(f(x'), y) - log(1.0001 - p_k(x') + 1e-12)``, ``k`` the most
    likely wrong class under ``p(x')``, and the KL of ``log(p(x') + 1e-12)``; the
    gradient flows through ``p(x)`` and its weight ``1 - p_y(x)`` too."""
    adv_probs = F.softmax(out_adv, dim=1)
    top2 = torch.argsort(adv_probs, dim=1)[:, -2:]
    wrong = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    loss_adv = F.cross_entropy(out_adv, y) + F.nll_loss(
        torch.log(1.0001 - adv_probs + 1e-12), wrong
    )
    nat_probs = F.softmax(out_clean, dim=1)
    true_probs = torch.gather(nat_probs, 1, y.unsqueeze(1).long()).squeeze(1)
    kl = F.kl_div(torch.log(adv_probs + 1e-12), nat_probs, reduction="none").sum(1)
    loss_robust = (kl * (1.0000001 - true_probs)).sum() / len(y)
    return loss_adv + float(beta) * loss_robust


@dataclasses.dataclass(frozen=True)
class Objective:
    """A training loss of the clean and the adversarial batch, handed to the trainer
    as ``TrainConfig(objective=...)`` (None: the training loss ``loss_fn`` at the
    adversarial batch, Madry et al.'s PGD-AT). It needs an attack, a
    :class:`~landscape.attacks.PGD` (whose loss it may set) and the cross-entropy
    ``loss_fn``; BatchNorm statistics in train mode come from the clean and the
    adversarial forward (the references run a second clean forward inside the KL
    term, which changes nothing but the running statistics' update count)."""

    kind: ClassVar[str] = "objective"

    def attack_loss(
        self, model: nn.Module, x: Tensor, y: Tensor
    ) -> Callable[[Tensor, Tensor], Tensor] | None:
        """The loss the training attack ascends on this batch (None: the training
        loss, the attack's own setting)."""
        return None

    def loss(self, out_clean: Tensor, out_adv: Tensor, y: Tensor) -> Tensor:
        """The batch-mean loss of the clean and the adversarial logits."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class _KLWeighted(Objective):
    """An objective with a KL term of weight ``beta`` (> 0): TRADES and MART."""

    beta: float = 6.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", _positive(self.beta, "beta"))


@_registered
@dataclasses.dataclass(frozen=True)
class TRADES(_KLWeighted):
    """TRADES (Zhang et al., 2019): :func:`trades_loss` with the trade-off ``beta``
    (the reference's CIFAR-10 script uses 6, its function's default is 1; "beta can
    be set in [1, 10]"), and the training attack ascends ``KL(p(x) || p(x'))`` with
    ``p(x)`` from an eval-mode forward of the clean batch (as the reference's attack,
    in eval mode). The reference starts the attack at ``x + 0.001 N(0, I)`` (the KL
    has zero gradient at ``x``); here the start is the PGD value's uniform random
    point of the ball, so the attack needs ``random_start=True``.

    Attributes:
        beta: weight of the KL term (> 0).
    """

    def attack_loss(self, model, x, y):
        with torch.no_grad():
            p = F.softmax(model(x).float(), dim=1)

        def kl(out: Tensor, _y: Tensor) -> Tensor:
            return F.kl_div(F.log_softmax(out.float(), dim=1), p, reduction="sum")

        return kl

    def loss(self, out_clean, out_adv, y):
        return trades_loss(out_clean, out_adv, y, self.beta)


@_registered
@dataclasses.dataclass(frozen=True)
class MART(_KLWeighted):
    """MART (Wang et al., 2020): :func:`mart_loss` with the weight ``beta`` of the
    misclassification-aware KL term (the reference: 6 for WideResNet, 5 for
    ResNet-18); the training attack is the cross-entropy PGD, as in the reference.

    Attributes:
        beta: weight of the KL term (> 0).
    """

    def loss(self, out_clean, out_adv, y):
        return mart_loss(out_clean, out_adv, y, self.beta)


# ------------------------------------------------- adversarial weight perturbation
@_registered
@dataclasses.dataclass(frozen=True)
class AWP:
    """Adversarial weight perturbation (Wu et al., 2020, ``csdongxian/AWP``): before
    every optimizer step the weights move to ``w + v`` with, per weight tensor ``l``
    (the tensors of two or more dimensions whose name holds ``weight``: convolution
    and linear weights; biases and BatchNorm parameters are not perturbed),
    ``v_l = gamma ||w_l|| g_l / ||g_l||``, ``g_l`` the gradient of the run's loss (the
    objective's, e.g. TRADES) at the adversarial batch and the unperturbed weights:
    the reference's one step of its proxy optimizer, rescaled to the relative size
    ``gamma`` (its learning rate cancels), so ``||v_l|| = gamma ||w_l||`` exactly. The
    gradient is taken in train mode with the model's BatchNorm statistics restored
    afterwards (the reference's proxy model: "does not affect the statistics of BN");
    the adversarial examples come from the unperturbed weights. The optimizer step is
    computed at ``w + v`` (the forward there updates the running statistics, as in the
    reference) and then ``v`` is subtracted again: the weights after the step are
    ``w + v - step(w + v) - v``, which equals ``w - step(w + v)`` up to the rounding
    of adding and subtracting ``v`` (with a zero step they come back to within one
    unit in the last place).

    Attributes:
        gamma: the relative size of the perturbation (reference: 0.01 for PGD-AT,
            0.005 for TRADES).
        warmup: epochs trained without AWP first (reference: 0 for PGD-AT on
            CIFAR-10, 10 for TRADES (its first 9 epochs, counting from 1), 5 on SVHN).
    """

    gamma: float = 0.01
    warmup: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "gamma", _positive(self.gamma, "gamma"))
        object.__setattr__(self, "warmup", _count(self.warmup, "warmup"))

    def active(self, epoch: int) -> bool:
        """Whether AWP acts in the 0-based ``epoch``."""
        return epoch >= self.warmup


def awp_tensors(model: nn.Module) -> list[tuple[str, Tensor]]:
    """The parameters AWP perturbs (the reference's ``diff_in_weights``: state-dict
    entries of two or more dimensions named ``...weight``)."""
    return [
        (n, p)
        for n, p in model.named_parameters()
        if p.requires_grad and p.ndim >= 2 and "weight" in n
    ]


def awp_perturbation(
    weights: list[Tensor], grads: list[Tensor], gamma: float
) -> list[Tensor]:
    """``v_l = gamma ||w_l|| g_l / (||g_l|| + 1e-20)`` per tensor (the reference's
    ``EPS = 1e-20``)."""
    return [gamma * w.norm() / (g.norm() + 1e-20) * g for w, g in zip(weights, grads)]


# ----------------------------------------------------------- weight averaging
_BN = ("copy", "clean", "train")


class _Averaging:
    """Shared settings of :class:`EMA` and :class:`SWA` (BatchNorm statistics)."""

    bn: str
    bn_num: int

    def _check_bn(self) -> None:
        if self.bn not in _BN:
            raise ValueError(f"bn must be one of {_BN}, got {self.bn!r}")
        object.__setattr__(self, "bn_num", _count(self.bn_num, "bn_num", 1))


@_registered
@dataclasses.dataclass(frozen=True)
class EMA(_Averaging):
    """An exponential moving average of the weights, updated after every optimizer
    step: ``a <- d_t a + (1 - d_t) w``, starting from the initial weights, with
    ``d_t = min(decay, (1 + t) / (10 + t))`` at the ``t``-th update (0-based) when
    ``warmup`` (DeepMind's ``ema_update`` with ``dynamic_decay``, Gowal et al. 2020 /
    Rebuffi et al. 2021; their decay 0.995 at batch 1024), else ``d_t = decay``
    (torch's ``get_ema_multi_avg_fn``, default 0.999). Only the parameters are
    averaged; the averaged model's BatchNorm statistics follow ``bn``.

    Attributes:
        decay: the decay (in (0, 1)).
        warmup: the dynamic decay of the first steps.
        bn: the averaged model's BatchNorm statistics, set before every evaluation
            and before it is saved: ``"copy"`` (the online model's, as DeepMind and
            its PyTorch port do), ``"clean"`` (re-estimated on ``bn_num`` training
            examples, torch's ``swa_utils.update_bn``: a cumulative average in train
            mode) or ``"train"`` (re-estimated on what the training forward sees:
            those examples attacked by the training attack at the scheduled eps
            against the averaged model; clean for standard training). No reference
            re-estimates on adversarial examples: "train" is this package's choice.
        bn_num: training examples of the re-estimation.
    """

    decay: float = 0.999
    warmup: bool = True
    bn: str = "train"
    bn_num: int = 1024

    def __post_init__(self) -> None:
        d = _positive(self.decay, "decay")
        if d >= 1:
            raise ValueError(f"decay must be < 1, got {self.decay!r}")
        object.__setattr__(self, "decay", d)
        if not isinstance(self.warmup, bool):
            raise TypeError("warmup must be True or False")
        self._check_bn()

    def rate(self, t: int) -> float:
        """The decay of the ``t``-th update (0-based)."""
        if self.warmup:
            return min(self.decay, (1.0 + t) / (10.0 + t))
        return self.decay


@_registered
@dataclasses.dataclass(frozen=True)
class SWA(_Averaging):
    """Stochastic weight averaging (Izmailov et al., 2018; torch's ``swa_utils``): the
    equal-weight average of the weights at the end of every epoch after the first
    ``start`` epochs (the run's own lr schedule; no SWA learning rate). The averaged
    model's BatchNorm statistics follow ``bn`` (see :class:`EMA`; torch re-estimates
    on clean training data).

    Attributes:
        start: epochs before the first averaged one.
        bn, bn_num: see :class:`EMA`.
    """

    start: int = 0
    bn: str = "train"
    bn_num: int = 1024

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _count(self.start, "start"))
        self._check_bn()

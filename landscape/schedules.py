"""Adversarial-budget (eps) and learning-rate schedules, evaluated at a (fractional) epoch.

A schedule is a small frozen dataclass: ``schedule(t)`` gives the value at epoch ``t``
(``t = epoch + batch / num_batches`` when the trainer updates per iteration, or the
integer epoch when it updates per epoch), and ``schedule.sample(num)`` returns
``(ts, values)`` ready to plot (see :func:`landscape.plot.plot_schedule`).

eps schedules (``kind="eps"``): ``constant``, ``linear`` (linear warm-up), ``cosine``
(cosine warm-up), ``periodic`` and the paper's ``cycle_cos`` / ``cycle_linear``.
learning-rate schedules (``kind="lr"``): ``constant``, ``step`` (step decay, the
paper's ``jump``), ``cosine`` (cosine decay), ``periodic`` (cosine decay restarted at
every period boundary: OUR per-period cosine, not the paper's ``cos_cycle_jump``),
the paper's ``cycle_jump`` and ``cos_cycle_jump``, and ``onecycle``.

The paper's schedules (Liu et al., NeurIPS 2020, released code ``util/seq_parser.py``,
driven per epoch by ``util/train.py``) are here under their names, with our
vocabulary for their parameters (``periods`` = its ``ckpt_list``, ``value`` = its cap
``max``, ``start`` / ``peak`` = ``eps_min`` / ``eps_max``, ``gamma`` = ``power``,
``drops`` = ``drop_point_list``). In its code the schedules are evaluated at the
integer epoch (``--schedule_update_mode epoch``, the default): a config that follows
it sets ``TrainConfig(schedule_update="epoch")``, so eps and lr are constant within
an epoch and an epoch whose eps is 0 trains on clean data.

The periodic eps schedule is the one of Periodic Adversarial Scheduling (PAS, Liu et al.,
NeurIPS 2020, Sec. 5 and the authors' ``cycle_linear`` / ``cycle_cos`` schedules): the
training is split into periods at the given boundaries; within each period eps ramps
from ``start`` towards a peak, linearly or along a half cosine, and is capped at the
target eps, so it reaches the target after a fraction ``ramp`` of the period and stays
there until the period ends. The learning rate restarts at the same boundaries, and the
end-of-period models form an ensemble (:class:`landscape.checkpoints.Ensemble`).

Example:
    >>> s = make_schedule("periodic", eps=0.4, periods=[0, 10, 20], ramp=0.5)
    >>> [round(s(t), 3) for t in (0, 2.5, 5, 9.9, 10, 12.5)]
    [0.0, 0.2, 0.4, 0.4, 0.0, 0.2]
    >>> lr = make_schedule("periodic", kind="lr", lr=0.1, periods=[0, 10, 20])
    >>> [round(lr(t), 3) for t in (0, 5, 10)]
    [0.1, 0.05, 0.1]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Schedule",
    "Constant",
    "LinearWarmup",
    "CosineWarmup",
    "PeriodicEps",
    "CycleCos",
    "CycleLinear",
    "StepDecay",
    "CosineDecay",
    "PeriodicCosine",
    "CycleJump",
    "CosCycleJump",
    "OneCycle",
    "EPS_SCHEDULES",
    "LR_SCHEDULES",
    "make_schedule",
    "period_boundaries",
]


def _check_value(v: float, what: str, *, positive: bool = False) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {v!r}") from None
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        rel = "> 0" if positive else ">= 0"
        raise ValueError(f"{what} must be a finite number {rel}, got {v}")
    return v


def _check_fields(
    obj: Any, *names: str, positive: bool = False, value: str = "value"
) -> None:
    """Store each field of ``names`` as a float, checked to be a finite number >= 0
    (> 0 with ``positive``); the field ``value`` is called ``value`` in the messages
    (``"lr"`` for the learning-rate schedules)."""
    for name in names:
        what = value if name == "value" else name
        v = _check_value(getattr(obj, name), what, positive=positive)
        object.__setattr__(obj, name, v)


def period_boundaries(
    periods: int | Sequence[float], epochs: float | None = None
) -> tuple[float, ...]:
    """Normalise ``periods`` to increasing boundaries starting at 0.

    Args:
        periods: either the boundaries (``[0, 10, 20, 30]``; a missing leading 0 is
            added) or a number of equal periods (needs ``epochs``).
        epochs: the training length; the boundaries must cover it (the last boundary
            must be >= ``epochs``).

    Raises:
        ValueError: boundaries not strictly increasing, negative, or not covering the
            epochs.

    Example:
        >>> period_boundaries(3, epochs=30)
        (0.0, 10.0, 20.0, 30.0)
        >>> period_boundaries([10, 20])
        (0.0, 10.0, 20.0)
    """
    if isinstance(periods, (int, np.integer)) and not isinstance(periods, bool):
        if periods < 1:
            raise ValueError(f"the number of periods must be >= 1, got {periods}")
        if epochs is None:
            raise ValueError(
                "periods given as a count needs the number of epochs; "
                "pass epochs=... or the period boundaries, e.g. periods=[0, 10, 20]"
            )
        epochs = _check_value(epochs, "epochs", positive=True)
        return tuple(float(epochs) * i / int(periods) for i in range(int(periods) + 1))
    try:
        b = [float(p) for p in periods]
    except TypeError:
        raise TypeError(
            f"periods must be a count or a list of boundaries, got {periods!r}"
        ) from None
    if not b:
        raise ValueError("periods must hold at least one boundary, e.g. [0, 10, 20]")
    if b[0] != 0.0:
        b = [0.0, *b]
    if len(b) < 2:
        raise ValueError(f"periods {periods} define no period; e.g. [0, 10, 20]")
    if any(not math.isfinite(x) for x in b) or any(
        c <= a for a, c in zip(b[:-1], b[1:])
    ):
        raise ValueError(
            f"period boundaries must be finite and strictly increasing from 0, got {b}"
        )
    if epochs is not None and b[-1] < float(epochs) - 1e-9:
        raise ValueError(
            f"the periods {b} end at epoch {b[-1]:g} but training runs {epochs:g} "
            f"epochs: extend the last boundary to {epochs:g} (periods must cover the "
            "epochs)"
        )
    return tuple(b)


def _position(bounds: tuple[float, ...], t: float) -> tuple[int, float]:
    """Index of the period holding ``t`` and the fraction of it elapsed, in [0, 1]."""
    if t >= bounds[-1]:
        return len(bounds) - 2, 1.0
    t = max(t, 0.0)
    k = int(np.searchsorted(bounds, t, side="right")) - 1
    a, b = bounds[k], bounds[k + 1]
    return k, (t - a) / (b - a)


def _set_periods(schedule: Schedule) -> None:
    """Check a periodic schedule's ``periods`` into boundaries (see
    :func:`period_boundaries`) and set ``epochs`` to the last one when it is None."""
    bounds = period_boundaries(schedule.periods, schedule.epochs)
    object.__setattr__(schedule, "periods", bounds)
    if schedule.epochs is None:
        object.__setattr__(schedule, "epochs", bounds[-1])


@dataclass(frozen=True)
class Schedule:
    """Base class: ``self(t)`` is the value at (fractional) epoch ``t``."""

    def __call__(self, t: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def horizon(self) -> float | None:
        """Epochs the schedule is defined for (None when it is unbounded)."""
        return getattr(self, "epochs", None)

    def sample(
        self, num: int = 200, *, end: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(ts, values)`` at ``num`` evenly spaced epochs in ``[0, end]`` (plot-ready).

        ``end`` defaults to the schedule's horizon (10 epochs when it has none).
        """
        if num < 2:
            raise ValueError(f"num must be >= 2, got {num}")
        end = end if end is not None else (self.horizon or 10.0)
        ts = np.linspace(0.0, float(end), int(num))
        return ts, np.array([self(float(t)) for t in ts])

    def at_epochs(self, epochs: int) -> np.ndarray:
        """Values at the start of each epoch ``0..epochs-1`` (per-epoch update mode)."""
        return np.array([self(float(e)) for e in range(int(epochs))])

    @property
    def name(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["schedule"] = self.name
        return d


@dataclass(frozen=True)
class Constant(Schedule):
    """The same value at every epoch.

    Example:
        >>> Constant(0.3)(7.5)
        0.3
    """

    value: float
    epochs: float | None = None

    def __post_init__(self):
        _check_fields(self, "value")

    def __call__(self, t: float) -> float:
        return self.value


@dataclass(frozen=True)
class _Warmup(Schedule):
    """A ramp from ``start`` at epoch 0 to ``value`` at epoch ``warmup``, then flat;
    subclasses give the ramp's shape (:meth:`_ramp` at the fraction ``r``)."""

    value: float
    warmup: float
    start: float = 0.0
    epochs: float | None = None

    def __post_init__(self):
        _check_fields(self, "value", "start")
        _check_fields(self, "warmup", positive=True)

    def __call__(self, t: float) -> float:
        return self._ramp(min(max(t / self.warmup, 0.0), 1.0))

    def _ramp(self, r: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class LinearWarmup(_Warmup):
    """Linear ramp from ``start`` at epoch 0 to ``value`` at epoch ``warmup``, then flat.

    Example:
        >>> s = LinearWarmup(0.4, warmup=4)
        >>> [s(t) for t in (0, 1, 4, 9)]
        [0.0, 0.1, 0.4, 0.4]
    """

    def _ramp(self, r: float) -> float:
        return self.start + (self.value - self.start) * r


@dataclass(frozen=True)
class CosineWarmup(_Warmup):
    """Half-cosine ramp from ``start`` to ``value`` over ``warmup`` epochs, then flat.

    Example:
        >>> s = CosineWarmup(0.4, warmup=4)
        >>> [round(s(t), 6) for t in (0, 2, 4, 8)]
        [0.0, 0.2, 0.4, 0.4]
    """

    def _ramp(self, r: float) -> float:
        return self.start + (self.value - self.start) * 0.5 * (
            1 - math.cos(math.pi * r)
        )


def _ramp_shape(shape: str, r: float) -> float:
    if shape == "linear":
        return r
    return 0.5 * (1.0 - math.cos(math.pi * r))


@dataclass(frozen=True)
class PeriodicEps(Schedule):
    """Periodic eps (PAS): in each period eps rises from ``start`` towards ``peak`` and
    is capped at ``value`` (the target eps).

    Within a period ``[a, b)`` at fraction ``r = (t - a) / (b - a)``::

        eps(t) = min(value, start + (peak - start) * s(r)),
        s(r) = r (shape="linear")  or  (1 - cos(pi r)) / 2 (shape="cosine").

    ``peak`` defaults to the value that makes eps reach the target exactly at
    ``r = ramp`` (``ramp=1`` is a ramp over the whole period; the authors' MNIST
    setting ``cycle_cos, eps_max=0.6, max=0.4`` is ``shape="cosine", peak=0.6``).
    After the last boundary eps stays at the target.

    Example:
        >>> s = PeriodicEps(8.0, periods=(0, 4, 8), ramp=0.5)
        >>> [s(t) for t in (0, 1, 2, 3, 4, 5, 8)]
        [0.0, 4.0, 8.0, 8.0, 0.0, 4.0, 8.0]
    """

    value: float
    periods: tuple[float, ...]
    start: float = 0.0
    ramp: float = 0.5
    peak: float | None = None
    shape: str = "linear"
    epochs: float | None = None

    def __post_init__(self):
        _check_fields(self, "value", "start")
        if self.shape not in ("linear", "cosine"):
            raise ValueError(f"shape must be 'linear' or 'cosine', got {self.shape!r}")
        _set_periods(self)
        ramp = _check_value(self.ramp, "ramp", positive=True)
        if ramp > 1:
            raise ValueError(f"ramp is a fraction of the period in (0, 1], got {ramp}")
        object.__setattr__(self, "ramp", ramp)
        if self.start > self.value:
            raise ValueError(
                f"start ({self.start}) must not exceed the target eps ({self.value})"
            )
        if self.peak is None:
            peak = self.start + (self.value - self.start) / _ramp_shape(
                self.shape, ramp
            )
            object.__setattr__(self, "peak", peak)
        else:
            object.__setattr__(self, "peak", _check_value(self.peak, "peak"))

    def __call__(self, t: float) -> float:
        _, r = _position(self.periods, t)
        v = self.start + (self.peak - self.start) * _ramp_shape(self.shape, r)
        return min(self.value, v)


@dataclass(frozen=True)
class CycleCos(PeriodicEps):
    """The paper's ``cycle_cos`` eps schedule (``util/seq_parser.py`` l.114-130):
    in the period ``[a, b)`` of ``periods`` holding ``t``, at ``r = (t - a) / (b - a)``::

        eps(t) = min(value, start + (peak - start) * (1 - cos(pi r)) / 2)

    (``start`` = ``eps_min``, ``peak`` = ``eps_max``, ``value`` = the cap ``max``);
    after the last boundary ``min(value, peak)``. The paper's MNIST setting is
    ``CycleCos(0.4, periods=(0, 100), peak=0.6)``: per epoch ``e``,
    ``eps = min(0.4, 0.3 (1 - cos(pi e / 100)))``, 0 at epoch 0, 0.3 at epoch 50,
    the cap 0.4 from epoch 61 on. :class:`PeriodicEps` with ``shape="cosine"``.

    Example:
        >>> s = CycleCos(0.4, periods=(0, 100), peak=0.6)
        >>> [round(s(e), 4) for e in (0, 10, 50, 60, 61, 99)]
        [0.0, 0.0147, 0.3, 0.3927, 0.4, 0.4]
    """

    shape: str = "cosine"

    def __post_init__(self):
        if self.shape != "cosine":
            raise ValueError("cycle_cos is the cosine shape; use periodic for others")
        super().__post_init__()


@dataclass(frozen=True)
class CycleLinear(PeriodicEps):
    """The paper's ``cycle_linear`` eps schedule (``util/seq_parser.py`` l.44-60):
    ``eps(t) = min(value, start + slope * r)`` at the fraction ``r`` of the current
    period (the rise ``slope`` is per PERIOD, not per epoch; ``peak = start +
    slope``). With ``slope = 2 * value`` eps reaches the cap half-way through each
    period (the MNIST run of the released checkpoints, ``max0.8``: inferred).
    :class:`PeriodicEps` with ``shape="linear"``.

    Example:
        >>> s = CycleLinear(0.4, periods=(0, 100), slope=0.8)
        >>> [round(s(e), 4) for e in (0, 10, 49, 50, 99)]
        [0.0, 0.08, 0.392, 0.4, 0.4]
    """

    shape: str = "linear"
    slope: float | None = None

    def __post_init__(self):
        if self.shape != "linear":
            raise ValueError(
                "cycle_linear is the linear shape; use periodic for others"
            )
        if self.slope is not None:
            if self.peak is not None:
                raise TypeError("give cycle_linear's rise as slope= or peak=, not both")
            slope = _check_value(self.slope, "slope")
            object.__setattr__(self, "slope", slope)
            object.__setattr__(self, "peak", _check_value(self.start, "start") + slope)
        super().__post_init__()
        object.__setattr__(self, "slope", self.peak - self.start)


@dataclass(frozen=True)
class StepDecay(Schedule):
    """``value * gamma ** k`` where ``k`` counts the milestones passed (``t >= m``).

    Give ``milestones`` or a regular ``step_size`` (milestones at its multiples).

    Example:
        >>> s = StepDecay(0.1, milestones=(5, 8), gamma=0.1)
        >>> [round(s(t), 6) for t in (0, 4.9, 5, 8)]
        [0.1, 0.1, 0.01, 0.001]
    """

    value: float
    milestones: tuple[float, ...] = ()
    gamma: float = 0.1
    step_size: float | None = None
    epochs: float | None = None

    def __post_init__(self):
        _check_fields(self, "value", "gamma", positive=True, value="lr")
        if self.step_size is not None:
            step = _check_value(self.step_size, "step_size", positive=True)
            object.__setattr__(self, "step_size", step)
        ms = tuple(float(m) for m in self.milestones)
        if any(b <= a for a, b in zip(ms[:-1], ms[1:])):
            raise ValueError(f"milestones must be strictly increasing, got {ms}")
        if not ms and self.step_size is None:
            raise ValueError("step decay needs milestones=[...] or step_size=...")
        object.__setattr__(self, "milestones", ms)

    def __call__(self, t: float) -> float:
        if self.step_size is not None:
            k = int(math.floor(max(t, 0.0) / self.step_size + 1e-12))
        else:
            k = int(np.searchsorted(self.milestones, t, side="right"))
        return self.value * self.gamma**k


@dataclass(frozen=True)
class CosineDecay(Schedule):
    """Cosine annealing from ``value`` at epoch 0 to ``final`` at ``epochs``.

    Example:
        >>> s = CosineDecay(0.1, epochs=10)
        >>> [round(s(t), 6) for t in (0, 5, 10)]
        [0.1, 0.05, 0.0]
    """

    value: float
    epochs: float
    final: float = 0.0

    def __post_init__(self):
        _check_fields(self, "value", "epochs", positive=True, value="lr")
        _check_fields(self, "final")

    def __call__(self, t: float) -> float:
        r = min(max(t / self.epochs, 0.0), 1.0)
        return self.final + (self.value - self.final) * 0.5 * (
            1 + math.cos(math.pi * r)
        )


@dataclass(frozen=True)
class PeriodicCosine(Schedule):
    """Cosine decay from ``value`` to ``final`` within each period, restarting at each
    boundary (SGDR-style warm restarts aligned with :class:`PeriodicEps`). Ours: it
    follows unequal periods, which the paper's ``cos_cycle_jump``
    (:class:`CosCycleJump`, equal cycles) cannot.

    Example:
        >>> s = PeriodicCosine(0.1, periods=(0, 4, 8))
        >>> [round(s(t), 6) for t in (0, 2, 4, 6)]
        [0.1, 0.05, 0.1, 0.05]
    """

    value: float
    periods: tuple[float, ...]
    final: float = 0.0
    epochs: float | None = None

    def __post_init__(self):
        _check_fields(self, "value", positive=True, value="lr")
        _check_fields(self, "final")
        _set_periods(self)

    def __call__(self, t: float) -> float:
        _, r = _position(self.periods, t)
        return self.final + (self.value - self.final) * 0.5 * (
            1 + math.cos(math.pi * r)
        )


@dataclass(frozen=True)
class CycleJump(Schedule):
    """The paper's ``cycle_jump`` lr schedule (``util/seq_parser.py`` l.90-107): a
    step decay restarted in every period, ``value * gamma ** k`` with ``k`` the number
    of fractions in ``drops`` that the fraction ``r`` of the current period has
    reached (``r >= d``; the paper's ``start_v``, ``power``, ``drop_point_list``,
    ``ckpt_list``). After the last boundary: the value at the end of the last period.

    Example:
        >>> s = CycleJump(0.1, periods=(0, 100, 150, 200), drops=(0.5, 0.75))
        >>> [round(s(e), 6) for e in (0, 49, 50, 75, 100, 125, 140, 150)]
        [0.1, 0.1, 0.01, 0.001, 0.1, 0.01, 0.001, 0.1]
    """

    value: float
    periods: tuple[float, ...]
    drops: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    epochs: float | None = None

    def __post_init__(self):
        _check_fields(self, "value", "gamma", positive=True, value="lr")
        drops = tuple(float(d) for d in self.drops)
        if any(not 0 <= d <= 1 for d in drops):
            raise ValueError(
                f"drops are fractions of a period in [0, 1], got {list(drops)}"
            )
        object.__setattr__(self, "drops", drops)
        _set_periods(self)

    def __call__(self, t: float) -> float:
        _, r = _position(self.periods, t)
        return self.value * self.gamma ** sum(r >= d for d in self.drops)


@dataclass(frozen=True)
class CosCycleJump(Schedule):
    """The paper's ``cos_cycle_jump`` lr schedule (``util/seq_parser.py`` l.108-113):
    ``value`` until epoch ``start_epoch`` (its ``min_jump_pt``), then a cosine from
    ``value`` (``up_v``) down to ``final`` (``low_v``) over EQUAL cycles of ``cycle``
    epochs (``cycle_freq``), restarting at each. It takes no period boundaries, so it
    cannot follow unequal periods such as ``[0, 100, 150, 200]`` except with
    ``start_epoch=100, cycle=50`` (flat for the first period); see
    :class:`PeriodicCosine` for a cosine per period.

    Example:
        >>> s = CosCycleJump(0.1, cycle=50, start_epoch=100)
        >>> [round(s(e), 4) for e in (0, 100, 125, 149, 150, 175)]
        [0.1, 0.1, 0.05, 0.0001, 0.1, 0.05]
    """

    value: float
    cycle: float
    start_epoch: float = 0.0
    final: float = 0.0
    epochs: float | None = None

    def __post_init__(self):
        _check_fields(self, "value", "cycle", positive=True, value="lr")
        _check_fields(self, "start_epoch", "final")

    def __call__(self, t: float) -> float:
        u = (max(t - self.start_epoch, 0.0) % self.cycle) / self.cycle
        return (math.cos(u * math.pi) + 1) * (self.value - self.final) / 2 + self.final


@dataclass(frozen=True)
class OneCycle(Schedule):
    """Piecewise-linear one-cycle: ``start`` -> ``value`` at ``pct * epochs`` ->
    ``final`` at ``epochs`` (the "fast" adversarial training schedule of Wong et al.).

    Example:
        >>> s = OneCycle(0.2, epochs=10, pct=0.4)
        >>> [round(s(t), 6) for t in (0, 2, 4, 7, 10)]
        [0.0, 0.1, 0.2, 0.1, 0.0]
    """

    value: float
    epochs: float
    pct: float = 0.4
    start: float = 0.0
    final: float = 0.0

    def __post_init__(self):
        _check_fields(self, "value", "epochs", positive=True, value="lr")
        _check_fields(self, "start", "final")
        if not 0 < float(self.pct) < 1:
            raise ValueError(f"pct must lie in (0, 1), got {self.pct}")

    def __call__(self, t: float) -> float:
        peak_t = self.pct * self.epochs
        t = min(max(t, 0.0), self.epochs)
        if t <= peak_t:
            return self.start + (self.value - self.start) * t / peak_t
        r = (t - peak_t) / (self.epochs - peak_t)
        return self.final * r + self.value * (1.0 - r)


EPS_SCHEDULES: dict[str, type[Schedule]] = {
    "constant": Constant,
    "linear": LinearWarmup,
    "cosine": CosineWarmup,
    "periodic": PeriodicEps,
    "cycle_cos": CycleCos,
    "cycle_linear": CycleLinear,
}
LR_SCHEDULES: dict[str, type[Schedule]] = {
    "constant": Constant,
    "step": StepDecay,
    "cosine": CosineDecay,
    "periodic": PeriodicCosine,
    "cycle_jump": CycleJump,
    "cos_cycle_jump": CosCycleJump,
    "onecycle": OneCycle,
}
_ALIASES = {
    "linear-warmup": "linear",
    "linear_warmup": "linear",
    "cosine-warmup": "cosine",
    "cosine_warmup": "cosine",
    "const": "constant",
    "cyclic": "periodic",
    "pas": "periodic",
    "one-cycle": "onecycle",
    "one_cycle": "onecycle",
    "multistep": "step",
}


def make_schedule(name: str | Schedule, *, kind: str = "eps", **kw: Any) -> Schedule:
    """Build a schedule by name.

    Args:
        name: eps: ``constant | linear | cosine | periodic | cycle_cos |
            cycle_linear``; lr: ``constant | step | cosine | periodic | cycle_jump |
            cos_cycle_jump | onecycle``. A :class:`Schedule` is returned unchanged.
        kind: ``"eps"`` or ``"lr"`` (``cosine`` and ``periodic`` exist for both and
            mean a warm-up for eps, a decay for the learning rate).
        **kw: the schedule's parameters. The target value may be given as ``value``,
            ``eps`` (eps schedules) or ``lr`` (lr schedules). ``epochs`` is the training
            length: periodic schedules check their periods cover it; ``warmup``
            defaults to half of it; ``periods`` may be a count of equal periods.
            ``eps_min`` / ``eps_max`` are accepted for ``start`` / ``peak``.
            Extra keys that a schedule does not use are an error.

    Raises:
        ValueError: unknown name (the message lists the choices), bad values (eps < 0,
            lr or warm-up <= 0, periods not covering the epochs).
        TypeError: unknown or missing parameters (the message lists the accepted ones).

    Example:
        >>> make_schedule("linear", eps=0.4, epochs=10)(2.5)
        0.2
        >>> make_schedule("step", kind="lr", lr=0.1, milestones=[5])(6)
        0.010000000000000002
    """
    if isinstance(name, Schedule):
        return name
    if kind not in ("eps", "lr"):
        raise ValueError(f"kind must be 'eps' or 'lr', got {kind!r}")
    table = EPS_SCHEDULES if kind == "eps" else LR_SCHEDULES
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in table:
        raise ValueError(
            f"unknown {kind} schedule {name!r}; choose one of {sorted(table)}"
        )
    cls = table[key]
    kw = dict(kw)
    for alias in ("eps", "lr"):
        if alias in kw:
            if "value" in kw:
                raise TypeError(f"give the target as value= or {alias}=, not both")
            kw["value"] = kw.pop(alias)
    if kind == "eps":  # the authors' names: eps_min / eps_max
        for alias, target in (("eps_min", "start"), ("eps_max", "peak")):
            if alias in kw:
                if target in kw:
                    raise TypeError(f"give {alias}= or {target}=, not both")
                kw[target] = kw.pop(alias)
    if kind == "eps" and "value" in kw:
        kw["value"] = _check_value(kw["value"], "eps")
    fields = {f.name for f in dataclasses.fields(cls)}
    if cls in (LinearWarmup, CosineWarmup) and "warmup" not in kw:
        if kw.get("epochs") is None:
            raise TypeError(f"{key} warm-up needs warmup=... (epochs) or epochs=...")
        kw["warmup"] = 0.5 * float(kw["epochs"])
    unknown = sorted(set(kw) - fields)
    if unknown:
        raise TypeError(
            f"{kind} schedule {key!r} does not take {unknown}; "
            f"it takes {sorted(fields)} (target as value=, eps= or lr=)"
        )
    try:
        return cls(**kw)
    except TypeError as err:
        raise TypeError(
            f"{kind} schedule {key!r}: {err}; it takes {sorted(fields)}"
        ) from None

"""The attack value: settings that travel together, validated once, and a call.

An attack is a frozen dataclass (a subclass of :class:`Attack`) called as
``attack(model, x, y, generator=None) -> x_adv``: ``x`` holds inputs in [0, 1], ``y``
class indices, and ``x_adv`` (detached, same shape) lies inside the attack's eps-ball
and in [0, 1]. ``generator=None`` draws the randomness from torch's global RNG
(seeded by :func:`landscape.seed_everything`), as everywhere in ``landscape``.

The value is the one currency of an attack: the trainer, the evaluation protocol,
surfaces, scattering, the Hessian's adversarial data and the CLIs all take it as it
is; a schedule changes its budget with ``dataclasses.replace(attack, eps=eps_t)``.
Every value validates its settings in ``__post_init__`` (the attack's function
builds the value, so both accept exactly the same settings), compares and hashes by
its settings, describes itself (:attr:`Attack.name` for result tables,
:attr:`Attack.kind` ``"white"`` or ``"black"``) and round-trips through JSON
(:meth:`Attack.to_dict`, :meth:`Attack.from_dict`: every subclass is registered by
its class name when it is defined).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .. import _finite, _utils
from .._batches import as_batches
from ._losses import get_loss

__all__ = ["Attack", "perturb_batches"]

Loss = str | Callable[[Tensor, Tensor], Tensor] | None
Gen = torch.Generator | None
# what an attack's _run returns: x_adv and the info dict of return_info=True
Run = tuple[Tensor, dict]

# the name a callable setting is recorded by in JSON (as TrainConfig's loss_fn)
CALLABLE = "callable:"

_REGISTRY: dict[str, type[Attack]] = {}


def callable_name(fn: Callable) -> str:
    """``"callable:module.qualname"``: how a callable setting is recorded in JSON."""
    mod = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{CALLABLE}{mod}.{name}"


def is_recorded_callable(value: Any) -> bool:
    """Whether ``value`` is a callable setting read back from JSON (its name only)."""
    return isinstance(value, str) and value.startswith(CALLABLE)


@dataclasses.dataclass(frozen=True)
class Attack:
    """Base of the attack values: a budget ``eps`` in the norm ``norm``.

    Attributes:
        eps: the budget (a finite number >= 0) in input units.
        norm: ``"linf"`` or ``"l2"``.
        label: the attack's name in result tables (default :attr:`name` derived
            from the settings, e.g. ``"pgd-20"``, ``"apgd-ce"``, ``"square"``).

    Subclasses add their settings as fields, validate them in ``__post_init__``
    (after ``super().__post_init__()``, with the helpers :meth:`_count`,
    :meth:`_positive`, :meth:`_loss`) and implement ``_run(self, model, x, y,
    generator, progressbar) -> (x_adv, info)``; the call is :meth:`__call__`.
    """

    eps: float
    norm: str = "linf"
    label: str | None = None

    # "white" (uses gradients) or "black" (queries the outputs only)
    kind: ClassVar[str] = "white"
    # the keyword options of a call beyond progressbar / return_info (PGD: train, trace)
    options: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        key = cls.__name__
        if cls._run is Attack._run:  # a base of several attacks that runs none
            return
        old = _REGISTRY.get(key)
        if old is not None and old.__qualname__ + old.__module__ != (
            cls.__qualname__ + cls.__module__
        ):
            raise TypeError(
                f"an attack named {key} is already registered ({old.__module__}); "
                "give the new attack class another name"
            )
        _REGISTRY[key] = cls

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps", _utils.check_eps(self.eps))
        object.__setattr__(self, "norm", _utils.check_norm(self.norm))
        if self.label is not None and not (isinstance(self.label, str) and self.label):
            raise ValueError(f"label must be a non-empty string, got {self.label!r}")

    # -- validation helpers, by setting name ------------------------------------
    def _count(self, name: str, low: int = 1) -> None:
        """The setting ``name`` is an integer >= ``low`` (stored as an int)."""
        v = getattr(self, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
        if v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
        object.__setattr__(self, name, int(v))

    def _positive(self, name: str, high: float | None = None) -> None:
        """The setting ``name`` is a finite float > 0 (and <= ``high``)."""
        v = getattr(self, name)
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a number, got {v!r}") from None
        if not (math.isfinite(f) and f > 0) or (high is not None and f > high):
            rng = "> 0" if high is None else f"in (0, {high:g}]"
            raise ValueError(f"{name} must be {rng}, got {v!r}")
        object.__setattr__(self, name, f)

    def _loss(self, name: str = "loss", *, none: bool = False) -> None:
        """The setting ``name`` is a loss name (``"ce"``, ``"cw"``, ``"dlr"``), a
        callable (or one read back from JSON by its name) or, with ``none``, None."""
        v = getattr(self, name)
        if (none and v is None) or callable(v) or is_recorded_callable(v):
            return
        if v is None:
            raise ValueError(f"{name} must be 'ce', 'cw' or 'dlr', got None")
        get_loss(v)  # raises for unknown names

    # -- description ---------------------------------------------------------------
    @property
    def name(self) -> str:
        """The attack's name in result tables: ``label``, else derived from the
        settings (:meth:`_default_name`)."""
        return self.label or self._default_name()

    def _default_name(self) -> str:
        return type(self).__name__.lower()

    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        generator: Gen = None,
        *,
        progressbar: bool = False,
        return_info: bool = False,
        **options: Any,
    ) -> Tensor | Run:
        """Return ``x_adv`` for the batch ``(x, y)`` against ``model`` (and, with
        ``return_info``, a dict with the per-example ``success`` flags and the
        cost). ``progressbar``: progress over the attack's runs or iterations;
        ``options``: the attack's own options of a call (:attr:`options`, e.g.
        :class:`PGD`'s ``train`` and ``trace``)."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            has = f"; its options: {list(self.options)}" if self.options else ""
            raise TypeError(f"{type(self).__name__} takes no options {unknown}{has}")
        direct = not _finite.checked()  # an analysis checked its inputs at entry
        if direct:
            _finite.check_call(model, x, name=self.name)
        x_adv, info = self._run(model, x, y, generator, progressbar, **options)
        if direct:  # a NaN gradient makes a NaN step: never returned as a result
            _finite.check_tensor(
                x_adv, "the adversarial inputs", f"of {self.name} (a NaN or inf "
                "loss or gradient of the model at these inputs)",
            )  # fmt: skip
        if not return_info:
            return x_adv
        if "success" not in info:
            with _utils.eval_mode(model), torch.no_grad():
                out = model(x_adv)
            if direct:
                _finite.check_tensor(
                    out,
                    "the model's outputs at the adversarial inputs",
                    f"of {self.name}",
                )
            info = {"success": out.argmax(1) != y, **info}
        return x_adv, info

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, gen: Gen, bar: bool) -> Run:
        """``(x_adv, info)``: the attack proper (``info["success"]`` may be left to
        :meth:`__call__`, which computes it only when asked)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _run")

    def to_dict(self) -> dict[str, Any]:
        """``{"attack": class name, **settings}``, JSON-ready: tuples become lists,
        a callable setting its name (``"callable:module.qualname"``; pass the
        callable again to :meth:`from_dict` to run the attack)."""
        out: dict[str, Any] = {"attack": type(self).__name__}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if callable(v):
                v = callable_name(v)
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], **settings: Any) -> Attack:
        """The attack of :meth:`to_dict`; ``settings`` replace recorded ones (pass
        a callable setting again, e.g. ``loss=my_loss``).

        Example:
            >>> from landscape import attacks
            >>> a = attacks.PGD(eps=0.3, steps=40, alpha=0.01)
            >>> Attack.from_dict(a.to_dict()) == a
            True

        Raises:
            ValueError: no registered attack of that name, or unknown settings.
        """
        if not isinstance(d, dict) or "attack" not in d:
            raise ValueError(
                f"not an attack record (a dict with the key 'attack'): {d!r}"
            )
        d = dict(d)
        key = d.pop("attack")
        kind = _REGISTRY.get(key)
        if kind is None:
            raise ValueError(
                f"unknown attack {key!r}; registered: {sorted(_REGISTRY)} (import "
                "the module that defines it first)"
            )
        if not issubclass(kind, cls):
            raise ValueError(f"{key} is not a {cls.__name__}")
        known = {f.name for f in dataclasses.fields(kind)}
        unknown = sorted((set(d) | set(settings)) - known)
        if unknown:
            raise ValueError(f"{key} has no settings {unknown}; it has {sorted(known)}")
        d.update(settings)
        for k, v in d.items():
            if isinstance(v, list):
                d[k] = tuple(v)
        return kind(**d)


@dataclasses.dataclass(frozen=True)
class _Targeted(Attack):
    """The setting of a targeted attack (APGD-T, FAB-T), put first among its bases:
    ``num_targets``, how many of the most likely wrong classes of the clean input it
    attacks towards in turn (``_runs.target_order``; AutoAttack: 9)."""

    num_targets: int = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        self._count("num_targets")


def summed(loss: Loss) -> Callable[[Tensor, Tensor], Tensor] | None:
    """A scalar objective for the gradient steps: ``None`` stays None (the caller's
    summed cross-entropy); a name or a callable returning a per-example or a scalar
    loss is summed over the batch.

    Raises:
        ValueError: a callable recorded by name only (pass it again).
    """
    if loss is None:
        return None
    if is_recorded_callable(loss):
        raise ValueError(
            f"this attack was recorded with a custom loss ({loss[len(CALLABLE) :]}); "
            "pass that callable again: dataclasses.replace(attack, loss=fn)"
        )
    fn = get_loss(loss)

    def total(out: Tensor, y: Tensor) -> Tensor:
        v = fn(out, y)
        return v.sum() if v.ndim else v

    return total


def perturb_batches(
    model: nn.Module,
    data: Any,
    attack: Callable,
    *,
    generator: torch.Generator | None = None,
    progressbar: bool = False,
) -> list[tuple[Tensor, Tensor]]:
    """Attack every batch of ``data`` once at the current model and return the fixed
    adversarial batches ``[(x_adv, y), ...]`` (on the model's device).

    This turns a robust-loss analysis into a question about fixed data (the style of
    every analysis module): attack once, then measure a deterministic objective.

    Args:
        model: the classifier.
        data: an ``(x, y)`` pair (one batch), a list of batches or a loader.
        attack: an attack value, e.g. ``attacks.PGD(eps=0.3, steps=40, alpha=0.01)``
            (any ``attack(model, x, y, generator) -> x_adv``).
        generator: randomness of the attack (``None``: torch's global RNG).
        progressbar: progress over the batches.

    Returns:
        ``[(x_adv, y), ...]``, one entry per batch of ``data``.

    Example:
        >>> from landscape import attacks
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x, y = torch.rand(6, 1, 2, 2), torch.randint(0, 2, (6,))
        >>> adv = attacks.perturb_batches(model, (x, y), attacks.PGD(eps=0.1))
        >>> len(adv), adv[0][0].shape == x.shape  # a pair is one batch
        (1, True)
    """
    if not callable(attack):
        raise TypeError(
            "perturb_batches needs an attack value, e.g. perturb_batches(model, data, "
            f"attacks.PGD(eps=...)), got {type(attack).__name__}"
        )
    from .._progress import bar, length

    _finite.check_model(model, name="perturb_batches: model")
    batches = as_batches(data, model=model, labels="class", images=True)
    gen, _ = _utils.make_generator(generator, batches.device)
    name = getattr(attack, "name", type(attack).__name__)
    shown = bar(
        batches,
        desc="perturb_batches",
        total=length(batches),
        unit="batches",
        enabled=progressbar,
        about=f"{name} at eps {getattr(attack, 'eps', '?')}",
    )
    with _finite.checked_at_entry():  # the batches are checked as they come
        return [(attack(model, x, y, gen), y) for x, y in shown]

"""Attacks as frozen values: the settings that travel together, and a call.

An *attack* is anything callable as ``attack(model, x, y, generator=None) -> x_adv``:
``x`` holds inputs in [0, 1], ``y`` class indices, and ``x_adv`` (detached, same
shape) lies inside the attack's eps-ball and in [0, 1]. ``generator=None`` draws the
randomness from torch's global RNG (seeded by :func:`landscape.seed_everything`), as
everywhere in ``landscape``. Every analysis that attacks (``surface.loss_surface``,
``scattering.scattering``, ``attacks.perturb_batches`` and the trainer) takes such a
value as ``attack=``.

The values here are frozen dataclasses, validated at construction, that compare and
hash by their settings and describe themselves (:meth:`Attack.to_dict`, stored in
results' ``meta``):

- :class:`PGD`, :class:`FGSMRS`: the fast training-time kernels of
  :mod:`landscape.attacks.perturb` (input gradients only, one run).
- :class:`FGSM`, :class:`PGDRestarts`, :class:`APGD`, :class:`APGDT`,
  :class:`FAB`, :class:`FABT`, :class:`Square`, :class:`SimBA`: the evaluation attacks (thin wrappers over
  :func:`~landscape.attacks.fgsm`, :func:`~landscape.attacks.pgd`,
  :func:`~landscape.attacks.apgd`, :func:`~landscape.attacks.apgd_t`,
  :func:`~landscape.attacks.square`, :func:`~landscape.attacks.simba`).

Adding an attack: subclass :class:`Attack` as a ``@dataclass(frozen=True)`` with its
settings as fields (``eps`` and ``norm`` come first), validate what
:func:`_check_setting` does not already check in ``__post_init__`` (call
``super().__post_init__()``), and either name the function of
:mod:`landscape.attacks` it wraps in ``_function`` (each setting is passed as the
keyword of the same name) or implement ``__call__(self, model, x, y,
generator=None)``. A plain function with that signature works too wherever
``attack=`` is taken.

Example:
    >>> import torch
    >>> atk = PGD(eps=0.1, steps=5)
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> x, y = torch.rand(8, 1, 2, 2), torch.randint(0, 2, (8,))
    >>> xa = atk(model, x, y, torch.Generator().manual_seed(0))
    >>> bool((xa - x).abs().max() <= 0.1 + 1e-6)
    True
    >>> atk.to_dict()["name"], PGD(eps=0.1, steps=5) == atk
    ('PGD', True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .. import _utils
from ._losses import get_loss

__all__ = [
    "APGD",
    "APGDT",
    "FGSM",
    "FGSMRS",
    "PGD",
    "PGDRestarts",
    "Attack",
    "SimBA",
    "Square",
    "as_attack",
]

Loss = str | Callable[[Tensor, Tensor], Tensor] | None


def _check_int(value: Any, name: str, low: int) -> None:
    if isinstance(value, bool) or int(value) != value or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_alpha(alpha: float | None, eps: float) -> None:
    """A step size is > 0 (0 is allowed with ``eps=0``, where nothing moves)."""
    if alpha is None:
        return
    a = float(alpha)
    if not (a > 0 or (a == 0 and eps == 0)):
        raise ValueError(f"the step size alpha must be > 0, got {alpha!r}")


def _check_loss(loss: Loss) -> None:
    if loss is not None and not callable(loss):
        get_loss(loss)  # raises for unknown names


def _summed(loss: Loss) -> Callable[[Tensor, Tensor], Tensor] | None:
    """A scalar objective for the kernels: ``None`` (their summed cross-entropy) or
    a name / per-example callable, summed over the batch."""
    if loss is None:
        return None
    fn = get_loss(loss)

    def total(out: Tensor, y: Tensor) -> Tensor:
        v = fn(out, y)
        return v.sum() if v.ndim else v

    return total


# counts and ratios, cast when passed on (a float 3.0 is a valid count)
_INTS = ("steps", "restarts", "eot_iter", "num_targets", "queries")
_FLOATS = ("rho", "alpha_max", "eta", "beta", "freq_frac")


@dataclasses.dataclass(frozen=True)
class Attack:
    """Base of the attack values: a budget ``eps`` in the norm ``norm``.

    Subclasses that wrap an attack function of :mod:`landscape.attacks` name it in
    ``_function``; a call passes every setting as the keyword of the same name
    (:meth:`_kwargs`). A setting is checked by its name wherever it appears
    (:func:`_check_setting`: counts, ratios, ``loss``).
    """

    eps: float
    norm: str = "linf"

    _function: ClassVar[str] = ""
    _min_count: ClassVar[dict[str, int]] = {}

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps", _utils.check_eps(self.eps))
        object.__setattr__(self, "norm", _utils.check_norm(self.norm))
        for f in dataclasses.fields(self):
            _check_setting(f.name, getattr(self, f.name), self._min_count)

    def _kwargs(self) -> dict[str, Any]:
        """The settings as keyword arguments of :attr:`_function`."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = int(v) if f.name in _INTS else v
            if f.name in _FLOATS:
                out[f.name] = float(v)
        return out

    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Return ``x_adv`` for the batch ``(x, y)`` against ``model``."""
        if not self._function:
            raise NotImplementedError
        from .. import attacks

        fn = getattr(attacks, self._function)
        return fn(model, x, y, generator=generator, **self._kwargs())

    def replace(self, **changes: Any) -> Attack:
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Name and settings, JSON-friendly (callables by name)."""
        out: dict[str, Any] = {"name": type(self).__name__}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if callable(v):
                v = getattr(v, "__name__", type(v).__name__)
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out


def _check_setting(name: str, value: Any, min_count: dict[str, int]) -> None:
    """The check of a setting, by its name: counts (``steps``, ``restarts``,
    ``eot_iter``, ``num_targets``, ``queries``) are integers >= 1 (or
    ``min_count[name]``), ``rho`` lies in (0, 1), ``alpha_max``, ``eta`` and
    ``beta`` are > 0, ``loss`` is a known name or a callable."""
    if name in _INTS:
        _check_int(value, name, min_count.get(name, 1))
    elif name == "rho" and not 0 < float(value) < 1:
        raise ValueError(f"rho must be in (0, 1), got {value!r}")
    elif name in ("alpha_max", "eta", "beta") and not float(value) > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    elif name == "loss":
        _check_loss(value)


@dataclasses.dataclass(frozen=True)
class PGD(Attack):
    """Projected gradient ascent, one run (Madry et al., 2018), the training kernel
    :func:`landscape.attacks.perturb`.

    Args:
        eps: budget (>= 0); ``eps=0`` returns ``x``.
        norm: ``"linf"`` or ``"l2"``.
        steps: gradient steps (>= 0).
        alpha: absolute step size (> 0); default ``2.5 * eps / steps``.
        random_start: start at a uniform random point of the ball.
        loss: ``None`` (summed cross-entropy), ``"ce"``, ``"cw"``, ``"dlr"`` or a
            callable ``(logits, y) -> per-example or scalar loss`` (summed).
    """

    steps: int = 10
    alpha: float | None = None
    random_start: bool = True
    loss: Loss = None

    _min_count: ClassVar[dict[str, int]] = {"steps": 0}

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_alpha(self.alpha, self.eps)

    def __call__(self, model, x, y, generator=None, *, train: bool = False) -> Tensor:
        """Attack ``(x, y)``; ``train=True`` runs the model in train mode."""
        from .perturb import perturb

        kw = self._kwargs()
        kw["loss_fn"] = _summed(kw.pop("loss"))
        return perturb(model, x, y, generator=generator, train=train, **kw)


@dataclasses.dataclass(frozen=True)
class FGSMRS(Attack):
    """FGSM with a random start (Wong et al., 2020): one step of ``alpha``
    (default ``1.25 * eps``) from a uniform point of the ball: :class:`PGD` with
    ``steps=1``."""

    alpha: float | None = None
    loss: Loss = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_alpha(self.alpha, self.eps)

    def __call__(self, model, x, y, generator=None, *, train: bool = False) -> Tensor:
        """Attack ``(x, y)``; ``train=True`` runs the model in train mode."""
        alpha = 1.25 * self.eps if self.alpha is None else self.alpha
        one_step = PGD(
            eps=self.eps, norm=self.norm, steps=1, alpha=alpha, loss=self.loss
        )
        return one_step(model, x, y, generator, train=train)


@dataclasses.dataclass(frozen=True)
class FGSM(Attack):
    """Fast gradient (sign) method, :func:`landscape.attacks.fgsm` (deterministic;
    ``generator`` is unused)."""

    loss: Loss = "ce"

    _function: ClassVar[str] = "fgsm"

    def _kwargs(self) -> dict[str, Any]:
        return {**super()._kwargs(), "loss": self.loss or "ce"}


@dataclasses.dataclass(frozen=True)
class PGDRestarts(Attack):
    """Evaluation PGD with restarts and a step-size grid, keeping the per-example
    worst case (:func:`landscape.attacks.pgd`)."""

    steps: int = 20
    alpha: float | tuple[float, ...] | None = None
    restarts: int = 1
    loss: Loss = "ce"
    random_start: bool | None = None
    early_stop: bool = True
    patience: int | None = None

    _function: ClassVar[str] = "pgd"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.alpha, list):
            object.__setattr__(self, "alpha", tuple(self.alpha))
        alphas = self.alpha if isinstance(self.alpha, tuple) else (self.alpha,)
        if any(a is not None and not float(a) > 0 for a in alphas):
            raise ValueError(f"step sizes alpha must be > 0, got {self.alpha!r}")

    def _kwargs(self) -> dict[str, Any]:
        alpha = list(self.alpha) if isinstance(self.alpha, tuple) else self.alpha
        return {**super()._kwargs(), "alpha": alpha, "loss": self.loss or "ce"}


@dataclasses.dataclass(frozen=True)
class _Restarted(Attack):
    """The settings of the restarted evaluation attacks (APGD, APGD-T, FAB, FAB-T):
    ``steps`` iterations per run, ``restarts`` runs on the points not yet broken."""

    steps: int = 100
    restarts: int = 1


@dataclasses.dataclass(frozen=True)
class APGD(_Restarted):
    """APGD (Croce & Hein, 2020), :func:`landscape.attacks.apgd`."""

    loss: str = "ce"
    rho: float = 0.75
    eot_iter: int = 1

    _function: ClassVar[str] = "apgd"


@dataclasses.dataclass(frozen=True)
class APGDT(_Restarted):
    """Targeted APGD with the DLR loss (Croce & Hein, 2020),
    :func:`landscape.attacks.apgd_t`."""

    num_targets: int = 9
    rho: float = 0.75

    _function: ClassVar[str] = "apgd_t"


@dataclasses.dataclass(frozen=True)
class FAB(_Restarted):
    """FAB, untargeted (Croce & Hein, 2020), :func:`landscape.attacks.fab`."""

    alpha_max: float = 0.1
    eta: float = 1.05
    beta: float = 0.9

    _function: ClassVar[str] = "fab"


@dataclasses.dataclass(frozen=True)
class FABT(FAB):
    """FAB-T, AutoAttack's targeted FAB, :func:`landscape.attacks.fab_t`."""

    num_targets: int = 9

    _function: ClassVar[str] = "fab_t"


@dataclasses.dataclass(frozen=True)
class Square(Attack):
    """Square attack (Andriushchenko et al., 2020), :func:`landscape.attacks.square`."""

    queries: int = 5000
    p_init: float | None = None

    _function: ClassVar[str] = "square"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.p_init is not None and not 0 < float(self.p_init) <= 1:
            raise ValueError(f"p_init must be in (0, 1], got {self.p_init!r}")


@dataclasses.dataclass(frozen=True)
class SimBA(Attack):
    """SimBA / SimBA-DCT (Guo et al., 2019), :func:`landscape.attacks.simba`."""

    norm: str = "l2"
    alpha: float | None = None
    eps_linf: float | None = None
    queries: int = 10000
    dct: bool = True
    freq_frac: float = 0.25

    _function: ClassVar[str] = "simba"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.alpha is not None and not float(self.alpha) > 0:
            raise ValueError(f"the step size alpha must be > 0, got {self.alpha!r}")
        if self.eps_linf is not None:
            _utils.check_eps(self.eps_linf, "eps_linf")
        if not 0 < float(self.freq_frac) <= 1:
            raise ValueError(f"freq_frac must be in (0, 1], got {self.freq_frac!r}")


_LEGACY = ("eps", "norm", "alpha", "steps", "random_start", "loss_fn")


def as_attack(
    attack: Callable | None = None, *, where: str, stacklevel: int = 3, **legacy: Any
) -> Callable | None:
    """The attack of a call that takes ``attack=`` and, for one release, the old
    loose keywords (``eps``, ``norm``, ``alpha``, ``steps``, ``random_start``,
    ``loss_fn``; ``None`` means not given).

    Loose keywords with ``eps`` map to :class:`PGD` with a ``DeprecationWarning``
    (without ``eps`` they are ignored, as they had defaults); giving both an attack
    and loose keywords is an error. Returns ``None`` when there is no attack.
    """
    given = {k: v for k, v in legacy.items() if v is not None}
    bad = set(given) - set(_LEGACY)
    if bad:
        raise TypeError(f"{where}: unknown attack settings {sorted(bad)}")
    if attack is not None:
        if given:
            raise TypeError(
                f"{where}: pass either attack=... or the settings "
                f"{sorted(given)}, not both"
            )
        if not callable(attack):
            raise TypeError(
                f"{where}: attack must be callable as attack(model, x, y, generator), "
                f"e.g. attacks.PGD(eps=...), got {type(attack).__name__}"
            )
        return attack
    if "eps" not in given:  # the other settings alone had defaults: no attack
        return None
    import warnings

    warnings.warn(
        f"{where}: the keywords {sorted(given)} are deprecated; pass "
        "attack=attacks.PGD(eps=..., steps=..., alpha=...) instead",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    if "loss_fn" in given:
        given["loss"] = given.pop("loss_fn")
    return PGD(**given)

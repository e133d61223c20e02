"""The one owner of "never a number from NaN": finite weights, losses and results.

- :func:`check_model`: every analysis entry and every checkpoint loader refuses a
  model whose parameters or buffers hold NaN or inf (one host read for the whole
  model);
- :func:`check_tensor` / :func:`check_number`: a loss, a gradient or a value that
  became non-finite during an analysis stops it with a :class:`NonFiniteError` that
  names what went non-finite and where (batch, grid point, iteration). Hot loops keep
  a device-side flag (:class:`Watch`) and read it once (per batch or at the end), so
  the check adds no host synchronisation per step;
- :func:`check_option` guards the numbers that enter an API as settings (a save
  interval of NaN): its message names the setting and what to pass, not an overflow.

The inputs (``data``) are checked by :mod:`landscape._batches`, the one owner of
batches, and saved results by :meth:`landscape.io.Result.save`.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator, Mapping
from itertools import chain
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "NonFiniteError",
    "check_model",
    "check_params",
    "check_tensor",
    "check_number",
    "check_option",
    "check_given",
    "check_host",
    "count_nonfinite",
    "Watch",
    "checked_at_entry",
    "checked",
    "check_call",
]


class NonFiniteError(ValueError):
    """A NaN or an infinity where a finite number is needed: an input, a weight, a
    loss, a gradient or a result. The message names the value and where it was."""


def count_nonfinite(t: Tensor) -> str:
    """``"3 NaN and 1 inf of 10"``: what is not finite in ``t`` (reads it).

    Example:
        >>> count_nonfinite(torch.tensor([1.0, float("nan"), float("inf")]))
        '1 NaN and 1 inf of 3 values'
    """
    nan = int(torch.isnan(t).sum())
    inf = int(torch.isinf(t).sum())
    return f"{nan} NaN and {inf} inf of {t.numel()} values"


def check_model(model: nn.Module, *, name: str = "model") -> None:
    """Refuse a model with NaN or inf in its parameters or floating buffers.

    Cost: one reduction per tensor on the model's device and one host read.

    Raises:
        NonFiniteError: names the first tensors that are not finite.

    Example:
        >>> net = nn.Linear(2, 1)
        >>> check_model(net)
        >>> with torch.no_grad():
        ...     _ = net.bias.fill_(float("nan"))
        >>> check_model(net)
        Traceback (most recent call last):
        ...
        landscape._finite.NonFiniteError: model has NaN or inf in its weights: bias (1 NaN and 0 inf of 1 values) - ...
    """
    named = dict(chain(model.named_parameters(), model.named_buffers()))
    check_params(
        named,
        name=name,
        what="its weights",
        fix="the weights are broken (e.g. saved after training diverged): use an "
        "earlier checkpoint or retrain with a lower learning rate",
    )


def check_params(
    tensors: Mapping[str, Tensor],
    *,
    name: str,
    what: str = "it",
    fix: str = "pass finite values",
) -> None:
    """Refuse NaN or inf in any floating tensor of ``tensors`` (one host read).

    Example:
        >>> check_params({"w": torch.ones(2)}, name="direction 0")
        >>> check_params({"w": torch.tensor([1.0, float("inf")])}, name="direction 0")
        Traceback (most recent call last):
        ...
        landscape._finite.NonFiniteError: direction 0 has NaN or inf in it: w (0 NaN and 1 inf of 2 values) - pass finite values
    """
    named = [
        (n, t.detach())
        for n, t in tensors.items()
        if t.is_floating_point() or t.is_complex()
    ]
    if not named:
        return
    dev = named[0][1].device
    ok = torch.stack([torch.isfinite(t).all().to(dev) for _, t in named])
    if bool(ok.all()):
        return
    bad = [(n, t) for (n, t), good in zip(named, ok.tolist()) if not good]
    shown = "; ".join(f"{n} ({count_nonfinite(t)})" for n, t in bad[:3])
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    raise NonFiniteError(f"{name} has NaN or inf in {what}: {shown}{more} - {fix}")


def check_tensor(t: Tensor, what: str, where: str = "") -> Tensor:
    """Raise when ``t`` holds NaN or inf (one host read); returns ``t``.

    Args:
        t: the values (a loss, a gradient, a result array).
        what: what they are (``"the loss"``).
        where: where they were computed (``"at grid point (3, 4)"``).

    Example:
        >>> check_tensor(torch.tensor([float("inf")]), "the loss", "in batch 2")
        Traceback (most recent call last):
        ...
        landscape._finite.NonFiniteError: NaN or inf in the loss in batch 2 (0 NaN and 1 inf of 1 values) - ...
    """
    if not bool(torch.isfinite(t.detach()).all()):
        raise _error(what, where, count_nonfinite(t.detach()))
    return t


def check_host(values: Any, what: str, where: str = "") -> None:
    """Raise when ``values`` (numbers already on the host: floats, a list, a numpy
    array) hold NaN or inf; no device read.

    Example:
        >>> check_host([1.0, float("nan")], "the trace probes", "in chunk 3")
        Traceback (most recent call last):
        ...
        landscape._finite.NonFiniteError: NaN or inf in the trace probes in chunk 3 (1 NaN and 0 inf of 2 values) - ...
    """
    a = np.asarray(values, dtype=np.float64)
    if not np.isfinite(a).all():
        detail = f"{int(np.isnan(a).sum())} NaN and {int(np.isinf(a).sum())} inf of {a.size} values"
        raise _error(what, where, detail)


def check_number(v: Any, what: str, where: str = "") -> float:
    """``float(v)``, refused when it is NaN or infinite (or not a number at all).

    Example:
        >>> check_number(0.5, "eps")
        0.5
        >>> check_number(float("nan"), "eps")
        Traceback (most recent call last):
        ...
        landscape._finite.NonFiniteError: NaN or inf in eps (nan) - ...
    """
    try:
        x = float(v)
    except (TypeError, ValueError, OverflowError):
        raise TypeError(f"{what} must be a number, got {v!r}") from None
    if not math.isfinite(x):
        raise _error(what, where, repr(x))
    return x


def check_option(v: Any, name: str, expected: str, *, positive: bool = False) -> float:
    """``float(v)`` for a setting passed by the caller, refused (with what to pass)
    when it is NaN, infinite or not a number; :func:`check_number` is for values an
    analysis computed.

    Example:
        >>> check_option(float("nan"), "save_interval", "seconds >= 0")
        Traceback (most recent call last):
        ...
        landscape._finite.NonFiniteError: save_interval must be a finite number (seconds >= 0), got nan
    """
    try:
        x = float(v)
    except (TypeError, ValueError, OverflowError):
        raise TypeError(f"{name} must be a number ({expected}), got {v!r}") from None
    if not math.isfinite(x):
        raise NonFiniteError(f"{name} must be a finite number ({expected}), got {x!r}")
    if positive and not x > 0:
        raise ValueError(f"{name} must be > 0 ({expected}), got {x!r}")
    return x


def check_given(t: Tensor, name: str) -> Tensor:
    """Refuse a tensor the caller passed (a vector, a direction) that holds NaN or
    inf, naming it as the caller's input (not as an overflow of the analysis).

    Example:
        >>> check_given(torch.tensor([1.0, float("nan")]), "v")
        Traceback (most recent call last):
        ...
        landscape._finite.NonFiniteError: the v passed has NaN or inf (1 NaN and 0 inf of 2 values) - pass finite values
    """
    if not bool(torch.isfinite(t.detach()).all()):
        detail = count_nonfinite(t.detach())
        raise NonFiniteError(
            f"the {name} passed has NaN or inf ({detail}) - pass finite values"
        )
    return t


def _error(what: str, where: str, detail: str) -> NonFiniteError:
    at = f" {where}" if where else ""
    return NonFiniteError(
        f"NaN or inf in {what}{at} ({detail}) - check the inputs and weights for "
        "values that overflow (huge inputs, a too large step or learning rate); "
        "nothing was saved from this computation"
    )


_CHECKED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "landscape_checked_at_entry", default=False
)


@contextlib.contextmanager
def checked_at_entry() -> Iterator[None]:
    """Inside: an analysis checked its inputs and its model when they entered, so the
    attacks it calls per batch or per step (:meth:`landscape.attacks.Attack.__call__`)
    do not read them again (no host read per training step)."""
    token = _CHECKED.set(True)
    try:
        yield
    finally:
        _CHECKED.reset(token)


def checked() -> bool:
    """Whether the caller is inside :func:`checked_at_entry`."""
    return _CHECKED.get()


def check_call(model: nn.Module, x: Tensor, *, name: str) -> None:
    """An attack called on its own: ``x`` and the model's weights must be finite (one
    host read for both); nothing inside :func:`checked_at_entry`.

    Raises:
        NonFiniteError: names the inputs or the weights.
    """
    if _CHECKED.get():
        return
    weights = dict(chain(model.named_parameters(), model.named_buffers()))
    floats = [t.detach() for t in weights.values() if t.is_floating_point()]
    flags = [torch.isfinite(x.detach()).all()]
    flags += [torch.isfinite(t).all().to(x.device) for t in floats]
    ok = torch.stack(flags).tolist()
    if all(ok):
        return
    if not ok[0]:
        raise NonFiniteError(
            f"{name}: the inputs x are not finite ({count_nonfinite(x.detach())}) - "
            "drop or repair those examples"
        )
    check_model(model, name=f"{name}: model")


class Watch:
    """A device-side "everything finite so far" flag, read once.

    ``watch.add(t, where)`` records, without a host read, whether ``t`` is finite;
    ``watch.check()`` reads all flags at once and raises for the first place where a
    value was not finite.

    Example:
        >>> w = Watch("the loss")
        >>> w.add(torch.tensor(1.0), "at point 0")
        >>> w.add(torch.tensor(float("nan")), "at point 1")
        >>> w.check()
        Traceback (most recent call last):
        ...
        landscape._finite.NonFiniteError: NaN or inf in the loss at point 1 (nan) - ...
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._flags: list[Tensor] = []
        self._where: list[str] = []
        self._values: list[Tensor] = []

    def add(self, t: Tensor, where: str) -> None:
        """Record whether ``t`` is finite (no host read)."""
        t = t.detach()
        self._flags.append(torch.isfinite(t).all())
        self._where.append(where)
        self._values.append(t if t.numel() == 1 else t.reshape(-1)[:0])

    def check(self) -> None:
        """Read the flags (one host read) and raise for the first non-finite value."""
        if not self._flags:
            return
        dev = self._flags[0].device
        ok = torch.stack([f.to(dev) for f in self._flags]).tolist()
        where, values = self._where, self._values
        self._flags, self._where, self._values = [], [], []
        for good, w, v in zip(ok, where, values):
            if not good:
                detail = repr(float(v)) if v.numel() == 1 else "NaN or inf"
                raise _error(self.what, w, detail)

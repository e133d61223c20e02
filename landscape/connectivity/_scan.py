"""Loss and accuracy along a curve: clean and under an evaluation attack."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from .. import _finite, _utils, attacks
from .._batches import as_batches
from ..io import Result
from ._bn import bn_statistics, has_batchnorm
from ._curves import Curve

__all__ = ["CurveScan", "scan_curve", "barrier"]


class _At(nn.Module):
    """``model`` evaluated at a fixed state (what attacks see). The model is a
    registered submodule, so attacks read its device and switch its mode (restoring
    it); its own tensors are never used or changed."""

    def __init__(self, model: nn.Module, state: dict[str, Tensor]):
        super().__init__()
        self.model = model
        object.__setattr__(self, "_state", state)

    def forward(self, x: Tensor) -> Tensor:
        return functional_call(self.model, self._state, (x,))


def barrier(values: np.ndarray, *, higher_is_worse: bool = True) -> float:
    """Barrier height along a curve: ``max(values) - mean(values[0], values[-1])``
    (for a loss); for an accuracy (``higher_is_worse=False``) the drop
    ``mean(values[0], values[-1]) - min(values)``.

    Example:
        >>> barrier(np.array([0.1, 0.9, 0.3]))
        0.7
        >>> round(barrier(np.array([0.9, 0.5, 0.8]), higher_is_worse=False), 3)
        0.35
    """
    v = np.asarray(values, dtype=float)
    ends = 0.5 * (v[0] + v[-1])
    return float(v.max() - ends) if higher_is_worse else float(ends - v.min())


@dataclass(frozen=True)
class CurveScan(Result):
    """Loss and accuracy at points ``ts`` of a curve (saved with ``save()``).

    Attributes:
        ts: curve parameters, shape (T,), from 0 to 1.
        clean_loss / clean_acc: clean loss and accuracy at each t.
        robust_loss / robust_acc: under the evaluation attack (None without one).
        kind: the curve's kind (``line``, ``bezier``, ``polychain``).
        meta: settings (num_bends, bn, attack, num_samples) and provenance.
    """

    SHAPES = {
        "ts": "T",
        "clean_loss": "T",
        "clean_acc": "T",
        "robust_loss": "T",
        "robust_acc": "T",
    }

    ts: np.ndarray
    clean_loss: np.ndarray
    clean_acc: np.ndarray
    robust_loss: np.ndarray | None = None
    robust_acc: np.ndarray | None = None
    kind: str = "bezier"
    meta: dict = field(default_factory=dict)

    def barrier(self, key: str = "clean_loss") -> float:
        """Barrier height of ``key`` (``clean_loss``, ``robust_loss``: max along the
        curve minus the endpoints' mean; ``clean_acc``, ``robust_acc``: the
        endpoints' mean minus the min)."""
        v = getattr(self, key, None)
        if v is None or key not in (
            "clean_loss",
            "clean_acc",
            "robust_loss",
            "robust_acc",
        ):
            raise ValueError(f"no {key!r} in this scan")
        return barrier(v, higher_is_worse=key.endswith("loss"))

    @property
    def clean_barrier(self) -> float:
        """Barrier height of the clean loss."""
        return self.barrier("clean_loss")

    @property
    def robust_barrier(self) -> float | None:
        """Barrier height of the robust loss (None without an attack)."""
        return None if self.robust_loss is None else self.barrier("robust_loss")


def _evaluate(model, loss_fn, batches, attack, gen, where) -> tuple[float, float]:
    loss_sum, correct, n = 0.0, 0.0, 0
    for b, (x, y) in enumerate(batches):
        if attack is not None:
            x = attack(model, x, y, generator=gen)
        with torch.no_grad():
            out = model(x)
            lb = float(loss_fn(out, y))  # read anyway: the check costs nothing more
            _finite.check_number(lb, "the loss", f"{where}, batch {b}")
            loss_sum += lb * len(y)
            correct += float((out.argmax(1) == y).sum())
        n += len(y)
    return loss_sum / n, correct / n


def scan_curve(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    data: Iterable,
    curve: Curve,
    *,
    num: int = 21,
    attack: attacks.Attack | None = None,
    train_data: Iterable | None = None,
    bn: str = "reestimate",
    generator: torch.Generator | None = None,
    progressbar: bool = False,
) -> CurveScan:
    """Loss and accuracy at ``num`` equally spaced points of a curve, clean and
    under an evaluation attack, with BatchNorm statistics re-estimated at every point.

    At each ``t`` the model is evaluated with ``functional_call`` at
    ``curve.state(t)`` in eval mode. For a model with BatchNorm, ``bn="reestimate"``
    (the reference code's choice) first re-estimates the running statistics at
    ``theta(t)`` on ``train_data`` (:func:`bn_statistics`); ``bn="interpolate"`` uses
    the endpoints' statistics interpolated linearly instead (only meaningful near the
    endpoints). The attack is run against the model at ``theta(t)`` (with those
    statistics) for every batch.

    Args:
        model: the architecture of the endpoints (its tensors are not used; it is
            left unchanged, modes included).
        loss_fn: ``(logits, y) -> scalar`` mean loss (e.g. ``nn.CrossEntropyLoss()``).
        data: the evaluation data (e.g. test data): an ``(x, y)`` pair (one batch),
            a list of batches or a loader, moved to the model's device batch by batch.
        curve: a :class:`Curve` (:func:`init_curve` for the line, or a trained
            :class:`CurveModel`'s ``.curve()``).
        num: number of t values in [0, 1] (both ends included, >= 2).
        attack: the evaluation attack, an attack value (e.g.
            ``attacks.PGD(eps=0.3, steps=20, keep="best")``); None: clean only.
        train_data: training data for the BatchNorm re-estimation (as in the
            reference); required for a BatchNorm model with ``bn="reestimate"``.
        bn: ``"reestimate"`` or ``"interpolate"``.
        generator: randomness of the attack (one stream over all points; its seed is
            recorded).
        progressbar: a tqdm bar over the points.

    Returns:
        :class:`CurveScan` (``.barrier("robust_loss")`` etc.).

    Raises:
        ValueError: ``num < 2``, bad ``bn``, a BatchNorm model without
            ``train_data``, or a curve that does not fit the model.
    """
    if int(num) < 2:
        raise ValueError(f"num must be >= 2 (both endpoints), got {num}")
    if bn not in ("reestimate", "interpolate"):
        raise ValueError(f"bn must be 'reestimate' or 'interpolate', got {bn!r}")
    if not isinstance(curve, Curve):
        raise TypeError(f"curve must be a Curve, got {type(curve).__name__}")
    if attack is not None and not isinstance(attack, attacks.Attack):
        raise TypeError(
            "attack must be an attack value (e.g. attacks.PGD(eps=0.3, steps=20, "
            f"keep='best')) or None, got {type(attack).__name__}"
        )
    device = _utils.model_device(model)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
    theirs = {k: tuple(v.shape) for k, v in curve.start.items()}
    if shapes != theirs:
        bad = sorted(
            k for k in set(shapes) | set(theirs) if shapes.get(k) != theirs.get(k)
        )
        raise ValueError(
            f"the curve does not fit the model: parameters differ at {bad[:5]}"
        )
    reestimate = has_batchnorm(model) and bn == "reestimate"
    if reestimate and train_data is None:
        raise ValueError(
            "the model has BatchNorm: pass train_data= (training batches) to re-estimate "
            "its statistics at every t, or bn='interpolate'"
        )
    for name, d in (("start", curve.start), ("end", curve.end)):
        _finite.check_params(d, name="scan_curve: curve", what=f"its {name}")
    for i, b in enumerate(curve.bends):
        _finite.check_params(b, name="scan_curve: curve", what=f"its bend {i}")
    curve = curve.to(device)
    batches = as_batches(data, model=model, images=attack is not None)
    bn_batches = (
        as_batches(train_data, model=model, labels="any", name="train_data")
        if reestimate
        else None
    )
    gen, seed = _utils.make_generator(generator, device)
    ts = np.linspace(0.0, 1.0, int(num))
    rows = []
    from tqdm.auto import tqdm

    for t in tqdm(ts, desc="scan_curve", disable=not progressbar):
        state = curve.state(float(t))
        if reestimate:
            state.update(bn_statistics(model, state, bn_batches))
        at = _At(model, state)
        with _utils.eval_mode(at), _finite.checked_at_entry():
            where = f"at t={float(t):g}"
            row = _evaluate(at, loss_fn, batches, None, gen, where)
            if attack is not None:
                where += f" under {attack.name}"
                row = row + _evaluate(at, loss_fn, batches, attack, gen, where)
        rows.append(row)
    arr = np.asarray(rows, dtype=float)
    robust = attack is not None
    return CurveScan(
        ts=ts,
        clean_loss=arr[:, 0],
        clean_acc=arr[:, 1],
        robust_loss=arr[:, 2] if robust else None,
        robust_acc=arr[:, 3] if robust else None,
        kind=curve.kind,
        meta={
            "num_bends": curve.num_bends,
            "num": int(num),
            "num_samples": batches.num_samples,
            "bn": ("reestimate" if reestimate else bn)
            if has_batchnorm(model)
            else None,
            "attack": attack.to_dict() if robust else None,
            "eps": attack.eps if robust else None,
            "seed": seed,
            "device": str(device),
        },
    )

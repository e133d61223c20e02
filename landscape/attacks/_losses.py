"""Per-example attack losses and the checks every attack shares.

Losses map ``(logits, y)`` to a per-example vector (shape ``(N,)``) that an attacker
*maximises*:

- :func:`ce_loss`: cross-entropy.
- :func:`cw_loss`: Carlini-Wagner margin ``max_{j != y} z_j - z_y`` (> 0 iff misclassified).
- :func:`dlr_loss`: difference of logits ratio (Croce & Hein, 2020), shift and scale
  invariant.
- :func:`dlr_targeted_loss`: the targeted DLR loss of APGD-T.

The private helpers validate inputs (``eps``, ``norm``, inputs in [0, 1]) and assert at
the end of every attack that the result lies in the eps-ball and in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _utils
from .._finite import NonFiniteError, count_nonfinite

__all__ = [
    "ce_loss",
    "cw_loss",
    "dlr_loss",
    "dlr_targeted_loss",
    "get_loss",
    "margin",
]

LossFn = Callable[[Tensor, Tensor], Tensor]


def ce_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Per-example cross-entropy.

    Example:
        >>> z = torch.tensor([[0.0, 0.0]])
        >>> round(ce_loss(z, torch.tensor([0])).item(), 4)  # log 2
        0.6931
    """
    return F.cross_entropy(logits, y, reduction="none")


def margin(logits: Tensor, y: Tensor) -> Tensor:
    """``max_{j != y} z_j - z_y`` per example: > 0 iff the prediction is wrong.

    Example:
        >>> margin(torch.tensor([[1.0, 3.0, 2.0]]), torch.tensor([1])).tolist()
        [-1.0]
    """
    zy = logits.gather(1, y.view(-1, 1)).squeeze(1)
    other = logits.scatter(1, y.view(-1, 1), float("-inf")).amax(dim=1)
    return other - zy


def cw_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Carlini-Wagner margin loss (untargeted): :func:`margin`, maximised."""
    return margin(logits, y)


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Difference of logits ratio (Croce & Hein 2020, eq. 5), per example.

    ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)`` with ``z_pi`` the sorted logits;
    needs at least 3 classes.

    Example:
        >>> z = torch.tensor([[3.0, 2.0, 0.0]])
        >>> dlr_loss(z, torch.tensor([0])).tolist()  # -(3 - 2) / (3 - 0)
        [-0.3333333432674408]
    """
    if logits.shape[1] < 3:
        raise ValueError("the DLR loss needs at least 3 classes; use loss='cw'")
    zs, _ = logits.sort(dim=1)
    return margin(logits, y) / (zs[:, -1] - zs[:, -3] + 1e-12)


def dlr_targeted_loss(logits: Tensor, y: Tensor, target: Tensor) -> Tensor:
    """Targeted DLR loss of APGD-T (Croce & Hein 2020, eq. 6), per example:
    ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``; needs at least 4 classes."""
    if logits.shape[1] < 4:
        raise ValueError("the targeted DLR loss needs at least 4 classes")
    zs, _ = logits.sort(dim=1)
    zy = logits.gather(1, y.view(-1, 1)).squeeze(1)
    zt = logits.gather(1, target.view(-1, 1)).squeeze(1)
    return -(zy - zt) / (zs[:, -1] - 0.5 * (zs[:, -3] + zs[:, -4]) + 1e-12)


_LOSSES: dict[str, LossFn] = {"ce": ce_loss, "cw": cw_loss, "dlr": dlr_loss}


def get_loss(name: str | LossFn) -> LossFn:
    """A per-example loss by name (``"ce"``, ``"cw"``/``"margin"``, ``"dlr"``) or a callable."""
    if callable(name):
        return name
    key = str(name).lower()
    key = "cw" if key == "margin" else key
    if key not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; use one of 'ce', 'cw', 'dlr'")
    return _LOSSES[key]


# ---------------------------------------------------------------- shared checks


def _check_inputs(x: Tensor, y: Tensor) -> None:
    """The inputs of an attack call: as many labels as examples, class indices,
    inputs in [0, 1]."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} examples but y has {y.shape[0]} labels")
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"y must hold class indices (int64), got {y.dtype}")
    if not x.numel():
        return
    lo, hi = torch.stack(torch.aminmax(x.detach())).tolist()  # one host read
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise NonFiniteError(
            f"the inputs x are not finite ({count_nonfinite(x.detach())}) - drop or "
            "repair those examples"
        )
    if lo < 0 or hi > 1:
        raise ValueError(
            "inputs must lie in [0, 1]; put normalisation (mean/std) inside the model"
        )


def _lp(v: Tensor, norm: str) -> Tensor:
    v = v.flatten(1)
    return v.abs().amax(dim=1) if norm == "linf" else v.norm(dim=1)


def _assert_in_ball(
    x_adv: Tensor, x: Tensor, eps: float, norm: str, where: str
) -> None:
    """Every attack's last line: the result is in the eps-ball and in [0, 1]."""
    if x.numel() == 0:
        return
    tol = 1e-5 * max(eps, 1.0) + (1e-6 if x.dtype == torch.float64 else 2e-6)
    dist = _lp(x_adv - x, norm).max().item()
    if not math.isfinite(dist):
        raise NonFiniteError(
            f"{where}: NaN or inf in the adversarial inputs (a NaN or inf loss or "
            "gradient of the model at these inputs) - check the model's outputs there"
        )
    assert dist <= eps + tol, f"{where}: perturbation {dist} exceeds eps={eps} ({norm})"
    assert x_adv.min() >= 0 and x_adv.max() <= 1, f"{where}: result leaves [0, 1]"


def _check_first_output(out: Tensor, where: str, y: Tensor | None = None) -> None:
    if out.ndim != 2 or out.shape[1] < 2:
        raise ValueError(
            f"{where}: the model must return (N, num_classes) logits, got shape "
            f"{tuple(out.shape)}; wrap a 1-logit binary model to return [0, z]"
        )
    if y is not None and y.numel() and (y.min() < 0 or y.max() >= out.shape[1]):
        raise ValueError(
            f"{where}: labels must be class indices in [0, {out.shape[1] - 1}] (the "
            f"model has {out.shape[1]} logits), got values in "
            f"[{int(y.min())}, {int(y.max())}]"
        )
    _utils.check_logits(out, where=where)


def _expand(v: Tensor, like: Tensor) -> Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))

"""Exact adversarial margins and losses of linear models (Liu et al., 2020, §3).

A linear classifier ``f(x) = w.x + b`` under an L_p attack of radius ``eps`` loses
exactly ``eps ||w||_{p*}`` of margin, where ``p*`` is the dual exponent
(``1/p + 1/p* = 1``): the L-inf attack is paid with the L1 norm of ``w``, the L2 attack
with the L2 norm. :func:`robust_margins`, :func:`robust_loss` and
:func:`worst_case_perturbation` give the exact adversarial loss of a binary model with
labels +-1 for any margin-decreasing loss (logistic, hinge) and the perturbation that
attains it; :func:`multiclass_robust_bound` the pairwise upper bound for softmax
cross-entropy. Also the input checks shared by the other parts of
:mod:`landscape.linear`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch import Tensor

from .. import _utils

__all__ = [
    "dual_norm",
    "multiclass_robust_bound",
    "robust_loss",
    "robust_margins",
    "worst_case_perturbation",
]

_LOSSES = ("logistic", "hinge")


# --------------------------------------------------------------------------- checks


def _norm(norm: str | float | int) -> str:
    return _utils.check_norm(norm)


def _as_x(x) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim > 2:
        x = x.reshape(x.shape[0], -1)
    return x


def _as_pm1(y, n: int | None = None) -> np.ndarray:
    if isinstance(y, Tensor):
        y = y.detach().cpu().double().numpy()
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if not np.all(np.isin(y, (-1.0, 1.0))):
        bad = np.unique(y[~np.isin(y, (-1.0, 1.0))])[:5]
        raise ValueError(
            f"labels must be +-1 for the binary theory, got values {bad.tolist()}; "
            "map class indices with y = 2 * y - 1 (or data.binary_subset(..., labels='pm1'))"
        )
    if n is not None and y.shape[0] != n:
        raise ValueError(f"x has {n} rows but y has {y.shape[0]} labels")
    return y


def _check_loss(loss: str) -> str:
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {_LOSSES}, got {loss!r}")
    return loss


def _both_classes(y: np.ndarray) -> None:
    if not (np.any(y > 0) and np.any(y < 0)):
        raise ValueError("the data must contain both classes (+1 and -1)")


# --------------------------------------------------------------------------- closed forms


def dual_norm(w, norm: str | float = "linf"):
    """``||w||_{p*}`` over the last axis: L1 for ``norm="linf"``, L2 for ``norm="l2"``.

    The margin of a linear model drops by ``eps * dual_norm(w, norm)`` under an L_p
    attack of radius eps. Works on numpy arrays and (differentiably) on tensors.

    Example:
        >>> float(dual_norm(np.array([3.0, -4.0]), "linf")), float(dual_norm(np.array([3.0, -4.0]), "l2"))
        (7.0, 5.0)
    """
    norm = _norm(norm)
    if isinstance(w, Tensor):
        return w.abs().sum(-1) if norm == "linf" else w.norm(dim=-1)
    w = np.asarray(w, dtype=np.float64)
    return np.abs(w).sum(-1) if norm == "linf" else np.linalg.norm(w, axis=-1)


def _primal_norm(g: np.ndarray, norm: str) -> float:
    return float(np.abs(g).max() if norm == "linf" else np.linalg.norm(g))


def robust_margins(
    w: np.ndarray | Tensor,
    b: float | np.ndarray | Tensor,
    x: ArrayLike | Tensor,
    y: ArrayLike | Tensor,
    *,
    eps: float,
    norm: str | float = "linf",
) -> np.ndarray | Tensor:
    """Worst-case margins ``y_i (w.x_i + b) - eps ||w||_{p*}`` (exact for linear models).

    Args:
        w: weights, shape (d,). A tensor keeps the result differentiable.
        b: bias (scalar; 0 for none).
        x: inputs (n, d) (extra dimensions are flattened).
        y: labels +-1, shape (n,).
        eps: attack radius (>= 0).
        norm: attack norm, ``"linf"`` or ``"l2"``.

    Returns:
        Margins, shape (n,), same type as ``w``.

    Example:
        >>> x, y = np.array([[1.0, 2.0]]), np.array([1.0])
        >>> robust_margins(np.array([1.0, -1.0]), 0.5, x, y, eps=0.1).tolist()
        [-0.7]
    """
    eps = _utils.check_eps(eps)
    if isinstance(w, Tensor):
        x = torch.as_tensor(x, dtype=w.dtype, device=w.device).flatten(1)
        y = torch.as_tensor(y, dtype=w.dtype, device=w.device).reshape(-1)
        if not bool(((y == 1) | (y == -1)).all()):
            raise ValueError("labels must be +-1 for the binary theory")
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]} labels")
        _check_dim(w.shape[-1], x.shape[1])
        return y * (x @ w + b) - eps * dual_norm(w, norm)
    x = _as_x(x)
    y = _as_pm1(y, x.shape[0])
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    _check_dim(w.shape[0], x.shape[1])
    return y * (x @ w + b) - eps * dual_norm(w, norm)


def _check_dim(dw: int, dx: int) -> None:
    if dw != dx:
        raise ValueError(
            f"w has {dw} weights but x has {dx} features per row: pass x as (n, {dw})"
        )


def _reduce(vals, reduction: str):
    """``vals`` (an array or a tensor) reduced by ``"mean"``, ``"sum"`` or ``"none"``."""
    if reduction == "mean":
        return vals.mean()
    if reduction == "sum":
        return vals.sum()
    if reduction == "none":
        return vals
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _loss_of_margin(m, loss: str):
    if isinstance(m, Tensor):
        return F.softplus(-m) if loss == "logistic" else torch.clamp(1 - m, min=0)
    return np.logaddexp(0.0, -m) if loss == "logistic" else np.maximum(0.0, 1.0 - m)


def robust_loss(
    w: np.ndarray | Tensor,
    b: float | np.ndarray | Tensor,
    x: ArrayLike | Tensor,
    y: ArrayLike | Tensor,
    *,
    eps: float,
    norm: str | float = "linf",
    loss: str = "logistic",
    reduction: str = "mean",
):
    """Exact adversarial loss ``max_{||delta||_p <= eps} l(y (w.(x + delta) + b))``.

    For a margin-decreasing loss ``l`` the maximum is ``l`` of the worst-case margin
    (:func:`robust_margins`). Tensors in, tensors out (differentiable in ``w``, ``b``).

    Args:
        w, b, x, y, eps, norm: as in :func:`robust_margins`.
        loss: ``"logistic"`` (``log(1 + exp(-m))``) or ``"hinge"`` (``max(0, 1 - m)``).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Example:
        >>> x, y = np.zeros((1, 2)), np.array([1.0])
        >>> round(float(robust_loss(np.ones(2), 0.0, x, y, eps=0.0)), 6)  # log 2
        0.693147
    """
    _check_loss(loss)
    vals = _loss_of_margin(robust_margins(w, b, x, y, eps=eps, norm=norm), loss)
    return _reduce(vals, reduction)


def worst_case_perturbation(
    w: np.ndarray | Tensor,
    x: ArrayLike | Tensor,
    y: ArrayLike | Tensor,
    *,
    eps: float,
    norm: str | float = "linf",
) -> np.ndarray | Tensor:
    """The perturbation attaining :func:`robust_loss`: ``-y eps sign(w)`` (L-inf) or
    ``-y eps w / ||w||_2`` (L2); zero where ``w = 0`` (any point is then worst).

    Returns:
        ``delta`` of shape (n, d), same type as ``w``.

    Example:
        >>> worst_case_perturbation(np.array([2.0, -1.0]), np.zeros((1, 2)), [1.0], eps=0.5).tolist()
        [[-0.5, 0.5]]
    """
    eps = _utils.check_eps(eps)
    norm = _norm(norm)
    if isinstance(w, Tensor):
        y = torch.as_tensor(y, dtype=w.dtype, device=w.device).reshape(-1, 1)
        if norm == "linf":
            u = torch.sign(w)
        else:
            n = w.norm()
            u = w / n if n > 0 else torch.zeros_like(w)
        return -y * eps * u.expand(y.shape[0], -1)
    x = _as_x(x)
    y = _as_pm1(y, x.shape[0])
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    if norm == "linf":
        u = np.sign(w)
    else:
        n = np.linalg.norm(w)
        u = w / n if n > 0 else np.zeros_like(w)
    return -y[:, None] * eps * np.broadcast_to(u, x.shape)


def multiclass_robust_bound(
    W: np.ndarray | Tensor,
    b: np.ndarray | Tensor | None,
    x: ArrayLike | Tensor,
    y: ArrayLike | Tensor,
    *,
    eps: float,
    norm: str | float = "linf",
    reduction: str = "mean",
):
    """Pairwise upper bound on the adversarial softmax cross-entropy of ``z = W x + b``.

    For each pair ``j != y`` the logit gap ``z_y - z_j`` drops by at most
    ``eps ||W_y - W_j||_{p*}``; maximising every gap separately bounds the loss:
    ``log(1 + sum_{j != y} exp(-(z_y - z_j) + eps ||W_y - W_j||_{p*}))``.
    Exact for two classes; PGD on the same model gives a lower bound.

    Args:
        W: weights (K, d); b: biases (K,) or None; y: class indices (n,).

    Example:
        >>> W, x = np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([[1.0, 1.0]])
        >>> bound = multiclass_robust_bound(W, None, x, [0], eps=0.5)
        >>> bool(np.isclose(bound, np.log1p(np.exp(-2.0 + 0.5 * 2.0))))
        True
    """
    eps = _utils.check_eps(eps)
    if isinstance(W, Tensor):
        x = torch.as_tensor(x, dtype=W.dtype, device=W.device).flatten(1)
        y = torch.as_tensor(y, device=W.device).long().reshape(-1)
        z = x @ W.T + (0 if b is None else b)
        wy = W[y]  # (n, d)
        diff = dual_norm(wy[:, None, :] - W[None], norm)  # (n, K)
        gap = z.gather(1, y[:, None]) - z - eps * diff
        gap = gap.scatter(1, y[:, None], float("inf"))
        vals = torch.logsumexp(
            torch.cat([torch.zeros_like(gap[:, :1]), -gap], dim=1), dim=1
        )
    else:
        W = np.asarray(W, dtype=np.float64)
        x = _as_x(x)
        y = np.asarray(y).astype(np.int64).reshape(-1)
        z = x @ W.T + (0 if b is None else np.asarray(b, dtype=np.float64))
        diff = dual_norm(W[y][:, None, :] - W[None], norm)
        gap = z[np.arange(len(y)), y][:, None] - z - eps * diff
        gap[np.arange(len(y)), y] = np.inf
        neg = np.concatenate([np.zeros((len(y), 1)), -gap], axis=1)
        mx = neg.max(1, keepdims=True)
        vals = mx[:, 0] + np.log(np.exp(neg - mx).sum(1))
    return _reduce(vals, reduction)

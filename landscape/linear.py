"""Version-space and constant-classifier theory for linear models (Liu et al., 2020, §3).

A linear classifier ``f(x) = w.x + b`` under an L_p attack of radius ``eps`` loses
exactly ``eps ||w||_{p*}`` of margin, where ``p*`` is the dual exponent
(``1/p + 1/p* = 1``): the L-inf attack is paid with the L1 norm of ``w``, the L2 attack
with the L2 norm. Everything here follows from that one identity:

- :func:`robust_margins`, :func:`robust_loss`, :func:`worst_case_perturbation`: the exact
  adversarial loss of a binary linear model with labels +-1 for any margin-decreasing
  loss (logistic, hinge), and the perturbation that attains it
  (``-y eps sign(w)`` for L-inf, ``-y eps w/||w||_2`` for L2).
- :func:`multiclass_robust_bound`: for softmax cross-entropy the pairwise upper bound
  ``log(1 + sum_{j != y} exp(-(z_y - z_j) + eps ||w_y - w_j||_{p*}))`` (exact for two
  classes); PGD gives a lower bound.
- The eps-version space ``V_eps = {(w, b): y_i (w.x_i + b) > eps ||w||_{p*} for all i}``
  (:func:`in_version_space`). It is a cone, nested (``V_eps2 ⊂ V_eps1`` for
  ``eps1 <= eps2``) and nonempty exactly when ``eps < gamma``, the robust max-margin
  :func:`robust_margin` ``gamma = max_{||w||_{p*} <= 1} min_i y_i (w.x_i + b)``. The
  constraint is on the **dual** norm of ``w``: an L1-ball linear program for L-inf
  attacks, the L2 hard-margin SVM for L2 attacks.
- The constant-classifier threshold :func:`constant_threshold`: for the robust logistic
  (or hinge) loss without bias, ``w = 0`` is optimal iff ``eps >= eps* =
  ||mean_i y_i x_i||_p`` (the perturbation norm itself); with a free bias (logistic),
  ``eps* = ||mu_+ - mu_-||_p / 2`` whatever the class balance. Beyond eps* the optimum
  is ``w = 0`` exactly and the robust loss is ``log 2`` (no bias) or the binary entropy
  of the class proportions (bias). An L2 penalty does not move eps*. For K classes
  (no bias) :func:`constant_threshold_multiclass` gives
  ``eps*_K = min_c max_k ||mu_k - c / pi_k||_p`` (the radius of the smallest L_p ball
  enclosing the class means when classes are balanced).
- Robust training two ways on the same data: :func:`robust_train_closed_form` (convex,
  solved to high precision by L-BFGS-B) and :func:`robust_train_pgd` (full-batch PGD
  adversarial training with :func:`landscape.attacks.perturb`), and the eps sweep
  :func:`linear_sweep` behind figure 1.

Derivation of eps* (no bias). ``L(w) = mean_i l(y_i w.x_i - eps ||w||_*)`` is convex
(a convex decreasing ``l`` of a concave margin). Its directional derivative at 0 along
``v`` is ``l'(0) (g.v - eps ||v||_*)`` with ``g = mean_i y_i x_i`` and ``l'(0) < 0``,
which is ``>= 0`` for all ``v`` iff ``eps >= sup_v g.v / ||v||_* = ||g||_p``. With a
bias, the optimal bias at ``w = 0`` is ``b* = log(pi_+ / pi_-)``, where
``sigma(-y_i b*)`` equals ``pi_-`` on positives and ``pi_+`` on negatives; the same
computation gives the derivative ``pi_+ pi_- (2 eps ||v||_* - (mu_+ - mu_-).v)``, so
``eps* = ||mu_+ - mu_-||_p / 2``.

Inputs are arrays of shape ``(n, d)`` (or tensors; images are flattened), labels +-1
for the binary functions. PGD through :func:`landscape.attacks.perturb` clamps inputs
to ``[0, 1]``; the theory has no box, so :func:`robust_train_pgd` maps the data
affinely into the unit box with room for the whole eps-ball (:func:`embed_unit_box`),
which makes the clamp inactive without changing the problem. For image data the
closed form therefore ignores the ``[0, 1]`` box: it upper-bounds the box-constrained
robust loss that attacks on images measure.

Order of the two thresholds (no bias): ``gamma <= eps*``, since a minimum over the
data is at most the mean, ``min_i y_i w.x_i <= w.g <= ||w||_{p*} ||g||_p``. Below gamma
the data stay robustly separable and the unpenalised logistic optimum is at infinity;
between gamma and eps* it is finite and nonzero; from eps* on it is ``w = 0``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy import optimize
from torch import Tensor, nn

from . import _utils
from .io import Result

__all__ = [
    "LinearFit",
    "LinearSweep",
    "MarginResult",
    "constant_threshold",
    "constant_threshold_multiclass",
    "dual_norm",
    "embed_unit_box",
    "in_version_space",
    "linear_sweep",
    "multiclass_robust_bound",
    "robust_loss",
    "robust_margin",
    "robust_margins",
    "robust_train_closed_form",
    "robust_train_pgd",
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


def robust_margins(w, b, x, y, *, eps: float, norm: str | float = "linf"):
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


def _loss_of_margin(m, loss: str):
    if isinstance(m, Tensor):
        return F.softplus(-m) if loss == "logistic" else torch.clamp(1 - m, min=0)
    return np.logaddexp(0.0, -m) if loss == "logistic" else np.maximum(0.0, 1.0 - m)


def robust_loss(
    w,
    b,
    x,
    y,
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
    if reduction == "mean":
        return vals.mean()
    if reduction == "sum":
        return vals.sum()
    if reduction == "none":
        return vals
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def worst_case_perturbation(w, x, y, *, eps: float, norm: str | float = "linf"):
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
    W,
    b,
    x,
    y,
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
    if reduction == "mean":
        return vals.mean()
    if reduction == "sum":
        return vals.sum()
    if reduction == "none":
        return vals
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


# --------------------------------------------------------------------------- version space


def in_version_space(w, b, x, y, eps: float, norm: str | float = "linf") -> bool:
    """Whether ``(w, b)`` classifies every point correctly under every eps-perturbation:
    ``y_i (w.x_i + b) - eps ||w||_{p*} > 0`` for all i.

    Example:
        >>> x, y = np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([1.0, -1.0])
        >>> in_version_space([1.0, 0.0], 0.0, x, y, 0.9), in_version_space([1.0, 0.0], 0.0, x, y, 1.0)
        (True, False)
    """
    m = robust_margins(
        np.asarray(w, dtype=np.float64), float(b), x, y, eps=eps, norm=norm
    )
    return bool(np.all(m > 0))


@dataclass(frozen=True)
class MarginResult(Result):
    """Robust max-margin ``gamma = max_{||w||_{p*} <= 1} min_i y_i (w.x_i + b)``.

    ``w`` attains it with ``||w||_{p*} = 1`` (when ``gamma > 0``); ``gamma = 0`` means
    the data are not strictly linearly separable (``V_0`` is empty).
    """

    gamma: float
    w: np.ndarray
    b: float
    norm: str
    bias: bool
    meta: dict = field(default_factory=dict)


def _margin_linf(z: np.ndarray, y: np.ndarray, bias: bool):
    """LP: max t s.t. z_i.(u - v) + y_i b >= t, sum(u + v) <= 1, u, v >= 0."""
    n, d = z.shape
    nb = int(bias)
    c = np.zeros(2 * d + nb + 1)
    c[-1] = -1.0
    rows = [-z, z]
    if bias:
        rows.append(-y[:, None])
    rows.append(np.ones((n, 1)))
    a = np.hstack(rows)
    norm_row = np.concatenate([np.ones(2 * d), np.zeros(nb + 1)])[None]
    # interior point (with crossover to a vertex) is ~7x faster than simplex on
    # dense problems such as n = 500, d = 784
    method = "highs-ipm" if n * d > 20_000 else "highs"
    res = optimize.linprog(
        c,
        A_ub=np.vstack([a, norm_row]),
        b_ub=np.concatenate([np.zeros(n), [1.0]]),
        bounds=[(0, None)] * (2 * d) + [(None, None)] * (nb + 1),
        method=method,
    )
    if res.status != 0:
        raise RuntimeError(f"robust_margin LP failed: {res.message}")
    w = res.x[:d] - res.x[d : 2 * d]
    b = float(res.x[2 * d]) if bias else 0.0
    return float(-res.fun), w, b


def _margin_l2(x: np.ndarray, y: np.ndarray, bias: bool):
    """Hard-margin SVM: min ||w||_2 s.t. y_i (w.x_i + b) >= 1; gamma = 1 / ||w||."""
    z = y[:, None] * x
    n, d = x.shape
    if not bias:
        # Least-distance programming via NNLS (Lawson & Hanson 1974, ch. 23): exact.
        e = np.vstack([z.T, np.ones((1, n))])
        f = np.zeros(d + 1)
        f[-1] = 1.0
        u, _ = optimize.nnls(e, f, maxiter=50 * (n + d))
        r = e @ u - f
        if abs(r[-1]) < 1e-12 or np.linalg.norm(r) < 1e-12:
            return 0.0, np.zeros(d), 0.0
        w = -r[:d] / r[-1]
        if (z @ w).min() < 1 - 1e-8:
            return 0.0, np.zeros(d), 0.0
        nw = np.linalg.norm(w)
        return float(1.0 / nw), w / nw, 0.0
    g1, w1, b1 = _margin_linf(z, y, True)  # separability check and feasible start
    if g1 <= 1e-12:
        return 0.0, np.zeros(d), 0.0
    v0 = np.concatenate([w1, [b1]]) / g1
    a = np.hstack([z, y[:, None]])
    res = optimize.minimize(
        lambda v: 0.5 * float(v[:d] @ v[:d]),
        v0,
        jac=lambda v: np.concatenate([v[:d], [0.0]]),
        constraints=[
            {"type": "ineq", "fun": lambda v: a @ v - 1.0, "jac": lambda v: a}
        ],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    v = res.x if res.success else v0
    nw = np.linalg.norm(v[:d])
    gamma = float((a @ v).min() / nw)
    return gamma, v[:d] / nw, float(v[d] / nw)


def robust_margin(
    x, y, *, norm: str | float = "linf", bias: bool = False
) -> MarginResult:
    """The robust max-margin gamma: the largest eps for which ``V_eps`` is nonempty.

    ``gamma = max_{||w||_{p*} <= 1} min_i y_i (w.x_i + b)`` where ``p*`` is the dual of
    the attack norm: for ``norm="linf"`` the weights are constrained in **L1** (a linear
    program, HiGHS); for ``norm="l2"`` in L2 (the hard-margin SVM, solved exactly by
    least-distance programming without bias and by SLSQP with a bias). Equivalently
    (no bias) gamma is the L_p distance from 0 to the convex hull of the ``y_i x_i``.

    Args:
        x: inputs (n, d); y: labels +-1.
        norm: attack norm ``"linf"`` or ``"l2"``.
        bias: allow a free bias ``b`` (not norm-constrained).

    Returns:
        :class:`MarginResult` with gamma (0 when not separable) and the maximiser.

    Example:
        >>> x, y = np.array([[2.0, 1.0], [-1.0, -3.0]]), np.array([1.0, -1.0])
        >>> round(robust_margin(x, y, norm="linf").gamma, 6)  # w = (2/3, 1/3)
        1.666667
    """
    norm = _norm(norm)
    x = _as_x(x)
    y = _as_pm1(y, x.shape[0])
    if bias:
        _both_classes(y)
    if norm == "linf":
        gamma, w, b = _margin_linf(y[:, None] * x, y, bias)
        if gamma <= 1e-12:
            gamma, w, b = 0.0, np.zeros(x.shape[1]), 0.0
    else:
        gamma, w, b = _margin_l2(x, y, bias)
    return MarginResult(
        gamma=max(float(gamma), 0.0),
        w=w,
        b=b,
        norm=norm,
        bias=bias,
        meta={"num_samples": x.shape[0], "dim": x.shape[1]},
    )


# --------------------------------------------------------------------------- thresholds


def constant_threshold(
    x, y, *, norm: str | float = "linf", bias: bool = False, loss: str = "logistic"
) -> float:
    """eps*: the smallest radius from which the robust optimum is ``w = 0``.

    Without bias (logistic or hinge, any class balance): ``eps* = ||mean_i y_i x_i||_p``,
    with ``p`` the attack norm (L-inf attack: the max-abs entry; L2 attack: L2). With a
    free bias (logistic): ``eps* = ||mu_+ - mu_-||_p / 2``, the class means' half-gap.
    An L2 weight penalty leaves eps* unchanged. See the module docstring for the proof.

    Example:
        >>> x, y = np.array([[1.0, 0.5], [-3.0, 0.5]]), np.array([1.0, -1.0])
        >>> constant_threshold(x, y, norm="linf"), constant_threshold(x, y, norm="linf", bias=True)
        (2.0, 2.0)
    """
    norm = _norm(norm)
    _check_loss(loss)
    x = _as_x(x)
    y = _as_pm1(y, x.shape[0])
    if not bias:
        return _primal_norm((y[:, None] * x).mean(0), norm)
    if loss != "logistic":
        raise ValueError(
            "with a bias eps* is derived for the logistic loss only; use bias=False "
            "for the hinge loss"
        )
    _both_classes(y)
    gap = x[y > 0].mean(0) - x[y < 0].mean(0)
    return 0.5 * _primal_norm(gap, norm)


def constant_threshold_multiclass(x, y, *, norm: str | float = "linf") -> float:
    """eps* for K-class softmax cross-entropy without bias (exact robust loss).

    By Danskin's theorem at ``W = 0`` (where every perturbation is worst), ``W = 0`` is
    optimal iff ``eps >= eps*_K = min_c max_k ||mu_k - c / pi_k||_p``, with class means
    ``mu_k`` and proportions ``pi_k``; for balanced classes, the radius of the smallest
    L_p ball enclosing the class means. Reduces to :func:`constant_threshold` for K = 2.

    Args:
        x: inputs (n, d); y: class indices (n,).

    Example:
        >>> x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 3.0]])
        >>> round(constant_threshold_multiclass(x, [0, 1, 2], norm="linf"), 6)
        1.5
    """
    norm = _norm(norm)
    x = _as_x(x)
    y = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y).astype(np.int64)
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError("need at least two classes")
    pi = np.array([(y == k).mean() for k in classes])
    mu = np.stack([x[y == k].mean(0) for k in classes])
    kk, d = mu.shape
    if norm == "linf":
        # min t s.t. -t <= mu_kj - c_j / pi_k <= t
        c = np.zeros(d + 1)
        c[-1] = 1.0
        rows, rhs = [], []
        for k in range(kk):
            a = np.hstack([-np.eye(d) / pi[k], -np.ones((d, 1))])
            rows += [a, np.hstack([np.eye(d) / pi[k], -np.ones((d, 1))])]
            rhs += [-mu[k], mu[k]]
        res = optimize.linprog(
            c,
            A_ub=np.vstack(rows),
            b_ub=np.concatenate(rhs),
            bounds=[(None, None)] * (d + 1),
            method="highs",
        )
        if res.status != 0:
            raise RuntimeError(f"threshold LP failed: {res.message}")
        return float(res.fun)

    def worst(cc):
        return np.linalg.norm(mu - cc[None] / pi[:, None], axis=1).max()

    # min t s.t. ||mu_k - c / pi_k||^2 <= t^2 (smooth epigraph form)
    c0 = np.concatenate([(pi[:, None] * mu).sum(0) / kk, [0.0]])
    c0[-1] = worst(c0[:d]) ** 2
    cons = [
        {
            "type": "ineq",
            "fun": (lambda v, k=k: v[-1] - np.sum((mu[k] - v[:d] / pi[k]) ** 2)),
        }
        for k in range(kk)
    ]
    res = optimize.minimize(
        lambda v: v[-1],
        c0,
        constraints=cons,
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    return float(worst(res.x[:d]))


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class LinearFit(Result):
    """A robustly trained binary linear model ``f(x) = w.x + b``."""

    w: np.ndarray
    b: float
    eps: float
    norm: str
    loss: str
    l2: float
    robust_loss: float  # mean robust loss (without the penalty)
    objective: float  # robust loss + l2 / 2 ||w||^2
    method: str  # "closed_form" or "pgd"
    converged: bool = True
    num_iters: int = 0
    meta: dict = field(default_factory=dict)


def _objective_linf(v, x, y, eps, l2, d, bias):
    u, s = v[:d], v[d : 2 * d]
    w = u - s
    b = v[2 * d] if bias else 0.0
    m = y * (x @ w + b) - eps * (u.sum() + s.sum())
    val = np.logaddexp(0.0, -m).mean() + 0.5 * l2 * (w @ w)
    gm = -0.5 * (1 - np.tanh(0.5 * m)) / len(m)  # d/dm softplus(-m) / n = -sigma(-m)/n
    gw = x.T @ (gm * y) + l2 * w
    pen = -eps * gm.sum()
    grad = np.concatenate([gw + pen, -gw + pen] + ([[gm @ y]] if bias else []))
    return val, grad


def _objective_l2(v, x, y, eps, l2, d, bias):
    w = v[:d]
    b = v[d] if bias else 0.0
    nw = np.sqrt(w @ w)
    m = y * (x @ w + b) - eps * nw
    val = np.logaddexp(0.0, -m).mean() + 0.5 * l2 * (w @ w)
    gm = -0.5 * (1 - np.tanh(0.5 * m)) / len(m)
    gw = x.T @ (gm * y) + l2 * w - eps * gm.sum() * (w / nw if nw > 0 else 0.0 * w)
    return val, np.concatenate([gw] + ([[gm @ y]] if bias else []))


def _zero_solution(y: np.ndarray, bias: bool) -> float:
    if not bias:
        return 0.0
    p = float((y > 0).mean())
    return float(np.log(p / (1 - p)))


def robust_train_closed_form(
    x,
    y,
    *,
    eps: float,
    norm: str | float = "linf",
    loss: str = "logistic",
    bias: bool = False,
    l2: float = 0.0,
    tol: float = 1e-12,
    max_iter: int = 20000,
    exact_zero: bool = True,
) -> LinearFit:
    """Minimise the exact robust logistic loss ``mean_i l(y_i (w.x_i + b) - eps ||w||_{p*})
    + l2 / 2 ||w||^2`` (convex) to high precision.

    L-inf attacks (L1 penalty) use the split ``w = u - v``, ``u, v >= 0`` so the
    objective is smooth under bound constraints (L-BFGS-B); L2 attacks use L-BFGS on
    the objective, which is smooth away from ``w = 0``. With ``exact_zero`` the
    first-order condition at ``w = 0`` is checked first (``eps >= eps*``, see
    :func:`constant_threshold`) and the exact constant classifier is returned.

    Args:
        x: inputs (n, d); y: labels +-1.
        eps: attack radius (>= 0); norm: ``"linf"`` or ``"l2"``.
        loss: only ``"logistic"`` is trained here (the hinge loss is nonsmooth).
        bias: learn a free bias.
        l2: weight penalty (``> 0`` keeps the optimum finite when the data are
            eps-robustly separable, ``eps < gamma``).
        tol: gradient tolerance of the solver.
        max_iter: solver iteration cap.
        exact_zero: return ``w = 0`` exactly when it is optimal.

    Returns:
        :class:`LinearFit`.

    Example:
        >>> x, y = np.array([[1.0], [-1.0], [0.5]]), np.array([1.0, -1.0, -1.0])
        >>> eps_star = constant_threshold(x, y, norm="linf")
        >>> fit = robust_train_closed_form(x, y, eps=1.01 * eps_star, norm="linf")
        >>> fit.w.tolist(), round(fit.robust_loss, 6)
        ([0.0], 0.693147)
    """
    eps = _utils.check_eps(eps)
    norm = _norm(norm)
    if loss != "logistic":
        raise ValueError(
            f"robust_train_closed_form trains the logistic loss only, got {loss!r}"
        )
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    x = _as_x(x)
    y = _as_pm1(y, x.shape[0])
    if bias:
        _both_classes(y)
    n, d = x.shape
    info = {"num_samples": n, "dim": d}
    if exact_zero and eps >= constant_threshold(x, y, norm=norm, bias=bias):
        w, b = np.zeros(d), _zero_solution(y, bias)
        rl = float(robust_loss(w, b, x, y, eps=eps, norm=norm))
        return LinearFit(
            w, b, eps, norm, loss, float(l2), rl, rl, "closed_form", True, 0, info
        )
    g = (y[:, None] * x).mean(0)
    w0 = g / (np.linalg.norm(g) + 1e-300) * 1e-2
    opts = {"maxiter": max_iter, "gtol": tol, "ftol": 1e-15, "maxcor": 30}
    if norm == "linf":
        v0 = np.concatenate(
            [np.maximum(w0, 0), np.maximum(-w0, 0)] + ([[0.0]] if bias else [])
        )
        bounds = [(0, None)] * (2 * d) + ([(None, None)] if bias else [])
        res = optimize.minimize(
            _objective_linf,
            v0,
            args=(x, y, eps, l2, d, bias),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options=opts,
        )
        w = res.x[:d] - res.x[d : 2 * d]
        b = float(res.x[2 * d]) if bias else 0.0
    else:
        v0 = np.concatenate([w0] + ([[0.0]] if bias else []))
        res = optimize.minimize(
            _objective_l2,
            v0,
            args=(x, y, eps, l2, d, bias),
            jac=True,
            method="L-BFGS-B",
            options=opts,
        )
        w = res.x[:d]
        b = float(res.x[d]) if bias else 0.0
    rl = float(robust_loss(w, b, x, y, eps=eps, norm=norm))
    obj = rl + 0.5 * l2 * float(w @ w)
    if l2 == 0 and rl < 1e-6:
        warnings.warn(
            f"the robust loss went to {rl:.2e}: the data look eps-robustly separable "
            "(eps < gamma), where the unpenalised optimum is at infinity; pass l2 > 0",
            stacklevel=2,
        )
    return LinearFit(
        w,
        b,
        eps,
        norm,
        loss,
        float(l2),
        rl,
        obj,
        "closed_form",
        bool(res.success),
        int(res.nit),
        info,
    )


def embed_unit_box(x, eps: float) -> tuple[np.ndarray, float, float]:
    """Affine map ``u = (x - lo) / scale`` of the data into [0, 1] leaving room for the
    whole eps-ball around every point, so ``[0, 1]`` clamping in PGD never binds.

    A scalar scale maps the L_p ball of radius eps to the ball of radius
    ``eps / scale``; a model ``w.(lo + scale u) + b`` on ``u`` is the same classifier.

    Returns:
        ``(u, lo, scale)``.

    Example:
        >>> u, lo, s = embed_unit_box(np.array([[-2.0], [3.0]]), 0.5)
        >>> np.round(u.ravel(), 4).tolist(), lo, s
        ([0.0833, 0.9167], -2.5, 6.0)
    """
    x = _as_x(x)
    lo = float(x.min()) - eps
    scale = float(x.max()) + eps - lo
    if scale <= 0:
        scale = 1.0
    return (x - lo) / scale, lo, scale


class _Margin(nn.Module):
    """``f(u) = w.(lo + scale u) + b`` on unit-box inputs (one output: the score)."""

    def __init__(self, w: Tensor, b: Tensor, lo: float, scale: float):
        super().__init__()
        self.w, self.b = nn.Parameter(w), nn.Parameter(b)
        self.lo, self.scale = lo, scale

    def forward(self, u: Tensor) -> Tensor:
        return (self.lo + self.scale * u.flatten(1)) @ self.w + self.b


def robust_train_pgd(
    x,
    y,
    *,
    eps: float,
    norm: str | float = "linf",
    bias: bool = False,
    l2: float = 0.0,
    steps: int = 10,
    alpha: float | None = None,
    lr: float | None = None,
    num_iters: int = 500,
    init: np.ndarray | None = None,
    optimizer: str = "sgd",
    generator: torch.Generator | None = None,
    trainer: bool = False,
    progressbar: bool = False,
) -> LinearFit:
    """Full-batch PGD adversarial training of the same binary logistic model.

    Each iteration attacks every training point with :func:`landscape.attacks.perturb`
    (``steps`` PGD steps, random start) at the current weights and takes a gradient
    step (SGD with momentum 0.9 or Adam, cosine-decayed learning rate) on the mean logistic
    loss at the adversarial points plus ``l2 / 2 ||w||^2``. A check of the closed form
    (:func:`robust_train_closed_form`) by the method used for deep networks.

    Args:
        x, y, eps, norm, bias, l2: as in :func:`robust_train_closed_form`.
        steps: PGD steps per iteration; alpha: PGD step (default ``2.5 eps / steps``).
        lr: learning rate (SGD default ``1 / L`` with ``L`` the smoothness bound
            ``(sigma_max(X) / sqrt(n) + eps r)^2 / 4 + l2``, ``r = sqrt(d)`` for L-inf
            (the sign vector of the attack); Adam default ``0.05 / max|x|``).
        num_iters: training iterations.
        init: initial ``w`` (default zeros).
        optimizer: ``"sgd"`` (heavy ball) or ``"adam"``. The attack's ``sign(w)``
            makes the objective nonsmooth along a dense sign vector, which caps the
            stable SGD step at about ``4 / (eps^2 d)``; Adam's per-coordinate steps
            converge far faster in high dimension (figure 1 uses Adam).
        generator: for the PGD random starts.
        trainer: train through :func:`landscape.train.adversarial_train` (the trainer
            used for deep networks) on ``models.build("linear", num_classes=2)``, whose
            two logits give the logistic loss of ``w = W_1 - W_0``; full batch, SGD
            with momentum 0.9, cosine lr, weight decay ``2 l2`` (``||W||^2 =
            ||w||^2 / 2`` at the symmetric optimum), in float32. Otherwise a minimal
            float64 loop with :func:`landscape.attacks.perturb` (the same algorithm).
        progressbar: show a tqdm bar.

    Returns:
        :class:`LinearFit` with ``method="pgd"`` (``"pgd-trainer"``); its ``robust_loss`` is the exact
        (closed-form) robust loss of the trained weights.
    """
    from tqdm.auto import tqdm

    from .attacks import perturb

    eps = _utils.check_eps(eps)
    norm = _norm(norm)
    x = _as_x(x)
    y = _as_pm1(y, x.shape[0])
    n, d = x.shape
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    gen, seed = _utils.make_generator(generator)
    u, lo, scale = embed_unit_box(x, eps)
    if lr is None and optimizer == "adam":
        lr = 0.05 / max(float(np.abs(x).max()), 1e-12)
    if lr is None:
        xe = np.hstack([x, np.ones((n, 1))]) if bias else x
        rad = eps * (np.sqrt(d) if norm == "linf" else 1.0)
        smooth = (np.linalg.norm(xe, 2) / np.sqrt(n) + rad) ** 2 / 4 + l2
        lr = 1.0 / smooth
    if trainer:
        return _train_with_trainer(
            x,
            y,
            u,
            lo,
            scale,
            eps=eps,
            norm=norm,
            bias=bias,
            l2=l2,
            steps=steps,
            alpha=alpha,
            lr=lr,
            num_iters=num_iters,
            init=init,
            seed=seed,
            optimizer=optimizer,
            progressbar=progressbar,
        )
    ut = torch.as_tensor(u)
    yt = torch.as_tensor(y)
    w0 = (
        torch.zeros(d, dtype=torch.float64)
        if init is None
        else torch.as_tensor(np.asarray(init, dtype=np.float64).reshape(-1).copy())
    )
    model = _Margin(w0.clone(), torch.zeros((), dtype=torch.float64), lo, scale)
    if not bias:
        model.b.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, num_iters)

    def loss_fn(out: Tensor, t: Tensor) -> Tensor:
        return F.softplus(-t * out).sum()

    for _ in tqdm(range(num_iters), desc="robust_train_pgd", disable=not progressbar):
        xa = perturb(
            model,
            ut,
            yt,
            eps=eps / scale,
            norm=norm,
            alpha=None if alpha is None else alpha / scale,
            steps=steps,
            loss_fn=loss_fn,
            generator=gen,
        )
        opt.zero_grad()
        obj = F.softplus(-yt * model(xa)).mean() + 0.5 * l2 * (model.w @ model.w)
        obj.backward()
        opt.step()
        sched.step()
    w = model.w.detach().numpy().copy()
    b = float(model.b.detach()) if bias else 0.0
    rl = float(robust_loss(w, b, x, y, eps=eps, norm=norm))
    return LinearFit(
        w,
        b,
        eps,
        norm,
        "logistic",
        float(l2),
        rl,
        rl + 0.5 * l2 * float(w @ w),
        "pgd",
        True,
        num_iters,
        {"num_samples": n, "dim": d, "seed": seed, "steps": steps, "lr": lr},
    )


def _train_with_trainer(
    x,
    y,
    u,
    lo,
    scale,
    *,
    eps,
    norm,
    bias,
    l2,
    steps,
    alpha,
    lr,
    num_iters,
    init,
    seed,
    optimizer,
    progressbar,
) -> LinearFit:
    from . import models, train

    n, d = x.shape
    # Normalize((u - mean) / std) with mean = -lo / scale, std = 1 / scale gives back x
    model = models.build(
        "linear", num_classes=2, in_shape=(d,), mean=-lo / scale, std=1.0 / scale
    )
    lin = [m for m in model.modules() if isinstance(m, nn.Linear)][0]
    w0 = np.zeros(d) if init is None else np.asarray(init, dtype=np.float64).reshape(-1)
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(np.stack([-w0 / 2, w0 / 2])))
        lin.bias.zero_()
    if not bias:
        lin.bias.requires_grad_(False)
    config = train.TrainConfig(
        epochs=num_iters,
        batch_size=n,
        optimizer=optimizer,
        lr=lr / 2 if optimizer == "sgd" else lr,
        momentum=0.9,
        weight_decay=2 * l2,
        eps=eps / scale,
        norm=norm,
        lr_schedule="cosine",
        schedule_update="iteration",
        attack="pgd",
        steps=steps,
        alpha=None if alpha is None else alpha / scale,
        shuffle=False,
        eval_num=0,
        co_check_num=0,
        seed=seed,
        amp="off",
        channels_last=False,
    )
    data = (
        torch.as_tensor(u, dtype=torch.float32),
        torch.as_tensor((y > 0).astype(np.int64)),
    )
    train.adversarial_train(model, data, config, progressbar=progressbar)
    wt = lin.weight.detach().double().numpy()
    w = wt[1] - wt[0]
    b = float((lin.bias[1] - lin.bias[0]).detach()) if bias else 0.0
    rl = float(robust_loss(w, b, x, y, eps=eps, norm=norm))
    return LinearFit(
        w,
        b,
        eps,
        norm,
        "logistic",
        float(l2),
        rl,
        rl + 0.5 * l2 * float(w @ w),
        "pgd-trainer",
        True,
        num_iters,
        {"num_samples": n, "dim": d, "seed": seed, "steps": steps, "lr": lr},
    )


# --------------------------------------------------------------------------- sweep


@dataclass(frozen=True)
class LinearSweep(Result):
    """Closed-form (and optionally PGD) robust training across eps (figure 1).

    Arrays indexed like ``eps`` (closed form) or ``pgd_eps`` (PGD points). Errors are
    fractions; ``robust_*`` errors use the exact worst case (``eps`` of the row); a zero
    score (the constant classifier ``w = 0`` without bias) counts as half an error.
    ``dist_init`` is ``||w - w_init||_2`` with the common initialisation ``w_init``.
    """

    eps: np.ndarray
    w_norm: np.ndarray  # ||w||_2
    w_dual_norm: np.ndarray  # ||w||_{p*}
    clean_error: np.ndarray
    robust_error: np.ndarray
    robust_loss: np.ndarray
    dist_init: np.ndarray
    test_clean_error: np.ndarray
    test_robust_error: np.ndarray
    eps_star: float
    gamma: float
    norm: str
    bias: bool
    l2: float
    majority_error: float
    w_init: np.ndarray
    pgd_eps: np.ndarray
    pgd_w_norm: np.ndarray
    pgd_clean_error: np.ndarray
    pgd_robust_error: np.ndarray
    pgd_robust_loss: np.ndarray
    pgd_dist_init: np.ndarray
    pgd_cosine: np.ndarray  # cosine between PGD and closed-form w at the same eps
    label: str = ""
    meta: dict = field(default_factory=dict)


def _errors(w, b, x, y, eps, norm):
    if x is None:
        return np.nan, np.nan
    return _error_rate(y * (x @ w + b)), _error_rate(
        robust_margins(w, b, x, y, eps=eps, norm=norm)
    )


def _error_rate(m: np.ndarray) -> float:
    """Fraction of negative margins; a zero margin (a tie, e.g. ``w = 0, b = 0``) is a
    coin flip and counts as half an error."""
    return float(np.mean(m < 0) + 0.5 * np.mean(m == 0))


def linear_sweep(
    x,
    y,
    *,
    norm: str | float = "linf",
    eps_rel=None,
    bias: bool = False,
    l2: float = 1e-4,
    x_test=None,
    y_test=None,
    pgd_eps_rel=(),
    pgd_kw: dict | None = None,
    generator: torch.Generator | None = None,
    label: str = "",
    progressbar: bool = False,
) -> LinearSweep:
    """Robust linear training across ``eps = eps_rel * eps*`` (closed form, plus PGD
    adversarial training at ``pgd_eps_rel``).

    Args:
        x, y: training data (labels +-1).
        norm: attack norm.
        eps_rel: grid of ``eps / eps*`` (default 16 points in [0, 1.5]).
        bias, l2: as in :func:`robust_train_closed_form` (``l2 > 0`` keeps ``||w||``
            finite below gamma; it does not move eps*).
        x_test, y_test: optional held-out data for test errors.
        pgd_eps_rel: ``eps / eps*`` values also trained by :func:`robust_train_pgd`.
        pgd_kw: extra keyword arguments for :func:`robust_train_pgd`.
        generator: draws the common initialisation ``w_init ~ U(-1/sqrt(d), 1/sqrt(d))``
            (the PyTorch default for ``nn.Linear``) and the PGD random starts.
        label: a name for plots.
        progressbar: show a tqdm bar.

    Returns:
        :class:`LinearSweep`.
    """
    from tqdm.auto import tqdm

    norm = _norm(norm)
    x = _as_x(x)
    y = _as_pm1(y, x.shape[0])
    if x_test is not None:
        x_test = _as_x(x_test)
        y_test = _as_pm1(y_test, x_test.shape[0])
    eps_rel = np.linspace(0, 1.5, 16) if eps_rel is None else np.asarray(eps_rel, float)
    if np.any(eps_rel < 0):
        raise ValueError("eps_rel must be >= 0")
    gen, seed = _utils.make_generator(generator)
    d = x.shape[1]
    w_init = (
        (torch.rand(d, generator=gen, dtype=torch.float64) * 2 - 1) / np.sqrt(d)
    ).numpy()
    eps_star = constant_threshold(x, y, norm=norm, bias=bias)
    gamma = robust_margin(x, y, norm=norm, bias=bias).gamma
    p = float((y > 0).mean())
    rows = []
    fits = {}
    for r in tqdm(eps_rel, desc="linear_sweep", disable=not progressbar):
        eps = float(r * eps_star)
        fit = robust_train_closed_form(x, y, eps=eps, norm=norm, bias=bias, l2=l2)
        fits[float(r)] = fit
        ce, re = _errors(fit.w, fit.b, x, y, eps, norm)
        tce, tre = _errors(fit.w, fit.b, x_test, y_test, eps, norm)
        rows.append(
            (
                np.linalg.norm(fit.w),
                dual_norm(fit.w, norm),
                ce,
                re,
                fit.robust_loss,
                np.linalg.norm(fit.w - w_init),
                tce,
                tre,
            )
        )
    cols = np.array(rows, dtype=float).reshape(len(eps_rel), 8).T
    prow = []
    for r in np.asarray(pgd_eps_rel, float):
        eps = float(r * eps_star)
        fit = robust_train_pgd(
            x,
            y,
            eps=eps,
            norm=norm,
            bias=bias,
            l2=l2,
            init=w_init,
            generator=gen,
            **(pgd_kw or {}),
        )
        ref = fits.get(float(r)) or robust_train_closed_form(
            x, y, eps=eps, norm=norm, bias=bias, l2=l2
        )
        na, nb = np.linalg.norm(fit.w), np.linalg.norm(ref.w)
        cos = float(fit.w @ ref.w / (na * nb)) if na > 0 and nb > 0 else np.nan
        ce, re = _errors(fit.w, fit.b, x, y, eps, norm)
        prow.append(
            (eps, na, ce, re, fit.robust_loss, np.linalg.norm(fit.w - w_init), cos)
        )
    pc = np.array(prow, dtype=float).reshape(len(prow), 7).T
    return LinearSweep(
        eps=eps_rel * eps_star,
        w_norm=cols[0],
        w_dual_norm=cols[1],
        clean_error=cols[2],
        robust_error=cols[3],
        robust_loss=cols[4],
        dist_init=cols[5],
        test_clean_error=cols[6],
        test_robust_error=cols[7],
        eps_star=float(eps_star),
        gamma=float(gamma),
        norm=norm,
        bias=bias,
        l2=float(l2),
        majority_error=min(p, 1 - p),
        w_init=w_init,
        pgd_eps=pc[0],
        pgd_w_norm=pc[1],
        pgd_clean_error=pc[2],
        pgd_robust_error=pc[3],
        pgd_robust_loss=pc[4],
        pgd_dist_init=pc[5],
        pgd_cosine=pc[6],
        label=label,
        meta={
            "seed": seed,
            "num_samples": x.shape[0],
            "dim": d,
            "pgd_kw": dict(pgd_kw or {}),
        },
    )

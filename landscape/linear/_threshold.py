"""The constant-classifier threshold eps* (Liu et al., 2020, §3).

For the robust logistic (or hinge) loss without bias, ``w = 0`` is optimal iff
``eps >= eps* = ||mean_i y_i x_i||_p`` (the perturbation norm itself); with a free bias
(logistic), ``eps* = ||mu_+ - mu_-||_p / 2`` whatever the class balance
(:func:`constant_threshold`). Beyond eps* the optimum is ``w = 0`` exactly and the
robust loss is ``log 2`` (no bias) or the binary entropy of the class proportions
(bias). An L2 penalty does not move eps*. For K classes (no bias)
:func:`constant_threshold_multiclass` gives ``eps*_K = min_c max_k ||mu_k - c / pi_k||_p``
(the radius of the smallest L_p ball enclosing the class means when classes are
balanced).

Derivation of eps* (no bias). ``L(w) = mean_i l(y_i w.x_i - eps ||w||_*)`` is convex
(a convex decreasing ``l`` of a concave margin). Its directional derivative at 0 along
``v`` is ``l'(0) (g.v - eps ||v||_*)`` with ``g = mean_i y_i x_i`` and ``l'(0) < 0``,
which is ``>= 0`` for all ``v`` iff ``eps >= sup_v g.v / ||v||_* = ||g||_p``. With a
bias, the optimal bias at ``w = 0`` is ``b* = log(pi_+ / pi_-)``, where
``sigma(-y_i b*)`` equals ``pi_-`` on positives and ``pi_+`` on negatives; the same
computation gives the derivative ``pi_+ pi_- (2 eps ||v||_* - (mu_+ - mu_-).v)``, so
``eps* = ||mu_+ - mu_-||_p / 2``.

Order of the two thresholds (no bias): ``gamma <= eps*``, since a minimum over the
data is at most the mean, ``min_i y_i w.x_i <= w.g <= ||w||_{p*} ||g||_p``. Below gamma
the data stay robustly separable and the unpenalised logistic optimum is at infinity;
between gamma and eps* it is finite and nonzero; from eps* on it is ``w = 0``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize
from torch import Tensor

from ._closed_form import (
    _as_pm1,
    _as_x,
    _both_classes,
    _check_loss,
    _norm,
    _primal_norm,
)

__all__ = ["constant_threshold", "constant_threshold_multiclass"]


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


def constant_threshold_multiclass(
    x: ArrayLike | Tensor, y: ArrayLike | Tensor, *, norm: str | float = "linf"
) -> float:
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

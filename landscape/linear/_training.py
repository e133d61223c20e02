"""Closed-form robust training of binary linear models and the :class:`LinearFit`
result shared with PGD training (:mod:`._pgd`).

The exact robust logistic loss ``mean_i l(y_i (w.x_i + b) - eps ||w||_{p*})`` is convex;
:func:`robust_train_closed_form` solves it to high precision by L-BFGS-B and returns the
constant classifier exactly from eps* on (:func:`constant_threshold`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from .. import _utils
from ..io import Result
from ._closed_form import _as_pm1, _as_x, _both_classes, _norm, robust_loss
from ._threshold import constant_threshold

__all__ = ["LinearFit", "robust_train_closed_form"]


@dataclass(frozen=True)
class LinearFit(Result):
    """A robustly trained binary linear model ``f(x) = w.x + b``."""

    SHAPES = {"w": "D"}

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
    num_iters: int = 0  # iterations run (the solver's count; PGD: its max_iter)
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
    if norm == "linf":  # w = w+ - w-, both >= 0: a smooth bound-constrained problem
        objective, parts = _objective_linf, [np.maximum(w0, 0), np.maximum(-w0, 0)]
        bounds = [(0, None)] * (2 * d) + ([(None, None)] if bias else [])
    else:
        objective, parts, bounds = _objective_l2, [w0], None
    res = optimize.minimize(
        objective,
        np.concatenate(parts + ([[0.0]] if bias else [])),
        args=(x, y, eps, l2, d, bias),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options=opts,
    )
    w = res.x[:d] - res.x[d : 2 * d] if norm == "linf" else res.x[:d]
    b = float(res.x[-1]) if bias else 0.0
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

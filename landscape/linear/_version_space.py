"""The eps-version space and the robust max-margin gamma (Liu et al., 2020, §3).

``V_eps = {(w, b): y_i (w.x_i + b) > eps ||w||_{p*} for all i}`` (:func:`in_version_space`)
is a cone, nested (``V_eps2 ⊂ V_eps1`` for ``eps1 <= eps2``) and nonempty exactly when
``eps < gamma``, the robust max-margin :func:`robust_margin`
``gamma = max_{||w||_{p*} <= 1} min_i y_i (w.x_i + b)``. The constraint is on the
**dual** norm of ``w``: an L1-ball linear program for L-inf attacks, the L2 hard-margin
SVM for L2 attacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from ..io import Result
from ._closed_form import _as_pm1, _as_x, _both_classes, _norm, robust_margins

__all__ = ["MarginResult", "in_version_space", "robust_margin"]


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

    SHAPES = {"w": "D"}

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

"""Operator-level curvature algorithms: eigenpairs, trace and diagonal estimates.

Each function takes any symmetric linear operator ``A`` that
:func:`~landscape.hessian.as_operator` accepts (a square tensor, a scipy
``LinearOperator``, an object with ``matmat`` / ``matvec`` / ``@``, or a
:class:`~landscape.hessian.HessianOperator`); the model-level
:func:`~landscape.hessian.top_eigenvalues` and :func:`~landscape.hessian.trace` are
these functions on the Hessian of a model's loss.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import _utils
from . import _trace
from ._compat import renamed
from ._lanczos import lanczos_eigs, power_iteration
from ._linop import as_operator
from ._results import Eigenpairs, TraceEstimate

__all__ = [
    "eigsh",
    "hutchinson",
    "hutchpp",
    "xtrace",
    "xdiag",
    "estimate_trace",
    "TRACE_METHODS",
]

TRACE_METHODS = ("hutchinson", "hutch++", "xtrace")


def _vectors(op: Any, vecs: Tensor) -> dict[str, np.ndarray]:
    vecs = vecs.detach()
    if not hasattr(op, "to_dict"):
        return {"flat": vecs.cpu().numpy()}
    parts = [op.to_dict(v) for v in vecs]
    return {n: torch.stack([p[n] for p in parts]).cpu().numpy() for n in op.names}


def eigsh(
    A: Any,
    num: int = 1,
    *,
    which: str = "LA",
    method: str = "lanczos",
    tol: float | None = None,
    max_iter: int | None = None,
    return_vectors: bool = True,
    generator: torch.Generator | None = None,
    progressbar: bool = False,
    k: int | None = None,
) -> Eigenpairs:
    """Extreme eigenpairs of a symmetric operator (Lanczos or power iteration).

    Lanczos runs with full reorthogonalisation until the Ritz residuals
    ``||A v - theta v||`` of the ``num`` wanted pairs fall below ``tol * max|theta|``
    (eigenvalue errors are then of order ``residual**2 / gap``), restarting outside an
    exhausted Krylov space so that repeated eigenvalues are found. Power iteration
    with deflation is the original code's / pyhessian's method (largest *magnitude*
    first; ``which`` is ignored).

    Args:
        A: the operator (see the module docstring).
        num: number of eigenpairs (``k`` is its deprecated old name).
        which: ``"LA"`` largest, ``"SA"`` smallest, ``"LM"`` largest magnitude.
        method: ``"lanczos"`` or ``"power"``.
        tol: Lanczos residual tolerance (default 1e-6) or power-iteration relative
            change (default 1e-3).
        max_iter: Lanczos products (default ``max(100, 5 num)``) or power iterations
            per eigenvalue (default 100).
        return_vectors: keep the eigenvectors: keyed like the model's parameters for
            a :class:`HessianOperator`, else one entry ``"flat"`` of shape ``(num, n)``.
        generator: start vectors; its seed is recorded in ``meta``.
        progressbar: show a tqdm bar.
        k: deprecated old name of ``num``.

    Returns:
        :class:`Eigenpairs`.

    Raises:
        ValueError: bad ``num``, ``which``, ``method`` or ``tol``.

    Example:
        >>> A = torch.diag(torch.arange(1.0, 31.0, dtype=torch.float64))
        >>> eig = eigsh(A, num=3, tol=1e-10)
        >>> np.round(eig.eigenvalues, 8).tolist()
        [30.0, 29.0, 28.0]
    """
    num = renamed("eigsh", "num", num, "k", k)
    if method not in ("lanczos", "power"):
        raise ValueError(f"method must be 'lanczos' or 'power', got {method!r}")
    op = as_operator(A)
    gen, seed = _utils.make_generator(generator)
    meta = {"num": num, "which": which, "method": method, "seed": seed, "tol": tol}
    meta["max_iter"] = max_iter
    if method == "lanczos":
        vals, vecs, res, hvps, conv = lanczos_eigs(
            op,
            num,
            which=which,
            tol=1e-6 if tol is None else tol,
            max_iter=max_iter,
            generator=gen,
            keep_vectors=return_vectors,
            progressbar=progressbar,
        )
    else:
        vals, vecs, res, hvps, conv = power_iteration(
            op,
            num,
            tol=1e-3 if tol is None else tol,
            max_iter=100 if max_iter is None else max_iter,
            generator=gen,
            progressbar=progressbar,
        )
    if not conv:
        warnings.warn(
            f"eigsh ({method}) did not converge to tol in max_iter iterations "
            f"(residuals {np.array2string(np.asarray(res), precision=2)}); "
            "raise max_iter or tol",
            stacklevel=2,
        )
    keep = return_vectors and vecs is not None
    return Eigenpairs(
        np.asarray(vals, dtype=np.float64),
        _vectors(op, vecs) if keep else {},
        np.asarray(res, dtype=np.float64),
        int(hvps),
        bool(conv),
        method,
        meta,
    )


def _estimate(
    method: str, est: float, se: float, samples, num: int, confidence: float, meta
) -> TraceEstimate:
    z = _trace.normal_quantile(confidence)
    return TraceEstimate(
        est,
        se,
        est - z * se,
        est + z * se,
        confidence,
        np.asarray(samples),
        int(num),
        method,
        meta,
    )


def estimate_trace(
    A: Any,
    num_matvecs: int,
    *,
    method: str = "hutchinson",
    distribution: str = "rademacher",
    tol: float | None = None,
    confidence: float = 0.95,
    generator: torch.Generator | None = None,
    progressbar: bool = False,
) -> TraceEstimate:
    """Trace of a square operator from ``num_matvecs`` products.

    Args:
        A: the operator (see the module docstring).
        num_matvecs: product budget (XTrace uses the largest even number below).
        method: ``"hutchinson"`` (Hutchinson 1990), ``"hutch++"`` (Meyer et al. 2021)
            or ``"xtrace"`` (Epperly, Tropp & Webber 2024; the lowest error when a few
            eigenvalues dominate).
        distribution: probes, ``"rademacher"`` or ``"gaussian"``.
        tol: Hutchinson only: stop once ``std_error <= tol * |estimate|``.
        confidence: level of ``[ci_low, ci_high]`` (normal approximation).
        generator: probes; seed recorded in ``meta``. progressbar: Hutchinson's bar.

    Returns:
        :class:`TraceEstimate` (``samples``: Hutchinson's probe terms, Hutch++'s
        residual terms, XTrace's leave-one-out estimates).
    """
    if method not in TRACE_METHODS:
        raise ValueError(f"method must be one of {TRACE_METHODS}, got {method!r}")
    _trace.normal_quantile(confidence)  # validate early
    op = as_operator(A)
    gen, seed = _utils.make_generator(generator)
    meta: dict = {"num_matvecs": num_matvecs, "method": method, "seed": seed}
    meta.update(distribution=distribution, tol=tol)
    before = getattr(op, "num_hvps", 0)
    if method == "hutchinson":
        est, se, s = _trace.hutchinson(
            op,
            num_matvecs,
            generator=gen,
            distribution=distribution,
            tol=tol,
            progressbar=progressbar,
        )
    elif method == "hutch++":
        est, se, s, low = _trace.hutchpp(
            op, num_matvecs, generator=gen, distribution=distribution
        )
        meta["low_rank_part"] = low
    else:
        est, se, s = _trace.xtrace(
            op, num_matvecs, generator=gen, distribution=distribution
        )
    used = getattr(op, "num_hvps", 0) - before
    return _estimate(method, est, se, s, used, confidence, meta)


def hutchinson(A: Any, num_matvecs: int, **kw: Any) -> TraceEstimate:
    """Hutchinson's trace estimate of ``A`` (:func:`estimate_trace` options).

    Example:
        >>> A = torch.diag(torch.arange(1.0, 5.0, dtype=torch.float64))
        >>> hutchinson(A, 4, generator=torch.Generator().manual_seed(0)).estimate
        10.0
    """
    return estimate_trace(A, num_matvecs, method="hutchinson", **kw)


def hutchpp(A: Any, num_matvecs: int, **kw: Any) -> TraceEstimate:
    """Hutch++ trace estimate of ``A`` (:func:`estimate_trace` options)."""
    return estimate_trace(A, num_matvecs, method="hutch++", **kw)


def xtrace(A: Any, num_matvecs: int, **kw: Any) -> TraceEstimate:
    """XTrace trace estimate of ``A`` (:func:`estimate_trace` options).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> U = torch.linalg.qr(torch.randn(50, 3, generator=g, dtype=torch.float64))[0]
        >>> A = U @ torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=U.dtype)) @ U.T
        >>> round(xtrace(A, 10, generator=g).estimate, 8)  # rank 3 < 10 / 2: exact
        6.0
    """
    return estimate_trace(A, num_matvecs, method="xtrace", **kw)


def xdiag(
    A: Any, num_matvecs: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """Diagonal of a symmetric operator by XDiag (Epperly, Tropp & Webber 2024).

    Args:
        A: the operator (see the module docstring).
        num_matvecs: product budget (the largest even number below is used).
        generator: probes.

    Returns:
        The estimated diagonal, shape ``(n,)``, in the operator's dtype and device.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> U = torch.linalg.qr(torch.randn(50, 3, generator=g, dtype=torch.float64))[0]
        >>> A = U @ torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=U.dtype)) @ U.T
        >>> torch.allclose(xdiag(A, 10, generator=g), A.diagonal())  # rank 3: exact
        True
    """
    gen, _ = _utils.make_generator(generator)
    return _trace.xdiag(as_operator(A), num_matvecs, generator=gen).detach()

"""Extreme eigenpairs of an operator: :func:`eigsh`.

It takes any symmetric linear operator ``A`` that
:func:`~landscape.hessian.as_operator` accepts (a square tensor, a scipy
``LinearOperator``, an object with ``matmat`` / ``matvec`` / ``@``, or a
:class:`~landscape.hessian.HessianOperator`); the model-level
:func:`~landscape.hessian.top_eigenvalues` is :func:`eigsh` on the Hessian of a
model's loss (the trace estimators are in ``_trace.py``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import _utils
from ._lanczos import lanczos_eigs, power_iteration
from ._linop import as_operator
from ._results import Eigenpairs

__all__ = ["eigsh"]


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
    max_memory: int | None = None,
    progressbar: bool = False,
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
        num: number of eigenpairs.
        which: ``"LA"`` largest, ``"SA"`` smallest, ``"LM"`` largest magnitude.
        method: ``"lanczos"`` or ``"power"``.
        tol: Lanczos residual tolerance (default 1e-6) or power-iteration relative
            change (default 1e-3).
        max_iter: Lanczos products (default ``max(100, 5 num)``) or power iterations
            per eigenvalue (default 100).
        return_vectors: keep the eigenvectors: keyed like the model's parameters for
            a :class:`HessianOperator`, else one entry ``"flat"`` of shape ``(num, n)``.
        generator: start vectors; its seed is recorded in ``meta``.
        max_memory: bytes the Lanczos basis may take on the operator's device;
            beyond it the basis lives in host memory (:func:`basis_device`).
        progressbar: show progress (a bar on a terminal, lines in a log).

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
            max_memory=max_memory,
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

"""Public curvature functions: top eigenpairs, trace, adversarial data."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import Tensor, nn

from .. import _utils
from ._operator import model_operator
from ._ops import eigsh
from ._results import Eigenpairs, TraceEstimate
from ._trace import TRACE_METHODS, estimate_trace, normal_quantile

__all__ = ["top_eigenvalues", "trace"]

LossFn = Callable[[Tensor, Tensor], Tensor]
BACKENDS = ("landscape", "pyhessian")


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def _pyhessian_top(model, loss_fn, data, meta, dtype, return_vectors) -> Eigenpairs:
    """``backend="pyhessian"`` of :func:`top_eigenvalues`, with the settings in ``meta``."""
    if meta["which"] == "SA":
        raise ValueError(
            "backend='pyhessian' (power iteration) finds the largest-magnitude "
            "eigenvalues only; use backend='landscape' for which='SA'"
        )
    from ._pyhessian import pyhessian_eigenvalues

    vals, vecs = pyhessian_eigenvalues(
        model,
        loss_fn,
        data,
        num=meta["num"],
        tol=1e-3 if meta["tol"] is None else meta["tol"],
        max_iter=100 if meta["max_iter"] is None else meta["max_iter"],
        seed=meta["seed"],
        dtype=dtype,
    )
    vectors = {}
    if return_vectors:
        vectors = {n: np.stack([v[n].numpy() for v in vecs]) for n in vecs[0]}
    return Eigenpairs(vals, vectors, None, 0, True, "pyhessian", meta)


def top_eigenvalues(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable,
    *,
    num: int = 1,
    which: str = "LA",
    method: str = "lanczos",
    tol: float | None = None,
    max_iter: int | None = None,
    return_vectors: bool = True,
    backend: str = "landscape",
    dtype: torch.dtype | None = None,
    mode: str = "auto",
    generator: torch.Generator | None = None,
    max_memory: int | None = None,
    progressbar: bool = False,
    check_deterministic: bool = True,
) -> Eigenpairs:
    """Extreme eigenpairs of the Hessian of the mean loss over ``data``.

    :func:`~landscape.hessian.eigsh` on the model's :class:`HessianOperator`: Lanczos
    (default) with full reorthogonalisation until the Ritz residuals of the ``num``
    wanted pairs fall below ``tol * max|theta|``, or power iteration with deflation
    (the original code / pyhessian: largest *magnitude* first, ``which`` ignored).

    Args:
        model: the network (untouched; analysed in eval mode).
        loss_fn: maps ``(output, y)`` to the batch-mean loss.
        data: iterable of fixed ``(x, y)`` batches (for the robust loss, the batches
            :func:`landscape.attacks.perturb_batches` returns).
        num, which, method, tol, max_iter: see :func:`~landscape.hessian.eigsh`.
        return_vectors: keep the eigenvectors (as ``dict[name -> tensor]``).
        backend: ``"landscape"`` or ``"pyhessian"`` (power iteration of pyhessian 0.1,
            run on a copy of the model).
        dtype: analyse a cast copy (e.g. ``torch.float64``).
        mode: HVP formulation (:class:`HessianOperator`).
        generator: random start vectors; its seed is recorded in ``meta``.
        max_memory: bytes the analysis may hold on the model's device beyond one
            batch: the cached HVP graph (``mode="auto"`` keeps it only when its
            measured size fits; default at most 1 GiB) and the Lanczos basis (host
            memory beyond it; default half the free CUDA memory, a quarter of the
            available host memory on CPU): :mod:`landscape._memory`.
        progressbar: show progress (a bar on a terminal, lines in a log).
        check_deterministic: raise if the loss is not a fixed function of the weights.

    Under ``torch.distributed`` every rank calls it with the same arguments and
    takes its share of the batches; the products are all-reduced and every rank
    returns the eigenpairs of the whole data.

    Returns:
        :class:`Eigenpairs`.

    Raises:
        NondeterministicLossError: the loss changes between evaluations.
        ValueError: bad ``num``, ``which``, ``method`` or ``backend``.

    Example:
        >>> X = torch.randn(16, 3, dtype=torch.float64)
        >>> model = torch.nn.Linear(3, 1, bias=False).double()
        >>> data = [(X, torch.zeros(16, 1, dtype=X.dtype))]
        >>> eig = top_eigenvalues(model, torch.nn.MSELoss(), data, num=2)
        >>> exact = torch.linalg.eigvalsh(2 * X.T @ X / 16).flip(0)[:2].numpy()
        >>> bool(np.allclose(eig.eigenvalues, exact, rtol=1e-8))
        True
    """
    _check_backend(backend)
    if method not in ("lanczos", "power"):
        raise ValueError(f"method must be 'lanczos' or 'power', got {method!r}")
    gen, seed = _utils.make_generator(generator)
    meta = {"num": num, "which": which, "method": method, "backend": backend}
    meta.update(seed=seed, tol=tol, max_iter=max_iter, mode=mode, dtype=str(dtype))
    if backend == "pyhessian":
        return _pyhessian_top(model, loss_fn, data, meta, dtype, return_vectors)
    op = model_operator(
        model, loss_fn, data, dtype, mode, check_deterministic, max_memory=max_memory
    )
    meta.update(op.settings())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eig = eigsh(
            op,
            num,
            which=which,
            method=method,
            tol=tol,
            max_iter=max_iter,
            return_vectors=return_vectors,
            generator=gen,
            max_memory=max_memory,
            progressbar=progressbar,
        )
    for w in caught:  # re-issue at the caller of top_eigenvalues
        msg = str(w.message).replace("eigsh (", "top_eigenvalues (")
        warnings.warn(msg, w.category, stacklevel=2)
    return dataclasses.replace(eig, meta=meta)


def _pyhessian_trace(model, loss_fn, data, meta, dtype, confidence) -> TraceEstimate:
    """``backend="pyhessian"`` of :func:`trace`, with the settings in ``meta``."""
    if meta["method"] != "hutchinson":
        raise ValueError("backend='pyhessian' offers only method='hutchinson'")
    from ._pyhessian import pyhessian_trace

    s = pyhessian_trace(
        model,
        loss_fn,
        data,
        tol=1e-3 if meta["tol"] is None else meta["tol"],
        max_iter=meta["num_matvecs"],
        seed=meta["seed"],
        dtype=dtype,
    )
    z = normal_quantile(confidence)
    est = float(s.mean())
    se = float(s.std(ddof=1) / np.sqrt(len(s))) if len(s) > 1 else float("inf")
    return TraceEstimate(
        est, se, est - z * se, est + z * se, confidence, s, len(s), "pyhessian", meta
    )


def trace(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable,
    *,
    num_matvecs: int = 100,
    method: str = "hutchinson",
    tol: float | None = None,
    confidence: float = 0.95,
    distribution: str = "rademacher",
    backend: str = "landscape",
    dtype: torch.dtype | None = None,
    mode: str = "auto",
    chunk_size: int = 8,
    generator: torch.Generator | None = None,
    max_memory: int | None = None,
    progressbar: bool = False,
    check_deterministic: bool = True,
) -> TraceEstimate:
    """Stochastic estimate of the Hessian trace with a confidence interval.

    :func:`~landscape.hessian.estimate_trace` on the model's :class:`HessianOperator`.

    Args:
        model, loss_fn, data: as in :func:`top_eigenvalues`.
        num_matvecs: HVP budget (Hutchinson: probes; Hutch++ / XTrace: all products).
        method: ``"hutchinson"``, ``"hutch++"`` or ``"xtrace"`` (Epperly et al. 2024:
            lower error than Hutch++ at the same budget when a few eigenvalues
            dominate).
        tol: Hutchinson stops early when ``std_error <= tol * |estimate|``
            (pyhessian backend: its own relative-change rule, default 1e-3).
        confidence: level of ``[ci_low, ci_high]`` (normal approximation).
        distribution: probes, ``"rademacher"`` or ``"gaussian"``.
        backend: ``"landscape"`` or ``"pyhessian"`` (Hutchinson only).
        dtype, mode, chunk_size: see :class:`HessianOperator`.
        generator: probes; its seed is recorded in ``meta``.
        max_memory: bytes the cached HVP graph may take (see
            :func:`top_eigenvalues`).
        progressbar, check_deterministic: as in :func:`top_eigenvalues`.

    Returns:
        :class:`TraceEstimate`.

    Example:
        >>> X = torch.randn(16, 3, dtype=torch.float64)
        >>> model = torch.nn.Linear(3, 1, bias=False).double()
        >>> data = [(X, torch.zeros(16, 1, dtype=X.dtype))]
        >>> t = trace(model, torch.nn.MSELoss(), data, num_matvecs=9, method="hutch++")
        >>> bool(abs(t.estimate - float(2 * (X ** 2).sum() / 16)) < 1e-8)  # rank 3: exact
        True
    """
    _check_backend(backend)
    if method not in TRACE_METHODS:
        raise ValueError(f"method must be one of {TRACE_METHODS}, got {method!r}")
    gen, seed = _utils.make_generator(generator)
    meta = {"num_matvecs": num_matvecs, "method": method, "backend": backend}
    meta.update(seed=seed, tol=tol, distribution=distribution, dtype=str(dtype))
    if backend == "pyhessian":
        return _pyhessian_trace(model, loss_fn, data, meta, dtype, confidence)
    op = model_operator(
        model, loss_fn, data, dtype, mode, check_deterministic, chunk_size, max_memory
    )
    meta.update(op.settings())
    est = estimate_trace(
        op,
        num_matvecs,
        method=method,
        distribution=distribution,
        tol=tol,
        confidence=confidence,
        generator=gen,
        progressbar=progressbar,
    )
    if "low_rank_part" in est.meta:
        meta["low_rank_part"] = est.meta["low_rank_part"]
    return dataclasses.replace(est, num_matvecs=int(op.num_matvecs), meta=meta)

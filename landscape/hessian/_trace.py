"""Stochastic trace and diagonal estimators on an operator: Hutchinson, Hutch++, XTrace.

Hutchinson (1990): ``tr(H) ~ mean_i v_i^T H v_i`` over Rademacher (or Gaussian)
probes. Hutch++ (Meyer, Musco, Musco & Woodruff, SOSA 2021): spend a third of the
budget on a sketch ``Q = orth(H S)``, take ``tr(Q^T H Q)`` exactly, and run Hutchinson
on the deflated remainder ``(I - QQ^T) H (I - QQ^T)``; far lower variance when a few
eigenvalues dominate (as in trained networks). XTrace (Epperly, Tropp & Webber, SIMAX
2024) spends half the budget on ``s`` probes ``w_i`` and half on ``A Q`` for
``Q = orth(A W)``; each probe is used both in the sketch and, left out of it, as the
Hutchinson probe of the deflated remainder, and the ``s`` leave-one-out estimates are
averaged (exchangeability): lower error than Hutch++ at the same number of products.
XDiag is the same construction for the diagonal.

All estimators multiply blocks of probes at once (``op.matmat``), so batched HVPs
apply to the sketches. Each takes any symmetric linear operator ``A`` that
:func:`~landscape.hessian.as_operator` accepts; the model-level
:func:`~landscape.hessian.trace` is :func:`estimate_trace` on the Hessian of a model's
loss.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import _finite, _utils
from ._linop import as_operator
from ._results import TraceEstimate

__all__ = [
    "estimate_trace",
    "hutchinson",
    "hutchpp",
    "xtrace",
    "xdiag",
    "probes",
    "normal_quantile",
    "TRACE_METHODS",
]

TRACE_METHODS = ("hutchinson", "hutch++", "xtrace")


def normal_quantile(confidence: float) -> float:
    """Two-sided standard-normal quantile: 0.95 -> 1.96."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


def probes(
    num: int, dim: int, generator: torch.Generator, distribution: str = "rademacher"
) -> Tensor:
    """``num`` random probe vectors (float64, CPU), Rademacher (+-1) or Gaussian."""
    if distribution == "rademacher":
        return torch.randint(0, 2, (num, dim), generator=generator).double() * 2 - 1
    if distribution == "gaussian":
        return torch.randn(num, dim, generator=generator, dtype=torch.float64)
    raise ValueError(
        f"distribution must be 'rademacher' or 'gaussian', got {distribution!r}"
    )


def _stats(samples: np.ndarray, offset: float = 0.0) -> tuple[float, float]:
    est = float(samples.mean()) + offset
    se = (
        float(samples.std(ddof=1) / math.sqrt(len(samples)))
        if len(samples) > 1
        else float("inf")
    )
    return est, se


def _summary(samples: np.ndarray, offset: float = 0.0):
    """``(estimate, std_error, samples)`` of an estimator's per-probe samples."""
    return (*_stats(samples, offset), samples)


def _hutchinson(
    op,
    num_matvecs: int,
    *,
    generator: torch.Generator,
    distribution: str = "rademacher",
    tol: float | None = None,
    min_probes: int = 10,
    progressbar: bool = False,
) -> tuple[float, float, np.ndarray]:
    """Hutchinson's estimator with ``num_matvecs`` probes (one product each); stops
    early once ``std_error <= tol * |estimate|``.

    Returns:
        ``(estimate, std_error, samples)``.
    """
    from tqdm.auto import tqdm

    if num_matvecs < 1:
        raise ValueError(f"num_matvecs must be >= 1, got {num_matvecs}")
    if tol is not None:
        tol = _finite.check_option(tol, "tol", "a relative tolerance", positive=True)
    chunk = getattr(op, "chunk_size", 8)
    samples: list[float] = []
    bar = tqdm(total=num_matvecs, desc="trace", disable=not progressbar, leave=False)
    while len(samples) < num_matvecs:
        r = min(chunk, num_matvecs - len(samples))
        V = probes(r, op.dim, generator, distribution).to(op.device, op.dtype)
        HV = op.matmat(V)
        new = (V * HV).sum(dim=1).double().cpu().tolist()
        at = f"at probes {len(samples) + 1} to {len(samples) + r} of {num_matvecs}"
        _finite.check_host(new, "the probes v^T H v", at)
        samples.extend(new)
        bar.update(r)
        if tol is not None and len(samples) >= max(min_probes, 2):
            est, se = _stats(np.array(samples))
            if se <= tol * abs(est):
                break
    bar.close()
    return _summary(np.array(samples))


def _hutchpp(
    op,
    num_matvecs: int,
    *,
    generator: torch.Generator,
    distribution: str = "rademacher",
    progressbar: bool = False,
) -> tuple[float, float, np.ndarray, float]:
    """Hutch++ with a budget of ``num_matvecs`` products (a third each for the sketch,
    the exact low-rank part and Hutchinson on the remainder).

    Returns:
        ``(estimate, std_error, residual_samples, low_rank_part)``; the standard error
        is that of the Hutchinson part (the low-rank part is exact given the sketch).
    """
    if num_matvecs < 3:
        raise ValueError(
            f"Hutch++ needs a budget of at least 3 HVPs, got {num_matvecs}"
        )
    m = num_matvecs // 3
    S = probes(m, op.dim, generator, distribution).to(op.device, op.dtype)
    Y = op.matmat(S)  # (m, dim)
    Q, _ = torch.linalg.qr(Y.T)  # (dim, m) orthonormal columns
    HQ = op.matmat(Q.T.contiguous())  # (m, dim)
    low = float(torch.einsum("id,di->", HQ, Q))
    G = probes(num_matvecs - 2 * m, op.dim, generator, distribution).to(
        op.device, op.dtype
    )
    G = G - (G @ Q) @ Q.T
    HG = op.matmat(G)
    del progressbar
    samples = (G * HG).sum(dim=1).double().cpu().numpy()
    _finite.check_host([low, *samples], "the Hutch++ products")
    return (*_summary(samples, low), low)


def _sketch(op, num_matvecs: int, generator, distribution: str, what: str):
    """Probes ``Om (s, n)``, ``Y = A Om`` (rows), ``Q, R = qr(Y^T)``, ``Z = A Q`` and
    the normalised columns ``S`` of ``R^{-T}`` (the leave-one-out directions)."""
    s = num_matvecs // 2
    if s < 2:
        raise ValueError(
            f"{what} needs a budget of at least 4 products, got {num_matvecs}"
        )
    if s > op.dim:
        raise ValueError(
            f"{what}: num_matvecs // 2 = {s} exceeds the dimension {op.dim}; "
            "compute the quantity exactly instead"
        )
    Om = probes(s, op.dim, generator, distribution).to(op.device, op.dtype)
    Y = op.matmat(Om)
    Q, R = torch.linalg.qr(Y.T)
    Z = op.matmat(Q.T.contiguous()).T
    d = R.diagonal().abs()
    full_rank = bool(d.min() > 1e3 * torch.finfo(R.dtype).eps * d.max())
    S = None
    if full_rank:
        S = torch.linalg.inv(R.T)
        S = S / S.norm(dim=0, keepdim=True)
    return Om, Y.T, Q, R, Z, S


def _xtrace(
    op,
    num_matvecs: int,
    *,
    generator: torch.Generator,
    distribution: str = "rademacher",
) -> tuple[float, float, np.ndarray]:
    """XTrace (Epperly, Tropp & Webber 2024) with ``num_matvecs`` products (even).

    Returns:
        ``(estimate, std_error, samples)``: the mean of the ``s = num_matvecs // 2``
        exchangeable leave-one-out estimates, their standard error, and the
        estimates. When the sketch ``A W`` has rank ``< s`` (the operator's rank is
        below ``s``) ``Q`` spans the range of ``A`` and ``tr(Q^T A Q)`` is exact; it is
        returned with standard error 0.
    """
    Om, Y, Q, R, Z, S = _sketch(op, num_matvecs, generator, distribution, "xtrace")
    H = Q.T @ Z
    if S is None:
        exact = _finite.check_number(float(torch.trace(H)), "the XTrace estimate")
        return exact, 0.0, np.full(Om.shape[0], exact)
    W = Q.T @ Om.T  # column i: Q^T w_i
    D1 = W - S * (S * W).sum(0)  # (I - s_i s_i^T) Q^T w_i
    APW = Y - Z @ D1  # A P_i w_i, P_i = I - Q_i Q_i^T
    D2 = R - H @ D1  # Q^T A P_i w_i, deflated next
    D2 = D2 - S * (S * D2).sum(0)
    tr_w = (Om.T * APW).sum(0) - (W * D2).sum(0)  # w_i^T P_i A P_i w_i
    ests = torch.trace(H) - (S * (H @ S)).sum(0) + tr_w
    ests = ests.double().cpu().numpy()
    _finite.check_host(ests, "the XTrace estimates")
    return _summary(ests)


def _xdiag(
    op,
    num_matvecs: int,
    *,
    generator: torch.Generator,
) -> Tensor:
    """XDiag (Epperly, Tropp & Webber 2024): the diagonal of a *symmetric* operator
    from ``num_matvecs`` products (Rademacher probes).

    Returns:
        The diagonal estimate, shape ``(dim,)`` (exact when the operator's rank is
        below ``num_matvecs // 2``).
    """
    Om, Y, Q, R, Z, S = _sketch(op, num_matvecs, generator, "rademacher", "xdiag")
    diag = (Q * Z).sum(1)  # diag(Q Q^T A), A symmetric so Q^T A = Z^T
    if S is None:
        return _finite.check_tensor(diag, "the XDiag estimate")
    s = Om.shape[0]
    diag = diag - ((Q @ S) * (Z @ S)).sum(1) / s
    D = Z.T @ Om.T  # column i: Q^T A w_i
    D = D - S * (S * D).sum(0)
    comp = Y - Q @ D  # (I - Q_i Q_i^T) A w_i
    return _finite.check_tensor(
        diag + (Om.T * comp / Om.T**2).sum(1) / s, "the XDiag estimate"
    )


def _estimate(
    method: str, est: float, se: float, samples, num: int, confidence: float, meta
) -> TraceEstimate:
    z = normal_quantile(confidence)
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
    normal_quantile(confidence)  # validate early
    op = as_operator(A)
    gen, seed = _utils.make_generator(generator)
    meta: dict = {"num_matvecs": num_matvecs, "method": method, "seed": seed}
    meta.update(distribution=distribution, tol=tol)
    before = getattr(op, "num_matvecs", 0)
    if method == "hutchinson":
        est, se, s = _hutchinson(
            op,
            num_matvecs,
            generator=gen,
            distribution=distribution,
            tol=tol,
            progressbar=progressbar,
        )
    elif method == "hutch++":
        est, se, s, low = _hutchpp(
            op, num_matvecs, generator=gen, distribution=distribution
        )
        meta["low_rank_part"] = low
    else:
        est, se, s = _xtrace(op, num_matvecs, generator=gen, distribution=distribution)
    used = getattr(op, "num_matvecs", 0) - before
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
    return _xdiag(as_operator(A), num_matvecs, generator=gen).detach()

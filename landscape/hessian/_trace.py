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
apply to the sketches.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["probes", "hutchinson", "hutchpp", "xtrace", "xdiag", "normal_quantile"]


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


def hutchinson(
    op,
    num_probes: int,
    *,
    generator: torch.Generator,
    distribution: str = "rademacher",
    tol: float | None = None,
    min_probes: int = 10,
    progressbar: bool = False,
) -> tuple[float, float, np.ndarray]:
    """Hutchinson's estimator; stops early once ``std_error <= tol * |estimate|``.

    Returns:
        ``(estimate, std_error, samples)``.
    """
    from tqdm.auto import tqdm

    if num_probes < 1:
        raise ValueError(f"num_probes must be >= 1, got {num_probes}")
    chunk = getattr(op, "chunk_size", 8)
    samples: list[float] = []
    bar = tqdm(total=num_probes, desc="trace", disable=not progressbar, leave=False)
    while len(samples) < num_probes:
        r = min(chunk, num_probes - len(samples))
        V = probes(r, op.dim, generator, distribution).to(op.device, op.dtype)
        HV = op.matmat(V)
        samples.extend((V * HV).sum(dim=1).double().cpu().tolist())
        bar.update(r)
        if tol is not None and len(samples) >= max(min_probes, 2):
            est, se = _stats(np.array(samples))
            if se <= tol * abs(est):
                break
    bar.close()
    return _summary(np.array(samples))


def hutchpp(
    op,
    num_hvps: int,
    *,
    generator: torch.Generator,
    distribution: str = "rademacher",
    progressbar: bool = False,
) -> tuple[float, float, np.ndarray, float]:
    """Hutch++ with a budget of ``num_hvps`` products (a third each for the sketch,
    the exact low-rank part and Hutchinson on the remainder).

    Returns:
        ``(estimate, std_error, residual_samples, low_rank_part)``; the standard error
        is that of the Hutchinson part (the low-rank part is exact given the sketch).
    """
    if num_hvps < 3:
        raise ValueError(f"Hutch++ needs a budget of at least 3 HVPs, got {num_hvps}")
    m = num_hvps // 3
    S = probes(m, op.dim, generator, distribution).to(op.device, op.dtype)
    Y = op.matmat(S)  # (m, dim)
    Q, _ = torch.linalg.qr(Y.T)  # (dim, m) orthonormal columns
    HQ = op.matmat(Q.T.contiguous())  # (m, dim)
    low = float(torch.einsum("id,di->", HQ, Q))
    G = probes(num_hvps - 2 * m, op.dim, generator, distribution).to(
        op.device, op.dtype
    )
    G = G - (G @ Q) @ Q.T
    HG = op.matmat(G)
    del progressbar
    return (*_summary((G * HG).sum(dim=1).double().cpu().numpy(), low), low)


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


def xtrace(
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
        exact = float(torch.trace(H))
        return exact, 0.0, np.full(Om.shape[0], exact)
    W = Q.T @ Om.T  # column i: Q^T w_i
    D1 = W - S * (S * W).sum(0)  # (I - s_i s_i^T) Q^T w_i
    APW = Y - Z @ D1  # A P_i w_i, P_i = I - Q_i Q_i^T
    D2 = R - H @ D1  # Q^T A P_i w_i, deflated next
    D2 = D2 - S * (S * D2).sum(0)
    tr_w = (Om.T * APW).sum(0) - (W * D2).sum(0)  # w_i^T P_i A P_i w_i
    ests = torch.trace(H) - (S * (H @ S)).sum(0) + tr_w
    return _summary(ests.double().cpu().numpy())


def xdiag(
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
        return diag
    s = Om.shape[0]
    diag = diag - ((Q @ S) * (Z @ S)).sum(1) / s
    D = Z.T @ Om.T  # column i: Q^T A w_i
    D = D - S * (S * D).sum(0)
    comp = Y - Q @ D  # (I - Q_i Q_i^T) A w_i
    return diag + (Om.T * comp / Om.T**2).sum(1) / s

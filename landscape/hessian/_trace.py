"""Stochastic trace estimators on an operator: Hutchinson and Hutch++.

Hutchinson (1990): ``tr(H) ~ mean_i v_i^T H v_i`` over Rademacher (or Gaussian)
probes. Hutch++ (Meyer, Musco, Musco & Woodruff, SOSA 2021): spend a third of the
budget on a sketch ``Q = orth(H S)``, take ``tr(Q^T H Q)`` exactly, and run Hutchinson
on the deflated remainder ``(I - QQ^T) H (I - QQ^T)``; far lower variance when a few
eigenvalues dominate (as in trained networks).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["probes", "hutchinson", "hutchpp", "normal_quantile"]


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
    chunk = getattr(op, "batch_vectors", 8)
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
    s = np.array(samples)
    est, se = _stats(s)
    return est, se, s


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
    s = (G * HG).sum(dim=1).double().cpu().numpy()
    est, se = _stats(s, offset=low)
    del progressbar
    return est, se, s, low

"""Lanczos with full reorthogonalisation (several independent runs in lockstep) and
power iteration with deflation, on any symmetric operator with ``matmat``.

An operator is anything with ``dim``, ``dtype``, ``device`` and ``matmat(V)`` mapping
rows ``V (r, dim)`` to rows ``(H V^T)^T`` — :class:`HessianOperator` or
:class:`MatrixOperator` (a dense matrix, for planted spectra); the functions here also
take what :func:`~landscape.hessian.as_operator` accepts (tensors, scipy operators).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from .. import _finite, _memory
from ._linop import MatrixOperator, as_operator

__all__ = [
    "MatrixOperator",
    "LanczosRun",
    "lanczos",
    "basis_device",
    "lanczos_eigs",
    "ritz",
    "power_iteration",
]


@dataclass
class LanczosRun:
    """The tridiagonal coefficients of ``r`` Lanczos runs (and their bases).

    ``alphas[c, :lengths[c]]`` and ``betas[c, :lengths[c] - 1]`` define ``T`` of run
    ``c``; ``basis[c, :lengths[c]]`` (when kept) is its orthonormal Krylov basis.
    """

    alphas: np.ndarray
    betas: np.ndarray
    lengths: np.ndarray
    basis: Tensor | None
    num_matvecs: int
    residual_scale: np.ndarray  # the last beta of each run (Ritz residual factor)


def ritz(alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of the tridiagonal ``T`` (ascending values, vectors in cols)."""
    if len(alphas) == 1:
        return np.asarray(alphas, dtype=np.float64), np.ones((1, 1))
    return scipy.linalg.eigh_tridiagonal(
        np.asarray(alphas, dtype=np.float64), np.asarray(betas, dtype=np.float64)
    )


def basis_device(op, num_vectors: int, max_memory: int | None = None) -> torch.device:
    """Where a Lanczos basis of ``num_vectors`` vectors lives: the operator's device
    when it fits the memory budget (:func:`landscape._memory.budget`), else host
    memory (each iteration then moves one vector per run to the host and back for
    the reorthogonalisation)."""
    device = torch.device(op.device)
    if device.type == "cpu":
        return device
    size = num_vectors * op.dim * torch.tensor([], dtype=op.dtype).element_size()
    if size <= _memory.budget(device, max_memory):
        return device
    return torch.device("cpu")


def _zeros(shape: tuple[int, ...], device: torch.device, dtype, pin: bool) -> Tensor:
    if pin and device.type == "cpu" and torch.cuda.is_available():
        return torch.zeros(shape, dtype=dtype, pin_memory=True)
    return torch.zeros(shape, device=device, dtype=dtype)


def lanczos(
    op: Any,
    v0: Tensor,
    max_iter: int,
    *,
    keep_basis: bool = True,
    stop: Callable[[Tensor, Tensor, int], bool] | None = None,
    locked: Tensor | None = None,
    basis: torch.device | str | None = None,
    progressbar: bool = False,
    desc: str = "lanczos",
) -> LanczosRun:
    """Run Lanczos with full reorthogonalisation from each row of ``v0 (r, dim)``.

    The ``r`` runs advance in lockstep, so each iteration does one batched product
    of ``r`` vectors. A run that hits an invariant subspace (``beta ~ 0``) stops there
    (its quadrature is then exact). Each iteration reads its ``r`` alphas and betas
    back to the host once (the stopping rule needs them).

    Args:
        op: the symmetric operator. v0: start vectors, shape ``(r, dim)``.
        max_iter: maximum number of iterations (products per run).
        keep_basis: return the Krylov bases (needed for eigenvectors).
        stop: optional ``stop(alphas, betas, j) -> bool`` called after iteration ``j``
            of a single run (``r == 1``) with ``alphas[: j + 1]`` and ``betas[: j + 1]``
            (``betas[j]`` is the norm of the next residual, the Ritz-residual factor).
        locked: orthonormal rows ``(p, dim)`` spanning an invariant subspace to stay
            orthogonal to (restarts after an exhausted Krylov space).
        basis: the device of the basis ``(r, max_iter, dim)`` (and ``locked``):
            default the operator's; ``"cpu"`` keeps it in host memory
            (:func:`basis_device` chooses by the memory budget).
        progressbar: show progress named ``desc`` (:func:`landscape._progress.bar`).

    Returns:
        A :class:`LanczosRun` (its basis on the ``basis`` device).
    """
    from .._progress import bar as _bar

    op = as_operator(op)
    dev = torch.device(op.device)
    bdev = dev if basis is None else torch.device(basis)
    v0 = v0.to(dev, op.dtype)
    r, n = v0.shape
    m = min(int(max_iter), n)
    Q = _zeros((r, m, n), bdev, op.dtype, pin=bdev != dev)
    alphas = np.zeros((r, m))
    betas = np.zeros((r, m))
    lengths = np.zeros(r, dtype=int)
    alive = np.ones(r, dtype=bool)
    if locked is not None and locked.shape[0] == 0:
        locked = None
    if locked is not None:
        locked = locked.to(bdev, op.dtype)
        v0 = v0 - ((v0.to(bdev) @ locked.T) @ locked).to(dev)
    q = v0 / v0.norm(dim=1, keepdim=True)
    hvps = 0
    bar = _bar(
        desc=desc,
        total=m,
        unit="iterations",
        enabled=progressbar,
        leave=False,
        about=f"{r} run{'s' if r > 1 else ''} in lockstep, dimension {n:,}",
    )
    j = 0
    for j in range(m):
        Q[:, j].copy_(q)
        idx = np.flatnonzero(alive)
        if len(idx) == r:
            w = op.matmat(q)
        else:
            rows = torch.as_tensor(idx, device=dev)
            w = torch.zeros_like(q)
            w[rows] = op.matmat(q[rows])
        hvps += len(idx)
        a = (q * w).sum(dim=1)
        # full reorthogonalisation, twice (classical Gram-Schmidt is then stable)
        wb = w.to(bdev)
        for _ in range(2):
            c = torch.bmm(Q[:, : j + 1], wb[:, :, None])
            wb = wb - torch.bmm(Q[:, : j + 1].transpose(1, 2), c)[:, :, 0]
            if locked is not None:
                wb = wb - (wb @ locked.T) @ locked
        w = wb.to(dev)
        b = w.norm(dim=1)
        ab = torch.stack([a, b]).cpu().numpy()  # the iteration's one read
        alphas[idx, j] = ab[0, idx]
        lengths[idx] = j + 1
        betas[:, j] = ab[1]
        _finite.check_host(  # the values of the one read: no extra device read
            [alphas[idx, j], ab[1]],
            "the Hessian-vector products",
            f"at Lanczos iteration {j + 1}",
        )
        bar.update(1)
        scale = np.abs(alphas[:, : j + 1]).max(axis=1) + np.abs(betas[:, : j + 1]).max(
            axis=1
        )
        alive &= ~(betas[:, j] <= 1e-12 * np.maximum(scale, 1e-300))
        if (
            stop is not None
            and r == 1
            and stop(alphas[0, : j + 1], betas[0, : j + 1], j)
        ):
            break
        if not alive.any() or j == m - 1:
            break
        keep = torch.as_tensor(alive, device=dev)
        q = torch.where(
            keep[:, None], w / b.clamp_min(1e-300)[:, None], torch.zeros_like(w)
        )
    bar.close()
    last = np.array([betas[c, lengths[c] - 1] for c in range(r)])
    return LanczosRun(
        alphas=alphas[:, : j + 1],
        betas=betas[:, : j + 1],
        lengths=lengths,
        basis=Q[:, : j + 1] if keep_basis else None,
        num_matvecs=hvps,
        residual_scale=last,
    )


def _order(values: np.ndarray, which: str) -> np.ndarray:
    if which == "LA":
        return np.argsort(-values, kind="stable")
    if which == "SA":
        return np.argsort(values, kind="stable")
    if which == "LM":
        return np.argsort(-np.abs(values), kind="stable")
    raise ValueError(f"which must be 'LA', 'SA' or 'LM', got {which!r}")


def _num_pairs(n: int, num: int) -> int:
    """``num`` checked against the operator's size ``n``."""
    if not 1 <= num <= n:
        raise ValueError(
            f"num must be in [1, {n}] (the number of parameters), got {num}"
        )
    return num


def lanczos_eigs(
    op,
    num: int = 1,
    *,
    which: str = "LA",
    tol: float = 1e-6,
    max_iter: int | None = None,
    generator: torch.Generator | None = None,
    keep_vectors: bool = True,
    max_memory: int | None = None,
    progressbar: bool = False,
) -> tuple[np.ndarray, Tensor | None, np.ndarray, int, bool]:
    """Top-``num`` (``which``) eigenpairs by Lanczos, stopping when the Ritz residuals
    ``|beta_j s_{j,i}| = ||H y_i - theta_i y_i||`` of the wanted pairs are all below
    ``tol * max|theta|``.

    A single Krylov space holds one copy of each eigenvalue. When it is exhausted
    (``beta = 0``: an invariant subspace, common in tiny or structured models whose
    eigenvalues repeat), Lanczos restarts from a fresh vector orthogonal to it, so
    repeated eigenvalues are found; their exact Ritz pairs are kept.

    The basis of ``max_iter`` vectors lives on the operator's device when it fits
    ``max_memory`` (:func:`basis_device`), else in host memory.

    Returns:
        ``(values, vectors (num, dim) or None, residuals, num_matvecs, converged)``.
    """
    op = as_operator(op)
    n = op.dim
    num = _num_pairs(n, num)
    _order(np.zeros(1), which)  # validate early
    tol = _finite.check_option(tol, "tol", "a relative tolerance", positive=True)
    if max_iter is None:
        max_iter = max(100, 5 * num)
    max_iter = min(int(max_iter), n)
    if max_iter < num:
        raise ValueError(
            f"max_iter={max_iter} < num={num}: Lanczos needs at least num iterations"
        )
    gen = generator  # None: torch's global RNG, as everywhere in the package
    bdev = basis_device(op, max_iter, max_memory)
    # exact pairs from exhausted Krylov spaces
    pv = np.zeros(0)
    pvec = torch.zeros(0, n, device=bdev, dtype=op.dtype)
    locked = torch.zeros(0, n, device=bdev, dtype=op.dtype)
    hvps, converged = 0, False
    while True:
        budget = min(max_iter - hvps, n - locked.shape[0])
        v0 = torch.randn(1, n, generator=gen, dtype=torch.float64)
        state = {"converged": False}

        def stop(a: np.ndarray, b: np.ndarray, j: int, state=state, pv=pv) -> bool:
            theta, S = ritz(a, b[:-1])
            allv = np.concatenate([pv, theta])
            if len(allv) < num:
                return False
            sel = _order(allv, which)[:num]
            mine = sel[sel >= len(pv)] - len(pv)
            # the run's own best Ritz value must converge too, or a wanted eigenvalue
            # of the complement may still be hidden behind the earlier exact ones
            mine = np.union1d(mine, _order(theta, which)[:1])
            res = np.abs(b[-1] * S[-1, mine])
            scale = max(np.abs(allv).max(), 1e-300)
            state["converged"] = bool((res <= tol * scale).all())
            return state["converged"]

        run = lanczos(
            op,
            v0,
            budget,
            keep_basis=True,
            stop=stop,
            locked=locked,
            basis=bdev,
            progressbar=progressbar,
        )
        hvps += run.num_matvecs
        L = int(run.lengths[0])
        a, b = run.alphas[0, :L], run.betas[0, :L]
        theta, S = ritz(a, b[:-1])
        basis = run.basis[0, :L]
        exhausted = b[-1] <= 1e-10 * max(np.abs(theta).max(), 1e-300)
        ritz_vecs = (basis.T @ torch.as_tensor(S, dtype=op.dtype, device=bdev)).T
        if exhausted and locked.shape[0] + L < n and hvps < max_iter:
            # the Krylov space is invariant: its Ritz pairs are exact; restart outside it
            pv = np.concatenate([pv, theta])
            pvec = torch.cat([pvec, ritz_vecs])
            locked = torch.cat([locked, basis])
            continue
        converged = state["converged"] or exhausted
        res_run = np.abs(b[-1] * S[-1]) if not exhausted else np.zeros(L)
        allv = np.concatenate([pv, theta])
        allres = np.concatenate([np.zeros(len(pv)), res_run])
        allvec = torch.cat([pvec, ritz_vecs])
        break
    sel = _order(allv, which)[:num]
    if len(sel) < num:
        raise RuntimeError(
            f"Lanczos found only {len(sel)} eigenvalues, fewer than num={num}"
        )
    vecs = None
    if keep_vectors:
        vecs = allvec[torch.as_tensor(sel, device=bdev)].to(op.device)
        vecs = vecs / vecs.norm(dim=1, keepdim=True)
    return allv[sel], vecs, allres[sel], hvps, bool(converged)


def power_iteration(
    op,
    num: int = 1,
    *,
    tol: float = 1e-3,
    max_iter: int = 100,
    generator: torch.Generator | None = None,
    progressbar: bool = False,
) -> tuple[np.ndarray, Tensor, np.ndarray, int, bool]:
    """Power iteration with deflation, the original code's / pyhessian's method.

    For each eigenvalue: start from a Gaussian vector, orthogonalise against the
    eigenvectors found so far, iterate ``v <- Hv / ||Hv||`` until the Rayleigh
    quotient changes by less than ``tol`` (relative). It converges to the eigenvalue
    of largest *magnitude* in the deflated space (like pyhessian), slowly when the
    gap is small; use Lanczos for accuracy.

    Returns:
        ``(values, vectors (num, dim), residuals, num_matvecs, converged)``.
    """
    from .._progress import bar

    op = as_operator(op)
    n = op.dim
    num = _num_pairs(n, num)
    tol = _finite.check_option(tol, "tol", "a relative tolerance", positive=True)
    gen = generator  # None: torch's global RNG, as everywhere in the package
    found: list[Tensor] = []
    values, residuals = [], []
    hvps, all_conv = 0, True
    for _ in bar(
        range(num),
        desc="power_iteration",
        unit="eigenpairs",
        enabled=progressbar,
        leave=False,
    ):
        v = torch.randn(n, generator=gen, dtype=torch.float64).to(op.device, op.dtype)
        v = v / v.norm()
        lam, conv, res = None, False, float("nan")
        for _ in range(max_iter):
            for u in found:
                v = v - (u @ v) * u
            v = v / v.norm()
            hv = op.matvec(v)
            hvps += 1
            new = float(v @ hv)
            res = float((hv - new * v).norm())
            _finite.check_host(
                [new, res], "the Hessian-vector products", f"at power iteration {hvps}"
            )
            nrm = hv.norm()
            if lam is not None and abs(lam - new) / (abs(lam) + 1e-12) < tol:
                lam, conv = new, True
                break
            lam = new
            if float(nrm) == 0.0:
                conv = True
                break
            v = hv / nrm
        all_conv &= conv
        values.append(lam)
        residuals.append(res)
        found.append(v)
    return np.array(values), torch.stack(found), np.array(residuals), hvps, all_conv

"""Hessian eigenvalue density by stochastic Lanczos quadrature (SLQ).

For a probe ``v`` (Rademacher or Gaussian, normalised), ``m`` Lanczos steps give a
tridiagonal ``T`` whose eigenpairs ``(theta_i, s_i)`` define the Gauss quadrature
``v^T f(H) v ~ sum_i s_{0,i}^2 f(theta_i)``; averaging over probes estimates
``tr f(H) / n``, i.e. the spectral density ``phi(t) = 1/n sum_j delta(t - lambda_j)``,
broadened here by a Gaussian of width ``sigma`` (Lin, Saad & Yang, SIAM Review 2016;
Ghorbani, Krishnan & Xiao, ICML 2019; Yao et al., PyHessian 2020).

The probes run in lockstep (one batched product of ``num_runs`` vectors per step) with
full reorthogonalisation. :class:`LanczosQuadrature` keeps the nodes and weights so the
density can be redrawn at any bandwidth without new products;
:func:`lanczos_density` is the function-first entry point.

The default bandwidth follows Papyan (JMLR 2020, Alg. 2 and Sec. D.2; also the choice
of curvlinops): with ``m`` nodes per run spread over the Ritz range ``[lo, hi]`` padded
by 5% on each side, neighbouring Gaussians cross at ``1/kappa`` (``kappa = 3``) of their
peaks, ``sigma = (hi - lo) * 1.1 / (m - 1) / sqrt(8 ln kappa)`` (:func:`papyan_bandwidth`).
It shrinks as more steps resolve the spectrum; the earlier fixed 1% of the range
spread a near-zero spike over the negative axis (measured: 0.17 of the mass below
``-1% lambda_max`` against an exact 0.011).

:func:`slq` runs on any linear operator (:func:`landscape.hessian.as_operator`);
:func:`lanczos_density` is the model-level entry point.

pyhessian's own ``density()`` does not run on current torch (it calls the removed
``torch.eig``); ``backend="pyhessian"`` therefore raises with that explanation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import _utils
from ..io import Result
from ._lanczos import basis_device, lanczos, ritz
from ._linop import as_operator
from ._operator import model_operator
from ._pyhessian import PYHESSIAN_DENSITY_ERROR
from ._trace import probes

__all__ = [
    "Density",
    "LanczosQuadrature",
    "slq",
    "lanczos_quadrature",
    "lanczos_density",
    "papyan_bandwidth",
]

LossFn = Callable[[Tensor, Tensor], Tensor]


def papyan_bandwidth(
    lo: float, hi: float, num_nodes: int, *, kappa: float = 3.0, margin: float = 0.05
) -> float:
    """Papyan's (2020) Gaussian width for ``num_nodes`` quadrature nodes on ``[lo, hi]``.

    Neighbouring bumps of nodes spaced evenly over the range padded by ``margin``
    cross at ``1 / kappa`` of their peaks.

    Example:
        >>> round(papyan_bandwidth(0.0, 1.0, 100), 6)
        0.003748
    """
    if kappa <= 1:
        raise ValueError(f"kappa must be > 1, got {kappa}")
    width = max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0)) * (1 + 2 * margin)
    if num_nodes < 2:
        return 0.01 * width
    return width / (num_nodes - 1) / math.sqrt(8 * math.log(kappa))


def _mass_below(grid: np.ndarray, density: np.ndarray, t: float) -> float:
    """Trapezoid integral of ``density`` over ``grid <= t`` (interpolated at ``t``)."""
    if t <= grid[0]:
        return 0.0
    if t >= grid[-1]:
        return float(np.trapezoid(density, grid))
    i = int(np.searchsorted(grid, t))
    dt = np.interp(t, grid, density)
    g = np.concatenate([grid[:i], [t]])
    d = np.concatenate([density[:i], [dt]])
    return float(np.trapezoid(d, g))


@dataclass(frozen=True)
class Density(Result):
    """A Gaussian-broadened spectral density estimate.

    Attributes:
        grid: eigenvalue axis, shape ``(num_points,)``.
        density: ``phi(grid)``; integrates to 1 on ``grid`` (trapezoid rule).
        nodes: Ritz values per probe, shape ``(num_runs, max_iter)`` (NaN-padded when
            a run stopped early at an invariant subspace).
        weights: quadrature weights (squared first components), same shape; each
            run's weights sum to 1. Nodes and weights are the Gauss quadrature of
            each probe: ``v^T f(H) v ~ sum_i weights[c, i] f(nodes[c, i])``.
        sigma: Gaussian bandwidth (default :func:`papyan_bandwidth`).
        num_matvecs: Hessian-vector products used.
        meta: call arguments and provenance.
    """

    SHAPES = {"grid": "G", "density": "G", "nodes": "R K", "weights": "R K"}
    NONFINITE = {
        "nodes": "NaN pads the runs that stopped early (an invariant subspace)",
        "weights": "NaN pads the runs that stopped early (an invariant subspace)",
    }

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    weights: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    sigma: float = 0.0
    num_matvecs: int = 0
    meta: dict = field(default_factory=dict)

    def rebroaden(self, sigma: float, *, num_points: int | None = None) -> Density:
        """The same quadrature drawn at another bandwidth (no new products)."""
        return self.quadrature.density(
            sigma=sigma, num_points=num_points or len(self.grid)
        )

    @property
    def quadrature(self) -> LanczosQuadrature:
        """The nodes and weights behind this density, as a :class:`LanczosQuadrature`."""
        return LanczosQuadrature(
            self.nodes, self.weights, self.num_matvecs, dict(self.meta)
        )

    def mass_below(self, t: float) -> float:
        """Fraction of the (broadened) spectrum below ``t``: the density integrated
        over ``grid <= t`` (e.g. ``t = -0.01 * lambda_max`` for the negative tail)."""
        return _mass_below(self.grid, self.density, float(t))


class LanczosQuadrature:
    """Nodes and weights of several SLQ runs; draws densities at any bandwidth.

    Args:
        nodes: Ritz values, ``(num_runs, m)``, NaN-padded.
        weights: matching quadrature weights.
        num_matvecs: products spent. meta: recorded settings.
    """

    def __init__(
        self,
        nodes: np.ndarray,
        weights: np.ndarray,
        num_matvecs: int = 0,
        meta: dict | None = None,
    ) -> None:
        self.nodes = np.asarray(nodes, dtype=np.float64)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.num_matvecs = int(num_matvecs)
        self.meta = dict(meta or {})

    @classmethod
    def from_operator(cls, op, **options: Any) -> LanczosQuadrature:
        """:func:`slq` on ``op`` (any operator :func:`~landscape.hessian.as_operator`
        accepts), with the same keywords (``max_iter``, ``num_runs``,
        ``distribution``, ``generator``, ``progressbar``)."""
        q = slq(op, **options)
        return cls(q.nodes, q.weights, q.num_matvecs, q.meta)

    @property
    def range(self) -> tuple[float, float]:
        """Smallest and largest Ritz value over all runs."""
        return float(np.nanmin(self.nodes)), float(np.nanmax(self.nodes))

    @property
    def num_nodes(self) -> int:
        """Quadrature nodes per run (the Lanczos steps of the longest run)."""
        return int(self.nodes.shape[1])

    def mass_below(self, t: float) -> float:
        """Weight of the quadrature nodes below ``t`` (averaged over runs): the
        unbroadened estimate of the fraction of eigenvalues below ``t``. It is within
        one node's weight of the truth (Chebyshev-Markov-Stieltjes bounds)."""
        ok = ~np.isnan(self.nodes)
        below = np.where(ok & (np.where(ok, self.nodes, 0.0) < t), self.weights, 0.0)
        return float(below.sum(axis=1).mean())

    def moment(self, f: Callable[[np.ndarray], np.ndarray] = lambda t: t) -> float:
        """Estimate of ``tr f(H) / n`` (e.g. the mean eigenvalue for ``f(t) = t``)."""
        ok = ~np.isnan(self.nodes)
        vals = np.where(ok, self.weights * f(np.where(ok, self.nodes, 0.0)), 0.0)
        return float(vals.sum(axis=1).mean())

    def density(
        self,
        *,
        sigma: float | None = None,
        grid: np.ndarray | None = None,
        num_points: int = 1024,
        pad: float = 0.05,
    ) -> Density:
        """Gaussian-broadened density, normalised to integrate to 1 on its grid.

        Args:
            sigma: bandwidth; default :func:`papyan_bandwidth` of the Ritz range and
                the number of nodes per run.
            grid: eigenvalue axis; default ``num_points`` points covering the Ritz
                values plus ``pad`` of the range and 5 sigma on each side.
            num_points: grid size when ``grid`` is not given.
            pad: relative padding of the default grid.
        """
        lo, hi = self.range
        spread = max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0))
        if sigma is None:
            sigma = papyan_bandwidth(lo, hi, self.num_nodes)
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if grid is None:
            margin = pad * spread + 5 * sigma
            grid = np.linspace(lo - margin, hi + margin, int(num_points))
        grid = np.asarray(grid, dtype=np.float64)
        ok = ~np.isnan(self.nodes)
        t, w = self.nodes[ok], self.weights[ok] / self.nodes.shape[0]
        dens = np.zeros_like(grid)
        for start in range(0, len(t), 256):  # chunks: memory (points x nodes)
            d = grid[:, None] - t[None, start : start + 256]
            dens += (
                np.exp(-0.5 * (d / sigma) ** 2) * w[None, start : start + 256]
            ).sum(1)
        dens /= sigma * np.sqrt(2 * np.pi)
        area = np.trapezoid(dens, grid)
        if area > 0:
            dens = dens / area
        meta = dict(self.meta)
        meta["mass_on_grid_before_normalising"] = float(area)
        return Density(
            grid, dens, self.nodes, self.weights, float(sigma), self.num_matvecs, meta
        )


def slq(
    A: Any,
    *,
    max_iter: int = 100,
    num_runs: int = 1,
    distribution: str = "rademacher",
    generator: torch.Generator | None = None,
    max_memory: int | None = None,
    progressbar: bool = False,
) -> LanczosQuadrature:
    """Stochastic Lanczos quadrature on any symmetric linear operator ``A``.

    Args:
        A: a square tensor, a scipy ``LinearOperator``, an object with ``matmat`` /
            ``matvec`` / ``@`` (:func:`landscape.hessian.as_operator`).
        max_iter: Lanczos steps per probe (fewer when a run reaches an invariant
            subspace; its quadrature is then exact). num_runs: probes (in lockstep).
        distribution: ``"rademacher"`` or ``"gaussian"`` probes.
        generator: probes; seed recorded in ``meta``.
        max_memory: bytes the Lanczos bases (``num_runs x max_iter`` vectors) may
            take on the operator's device; beyond it they live in host memory
            (:func:`landscape.hessian.basis_device`).
        progressbar: show progress (a bar on a terminal, lines in a log).

    Returns:
        :class:`LanczosQuadrature` (``.density()``, ``.moment(f)``, ``.mass_below(t)``).

    Example:
        >>> A = torch.diag(torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64))
        >>> q = slq(A, max_iter=3, num_runs=2, generator=torch.Generator().manual_seed(0))
        >>> bool(np.allclose(np.sort(q.nodes[0]), [1.0, 2.0, 4.0]))
        True
    """
    op = as_operator(A)
    if max_iter < 1 or num_runs < 1:
        raise ValueError(
            f"max_iter and num_runs must be >= 1, got {max_iter}, {num_runs}"
        )
    gen, seed = _utils.make_generator(generator)
    v0 = probes(num_runs, op.dim, gen, distribution)
    run = lanczos(
        op,
        v0,
        max_iter,
        keep_basis=False,
        basis=basis_device(op, num_runs * min(max_iter, op.dim), max_memory),
        progressbar=progressbar,
        desc="lanczos_density",
    )
    m = run.alphas.shape[1]
    nodes = np.full((num_runs, m), np.nan)
    weights = np.full((num_runs, m), np.nan)
    for c in range(num_runs):
        L = int(run.lengths[c])
        theta, S = ritz(run.alphas[c, :L], run.betas[c, : L - 1])
        nodes[c, :L] = theta
        weights[c, :L] = S[0] ** 2
    meta = {
        "max_iter": max_iter,
        "num_runs": num_runs,
        "seed": seed,
        "distribution": distribution,
    }
    return LanczosQuadrature(nodes, weights, run.num_matvecs, meta)


def lanczos_quadrature(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable,
    *,
    max_iter: int = 100,
    num_runs: int = 1,
    distribution: str = "rademacher",
    dtype: torch.dtype | None = None,
    mode: str = "auto",
    chunk_size: int = 8,
    generator: torch.Generator | None = None,
    max_memory: int | None = None,
    progressbar: bool = False,
    check_deterministic: bool = True,
) -> LanczosQuadrature:
    """The SLQ runs of :func:`lanczos_density`, kept for redrawing at other bandwidths.

    Args:
        model: the network (untouched; analysed in eval mode).
        loss_fn: maps ``(output, y)`` to the batch-mean loss.
        data: iterable of fixed ``(x, y)`` batches.
        max_iter: Lanczos steps per probe (products per probe).
        num_runs: number of probes (run in lockstep, batched products).
        distribution: ``"rademacher"`` or ``"gaussian"`` probes.
        dtype, mode, chunk_size: see :class:`landscape.hessian.HessianOperator`.
        generator: probes; seed recorded in ``meta``.
        max_memory: bytes the cached HVP graph and the Lanczos bases may take on
            the model's device (see :func:`landscape.hessian.top_eigenvalues`).
        progressbar, check_deterministic: as in :func:`landscape.hessian.top_eigenvalues`.

    Returns:
        :class:`LanczosQuadrature` (``.density()``, ``.moment(f)``, ``.mass_below(t)``).
    """
    op = model_operator(
        model, loss_fn, data, dtype, mode, check_deterministic, chunk_size, max_memory
    )
    q = slq(
        op,
        max_iter=max_iter,
        num_runs=num_runs,
        distribution=distribution,
        generator=generator,
        max_memory=max_memory,
        progressbar=progressbar,
    )
    q.meta.update(op.settings(), dtype=str(dtype))
    return q


def lanczos_density(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable,
    *,
    sigma: float | None = None,
    num_points: int = 1024,
    grid: np.ndarray | None = None,
    backend: str = "landscape",
    **options: Any,
) -> Density:
    """Spectral density of the Hessian of the mean loss over ``data`` (SLQ).

    :func:`lanczos_quadrature` drawn by :meth:`LanczosQuadrature.density`.

    Args:
        model, loss_fn, data: as in :func:`lanczos_quadrature`.
        sigma: Gaussian bandwidth (default :func:`papyan_bandwidth`: from the Ritz
            range and ``max_iter``).
        num_points, grid: the eigenvalue axis (see :meth:`LanczosQuadrature.density`).
        backend: only ``"landscape"``; ``"pyhessian"`` raises (its density calls the
            removed ``torch.eig``).
        **options: the keywords of :func:`lanczos_quadrature`: ``max_iter``
            (Lanczos steps, i.e. products, per probe; default 100), ``num_runs``
            (probes, run in lockstep; default 1), ``distribution``, ``dtype``,
            ``mode``, ``chunk_size``, ``generator`` (its seed is recorded in
            ``meta``), ``max_memory``, ``progressbar``, ``check_deterministic``.

    Returns:
        :class:`Density` (integrates to 1 on its grid; ``rebroaden(sigma)`` redraws).

    Example:
        >>> X = torch.randn(32, 4, dtype=torch.float64)
        >>> model = torch.nn.Linear(4, 1, bias=False).double()
        >>> data = [(X, torch.zeros(32, 1, dtype=X.dtype))]
        >>> d = lanczos_density(model, torch.nn.MSELoss(), data, max_iter=4, num_runs=2)
        >>> bool(abs(np.trapezoid(d.density, d.grid) - 1) < 1e-9)
        True
        >>> exact = torch.linalg.eigvalsh(2 * X.T @ X / 32).numpy()
        >>> bool(np.allclose(np.sort(d.nodes[0]), exact))  # 4 steps on 4 dims: exact
        True
    """
    if backend == "pyhessian":
        raise NotImplementedError(PYHESSIAN_DENSITY_ERROR)
    if backend != "landscape":
        raise ValueError(f"backend must be 'landscape' or 'pyhessian', got {backend!r}")
    q = lanczos_quadrature(model, loss_fn, data, **options)
    return q.density(sigma=sigma, grid=grid, num_points=num_points)

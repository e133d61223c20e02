"""Public curvature functions: top eigenpairs, trace, adversarial data."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .. import _utils
from .._batches import as_batches
from ._lanczos import lanczos_eigs, power_iteration
from ._operator import HessianOperator
from ._results import Eigenpairs, TraceEstimate
from ._trace import hutchinson, hutchpp, normal_quantile

__all__ = ["top_eigenvalues", "trace", "adversarial_data", "adversarial_data_sweep"]

LossFn = Callable[[Tensor, Tensor], Tensor]
BACKENDS = ("landscape", "pyhessian")


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def _vectors_dict(op: HessianOperator, vecs: Tensor) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    parts = [op.to_dict(v.detach()) for v in vecs]
    for n in op.names:
        out[n] = torch.stack([p[n] for p in parts]).cpu().numpy()
    return out


def top_eigenvalues(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable,
    *,
    k: int = 1,
    which: str = "LA",
    method: str = "lanczos",
    tol: float | None = None,
    max_iter: int | None = None,
    return_vectors: bool = True,
    backend: str = "landscape",
    dtype: torch.dtype | None = None,
    mode: str = "auto",
    generator: torch.Generator | None = None,
    progressbar: bool = False,
    check_deterministic: bool = True,
    warn_negative: bool = False,
) -> Eigenpairs:
    """Extreme eigenpairs of the Hessian of the mean loss over ``data``.

    Lanczos (default) runs with full reorthogonalisation until the Ritz residuals
    ``||H v - theta v||`` of the ``k`` wanted pairs fall below ``tol * max|theta|``
    (eigenvalue errors are then of order ``residual**2 / gap``). Power iteration with
    deflation reproduces the original code / pyhessian (largest *magnitude* first;
    ``which`` is ignored).

    Args:
        model: the network (untouched; analysed in eval mode).
        loss_fn: maps ``(output, y)`` to the batch-mean loss.
        data: iterable of fixed ``(x, y)`` batches (see :func:`adversarial_data`).
        k: number of eigenpairs.
        which: ``"LA"`` largest, ``"SA"`` smallest (negative curvature), ``"LM"``
            largest magnitude.
        method: ``"lanczos"`` or ``"power"``.
        tol: Lanczos residual tolerance (default 1e-6) or power-iteration relative
            change (default 1e-3, pyhessian's).
        max_iter: Lanczos iterations (default ``max(100, 5k)``) or power iterations
            per eigenvalue (default 100).
        return_vectors: keep the eigenvectors (as ``dict[name -> tensor]``).
        backend: ``"landscape"`` or ``"pyhessian"`` (power iteration of pyhessian 0.1,
            run on a copy of the model).
        dtype: analyse a cast copy (e.g. ``torch.float64``).
        mode: HVP formulation (:class:`HessianOperator`).
        generator: random start vectors; its seed is recorded in ``meta``.
        progressbar: show a tqdm bar.
        check_deterministic: raise if the loss is not a fixed function of the weights.
        warn_negative: warn when the top eigenvalue is negative (e.g. at a claimed
            minimum, a sign of a saddle or of a non-converged run).

    Returns:
        :class:`Eigenpairs`.

    Raises:
        NondeterministicLossError: the loss changes between evaluations.
        ValueError: bad ``k``, ``which``, ``method`` or ``backend``.

    Example:
        >>> X = torch.randn(16, 3, dtype=torch.float64)
        >>> model = torch.nn.Linear(3, 1, bias=False).double()
        >>> data = [(X, torch.zeros(16, 1, dtype=X.dtype))]
        >>> eig = top_eigenvalues(model, torch.nn.MSELoss(), data, k=2)
        >>> exact = torch.linalg.eigvalsh(2 * X.T @ X / 16).flip(0)[:2].numpy()
        >>> bool(np.allclose(eig.eigenvalues, exact, rtol=1e-8))
        True
    """
    _check_backend(backend)
    if method not in ("lanczos", "power"):
        raise ValueError(f"method must be 'lanczos' or 'power', got {method!r}")
    gen, seed = _utils.make_generator(generator)
    meta = {
        "k": k,
        "which": which,
        "method": method,
        "backend": backend,
        "seed": seed,
        "tol": tol,
        "max_iter": max_iter,
        "mode": mode,
        "dtype": str(dtype),
    }
    if backend == "pyhessian":
        if which == "SA":
            raise ValueError(
                "backend='pyhessian' (power iteration) finds the largest-magnitude "
                "eigenvalues only; use backend='landscape' for which='SA'"
            )
        from ._pyhessian import pyhessian_eigenvalues

        vals, vecs = pyhessian_eigenvalues(
            model,
            loss_fn,
            data,
            k=k,
            tol=1e-3 if tol is None else tol,
            max_iter=100 if max_iter is None else max_iter,
            seed=seed,
            dtype=dtype,
        )
        vectors = {}
        if return_vectors:
            vectors = {n: np.stack([v[n].numpy() for v in vecs]) for n in vecs[0]}
        return Eigenpairs(vals, vectors, None, 0, True, "pyhessian", meta)
    op = HessianOperator(
        model,
        loss_fn,
        data,
        dtype=dtype,
        mode=mode,
        check_deterministic=check_deterministic,
    )
    meta.update(loss=op.loss, num_params=op.dim, hvp_mode=op.mode)
    if method == "lanczos":
        vals, vecs, res, hvps, conv = lanczos_eigs(
            op,
            k,
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
            k,
            tol=1e-3 if tol is None else tol,
            max_iter=100 if max_iter is None else max_iter,
            generator=gen,
            progressbar=progressbar,
        )
    if not conv:
        warnings.warn(
            f"top_eigenvalues ({method}) did not converge to tol in max_iter iterations "
            f"(residuals {np.array2string(np.asarray(res), precision=2)}); "
            "raise max_iter or tol",
            stacklevel=2,
        )
    if warn_negative and which == "LA" and vals[0] < 0:
        warnings.warn(
            f"the top Hessian eigenvalue is negative ({vals[0]:.3g}): this is not a "
            "minimum (or the data/model is not what you think)",
            stacklevel=2,
        )
    vectors = _vectors_dict(op, vecs) if (return_vectors and vecs is not None) else {}
    return Eigenpairs(
        np.asarray(vals, dtype=np.float64),
        vectors,
        np.asarray(res, dtype=np.float64),
        int(hvps),
        bool(conv),
        method,
        meta,
    )


def trace(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable,
    *,
    num_probes: int = 100,
    method: str = "hutchinson",
    tol: float | None = None,
    confidence: float = 0.95,
    distribution: str = "rademacher",
    backend: str = "landscape",
    dtype: torch.dtype | None = None,
    mode: str = "auto",
    batch_vectors: int = 8,
    generator: torch.Generator | None = None,
    progressbar: bool = False,
    check_deterministic: bool = True,
) -> TraceEstimate:
    """Stochastic estimate of the Hessian trace with a confidence interval.

    Args:
        model, loss_fn, data: as in :func:`top_eigenvalues`.
        num_probes: HVP budget (Hutchinson: probes; Hutch++: total products).
        method: ``"hutchinson"`` or ``"hutch++"``.
        tol: Hutchinson stops early when ``std_error <= tol * |estimate|``
            (pyhessian backend: its own relative-change rule, default 1e-3).
        confidence: level of ``[ci_low, ci_high]`` (normal approximation).
        distribution: probes, ``"rademacher"`` or ``"gaussian"``.
        backend: ``"landscape"`` or ``"pyhessian"`` (Hutchinson only).
        dtype, mode, batch_vectors: see :class:`HessianOperator`.
        generator: probes; its seed is recorded in ``meta``.
        progressbar, check_deterministic: as in :func:`top_eigenvalues`.

    Returns:
        :class:`TraceEstimate`.

    Example:
        >>> X = torch.randn(16, 3, dtype=torch.float64)
        >>> model = torch.nn.Linear(3, 1, bias=False).double()
        >>> data = [(X, torch.zeros(16, 1, dtype=X.dtype))]
        >>> t = trace(model, torch.nn.MSELoss(), data, num_probes=9, method="hutch++")
        >>> bool(abs(t.estimate - float(2 * (X ** 2).sum() / 16)) < 1e-8)  # rank 3: exact
        True
    """
    _check_backend(backend)
    if method not in ("hutchinson", "hutch++"):
        raise ValueError(f"method must be 'hutchinson' or 'hutch++', got {method!r}")
    gen, seed = _utils.make_generator(generator)
    z = normal_quantile(confidence)
    meta = {
        "num_probes": num_probes,
        "method": method,
        "backend": backend,
        "seed": seed,
        "tol": tol,
        "distribution": distribution,
        "dtype": str(dtype),
    }
    if backend == "pyhessian":
        if method != "hutchinson":
            raise ValueError("backend='pyhessian' offers only method='hutchinson'")
        from ._pyhessian import pyhessian_trace

        s = pyhessian_trace(
            model,
            loss_fn,
            data,
            tol=1e-3 if tol is None else tol,
            max_iter=num_probes,
            seed=seed,
            dtype=dtype,
        )
        est = float(s.mean())
        se = float(s.std(ddof=1) / np.sqrt(len(s))) if len(s) > 1 else float("inf")
        return TraceEstimate(
            est,
            se,
            est - z * se,
            est + z * se,
            confidence,
            s,
            len(s),
            "pyhessian",
            meta,
        )
    op = HessianOperator(
        model,
        loss_fn,
        data,
        dtype=dtype,
        mode=mode,
        batch_vectors=batch_vectors,
        check_deterministic=check_deterministic,
    )
    meta.update(loss=op.loss, num_params=op.dim, hvp_mode=op.mode)
    if method == "hutchinson":
        est, se, s = hutchinson(
            op,
            num_probes,
            generator=gen,
            distribution=distribution,
            tol=tol,
            progressbar=progressbar,
        )
    else:
        est, se, s, low = hutchpp(
            op,
            num_probes,
            generator=gen,
            distribution=distribution,
            progressbar=progressbar,
        )
        meta["low_rank_part"] = low
    return TraceEstimate(
        est,
        se,
        est - z * se,
        est + z * se,
        confidence,
        s,
        int(op.num_hvps),
        method,
        meta,
    )


def adversarial_data(
    model: nn.Module,
    data: Iterable,
    attack: Callable | None = None,
    *,
    eps: float | None = None,
    norm: str | None = None,
    alpha: float | None = None,
    steps: int | None = None,
    random_start: bool | None = None,
    loss_fn: LossFn | None = None,
    generator: torch.Generator | None = None,
) -> list[tuple[Tensor, Tensor]]:
    """Attack ``data`` once at ``model`` (:func:`attacks.perturb_batches`) and
    return the fixed adversarial batches: the adversarial Hessian is then the Hessian
    of the loss on these batches (the attack is *not* differentiated through).

    ``attack`` is an attack value, e.g. ``attacks.PGD(eps=0.1, steps=10)``; the loose
    ``eps``, ``norm``, ``alpha``, ``steps``, ``random_start``, ``loss_fn`` are
    deprecated (one release). ``eps=0`` returns the clean batches (moved to the
    model's device).
    """
    from ..attacks import perturb_batches
    from ..attacks._spec import as_attack

    attack = as_attack(
        attack,
        where="adversarial_data",
        eps=eps,
        norm=norm,
        alpha=alpha,
        steps=steps,
        random_start=random_start,
        loss_fn=loss_fn,
    )
    return perturb_batches(model, data, attack, generator=generator)


def adversarial_data_sweep(
    model: nn.Module,
    data: Iterable,
    eps_list: Sequence[float],
    attack: Callable | None = None,
    **kw,
) -> dict[float, list[tuple[Tensor, Tensor]]]:
    """:func:`adversarial_data` for each eps in ``eps_list`` (same generator, in order).

    ``attack`` (an attack value with a ``replace`` method, e.g. ``attacks.PGD``)
    gives the settings; each eps replaces its budget.

    Returns:
        ``{eps: batches}``.
    """
    data = list(as_batches(data, model=model))
    if attack is None:
        from ..attacks import PGD

        legacy = {k: kw.pop(k) for k in list(kw) if k != "generator"}
        if "loss_fn" in legacy:
            legacy["loss"] = legacy.pop("loss_fn")
        attack = PGD(eps=0.0, **legacy)
    return {
        float(e): adversarial_data(model, data, attack.replace(eps=float(e)), **kw)
        for e in eps_list
    }

"""The eps sweep behind figure 1: closed-form (and PGD) robust training of a linear
model across ``eps = eps_rel * eps*`` (:func:`linear_sweep`, :class:`LinearSweep`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .. import _utils
from ..io import Result
from ._closed_form import _as_pm1, _as_x, _norm, dual_norm, robust_margins
from ._pgd import robust_train_pgd
from ._threshold import constant_threshold
from ._training import robust_train_closed_form
from ._version_space import robust_margin

__all__ = ["LinearSweep", "linear_sweep"]


# the LinearSweep fields of the rows of linear_sweep (closed form) and _pgd_rows
_CLOSED_FORM_COLUMNS = tuple(
    "w_norm w_dual_norm clean_error robust_error robust_loss dist_init "
    "test_clean_error test_robust_error".split()
)
_PGD_COLUMNS = tuple(
    f"pgd_{c}"
    for c in "eps w_norm clean_error robust_error robust_loss dist_init cosine".split()
)


@dataclass(frozen=True)
class LinearSweep(Result):
    """Closed-form (and optionally PGD) robust training across eps (figure 1).

    Arrays indexed like ``eps`` (closed form) or ``pgd_eps`` (PGD points). Errors are
    fractions; ``robust_*`` errors use the exact worst case (``eps`` of the row); a zero
    score (the constant classifier ``w = 0`` without bias) counts as half an error.
    ``dist_init`` is ``||w - w_init||_2`` with the common initialisation ``w_init``.
    """

    SHAPES = {
        **{c: "E" for c in ("eps", *_CLOSED_FORM_COLUMNS)},
        **{c: "P" for c in _PGD_COLUMNS},
        "w_init": "D",
    }
    NONFINITE = {
        "test_clean_error": "NaN without test data",
        "test_robust_error": "NaN without test data",
        "pgd_cosine": "NaN where a PGD or closed-form w is zero (no direction)",
    }

    eps: np.ndarray
    w_norm: np.ndarray  # ||w||_2
    w_dual_norm: np.ndarray  # ||w||_{p*}
    clean_error: np.ndarray
    robust_error: np.ndarray
    robust_loss: np.ndarray
    dist_init: np.ndarray
    test_clean_error: np.ndarray
    test_robust_error: np.ndarray
    eps_star: float
    gamma: float
    norm: str
    bias: bool
    l2: float
    majority_error: float
    w_init: np.ndarray
    pgd_eps: np.ndarray
    pgd_w_norm: np.ndarray
    pgd_clean_error: np.ndarray
    pgd_robust_error: np.ndarray
    pgd_robust_loss: np.ndarray
    pgd_dist_init: np.ndarray
    pgd_cosine: np.ndarray  # cosine between PGD and closed-form w at the same eps
    label: str = ""
    meta: dict = field(default_factory=dict)


def _errors(w, b, x, y, eps, norm):
    if x is None:
        return np.nan, np.nan
    return _error_rate(y * (x @ w + b)), _error_rate(
        robust_margins(w, b, x, y, eps=eps, norm=norm)
    )


def _error_rate(m: np.ndarray) -> float:
    """Fraction of negative margins; a zero margin (a tie, e.g. ``w = 0, b = 0``) is a
    coin flip and counts as half an error."""
    return float(np.mean(m < 0) + 0.5 * np.mean(m == 0))


def _pgd_rows(
    x: np.ndarray,
    y: np.ndarray,
    pgd_eps_rel,
    eps_star: float,
    fits: dict,
    w_init: np.ndarray,
    *,
    norm: str,
    bias: bool,
    l2: float,
    generator: torch.Generator,
    pgd_kw: dict | None,
) -> np.ndarray:
    """PGD-trained rows of :func:`linear_sweep` (7 columns, one row per eps)."""
    gen = generator
    prow = []
    for r in np.asarray(pgd_eps_rel, float):
        eps = float(r * eps_star)
        fit = robust_train_pgd(
            x,
            y,
            eps=eps,
            norm=norm,
            bias=bias,
            l2=l2,
            init=w_init,
            generator=gen,
            **(pgd_kw or {}),
        )
        ref = fits.get(float(r)) or robust_train_closed_form(
            x, y, eps=eps, norm=norm, bias=bias, l2=l2
        )
        na, nb = np.linalg.norm(fit.w), np.linalg.norm(ref.w)
        cos = float(fit.w @ ref.w / (na * nb)) if na > 0 and nb > 0 else np.nan
        ce, re = _errors(fit.w, fit.b, x, y, eps, norm)
        prow.append(
            (eps, na, ce, re, fit.robust_loss, np.linalg.norm(fit.w - w_init), cos)
        )
    return np.array(prow, dtype=float).reshape(len(prow), len(_PGD_COLUMNS)).T


def linear_sweep(
    x,
    y,
    *,
    norm: str | float = "linf",
    eps_rel=None,
    bias: bool = False,
    l2: float = 1e-4,
    x_test=None,
    y_test=None,
    pgd_eps_rel=(),
    pgd_kw: dict | None = None,
    generator: torch.Generator | None = None,
    label: str = "",
    progressbar: bool = False,
) -> LinearSweep:
    """Robust linear training across ``eps = eps_rel * eps*`` (closed form, plus PGD
    adversarial training at ``pgd_eps_rel``).

    Args:
        x, y: training data (labels +-1).
        norm: attack norm.
        eps_rel: grid of ``eps / eps*`` (default 16 points in [0, 1.5]).
        bias, l2: as in :func:`robust_train_closed_form` (``l2 > 0`` keeps ``||w||``
            finite below gamma; it does not move eps*).
        x_test, y_test: optional held-out data for test errors.
        pgd_eps_rel: ``eps / eps*`` values also trained by :func:`robust_train_pgd`.
        pgd_kw: extra keyword arguments for :func:`robust_train_pgd`.
        generator: draws the common initialisation ``w_init ~ U(-1/sqrt(d), 1/sqrt(d))``
            (the PyTorch default for ``nn.Linear``) and the PGD random starts.
        label: a name for plots.
        progressbar: show a tqdm bar.

    Returns:
        :class:`LinearSweep`.
    """
    from tqdm.auto import tqdm

    norm = _norm(norm)
    x = _as_x(x)
    y = _as_pm1(y, x.shape[0])
    if x_test is not None:
        x_test = _as_x(x_test)
        y_test = _as_pm1(y_test, x_test.shape[0])
    eps_rel = np.linspace(0, 1.5, 16) if eps_rel is None else np.asarray(eps_rel, float)
    if np.any(eps_rel < 0):
        raise ValueError("eps_rel must be >= 0")
    gen, seed = _utils.make_generator(generator)
    d = x.shape[1]
    w_init = (
        (torch.rand(d, generator=gen, dtype=torch.float64) * 2 - 1) / np.sqrt(d)
    ).numpy()
    eps_star = constant_threshold(x, y, norm=norm, bias=bias)
    gamma = robust_margin(x, y, norm=norm, bias=bias).gamma
    p = float((y > 0).mean())
    rows = []
    fits = {}
    for r in tqdm(eps_rel, desc="linear_sweep", disable=not progressbar):
        eps = float(r * eps_star)
        fit = robust_train_closed_form(x, y, eps=eps, norm=norm, bias=bias, l2=l2)
        fits[float(r)] = fit
        ce, re = _errors(fit.w, fit.b, x, y, eps, norm)
        tce, tre = _errors(fit.w, fit.b, x_test, y_test, eps, norm)
        rows.append(
            (
                np.linalg.norm(fit.w),
                dual_norm(fit.w, norm),
                ce,
                re,
                fit.robust_loss,
                np.linalg.norm(fit.w - w_init),
                tce,
                tre,
            )
        )
    cols = (
        np.array(rows, dtype=float).reshape(len(eps_rel), len(_CLOSED_FORM_COLUMNS)).T
    )
    pc = _pgd_rows(
        x,
        y,
        pgd_eps_rel,
        eps_star,
        fits,
        w_init,
        norm=norm,
        bias=bias,
        l2=l2,
        generator=gen,
        pgd_kw=pgd_kw,
    )
    return LinearSweep(
        eps=eps_rel * eps_star,
        **dict(zip(_CLOSED_FORM_COLUMNS, cols)),
        eps_star=float(eps_star),
        gamma=float(gamma),
        norm=norm,
        bias=bias,
        l2=float(l2),
        majority_error=min(p, 1 - p),
        w_init=w_init,
        **dict(zip(_PGD_COLUMNS, pc)),
        label=label,
        meta={
            "seed": seed,
            "num_samples": x.shape[0],
            "dim": d,
            "pgd_kw": dict(pgd_kw or {}),
        },
    )

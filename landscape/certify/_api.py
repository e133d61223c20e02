"""Public calls: bounds on logits and margins, certified points, certified accuracy."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import _batches, _finite, _utils, io
from ._bounds import METHODS, margin_spec, spec_bounds
from ._graph import BoundGraph, as_graph

__all__ = [
    "CertifyResult",
    "certified",
    "certify",
    "logit_bounds",
    "margin_bounds",
]


def _setup(model, x, eps, norm, method) -> tuple[BoundGraph, Tensor, float, str]:
    norm = _utils.check_norm(norm)
    eps = _utils.check_eps(eps)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    graph = as_graph(model, x)
    _check_logits(graph)
    return graph, x.detach().to(torch.float64), eps, norm


def _check_logits(graph: BoundGraph) -> None:
    if len(graph.nodes[-1].shape) != 1:
        raise ValueError(
            "certify: the model must return logits of shape (N, K), got "
            f"(N, {', '.join(map(str, graph.nodes[-1].shape))})"
        )


def logit_bounds(
    model: nn.Module,
    x: Tensor,
    *,
    eps: float,
    norm: str = "linf",
    method: str = "crown",
) -> tuple[Tensor, Tensor]:
    """Lower and upper bounds of every logit over the eps-ball around each ``x``
    (L-inf: intersected with ``[0, 1]^d``), each (N, K), in float64.

    Subtracting these intervals (``lo_y - hi_j``) also bounds the margins, but
    loosely: :func:`margin_bounds` bounds each margin as one linear function.

    Example:
        >>> lin = nn.Linear(2, 1).double()
        >>> x = torch.full((1, 2), 0.5, dtype=torch.float64)
        >>> lo, hi = logit_bounds(lin, x, eps=0.1)
        >>> gap = (lin.weight.abs().sum() * 0.1).item()
        >>> z = lin(x).item()
        >>> abs(lo.item() - (z - gap)) < 1e-12, abs(hi.item() - (z + gap)) < 1e-12
        (True, True)
    """
    graph, xd, eps, norm = _setup(model, x, eps, norm, method)
    k = graph.nodes[-1].shape[0]
    eye = torch.eye(k, dtype=torch.float64, device=xd.device)
    spec = torch.cat([eye, -eye]).expand(len(xd), -1, -1)
    b = spec_bounds(graph, xd, spec, eps=eps, norm=norm, method=method)
    return b[:, :k], -b[:, k:]


def margin_bounds(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: str = "linf",
    method: str = "crown",
) -> Tensor:
    """Lower bounds of the margins ``z_y - z_j`` over the eps-ball, (N, K) in float64,
    ``+inf`` at ``j = y``. Each margin is bounded as one linear function of the
    logits (auto_LiRPA's C matrix): CROWN passes it backwards through the whole
    network (exact on a linear model), IBP folds it into the linear layers after
    the last ReLU (``W_y - W_j``) and meets the intervals there."""
    graph, xd, eps, norm = _setup(model, x, eps, norm, method)
    return _margins(graph, xd, y, eps, norm, method)


def _margins(graph, xd, y, eps, norm, method) -> Tensor:
    y = y.long().to(xd.device)
    k = graph.nodes[-1].shape[0]
    spec = margin_spec(y, k, xd.dtype)
    m = spec_bounds(graph, xd, spec, eps=eps, norm=norm, method=method)
    return m.scatter(1, y.view(-1, 1), float("inf"))


def certified(model: nn.Module, x: Tensor, y: Tensor, **options: Any) -> Tensor:
    """Per example: True if no input in the eps-ball changes the prediction from
    ``y`` (every margin's lower bound > 0); a sound certificate. ``options``: the
    keywords of :func:`margin_bounds` (``eps``, ``norm="linf"``, ``method="crown"``).
    """
    return (margin_bounds(model, x, y, **options) > 0).all(1)


@dataclasses.dataclass(frozen=True)
class CertifyResult(io.Result):
    """Certified robustness per eps.

    Attributes:
        eps: budgets, (E,).
        norm: ``"linf"`` or ``"l2"``.
        method: ``"crown"``, ``"crown-ibp"`` or ``"ibp"``.
        certified: (E, N) bool, prediction provably constant (and correct) on the ball.
        clean_correct: (N,) bool.
        meta: settings and provenance.
    """

    SHAPES = {"eps": "E", "certified": "E N", "clean_correct": "N"}

    eps: np.ndarray
    norm: str
    method: str
    certified: np.ndarray
    clean_correct: np.ndarray
    meta: dict = dataclasses.field(default_factory=dict)

    @property
    def certified_accuracy(self) -> np.ndarray:
        """Certified robust accuracy per eps (a lower bound of robust accuracy)."""
        return np.asarray(self.certified, dtype=float).mean(axis=1)


def certify(
    model: nn.Module,
    data: Any,
    *,
    eps: float | Sequence[float],
    norm: str = "linf",
    method: str = "crown",
    batch_size: int = 500,
    progressbar: bool = False,
) -> CertifyResult:
    """Certified robust accuracy of ``model`` on ``data`` at each eps (IBP or CROWN).

    Args:
        model: a ReLU network traced by ``torch.fx``: Linear, Conv, transposed Conv,
            BatchNorm, average and max pooling, Flatten, residual additions (e.g.
            every ReLU model of ``models.build``), bounded in eval mode.
        data: ``(x, y)`` tensors or an iterable of batches, x in [0, 1].
        eps: one budget or a sweep.
        norm: ``"linf"`` (ball intersected with the input box) or ``"l2"``.
        method: ``"crown"`` (default), ``"crown-ibp"`` (CROWN on IBP's
            intermediate bounds: one backward pass, for deep networks) or ``"ibp"``
            (margins folded into the last linear layers, see :func:`margin_bounds`).
        batch_size: for ``(x, y)`` tensors.
        progressbar: tqdm bar over (eps, batch).

    Returns:
        :class:`CertifyResult`.
    """
    eps_list = [_utils.check_eps(e) for e in np.atleast_1d(np.asarray(eps, float))]
    norm = _utils.check_norm(norm)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    _finite.check_model(model, name="certify: model")
    batches = _batches.as_batches(
        data, model=model, labels="class", images=True, batch_size=batch_size
    )
    bar = None
    if progressbar:
        from tqdm.auto import tqdm

        bar = tqdm(desc="certify", unit="batch")
    graph = None
    rows: list[list[Tensor]] = [[] for _ in eps_list]
    cleans = []
    for x, y in batches:
        with _utils.eval_mode(model), torch.no_grad():
            clean = (model(x).argmax(1) == y).cpu()
        if graph is None:
            graph = as_graph(model, x)
            _check_logits(graph)
        xd = x.detach().to(torch.float64)
        for row, e in zip(rows, eps_list):
            m = _margins(graph, xd, y, e, norm, method)
            row.append((m > 0).all(1).cpu() & clean)
        cleans.append(clean)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    clean = torch.cat(cleans)
    return CertifyResult(
        eps=np.asarray(eps_list, dtype=float),
        norm=norm,
        method=method,
        certified=torch.stack([torch.cat(r) for r in rows]).numpy(),
        clean_correct=clean.numpy(),
        meta={"model": type(model).__name__, "batch_size": batch_size},
    )

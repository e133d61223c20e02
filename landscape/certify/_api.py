"""Public calls: bounds on logits and margins, certified points, certified accuracy."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import _batches, _utils, io
from ._bounds import crown_bounds, ibp_bounds, margin_matrix
from ._network import AffineReLUNet, as_affine_relu

__all__ = [
    "CertifyResult",
    "certified",
    "certify",
    "logit_bounds",
    "margin_bounds",
]

METHODS = ("crown", "ibp")


def _setup(model, x, eps, norm, method):
    norm = _utils.check_norm(norm)
    eps = _utils.check_eps(eps)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    xd = x.detach().to(torch.float64)
    net = as_affine_relu(model, x.detach())
    net = AffineReLUNet(
        [w.double() for w in net.weights],
        [b.double() for b in net.biases],
        net.in_shape,
    )
    return net, xd, eps, norm


def _chunks(net: AffineReLUNet, n: int, budget: float = 3e7) -> int:
    """Examples per chunk: CROWN holds (chunk, n_k, n_{k-1}) coefficient tensors."""
    widest = max(w.shape[0] * max(w.shape) for w in net.weights)
    return max(1, min(n, int(budget // widest)))


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

    Example:
        >>> lin = nn.Linear(2, 1).double()
        >>> x = torch.full((1, 2), 0.5, dtype=torch.float64)
        >>> lo, hi = logit_bounds(lin, x, eps=0.1)
        >>> gap = (lin.weight.abs().sum() * 0.1).item()
        >>> z = lin(x).item()
        >>> abs(lo.item() - (z - gap)) < 1e-12, abs(hi.item() - (z + gap)) < 1e-12
        (True, True)
    """
    net, xd, eps, norm = _setup(model, x, eps, norm, method)
    step = _chunks(net, len(xd))
    los, his = [], []
    for i in range(0, len(xd), step):
        xc = xd[i : i + step]
        if method == "ibp":
            lo, hi = ibp_bounds(net, xc, eps, norm)[-1]
        else:
            lo, hi = crown_bounds(net, xc, eps, norm)
        los.append(lo)
        his.append(hi)
    return torch.cat(los), torch.cat(his)


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
    ``+inf`` at ``j = y``. CROWN bounds the margins directly (exact on a linear model);
    IBP subtracts logit intervals."""
    net, xd, eps, norm = _setup(model, x, eps, norm, method)
    y = y.long()
    k = net.weights[-1].shape[0]
    step = _chunks(net, len(xd))
    out = []
    for i in range(0, len(xd), step):
        xc, yc = xd[i : i + step], y[i : i + step]
        if method == "ibp":
            lo, hi = ibp_bounds(net, xc, eps, norm)[-1]
            m = lo.gather(1, yc.view(-1, 1)) - hi
        else:
            m, _ = crown_bounds(net, xc, eps, norm, spec=margin_matrix(yc, k, xd.dtype))
        out.append(m.scatter(1, yc.view(-1, 1), float("inf")))
    return torch.cat(out)


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
        method: ``"crown"`` or ``"ibp"``.
        certified: (E, N) bool, prediction provably constant (and correct) on the ball.
        clean_correct: (N,) bool.
        meta: settings and provenance.
    """

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
        model: a feed-forward ReLU net (``nn.Sequential`` of Linear / Conv / BatchNorm
            / Flatten / ReLU layers, or ``models.build("linear" | "mlp")``), bounded in
            eval mode.
        data: ``(x, y)`` tensors or an iterable of batches, x in [0, 1].
        eps: one budget or a sweep.
        norm: ``"linf"`` (ball intersected with the input box) or ``"l2"``.
        method: ``"crown"`` (default) or ``"ibp"``.
        batch_size: for ``(x, y)`` tensors.
        progressbar: tqdm bar over (eps, batch).

    Returns:
        :class:`CertifyResult`.
    """
    eps_list = [_utils.check_eps(e) for e in np.atleast_1d(np.asarray(eps, float))]
    batches = list(
        _batches.as_batches(
            data, model=model, labels="class", images=True, batch_size=batch_size
        )
    )
    with _utils.eval_mode(model), torch.no_grad():
        clean = torch.cat([model(x).argmax(1) == y for x, y in batches]).cpu()
    bar = None
    if progressbar:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(eps_list) * len(batches), desc="certify")
    rows = []
    for e in eps_list:
        row = []
        for x, y in batches:
            row.append(certified(model, x, y, eps=e, norm=norm, method=method).cpu())
            if bar is not None:
                bar.update(1)
        rows.append(torch.cat(row) & clean)
    if bar is not None:
        bar.close()
    return CertifyResult(
        eps=np.asarray(eps_list, dtype=float),
        norm=_utils.check_norm(norm),
        method=method,
        certified=torch.stack(rows).numpy(),
        clean_correct=clean.numpy(),
        meta={"model": type(model).__name__, "batch_size": batch_size},
    )

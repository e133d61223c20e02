"""SimBA and SimBA-DCT (Guo, Gardner, You, Wilson & Weinberger, 2019, "Simple Black-box
Adversarial Attacks", ICML), batched, with an explicit budget and a query cap.

Each example walks through its own random order of orthonormal directions ``q`` (pixel
basis, or low-frequency-first 2D DCT basis for SimBA-DCT). For each ``q`` it queries
``x - alpha q``; if the probability of the true class drops, the step is kept, else it
queries ``x + alpha q`` and keeps that if it helps. When one pass through all ``d``
directions ends with queries left, a new pass starts in a fresh random order, so the
query budget is used (one pass costs at most ``2 d`` queries: 1,569 on 28 x 28 pixels);
a pass in which an example accepted no step ends its search (on a deterministic model
the next pass could not do better). An example stops when it is misclassified, when it
used ``queries`` queries, or when a step would leave the L2 budget (``||delta||_2 <=
eps``): that ends the example's search, so an over-budget result is a failure, never a
success. An L-inf budget (``norm="linf"``, or ``eps_linf`` on top of L2) clips each
candidate into the ball instead; a candidate equal to the current point is not queried.
Results always lie inside the budget.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from .. import _utils
from ._base import Attack, Gen, Run
from ._losses import _check_first_output
from ._runs import finish, setup

__all__ = ["SimBA", "dct_matrix"]


def dct_matrix(n: int, *, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """Orthonormal DCT-II matrix ``D`` (rows are basis vectors): ``D @ D.T = I``.

    Example:
        >>> D = dct_matrix(4)
        >>> torch.allclose(D @ D.T, torch.eye(4, dtype=D.dtype))
        True
    """
    k = torch.arange(n, dtype=dtype, device=device).view(-1, 1)
    i = torch.arange(n, dtype=dtype, device=device).view(1, -1)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def _order(
    n: int, shape: tuple[int, ...], dct: bool, freq_frac: float, gen, device
) -> Tensor:
    """Per-example random orders of direction indices, shape (n, d)."""
    d = math.prod(shape)
    keys = torch.rand((n, d), generator=gen, device=device)
    if dct:
        c, h, w = shape
        u = torch.arange(h, device=device).view(1, h, 1).expand(c, h, w)
        v = torch.arange(w, device=device).view(1, 1, w).expand(c, h, w)
        band = torch.maximum(u.float() / h, v.float() / w).reshape(-1)
        # low-frequency block first (random inside), then the rest in frequency bands
        low = band < freq_frac
        keys = keys + torch.where(low, 0.0, 1.0 + torch.floor(band * 8)).view(1, -1)
    return keys.argsort(dim=1)


def _directions(ids: Tensor, shape: tuple[int, ...], dct: bool, mats, dtype) -> Tensor:
    n = ids.numel()
    q = torch.zeros((n, math.prod(shape)), dtype=dtype, device=ids.device)
    if not dct:
        q[torch.arange(n, device=ids.device), ids] = 1.0
        return q.view(n, *shape)
    c, h, w = shape
    dh, dw = mats
    ch, rest = ids // (h * w), ids % (h * w)
    u, v = rest // w, rest % w
    img = dh[u].unsqueeze(2) * dw[v].unsqueeze(1)  # (n, h, w), unit Frobenius norm
    q = q.view(n, c, h, w)
    q[torch.arange(n, device=ids.device), ch] = img
    return q


def _try_direction(model, idx, q, alpha, l2_budget, linf_budget, queries, state):
    """One SimBA step on the examples ``idx``: try ``-alpha q``, then ``+alpha q``,
    keep the first that lowers the true-class probability (updates ``state`` in place).
    An L-inf budget clips the candidate into the ball (a candidate equal to the current
    point costs no query); leaving the L2 budget ends the example's search."""
    x, y, x_adv, prob, wrong, active, progress, nq = state
    base = x_adv[idx]
    xi = x[idx]
    accepted = torch.zeros(idx.numel(), dtype=torch.bool, device=x.device)
    for sign in (-1.0, 1.0):
        cand = base + sign * alpha * q
        if math.isfinite(linf_budget):
            cand = torch.minimum(
                torch.maximum(cand, xi - linf_budget), xi + linf_budget
            )
        cand = cand.clamp(0, 1)
        delta = (cand - xi).flatten(1)
        ok_budget = delta.norm(dim=1) <= l2_budget + 1e-6
        if not ok_budget.all():  # leaving the L2 budget ends the search: a failure
            active[idx[~ok_budget & ~accepted]] = False
        moved = (cand != base).flatten(1).any(dim=1)
        try_ = ok_budget & moved & ~accepted & active[idx] & (nq[idx] < queries)
        sub = try_.nonzero().squeeze(1)
        if sub.numel() == 0:
            continue
        o = model(cand[sub])
        nq[idx[sub]] += 1
        p_new = o.softmax(1).gather(1, y[idx[sub]].view(-1, 1)).squeeze(1)
        good = p_new < prob[idx[sub]]
        gi = sub[good]
        x_adv[idx[gi]] = cand[gi]
        prob[idx[gi]] = p_new[good]
        accepted[gi] = True
        progress[idx[gi]] = True
        now_wrong = o.argmax(1) != y[idx[sub]]
        wrong[idx[sub[good & now_wrong]]] = True


@dataclasses.dataclass(frozen=True)
class SimBA(Attack):
    """SimBA (``dct=False``) or SimBA-DCT (``dct=True``) with a budget and a query cap
    (Guo et al., 2019); ``return_info=True`` returns ``success``, ``queries``,
    ``norm_l2`` and ``seed``.

    Attributes:
        norm: the budget's norm: ``"l2"`` (the default: SimBA's natural budget) or
            ``"linf"``.
        alpha: step length along each unit direction; default ``eps / 8`` for L2
            and ``eps`` for L-inf.
        eps_linf: optional extra L-inf budget on top of an L2 budget.
        queries: query cap per example (the initial forward counts as one).
        dct: use the low-frequency DCT basis (needs image inputs).
        freq_frac: fraction of the lowest frequencies (per axis) tried first, in
            (0, 1].
    """

    norm: str = "l2"
    alpha: float | None = None
    eps_linf: float | None = None
    queries: int = 10000
    dct: bool = True
    freq_frac: float = 0.25

    kind: ClassVar[str] = "black"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._count("queries")
        if self.alpha is not None:
            self._positive("alpha")
        if self.eps_linf is not None:
            object.__setattr__(
                self, "eps_linf", _utils.check_eps(self.eps_linf, "eps_linf")
            )
        self._positive("freq_frac", high=1.0)

    def _default_name(self) -> str:
        return "simba-dct" if self.dct else "simba"

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, gen: Gen, bar: bool) -> Run:
        eps, norm, queries, dct = self.eps, self.norm, self.queries, self.dct
        x, y, gen, seed = setup(x, y, gen)
        l2_budget = eps if norm == "l2" else float("inf")
        if norm == "linf":
            linf_budget = eps
        else:
            linf_budget = float("inf") if self.eps_linf is None else self.eps_linf
        alpha = self.alpha
        if alpha is None:
            alpha = eps / 8 if norm == "l2" else eps
        if dct and x.ndim != 4:
            raise ValueError("SimBA-DCT needs images (N, C, H, W); use dct=False")
        n, shape = x.shape[0], tuple(x.shape[1:])
        mats = None
        if dct:
            mats = (
                dct_matrix(shape[1], dtype=x.dtype, device=x.device),
                dct_matrix(shape[2], dtype=x.dtype, device=x.device),
            )
        x_adv = x.clone()
        nq = torch.zeros(n, dtype=torch.long, device=x.device)
        with _utils.eval_mode(model), torch.no_grad():
            out = model(x)
            _check_first_output(out, "simba", y)
            nq += 1
            prob = out.softmax(1).gather(1, y.view(-1, 1)).squeeze(1)
            wrong = out.argmax(1) != y
            active = ~wrong if eps > 0 else torch.zeros_like(wrong)
            d = math.prod(shape)
            passes = max(1, math.ceil((queries - 1) / d))
            it = range(passes * d)
            if bar:
                from .._progress import bar as _bar

                it = _bar(it, desc="simba", unit="queries", leave=False)
            progress = torch.zeros_like(active)
            for k in it:
                t = k % d
                if t == 0:  # a new pass: fresh random order; no progress in the
                    if k > 0:  # last pass means none is possible: stop there
                        active &= progress
                    order = _order(n, shape, dct, self.freq_frac, gen, x.device)
                    progress.zero_()
                active &= nq < queries
                idx = active.nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                q = _directions(order[idx, t], shape, dct, mats, x.dtype)
                state = (x, y, x_adv, prob, wrong, active, progress, nq)
                _try_direction(
                    model, idx, q, alpha, l2_budget, linf_budget, queries, state
                )
                active &= ~wrong
        # clamp rounding of the budget tolerance
        delta = x_adv - x
        if norm == "linf":
            x_adv = x + delta.clamp(-eps, eps)
        info = {"success": wrong, "queries": nq, "seed": seed}
        info["norm_l2"] = (x_adv - x).flatten(1).norm(dim=1)
        return finish(x_adv, x, eps, norm, "simba", info)

"""Square attack (Andriushchenko, Croce, Flammarion & Hein, 2020, ECCV): score-based
random search with square-shaped updates, L-inf and L2, with a query budget.

Per iteration one square window (side ``s``, shrinking with the schedule of ``p``, the
fraction of pixels changed) gets a new random perturbation; the candidate is kept when
it lowers the margin loss ``z_y - max_{j != y} z_j`` (or misclassifies). L-inf windows
are set to ``+-eps`` per channel (vertical stripes at the start). L2 updates move mass
between two windows with the paper's "rectangles" meta-pattern and keep the total norm
at eps. Every query is one forward pass of the points still correct; the initial point
counts as one query. On CPU a candidate equal to the current point (late in the
run, when the window already holds the drawn signs: ~20 % of the queries on an
MNIST CNN) is not sent through the model, as its margin is known; the result is the
same (for a deterministic model, the kind the evaluation presets attack with
Square).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from .. import _utils
from ._base import Attack, Gen, Run
from ._losses import _check_first_output, _expand, margin
from ._runs import compact_now, finish, host_reads_free, setup

__all__ = ["Square", "p_schedule"]


def p_schedule(i: int, queries: int, p_init: float, rescale: bool = False) -> float:
    """Fraction of pixels changed at iteration ``i``: the paper's piecewise-constant
    schedule (halving at iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000), as
    AutoAttack's standard version runs it (``resc_schedule=False``). With
    ``rescale=True`` the breakpoints are stretched to a budget of ``queries``
    (AutoAttack's ``resc_schedule=True``, its stand-alone default).

    Example:
        >>> p_schedule(0, 10000, 0.8), p_schedule(100, 10000, 0.8)
        (0.8, 0.2)
        >>> p_schedule(100, 1000, 0.8), p_schedule(100, 1000, 0.8, rescale=True)
        (0.2, 0.05)
    """
    it = int(i / max(queries, 1) * 10000) if rescale else int(i)
    for bound, div in (
        (10, 1),
        (50, 2),
        (200, 4),
        (500, 8),
        (1000, 16),
        (2000, 32),
        (4000, 64),
        (6000, 128),
        (8000, 256),
    ):
        if it <= bound:
            return p_init / div
    return p_init / 512


def _rand_sign(shape, gen, device, dtype) -> Tensor:
    return torch.randint(0, 2, shape, generator=gen, device=device).to(dtype) * 2 - 1


def _rand_int(high: int, gen, device) -> Tensor:
    """A random integer in [0, high) as a one-element tensor on ``device`` (never read
    on the host: windows are placed by index tensors, without a sync)."""
    return torch.randint(0, max(high, 1), (1,), generator=gen, device=device)


def _window(v: Tensor, s: int) -> Tensor:
    """The indices ``v, v + 1, ..., v + s - 1`` of a window starting at ``v``."""
    return v + torch.arange(s, device=v.device)


def _rectangles(a: int, b: int, device, dtype) -> Tensor:
    """Concentric rectangles with weights 1/(k+1)^2, centred in an a x b block."""
    d = torch.zeros(a, b, device=device, dtype=dtype)
    ca, cb = a // 2, b // 2
    for k in range(max(ca, cb) + 1):
        d[max(ca - k, 0) : min(ca + k + 1, a), max(cb - k, 0) : min(cb + k + 1, b)] += (
            1.0 / (k + 1) ** 2
        )
    return d / d.norm()


def _eta(s: int, gen, device, dtype) -> Tensor:
    """The L2 meta-pattern: +rectangles on one half, -rectangles on the other, unit norm,
    randomly transposed."""
    d = torch.zeros(s, s, device=device, dtype=dtype)
    d[: s // 2] = _rectangles(s // 2, s, device, dtype) if s // 2 else d[:0]
    d[s // 2 :] = -_rectangles(s - s // 2, s, device, dtype)
    d = d / d.norm()
    return torch.where(_rand_int(2, gen, device).bool(), d.t(), d)


def _l2_normalise(v: Tensor) -> Tensor:
    return v / (_expand(v.flatten(1).norm(dim=1), v) + 1e-12)


def _init_candidate(xs: Tensor, eps: float, norm: str, gen) -> Tensor:
    """The starting point: vertical stripes (L-inf) or the L2 grid of meta-patterns."""
    dev, dt = xs.device, xs.dtype
    c, h, w = xs.shape[1:]
    if norm == "linf":
        stripes = _rand_sign((xs.shape[0], c, 1, w), gen, dev, dt) * eps
        return (xs + stripes).clamp(0, 1)
    s = h // 5
    off = (h - 5 * s) // 2
    init = torch.zeros_like(xs)
    for i in range(h // s):
        for j in range(w // s):
            r0, c0 = off + i * s, off + j * s
            if r0 + s > h or c0 + s > w:
                continue
            init[:, :, r0 : r0 + s, c0 : c0 + s] += _eta(s, gen, dev, dt) * _rand_sign(
                (xs.shape[0], c, 1, 1), gen, dev, dt
            )
    return (xs + _l2_normalise(init) * eps).clamp(0, 1)


def _signs(idx: Tensor, n: int, c: int, gen, dev, dt) -> Tensor:
    """Random signs (len(idx), c, 1, 1) of the points ``idx``: drawn for all ``n``
    points of the batch, so a point's draws do not depend on which others are still
    being attacked."""
    return _rand_sign((n, c, 1, 1), gen, dev, dt)[idx]


def _linf_candidate(xs, xb, eps: float, p: float, gen, idx: Tensor, n: int) -> Tensor:
    """One L-inf proposal: a random window of side ``sqrt(p h w)`` set to ``+-eps``."""
    dev, dt = xs.device, xs.dtype
    c, h, w = xs.shape[1:]
    s = min(max(int(round(math.sqrt(p * h * w))), 1), h, w)
    vh, vw = _rand_int(h - s + 1, gen, dev), _rand_int(w - s + 1, gen, dev)
    win = (slice(None), slice(None), _window(vh, s)[:, None], _window(vw, s)[None])
    cand = xb.clone()
    cand[win] = xs[win] + eps * _signs(idx, n, c, gen, dev, dt)
    return torch.minimum(torch.maximum(cand, xs - eps), xs + eps).clamp(0, 1)


def _linf_query_cpu(model, xs, xb, mb, ys, nqs, active, eps, p, gen, idx, n):
    """One L-inf query where host reads are free (CPU), in place on ``xb``, ``mb``
    and ``nqs``: the same draws, candidates, margins and acceptances as
    :func:`_linf_candidate` and the loop of :meth:`Square._run`, bitwise, with the
    window as plain slices (its position read on the host) and only the window
    built and compared (outside it a candidate equals ``xb``, which the box and
    ball clamps leave as it is); rows equal to ``xb`` skip the model."""
    dev, dt = xs.device, xs.dtype
    c, h, w = xs.shape[1:]
    s = min(max(int(round(math.sqrt(p * h * w))), 1), h, w)
    vh = int(_rand_int(h - s + 1, gen, dev))
    vw = int(_rand_int(w - s + 1, gen, dev))
    signs = _signs(idx, n, c, gen, dev, dt)
    win = (slice(None), slice(None), slice(vh, vh + s), slice(vw, vw + s))
    xw = xs[win]
    nw = torch.minimum(torch.maximum(xw + eps * signs, xw - eps), xw + eps)
    nw = nw.clamp(0, 1)
    nqs += active.long()
    rows = (active & (nw != xb[win]).flatten(1).any(1)).nonzero().squeeze(1)
    if not rows.numel():
        return
    cand = xb[rows]
    cand[win] = nw[rows]
    m = margin(model(cand), ys[rows]).neg()
    better = m < mb[rows]
    if bool(better.any()):
        hit = rows[better]
        xb[hit] = cand[better]
        mb[hit] = m[better]


def _l2_candidate(xs, xb, eps: float, p: float, gen, idx: Tensor, n: int) -> Tensor:
    """One L2 proposal: move the perturbation's mass of two windows into the first,
    with a fresh meta-pattern, keeping the total norm at eps."""
    dev, dt = xs.device, xs.dtype
    c, h, w = xs.shape[1:]
    s = max(int(round(math.sqrt(p * h * w))), 3)
    s = min(s + (s % 2 == 0), h, w)
    vh, vw = _rand_int(h - s + 1, gen, dev), _rand_int(w - s + 1, gen, dev)
    vh2, vw2 = _rand_int(h - s + 1, gen, dev), _rand_int(w - s + 1, gen, dev)
    delta = xb - xs
    w1 = (slice(None), slice(None), _window(vh, s)[:, None], _window(vw, s)[None])
    w2 = (slice(None), slice(None), _window(vh2, s)[:, None], _window(vw2, s)[None])
    mask = torch.zeros_like(delta[:1, :1])
    mask[w1] = 1
    mask[w2] = 1
    n_win1 = delta[w1].pow(2).sum((-2, -1), keepdim=True).sqrt()
    n_wins = (delta * mask).pow(2).sum((-2, -1), keepdim=True).sqrt()
    n_img = _expand(delta.flatten(1).norm(dim=1), delta)
    new = _eta(s, gen, dev, dt).view(1, 1, s, s) * _signs(idx, n, c, gen, dev, dt)
    new = new + delta[w1] / (n_win1 + 1e-12)
    budget = ((eps**2 - n_img**2).clamp_min(0) / c + n_wins**2).sqrt()
    new = new / (new.pow(2).sum((-2, -1), keepdim=True).sqrt() + 1e-12)
    delta[w2] = 0
    delta[w1] = new * budget
    return (xs + _l2_normalise(delta) * eps).clamp(0, 1)


@dataclasses.dataclass(frozen=True)
class Square(Attack):
    """Square attack, untargeted, margin loss (Andriushchenko et al., 2020): L-inf or
    L2 (L2 needs images of H, W >= 5); the result is the accepted point of lowest
    margin; ``return_info=True`` returns ``success``, ``queries`` (per example) and
    ``seed``.

    Attributes:
        queries: query budget per example (initial point included; >= 2).
        p_init: initial fraction of changed pixels in (0, 1]; default 0.8
            (AutoAttack's value for both norms).
        rescale_schedule: stretch the schedule of ``p`` to ``queries`` (see
            :func:`p_schedule`); default ``False``, the schedule of AutoAttack's
            standard version, whatever the budget.
    """

    queries: int = 5000
    p_init: float | None = None
    rescale_schedule: bool = False

    kind: ClassVar[str] = "black"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._count("queries")
        if self.p_init is not None:
            self._positive("p_init", high=1.0)

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, gen: Gen, bar: bool) -> Run:
        eps, norm, queries = self.eps, self.norm, self.queries
        if x.ndim != 4:
            raise ValueError(
                f"square needs images (N, C, H, W), got shape {tuple(x.shape)}"
            )
        x, y, gen, seed = setup(x, y, gen)
        c, h, w = x.shape[1:]
        if norm == "l2" and min(h, w) < 5:
            raise ValueError(
                "the L2 square attack needs images of at least 5 x 5 pixels"
            )
        p_init = 0.8 if self.p_init is None else self.p_init
        n = x.shape[0]
        nq = torch.zeros(n, dtype=torch.long, device=x.device)
        with _utils.eval_mode(model), torch.no_grad():
            out = model(x)
            _check_first_output(out, "square", y)
            m_best = margin(out, y).neg()  # z_y - max_{j != y} z_j: > 0 iff correct
            x_best = x.clone()
            todo = m_best > 0
            if eps > 0 and todo.any():
                idx = todo.nonzero().squeeze(1)
                cand = _init_candidate(x[idx], eps, norm, gen)
                x_best[idx] = cand
                m_best[idx] = margin(model(cand), y[idx]).neg()
                nq[idx] += 1
                it = range(queries - 1)
                if bar:
                    from .._progress import bar as _bar

                    it = _bar(it, desc="square", unit="queries", leave=False)
                step = _linf_candidate if norm == "linf" else _l2_candidate
                free_reads = host_reads_free(x.device)
                # one host sync per compaction (compact_now), none per query: the
                # points broken in between are masked; the active points' state is
                # a compact working copy, written back at each compaction
                xs, xb, mb, ys = x[idx], x_best[idx], m_best[idx], y[idx]
                nqs = torch.zeros_like(nq[idx])
                for i in it:
                    if i == 0 or compact_now(i):
                        x_best[idx], m_best[idx], nq[idx] = xb, mb, nq[idx] + nqs
                        keep = (mb > 0).nonzero().squeeze(1)
                        idx, xs, xb, mb, ys = (v[keep] for v in (idx, xs, xb, mb, ys))
                        nqs = torch.zeros_like(idx)
                        if idx.numel() == 0:
                            break
                    active = mb > 0
                    p = p_schedule(i, queries, p_init, self.rescale_schedule)
                    if free_reads and norm == "linf":
                        _linf_query_cpu(model, xs, xb, mb, ys, nqs, active, eps, p,
                                        gen, idx, n)  # fmt: skip
                        continue
                    cand = step(xs, xb, eps, p, gen, idx, n)
                    if free_reads:
                        # a candidate equal to the current point (its window already
                        # holds the drawn signs) has the current margin, so it
                        # cannot be accepted: not sent through the model (it still
                        # counts as a query, as in AutoAttack)
                        new = active & (cand != xb).flatten(1).any(1)
                        rows = new.nonzero().squeeze(1)
                        m = mb.clone()
                        if rows.numel():
                            m[rows] = margin(model(cand[rows]), ys[rows]).neg()
                    else:
                        m = margin(model(cand), ys).neg()
                    nqs += active.long()
                    better = active & (m < mb)
                    xb = torch.where(_expand(better, cand), cand, xb)
                    mb = torch.where(better, m, mb)
                x_best[idx], m_best[idx], nq[idx] = xb, mb, nq[idx] + nqs
        info = {"success": m_best <= 0, "queries": nq, "seed": seed}
        return finish(x_best, x, eps, norm, "square", info)

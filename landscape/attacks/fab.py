"""FAB, the fast adaptive boundary attack (Croce & Hein, 2020, "Minimally distorted
adversarial examples with a fast adaptive boundary attack", ICML), L-inf and L2,
untargeted (:class:`FAB`) and targeted (:class:`FABT`, AutoAttack's FAB-T).

Each iteration linearises the decision boundary at the current point ``x_k``: for the
class ``j`` whose linearised boundary is closest (FAB-T: the target class),
``f_j - f_y`` and its input gradient give a hyperplane. FAB projects both ``x_k`` and
the original ``x`` onto that hyperplane inside the box ``[0, 1]^d`` (minimal L-inf /
L2 norm, :func:`project_hyperplane`), and moves to a convex combination of the two
projections, biased towards ``x`` by ``alpha = min(|d_k| / (|d_k| + |d_0|),
alpha_max)`` and extrapolated by ``eta``. A point that became adversarial is recorded
if it is closer to ``x`` than the best one so far and pulled back towards ``x`` by
``beta``. Defaults are the paper's and AutoAttack's (``alpha_max=0.1``,
``eta=1.05``, ``beta=0.9``, 100 iterations; FAB-T: 9 targets, one run each).

FAB minimises the norm; for a robustness evaluation at a budget eps a point counts as
broken when FAB found an adversarial point within eps, and such a point stops being
iterated (further iterations could only shrink its norm, never change the verdict), so
the result equals AutoAttack's FAB at the same budget in less time. The result is the
closest adversarial point found when it lies within eps, else ``x`` itself.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from .. import _utils
from ._base import Attack, Gen, Run, _Targeted
from ._losses import _check_first_output, _expand, _lp
from ._runs import (
    by_chunks,
    compact_now,
    finish,
    host_reads_free,
    runs,
    setup,
    target_order,
)

__all__ = ["FAB", "FABT", "project_hyperplane"]


def project_hyperplane(t: Tensor, w: Tensor, b: Tensor, norm: str) -> Tensor:
    """Smallest step ``d`` (per row, in ``norm``) with ``w . (t + d) = b`` and ``t + d``
    in the box ``[0, 1]^D``; the box-limited step of largest reach when the hyperplane
    is out of the box's reach.

    Exact: the optimal step moves each coordinate towards the hyperplane by
    ``min(lam * v_i, room_i)`` (``v_i = |w_i|`` for L2, ``1`` for L-inf; ``room_i`` the
    distance to the box face in that direction); the reach ``G(lam) = sum_i |w_i|
    min(lam v_i, room_i)`` is piecewise linear and increasing, so sorting its
    breakpoints ``room_i / v_i`` and one search per row find ``lam`` exactly.

    Args:
        t: points, shape (N, D).
        w: hyperplane normals, shape (N, D).
        b: offsets, shape (N,).
        norm: ``"linf"`` or ``"l2"``.

    Returns:
        ``d``, shape (N, D).

    Example:
        >>> t = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
        >>> w = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
        >>> project_hyperplane(t, w, torch.tensor([2.0], dtype=torch.float64), "l2")
        tensor([[0.1000, 0.2000]], dtype=torch.float64)
    """
    tau = b - (w * t).sum(1)
    s = torch.sign(w) * torch.sign(tau).unsqueeze(1)
    nz = w != 0
    room = torch.where(s > 0, 1 - t, t).clamp_min(0) * nz
    aw = w.abs()
    big = torch.finfo(w.dtype).max
    if norm == "l2":
        v = aw
        r = torch.where(v > 0, room / v.clamp_min(torch.finfo(w.dtype).tiny), big)
        av = aw * v
    else:  # v = 1 where w != 0 (0 elsewhere, where aw = 0): the same values
        v = nz.to(w.dtype)
        r = torch.where(nz, room, big)
        av = aw
    rs, perm = _sort_rows(r)
    reach = (aw * room).gather(1, perm).cumsum(1)  # A_k
    total = av.sum(1, keepdim=True)
    speed = total - av.gather(1, perm).cumsum(1)  # B_k
    g = reach + torch.where(rs < big, rs, 0) * speed  # G at the breakpoints
    c = tau.abs().unsqueeze(1)
    k = torch.searchsorted(g.contiguous(), c.contiguous()).clamp_max(g.shape[1] - 1)
    a_prev = torch.where(k > 0, reach.gather(1, (k - 1).clamp_min(0)), 0)
    b_prev = torch.where(k > 0, speed.gather(1, (k - 1).clamp_min(0)), total)
    lam = (c - a_prev) / b_prev.clamp_min(torch.finfo(w.dtype).tiny)
    lam = torch.where(g[:, -1:] < c, big, lam)  # out of reach: go to the box faces
    return s * torch.minimum(lam * v, room)


def _sort_rows(r: Tensor) -> tuple[Tensor, Tensor]:
    """``r.sort(dim=1, stable=True)`` for rows of values >= 0; on CPU in float32
    by one NumPy sort of int64 keys (the value's bits, then the column), 2-4x
    faster than torch's sort (issue 29: FAB's projection)."""
    if not host_reads_free(r.device) or r.dtype != torch.float32 or r.shape[1] >= 2**31:
        return r.sort(dim=1, stable=True)
    import numpy as np

    a = (r + 0.0).contiguous().numpy()  # -0.0 -> 0.0; bits of values >= 0 sort
    key = a.view(np.int32).astype(np.int64) << 32
    key |= np.arange(a.shape[1], dtype=np.int64)
    key.sort(axis=1)
    perm = torch.from_numpy(key & 0xFFFFFFFF)
    rs = torch.from_numpy((key >> 32).astype(np.int32).view(np.float32))
    return rs, perm


def _start(x0: Tensor, eps: float, norm: str, gen) -> Tensor:
    """AutoAttack's random start for restarts: half the budget, random direction."""
    if norm == "linf":
        u = (
            2 * torch.rand(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
            - 1
        )
        u = u / u.flatten(1).abs().amax(1).clamp_min(1e-12).view(
            -1, *[1] * (u.ndim - 1)
        )
    else:
        u = torch.randn(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
        u = u / u.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (u.ndim - 1))
    return (x0 + 0.5 * eps * u).clamp(0, 1)


def _linearise(model, x1, y, target, norm: str) -> tuple[Tensor, Tensor, Tensor]:
    """Closest linearised boundary at ``x1``: ``(df, dg, wrong)`` with ``df`` (M,) the
    logit difference ``f_j - f_y`` and ``dg`` (M, D) its input gradient."""
    xi = x1.detach().requires_grad_(True)
    with torch.enable_grad():
        out = model(xi)
        rows = torch.arange(len(y), device=y.device)
        if target is not None:
            df = out[rows, target] - out[rows, y]
            (dg,) = torch.autograd.grad(df.sum(), xi)
            return df.detach(), dg.flatten(1), out.detach().argmax(1) != y
        grads = []
        for j in range(out.shape[1]):  # the Jacobian, one class at a time
            (gj,) = torch.autograd.grad(out[:, j].sum(), xi, retain_graph=True)
            grads.append(gj.flatten(1))
    jac = torch.stack(grads, 1)  # (M, K, D)
    df = (out - out[rows, y].unsqueeze(1)).detach()
    dg = jac - jac[rows, y].unsqueeze(1)
    df[rows, y] = float("inf")
    dual = dg.abs().sum(-1) if norm == "linf" else dg.norm(dim=-1)
    j = (df.abs() / (dual + 1e-12)).argmin(1)
    return df[rows, j], dg[rows, j], out.detach().argmax(1) != y


def _one_run(
    model, x0, y, target, *, eps, norm, steps, alpha_max, eta, beta, start,
    group=None, num_groups=0,
):  # fmt: skip
    """One FAB run; returns (best adversarial point, its norm (inf if none), #grad).

    ``group``: the rows are (point, target) pairs, ``group`` (M,) the point of each
    row (``0 .. num_groups - 1``); at a compaction the rows of a point that another
    of its rows broke within eps stop too (the verdict cannot change; a row's
    iterates never depend on the other rows)."""
    n = x0.shape[0]
    best = torch.full((n,), float("inf"), device=x0.device, dtype=x0.dtype)
    best_x = x0.clone()
    x1 = x0.clone() if start is None else start
    idx = torch.arange(n, device=x0.device)
    num_grad = 0
    for t in range(steps):
        # broken within eps: the verdict cannot change. The active set shrinks at
        # compact_now(t) only (a host sync); in between, finished points are masked
        if t == 0 or compact_now(t):
            live = best[idx] > eps
            if group is not None:
                hits = torch.zeros(num_groups, dtype=torch.long, device=x0.device)
                hits.index_add_(0, group, (best <= eps).long())
                live = live & (hits[group[idx]] == 0)
            idx = idx[live.nonzero().squeeze(1)]
            if idx.numel() == 0:
                break
        active = best[idx] > eps
        xk, xo, yk = x1[idx], x0[idx], y[idx]
        tk = None if target is None else target[idx]
        df, dg, _ = by_chunks(
            lambda a, b, c: _linearise(model, a, b, c, norm), idx.numel(),
            xk.device, xk, yk, tk,
        )  # fmt: skip
        num_grad += idx.numel()
        m = idx.numel()
        w = dg
        b = -df + (w * xk.flatten(1)).sum(1)
        d = project_hyperplane(
            torch.cat([xk.flatten(1), xo.flatten(1)]), torch.cat([w, w]),
            torch.cat([b, b]), norm,
        )  # fmt: skip
        a = _lp(d, norm).clamp_min(1e-8)
        alpha = (a[:m] / (a[:m] + a[m:])).clamp(0, alpha_max).view(-1, 1)
        xf = ((xk.flatten(1) + eta * d[:m]) * (1 - alpha)) + (
            (xo.flatten(1) + eta * d[m:]) * alpha
        )
        xk = xf.view_as(xk).clamp(0, 1)
        with torch.no_grad():
            (pred,) = by_chunks(lambda a: (model(a).argmax(1),), m, xk.device, xk)
            adv = pred != yk
        dist = _lp(xk - xo, norm)
        closer = active & adv & (dist < best[idx])
        best[idx] = torch.where(closer, dist, best[idx])
        best_x[idx] = torch.where(_expand(closer, xk), xk, best_x[idx])
        x1[idx] = torch.where(_expand(adv, xk), xo + beta * (xk - xo), xk)
    return best_x, best, num_grad


def _fab_t_batched(atk, model, x, y, gen, order, targets, broken, x_adv, dist, bar):
    """FAB-T: each restart runs all targets at once, one batch of (point, target)
    pairs (target-major) instead of one pass per target; a point's pairs stop once
    one of them found an adversarial point within eps (at the next compaction).
    Each pair's run is the run the target-by-target loop would make (the first
    restart starts at ``x``, so it is deterministic), hence a point is broken here
    exactly when the loop breaks it; a broken point's result comes from the first
    target, in order, that broke it. Updates ``broken``, ``x_adv`` and ``dist`` (the
    smallest adversarial distance found) in place; returns the number of gradient
    evaluations."""
    num_grad = 0
    num_t = len(targets)
    cols = torch.as_tensor(targets, device=x.device)
    eps, norm = atk.eps, atk.norm
    for _, r, idx in runs(
        broken, [0] if targets else [], atk.restarts, progressbar=bar, desc="fab_t"
    ):
        m = idx.numel()
        pair = idx.repeat(num_t)
        target = order[idx][:, cols].t().reshape(-1)
        group = torch.arange(m, device=x.device).repeat(num_t)
        x0 = x[pair]
        start = None if r == 0 else _start(x0, eps, norm, gen)
        bx, bd, ng = _one_run(
            model, x0, y[pair], target, eps=eps, norm=norm, steps=atk.steps,
            alpha_max=atk.alpha_max, eta=atk.eta, beta=atk.beta, start=start,
            group=group, num_groups=m,
        )  # fmt: skip
        num_grad += ng
        bd = bd.view(num_t, m)
        dist[idx] = torch.minimum(dist[idx], bd.amin(0))
        hits = bd <= eps
        hit = hits.any(0)
        first = hits.long().argmax(0)  # the first target (in order) that broke it
        rows = torch.arange(m, device=x.device)
        x_adv[idx[hit]] = bx.view(num_t, m, *x.shape[1:])[first, rows][hit]
        broken[idx[hit]] = True
    return num_grad


@dataclasses.dataclass(frozen=True)
class FAB(Attack):
    """FAB, untargeted (Croce & Hein, 2020): the full Jacobian (one backward pass per
    class) per iteration. ``eps``: a point is broken when FAB finds an adversarial
    point within it; also the scale of later restarts' random starts. The result is
    the closest adversarial point found if within eps, else ``x``;
    ``return_info=True`` returns ``success``, ``norm`` (the smallest adversarial
    distance found, inf where none was), ``num_grad`` and ``seed``.

    Attributes:
        steps: iterations per run (paper and AutoAttack: 100).
        restarts: runs on the points not yet broken; the first starts at ``x``,
            later ones at a random point at distance ``eps / 2`` (as AutoAttack).
        alpha_max, eta, beta: the paper's bias towards ``x``, extrapolation and
            backward step.
    """

    steps: int = 100
    restarts: int = 1
    alpha_max: float = 0.1
    eta: float = 1.05
    beta: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        self._count("steps")
        self._count("restarts")
        for name in ("alpha_max", "eta", "beta"):
            self._positive(name)

    def _num_targets(self) -> int:
        return 0

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, gen: Gen, bar: bool) -> Run:
        num_targets = self._num_targets()
        where = "fab_t" if num_targets else "fab"
        eps, norm = self.eps, self.norm
        x, y, gen, seed = setup(x, y, gen)
        num_grad = 0
        with _utils.eval_mode(model), torch.no_grad():
            out = model(x)
            _check_first_output(out, where, y)
            broken = out.argmax(1) != y
            x_adv = x.clone()
            dist = torch.full(
                (x.shape[0],), float("inf"), device=x.device, dtype=x.dtype
            )
            dist[broken] = 0
            order, targets = target_order(out, num_targets)
            plan = targets if eps > 0 else []
            if num_targets:
                num_grad = _fab_t_batched(
                    self, model, x, y, gen, order, plan, broken, x_adv, dist, bar
                )
                plan = []
            for t, r, idx in runs(
                broken, plan, self.restarts, progressbar=bar, desc=where
            ):
                x0 = x[idx]
                start = None if r == 0 else _start(x0, eps, norm, gen)
                bx, bd, ng = _one_run(
                    model, x0, y[idx], order[idx, t] if num_targets else None,
                    eps=eps, norm=norm, steps=self.steps, alpha_max=self.alpha_max,
                    eta=self.eta, beta=self.beta, start=start,
                )  # fmt: skip
                num_grad += ng
                closer = bd < dist[idx]
                dist[idx[closer]] = bd[closer]
                hit = bd <= eps
                x_adv[idx[hit]] = bx[hit]
                broken[idx[hit]] = True
        info = {"success": broken, "norm": dist, "num_grad": num_grad, "seed": seed}
        return finish(x_adv, x, eps, norm, where, info)


@dataclasses.dataclass(frozen=True)
class FABT(_Targeted, FAB):
    """FAB-T, AutoAttack's targeted FAB: FAB towards the ``num_targets`` most likely
    wrong classes (ranked on the clean input), ``restarts`` runs each, one backward
    pass per iteration; points already broken are not attacked again (AutoAttack's
    standard FAB-T: 9 targets, one run, 100 iterations). Each restart runs all
    targets as one batch of (point, target) pairs, which stop once their point is
    broken within eps (the same verdicts as one target at a time)."""

    def _default_name(self) -> str:
        return "fab-t"

    def _num_targets(self) -> int:
        return self.num_targets

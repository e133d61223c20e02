"""Auto-PGD (Croce & Hein, 2020, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks", ICML): APGD-CE, APGD-DLR and APGD-T.

Written from the paper (Algorithm 1): step size ``eta = 2 eps``; momentum ``alpha=0.75``
(none on the first step); checkpoints ``w_j = ceil(p_j N)`` with ``p_0 = 0``,
``p_1 = 0.22`` and ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``; at a checkpoint
the step size is halved and the iterate reset to the best point found so far when

1. the loss increased in fewer than ``rho * (w_j - w_{j-1})`` of the steps since the
   last checkpoint (``rho = 0.75``), or
2. the step size was not reduced at the last checkpoint and the best loss did not
   improve since then.

Restarts re-attack, from a fresh random start, only the points not yet broken. APGD-T
runs the targeted DLR loss against the ``num_targets`` most likely wrong classes, again
on the points not yet broken: target by target (AutoAttack), or, with ``early_stop``,
all targets of a restart as one batch of (point, target) pairs (the same run per
pair; a point's pairs stop once one of them broke it).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from .. import _utils
from ._ball import project, random_init, step_direction
from ._base import Attack, Gen, Run, _Targeted
from ._losses import _check_first_output, _expand, dlr_targeted_loss, get_loss
from ._runs import by_chunks, compact_now, finish, runs, setup, target_order

__all__ = ["APGD", "APGDT", "checkpoints"]


def checkpoints(steps: int) -> list[int]:
    """Iterations at which APGD checks its step size (paper's ``w_j``).

    Example:
        >>> checkpoints(100)
        [22, 41, 57, 70, 80, 87, 93, 99]
    """
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    w = sorted({math.ceil(q * steps - 1e-9) for q in p[1:] if q <= 1})
    return [v for v in w if 0 < v <= steps]


def _one_run(
    model, x, y, target, *, eps, norm, steps, loss, rho, gen, eot_iter=1,
    early_stop=False, group=None, num_groups=0,
):  # fmt: skip
    """One APGD run; returns (x_best_adv_or_xmax, broken, f_max, num_grad).

    ``early_stop``: a point stops at its first misclassified iterate (the others'
    iterates do not change: every quantity of APGD is per point); the active set
    shrinks at :func:`._runs.compact_now` (a host sync), the points broken in
    between are masked. Else every point runs all steps and keeps its latest
    misclassified iterate (AutoAttack).

    ``group`` (with ``early_stop``): the rows are (point, target) pairs, ``group``
    (M,) the point of each row (``0 .. num_groups - 1``); at a compaction the rows
    of a point that another of its rows broke stop too (the point's verdict cannot
    change; each row's iterates never depend on the others)."""
    n = x.shape[0]
    dlr_t = dlr_targeted_loss
    loss_of = get_loss(loss) if target is None else None

    def grad_at(xa, y, target):
        return by_chunks(grad_rows, xa.shape[0], xa.device, xa, y, target)

    def grad_rows(xa, y, target):
        # EOT: loss and gradient averaged over eot_iter forward passes (a randomised
        # model draws fresh randomness in each); the prediction is the last pass's
        lv_sum, g_sum = 0.0, 0.0
        for _ in range(eot_iter):
            xi = xa.detach().requires_grad_(True)
            with torch.enable_grad():
                out = model(xi)
                lv = loss_of(out, y) if target is None else dlr_t(out, y, target)
                (g,) = torch.autograd.grad(lv.sum(), xi)
            lv_sum, g_sum = lv_sum + lv.detach(), g_sum + g.detach()
        return lv_sum / eot_iter, g_sum / eot_iter, out.detach().argmax(1) != y

    x_k = x + random_init(x, eps, norm, gen)
    f_k, g_k, wrong = grad_at(x_k, y, target)
    num_grad = n * eot_iter
    x_max, f_max, g_max = x_k.clone(), f_k.clone(), g_k.clone()
    broken = wrong.clone()
    x_adv = torch.where(_expand(wrong, x), x_k, x_max)
    eta = torch.full((n,), 2.0 * eps, device=x.device, dtype=x.dtype)
    x_prev = x_k.clone()
    w = checkpoints(steps)
    last_w = 0
    increases = torch.zeros(n, device=x.device)
    f_max_last = f_max.clone()
    reduced_last = torch.ones(n, dtype=torch.bool, device=x.device)
    # the results of all n points; the loop works on the active ones (idx)
    res_adv, res_broken, res_f = x_adv.clone(), broken.clone(), f_max.clone()
    idx = torch.arange(n, device=x.device)
    for k in range(steps):
        if early_stop and compact_now(k + 1):
            res_adv[idx], res_broken[idx], res_f[idx] = x_adv, broken, f_max
            done = broken
            if group is not None:
                hits = torch.zeros(num_groups, dtype=torch.long, device=x.device)
                done = done | (hits.index_add_(0, group, broken.long())[group] > 0)
            keep = (~done).nonzero().squeeze(1)
            if keep.numel() < idx.numel():
                idx, x, y = idx[keep], x[keep], y[keep]
                target = None if target is None else target[keep]
                group = None if group is None else group[keep]
                x_k, x_prev, x_max, x_adv = (
                    v[keep] for v in (x_k, x_prev, x_max, x_adv)
                )  # fmt: skip
                g_k, g_max, f_k, f_max = (v[keep] for v in (g_k, g_max, f_k, f_max))
                eta, increases, f_max_last, reduced_last, broken = (
                    v[keep] for v in (eta, increases, f_max_last, reduced_last, broken)
                )  # fmt: skip
            if idx.numel() == 0:
                break
        z = x + project(
            x_k + _expand(eta, x) * step_direction(g_k, norm) - x, x, eps, norm
        )
        a = 0.75 if k > 0 else 1.0
        x_new = x_k + a * (z - x_k) + (1 - a) * (x_k - x_prev)
        x_new = x + project(x_new - x, x, eps, norm)
        x_prev = x_k
        x_k = x_new
        f_new, g_k, wrong = grad_at(x_k, y, target)
        num_grad += x.shape[0] * eot_iter
        # the latest misclassified iterate, as AutoAttack: on a randomised model the
        # later iterates lie deeper and stay adversarial under fresh randomness more
        # often than the first one (deterministic models: the same verdict); with
        # early_stop the first one. (torch.where, not boolean masks: no host sync)
        new_adv = wrong & ~broken if early_stop else wrong
        x_adv = torch.where(_expand(new_adv, x), x_k, x_adv)
        broken = broken | wrong
        increases += (f_new > f_k).float()
        f_k = f_new
        better = f_k > f_max
        x_max = torch.where(_expand(better, x), x_k, x_max)
        f_max = torch.where(better, f_k, f_max)
        g_max = torch.where(_expand(better, x), g_k, g_max)
        x_adv = torch.where(_expand(broken, x), x_adv, x_max)
        if k + 1 in w:
            j = k + 1
            cond1 = increases < rho * (j - last_w)
            cond2 = ~reduced_last & (f_max_last >= f_max)
            red = cond1 | cond2
            eta = torch.where(red, eta / 2, eta)
            x_k = torch.where(_expand(red, x), x_max, x_k)
            g_k = torch.where(_expand(red, x), g_max, g_k)
            f_k = torch.where(red, f_max, f_k)
            reduced_last = red
            f_max_last = f_max.clone()
            increases.zero_()
            last_w = j
    res_adv[idx], res_broken[idx], res_f[idx] = x_adv, broken, f_max
    return res_adv, res_broken, res_f, num_grad


@dataclasses.dataclass(frozen=True)
class _APGDSettings(Attack):
    """The settings of :class:`APGD` and :class:`APGDT` (see :class:`APGD`)."""

    steps: int = 100
    restarts: int = 1
    rho: float = 0.75
    eot_iter: int = 1
    early_stop: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self._count("steps")
        self._count("restarts")
        self._count("eot_iter")
        self._positive("rho")
        if not self.rho < 1:
            raise ValueError(f"rho must be in (0, 1), got {self.rho!r}")
        if not isinstance(self.early_stop, bool):
            raise TypeError("early_stop must be True or False")


@dataclasses.dataclass(frozen=True)
class APGD(_APGDSettings):
    """APGD with the CE (``loss="ce"``), DLR (``loss="dlr"``) or CW loss (Croce &
    Hein, 2020). The result is the last adversarial iterate of the run that broke
    the point (as AutoAttack keeps it), else the highest-loss point;
    ``return_info=True`` returns ``success``, ``num_grad`` and ``seed``.

    Attributes:
        steps: iterations per run (paper: 100).
        restarts: runs from fresh random starts on the points not yet broken.
        loss: ``"ce"``, ``"dlr"`` or ``"cw"``.
        rho: oscillation threshold of condition 1 (paper: 0.75).
        eot_iter: expectation over transformation: the loss and its gradient
            averaged over this many forward passes (randomised models).
        early_stop: stop iterating a point at its first misclassified iterate (its
            result; the verdict and the other points' runs do not change, only the
            cost; the evaluation presets set it). ``False`` (the default), and
            always with ``eot_iter > 1``: every point runs all steps and keeps its
            latest misclassified iterate, as AutoAttack (on a randomised model the
            later iterates stay adversarial more often).
    """

    loss: str = "ce"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.loss, str):
            raise TypeError(
                f"APGD's loss is a name ('ce', 'cw', 'dlr'), got {self.loss!r}"
            )
        self._loss()

    def _default_name(self) -> str:
        return f"apgd-{self.loss}"

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, gen: Gen, bar: bool) -> Run:
        return _apgd(self, model, x, y, gen, bar, loss=self.loss, num_targets=0)


@dataclasses.dataclass(frozen=True)
class APGDT(_Targeted, _APGDSettings):
    """APGD-T: APGD on the targeted DLR loss against the ``num_targets`` most likely
    wrong classes (ranked on the clean input; Croce & Hein, 2020), ``restarts`` runs
    each; points already broken are not attacked again. Needs >= 4 classes.
    Settings as :class:`APGD`, plus ``num_targets``. With ``early_stop`` (the
    evaluation presets') each restart runs all targets as one batch of (point,
    target) pairs, which stop once their point is broken; else target by target, as
    AutoAttack."""

    def _default_name(self) -> str:
        return "apgd-t"

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, gen: Gen, bar: bool) -> Run:
        return _apgd(
            self, model, x, y, gen, bar, loss="dlr", num_targets=self.num_targets
        )


def _apgd(atk, model, x, y, generator, progressbar, *, loss, num_targets) -> Run:
    """APGD (``num_targets=0``) or APGD-T on the points of ``(x, y)`` not yet
    broken, target by target and restart by restart."""
    where = "apgd_t" if num_targets else "apgd"
    eps, norm = atk.eps, atk.norm
    x, y, gen, seed = setup(x, y, generator)
    num_grad = 0
    with _utils.eval_mode(model):
        with torch.no_grad():
            out = model(x)
        _check_first_output(out, where, y)
        if num_targets and out.shape[1] < 4:
            raise ValueError("APGD-T needs at least 4 classes; use APGD(loss='cw')")
        broken = out.argmax(1) != y
        x_adv = x.clone()
        # highest loss reached so far per point (first target only: the targeted
        # losses of different targets are not comparable)
        best_f = torch.full(
            (x.shape[0],), float("-inf"), device=x.device, dtype=out.dtype
        )
        order, targets = target_order(out, num_targets)
        plan = targets if eps > 0 else []
        if num_targets and atk.early_stop and atk.eot_iter == 1:
            num_grad = _apgd_t_batched(
                atk, model, x, y, gen, order, targets if eps > 0 else [], broken,
                x_adv, best_f, progressbar,
            )  # fmt: skip
            plan = []
        for t, _, idx in runs(
            broken, plan, atk.restarts, progressbar=progressbar, desc=where
        ):
            target = order[idx, t] if num_targets else None
            xa, bb, fm, ng = _one_run(
                model, x[idx], y[idx], target, eps=eps, norm=norm, steps=atk.steps,
                loss=loss, rho=atk.rho, gen=gen, eot_iter=atk.eot_iter,
                early_stop=atk.early_stop and atk.eot_iter == 1,
            )  # fmt: skip
            num_grad += ng
            x_adv[idx[bb]] = xa[bb]
            if t == targets[0]:
                # unbroken points: keep the highest-loss point over all restarts
                keep = ~bb & (fm.to(best_f.dtype) > best_f[idx])
                x_adv[idx[keep]] = xa[keep]
                best_f[idx[keep]] = fm[keep].to(best_f.dtype)
            broken[idx[bb]] = True
    info = {"success": broken, "num_grad": num_grad, "seed": seed}
    return finish(x_adv, x, eps, norm, where, info)


def _apgd_t_batched(
    atk, model, x, y, gen, order, targets, broken, x_adv, best_f, progressbar
) -> int:
    """APGD-T with ``early_stop``: each restart runs all targets at once, one batch
    of (point, target) pairs (target-major) instead of one pass per target; a pair
    stops at its first adversarial iterate and a point's pairs stop once one of them
    broke it (at the next compaction). Every pair's run is the run the target-by-
    target loop would make from the same start, so a point is broken here exactly
    when the loop breaks it; only the random starts differ (drawn for all pairs at
    once), and a broken point's result comes from the first target, in order, that
    broke it in this batch. Updates ``broken``, ``x_adv`` and ``best_f`` in place;
    returns the number of gradient evaluations."""
    num_grad = 0
    num_t = len(targets)
    cols = torch.as_tensor(targets, device=x.device)
    for _, _, idx in runs(
        broken, [0] if targets else [], atk.restarts, progressbar=progressbar,
        desc="apgd_t",
    ):  # fmt: skip
        m = idx.numel()
        pair = idx.repeat(num_t)
        target = order[idx][:, cols].t().reshape(-1)
        group = torch.arange(m, device=x.device).repeat(num_t)
        xa, bb, fm, ng = _one_run(
            model, x[pair], y[pair], target, eps=atk.eps, norm=atk.norm,
            steps=atk.steps, loss="dlr", rho=atk.rho, gen=gen, early_stop=True,
            group=group, num_groups=m,
        )  # fmt: skip
        num_grad += ng
        bb = bb.view(num_t, m)
        hit = bb.any(0)
        first = bb.long().argmax(0)  # the first target (in order) that broke it
        xa = xa.view(num_t, m, *x.shape[1:])
        rows = torch.arange(m, device=x.device)
        x_adv[idx[hit]] = xa[first, rows][hit]
        # unbroken points: the highest-loss point of the first target's runs
        fm0 = fm[:m].to(best_f.dtype)
        keep = ~hit & (fm0 > best_f[idx])
        x_adv[idx[keep]] = xa[0][keep]
        best_f[idx[keep]] = fm0[keep]
        broken[idx[hit]] = True
    return num_grad

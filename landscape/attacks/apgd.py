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
runs the targeted DLR loss against the ``num_targets`` most likely wrong classes in
turn, again on the points not yet broken.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .. import _utils
from ._losses import _check_first_output, _expand, dlr_targeted_loss, get_loss
from ._runs import finish, runs, setup, target_order, targeted
from .perturb import project, random_init
from .pgd import step_direction

__all__ = ["apgd", "apgd_t", "checkpoints"]


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


def _run(model, x, y, target, *, eps, norm, steps, loss, rho, gen, eot_iter=1):
    """One APGD run; returns (x_best_adv_or_xmax, broken, f_max, num_grad)."""
    n = x.shape[0]
    if target is not None:

        def loss_fn(out, yy):
            return dlr_targeted_loss(out, yy, target)
    else:
        loss_fn = get_loss(loss)

    def grad_at(xa):
        # EOT: loss and gradient averaged over eot_iter forward passes (a randomised
        # model draws fresh randomness in each); the prediction is the last pass's
        lv_sum, g_sum = 0.0, 0.0
        for _ in range(eot_iter):
            xi = xa.detach().requires_grad_(True)
            with torch.enable_grad():
                out = model(xi)
                lv = loss_fn(out, y)
                (g,) = torch.autograd.grad(lv.sum(), xi)
            lv_sum, g_sum = lv_sum + lv.detach(), g_sum + g.detach()
        return lv_sum / eot_iter, g_sum / eot_iter, out.detach().argmax(1) != y

    x_k = x + random_init(x, eps, norm, gen)
    f_k, g_k, wrong = grad_at(x_k)
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
    for k in range(steps):
        z = x + project(
            x_k + _expand(eta, x) * step_direction(g_k, norm) - x, x, eps, norm
        )
        a = 0.75 if k > 0 else 1.0
        x_new = x_k + a * (z - x_k) + (1 - a) * (x_k - x_prev)
        x_new = x + project(x_new - x, x, eps, norm)
        x_prev = x_k
        x_k = x_new
        f_new, g_k, wrong = grad_at(x_k)
        num_grad += n * eot_iter
        # the latest misclassified iterate, as AutoAttack: on a randomised model the
        # later iterates lie deeper and stay adversarial under fresh randomness more
        # often than the first one (deterministic models: the same verdict)
        x_adv[wrong] = x_k[wrong]
        broken |= wrong
        increases += (f_new > f_k).float()
        f_k = f_new
        better = f_k > f_max
        x_max[better], f_max[better], g_max[better] = (
            x_k[better],
            f_k[better],
            g_k[better],
        )
        x_adv[~broken] = x_max[~broken]
        if k + 1 in w:
            j = k + 1
            cond1 = increases < rho * (j - last_w)
            cond2 = ~reduced_last & (f_max_last >= f_max)
            red = cond1 | cond2
            eta[red] /= 2
            x_k[red], g_k[red], f_k[red] = x_max[red], g_max[red], f_max[red]
            reduced_last = red
            f_max_last = f_max.clone()
            increases.zero_()
            last_w = j
    return x_adv, broken, f_max, num_grad


def apgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 100,
    restarts: int = 1,
    loss: str = "ce",
    rho: float = 0.75,
    eot_iter: int = 1,
    generator: torch.Generator | None = None,
    progressbar: bool = False,
    return_info: bool = False,
    _targets: int = 0,
) -> Tensor | tuple[Tensor, dict]:
    """APGD with the CE (``loss="ce"``) or DLR (``loss="dlr"``) loss.

    Args:
        model: classifier returning logits; eval mode during the attack, mode restored.
        x: inputs in [0, 1].
        y: labels.
        eps: budget (>= 0).
        norm: ``"linf"`` or ``"l2"``.
        steps: iterations per run (paper: 100).
        restarts: runs from fresh random starts on the points not yet broken.
        loss: ``"ce"``, ``"dlr"`` or ``"cw"``.
        rho: oscillation threshold of condition 1 (paper: 0.75).
        eot_iter: expectation over transformation: average the loss and its gradient
            over this many forward passes (for randomised models; AutoAttack's "rand"
            version uses 20).
        generator: randomness of the starts.
        progressbar: tqdm bar over runs.
        return_info: also return ``{"success", "num_grad", "seed"}``.

    Returns:
        ``x_adv`` (the last adversarial iterate of the run that broke the point, as
        AutoAttack keeps it; else the highest-loss point).
    """
    where = "apgd_t" if _targets else "apgd"
    x, y, eps, norm, gen, seed = setup(
        x, y, eps, norm, generator, steps=steps, restarts=restarts, eot_iter=eot_iter
    )
    num_grad = 0
    with _utils.eval_mode(model):
        with torch.no_grad():
            out = model(x)
        _check_first_output(out, where, y)
        if _targets and out.shape[1] < 4:
            raise ValueError("APGD-T needs at least 4 classes; use apgd(loss='cw')")
        broken = out.argmax(1) != y
        x_adv = x.clone()
        # highest loss reached so far per point (first target only: the targeted
        # losses of different targets are not comparable)
        best_f = torch.full(
            (x.shape[0],), float("-inf"), device=x.device, dtype=out.dtype
        )
        order, targets = target_order(out, _targets)
        plan = targets if eps > 0 else []
        for t, _, idx in runs(
            broken, plan, restarts, progressbar=progressbar, desc=where
        ):
            target = order[idx, t] if _targets else None
            xa, bb, fm, ng = _run(
                model,
                x[idx],
                y[idx],
                target,
                eps=eps,
                norm=norm,
                steps=steps,
                loss=loss,
                rho=rho,
                gen=gen,
                eot_iter=eot_iter,
            )
            num_grad += ng
            x_adv[idx[bb]] = xa[bb]
            if t == targets[0]:
                # unbroken points: keep the highest-loss point over all restarts
                keep = ~bb & (fm.to(best_f.dtype) > best_f[idx])
                x_adv[idx[keep]] = xa[keep]
                best_f[idx[keep]] = fm[keep].to(best_f.dtype)
            broken[idx[bb]] = True
    info = {"success": broken, "num_grad": num_grad, "seed": seed}
    return finish(x_adv, x, eps, norm, where, info if return_info else None)


def apgd_t(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 100,
    restarts: int = 1,
    num_targets: int = 9,
    rho: float = 0.75,
    eot_iter: int = 1,
    generator: torch.Generator | None = None,
    progressbar: bool = False,
    return_info: bool = False,
) -> Tensor | tuple[Tensor, dict]:
    """APGD-T: APGD on the targeted DLR loss against the ``num_targets`` most likely
    wrong classes (ranked on the clean input), ``restarts`` runs each; points already
    broken are not attacked again. Needs >= 4 classes. Arguments as :func:`apgd`."""
    return targeted(apgd, locals())

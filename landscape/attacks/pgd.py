"""Evaluation PGD (Madry et al., 2018) made strong: restarts, a step-size grid, CE or
margin losses, best iterate, per-step traces.

Differences from the training attack :func:`landscape.attacks.perturb`:

- every run keeps, per example, the *best* iterate (the first misclassified point, or
  the highest-loss point), not the last one;
- ``restarts`` random restarts per step size, each re-attacking only the points that
  no earlier run has broken, so the result is the per-example worst case;
- ``alpha`` may be a grid of step sizes at a fixed number of ``steps``; the grid is
  combined per example (a point counts as broken if any step size breaks it);
- losses ``"ce"``, ``"cw"`` (margin) and ``"dlr"``;
- optional per-step traces (``trace=True``) and query/gradient counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .. import _utils
from ._losses import _check_first_output, get_loss
from ._runs import finish, setup
from .perturb import project, random_init

__all__ = ["pgd", "step_direction"]


def step_direction(grad: Tensor, norm: str) -> Tensor:
    """Steepest-ascent direction of unit ``norm``: ``sign(g)`` (L-inf) or ``g/||g||_2``."""
    if norm == "linf":
        return grad.sign()
    n = grad.flatten(1).norm(dim=1).view(-1, *([1] * (grad.ndim - 1)))
    return grad / (n + 1e-12)


def _alphas(
    alpha: float | Sequence[float] | None, eps: float, steps: int
) -> list[float]:
    if alpha is None:
        return [2.5 * eps / max(steps, 1)]
    vals = (
        [float(alpha)] if isinstance(alpha, (int, float)) else [float(a) for a in alpha]
    )
    if not vals or any(a <= 0 for a in vals):
        raise ValueError(f"step sizes alpha must be > 0, got {alpha!r}")
    return vals


def _run(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    delta: Tensor,
    *,
    eps: float,
    norm: str,
    alpha: float,
    steps: int,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    early_stop: bool,
    trace: list | None,
) -> tuple[Tensor, Tensor, Tensor, int, int]:
    """One PGD run on ``x``; returns best point, broken flags, best loss, #grad, #fwd."""
    n = x.shape[0]
    best_x = (x + delta).clone()
    best_loss = torch.full((n,), float("-inf"), device=x.device, dtype=x.dtype)
    broken = torch.zeros(n, dtype=torch.bool, device=x.device)
    idx = torch.arange(n, device=x.device)
    num_grad = num_fwd = 0
    losses, accs = [], []
    for t in range(steps + 1):
        last = t == steps
        xi = (x[idx] + delta[idx]).detach()
        if not last:
            xi.requires_grad_(True)
        with torch.enable_grad() if not last else torch.no_grad():
            out = model(xi)
            lv = loss_fn(out, y[idx])
            if not last:
                (g,) = torch.autograd.grad(lv.sum(), xi)
        num_grad += 0 if last else idx.numel()
        num_fwd += idx.numel()
        lv = lv.detach()
        wrong = out.detach().argmax(1) != y[idx]
        upd = ~broken[idx] & (wrong | (lv > best_loss[idx]))
        best_x[idx[upd]] = xi.detach()[upd]
        best_loss[idx[upd]] = lv[upd]
        broken[idx[wrong]] = True
        if trace is not None:
            losses.append(lv.mean().item() if lv.numel() else float("nan"))
            accs.append(1.0 - broken.float().mean().item())
        if last:
            break
        if early_stop:
            keep = ~broken[idx]
            idx, g = idx[keep], g[keep]
            if idx.numel() == 0:
                break
        delta[idx] = project(
            delta[idx] + alpha * step_direction(g, norm), x[idx], eps, norm
        )
    if trace is not None:
        trace.append({"alpha": alpha, "loss": losses, "robust_accuracy": accs})
    return best_x, broken, best_loss, num_grad, num_fwd


def _restarts(model, x, y, st, *, alphas, restarts, patience, random_start, gen,
              progressbar, traces, run_kw):  # fmt: skip
    """Restarts x step sizes on the points not yet broken (updates ``st`` in place);
    returns (#grad, #forward, unbroken count after each restart)."""
    broken, x_adv, best_loss = st
    num_grad = num_fwd = 0
    curve: list[int] = []
    bar = None
    if progressbar:
        from tqdm.auto import tqdm

        bar = tqdm(total=restarts * len(alphas), desc="pgd")
    for r in range(restarts if alphas else 0):
        for a in alphas:
            idx = (~broken).nonzero().squeeze(1)
            if bar is not None:
                bar.update(1)
            if idx.numel() == 0:
                continue
            xs = x[idx]
            if random_start or r > 0:
                delta = random_init(xs, run_kw["eps"], run_kw["norm"], gen)
            else:
                delta = torch.zeros_like(xs)
            bx, bb, bl, ng, nf = _run(
                model, xs, y[idx], delta, alpha=a, trace=traces, **run_kw
            )
            num_grad, num_fwd = num_grad + ng, num_fwd + nf
            upd = bb | (bl > best_loss[idx])
            x_adv[idx[upd]] = bx[upd]
            best_loss[idx[upd]] = bl[upd]
            broken[idx[bb]] = True
            if traces is not None:
                traces[-1]["restart"] = r
        curve.append(int((~broken).sum()))
        if patience is not None and len(curve) > patience:
            if curve[-1] == curve[-1 - patience]:  # stable for `patience` restarts
                break
    if bar is not None:
        bar.close()
    return num_grad, num_fwd, curve


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 20,
    alpha: float | Sequence[float] | None = None,
    restarts: int = 1,
    patience: int | None = None,
    loss: str | Callable[[Tensor, Tensor], Tensor] = "ce",
    random_start: bool | None = None,
    early_stop: bool = True,
    trace: bool = False,
    generator: torch.Generator | None = None,
    progressbar: bool = False,
    return_info: bool = False,
) -> Tensor | tuple[Tensor, dict]:
    """Strong PGD with restarts and a step-size grid, keeping the per-example worst case.

    For every step size in ``alpha`` and every restart, PGD runs ``steps`` steps on the
    points that no earlier run has misclassified; each run keeps its best iterate.

    Args:
        model: classifier returning logits (or log-probabilities); any ``nn.Module``,
            ensembles included. Put in eval mode for the attack, mode restored after.
        x: inputs in [0, 1], shape (N, ...).
        y: labels (class indices).
        eps: budget (>= 0) in input units.
        norm: ``"linf"`` or ``"l2"``.
        steps: gradient steps per run.
        alpha: absolute step size, or a grid of them; default ``2.5 * eps / steps``.
        restarts: runs per step size (the first starts at a random point of the ball,
            or at ``x`` when ``random_start=False``; later ones always at random).
        patience: early exit: stop once ``patience`` restarts in a row (each over the
            whole step-size grid) broke no further point; ``None`` runs all restarts.
        loss: ``"ce"``, ``"cw"`` (margin), ``"dlr"`` or a per-example callable.
        random_start: random start for the first run; default (``None``): random for
            L-inf, ``x`` itself for L2. From a random point of the L2 ball, steps of
            ``2.5 eps / steps`` turn along the sphere too slowly to reach the worst
            case (on a linear classifier 50 steps leave points unbroken that the
            closed form breaks); from ``x`` the first ``steps / 2.5`` steps already
            reach it. Later restarts always start at random.
        early_stop: stop updating a point once it is misclassified (its result is the
            first adversarial iterate; other points are unaffected).
        trace: record per-step mean loss and robust accuracy of every run in
            ``info["trace"]`` (implies ``return_info``).
        generator: randomness of the starts (deterministic under a seed).
        progressbar: show a tqdm bar over runs.
        return_info: also return a dict with ``success`` (per-example bool),
            ``num_grad`` / ``num_forward`` (input-gradient and forward passes, summed
            over examples), ``seed``, ``restart_curve`` (number of points still
            unbroken after each restart that ran: the robust accuracy vs restarts
            curve) and, with ``trace``, ``trace``.

    Returns:
        ``x_adv`` inside the eps-ball and [0, 1] (and ``info`` if asked).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
        >>> x, y = torch.rand(6, 1, 2, 2), torch.randint(0, 3, (6,))
        >>> xa = pgd(model, x, y, eps=0.1, steps=5, alpha=[0.05, 0.01], restarts=2,
        ...          generator=torch.Generator().manual_seed(0))
        >>> bool((xa - x).abs().max() <= 0.1 + 1e-6)
        True
    """
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1 (or None), got {patience}")
    x, y, eps, norm, gen, seed = setup(
        x, y, eps, norm, generator, steps=steps, restarts=restarts
    )
    alphas = _alphas(alpha, eps, steps) if eps > 0 else []
    if random_start is None:
        random_start = norm == "linf"
    loss_fn = get_loss(loss)
    traces: list | None = [] if trace else None
    with _utils.eval_mode(model):
        with torch.no_grad():
            out = model(x)
        _check_first_output(out, "pgd", y)
        broken = out.argmax(1) != y
        x_adv = x.clone()
        best_loss = torch.full(
            (x.shape[0],), float("-inf"), device=x.device, dtype=x.dtype
        )
        st = (broken, x_adv, best_loss)
        num_grad, num_fwd, curve = _restarts(
            model, x, y, st, alphas=alphas, restarts=restarts, patience=patience,
            random_start=random_start, gen=gen, progressbar=progressbar and eps > 0,
            traces=traces, run_kw={"eps": eps, "norm": norm, "steps": steps,
            "loss_fn": loss_fn, "early_stop": early_stop},
        )  # fmt: skip
        num_fwd += x.shape[0]
    info = {"success": broken, "num_grad": num_grad, "num_forward": num_fwd}
    info.update(seed=seed, restart_curve=curve)
    if traces is not None:
        info["trace"] = traces
    return finish(x_adv, x, eps, norm, "pgd", info if return_info or trace else None)

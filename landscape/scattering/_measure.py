"""Gradients of the adversarial loss at w and w + s v: the scattering measurement."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from .. import _utils
from .._batches import as_batches, is_class_loss
from ..attacks.perturb import perturb, project, random_init
from ._common import (
    LossFn,
    Params,
    _AtParams,
    _check_eps_list,
    _check_scales,
    _loss_default,
    _params,
    _safe_cos,
    scatter_directions,
)
from ._results import ScatteringResult

__all__ = ["scattering", "adversarial_gradient"]


def adversarial_gradient(
    model: nn.Module,
    loss_fn: LossFn | None,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    params: Params | None = None,
    norm: str = "linf",
    alpha: float | None = None,
    steps: int = 10,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[Params, Tensor]:
    """Gradient of the loss on PGD examples, at the model's weights or at ``params``.

    The attack is :func:`landscape.attacks.perturb` run on the model evaluated at
    ``params`` (via ``functional_call``, eval mode); the caller's model is unchanged.

    Args:
        model: classifier returning logits.
        loss_fn: ``(logits, y) -> scalar`` (default mean cross-entropy); used for both
            the attack and the gradient.
        x: inputs in [0, 1]; y: labels.
        eps: budget; ``eps=0`` gives the clean gradient.
        params: weights to evaluate at (default: the model's own).
        norm, alpha, steps, random_start: PGD settings (see ``perturb``).
        generator: PGD random start; seed it identically to compare two weights.

    Returns:
        ``(grads, x_adv)``: gradients keyed like ``model.named_parameters()``.
    """
    loss_fn = loss_fn or _loss_default
    p = _params(model) if params is None else params
    net = _AtParams(model, p)
    xa = perturb(
        net,
        x,
        y,
        eps=eps,
        norm=norm,
        alpha=alpha,
        steps=steps,
        random_start=random_start,
        loss_fn=loss_fn,
        generator=generator,
    )
    names = list(p)
    prm = {n: t.detach().clone().requires_grad_(True) for n, t in p.items()}
    with _utils.eval_mode(model), torch.enable_grad():
        loss = loss_fn(functional_call(model, prm, (xa,)), y)
        g = torch.autograd.grad(loss, [prm[n] for n in names])
    return dict(zip(names, (t.detach() for t in g))), xa


def _batched_points(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    stacked: Params,
    *,
    eps: float,
    norm: str,
    alpha: float | None,
    steps: int,
    random_start: bool,
    seed: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Attack and differentiate at K stacked weights at once (torch.func.vmap).

    Mirrors :func:`landscape.attacks.perturb` step for step (same random start drawn
    from ``seed``, same step size, same projection). Returns the flat gradients
    ``(K, P)``, the perturbations ``(K, N, ...)`` and the losses ``(K,)``.
    """
    K = next(iter(stacked.values())).shape[0]
    names = list(stacked)

    def loss_at(p: Params, xin: Tensor) -> Tensor:
        return loss_fn(functional_call(model, p, (xin,)), y)

    delta = torch.zeros((K, *x.shape), dtype=x.dtype, device=x.device)
    if eps > 0 and (steps > 0 or random_start):
        if alpha is None:
            alpha = 2.5 * eps / max(steps, 1)
        if random_start:
            gen = torch.Generator(device=x.device).manual_seed(seed)
            delta = random_init(x, eps, norm, gen).expand(K, *x.shape).clone()
        xk = x.expand(K, *x.shape).reshape(K * x.shape[0], *x.shape[1:])
        gx = vmap(grad(loss_at, argnums=1), in_dims=(0, 0))
        for _ in range(steps):
            g = gx(stacked, x.unsqueeze(0) + delta)
            if norm == "linf":
                delta = delta + alpha * g.sign()
            else:
                n = g.flatten(2).norm(dim=2).view(K, -1, *([1] * (x.ndim - 1)))
                delta = delta + alpha * g / (n + 1e-12)
            delta = project(delta.reshape(xk.shape), xk, eps, norm).reshape(delta.shape)
    xa = (x.unsqueeze(0) + delta).detach()
    gw = vmap(torch.func.grad_and_value(loss_at, argnums=0), in_dims=(0, 0))
    gp, losses = gw(stacked, xa)
    flat = torch.cat([gp[n].reshape(K, -1) for n in names], dim=1)
    return flat, xa - x.unsqueeze(0), losses


def _first_batches(
    model: nn.Module, loss_fn: LossFn, data: Any, num_batches: int | None
) -> list[tuple[Tensor, Tensor]]:
    """The first ``num_batches`` validated batches of ``data`` on the model's device
    (inputs in [0, 1]: they are attacked)."""
    labels = "class" if loss_fn is _loss_default or is_class_loss(loss_fn) else "auto"
    out = []
    it = as_batches(data, model=model, labels=labels, images=True)
    for i, b in enumerate(it):
        if num_batches is not None and i >= num_batches:
            break
        out.append(b)
    return out


def scattering(
    model: nn.Module,
    loss_fn: LossFn | None,
    data: Iterable[tuple[Tensor, Tensor]],
    *,
    eps: float | Sequence[float],
    scales: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1),
    directions: str | Sequence[Params] = "random",
    num_directions: int = 4,
    norm: str = "linf",
    alpha: float | None = None,
    steps: int = 10,
    random_start: bool = True,
    num_batches: int | None = None,
    batched: bool = True,
    chunk_size: int | None = None,
    generator: torch.Generator | None = None,
    progressbar: bool = False,
) -> ScatteringResult:
    """Measure gradient scattering of the adversarial loss (Proposition 2).

    For every eps and batch, the adversarial examples are recomputed at ``w`` and at
    every ``w + s v`` with the *same* random start (one seed per (eps, batch), drawn
    from ``generator``), so the attacks differ only through the weights;
    ``random_start=False`` removes the random start altogether. The gradient at ``w`` is
    computed once per (eps, batch) and reused for every direction and scale.

    Args:
        model: classifier returning logits (evaluated in eval mode; unchanged).
        loss_fn: ``(logits, y) -> scalar``; default mean cross-entropy.
        data: iterable of ``(x, y)`` batches.
        eps: one budget or a list.
        scales: step sizes ``s > 0``.
        directions: ``"random"``, ``"filter"``, ``"hessian"`` (see
            :func:`scatter_directions`) or explicit directions (dicts by parameter name).
        num_directions: how many directions for a named kind.
        norm, alpha, steps: PGD settings (``alpha`` default ``2.5 eps / steps``).
        random_start: PGD random start (same at both points).
        num_batches: use only the first batches of ``data``.
        batched: attack all points of a batch together with ``torch.func.vmap``
            (fast); ``False`` loops over points with :func:`landscape.attacks.perturb`.
        chunk_size: with ``batched``, at most this many weight points per vmap call
            (bounds memory: each point holds a copy of the weights and the batch).
        generator: directions and attack seeds.
        progressbar: show a tqdm bar over (eps, batch).

    Returns:
        A :class:`ScatteringResult`.

    Raises:
        ValueError: negative eps, empty or non-positive scales, empty data, or
            directions whose names do not match the model's parameters.
    """
    from tqdm.auto import tqdm

    eps_arr = _check_eps_list(eps)
    s_arr = _check_scales(scales)
    norm = _utils.check_norm(norm)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if alpha is not None and not alpha > 0:
        raise ValueError(f"the step size alpha must be > 0, got {alpha}")
    loss_fn = loss_fn or _loss_default
    device, dtype = _utils.model_device(model), _utils.model_dtype(model)
    gen, seed = _utils.make_generator(generator)
    batches = _first_batches(model, loss_fn, data, num_batches)
    w = _params(model)
    if isinstance(directions, str):
        kind = directions
        dirs = scatter_directions(
            model, loss_fn, batches, kind=kind, num=num_directions, generator=gen
        )
    else:
        kind = "given"
        dirs = [dict(d) for d in directions]
        if not dirs:
            raise ValueError("directions is empty")
    for d in dirs:
        if set(d) != set(w):
            raise ValueError(
                "direction names do not match the model's trainable parameters: "
                f"missing {sorted(set(w) - set(d))}, extra {sorted(set(d) - set(w))}"
            )
    dirs = [{n: d[n].to(device=device, dtype=w[n].dtype) for n in w} for d in dirs]
    D, S, E, B = len(dirs), len(s_arr), len(eps_arr), len(batches)
    dnorm = np.array([float(_utils.flatten(d).norm()) for d in dirs])
    if np.any(dnorm == 0):
        raise ValueError("a direction is all zeros: ||delta w|| would be 0")
    step_norm = dnorm[:, None] * s_arr[None, :]
    # the K = 1 + D*S weight points; point 0 is w itself
    points: list[Params] = [w]
    for d in dirs:
        for s in s_arr:
            points.append({n: w[n] + float(s) * d[n] for n in w})
    K = len(points)
    chunk = K if chunk_size is None else max(1, int(chunk_size))
    seeds = torch.randint(0, 2**62, (E, B), generator=gen).tolist()

    shape = (E, D, S, B)
    out = {k: np.zeros(shape) for k in ("grad_diff", "cosine", "gnp", "pcos", "scos")}
    grad_norm, loss_w = np.zeros((E, B)), np.zeros((E, B))
    bar = tqdm(total=E * B, desc="scattering", disable=not progressbar)
    with _utils.eval_mode(model):
        for e, ep in enumerate(eps_arr):
            for b, (x, y) in enumerate(batches):
                sd = seeds[e][b]
                g_all, d_all, l_all = [], [], []
                for lo in range(0, K, chunk):
                    pts = points[lo : lo + chunk]
                    if batched:
                        st = {n: torch.stack([p[n] for p in pts]) for n in w}
                        g, dl, ls = _batched_points(
                            model,
                            loss_fn,
                            x,
                            y,
                            st,
                            eps=float(ep),
                            norm=norm,
                            alpha=alpha,
                            steps=steps,
                            random_start=random_start,
                            seed=sd,
                        )
                    else:
                        gs, dls, lss = [], [], []
                        for p in pts:
                            gg, xa = adversarial_gradient(
                                model,
                                loss_fn,
                                x,
                                y,
                                eps=float(ep),
                                params=p,
                                norm=norm,
                                alpha=alpha,
                                steps=steps,
                                random_start=random_start,
                                generator=torch.Generator(device=x.device).manual_seed(
                                    sd
                                ),
                            )
                            gs.append(_utils.flatten(gg))
                            dls.append(xa - x)
                            with torch.no_grad():
                                lss.append(loss_fn(functional_call(model, p, (xa,)), y))
                        g, dl, ls = torch.stack(gs), torch.stack(dls), torch.stack(lss)
                    g_all.append(g.detach())
                    d_all.append(dl.detach())
                    l_all.append(ls.detach())
                g, dl = torch.cat(g_all), torch.cat(d_all)
                g0, gk = g[0], g[1:]
                grad_norm[e, b] = float(g0.norm())
                loss_w[e, b] = float(l_all[0][0])
                diff = (gk - g0).norm(dim=1)
                cos = _safe_cos(gk, g0.expand_as(gk))
                d0 = dl[0].flatten(1)
                dk = dl[1:].flatten(2)
                pc = _safe_cos(dk, d0.expand_as(dk)).mean(dim=1)
                sc = _safe_cos(dk.sign(), d0.sign().expand_as(dk)).mean(dim=1)
                for key, val in (
                    ("grad_diff", diff),
                    ("cosine", cos),
                    ("gnp", gk.norm(dim=1)),
                    ("pcos", pc),
                    ("scos", sc),
                ):
                    out[key][e, :, :, b] = val.view(D, S).cpu().double().numpy()
                bar.update(1)
    bar.close()
    if np.all(grad_norm == 0):
        warnings.warn(
            "all gradients at w are zero: is the loss saturated?", stacklevel=2
        )
    ratio = out["grad_diff"] / step_norm[None, :, :, None]
    meta = dict(
        seed=seed,
        attack_seeds=seeds,
        directions=kind,
        num_directions=D,
        direction_norms=dnorm.tolist(),
        norm=norm,
        alpha=alpha,
        steps=steps,
        random_start=random_start,
        batched=batched,
        num_batches=B,
        batch_sizes=[int(x.shape[0]) for x, _ in batches],
        device=str(device),
        dtype=str(dtype),
    )
    return ScatteringResult(
        eps=eps_arr,
        scales=s_arr,
        step_norm=step_norm,
        grad_diff=out["grad_diff"],
        ratio=ratio,
        cosine=out["cosine"],
        grad_norm_pert=out["gnp"],
        pert_cosine=out["pcos"],
        sign_cosine=out["scos"],
        grad_norm=grad_norm,
        loss=loss_w,
        meta=meta,
    )

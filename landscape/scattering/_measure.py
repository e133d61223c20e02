"""Gradients of the adversarial loss at w and w + s v: the scattering measurement."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from .. import _dist, _finite, _utils
from .._batches import Batched, as_batches, is_class_loss
from ..attacks import PGD
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
    attack: PGD,
    params: Params | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Params, Tensor]:
    """Gradient of the loss on PGD examples, at the model's weights or at ``params``.

    The attack is run on the model evaluated at ``params`` (via
    ``functional_call``, eval mode), ascending ``loss_fn``; the caller's model is
    unchanged.

    Args:
        model: classifier returning logits.
        loss_fn: ``(logits, y) -> scalar`` (default mean cross-entropy); used for both
            the attack and the gradient.
        x: inputs in [0, 1]; y: labels.
        attack: a :class:`~landscape.attacks.PGD` (or ``FGSMRS``) without a loss of
            its own; ``eps=0`` gives the clean gradient.
        params: weights to evaluate at (default: the model's own).
        generator: the attack's random start; seed it identically to compare two
            weights.

    Returns:
        ``(grads, x_adv)``: gradients keyed like ``model.named_parameters()``.
    """
    loss_fn = loss_fn or _loss_default
    _check_attack(attack)
    p = _params(model) if params is None else params
    net = _AtParams(model, p)
    xa = dataclasses.replace(attack, loss=loss_fn)(net, x, y, generator)
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
    attack: PGD,
    seed: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Attack and differentiate at K stacked weights at once (torch.func.vmap).

    Replays ``attack`` step for step with its own start and step (``attack.init``,
    ``attack.step``; the start drawn from ``seed``). Returns the flat gradients
    ``(K, P)``, the perturbations ``(K, N, ...)`` and the losses ``(K,)``.
    """
    K = next(iter(stacked.values())).shape[0]
    names = list(stacked)

    def loss_at(p: Params, xin: Tensor) -> Tensor:
        return loss_fn(functional_call(model, p, (xin,)), y)

    delta = torch.zeros((K, *x.shape), dtype=x.dtype, device=x.device)
    if attack.eps > 0:
        gen = torch.Generator(device=x.device).manual_seed(seed)
        delta = attack.init(x, gen).expand(K, *x.shape).clone()
        xk = x.expand(K, *x.shape).reshape(K * x.shape[0], *x.shape[1:])
        gx = vmap(grad(loss_at, argnums=1), in_dims=(0, 0))
        for _ in range(attack.steps):
            g = gx(stacked, x.unsqueeze(0) + delta)
            delta = attack.step(xk, delta.reshape(xk.shape), g.reshape(xk.shape))
            delta = delta.reshape(K, *x.shape)
    xa = (x.unsqueeze(0) + delta).detach()
    gw = vmap(torch.func.grad_and_value(loss_at, argnums=0), in_dims=(0, 0))
    gp, losses = gw(stacked, xa)
    flat = torch.cat([gp[n].reshape(K, -1) for n in names], dim=1)
    return flat, xa - x.unsqueeze(0), losses


def _first_batches(model: nn.Module, loss_fn: LossFn, data: Any) -> Batched:
    """The validated batches of ``data`` (inputs in [0, 1]: they are attacked),
    moved to the model's device one at a time when they are reached."""
    labels = "class" if loss_fn is _loss_default or is_class_loss(loss_fn) else "auto"
    return as_batches(data, model=model, labels=labels, images=True)


def _count(batches: Batched, num_batches: int | None) -> int:
    """How many batches the measurement uses: ``len(data)`` when the loader has
    one, else one pass over the source (nothing moved), capped at ``num_batches``."""
    try:
        total = len(batches)
    except TypeError:
        total = 0
        for _ in batches.source:
            total += 1
            if num_batches is not None and total >= num_batches:
                break
    if total == 0:
        raise ValueError(
            "data yields no batches: pass a non-empty (x, y) pair, a list of (x, y) "
            "batches or a DataLoader over a non-empty Dataset"
        )
    return total if num_batches is None else min(total, int(num_batches))


def _check_attack(attack: Any) -> None:
    """Scattering replays the attack at both weights from the same random start: a
    one-run PGD that ascends the loss it differentiates."""
    if not (isinstance(attack, PGD) and attack.keep == "last"):
        raise TypeError(
            "scattering replays the attack at both weights from the same random "
            "start: pass attack=attacks.PGD(...) or attacks.FGSMRS(...) (one run, "
            f"keep='last'), got {attack!r}"
        )
    if attack.loss is not None:
        raise ValueError(
            "scattering attacks the loss it differentiates (loss_fn): leave the "
            "attack's loss at None"
        )


def _strategy(strategy: str) -> str:
    if strategy not in ("vmap", "loop"):
        raise ValueError(f"strategy must be 'vmap' or 'loop', got {strategy!r}")
    return strategy


def _scatter_dirs(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Batched,
    directions: str | Sequence[Params],
    num_directions: int,
    gen: torch.Generator,
) -> tuple[str, list[Params], np.ndarray]:
    """The directions (named kind or given), checked, on the model's device, and
    their norms."""
    w = _params(model)
    device = _utils.model_device(model)
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
    dnorm = np.array([float(_utils.flatten(d).norm()) for d in dirs])
    _finite.check_host(dnorm, "the directions' norms")
    if np.any(dnorm == 0):
        raise ValueError("a direction is all zeros: ||delta w|| would be 0")
    return kind, dirs, dnorm


def _loop_points(model, loss_fn, x, y, pts, attack: PGD, seed: int):
    """Reference path: one :func:`adversarial_gradient` per weight point."""
    gs, dls, lss = [], [], []
    for p in pts:
        gg, xa = adversarial_gradient(
            model, loss_fn, x, y, attack=attack, params=p,
            generator=torch.Generator(device=x.device).manual_seed(seed),
        )  # fmt: skip
        gs.append(_utils.flatten(gg))
        dls.append(xa - x)
        with torch.no_grad():
            lss.append(loss_fn(functional_call(model, p, (xa,)), y))
    return torch.stack(gs), torch.stack(dls), torch.stack(lss)


def _measure_batch(
    model, loss_fn, x, y, points, attack: PGD, seed, strategy, chunk
) -> tuple[Tensor, Tensor, Tensor]:
    """Flat gradients ``(K, P)``, perturbations ``(K, N, ...)`` and losses ``(K,)`` at
    every weight point, in chunks of ``chunk`` points."""
    g_all, d_all, l_all = [], [], []
    names = list(points[0])
    for lo in range(0, len(points), chunk):
        pts = points[lo : lo + chunk]
        if strategy == "vmap":
            stacked = {n: torch.stack([p[n] for p in pts]) for n in names}
            g, dl, ls = _batched_points(
                model, loss_fn, x, y, stacked, attack=attack, seed=seed
            )
        else:
            g, dl, ls = _loop_points(model, loss_fn, x, y, pts, attack, seed)
        g_all.append(g.detach())
        d_all.append(dl.detach())
        l_all.append(ls.detach())
    return torch.cat(g_all), torch.cat(d_all), torch.cat(l_all)


def _statistics(g: Tensor, dl: Tensor) -> dict[str, Tensor]:
    """Scattering statistics of the points ``1..K-1`` against point 0 (``w``)."""
    g0, gk = g[0], g[1:]
    d0, dk = dl[0].flatten(1), dl[1:].flatten(2)
    return {
        "grad_diff": (gk - g0).norm(dim=1),
        "cosine": _safe_cos(gk, g0.expand_as(gk)),
        "gnp": gk.norm(dim=1),
        "pcos": _safe_cos(dk, d0.expand_as(dk)).mean(dim=1),
        "scos": _safe_cos(dk.sign(), d0.sign().expand_as(dk)).mean(dim=1),
    }


def _result(
    eps_arr, s_arr, step_norm, out, grad_norm, loss_w, meta, strategy, sizes,
    device, dtype,
) -> ScatteringResult:  # fmt: skip
    meta = dict(
        **meta,
        strategy=strategy,
        num_batches=len(sizes),
        batch_sizes=[int(n) for n in sizes],
        device=str(device),
        dtype=str(dtype),
    )
    return ScatteringResult(
        eps=eps_arr,
        scales=s_arr,
        step_norm=step_norm,
        grad_diff=out["grad_diff"],
        ratio=out["grad_diff"] / step_norm[None, :, :, None],
        cosine=out["cosine"],
        grad_norm_pert=out["gnp"],
        pert_cosine=out["pcos"],
        sign_cosine=out["scos"],
        grad_norm=grad_norm,
        loss=loss_w,
        meta=meta,
    )


def scattering(
    model: nn.Module,
    loss_fn: LossFn | None,
    data: Iterable[tuple[Tensor, Tensor]],
    *,
    attack: PGD,
    eps: float | Sequence[float] | None = None,
    scales: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1),
    directions: str | Sequence[Params] = "unit",
    num_directions: int = 4,
    num_batches: int | None = None,
    strategy: str = "vmap",
    chunk_size: int | None = None,
    generator: torch.Generator | None = None,
    progressbar: bool = False,
) -> ScatteringResult:
    """Measure gradient scattering of the adversarial loss (Proposition 2).

    For every eps and batch, the adversarial examples are recomputed at ``w`` and at
    every ``w + s v`` with the *same* random start (one seed per (eps, batch), drawn
    from ``generator``), so the attacks differ only through the weights; an attack
    with ``random_start=False`` removes the random start altogether. The gradient at
    ``w`` is computed once per (eps, batch) and reused for every direction and scale.

    Args:
        model: classifier returning logits (evaluated in eval mode; unchanged).
        loss_fn: ``(logits, y) -> scalar``; default mean cross-entropy (also the
            attack's objective).
        data: an ``(x, y)`` pair (one batch), a list of batches or a loader.
        attack: the attack replayed at both weights: ``attacks.PGD(...)`` or
            ``attacks.FGSMRS(...)`` (one run; its loss left at None: it ascends
            ``loss_fn``); each budget runs ``dataclasses.replace(attack, eps=e)``.
        eps: one budget or a list to sweep (default: the attack's ``eps``).
        scales: step sizes ``s > 0``.
        directions: ``"unit"`` (unit-norm Gaussian), ``"filter"``, ``"hessian"``
            (see :func:`scatter_directions`) or explicit directions (dicts by
            parameter name).
        num_directions: how many directions for a named kind.
        num_batches: use only the first batches of ``data``.
        strategy: ``"vmap"`` (default: attack all points of a batch together with
            ``torch.func.vmap``, replaying the attack with ``attack.init`` and
            ``attack.step``) or ``"loop"`` (point by point, calling the attack: the
            reference).
        chunk_size: with ``"vmap"``, at most this many weight points per vmap call
            (bounds memory: each point holds a copy of the weights and the batch).
        generator: directions and attack seeds (``None``: torch's global RNG).
        progressbar: progress over (eps, batch).

    Returns:
        A :class:`ScatteringResult`.

    Raises:
        ValueError: negative eps, empty or non-positive scales, empty data, or
            directions whose names do not match the model's parameters.
    """
    from .._progress import bar as _bar

    _check_attack(attack)
    _finite.check_model(model, name="scattering: model")
    eps_arr = _check_eps_list(attack.eps if eps is None else eps)
    strategy = _strategy(strategy)
    s_arr = _check_scales(scales)
    loss_fn = loss_fn or _loss_default
    device, dtype = _utils.model_device(model), _utils.model_dtype(model)
    gen, seed = _utils.make_generator(generator)
    batches = _first_batches(model, loss_fn, data)
    B = _count(batches, num_batches)
    kind, dirs, dnorm = _scatter_dirs(
        model, loss_fn, batches, directions, num_directions, gen
    )
    D, S, E = len(dirs), len(s_arr), len(eps_arr)
    step_norm = dnorm[:, None] * s_arr[None, :]
    w = _params(model)
    # the K = 1 + D*S weight points; point 0 is w itself
    points = [w] + [{n: w[n] + float(s) * d[n] for n in w} for d in dirs for s in s_arr]
    chunk = len(points) if chunk_size is None else max(1, int(chunk_size))
    seeds = torch.randint(0, 2**62, (E, B), generator=gen).tolist()
    # (eps, batch) pairs round robin over the ranks of a process group
    rank, world = _dist.info()
    keys = ("grad_diff", "cosine", "gnp", "pcos", "scos")
    out = {k: np.zeros((E, D, S, B)) for k in keys}
    grad_norm, loss_w = np.zeros((E, B)), np.zeros((E, B))
    sizes = np.zeros(B)
    bar = _bar(
        desc="scattering",
        total=E * B,
        unit="batches",
        enabled=progressbar,
        about=f"{E} eps x {B} batches, {len(points)} weight points each",
    )
    with _utils.eval_mode(model), _finite.checked_at_entry():
        for e, ep in enumerate(eps_arr):
            mine = lambda b, e=e: _dist.owned(e * B + b, rank, world)  # noqa: E731
            for b, (x, y) in batches.numbered(
                owned=mine if world > 1 else None,
                stop=None if num_batches is None else B,
            ):
                g, dl, ls = _measure_batch(
                    model, loss_fn, x, y, points,
                    dataclasses.replace(attack, eps=float(ep)), seeds[e][b], strategy,
                    chunk,
                )  # fmt: skip
                grad_norm[e, b] = float(g[0].norm())
                loss_w[e, b] = float(ls[0])
                if e == 0:  # one rank records each batch (the merge sums)
                    sizes[b] = len(x)
                where = f"at eps {float(ep):g}, batch {b}"
                _finite.check_host(  # values already read: no extra device read
                    [grad_norm[e, b], loss_w[e, b]], "the loss and gradient at w", where
                )
                for key, val in _statistics(g, dl).items():
                    out[key][e, :, :, b] = val.view(D, S).cpu().double().numpy()
                    _finite.check_host(
                        out[key][e, :, :, b],
                        f"the gradients at the perturbed weights ({key})",
                        f"{where} (scales {s_arr.tolist()})",
                    )
                bar.update(1)
    bar.close()
    if world > 1:
        _merge(out, grad_norm, loss_w, sizes, world)
    if np.all(grad_norm == 0):
        warnings.warn(
            "all gradients at w are zero: is the loss saturated?", stacklevel=2
        )
    return _result(
        eps_arr, s_arr, step_norm, out, grad_norm, loss_w,
        dict(seed=seed, attack_seeds=seeds, attack=attack.to_dict(), directions=kind,
             num_directions=D, direction_norms=dnorm.tolist(), world_size=world),
        strategy, sizes, device, dtype,
    )  # fmt: skip


def _merge(out: dict, grad_norm, loss_w, sizes, world: int) -> None:
    """Every rank's (eps, batch) results into the arrays of all ranks, in place:
    each entry was computed by one rank and is 0 on the others, so the sum over the
    ranks is exact."""
    arrays = [*out.values(), grad_norm, loss_w, sizes]
    flat = np.concatenate([v.reshape(-1) for v in arrays])
    merged = np.sum(_dist.all_gather_arrays(flat, world), axis=0)
    i = 0
    for v in arrays:
        v.reshape(-1)[:] = merged[i : i + v.size]
        i += v.size

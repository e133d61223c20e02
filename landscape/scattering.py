"""Gradient scattering of the adversarial loss (Liu et al., NeurIPS 2020, Prop. 2).

With ``L_ww`` the weight smoothness and ``L_wx`` the input-weight cross smoothness of
the loss, the adversarial loss ``L_eps(w) = max_{|d| <= eps} L(w, x + d)`` satisfies

    ||grad L_eps(w1) - grad L_eps(w2)|| <= L_ww ||w1 - w2|| + 2 eps L_wx.

The second term does not vanish as ``w2 -> w1``: the worst-case input jumps inside the
eps-ball when the weights move a little, so the gradients *scatter*, more for larger
eps. This module measures it. At weights ``w`` and ``w + s v`` (directions ``v``,
scales ``s``) it recomputes the adversarial examples (PGD with the *same* random start
at both points: one generator seed per (eps, batch), so the only difference between the
two attacks is the weights), takes the gradient of the loss on them and records

- ``ratio = ||g(w + s v) - g(w)|| / ||s v||``: an empirical gradient-Lipschitz ratio;
- ``cosine`` between the two gradients;
- ``excess``: the intercept of ``||delta g||`` against ``s`` as ``s -> 0`` (the
  ``2 eps L_wx`` term; :meth:`ScatteringResult.excess`);
- ``pert_cosine`` / ``sign_cosine``: how much the perturbations ``x_adv - x`` (and
  their signs) move between the two points, per example, averaged over the batch.

The caller's model is never modified: perturbed weights are evaluated with
``torch.func.functional_call`` (in eval mode). All points ``w, w + s_j v_d`` of a batch
are attacked and differentiated together with ``torch.func.vmap`` (``batched=True``);
``batched=False`` uses :func:`landscape.attacks.perturb` point by point (same numbers,
used by the tests as the reference).

Also: per-example gradient norms of the adversarial loss (:func:`gradient_norms`,
vectorised with ``torch.func``) and the gradient norms a trainer logged
(:func:`summarize_training_gradnorms`).

Command line: ``python -m landscape.scattering CHECKPOINT --dataset mnist --eps 0 0.1
0.3 -o data/results/scatter.npz`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from . import _utils
from .attacks.perturb import perturb, project, random_init
from .io import Result

__all__ = [
    "ScatteringResult",
    "GradNormStats",
    "TrainingGradNorms",
    "scattering",
    "adversarial_gradient",
    "gradient_norms",
    "per_example_grad_norms",
    "scatter_directions",
    "fit_excess",
    "concat_eps",
    "summarize_training_gradnorms",
    "main",
]

LossFn = Callable[[Tensor, Tensor], Tensor]
Params = dict[str, Tensor]


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ScatteringResult(Result):
    """Gradient scattering statistics; arrays are indexed ``[eps, direction, scale,
    batch]`` (shape ``(E, D, S, B)``) unless noted.

    Attributes:
        eps: budgets, shape ``(E,)``.
        scales: step sizes ``s``, shape ``(S,)``.
        step_norm: ``||s v||`` per direction and scale, shape ``(D, S)``.
        grad_diff: ``||g(w + s v) - g(w)||``.
        ratio: ``grad_diff / step_norm``.
        cosine: cosine between ``g(w)`` and ``g(w + s v)``.
        grad_norm_pert: ``||g(w + s v)||``.
        pert_cosine: mean over examples of the cosine between ``x_adv - x`` at ``w`` and
            at ``w + s v`` (1 when both are zero, e.g. eps = 0).
        sign_cosine: the same for ``sign(x_adv - x)``.
        grad_norm: ``||g(w)||`` per eps and batch, shape ``(E, B)``.
        loss: adversarial loss at ``w``, shape ``(E, B)``.
        meta: settings, seeds and provenance.
    """

    eps: np.ndarray
    scales: np.ndarray
    step_norm: np.ndarray
    grad_diff: np.ndarray
    ratio: np.ndarray
    cosine: np.ndarray
    grad_norm_pert: np.ndarray
    pert_cosine: np.ndarray
    sign_cosine: np.ndarray
    grad_norm: np.ndarray
    loss: np.ndarray
    meta: dict = field(default_factory=dict)

    def excess(self, *, max_scale: float | None = None) -> np.ndarray:
        """Intercept of ``||delta g||`` against ``s`` (least squares over the scales
        ``<= max_scale``), shape ``(E, D, B)``: the non-vanishing ``2 eps L_wx`` term.

        The fit is on ``||delta g||`` vs ``||s v||`` so filter-normalised directions of
        different lengths are comparable. Needs at least two scales.
        """
        return fit_excess(
            self.step_norm, self.grad_diff, max_scale=max_scale, scales=self.scales
        )[0]


@dataclass(frozen=True)
class GradNormStats(Result):
    """Gradient norms of the adversarial loss per eps.

    Attributes:
        eps: budgets, shape ``(E,)``.
        per_example: ``||grad_w loss(x_i_adv, y_i)||`` for every example, ``(E, N)``.
        batch: norm of the mini-batch gradient, ``(E, B)``.
        meta: settings and provenance.
    """

    eps: np.ndarray
    per_example: np.ndarray
    batch: np.ndarray
    meta: dict = field(default_factory=dict)

    def summary(self) -> dict[str, np.ndarray]:
        """Mean, std and the 5/25/50/75/95 % quantiles of the per-example norms per eps."""
        q = np.quantile(self.per_example, [0.05, 0.25, 0.5, 0.75, 0.95], axis=1)
        return {
            "mean": self.per_example.mean(axis=1),
            "std": self.per_example.std(axis=1),
            "q05": q[0],
            "q25": q[1],
            "median": q[2],
            "q75": q[3],
            "q95": q[4],
        }


@dataclass(frozen=True)
class TrainingGradNorms(Result):
    """Gradient norms logged by a trainer, per logged epoch.

    Attributes:
        epoch: epoch numbers, shape ``(T,)``.
        eps: eps in force at each epoch (NaN where not logged), shape ``(T,)``.
        values: every logged metric whose name mentions a gradient norm, ``(T,)`` each.
        target_eps: the run's target eps (from ``config.json``), NaN if unknown.
        meta: where it was read from.
    """

    epoch: np.ndarray
    eps: np.ndarray
    values: dict[str, np.ndarray]
    target_eps: float = float("nan")
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers
def _params(model: nn.Module) -> Params:
    return _utils.named_params(model)


def _loss_default(out: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(out, y)


def _check_scales(scales: Sequence[float]) -> np.ndarray:
    s = np.asarray(list(scales), dtype=np.float64).reshape(-1)
    if s.size == 0:
        raise ValueError(
            "scales is empty: pass step sizes such as (1e-4, 1e-3, 1e-2, 1e-1)"
        )
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(f"scales must be finite and > 0, got {s.tolist()}")
    return s


def _check_eps_list(eps: float | Sequence[float]) -> np.ndarray:
    eps_list = [eps] if np.isscalar(eps) else list(eps)
    if not eps_list:
        raise ValueError("eps is empty: pass one budget or a list, e.g. [0, 0.1, 0.3]")
    return np.array([_utils.check_eps(e) for e in eps_list], dtype=np.float64)


class _AtParams(nn.Module):
    """``model`` evaluated at ``params`` via ``functional_call`` (model unchanged)."""

    def __init__(self, model: nn.Module, params: Params) -> None:
        super().__init__()
        self.inner = model
        self._p = params

    def forward(self, x: Tensor) -> Tensor:
        return functional_call(self.inner, self._p, (x,))


def _safe_cos(a: Tensor, b: Tensor, dim: int = -1) -> Tensor:
    """Cosine along ``dim``; 1 where both vectors are zero, 0 where only one is."""
    na, nb = a.norm(dim=dim), b.norm(dim=dim)
    dot = (a * b).sum(dim=dim)
    cos = dot / (na * nb).clamp_min(torch.finfo(a.dtype).tiny)
    both0 = (na == 0) & (nb == 0)
    return torch.where(both0, torch.ones_like(cos), cos)


def _random_unit(model: nn.Module, num: int, gen: torch.Generator) -> list[Params]:
    p = _params(model)
    out = []
    for _ in range(num):
        d = {
            n: torch.randn(t.shape, generator=gen, dtype=t.dtype).to(t.device)
            for n, t in p.items()
        }
        nrm = _utils.flatten(d).norm()
        out.append({n: t / nrm for n, t in d.items()})
    return out


def _filter_normalized(
    model: nn.Module, num: int, gen: torch.Generator
) -> list[Params]:
    """Filter-normalised Gaussian directions (Li et al., 2018), ``ignore="biasbn"``,
    from :func:`landscape.directions.random_directions`."""
    from .directions import random_directions

    dirs = random_directions(
        model, num=num, norm="filter", ignore="biasbn", generator=gen
    )
    return [{n: t.detach() for n, t in d.items()} for d in dirs]


def _hessian_dirs(
    model: nn.Module,
    loss_fn: LossFn,
    batch: tuple[Tensor, Tensor],
    num: int,
    gen: torch.Generator,
) -> list[Params]:
    """Top Hessian eigenvectors (unit norm) of the loss on ``batch``, from
    :func:`landscape.hessian.top_eigenvalues` (Lanczos)."""
    from .hessian import top_eigenvalues

    eig = top_eigenvalues(model, loss_fn, [batch], k=num, generator=gen)
    return [{n: t.detach() for n, t in v.items()} for v in eig.eigenvectors]


def scatter_directions(
    model: nn.Module,
    loss_fn: LossFn | None = None,
    data: Iterable[tuple[Tensor, Tensor]] | None = None,
    *,
    kind: str = "random",
    num: int = 4,
    generator: torch.Generator | None = None,
) -> list[Params]:
    """Directions for :func:`scattering`.

    Args:
        model: the model (only its trainable parameters' names/shapes/values are read).
        loss_fn: loss for ``kind="hessian"``.
        data: batches for ``kind="hessian"`` (the first batch, clean, is used).
        kind: ``"random"`` (Gaussian, unit norm in the full parameter space),
            ``"filter"`` (filter-normalised, biases/BN zero) or ``"hessian"`` (top
            eigenvectors of the clean loss on the first batch, unit norm).
        num: number of directions.
        generator: randomness.

    Returns:
        A list of ``dict[name -> Tensor]`` keyed like ``model.named_parameters()``.
    """
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    gen, _ = _utils.make_generator(generator)
    if kind == "random":
        return _random_unit(model, num, gen)
    if kind == "filter":
        return _filter_normalized(model, num, gen)
    if kind == "hessian":
        if loss_fn is None or data is None:
            raise ValueError("kind='hessian' needs loss_fn and data")
        dev, dt = _utils.model_device(model), _utils.model_dtype(model)
        batch = _utils.to_device(next(iter(data)), dev, dt)
        return _hessian_dirs(model, loss_fn, batch, num, gen)
    raise ValueError(f"kind must be 'random', 'filter' or 'hessian', got {kind!r}")


def fit_excess(
    step_norm: np.ndarray,
    grad_diff: np.ndarray,
    *,
    max_scale: float | None = None,
    scales: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line ``||delta g|| = a + b ||delta w||`` per curve.

    Args:
        step_norm: ``||s v||``, shape ``(D, S)``.
        grad_diff: ``||delta g||``, shape ``(E, D, S, B)``.
        max_scale: keep only scales ``s <= max_scale`` (``scales`` must be given).
        scales: the scales ``s`` (``(S,)``), to apply ``max_scale``.

    Returns:
        ``(intercept, slope)``, each of shape ``(E, D, B)``.

    Example:
        >>> sn = np.array([[1e-3, 1e-2, 1e-1]])
        >>> gd = (0.5 + 2.0 * sn)[None, :, :, None]
        >>> a, b = fit_excess(sn, gd)
        >>> bool(np.allclose(a, 0.5) and np.allclose(b, 2.0))
        True
    """
    step_norm = np.asarray(step_norm, dtype=np.float64)
    grad_diff = np.asarray(grad_diff, dtype=np.float64)
    keep = np.ones(step_norm.shape[1], dtype=bool)
    if max_scale is not None:
        if scales is None:
            raise ValueError("max_scale needs scales")
        keep = np.asarray(scales) <= max_scale
    if keep.sum() < 2:
        raise ValueError("the excess fit needs at least two scales")
    t = step_norm[:, keep][None, :, :, None]  # (1, D, S', 1)
    g = grad_diff[:, :, keep, :]
    tm, gm = t.mean(axis=2, keepdims=True), g.mean(axis=2, keepdims=True)
    slope = ((t - tm) * (g - gm)).sum(axis=2) / ((t - tm) ** 2).sum(axis=2)
    intercept = gm[:, :, 0, :] - slope * tm[:, :, 0, :]
    return intercept, slope


def concat_eps(results: Sequence[ScatteringResult]) -> ScatteringResult:
    """Join results along the eps axis, e.g. models trained at different eps each
    measured at its own eps. Scales, directions' lengths (``step_norm``) and the
    number of batches must agree.

    Raises:
        ValueError: empty input or mismatched scales / shapes.
    """
    results = list(results)
    if not results:
        raise ValueError("concat_eps needs at least one result")
    first = results[0]
    for r in results[1:]:
        if r.grad_diff.shape[1:] != first.grad_diff.shape[1:] or not np.allclose(
            r.step_norm, first.step_norm
        ):
            raise ValueError(
                "results differ in directions, scales or batches; measure them with "
                "the same scales, number of (unit) directions and batches"
            )
    kw = {
        f.name: np.concatenate([getattr(r, f.name) for r in results])
        for f in dataclasses.fields(ScatteringResult)
        if f.name not in ("scales", "step_norm", "meta")
    }
    meta = {"parts": [r.meta for r in results]}
    return ScatteringResult(
        scales=first.scales, step_norm=first.step_norm, meta=meta, **kw
    )


# --------------------------------------------------------------------------- gradients
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
    loss_fn = loss_fn or _loss_default
    device, dtype = _utils.model_device(model), _utils.model_dtype(model)
    gen, seed = _utils.make_generator(generator)
    batches = []
    for i, b in enumerate(data):
        if num_batches is not None and i >= num_batches:
            break
        batches.append(_utils.to_device(b, device, dtype))
    if not batches:
        raise ValueError("data yielded no batches")
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


# --------------------------------------------------------------------------- grad norms
def per_example_grad_norms(
    model: nn.Module,
    loss_fn: LossFn | None,
    x: Tensor,
    y: Tensor,
    *,
    params: Params | None = None,
    method: str = "vmap",
) -> Tensor:
    """``||grad_w loss(f(x_i), y_i)||`` for every example (model in eval mode).

    Args:
        model: classifier returning logits.
        loss_fn: ``(logits, y) -> scalar`` applied to a batch of one example.
        x, y: a batch.
        params: weights (default: the model's own).
        method: ``"vmap"`` (``torch.func.vmap(grad)``, one pass) or ``"loop"`` (one
            backward per example; the reference).

    Returns:
        Tensor of shape ``(N,)``.

    Example:
        >>> m = torch.nn.Linear(3, 1, bias=False).double()
        >>> x = torch.randn(5, 3, dtype=torch.float64)
        >>> mse = lambda o, t: ((o - t) ** 2).mean()
        >>> n = per_example_grad_norms(m, mse, x, torch.zeros(5, 1, dtype=x.dtype))
        >>> ref = (2 * (x @ m.weight.detach().T).abs() * x.norm(dim=1, keepdim=True))
        >>> torch.allclose(n, ref.view(-1))
        True
    """
    loss_fn = loss_fn or _loss_default
    p = _params(model) if params is None else params

    def one(pp: Params, xi: Tensor, yi: Tensor) -> Tensor:
        return loss_fn(functional_call(model, pp, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    with _utils.eval_mode(model):
        if method == "vmap":
            g = vmap(grad(one), in_dims=(None, 0, 0))(p, x, y)
            sq = sum(t.reshape(t.shape[0], -1).pow(2).sum(1) for t in g.values())
            return sq.sqrt().detach()
        if method == "loop":
            res = []
            names = list(p)
            for i in range(x.shape[0]):
                prm = {n: t.detach().requires_grad_(True) for n, t in p.items()}
                with torch.enable_grad():
                    gi = torch.autograd.grad(
                        one(prm, x[i], y[i]), [prm[n] for n in names]
                    )
                res.append(_utils.flatten(list(gi)).norm())
            return torch.stack(res).detach()
    raise ValueError(f"method must be 'vmap' or 'loop', got {method!r}")


def gradient_norms(
    model: nn.Module,
    loss_fn: LossFn | None,
    data: Iterable[tuple[Tensor, Tensor]],
    *,
    eps: float | Sequence[float],
    norm: str = "linf",
    alpha: float | None = None,
    steps: int = 10,
    random_start: bool = True,
    num_batches: int | None = None,
    generator: torch.Generator | None = None,
    progressbar: bool = False,
) -> GradNormStats:
    """Per-example and mini-batch gradient norms of the adversarial loss per eps.

    Each batch is attacked at the model's weights (PGD, :func:`landscape.attacks.perturb`)
    and the per-example gradients are taken with ``torch.func.vmap(grad)``.

    Args:
        model, loss_fn, data: as in :func:`scattering` (``loss_fn`` must accept a
            batch of one example).
        eps: one budget or a list.
        norm, alpha, steps, random_start: PGD settings.
        num_batches: use only the first batches.
        generator: PGD random starts.
        progressbar: tqdm bar.

    Returns:
        A :class:`GradNormStats`.
    """
    from tqdm.auto import tqdm

    eps_arr = _check_eps_list(eps)
    loss_fn = loss_fn or _loss_default
    device, dtype = _utils.model_device(model), _utils.model_dtype(model)
    gen, seed = _utils.make_generator(generator, device)
    batches = [
        _utils.to_device(b, device, dtype)
        for i, b in enumerate(data)
        if num_batches is None or i < num_batches
    ]
    if not batches:
        raise ValueError("data yielded no batches")
    per, bat = [], []
    bar = tqdm(
        total=len(eps_arr) * len(batches),
        desc="gradient_norms",
        disable=not progressbar,
    )
    for ep in eps_arr:
        pe, bn = [], []
        for x, y in batches:
            g, xa = adversarial_gradient(
                model,
                loss_fn,
                x,
                y,
                eps=float(ep),
                norm=norm,
                alpha=alpha,
                steps=steps,
                random_start=random_start,
                generator=gen,
            )
            bn.append(float(_utils.flatten(g).norm()))
            pe.append(per_example_grad_norms(model, loss_fn, xa, y).cpu().double())
            bar.update(1)
        per.append(torch.cat(pe).numpy())
        bat.append(bn)
    bar.close()
    meta = dict(
        seed=seed,
        norm=_utils.check_norm(norm),
        alpha=alpha,
        steps=steps,
        random_start=random_start,
        num_batches=len(batches),
    )
    return GradNormStats(
        eps=eps_arr, per_example=np.stack(per), batch=np.array(bat), meta=meta
    )


# --------------------------------------------------------------------------- training logs
def _is_gradnorm_key(k: str) -> bool:
    k = k.lower()
    return "grad" in k and "norm" in k


def summarize_training_gradnorms(
    run: str | Path | Sequence[dict[str, Any]],
) -> TrainingGradNorms:
    """Gradient norms logged during training, per epoch.

    Args:
        run: a run folder (reads ``metrics.jsonl``, else ``metrics.csv``, and the target
            eps from ``config.json`` when present), a path to a metrics file, or a list
            of metric records (dicts, one per epoch).

    Returns:
        A :class:`TrainingGradNorms` with every numeric metric whose name contains both
        "grad" and "norm" (e.g. ``grad_norm``, ``train/grad_norm_mean``).

    Raises:
        FileNotFoundError: no metrics file in the folder.
        ValueError: no gradient-norm metric was logged.
    """
    target = float("nan")
    src = "records"
    if isinstance(run, (str, Path)):
        path = Path(run)
        src = str(path)
        if path.is_dir():
            cfg = path / "config.json"
            if cfg.exists():
                with open(cfg) as f:
                    c = json.load(f)
                for key in ("eps", "target_eps"):
                    if isinstance(c.get(key), (int, float)):
                        target = float(c[key])
                        break
            for name in ("metrics.jsonl", "metrics.csv"):
                if (path / name).exists():
                    path = path / name
                    break
            else:
                raise FileNotFoundError(
                    f"no metrics.jsonl or metrics.csv in {run}: is it a training run folder?"
                )
        if not path.exists():
            raise FileNotFoundError(f"{path} not found")
        if path.suffix == ".csv":
            import csv

            with open(path, newline="") as f:
                records = [
                    {k: _num(v) for k, v in r.items()} for r in csv.DictReader(f)
                ]
        else:
            with open(path) as f:
                records = [json.loads(line) for line in f if line.strip()]
    else:
        records = list(run)
    keys = sorted(
        {
            k
            for r in records
            for k, v in r.items()
            if _is_gradnorm_key(k) and isinstance(v, (int, float))
        }
    )
    if not keys:
        raise ValueError(
            "no gradient-norm metric found (expected a key containing 'grad' and 'norm'); "
            f"logged keys: {sorted({k for r in records for k in r})}"
        )
    rows = [r for r in records if any(isinstance(r.get(k), (int, float)) for k in keys)]
    epoch = np.array([float(r.get("epoch", i)) for i, r in enumerate(rows)])
    eps = np.array(
        [
            float(r["eps"]) if isinstance(r.get("eps"), (int, float)) else np.nan
            for r in rows
        ]
    )
    values = {
        k: np.array(
            [
                float(r[k]) if isinstance(r.get(k), (int, float)) else np.nan
                for r in rows
            ]
        )
        for k in keys
    }
    return TrainingGradNorms(
        epoch=epoch, eps=eps, values=values, target_eps=target, meta={"source": src}
    )


def _num(v: Any) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


# --------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m landscape.scattering",
        description="Gradient scattering of the adversarial loss (Prop. 2 of Liu et al. "
        "2020) for a trained model: gradient-Lipschitz ratio, gradient cosine, "
        "excess and perturbation cosine at w and w + s v.",
    )
    p.add_argument(
        "checkpoint",
        help="a saved nn.Module (torch.save(model)), a "
        "state dict / training checkpoint (with --model) or a run folder",
    )
    p.add_argument(
        "--model",
        default=None,
        help="architecture for landscape.models."
        "build when the checkpoint holds a state dict (e.g. lenet)",
    )
    p.add_argument(
        "--activation",
        default="relu",
        help="activation for --model (relu/softplus/gelu/tanh)",
    )
    p.add_argument(
        "--smooth-twin",
        default=None,
        metavar="ACT",
        help="also measure models.smooth_twin(model, ACT) (e.g. softplus)",
    )
    p.add_argument("--dataset", default="mnist", help="landscape.data name (mnist)")
    p.add_argument("--data-root", default=None, help="data folder ($LANDSCAPE_DATA)")
    p.add_argument("--split", default="test")
    p.add_argument("--num-samples", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eps", type=float, nargs="+", required=True)
    p.add_argument("--scales", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2, 1e-1])
    p.add_argument(
        "--directions", default="random", choices=["random", "filter", "hessian"]
    )
    p.add_argument("--num-directions", type=int, default=4)
    p.add_argument("--norm", default="linf", choices=["linf", "l2"])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--no-random-start", action="store_true")
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("-o", "--out", required=True, help="result path (.npz)")
    p.add_argument("--progress", action="store_true")
    return p


def _load_model(args: argparse.Namespace, device: torch.device) -> nn.Module:
    from . import io as lio
    from . import models

    path = Path(args.checkpoint)
    template = None
    if args.model is not None:
        shape = (3, 32, 32) if args.dataset.startswith("cifar") else (1, 28, 28)
        template = models.build(
            args.model, activation=args.activation, in_shape=shape, dataset=args.dataset
        )
    if path.is_dir() or (path.parent / "config.json").exists():
        from .train import load_model  # a run folder of adversarial_train

        return load_model(path, template, device=device)
    obj = lio.load_torch(path, map_location=device)
    if isinstance(obj, nn.Module):
        return obj.to(device)
    if isinstance(obj, dict):
        state = obj.get("model", obj)
        if isinstance(state, nn.Module):
            return state.to(device)
        if template is None:
            raise ValueError("the checkpoint holds a state dict: pass --model NAME")
        template.load_state_dict(state)
        return template.to(device)
    raise TypeError(f"{path} holds a {type(obj).__name__}, not a model or state dict")


def main(argv: list[str] | None = None) -> int:
    """Command line: measure scattering for a checkpoint and save the result."""
    args = _parser().parse_args(argv)
    device = torch.device(
        args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    )
    gen = _utils.seed_everything(args.seed)
    model = _load_model(args, device)
    from . import data as ldata

    x, y = ldata.load_dataset(
        args.dataset,
        args.data_root,
        split=args.split,
        num_samples=args.num_samples,
        seed=args.seed,
    )
    batches = [
        (x[i : i + args.batch_size], y[i : i + args.batch_size])
        for i in range(0, len(x), args.batch_size)
    ]
    targets = {"model": model}
    if args.smooth_twin:
        from . import models

        targets["twin"] = models.smooth_twin(model, activation=args.smooth_twin)
    out = Path(args.out)
    for label, m in targets.items():
        res = scattering(
            m,
            None,
            batches,
            eps=args.eps,
            scales=args.scales,
            directions=args.directions,
            num_directions=args.num_directions,
            norm=args.norm,
            steps=args.steps,
            random_start=not args.no_random_start,
            chunk_size=args.chunk_size,
            generator=gen,
            progressbar=args.progress,
        )
        res = dataclasses.replace(
            res,
            meta={**res.meta, "checkpoint": str(args.checkpoint), "model_label": label},
        )
        path = out if label == "model" else out.with_name(out.stem + "_twin.npz")
        res.save(path)
        exc = res.excess().mean(axis=(1, 2))
        for e, ex, r in zip(res.eps, exc, res.ratio[:, :, 0].mean(axis=(1, 2))):
            print(
                f"[{label}] eps={e:g}: excess={ex:.4g} ratio@s={res.scales[0]:g}: "
                f"{r:.4g}"
            )
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

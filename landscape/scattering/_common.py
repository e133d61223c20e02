"""Shared helpers: validation, weights as dicts, functional model wrapper, directions."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from .. import _utils
from .._batches import as_batches

__all__ = ["scatter_directions"]

LossFn = Callable[[Tensor, Tensor], Tensor]
Params = dict[str, Tensor]


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
    from ..directions import random_directions

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
    from ..hessian import top_eigenvalues

    eig = top_eigenvalues(model, loss_fn, [batch], num=num, generator=gen)
    return [{n: t.detach() for n, t in v.items()} for v in eig.eigenvectors]


def scatter_directions(
    model: nn.Module,
    loss_fn: LossFn | None = None,
    data: Iterable[tuple[Tensor, Tensor]] | None = None,
    *,
    kind: str = "unit",
    num: int = 4,
    generator: torch.Generator | None = None,
) -> list[Params]:
    """Directions for :func:`scattering`.

    Args:
        model: the model (only its trainable parameters' names/shapes/values are read).
        loss_fn: loss for ``kind="hessian"``.
        data: batches for ``kind="hessian"`` (the first batch, clean, is used).
        kind: ``"unit"`` (Gaussian, unit norm in the full parameter space),
            ``"filter"`` (filter-normalised, biases/BN zero, as
            :func:`landscape.directions.random_directions`) or ``"hessian"`` (top
            eigenvectors of the clean loss on the first batch, unit norm).
        num: number of directions.
        generator: randomness.

    Returns:
        A list of ``dict[name -> Tensor]`` keyed like ``model.named_parameters()``.
    """
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    gen, _ = _utils.make_generator(generator)
    if kind == "unit":
        return _random_unit(model, num, gen)
    if kind == "filter":
        return _filter_normalized(model, num, gen)
    if kind == "hessian":
        if loss_fn is None or data is None:
            raise ValueError("kind='hessian' needs loss_fn and data")
        batch = next(iter(as_batches(data, model=model)))
        return _hessian_dirs(model, loss_fn, batch, num, gen)
    raise ValueError(f"kind must be 'unit', 'filter' or 'hessian', got {kind!r}")

"""The measurement: a private copy of the model whose chosen weights are ``w + c * u``,
the worst-case ascent (APGD in weight space) and the average-case noise, one batch of
``m`` examples at a time, the batches shared out over the ranks of a process group."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import _utils
from .._batches import as_batches

__all__: list[str] = []

LossFn = Callable[[Tensor, Tensor], Tensor]
Vec = list[Tensor]

_NORM_LAYERS = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)


# ----------------------------------------------------------------- the parameters
def chosen_names(model: nn.Module, ignore: str | None) -> list[str]:
    """The trainable parameters the perturbation acts on: all of them (``None``,
    Andriushchenko et al. 2023), those of more than one dimension (``"biasbn"``: no
    biases, no normalisation parameters; the tensors AWP perturbs) or all but the
    normalisation layers' (``"bn"``, Stutz et al. 2021)."""
    skip: set[str] = set()
    if ignore == "bn":
        for mname, mod in model.named_modules():
            if isinstance(mod, _NORM_LAYERS):
                skip |= {
                    f"{mname}.{n}" if mname else n for n, _ in mod.named_parameters()
                }
    names = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and n not in skip and not (ignore == "biasbn" and p.ndim < 2)
    ]
    if not names:
        raise ValueError(
            f"ignore={ignore!r} leaves no parameter of the model to perturb; use "
            "ignore=None"
        )
    return names


def scales(weights: Vec, adaptive: str | None) -> list[Tensor | None]:
    """The per-entry radius factor ``c`` of each weight tensor: None (plain: 1),
    ``|w|`` (``"element"``) or, for a tensor of two or more dimensions, the norm of
    each output filter / row broadcast over it (``"filter"``; 1-D tensors: ``|w|``)."""
    if adaptive is None:
        return [None] * len(weights)
    out: list[Tensor | None] = []
    for w in weights:
        if adaptive == "filter" and w.ndim >= 2:
            norms = w.flatten(1).norm(dim=1).view(-1, *([1] * (w.ndim - 1)))
            out.append(norms.expand_as(w).clone())
        else:
            out.append(w.abs().clone())
    return out


class Work:
    """A private eval-mode copy of ``model`` (the caller's model is never touched)
    whose chosen weights are set to ``w + c * u``; ``u`` is the perturbation in
    scaled coordinates (``c = 1`` for plain sharpness)."""

    def __init__(self, model: nn.Module, names: list[str], adaptive: str | None):
        self.net = copy.deepcopy(model).eval()
        self.net.requires_grad_(False)
        by_name = dict(self.net.named_parameters())
        self.params = [by_name[n] for n in names]
        for p in self.params:
            p.requires_grad_(True)
        self.w = [p.detach().clone() for p in self.params]
        self.c = scales(self.w, adaptive)

    def zeros(self) -> Vec:
        return [torch.zeros_like(w) for w in self.w]

    @torch.no_grad()
    def set(self, u: Vec | None) -> None:
        for i, p in enumerate(self.params):
            if u is None:
                p.copy_(self.w[i])
            else:
                c = self.c[i]
                p.copy_(self.w[i] + (u[i] if c is None else c * u[i]))

    def loss(self, loss_fn: LossFn, x: Tensor, y: Tensor) -> float:
        with torch.no_grad():
            return float(loss_fn(self.net(x), y))

    def loss_grad(self, loss_fn: LossFn, x: Tensor, y: Tensor) -> tuple[float, Vec]:
        """The loss and its gradient in the scaled coordinates (``c * dL/dw``)."""
        with torch.enable_grad():
            value = loss_fn(self.net(x), y)
            grads = torch.autograd.grad(value, self.params, allow_unused=True)
        out = []
        for g, w, c in zip(grads, self.w, self.c):
            g = torch.zeros_like(w) if g is None else g.detach()
            out.append(g if c is None else c * g)
        return float(value.detach()), out


# -------------------------------------------------------- vectors, balls, noise
def _norm(u: Vec) -> Tensor:
    return torch.linalg.vector_norm(torch.stack([t.double().norm() for t in u]))


def direction(g: Vec, norm: str) -> Vec:
    """The steepest-ascent direction of unit size: ``g / ||g||_2`` or ``sign(g)``."""
    if norm == "linf":
        return [t.sign() for t in g]
    n = float(_norm(g)) + 1e-12
    return [t / n for t in g]


def project(u: Vec, rho: float, norm: str) -> Vec:
    """The Euclidean projection onto ``{||u||_p <= rho}`` (rescaling for L2,
    clipping for L-inf)."""
    if norm == "linf":
        return [t.clamp(-rho, rho) for t in u]
    n = float(_norm(u))
    return u if n <= rho else [t * (rho / n) for t in u]


def _draw(like: Tensor, kind: str, gen: torch.Generator) -> Tensor:
    """Noise shaped like ``like``, drawn on the CPU (the same draws on every device)."""
    shape = tuple(like.shape)
    if kind == "gaussian":
        t = torch.randn(shape, generator=gen, dtype=torch.float64)
    else:
        t = 2 * torch.rand(shape, generator=gen, dtype=torch.float64) - 1
    return t.to(device=like.device, dtype=like.dtype)


def noise(like: Vec, kind: str, rho: float, gen: torch.Generator) -> Vec:
    """``rho * N(0, I)`` (``"gaussian"``) or ``rho * U[-1, 1]`` (``"uniform"``)."""
    return [rho * _draw(t, kind, gen) for t in like]


def random_start(like: Vec, rho: float, norm: str, gen: torch.Generator) -> Vec:
    """A random point of the ball: uniform on the L2 sphere of radius ``rho``, or
    uniform in the L-inf box."""
    if norm == "linf":
        return noise(like, "uniform", rho, gen)
    z = noise(like, "gaussian", 1.0, gen)
    n = float(_norm(z)) + 1e-30
    return [t * (rho / n) for t in z]


def checkpoints(max_iter: int) -> list[int]:
    """APGD's step-size checkpoints (Croce & Hein 2020), as the worst-case sharpness
    code of Andriushchenko et al. (2023) places them: ``p_0 = 0``, ``p_1 = 0.22``,
    ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``, at ``ceil(p_j * max_iter)``;
    the first (0) is not checked."""
    p = [0.0, 0.22]
    w = [0, math.ceil(max_iter * 0.22)]
    while w[-1] < max_iter and w[-1] != w[-2]:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
        w.append(math.ceil(p[-1] * max_iter))
    return w[1:]


# ------------------------------------------------------------------- the batches
def as_chunked(data: Any, model: nn.Module, attacked: bool):
    """``data`` as validated batches on the model's device (re-iterable, streamed)."""
    return as_batches(
        data, model=model, labels="auto", images=True if attacked else None
    )


def num_chunks(batches: Any, m: int | None) -> int | None:
    """How many pieces :func:`chunks` yields where that is known without reading the
    batches (their count, when they are not split by ``m``); else None."""
    from .._progress import length

    return length(batches) if m is None else None


def chunks(batches: Any, m: int | None) -> Iterator:
    """``(x, y)`` batches of ``m`` examples (each batch split; the last piece of a
    batch may be smaller), or the batches as they are; one batch is read at a time."""
    for x, y in batches:
        if m is None:
            yield x, y
            continue
        yield from zip(torch.split(x, m), torch.split(y, m))


# ----------------------------------------------------------------- the ranks
def world(distributed: bool) -> tuple[int, int]:
    """``(rank, world size)`` of an initialised process group (when
    ``distributed``), else ``(0, 1)``."""
    import torch.distributed as dist

    if not (distributed and dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def _comm_device() -> torch.device:
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shared_seed(seed: int, size: int) -> int:
    """Rank 0's seed on every rank (the batches' streams derive from it)."""
    if size == 1:
        return seed
    import torch.distributed as dist

    t = torch.tensor([seed], dtype=torch.int64, device=_comm_device())
    dist.broadcast(t, 0)
    return int(t.item())


def summed(rows: np.ndarray, size: int) -> np.ndarray:
    """The per-batch rows of every rank (each rank filled its own batches' rows and
    left the others zero)."""
    if size == 1:
        return rows
    import torch.distributed as dist

    t = torch.as_tensor(rows, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.cpu().numpy()


def finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise FloatingPointError(
            f"sharpness: the loss {what} is {value}; check the model's weights and the "
            "data (the sharpness of a non-finite loss is undefined)"
        )
    return value


def progress(total: int, desc: str, show: bool):
    from .._progress import bar

    return bar(desc=desc, total=total, unit="steps", enabled=show, leave=False)


def chunk_generator(seed: int, index: int) -> torch.Generator:
    """The stream of the ``index``-th batch (the same whatever the world size)."""
    return _utils.derived_generator(seed, "sharpness", index)

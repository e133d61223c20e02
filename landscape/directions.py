"""Directions in weight space for loss-landscape plots.

A direction is a ``dict[str, Tensor]`` keyed like ``model.named_parameters()`` (the
common currency of :mod:`landscape.hessian` and :mod:`landscape.surface`).

- :func:`random_directions`: Gaussian directions normalised per filter or per layer
  (Li et al., 2018, "Visualizing the Loss Landscape of Neural Nets"), with biases and
  BatchNorm parameters zeroed (``ignore="biasbn"``) or set to the weights' values (the
  reference code's behaviour otherwise).
- :func:`normalize_direction`: the normalisation alone, for any direction.
- :func:`orthogonalize`: Gram-Schmidt of one direction against another.
- :func:`eigen_directions`: Hessian eigenvectors (an ``Eigenpairs`` or a list of dicts).
- :func:`interpolation_direction` / :func:`plane_directions`: the line between two
  checkpoints and the plane through three (with the points' coordinates).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import _utils

__all__ = [
    "Plane",
    "dot",
    "eigen_directions",
    "filter_normalize",
    "interpolation_direction",
    "norm",
    "normalize_direction",
    "orthogonalize",
    "plane_directions",
    "random_direction",
    "random_directions",
]

_NORMS = ("filter", "layer", None)


def _weights(model_or_params: nn.Module | Mapping[str, Tensor]) -> dict[str, Tensor]:
    if isinstance(model_or_params, nn.Module):
        return _utils.named_params(model_or_params)
    if isinstance(model_or_params, Mapping):
        return {k: v.detach() for k, v in model_or_params.items()}
    raise TypeError(
        "expected an nn.Module or a dict[str, Tensor] of parameters, got "
        f"{type(model_or_params).__name__}"
    )


def _check_norm(norm: str | None) -> str | None:
    if norm in ("none", "None"):
        norm = None
    if norm not in _NORMS:
        raise ValueError(f"norm must be 'filter', 'layer' or None, got {norm!r}")
    return norm


def _check_ignore(ignore: str | None) -> str | None:
    if ignore in ("none", "None", ""):
        ignore = None
    if ignore not in ("biasbn", None):
        raise ValueError(f"ignore must be 'biasbn' or None, got {ignore!r}")
    return ignore


def dot(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> Tensor:
    """Inner product of two directions over their common keys (float64 scalar)."""
    return sum(
        (torch.sum(a[k].double() * b[k].double()) for k in a if k in b),
        torch.zeros((), dtype=torch.float64),
    )


def norm(a: Mapping[str, Tensor]) -> Tensor:
    """Euclidean norm of a direction over all its entries (float64 scalar)."""
    return dot(a, a).sqrt()


def normalize_direction(
    direction: Mapping[str, Tensor],
    weights: nn.Module | Mapping[str, Tensor],
    *,
    norm: str | None = "filter",
    ignore: str | None = "biasbn",
) -> dict[str, Tensor]:
    """Rescale a direction to the scale of the weights (Li et al., 2018).

    Follows ``net_plotter.normalize_directions_for_weights`` of the reference code:
    parameters with at most one dimension (biases, BatchNorm weights and biases) are
    zeroed with ``ignore="biasbn"`` and otherwise set to the weights' values; every
    other parameter is scaled per filter (each slice along dim 0 gets the norm of the
    matching weight filter), per layer (the whole tensor gets the weight's norm), or
    left alone (``norm=None``).

    Args:
        direction: ``dict[name -> Tensor]`` shaped like the weights.
        weights: the model (or its parameter dict) whose scale to copy.
        norm: ``"filter"``, ``"layer"`` or ``None``.
        ignore: ``"biasbn"`` to zero 1-D parameters, or ``None``.

    Returns:
        A new dict (the input is not modified).

    Example:
        >>> w = {"w": torch.tensor([[3.0, 4.0], [0.0, 1.0]]), "b": torch.ones(2)}
        >>> d = {"w": torch.tensor([[1.0, 0.0], [0.0, 2.0]]), "b": torch.ones(2)}
        >>> out = normalize_direction(d, w, norm="filter")
        >>> out["w"].tolist(), out["b"].tolist()
        ([[5.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    """
    norm = _check_norm(norm)
    ignore = _check_ignore(ignore)
    w = _weights(weights)
    out: dict[str, Tensor] = {}
    for name, d in direction.items():
        if name not in w:
            raise KeyError(
                f"direction entry {name!r} has no matching parameter; directions must "
                "be keyed like model.named_parameters()"
            )
        wt = w[name].to(d.dtype)
        if d.shape != wt.shape:
            raise ValueError(
                f"direction {name!r} has shape {tuple(d.shape)} but the parameter has "
                f"{tuple(wt.shape)}"
            )
        if d.dim() <= 1:
            out[name] = torch.zeros_like(d) if ignore == "biasbn" else wt.clone()
        elif norm == "filter":
            dn = d.reshape(d.shape[0], -1).norm(dim=1)
            wn = wt.reshape(wt.shape[0], -1).norm(dim=1)
            scale = (wn / (dn + 1e-10)).view(-1, *([1] * (d.dim() - 1)))
            out[name] = d * scale
        elif norm == "layer":
            out[name] = d * (wt.norm() / (d.norm() + 1e-10))
        else:
            out[name] = d.clone()
    return out


def filter_normalize(
    direction: Mapping[str, Tensor],
    weights: nn.Module | Mapping[str, Tensor],
    *,
    ignore: str | None = "biasbn",
) -> dict[str, Tensor]:
    """Filter normalisation (``normalize_direction(..., norm="filter")``)."""
    return normalize_direction(direction, weights, norm="filter", ignore=ignore)


def random_direction(
    model: nn.Module | Mapping[str, Tensor],
    *,
    norm: str | None = "filter",
    ignore: str | None = "biasbn",
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """One normalised Gaussian direction (see :func:`random_directions`)."""
    return random_directions(
        model, num=1, norm=norm, ignore=ignore, generator=generator
    )[0]


def random_directions(
    model: nn.Module | Mapping[str, Tensor],
    *,
    num: int = 2,
    norm: str | None = "filter",
    ignore: str | None = "biasbn",
    orthogonal: bool = False,
    generator: torch.Generator | None = None,
) -> list[dict[str, Tensor]]:
    """Random Gaussian directions normalised like the weights (Li et al., 2018).

    The Gaussian entries are drawn on the CPU from ``generator`` (so a seed gives the
    same directions on every device), then moved to each parameter's device and dtype
    and normalised with :func:`normalize_direction`.

    Args:
        model: the model (its trainable parameters) or a parameter dict.
        num: number of directions.
        norm: ``"filter"`` (default), ``"layer"`` or ``None``.
        ignore: ``"biasbn"`` zeroes biases and BatchNorm parameters (1-D tensors);
            ``None`` sets them to the weights' values as in the reference code.
        orthogonal: Gram-Schmidt every direction against the previous ones (see
            :func:`orthogonalize`); filter norms then hold only approximately
            (random directions in high dimension are nearly orthogonal anyway).
        generator: source of randomness.

    Returns:
        A list of ``num`` dicts keyed like ``model.named_parameters()``.

    Example:
        >>> m = torch.nn.Linear(3, 2)
        >>> d1, d2 = random_directions(m, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(d1["weight"].norm(dim=1), m.weight.detach().norm(dim=1))
        True
        >>> d1["bias"].abs().sum().item()
        0.0
    """
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    norm = _check_norm(norm)
    ignore = _check_ignore(ignore)
    w = _weights(model)
    if not w:
        raise ValueError("the model has no trainable parameters to perturb")
    gen, _ = _utils.make_generator(generator)
    dirs = []
    for _ in range(num):
        raw = {
            k: torch.randn(v.shape, generator=gen, dtype=torch.float64).to(
                device=v.device, dtype=v.dtype if v.is_floating_point() else None
            )
            for k, v in w.items()
        }
        dirs.append(normalize_direction(raw, w, norm=norm, ignore=ignore))
    if orthogonal:
        for i in range(1, num):
            for j in range(i):
                dirs[i] = orthogonalize(dirs[i], dirs[j], keep_norm=True)
    return dirs


def orthogonalize(
    d: Mapping[str, Tensor], against: Mapping[str, Tensor], *, keep_norm: bool = True
) -> dict[str, Tensor]:
    """Gram-Schmidt: remove from ``d`` its component along ``against``.

    Args:
        d: the direction to orthogonalise.
        against: the reference direction.
        keep_norm: rescale the result to the norm of ``d`` (keeps the plot's scale).

    Example:
        >>> a = {"w": torch.tensor([1.0, 0.0])}
        >>> b = {"w": torch.tensor([1.0, 1.0])}
        >>> orthogonalize(b, a, keep_norm=False)["w"].tolist()
        [0.0, 1.0]
    """
    aa = dot(against, against)
    if aa == 0:
        raise ValueError("cannot orthogonalise against a zero direction")
    coef = dot(d, against) / aa
    out = {k: v - (coef * against[k].double()).to(v.dtype) for k, v in d.items()}
    if keep_norm:
        n_out = norm(out)
        if n_out > 0:
            s = norm(d) / n_out
            out = {k: (v.double() * s).to(v.dtype) for k, v in out.items()}
    return out


def eigen_directions(
    eig: Any,
    *,
    num: int | None = None,
    like: nn.Module | Mapping[str, Tensor] | None = None,
) -> list[dict[str, Tensor]]:
    """Hessian eigenvectors as surface directions.

    Args:
        eig: an ``Eigenpairs`` (anything with ``.eigenvectors``), a list of
            ``dict[name -> Tensor]``, a single dict, or flat tensors (then ``like`` is
            needed to split them into parameters).
        num: keep the first ``num`` vectors (default all).
        like: model or parameter dict to unflatten flat vectors and to check keys and
            shapes against.

    Returns:
        A list of dicts (unit-norm as given by the eigensolver; not rescaled).
    """
    vecs = getattr(eig, "eigenvectors", eig)
    if isinstance(vecs, (Mapping, Tensor)):
        vecs = [vecs]
    if not isinstance(vecs, Sequence) or not vecs:
        raise TypeError(
            "eig must be an Eigenpairs, a list of dict[name -> Tensor], a dict, or flat "
            f"tensors; got {type(eig).__name__}"
        )
    vecs = list(vecs)[: num if num is not None else len(vecs)]
    w = _weights(like) if like is not None else None
    out = []
    for v in vecs:
        if isinstance(v, Tensor):
            if w is None:
                raise ValueError("flat eigenvectors need like=model to split them")
            v = _utils.unflatten(v.detach(), w)
        elif not isinstance(v, Mapping):
            raise TypeError(f"an eigenvector must be a dict or a Tensor, got {type(v)}")
        v = {k: t.detach() for k, t in v.items()}
        if w is not None:
            for k, t in v.items():
                if k not in w or w[k].shape != t.shape:
                    raise ValueError(
                        f"eigenvector entry {k!r} does not match the model's parameters"
                    )
            v = {k: t.to(device=w[k].device, dtype=w[k].dtype) for k, t in v.items()}
        out.append(v)
    return out


def interpolation_direction(
    theta1: nn.Module | Mapping[str, Tensor], theta2: nn.Module | Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """The straight line between two checkpoints: ``theta2 - theta1``.

    With ``center=theta1`` a 1D surface at ``x=0`` is the first model and at ``x=1``
    the second (Goodfellow et al., 2015, linear interpolation).

    Example:
        >>> a, b = {"w": torch.zeros(2)}, {"w": torch.tensor([1.0, 2.0])}
        >>> interpolation_direction(a, b)["w"].tolist()
        [1.0, 2.0]
    """
    w1, w2 = _weights(theta1), _weights(theta2)
    if w1.keys() != w2.keys():
        missing = set(w1) ^ set(w2)
        raise ValueError(
            f"the checkpoints have different parameters: {sorted(missing)}"
        )
    out = {}
    for k in w1:
        if w1[k].shape != w2[k].shape:
            raise ValueError(f"parameter {k!r} differs in shape between checkpoints")
        out[k] = w2[k].to(w1[k]) - w1[k]
    return out


@dataclass(frozen=True)
class Plane:
    """A 2D plane through three checkpoints.

    Attributes:
        origin: the first checkpoint's parameters (use as ``center``).
        directions: ``[d1, d2]`` spanning the plane.
        coords: array (3, 2), the ``(x, y)`` coordinates of the three checkpoints.
    """

    origin: dict[str, Tensor]
    directions: list[dict[str, Tensor]]
    coords: np.ndarray


def plane_directions(
    theta1: nn.Module | Mapping[str, Tensor],
    theta2: nn.Module | Mapping[str, Tensor],
    theta3: nn.Module | Mapping[str, Tensor],
    *,
    orthogonal: bool = True,
) -> Plane:
    """The plane through three checkpoints, with its origin at the first.

    ``d1 = theta2 - theta1``; ``d2 = theta3 - theta1``, minus its component along
    ``d1`` when ``orthogonal`` (Garipov et al., 2018). Coordinates are in units of the
    directions: ``theta1 = (0, 0)``, ``theta2 = (1, 0)`` and ``theta3 = (c, 1)`` with
    ``c = <theta3 - theta1, d1> / |d1|^2`` (``(0, 1)`` when not orthogonalised).

    Example:
        >>> p = plane_directions({"w": torch.zeros(2)}, {"w": torch.tensor([2.0, 0.0])},
        ...                      {"w": torch.tensor([1.0, 3.0])})
        >>> p.coords.tolist(), p.directions[1]["w"].tolist()
        ([[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]], [0.0, 3.0])
    """
    origin = _weights(theta1)
    d1 = interpolation_direction(theta1, theta2)
    d3 = interpolation_direction(theta1, theta3)
    if float(norm(d1)) == 0:
        raise ValueError("the first two checkpoints are identical: no direction")
    if orthogonal:
        c = float(dot(d3, d1) / dot(d1, d1))
        d2 = {k: v - c * d1[k] for k, v in d3.items()}
    else:
        c, d2 = 0.0, d3
    if float(norm(d2)) == 0:
        raise ValueError("the three checkpoints are collinear: no plane")
    coords = np.array([[0.0, 0.0], [1.0, 0.0], [c, 1.0]])
    return Plane({k: v.clone() for k, v in origin.items()}, [d1, d2], coords)

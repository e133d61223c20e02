"""The public entry point: :func:`loss_surface` (a surface or a line)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ._evaluate import LossFn
from ._grid import _evaluate_grid
from ._result import Surface

__all__ = ["loss_surface"]


def loss_surface(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable,
    dirs: Sequence[Mapping[str, Tensor]],
    *,
    xs: Sequence[float] | np.ndarray,
    ys: Sequence[float] | np.ndarray | None = None,
    adversarial: str | None = None,
    attack: Callable | None = None,
    center: Mapping[str, Tensor] | nn.Module | None = None,
    strategy: str = "auto",
    batch_size: int | str | None = "auto",
    chunk_size: int | None = None,
    partial_path: str | Path | None = None,
    save_interval: float = 60.0,
    generator: torch.Generator | None = None,
    check_deterministic: bool = True,
    progressbar: bool = False,
) -> Surface:
    """Loss and accuracy on the grid ``center + x * d1 + y * d2`` (Li et al., 2018),
    or along the line ``center + x * d1`` for one direction.

    With ``dirs = [interpolation_direction(theta1, theta2)]`` and ``center=theta1``
    the line is the linear interpolation between two checkpoints (Goodfellow et al.,
    2015).

    Args:
        model: the network (evaluated in eval mode; never modified).
        loss_fn: maps ``(logits, y)`` to the batch-mean loss; the surface is the
            sample-weighted mean over ``data``.
        data: an ``(x, y)`` pair (one batch), a list of batches or a loader such as
            a ``DataLoader`` (read once, validated, kept on the model's device).
        dirs: two directions (``dict[name -> Tensor]``), e.g. from
            :func:`landscape.directions.random_directions`, or one for a line.
        xs: coordinates along ``dirs[0]``.
        ys: coordinates along ``dirs[1]`` (default ``xs``; a line has none).
        adversarial: ``None`` (clean loss on ``data``; ``"reattack"`` when an
            ``attack`` is given), ``"fixed"`` (attack ``data`` once at the centre,
            then evaluate those examples at every point) or ``"reattack"`` (the
            attack at every grid point against the perturbed model).
        attack: an attack value, e.g. ``attacks.PGD(eps=0.3, steps=40,
            alpha=0.01)`` (any ``attack(model, x, y, generator) -> x_adv``).
        center: parameters at the origin (a dict or a model; default the model's).
        strategy: ``"auto"`` (measure on the device), ``"loop"`` or ``"vmap"``.
        batch_size: ``"auto"`` (fastest of 128..1024 and the whole set, measured on
            grids of >= 32 points), an int, or ``None`` to keep the caller's batches.
        chunk_size: grid points per vmap forward (default: measured, or 8).
        partial_path: ``.npz`` file for partial results; an interrupted call resumes
            from it (a file from another grid or model is an error).
        save_interval: seconds between partial saves.
        generator: randomness of the attacks (random starts).
        check_deterministic: evaluate the origin twice (and read the data twice) and
            raise if the values differ.
        progressbar: show progress (a bar on a terminal, lines in a log).

    Under ``torch.distributed`` (a process group is initialised) each rank evaluates
    every ``world_size``-th point and every rank returns the full surface.

    Returns:
        :class:`Surface` with ``loss`` and ``accuracy`` of shape ``(len(ys), len(xs))``;
        a line has ``ys=None`` and shape ``(len(xs),)``.

    Example:
        >>> X, w = torch.randn(32, 3, dtype=torch.float64), torch.ones(3, 1)
        >>> model = torch.nn.Linear(3, 1, bias=False).double()
        >>> with torch.no_grad():
        ...     _ = model.weight.zero_()
        >>> data = [(X, X @ w.double())]
        >>> d = [{"weight": torch.ones(1, 3)}, {"weight": torch.tensor([[1.0, -1, 0]])}]
        >>> s = loss_surface(model, torch.nn.MSELoss(), data, d, xs=[0.0, 1.0], ys=[0.0])
        >>> bool(np.isclose(s.loss[0, 0], (X @ w.double()).pow(2).mean().item()))
        True
        >>> float(s.loss[0, 1])  # at x=1 the model is exact
        0.0
        >>> line = loss_surface(model, torch.nn.MSELoss(), data, d[:1], xs=[0.0, 1.0])
        >>> line.is_line, float(line.loss[1])
        (True, 0.0)
    """
    if isinstance(dirs, Mapping) or len(dirs) not in (1, 2):
        got = "one dict" if isinstance(dirs, Mapping) else f"{len(dirs)} directions"
        raise ValueError(
            f"loss_surface takes a list of two directions (a surface) or one (a "
            f"line), got {got}"
        )
    if len(dirs) == 1 and ys is not None:
        raise ValueError("a line (one direction) takes no ys")
    xs = np.asarray(xs, dtype=np.float64).reshape(-1)
    if len(dirs) == 2:
        ys = xs.copy() if ys is None else np.asarray(ys, dtype=np.float64).reshape(-1)
    for name, v in (("xs", xs), ("ys", ys)):
        if v is not None and v.size == 0:
            raise ValueError(f"{name} must not be empty")
        if v is not None and not np.isfinite(v).all():
            raise ValueError(f"{name} must be finite step sizes along the directions")
    if ys is None:
        coefs = xs[:, None]
    else:
        gx, gy = np.meshgrid(xs, ys)
        coefs = np.stack([gx.ravel(), gy.ravel()], axis=1)
    if attack is not None and not callable(attack):
        raise TypeError(
            "loss_surface: attack must be an attack value, e.g. attacks.PGD(eps=0.3), "
            f"got {type(attack).__name__}"
        )
    loss, acc, meta = _evaluate_grid(
        model,
        loss_fn,
        data,
        dirs,
        coefs,
        center=center,
        adversarial=adversarial,
        attack=attack,
        strategy=strategy,
        batch_size=batch_size,
        chunk_size=chunk_size,
        partial_path=partial_path,
        save_interval=save_interval,
        generator=generator,
        check_deterministic=check_deterministic,
        progressbar=progressbar,
        desc="loss_surface",
    )
    if ys is None:
        return Surface(xs, None, loss, acc, meta)
    shape = (len(ys), len(xs))
    return Surface(
        xs, ys, loss.reshape(shape), None if acc is None else acc.reshape(shape), meta
    )

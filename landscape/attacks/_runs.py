"""What the evaluation attacks share: the checks and generator of a call, the runs
over targets and restarts on the points not yet broken, and the checked result."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch import Tensor

from .. import _utils
from ._losses import _assert_in_ball, _check_inputs

__all__ = ["setup", "target_order", "runs", "finish", "targeted"]


def setup(x: Tensor, y: Tensor, eps: float, norm: str, generator, **counts: int):
    """Validated ``(x, y, eps, norm, gen, seed)`` of an attack call: inputs in
    [0, 1], int64 labels, detached; every count in ``counts`` (``steps=...``,
    ``restarts=...``, ``queries=...``) at least 1; the generator on ``x``'s device."""
    eps, norm = _check_inputs(x, y, eps, norm)
    for name, value in counts.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    x, y = x.detach(), y.detach().long()  # int32 / uint8 labels pass the check
    gen, seed = _utils.make_generator(generator, x.device)
    return x, y, eps, norm, gen, seed


def targeted(attack: Callable, args: dict[str, Any]):
    """Run ``attack`` (:func:`apgd` or :func:`fab`) for its targeted variant, given
    the variant's arguments (its ``locals()`` on entry: every parameter, by name):
    the same settings, ``num_targets`` (>= 1) passed on as ``_targets``."""
    kw = dict(args)
    num_targets = kw.pop("num_targets")
    if num_targets < 1:
        raise ValueError(f"num_targets must be >= 1, got {num_targets}")
    model, x, y = kw.pop("model"), kw.pop("x"), kw.pop("y")
    return attack(model, x, y, _targets=num_targets, **kw)


def target_order(out: Tensor, num_targets: int) -> tuple[Tensor, list[int]]:
    """Classes ranked by the clean logits and the ranks to target in turn (the
    ``num_targets`` most likely wrong classes), or ``[0]`` (untargeted)."""
    order = out.argsort(dim=1, descending=True)
    if not num_targets:
        return order, [0]
    return order, list(range(1, min(num_targets, out.shape[1] - 1) + 1))


def runs(
    broken: Tensor, targets: list[int], restarts: int, *, progressbar: bool, desc: str
) -> Iterator[tuple[int, int, Tensor]]:
    """``(target rank, restart, indices of the points not yet broken)`` for every
    run, target by target; runs with nothing left to break are skipped. ``broken``
    is read again before each run (the caller marks what a run broke)."""
    plan = [(t, r) for t in targets for r in range(restarts)]
    bar = None
    if progressbar and plan:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan), desc=desc)
    try:
        for t, r in plan:
            if bar is not None:
                bar.update(1)
            idx = (~broken).nonzero().squeeze(1)
            if idx.numel():
                yield t, r, idx
    finally:
        if bar is not None:
            bar.close()


def finish(x_adv: Tensor, x: Tensor, eps: float, norm: str, where: str, info=None):
    """``x_adv`` after checking that it lies in the eps-ball (and ``info`` if given)."""
    _assert_in_ball(x_adv, x, eps, norm, where)
    return x_adv if info is None else (x_adv, info)

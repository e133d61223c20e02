"""What the evaluation attacks share: the checks and generator of a call, the runs
over targets and restarts on the points not yet broken, when a hot loop shrinks its
active set, and the checked result.

Host syncs: reading which points are still active (``nonzero``, a boolean mask) makes
an accelerator wait for the device. The hot loops (PGD, FAB and Square iterations)
therefore keep a fixed active index set between compactions and mask the updates of
points that finished in between (their results cannot change); they compact only at
the iterations of :func:`compact_now` (1, 2, 4, 8, 16, then every 16th), so a run of
T iterations syncs ~log2(16) + T / 16 times instead of T. APGD never shrinks within
a run (its result per point is the latest adversarial iterate, as AutoAttack's) and
updates by ``torch.where``, without a sync."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from .. import _utils
from ._losses import _assert_in_ball, _check_inputs

__all__ = [
    "setup", "target_order", "runs", "finish", "compact_now", "host_reads_free",
    "by_chunks", "COMPACT_EVERY", "CPU_CHUNK",
]  # fmt: skip

COMPACT_EVERY = 16
CPU_CHUNK = 256  # rows per model pass of a hot loop on CPU (by_chunks)


def compact_now(t: int, every: int = COMPACT_EVERY) -> bool:
    """Whether a hot loop shrinks its active set at iteration ``t`` (>= 1): at
    1, 2, 4, ..., ``every`` (points often break in the first steps) and then every
    ``every``-th iteration.

    Example:
        >>> [t for t in range(1, 50) if compact_now(t)]
        [1, 2, 4, 8, 16, 32, 48]
    """
    return t % every == 0 or (t < every and t & (t - 1) == 0)


def host_reads_free(device: torch.device) -> bool:
    """Whether reading a tensor on the host costs no device sync (CPU): then Square
    skips the model on candidates equal to the current point (a host read per
    query) and FAB sorts its projection's breakpoints with NumPy; on an
    accelerator neither reads the host."""
    return device.type == "cpu"


def by_chunks(fn, n: int, device: torch.device, *rows: Tensor | None) -> tuple:
    """``fn(*rows)`` (a function of per-row tensors returning a tuple of per-row
    tensors) on slices of at most :data:`CPU_CHUNK` rows on CPU, concatenated:
    the activations of a larger batch leave the caches (issue 29: APGD-T on the
    2,556 (point, target) pairs of 284 robust points of an MNIST CNN costs 355-364
    us per pair and step in one batch, 287-291 in slices of 256); one call
    elsewhere or for a small batch. ``None`` arguments pass through."""
    if device.type != "cpu" or n <= CPU_CHUNK:
        return fn(*rows)
    parts = [
        fn(*(None if r is None else r[i : i + CPU_CHUNK] for r in rows))
        for i in range(0, n, CPU_CHUNK)
    ]
    return tuple(torch.cat(p) for p in zip(*parts))


def setup(
    x: Tensor, y: Tensor, generator
) -> tuple[Tensor, Tensor, torch.Generator, int]:
    """Validated ``(x, y, gen, seed)`` of an attack call: inputs in [0, 1], int64
    labels, detached; the generator on ``x``'s device. (The settings were validated
    when the attack value was built.)"""
    _check_inputs(x, y)
    x, y = x.detach(), y.detach().long()  # int32 / uint8 labels pass the check
    gen, seed = _utils.make_generator(generator, x.device)
    return x, y, gen, seed


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
        from .._progress import bar as _bar

        bar = _bar(desc=desc, total=len(plan), unit="runs", leave=False)
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


def finish(
    x_adv: Tensor, x: Tensor, eps: float, norm: str, where: str, info: dict
) -> tuple[Tensor, dict]:
    """``(x_adv, info)`` after checking that ``x_adv`` lies in the eps-ball."""
    _assert_in_ball(x_adv, x, eps, norm, where)
    return x_adv, info

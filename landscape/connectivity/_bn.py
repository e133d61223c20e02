"""BatchNorm running statistics re-estimated at a point of weight space."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .. import _utils
from .._batches import as_batches

__all__ = ["bn_statistics", "has_batchnorm"]


def _bn_modules(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    }


def has_batchnorm(model: nn.Module) -> bool:
    """True when the model has BatchNorm layers that track running statistics."""
    return bool(_bn_modules(model))


@contextlib.contextmanager
def _bn_train_only(model: nn.Module) -> Iterator[None]:
    """Every module in eval mode (no Dropout) except BatchNorm (batch statistics);
    every module's mode is restored on exit."""
    with _utils.eval_mode(model):
        for m in _bn_modules(model).values():
            m.train()
        yield


@torch.no_grad()
def bn_statistics(
    model: nn.Module,
    state: Mapping[str, Tensor],
    data: Iterable,
) -> dict[str, Tensor]:
    """BatchNorm running statistics of ``model`` at parameters ``state``, re-estimated
    on ``data`` (Garipov et al.'s ``bn_update``, as in the reference code).

    One pass over ``data`` with BatchNorm normalising by batch statistics (every other
    module in eval mode, so Dropout is off); each BatchNorm layer's running mean and
    running variance become the batch-size-weighted averages of the per-batch means
    and unbiased variances of its input (exactly what the reference's momentum
    ``b / (n + b)`` computes). The caller's model, its buffers and its modes are left
    as they were (the pass runs through ``functional_call`` on scratch buffers).

    Args:
        model: the architecture (its own tensors are not used where ``state`` has them).
        state: parameters (and optionally buffers) at which to estimate, keyed like
            ``model.state_dict()``.
        data: ``(x, y)`` pair (one batch), list of batches or loader (labels unused),
            e.g. the training data.

    Returns:
        ``{"<bn>.running_mean", "<bn>.running_var", "<bn>.num_batches_tracked"}`` for
        every BatchNorm layer (empty for a model without BatchNorm).

    Raises:
        ValueError: ``data`` holds no batch (or fails the checks of
            ``landscape._batches.as_batches``).
    """
    bns = _bn_modules(model)
    if not bns:
        return {}
    batches = as_batches(data, model=model, labels="any", name="data")
    acc: dict[str, list] = {name: [0.0, 0.0, 0] for name in bns}
    count = {"batches": 0}

    def hook(name):
        def fn(mod, inputs, output):
            x = inputs[0].detach().double()
            dims = [0, *range(2, x.ndim)]
            b = x.shape[0]
            acc[name][0] = acc[name][0] + b * x.mean(dims)
            acc[name][1] = acc[name][1] + b * x.var(dims, correction=1)
            acc[name][2] += b

        return fn

    scratch = dict(state)
    for name, m in bns.items():
        pre = f"{name}." if name else ""
        scratch[pre + "running_mean"] = torch.zeros_like(m.running_mean)
        scratch[pre + "running_var"] = torch.ones_like(m.running_var)
        scratch[pre + "num_batches_tracked"] = torch.zeros_like(m.num_batches_tracked)
    handles = [m.register_forward_hook(hook(name)) for name, m in bns.items()]
    try:
        with _bn_train_only(model):
            for x, _ in batches:
                functional_call(model, scratch, (x,))
                count["batches"] += 1
    finally:
        for h in handles:
            h.remove()
    if count["batches"] == 0:
        raise ValueError("bn_statistics needs at least one batch of data")
    out = {}
    for name, m in bns.items():
        pre = f"{name}." if name else ""
        s_mean, s_var, n = acc[name]
        out[pre + "running_mean"] = (s_mean / n).to(m.running_mean.dtype)
        out[pre + "running_var"] = (s_var / n).to(m.running_var.dtype)
        out[pre + "num_batches_tracked"] = torch.tensor(
            count["batches"],
            dtype=m.num_batches_tracked.dtype,
            device=m.num_batches_tracked.device,
        )
    return out

"""The averaged model of a run (:class:`~landscape.train.EMA` / :class:`SWA`): its
running average, its BatchNorm statistics and its state in ``resume.pt``."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from ._objective import EMA, SWA

__all__ = ["Averager", "reestimate_bn"]


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]


@torch.no_grad()
def reestimate_bn(model: nn.Module, data: Iterable[tuple[Tensor, Tensor]]) -> None:
    """BatchNorm running statistics recomputed from ``data`` as a cumulative average
    in train mode (torch's ``swa_utils.update_bn``: reset, ``momentum=None``, one pass);
    the momenta and every module's mode are restored. A model without BatchNorm is
    left as it is."""
    bns = _batchnorms(model)
    if not bns:
        return
    momenta = [bn.momentum for bn in bns]
    modes = [(m, m.training) for m in model.modules()]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    try:
        for x, _ in data:
            model(x)
    finally:
        for bn, mom in zip(bns, momenta):
            bn.momentum = mom
        for m, mode in modes:
            m.training = mode


class Averager:
    """The running average of a run's parameters (a copy of the model whose
    parameters hold the average; the online model is never touched)."""

    def __init__(self, spec: EMA | SWA, model: nn.Module, params: list[Tensor]):
        self.spec = spec
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        ids = {id(p): i for i, p in enumerate(params)}
        self._slots = [
            (ids[id(p)], q)
            for p, q in zip(model.parameters(), self.model.parameters())
            if id(p) in ids
        ]
        # EMA starts from the initial weights (DeepMind); SWA from its first sample
        self.avg = [p.detach().clone() for p in params]
        self.n = 0  # updates so far

    @torch.no_grad()
    def step(self, params: list[Tensor]) -> None:
        """After an optimizer step (EMA only)."""
        if not isinstance(self.spec, EMA):
            return
        d = self.spec.rate(self.n)
        torch._foreach_mul_(self.avg, d)
        torch._foreach_add_(self.avg, [p.detach() for p in params], alpha=1.0 - d)
        self.n += 1

    @torch.no_grad()
    def end_epoch(self, params: list[Tensor], epochs_done: int) -> None:
        """After an epoch (SWA only): the equal-weight average of the epoch ends after
        the first ``start`` epochs."""
        if not isinstance(self.spec, SWA) or epochs_done <= self.spec.start:
            return
        cur = [p.detach() for p in params]
        if self.n == 0:
            for a, p in zip(self.avg, cur):
                a.copy_(p)
        else:
            for a, p in zip(self.avg, cur):
                a.add_(p - a, alpha=1.0 / (self.n + 1))
        self.n += 1

    @property
    def ready(self) -> bool:
        """Whether the average holds anything yet (SWA before ``start``: no)."""
        return isinstance(self.spec, EMA) or self.n > 0

    @torch.no_grad()
    def model_for_eval(
        self,
        online: nn.Module,
        bn_data: Callable[[nn.Module], Iterable[tuple[Tensor, Tensor]]],
    ) -> nn.Module:
        """The averaged model with its BatchNorm statistics set (``spec.bn``): copied
        from ``online``, or re-estimated on ``bn_data(model)`` (the batches, given the
        averaged model with the online statistics, for an attack)."""
        for i, q in self._slots:
            q.copy_(self.avg[i])
        for b, ob in zip(self.model.buffers(), online.buffers()):
            b.copy_(ob)
        if self.spec.bn != "copy" and _batchnorms(self.model):
            reestimate_bn(self.model, list(bn_data(self.model)))
        return self.model.eval()

    def state(self) -> dict:
        return {"avg": [a.detach().cpu().clone() for a in self.avg], "n": self.n}

    def load(self, state: dict) -> None:
        for a, s in zip(self.avg, state["avg"]):
            a.copy_(s)
        self.n = int(state["n"])

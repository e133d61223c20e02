"""FGSM (Goodfellow et al., 2015): one signed-gradient (L-inf) or normalised-gradient
(L2) step of size eps on the loss."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from .. import _utils
from ._ball import project, step_direction
from ._base import Attack, Gen, Loss, Run, summed
from ._losses import _check_first_output, _check_inputs
from ._runs import finish

__all__ = ["FGSM"]


@dataclasses.dataclass(frozen=True)
class FGSM(Attack):
    """Fast gradient (sign) method: ``x + eps * s(grad)`` projected on the ball and
    [0, 1] (deterministic; a ``generator`` is unused).

    Attributes:
        loss: ``"ce"``, ``"cw"``, ``"dlr"`` or a per-example callable.

    Example:
        >>> model = torch.nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        ...     _ = model.bias.zero_()
        >>> FGSM(eps=0.1)(model, torch.tensor([[0.2, 0.5]]), torch.tensor([0])).tolist()
        [[0.10000000149011612, 0.6000000238418579]]
    """

    loss: Loss = "ce"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._loss()

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, gen: Gen, bar: bool) -> Run:
        del gen, bar  # deterministic, a single step
        eps, norm = self.eps, self.norm
        _check_inputs(x, y)
        y = y.long()  # int32 / uint8 labels pass the check; indexing needs int64
        loss_fn = summed(self.loss)
        x = x.detach()
        with _utils.eval_mode(model), torch.enable_grad():
            xi = x.clone().requires_grad_(True)
            out = model(xi)
            _check_first_output(out, "fgsm", y)
            (g,) = torch.autograd.grad(loss_fn(out, y), xi)
        x_adv = x + project(eps * step_direction(g, norm), x, eps, norm)
        return finish(x_adv, x, eps, norm, "fgsm", {"num_grad": x.shape[0]})

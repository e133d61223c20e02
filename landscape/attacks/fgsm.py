"""FGSM (Goodfellow et al., 2015): one signed-gradient (L-inf) or normalised-gradient
(L2) step of size eps on the loss."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .. import _utils
from ._losses import _assert_in_ball, _check_first_output, _check_inputs, get_loss
from .perturb import project
from .pgd import step_direction

__all__ = ["fgsm"]


def fgsm(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: str = "linf",
    loss: str | Callable[[Tensor, Tensor], Tensor] = "ce",
    generator: torch.Generator | None = None,
    progressbar: bool = False,
    return_info: bool = False,
) -> Tensor | tuple[Tensor, dict]:
    """Fast gradient (sign) method: ``x + eps * s(grad)`` projected on the ball and [0, 1].

    Args:
        model: classifier returning logits; put in eval mode, mode restored after.
        x: inputs in [0, 1].
        y: labels.
        eps: budget (>= 0).
        norm: ``"linf"`` (sign step) or ``"l2"`` (normalised-gradient step).
        loss: ``"ce"``, ``"cw"``, ``"dlr"`` or a per-example callable.
        generator: unused (FGSM is deterministic); accepted for the common signature.
        progressbar: unused (a single step).
        return_info: also return ``{"success": per-example bool, "num_grad": N}``.

    Returns:
        ``x_adv`` (and ``info``).

    Example:
        >>> model = torch.nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        ...     _ = model.bias.zero_()
        >>> fgsm(model, torch.tensor([[0.2, 0.5]]), torch.tensor([0]), eps=0.1).tolist()
        [[0.10000000149011612, 0.6000000238418579]]
    """
    del generator, progressbar
    eps, norm = _check_inputs(x, y, eps, norm)
    y = y.long()  # int32 / uint8 labels pass the check; indexing needs int64
    loss_fn = get_loss(loss)
    x = x.detach()
    with _utils.eval_mode(model), torch.enable_grad():
        xi = x.clone().requires_grad_(True)
        out = model(xi)
        _check_first_output(out, "fgsm", y)
        (g,) = torch.autograd.grad(loss_fn(out, y).sum(), xi)
    x_adv = x + project(eps * step_direction(g, norm), x, eps, norm)
    _assert_in_ball(x_adv, x, eps, norm, "fgsm")
    if not return_info:
        return x_adv
    with _utils.eval_mode(model), torch.no_grad():
        success = model(x_adv).argmax(1) != y
    return x_adv, {"success": success, "num_grad": x.shape[0]}

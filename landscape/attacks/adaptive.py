"""Adaptive attacks for models that mask gradients (Athalye, Carlini & Wagner, 2018,
"Obfuscated gradients give a false sense of security"; Tramer et al., 2020, "On
adaptive attacks to adversarial example defenses").

Each answer wraps the model for the attacker only; predictions are unchanged, so the
verdict of an evaluation is still the model's own:

- :class:`LogitsFromProbabilities`: a model that ends in a softmax returns
  probabilities whose gradients vanish where they saturate; attack ``log p`` instead
  (the logits up to a per-example constant, wherever ``p`` does not underflow).
- :class:`BPDA`: backward pass differentiable approximation, straight-through: the
  named non-differentiable input transforms (rounding, quantisation, JPEG-like
  preprocessing) act in the forward pass and as the identity in the backward pass.
- EOT for randomised models is the ``eot_iter`` option of :func:`~.apgd.apgd`
  (loss and gradient averaged over fresh forward passes), as AutoAttack's "rand"
  version runs it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["BPDA", "LogitsFromProbabilities"]


class LogitsFromProbabilities(nn.Module):
    """``log(model(x))`` for a model that returns probabilities.

    Example:
        >>> z = torch.tensor([[2.0, 0.0, -1.0]])
        >>> m = LogitsFromProbabilities(nn.Softmax(dim=1))
        >>> torch.allclose(m(z), z.log_softmax(1))
        True
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        p = self.model(x)
        return p.clamp_min(torch.finfo(p.dtype).tiny).log()


class BPDA(nn.Module):
    """Straight-through gradients through the submodules of ``model`` named in
    ``names`` (each must map its input to an output of the same shape).

    Example:
        >>> class Round(nn.Module):
        ...     def forward(self, x):
        ...         return torch.round(x * 4) / 4
        >>> net = nn.Sequential(Round(), nn.Linear(2, 2))
        >>> x = torch.tensor([[0.3, 0.6]], requires_grad=True)
        >>> BPDA(net, ["0"])(x).sum().backward()
        >>> torch.allclose(x.grad, net[1].weight.sum(0, keepdim=True))
        True
    """

    def __init__(self, model: nn.Module, names: Sequence[str]):
        super().__init__()
        if isinstance(names, str):
            names = [names]
        known = dict(model.named_modules())
        missing = [n for n in names if n not in known or not n]
        if missing:
            raise ValueError(
                f"BPDA: no submodule named {missing} in {type(model).__name__}; "
                f"name the input transform among {sorted(k for k in known if k)[:12]}"
            )
        self.model = model
        self.names = list(names)

    def forward(self, x: Tensor) -> Tensor:
        known = dict(self.model.named_modules())
        handles = [
            known[n].register_forward_hook(_straight_through) for n in self.names
        ]
        try:
            return self.model(x)
        finally:
            for h in handles:
                h.remove()


def _straight_through(module: nn.Module, args: tuple, out: Tensor) -> Tensor:
    inp = args[0]
    if not isinstance(out, Tensor) or out.shape != inp.shape:
        raise ValueError(
            f"BPDA needs a transform that keeps the input's shape; "
            f"{type(module).__name__} maps {tuple(inp.shape)} to "
            f"{tuple(getattr(out, 'shape', ()))}"
        )
    return inp + (out - inp).detach()

"""Adaptive answers to gradient masking, chosen from the checks that fail on the model
or by option (see :mod:`landscape.attacks.adaptive`):

- ``"eot"`` (a randomised model: two forward passes differ): every APGD attack averages
  its loss and gradient over ``eot_iter`` forward passes, and PGD attacks become APGD
  with EOT, as AutoAttack's "rand" version;
- ``"logits"`` (the model returns probabilities): attacks see ``log p``, computed by a
  float64 copy of the model so that a saturated softmax does not underflow;
- ``"bpda"`` (option only: the transform must be named): straight-through gradients
  through the named non-differentiable input transforms.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .. import _utils, attacks
from ..attacks.adaptive import BPDA, LogitsFromProbabilities
from ._presets import AttackSpec

__all__ = ["ADAPTIVE", "adapt", "detect_masking"]

ADAPTIVE = ("eot", "logits", "bpda")


class _Float64LogProbs(nn.Module):
    """``log p`` of a float64 copy of a probability-returning model, in the input's
    dtype (the copy is made once; the caller's model is left alone)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.inner = LogitsFromProbabilities(copy.deepcopy(model).double())

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x.double()).to(x.dtype)


@torch.no_grad()
def detect_masking(model: nn.Module, x: Tensor) -> list[str]:
    """The adaptive answers the cheap checks call for on the inputs ``x``: ``"eot"``
    if two forward passes differ, ``"logits"`` if the outputs are probabilities."""
    with _utils.eval_mode(model):
        o1, o2 = model(x), model(x)
    found = []
    if not torch.equal(o1, o2):
        found.append("eot")
    o = o1.double()
    ones = torch.ones_like(o[:, 0])
    if (o >= 0).all() and (o <= 1).all() and torch.allclose(o.sum(1), ones, atol=1e-3):
        found.append("logits")
    return found


def _with_eot(spec: AttackSpec, eot_iter: int) -> AttackSpec:
    if spec.fn in (attacks.apgd, attacks.apgd_t):
        return dataclasses.replace(spec, kwargs={**spec.kwargs, "eot_iter": eot_iter})
    if spec.fn is attacks.pgd:
        kw = {
            k: v for k, v in spec.kwargs.items() if k in ("steps", "restarts", "loss")
        }
        if kw.get("loss") not in (None, "ce", "cw", "dlr"):
            kw.pop("loss")
        return AttackSpec(
            f"apgd-eot-{spec.name}",
            attacks.apgd,
            {**kw, "eot_iter": eot_iter},
            kind=spec.kind,
        )
    return spec


def adapt(
    model: nn.Module,
    x: Tensor,
    specs: Sequence[AttackSpec],
    *,
    adaptive: str | Sequence[str] | None = "auto",
    bpda: Sequence[str] = (),
    eot_iter: int = 20,
) -> tuple[nn.Module, list[AttackSpec], list[str]]:
    """The model the attacks see, the attacks, and the answers applied.

    Args:
        model: the evaluated model (its predictions stay the verdict).
        x: a batch of inputs for the checks of ``adaptive="auto"``.
        specs: the attack sequence.
        adaptive: ``"auto"`` (answers from :func:`detect_masking`, plus ``"bpda"``
            when ``bpda`` names transforms), ``None`` / ``()`` (none), or a list of
            ``"eot"``, ``"logits"``, ``"bpda"``.
        bpda: names of the non-differentiable input transforms (submodules).
        eot_iter: forward passes per EOT gradient (AutoAttack's "rand": 20).

    Returns:
        ``(attack_model, specs, applied)``.
    """
    if adaptive == "auto":
        chosen = detect_masking(model, x) + (["bpda"] if bpda else [])
    elif adaptive is None:
        chosen = []
    else:
        chosen = [adaptive] if isinstance(adaptive, str) else list(adaptive)
    bad = [a for a in chosen if a not in ADAPTIVE]
    if bad:
        raise ValueError(
            f"unknown adaptive answer {bad}; use 'auto', None or {ADAPTIVE}"
        )
    if "bpda" in chosen and not bpda:
        raise ValueError("adaptive 'bpda' needs bpda=[names of the input transforms]")
    if eot_iter < 1:
        raise ValueError(f"eot_iter must be >= 1, got {eot_iter}")
    attack_model, specs = model, list(specs)
    if "bpda" in chosen:
        attack_model = BPDA(attack_model, list(bpda))
    if "logits" in chosen:
        attack_model = _Float64LogProbs(attack_model)
    if "eot" in chosen:
        specs = [_with_eot(s, eot_iter) for s in specs]
    return attack_model, specs, chosen

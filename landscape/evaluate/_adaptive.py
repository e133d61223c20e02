"""Adaptive answers to gradient masking, chosen from the checks that fail on the model
or by option (see :mod:`landscape.attacks.adaptive`):

- ``"eot"`` (a randomised model: two forward passes differ): every APGD attack averages
  its loss and gradient over ``eot_iter`` forward passes, and PGD attacks become APGD
  with EOT (named ``apgd-eot-<the PGD's name>``), as AutoAttack's "rand" version;
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


def _with_eot(attack: attacks.Attack, eot_iter: int) -> attacks.Attack:
    """The attack with EOT: APGD's own option; a PGD becomes APGD with EOT (its
    steps, restarts and named loss; AutoAttack's "rand" version)."""
    if isinstance(attack, (attacks.APGD, attacks.APGDT)):
        return dataclasses.replace(attack, eot_iter=eot_iter)
    if isinstance(attack, attacks.PGD):
        loss = attack.loss if attack.loss in ("ce", "cw", "dlr") else "ce"
        return attacks.APGD(
            eps=attack.eps, norm=attack.norm, steps=attack.steps,
            restarts=attack.restarts, loss=loss, eot_iter=eot_iter,
            label=f"apgd-eot-{attack.name}",
        )  # fmt: skip
    return attack


def adapt(
    model: nn.Module,
    x: Tensor,
    sequence: Sequence[attacks.Attack],
    *,
    adaptive: str | Sequence[str] | None = "auto",
    bpda: Sequence[str] = (),
    eot_iter: int = 20,
) -> tuple[nn.Module, list[attacks.Attack], list[str]]:
    """The model the attacks see, the attacks, and the answers applied.

    Args:
        model: the evaluated model (its predictions stay the verdict).
        x: a batch of inputs for the checks of ``adaptive="auto"``.
        sequence: the attack values, in order.
        adaptive: ``"auto"`` (answers from :func:`detect_masking`, plus ``"bpda"``
            when ``bpda`` names transforms), ``None`` / ``()`` (none), or a list of
            ``"eot"``, ``"logits"``, ``"bpda"``.
        bpda: names of the non-differentiable input transforms (submodules).
        eot_iter: forward passes per EOT gradient (AutoAttack's "rand": 20).

    Returns:
        ``(attack_model, sequence, applied)``.
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
    attack_model, sequence = model, list(sequence)
    if "bpda" in chosen:
        attack_model = BPDA(attack_model, list(bpda))
    if "logits" in chosen:
        attack_model = _Float64LogProbs(attack_model)
    if "eot" in chosen:
        sequence = [_with_eot(a, eot_iter) for a in sequence]
    return attack_model, sequence, chosen

"""Attacks. One file per attack, one signature ``attack(model, x, y, *, eps, norm, ...)``
returning ``x_adv`` (inputs in [0, 1], result inside the eps-ball, asserted; the model
is put in eval mode and its mode restored; deterministic under a ``generator``).
``return_info=True`` also returns a dict with the per-example ``success`` flags and the
cost (gradient passes or queries).

Attacks as values (:mod:`._spec`): ``attacks.PGD(eps=..., steps=..., alpha=...)``,
``FGSMRS``, ``FGSM``, ``PGDRestarts``, ``APGD``, ``APGDT``, ``Square``, ``SimBA``:
frozen, validated settings callable as ``attack(model, x, y, generator=None)``; pass
them as ``attack=`` to surfaces, scattering, ``perturb_batches``, hessian and training.

- :mod:`.perturb`: fast training-time PGD / FGSM-RS (input gradients only).
- :mod:`.fgsm`: FGSM (one step).
- :mod:`.pgd`: evaluation PGD: restarts, step-size grid, CE / CW / DLR losses, best
  iterate, traces.
- :mod:`.apgd`: APGD-CE, APGD-DLR and APGD-T (Croce & Hein, 2020).
- :mod:`.fab`: FAB and FAB-T, L-inf and L2 (Croce & Hein, 2020).
- :mod:`.square`: Square attack, L-inf and L2 (Andriushchenko et al., 2020).
- :mod:`.simba`: SimBA and SimBA-DCT with an explicit budget (Guo et al., 2019).
- :mod:`.adaptive`: answers to gradient masking: ``BPDA`` (straight-through through
  named input transforms), ``LogitsFromProbabilities``; EOT is ``apgd(eot_iter=...)``.
- :mod:`._losses`: per-example losses (``ce_loss``, ``cw_loss``, ``dlr_loss``,
  ``dlr_targeted_loss``) and ``is_adversarial``.
"""

from ._losses import (
    ce_loss,
    cw_loss,
    dlr_loss,
    dlr_targeted_loss,
    get_loss,
    is_adversarial,
    margin,
)
from ._spec import (
    APGD,
    APGDT,
    FAB,
    FABT,
    FGSM,
    FGSMRS,
    PGD,
    Attack,
    PGDRestarts,
    SimBA,
    Square,
    as_attack,
)
from .adaptive import BPDA, LogitsFromProbabilities
from .apgd import apgd, apgd_t
from .fab import fab, fab_t
from .fgsm import fgsm
from .perturb import fgsm_rs, perturb, perturb_batches, project, random_init
from .pgd import pgd
from .simba import simba
from .square import square

__all__ = [
    "APGD",
    "APGDT",
    "Attack",
    "FAB",
    "FABT",
    "FGSM",
    "FGSMRS",
    "PGD",
    "PGDRestarts",
    "SimBA",
    "Square",
    "BPDA",
    "LogitsFromProbabilities",
    "apgd",
    "apgd_t",
    "as_attack",
    "ce_loss",
    "cw_loss",
    "dlr_loss",
    "dlr_targeted_loss",
    "fab",
    "fab_t",
    "fgsm",
    "fgsm_rs",
    "get_loss",
    "is_adversarial",
    "margin",
    "perturb",
    "perturb_batches",
    "pgd",
    "project",
    "random_init",
    "simba",
    "square",
]

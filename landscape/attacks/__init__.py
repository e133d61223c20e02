"""Attacks: one file per attack, each holding the attack's value class and the
function that builds and runs it.

An attack is a value (:class:`Attack`, a frozen dataclass of its settings, validated
when it is built) called as ``attack(model, x, y, generator=None) -> x_adv``:
inputs in [0, 1], the result inside the eps-ball and in [0, 1] (asserted), the model
put in eval mode and its mode restored, deterministic under a ``generator``;
``return_info=True`` also returns a dict with the per-example ``success`` flags and
the cost (gradient passes or queries). The value is the one way to name an attack
everywhere: the trainer (``TrainConfig(attack=...)``), the evaluation protocol
(``evaluate(attacks=[...])``), surfaces, scattering, the Hessian's adversarial data
(:func:`perturb_batches`) and every command-line tool take it as it is; a schedule
changes its budget with ``dataclasses.replace(attack, eps=eps_t)``; ``to_dict`` /
``Attack.from_dict`` round-trip it through JSON. There are no function forms:
``PGD(eps=0.1, steps=10)(model, x, y, generator)`` is the call.

- :mod:`.pgd`: :class:`PGD`, for training (one run from a random
  start, the last iterate) and for evaluation (``keep="best"``: restarts, step-size
  grid, CE / CW / DLR losses, best iterate, traces); :class:`FGSMRS`, its one-step
  case (Wong et al., 2020).
- :mod:`.fgsm`: :class:`FGSM` (one step).
- :mod:`.apgd`: :class:`APGD` (APGD-CE, APGD-DLR) and :class:`APGDT` (Croce & Hein, 2020).
- :mod:`.fab`: :class:`FAB` and :class:`FABT`, L-inf
  and L2 (Croce & Hein, 2020).
- :mod:`.square`: :class:`Square`, L-inf and L2 (Andriushchenko et
  al., 2020).
- :mod:`.simba`: :class:`SimBA`, SimBA and SimBA-DCT with an explicit
  budget (Guo et al., 2019).
- :mod:`.adaptive`: answers to gradient masking: ``BPDA`` (straight-through through
  named input transforms), ``LogitsFromProbabilities``; EOT is ``APGD(eot_iter=...)``.
- :mod:`._losses`: per-example losses (``ce_loss``, ``cw_loss``, ``dlr_loss``,
  ``dlr_targeted_loss``, ``margin``); an attack's ``loss=`` names them by string
  (``"ce"``, ``"cw"``, ``"dlr"``) or takes a callable.

Adding an attack is one file and one export: write ``landscape/attacks/<name>.py``
with a ``@dataclasses.dataclass(frozen=True)`` subclass of :class:`Attack` (its
settings as fields with defaults, checked in ``__post_init__`` after
``super().__post_init__()``; ``kind = "black"`` for a query-only attack; the
attack itself in ``_run(self, model, x, y, gen, bar) -> (x_adv, info)``, the call
``attack(model, x, y, generator, progressbar=..., return_info=...)`` comes from
:class:`Attack`); then import the class here and add it to ``__all__``. Defining the
class registers it by its name (a base of several attacks without a ``_run`` of its
own, such as ``apgd._APGDSettings``, is not registered), so ``Attack.from_dict`` reads it back from configs,
results and state files, and the trainer, the evaluation protocol and the analyses
take it as they take the others.
"""

from ._base import Attack, perturb_batches
from ._losses import (
    ce_loss,
    cw_loss,
    dlr_loss,
    dlr_targeted_loss,
    margin,
)
from .adaptive import BPDA, LogitsFromProbabilities
from .apgd import APGD, APGDT
from .fab import FAB, FABT
from .fgsm import FGSM
from .pgd import FGSMRS, PGD
from .simba import SimBA
from .square import Square

__all__ = [
    "APGD",
    "APGDT",
    "Attack",
    "FAB",
    "FABT",
    "FGSM",
    "FGSMRS",
    "PGD",
    "SimBA",
    "Square",
    "BPDA",
    "LogitsFromProbabilities",
    "ce_loss",
    "cw_loss",
    "dlr_loss",
    "dlr_targeted_loss",
    "margin",
    "perturb_batches",
]

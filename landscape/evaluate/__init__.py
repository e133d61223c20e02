"""Robust evaluation: a standard protocol with strong white-box and black-box attacks,
L-inf and L2, eps sweeps, resumable state, and gradient-masking checks.

- :func:`evaluate` -> :class:`EvalResult` (per-example results, table, checks): a
  list of attack values (``evaluate(model, data, attacks=[attacks.APGD(eps=0.3),
  attacks.Square(eps=0.3)])``) or a preset (``evaluate(model, data, eps=0.3,
  preset="standard")``).
- :func:`robust_accuracy` -> float (the trainer's fast per-epoch call).
- :func:`preset_attacks`: the presets as lists of attack values: ``"quick"``
  (PGD-20), ``"standard"`` (AutoAttack's standard version: APGD-CE, APGD-T, FAB-T,
  Square) and ``"reviewer"`` (PGD-100 with a step-size grid and 100 restarts, PGD-CW,
  SimBA, Square), scalable with ``scale``.
- :func:`masking_checks`: the gradient-masking checks on their own.
- :func:`adapt` / :func:`detect_masking`: the adaptive answers (EOT, logits recovery,
  BPDA) that ``evaluate(adaptive="auto")`` applies from the failed checks.

``python -m landscape.evaluate --help`` is the command-line tool.
"""

from ._adaptive import ADAPTIVE, adapt, detect_masking
from ._checks import masking_checks
from ._presets import PRESETS, preset_attacks
from ._protocol import EvalResult, evaluate, robust_accuracy

__all__ = [
    "ADAPTIVE",
    "PRESETS",
    "EvalResult",
    "adapt",
    "detect_masking",
    "evaluate",
    "masking_checks",
    "preset_attacks",
    "robust_accuracy",
]

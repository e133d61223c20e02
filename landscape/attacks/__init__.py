"""Attacks. One file per attack, one signature ``attack(model, x, y, *, eps, norm, ...)``.

- :mod:`.perturb`: fast training-time PGD / FGSM-RS (input gradients only).
"""

from .perturb import fgsm_rs, perturb, perturb_batches, project, random_init

__all__ = ["fgsm_rs", "perturb", "perturb_batches", "project", "random_init"]

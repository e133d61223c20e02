"""How much work each ``--budget`` buys: sample counts, attack strength, grid sizes.

A budget's name is the evaluation preset it runs, with the same meaning as in
:func:`landscape.evaluate.evaluate`: ``quick`` evaluates with the quick preset
(PGD-20), ``standard`` with AutoAttack's standard version, ``reviewer`` with the
reviewer protocol, each at its published strength. The fixed adversarial examples
of the curvature and surface sections, and the attack replayed by the scattering
section, are one run of PGD with the quick preset's 20 steps in every built-in
budget; the budgets differ in how many points and how fine a grid they analyse."""

from __future__ import annotations

import dataclasses

__all__ = ["Budget", "BUDGETS", "budget"]


@dataclasses.dataclass(frozen=True)
class Budget:
    """The sizes of one report.

    Attributes:
        name: ``"quick"``, ``"standard"`` or ``"reviewer"``: the evaluation preset.
        eval_num: test points for the robust-accuracy table.
        eval_preset: evaluation protocol (:func:`landscape.evaluate.evaluate`), the
            budget's name for the built-in budgets.
        eval_scale: scales the protocol's iterations and queries (1 = published, as
            every built-in budget).
        check_samples: points for the gradient-masking checks.
        hessian_num: training points for the Hessian (clean and adversarial).
        num_eigenvalues: how many top eigenvalues.
        density_max_iter: Lanczos iterations per spectral-density probe.
        density_runs: spectral-density probes.
        attack_steps: steps of the one-run PGD that makes the fixed adversarial
            examples (20 in every built-in budget: the quick preset's PGD-20).
        surface_num: training points for the loss surfaces.
        grid: points per axis of the 2D surfaces (on ``[-1, 1]``).
        scatter_num: training points for gradient scattering.
        scatter_scales: step sizes ``s`` for scattering.
        scatter_directions: random directions for scattering.
    """

    name: str
    eval_num: int
    eval_preset: str
    eval_scale: float
    check_samples: int
    hessian_num: int
    num_eigenvalues: int
    density_max_iter: int
    density_runs: int
    attack_steps: int
    surface_num: int
    grid: int
    scatter_num: int
    scatter_scales: tuple[float, ...]
    scatter_directions: int


# One row per setting, one column per budget: (quick, standard, reviewer).
_ALL_SCALES = (1e-4, 1e-3, 1e-2, 1e-1)
_TABLE: dict[str, tuple] = {
    "eval_num": (100, 500, 2000),
    "eval_preset": ("quick", "standard", "reviewer"),
    "eval_scale": (1.0, 1.0, 1.0),
    "check_samples": (50, 100, 200),
    "hessian_num": (128, 512, 2000),
    "num_eigenvalues": (3, 5, 10),
    "density_max_iter": (20, 80, 100),
    "density_runs": (1, 2, 3),
    "attack_steps": (20, 20, 20),
    "surface_num": (128, 512, 2000),
    "grid": (7, 15, 31),
    "scatter_num": (32, 128, 512),
    "scatter_scales": ((1e-3, 1e-2), _ALL_SCALES, _ALL_SCALES),
    "scatter_directions": (2, 4, 8),
}

BUDGETS: dict[str, Budget] = {
    name: Budget(name=name, **{k: row[i] for k, row in _TABLE.items()})
    for i, name in enumerate(("quick", "standard", "reviewer"))
}


def budget(name: str | Budget) -> Budget:
    """The :class:`Budget` called ``name`` (a Budget is returned unchanged).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if isinstance(name, Budget):
        return name
    if name not in BUDGETS:
        raise ValueError(f"budget must be one of {sorted(BUDGETS)}, got {name!r}")
    return BUDGETS[name]

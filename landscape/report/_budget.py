"""How much work each ``--budget`` buys: sample counts, attack strength, grid sizes."""

from __future__ import annotations

import dataclasses

__all__ = ["Budget", "BUDGETS", "budget"]


@dataclasses.dataclass(frozen=True)
class Budget:
    """The sizes of one report.

    Attributes:
        name: ``"quick"``, ``"standard"`` or ``"thorough"``.
        eval_num: test points for the robust-accuracy table.
        eval_preset: evaluation protocol (:func:`landscape.evaluate.evaluate`).
        eval_scale: scales the protocol's iterations and queries (1 = published).
        check_samples: points for the gradient-masking checks.
        hessian_num: training points for the Hessian (clean and adversarial).
        top_k: how many top eigenvalues.
        density_iters: Lanczos iterations per spectral-density probe.
        density_runs: spectral-density probes.
        attack_steps: PGD steps that make the fixed adversarial examples.
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
    top_k: int
    density_iters: int
    density_runs: int
    attack_steps: int
    surface_num: int
    grid: int
    scatter_num: int
    scatter_scales: tuple[float, ...]
    scatter_directions: int


BUDGETS: dict[str, Budget] = {
    "quick": Budget(
        name="quick",
        eval_num=100,
        eval_preset="quick",
        eval_scale=0.25,
        check_samples=50,
        hessian_num=128,
        top_k=3,
        density_iters=20,
        density_runs=1,
        attack_steps=5,
        surface_num=128,
        grid=7,
        scatter_num=32,
        scatter_scales=(1e-3, 1e-2),
        scatter_directions=2,
    ),
    "standard": Budget(
        name="standard",
        eval_num=500,
        eval_preset="standard",
        eval_scale=1.0,
        check_samples=100,
        hessian_num=512,
        top_k=5,
        density_iters=80,
        density_runs=2,
        attack_steps=10,
        surface_num=512,
        grid=15,
        scatter_num=128,
        scatter_scales=(1e-4, 1e-3, 1e-2, 1e-1),
        scatter_directions=4,
    ),
    "thorough": Budget(
        name="thorough",
        eval_num=2000,
        eval_preset="reviewer",
        eval_scale=1.0,
        check_samples=200,
        hessian_num=2000,
        top_k=10,
        density_iters=100,
        density_runs=3,
        attack_steps=20,
        surface_num=2000,
        grid=31,
        scatter_num=512,
        scatter_scales=(1e-4, 1e-3, 1e-2, 1e-1),
        scatter_directions=8,
    ),
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

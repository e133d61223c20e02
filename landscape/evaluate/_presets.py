"""Attack presets of the evaluation protocol and their budget scaling."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .. import attacks

__all__ = ["AttackSpec", "PRESETS", "preset_attacks"]

PRESETS = ("quick", "standard", "reviewer")


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """One attack of a protocol: ``fn(model, x, y, eps=, norm=, generator=, **kwargs)``.

    ``kind`` is ``"white"`` (gradient-based) or ``"black"`` (queries only).
    ``alpha_rel`` entries become absolute step sizes ``alpha_rel * eps``.
    """

    name: str
    fn: Callable[..., Any]
    kwargs: dict
    kind: str = "white"
    alpha_rel: tuple[float, ...] | None = None

    def call_kwargs(self, eps: float) -> dict:
        kw = dict(self.kwargs)
        if self.alpha_rel is not None:
            kw["alpha"] = [a * eps for a in self.alpha_rel]
        return kw

    def describe(self) -> str:
        kw = ", ".join(f"{k}={v}" for k, v in sorted(self.kwargs.items()))
        rel = f", alpha_rel={list(self.alpha_rel)}" if self.alpha_rel else ""
        return f"{self.name}({self.fn.__name__}: {kw}{rel})"


def _n(v: int, scale: float, lo: int = 1) -> int:
    return max(lo, int(round(v * scale)))


def preset_attacks(
    preset: str,
    norm: str = "linf",
    *,
    scale: float = 1.0,
    steps: int | None = None,
    restarts: int | None = None,
    queries: int | None = None,
    num_classes: int = 10,
) -> list[AttackSpec]:
    """The attacks of a preset, budgets multiplied by ``scale`` (or overridden).

    - ``"quick"``: PGD-20 (CE, step ``2.5 eps / steps``, one random start).
    - ``"standard"``: AutoAttack's standard version (Croce & Hein 2020), its sequence
      and budgets: APGD-CE (100 steps, 1 run), APGD-T (100 steps, 9 targets, 1 run
      each), FAB-T (100 steps, 9 targets, 1 run each) and Square (5000 queries,
      ``p_init=0.8``, AutoAttack's schedule of ``p``).
    - ``"reviewer"``: PGD-100 with CE over a grid of 4 step sizes x 25 restarts (up to
      100 runs per point; early exit once 5 restarts in a row broke no point, see
      ``EvalResult.restart_curves``), PGD-100 with the CW margin loss (4 x 5 runs), SimBA (SimBA-DCT
      for L2, pixel SimBA for L-inf; 10,000 queries) and Square (5000 queries).

    ``scale`` multiplies steps, restarts and queries (e.g. ``scale=0.05`` for a CPU
    smoke run); ``steps`` / ``restarts`` / ``queries`` set them outright for every
    attack. With fewer than 4 classes APGD-T becomes APGD with the CW loss (as the
    targeted DLR loss needs 4 classes) and FAB-T targets the ``num_classes - 1`` other
    classes.

    Example:
        >>> [a.name for a in preset_attacks("standard")]
        ['apgd-ce', 'apgd-t', 'fab-t', 'square']
        >>> preset_attacks("quick", steps=7)[0].kwargs["steps"]
        7
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of {PRESETS}")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")

    def st(v: int) -> int:
        return steps if steps is not None else _n(v, scale)

    def rs(v: int) -> int:
        return restarts if restarts is not None else _n(v, scale)

    def qs(v: int) -> int:
        return queries if queries is not None else _n(v, scale, lo=2)

    if preset == "quick":
        k = st(20)
        return [
            AttackSpec(
                f"pgd-{k}", attacks.pgd, {"steps": k, "restarts": rs(1), "loss": "ce"}
            )
        ]
    if preset == "standard":
        k = st(100)
        if num_classes >= 4:
            second = AttackSpec(
                "apgd-t",
                attacks.apgd_t,
                {"steps": k, "restarts": rs(1), "num_targets": 9},
            )
        else:
            second = AttackSpec(
                "apgd-cw", attacks.apgd, {"steps": k, "restarts": rs(1), "loss": "cw"}
            )
        return [
            AttackSpec(
                "apgd-ce", attacks.apgd, {"steps": k, "restarts": rs(1), "loss": "ce"}
            ),
            second,
            AttackSpec(
                "fab-t",
                attacks.fab_t,
                {"steps": k, "restarts": rs(1), "num_targets": 9},
            ),
            AttackSpec(
                "square",
                attacks.square,
                {"queries": qs(5000), "p_init": 0.8},
                kind="black",
            ),
        ]
    k = st(100)
    grid = tuple(2.5 / k * m for m in (10.0, 4.0, 2.0, 1.0))
    simba_kw: dict[str, Any] = {"queries": qs(10000), "dct": norm == "l2"}
    return [
        AttackSpec(
            f"pgd-{k}-ce",
            attacks.pgd,
            {"steps": k, "restarts": rs(25), "loss": "ce", "patience": 5},
            alpha_rel=grid,
        ),
        AttackSpec(
            f"pgd-{k}-cw",
            attacks.pgd,
            {"steps": k, "restarts": rs(5), "loss": "cw"},
            alpha_rel=grid,
        ),
        AttackSpec(
            "simba-dct" if norm == "l2" else "simba", attacks.simba, simba_kw, "black"
        ),
        AttackSpec("square", attacks.square, {"queries": qs(5000)}, kind="black"),
    ]

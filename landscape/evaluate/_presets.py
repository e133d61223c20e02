"""Attack presets of the evaluation protocol and their budget scaling."""

from __future__ import annotations

from dataclasses import replace

from .. import _utils, attacks

__all__ = ["PRESETS", "preset_attacks"]

PRESETS = ("quick", "standard", "reviewer")


def _n(v: int, scale: float, lo: int = 1) -> int:
    return max(lo, int(round(v * scale)))


def preset_attacks(
    preset: str,
    eps: float,
    norm: str = "linf",
    *,
    scale: float = 1.0,
    steps: int | None = None,
    restarts: int | None = None,
    queries: int | None = None,
    num_classes: int = 10,
) -> list[attacks.Attack]:
    """The attack values of a preset at the budget ``eps``, their step / restart /
    query budgets multiplied by ``scale`` (or overridden). The preset at another
    budget ``e`` is ``[dataclasses.replace(a, eps=e) for a in ...]`` (the step sizes
    are relative to eps, so they follow).

    - ``"quick"``: PGD-20 (CE, step ``2.5 eps / steps``, one start: random for L-inf,
      ``x`` for L2; best iterate).
    - ``"standard"``: AutoAttack's standard version (Croce & Hein 2020), its sequence
      and budgets: APGD-CE (100 steps, 1 run), APGD-T (100 steps, 9 targets, 1 run
      each), FAB-T (100 steps, 9 targets, 1 run each) and Square (5000 queries,
      ``p_init=0.8``, AutoAttack's schedule of ``p``).
    - ``"reviewer"``: PGD-100 with CE over a grid of 4 step sizes x 25 restarts (up to
      100 runs per point; early exit once 5 restarts in a row broke no point, see
      ``EvalResult.restart_curves``), PGD-100 with the CW margin loss (4 x 5 runs),
      SimBA (SimBA-DCT for L2, pixel SimBA for L-inf; 10,000 queries) and Square
      (5000 queries).

    ``scale`` multiplies steps, restarts and queries (e.g. ``scale=0.05`` for a CPU
    smoke run); ``steps`` / ``restarts`` / ``queries`` set them outright for every
    attack. With fewer than 4 classes APGD-T becomes APGD with the CW loss (as the
    targeted DLR loss needs 4 classes) and FAB-T targets the ``num_classes - 1`` other
    classes.

    Example:
        >>> [a.name for a in preset_attacks("standard", 0.3)]
        ['apgd-ce', 'apgd-t', 'fab-t', 'square']
        >>> preset_attacks("quick", 0.3, steps=7)[0].steps
        7
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of {PRESETS}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    norm = _utils.check_norm(norm)
    # an L2 evaluation starts its first run at x (see attacks.PGD's random_start)
    start = norm == "linf"

    def st(v: int) -> int:
        return steps if steps is not None else _n(v, scale)

    def rs(v: int) -> int:
        return restarts if restarts is not None else _n(v, scale)

    def qs(v: int) -> int:
        return queries if queries is not None else _n(v, scale, lo=2)

    if preset == "quick":
        pgd = attacks.PGD(eps=eps, norm=norm, steps=st(20), restarts=rs(1), loss="ce",
                          random_start=start, keep="best")  # fmt: skip
        return [pgd]
    if preset == "standard":
        k = st(100)
        if num_classes >= 4:
            second = attacks.APGDT(
                eps=eps, norm=norm, steps=k, restarts=rs(1), num_targets=9,
                early_stop=True,
            )  # fmt: skip
        else:
            second = attacks.APGD(
                eps=eps, norm=norm, steps=k, restarts=rs(1), loss="cw",
                early_stop=True,
            )  # fmt: skip
        return [
            attacks.APGD(
                eps=eps,
                norm=norm,
                steps=k,
                restarts=rs(1),
                loss="ce",
                early_stop=True,
            ),  # fmt: skip
            second,
            attacks.FABT(eps=eps, norm=norm, steps=k, restarts=rs(1), num_targets=9),
            attacks.Square(eps=eps, norm=norm, queries=qs(5000), p_init=0.8),
        ]
    k = st(100)
    # the step-size grid, relative to eps: 10, 4, 2 and 1 times 2.5 eps / steps
    grid = tuple(2.5 / k * m for m in (10.0, 4.0, 2.0, 1.0))
    pgd = attacks.PGD(eps=eps, norm=norm, steps=k, alpha_rel=grid, random_start=start,
                      keep="best")  # fmt: skip
    return [
        replace(pgd, restarts=rs(25), loss="ce", patience=5, label=f"pgd-{k}-ce"),
        replace(pgd, restarts=rs(5), loss="cw"),
        attacks.SimBA(eps=eps, norm=norm, queries=qs(10000), dct=norm == "l2"),
        attacks.Square(eps=eps, norm=norm, queries=qs(5000)),
    ]

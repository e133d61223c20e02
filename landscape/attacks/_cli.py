"""The one parser from command-line flags to an attack value: :func:`add_attack` adds
the flags (``--attack``, ``--eps``, ``--norm``, ``--steps``, ``--alpha``,
``--alpha-rel``, ``--no-random-start``), :func:`attack_from_args` makes the value.
Every tool that attacks (``python -m landscape.train``, ``.connectivity``,
``.surface``, ``.scattering``, ``.hessian``) builds its attack here.
:func:`attack_from_spec` reads one attack of a list (``evaluate --attacks``):
``NAME[:key=value,...]``, e.g. ``apgd:loss=dlr,steps=50``."""

from __future__ import annotations

import argparse
import ast
import dataclasses
from collections.abc import Sequence
from typing import Any

from .. import _cli
from ._base import _REGISTRY

__all__ = ["ATTACK_KINDS", "add_attack", "attack_from_args", "attack_from_spec"]

# the attacks a tool's --attack can name (CLI name -> landscape.attacks class name)
ATTACK_KINDS = {"pgd": "PGD", "fgsm-rs": "FGSMRS", "apgd": "APGD"}


def add_attack(
    p: argparse.ArgumentParser | Any,
    *,
    kinds: Sequence[str] = ("pgd",),
    eps: float | list[float] | None = None,
    eps_required: bool = False,
    sweep: bool = False,
    steps: int | None = None,
    norm_flag: str = "--norm",
    title: str = "attack",
) -> None:
    """The flags of an attack, read by :func:`attack_from_args`: ``--attack`` (when
    ``kinds`` holds more than one of ``pgd``, ``fgsm-rs``, ``apgd``, ``none``),
    ``--eps`` (default ``eps``; several with ``sweep``), ``norm_flag`` (the attack's
    norm), ``--steps`` (default ``steps``), ``--alpha`` (absolute step size),
    ``--alpha-rel`` (step size as a multiple of eps) and ``--no-random-start``. A
    flag left at None takes the base attack's setting (or the attack's default)."""
    g = p.add_argument_group(title) if isinstance(p, argparse.ArgumentParser) else p
    if len(kinds) > 1:
        g.add_argument(
            "--attack",
            choices=list(kinds),
            default=None,
            help=f"the attack (default: {kinds[0]})",
        )
    budget = "budget(s): a sweep" if sweep else "budget"
    g.add_argument(
        "--eps",
        type=_cli.number,
        nargs="+" if sweep else None,
        default=eps,
        required=eps_required,
        help=f"attack {budget}, e.g. 0.3 or 8/255"
        + ("" if eps is None else f" (default {eps}; 0: no attack)"),
    )
    g.add_argument(
        norm_flag, dest="attack_norm", choices=["linf", "l2"], default=None,
        help="attack norm (default linf)",
    )  # fmt: skip
    g.add_argument(
        "--steps",
        type=_cli.positive_int,
        default=steps,
        help="attack steps" + ("" if steps is None else f" (default {steps})"),
    )
    g.add_argument("--alpha", type=_cli.number, default=None, help="absolute step size")
    g.add_argument(
        "--alpha-rel",
        type=float,
        default=None,
        help="step size as a multiple of eps (default 2.5 / steps)",
    )
    g.add_argument(
        "--no-random-start",
        dest="random_start",
        action="store_false",
        default=None,
        help="start the attack at x, not at a random point of the ball",
    )


def attack_from_args(
    args: argparse.Namespace,
    base: Any = None,
    *,
    keep: str = "last",
) -> Any:
    """The attack value of the flags of :func:`add_attack`: ``base`` (e.g. a
    preset's training attack; default: the kind's defaults) with every given flag
    replaced. ``keep="best"`` builds evaluation attacks (a PGD keeps the per-example
    best iterate and starts at x for L2, as the evaluation presets). With ``sweep``
    flags the attack is at the first eps (replace eps for the others).

    Returns:
        The attack, or None for ``--attack none`` or a zero budget (not in a
        sweep).

    Raises:
        CLIError: the flags do not make an attack.
    """

    kind = getattr(args, "attack", None)
    if kind is None:
        known = {v: k for k, v in ATTACK_KINDS.items()}
        kind = "pgd" if base is None else known.get(type(base).__name__, "pgd")
    if kind == "none":
        return None
    cls = _REGISTRY[ATTACK_KINDS[kind]]
    eps = args.eps[0] if isinstance(args.eps, list) else args.eps
    norm = args.attack_norm or (base.norm if base is not None else "linf")
    change: dict[str, Any] = {"norm": norm}
    if base is None or type(base) is not cls:
        if eps is None and base is None:
            return None
        change["eps"] = base.eps if base is not None else eps
        if kind == "pgd" and keep == "best":  # the evaluation presets' PGD
            change.update(loss="ce", keep="best", random_start=norm == "linf")
        base = cls(eps=change["eps"])
    if eps is not None:
        change["eps"] = eps
    if args.steps is not None and kind != "fgsm-rs":
        change["steps"] = args.steps
    if args.alpha is not None or args.alpha_rel is not None:
        change.update(alpha=args.alpha, alpha_rel=args.alpha_rel)
    if args.random_start is not None:
        change["random_start"] = args.random_start
    try:
        attack = dataclasses.replace(base, **change)
    except (TypeError, ValueError) as err:
        raise _cli.CLIError(
            f"the attack flags do not make a {cls.__name__}: {err}",
            "see --help (APGD takes no --alpha, --alpha-rel or --no-random-start)",
        ) from None
    sweep = isinstance(args.eps, list)  # the callers replace eps for each budget
    return None if attack.eps == 0 and not sweep else attack


def _value(text: str) -> Any:
    """A setting's value: a Python literal (number, bool, None, tuple / list of
    numbers), else the text itself (a loss name)."""
    try:
        v = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return tuple(v) if isinstance(v, list) else v


def attack_from_spec(spec: str, *, eps: float, norm: str) -> Any:
    """One attack of a list such as ``evaluate --attacks``: ``NAME[:key=value,...]``
    with NAME a registered attack class (any case: ``pgd``, ``apgd``, ``apgdt``,
    ``fab``, ``fabt``, ``square``, ``simba``, ``fgsm``, ...) and its settings (a
    grid of step sizes as ``alpha_rel=(0.25,0.05)``); ``eps`` and ``norm`` come from
    the tool's flags. A PGD is the evaluation PGD (``keep=best``, loss ``ce``,
    random start for L-inf) unless the spec says otherwise.

    Example:
        >>> attack_from_spec("pgd:steps=50,restarts=2", eps=0.3, norm="linf").name
        'pgd-50'

    Raises:
        CLIError: unknown attack or setting, or a setting it does not accept.
    """
    name, _, rest = spec.partition(":")
    kinds = {k.lower(): k for k in _REGISTRY}
    key = kinds.get(name.strip().lower().replace("-", "").replace("_", ""))
    if key is None:
        raise _cli.CLIError(
            f"unknown attack {name!r} in --attacks {spec!r}",
            f"use one of {', '.join(sorted(kinds))}, e.g. apgd:loss=dlr",
        )
    settings: dict[str, Any] = {}
    for item in filter(None, (t.strip() for t in _split(rest))):
        k, eq, v = item.partition("=")
        if not eq or not k.strip():
            raise _cli.CLIError(
                f"--attacks {spec!r}: {item!r} is not key=value",
                "write NAME:key=value,key=value, e.g. pgd:steps=50,restarts=2",
            )
        settings[k.strip()] = _value(v.strip())
    for k in ("eps", "norm"):
        if k in settings:
            raise _cli.CLIError(
                f"--attacks {spec!r} sets {k}", f"give {k} with the tool's --{k}"
            )
    base: dict[str, Any] = {"attack": key, "eps": eps, "norm": norm}
    if key == "PGD":
        base.update(keep="best", loss="ce", random_start=norm == "linf")
    try:
        return _REGISTRY[key].from_dict({**base, **settings})
    except (TypeError, ValueError) as err:
        raise _cli.CLIError(
            f"--attacks {spec!r} does not make a {key}: {err}",
            f"the settings of {key}: "
            + ", ".join(f.name for f in dataclasses.fields(_REGISTRY[key])[3:]),
        ) from None


def _split(text: str) -> list[str]:
    """``text`` split at the commas outside brackets."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [*out, cur]

"""``python -m landscape.evaluate``: robust evaluation of a checkpoint or run folder
(clean accuracy, attacks in sequence, pointwise worst case, eps sweep,
gradient-masking checks). Writes eval_<norm>.npz (EvalResult, with a readable .json
copy) and the table eval_<norm>.txt into the folder -o (default
runs/evaluate/<name of the checkpoint>).

Example:
    python -m landscape.evaluate runs/mnist_pgd --dataset mnist --num-samples 1000 \\
        --eps 0.1 0.2 0.3 --preset standard --out runs/mnist_pgd/eval
    # your own attack list instead of a preset (NAME:key=value,...)
    python -m landscape.evaluate runs/mnist_pgd --dataset mnist --eps 0.3 \\
        --attacks apgd:loss=ce apgd:loss=dlr,steps=50 square:queries=1000
    # certified lower bound next to the attacks; BPDA through an input transform
    python -m landscape.evaluate runs/mnist_pgd --dataset mnist --eps 0.1 --certify
    python -m landscape.evaluate runs/cifar_resnet --dataset cifar10 --eps 0.008 \
        --certify crown-ibp
    # (a model with a `quantise` input-transform submodule is a pickled module:
    # load it with --trust-checkpoint only if you trust the file)
    python -m landscape.evaluate model.pt --trust-checkpoint --dataset mnist \\
        --eps 0.3 --bpda quantise
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .. import _cli, _dist, checkpoints, data, io
from ..attacks._cli import attack_from_spec
from ._adaptive import ADAPTIVE
from ._presets import PRESETS
from ._protocol import CERTIFY_METHODS, _rank_path, evaluate

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = _cli.parser("python -m landscape.evaluate", __doc__)
    _cli.add_checkpoint(p, ensemble=True)
    _cli.add_data(p, split="test")
    p.add_argument(
        "--eps",
        type=float,
        nargs="+",
        required=True,
        help="budget(s) for the first norm; a sweep if several",
    )
    p.add_argument(
        "--eps-l2",
        type=float,
        nargs="+",
        default=None,
        help="budget(s) for L2 when --norm includes l2 after linf",
    )
    p.add_argument(
        "--norm",
        nargs="+",
        default=None,
        choices=["linf", "l2"],
        help="norms (default: linf; reviewer: linf and l2)",
    )
    p.add_argument(
        "--preset", default=None, choices=PRESETS, help="the attacks (default quick)"
    )
    p.add_argument(
        "--attacks",
        nargs="+",
        default=None,
        metavar="NAME[:key=value,...]",
        help="run these attacks in sequence instead of a preset, e.g. apgd:loss=ce "
        "apgd:loss=dlr,steps=50 square:queries=1000 (names: pgd, apgd, apgdt, fab, "
        "fabt, square, simba, fgsm; eps and norm from --eps / --norm)",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply all step/restart/query budgets (e.g. 0.05 on CPU)",
    )
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--restarts", type=int, default=None)
    p.add_argument("--queries", type=int, default=None)
    p.add_argument("--batch-size", type=_cli.positive_int, default=500)
    p.add_argument(
        "--no-checks", action="store_true", help="skip gradient-masking checks"
    )
    p.add_argument(
        "--certify",
        nargs="?",
        const="crown",
        default=None,
        choices=CERTIFY_METHODS,
        help="also certify every point (any ReLU net, residual additions and "
        "BatchNorm included): crown (the default; tightest), crown-ibp (one "
        "backward pass: for ResNets) or ibp (fastest, loosest); the table brackets "
        "robust accuracy between certified and attacked",
    )
    p.add_argument(
        "--adaptive",
        nargs="+",
        default=["auto"],
        choices=["auto", "none", *ADAPTIVE],
        help="answers to gradient masking: auto (from the masking checks), none, or "
        "a list (eot: expectation over randomness, logits: attack log-probabilities "
        "of a softmax model, bpda: straight-through gradients of --bpda transforms)",
    )
    p.add_argument(
        "--bpda",
        nargs="+",
        default=[],
        metavar="SUBMODULE",
        help="names of non-differentiable input transforms of the model (BPDA)",
    )
    p.add_argument(
        "--eot-iter",
        type=_cli.positive_int,
        default=20,
        help="forward passes per EOT gradient",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="ignore and overwrite an existing state file",
    )
    _cli.add_common(p, num_samples=1000, out="evaluate")
    return p


def _main(args: argparse.Namespace) -> int:
    adaptive = _adaptive(args.adaptive, args.bpda)  # usage errors before any loading
    _check_attacks_flags(args)
    folder = _cli.out_folder(args, "evaluate", args.checkpoint)  # before the work
    norms = args.norm or (["linf", "l2"] if args.preset == "reviewer" else ["linf"])
    model = checkpoints.load_model(args.checkpoint, **_cli.checkpoint_options(args))
    x, y = data.load_dataset(**_cli.data_options(args))
    for i, norm in enumerate(norms):
        eps = args.eps if i == 0 or args.eps_l2 is None else args.eps_l2
        if norm == "l2" and i > 0 and args.eps_l2 is None:
            print("skipping l2: pass --eps-l2 for its budgets")
            continue
        out = folder / f"eval_{norm}"
        state = Path(str(out) + ".state.pt")
        res = _evaluate_one(args, model, x, y, eps, norm, state, adaptive)
        print(res.table())
        print(f"wrote {out}.npz, {out}.npz.json, {out}.txt")
    return 0


def _evaluate_one(args, model, x, y, eps, norm, state: Path, adaptive):
    out = state.with_name(state.name.removesuffix(".state.pt"))
    if args.no_resume:
        mine = _rank_path(state, *_dist.info())
        with io.lock(mine):  # not from under another process's feet
            mine.unlink(missing_ok=True)
    if args.attacks:
        chosen = {"attacks": _attacks(args.attacks, eps, norm)}
    else:
        chosen = _cli.pick(args, "scale", "steps", "restarts", "queries")
        chosen["preset"] = args.preset or "quick"
    res = evaluate(  # locks the state file while it runs (one process per file)
        model,
        (x, y),
        eps=eps,
        norm=norm,
        **chosen,
        batch_size=args.batch_size,
        checks=not args.no_checks,
        certify=args.certify or False,
        adaptive=adaptive,
        bpda=args.bpda,
        eot_iter=args.eot_iter,
        state_path=state,
        generator=torch.Generator().manual_seed(args.seed),
        progressbar=_cli.progress(args),
    )
    if _cli.is_main():  # under torchrun: every rank holds the merged result
        res.save(out.with_name(out.name + ".npz"))
        res.save_table(out.with_name(out.name + ".txt"))
    mine = _rank_path(state, *_dist.info())  # one state file per rank
    with io.lock(mine):
        mine.unlink(missing_ok=True)
    return res


def _check_attacks_flags(args: argparse.Namespace) -> None:
    """``--attacks`` replaces the preset and its budget flags: reject both at once,
    and parse the list once (errors before any loading)."""
    if not args.attacks:
        return
    given = [
        f"--{k}"
        for k, default in (("steps", None), ("restarts", None), ("queries", None))
        if getattr(args, k) != default
    ]
    if args.scale != 1.0:
        given.append("--scale")
    if args.preset is not None:
        given.insert(0, f"--preset {args.preset}")
    if given:
        raise _cli.CLIError(
            f"--attacks replaces the preset: {', '.join(given)} would be ignored",
            "set steps / restarts / queries in each attack, e.g. pgd:steps=50",
        )
    _attacks(args.attacks, args.eps[0], (args.norm or ["linf"])[0])


def _attacks(specs: list[str], eps: list[float], norm: str) -> list:
    """The ``--attacks`` list at the first budget (evaluate sweeps ``eps``)."""
    e = eps[0] if isinstance(eps, list) else eps
    return [attack_from_spec(s, eps=e, norm=norm) for s in specs]


def _adaptive(names: list[str], bpda: list[str]) -> str | list[str] | None:
    """``--adaptive`` (checked against ``--bpda``) as :func:`evaluate`'s ``adaptive``."""
    if len(names) > 1 and ("auto" in names or "none" in names):
        raise _cli.CLIError(
            f"--adaptive {' '.join(names)}: auto and none stand alone",
            f"use --adaptive auto, --adaptive none or a list of {', '.join(ADAPTIVE)}",
        )
    chosen = list(dict.fromkeys(names))  # without repeats
    if "bpda" in chosen and not bpda:
        raise _cli.CLIError(
            "--adaptive bpda needs the transforms to bypass",
            "name them with --bpda SUBMODULE [SUBMODULE ...]",
        )
    if bpda and chosen != ["auto"] and "bpda" not in chosen:
        raise _cli.CLIError(
            f"--bpda {' '.join(bpda)} is not used with --adaptive {' '.join(names)}",
            "add bpda to --adaptive (or leave --adaptive at auto)",
        )
    if chosen == ["auto"]:
        return "auto"
    return None if chosen == ["none"] else chosen


main = _cli.entry(_parser, _main)

if __name__ == "__main__":
    raise SystemExit(main())

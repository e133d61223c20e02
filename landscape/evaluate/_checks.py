"""Gradient-masking checks reported with every evaluation (Carlini et al. 2019,
"On evaluating adversarial robustness"; Athalye et al. 2018).

Each check returns ``{"passed": bool | None, "value": ..., "detail": str}``:

- ``eval_mode``: the model was handed over in eval mode (it is evaluated in eval mode
  either way; a model in train mode usually means Dropout/BatchNorm surprises).
- ``deterministic``: two forward passes give identical outputs.
- ``logits``: outputs are logits (or log-probabilities), not probabilities.
- ``zero_gradients``: fraction of correctly classified points whose input gradient of
  the cross-entropy is exactly zero (should be ~0).
- ``large_eps``: robust accuracy under PGD at a budget covering the whole input box
  (should be ~0).
- ``eps_monotone``: robust accuracy does not grow with eps.
- ``more_steps`` / ``more_restarts``: PGD with 5x the steps, and with 3 restarts,
  never does worse than PGD-k with one run (one-example tolerance). The longer run
  is compared at equal step sizes: it takes the best over PGD-k's step
  (``2.5 eps / k``) and its own (``2.5 eps / 5k``), since on a rippled loss a smaller
  step alone can be weaker without any masking.
- ``black_box``: black-box attacks do not beat white-box ones: Square alone breaks no
  more points than PGD; in a sequence, black-box attacks break (almost) no point the
  white-box attacks missed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _utils
from .. import attacks as attacks_mod

__all__ = ["masking_checks"]


def _pgd(*, eps: float, norm: str, steps: int, restarts: int = 1, alpha_rel=None):
    """The checks' PGD: the evaluation PGD (best iterate; first start random for
    L-inf, at x for L2; default step ``2.5 eps / steps``)."""
    return attacks_mod.PGD(
        eps=eps, norm=norm, steps=steps, restarts=restarts, loss="ce",
        random_start=norm == "linf", keep="best", alpha_rel=alpha_rel,
    )  # fmt: skip


def _c(passed: bool | None, value, detail: str) -> dict:
    return {
        "passed": None if passed is None else bool(passed),
        "value": value,
        "detail": detail,
    }


@torch.no_grad()
def _acc(model, x, y) -> float:
    return float((model(x).argmax(1) == y).float().mean()) if len(y) else float("nan")


def _check_eval_mode(model: nn.Module, training: bool) -> dict:
    modal = any(
        isinstance(m, (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm))
        for m in model.modules()
    )
    if not training:
        detail = "model in eval mode"
    elif not modal:
        detail = "model was in train mode (no Dropout/BatchNorm: harmless)"
    else:
        detail = (
            "model was handed over in train mode with Dropout/BatchNorm layers; "
            "evaluated in eval mode: call model.eval() wherever else it is used"
        )
    return _c(not (training and modal), bool(training), detail)


def _check_deterministic(o1: Tensor, o2: Tensor) -> dict:
    det = bool(torch.equal(o1, o2))
    detail = (
        "two forward passes agree"
        if det
        else "outputs differ between two forward passes: random layers or BatchNorm "
        "in train mode mask gradients"
    )
    return _c(det, float((o1 - o2).abs().max()), detail)


def _check_logits(o1: Tensor) -> dict:
    o = o1.double()
    ones = torch.ones_like(o[:, 0])
    probs = bool(
        (o >= 0).all() and (o <= 1).all() and torch.allclose(o.sum(1), ones, atol=1e-3)
    )
    logprobs = bool(torch.allclose(o.logsumexp(1), 0 * ones, atol=1e-3))
    if probs:
        value, detail = "probabilities", "outputs look like probabilities: remove the "
        detail += "final softmax"
    elif logprobs:
        value, detail = "log-probabilities", "outputs are log-probabilities (fine)"
    else:
        value, detail = "logits", "outputs are logits"
    return _c(not probs, value, detail)


def _check_zero_gradients(model: nn.Module, xc: Tensor, yc: Tensor) -> dict:
    if not len(yc):
        return _c(None, None, "no correctly classified point")
    xi = xc.clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(F.cross_entropy(model(xi), yc, reduction="sum"), xi)
    frac = float((g.flatten(1).abs().amax(1) == 0).float().mean())
    detail = f"{100 * frac:.1f}% of correct points have an all-zero input gradient"
    return _c(frac <= 0.05, frac, detail)


def _check_large_eps(model, xc, yc, n, norm, steps, gen) -> dict:
    if not len(yc):
        return _c(None, None, "no correctly classified point")
    big = 1.0 if norm == "linf" else math.sqrt(xc[0].numel())
    xa = _pgd(eps=big, norm=norm, steps=steps)(model, xc, yc, gen())
    with _utils.eval_mode(model):
        acc_big = _acc(model, xa, yc) * len(yc) / n
    detail = (
        f"robust accuracy {100 * acc_big:.1f}% at eps={big:.3g} (whole box; "
        "should be ~0)"
    )
    return _c(acc_big <= 0.05, acc_big, detail)


def _check_eps_monotone(eps, robust_accuracy, num_points: int) -> dict:
    if robust_accuracy is None or len(robust_accuracy) <= 1:
        return _c(None, None, "single eps")
    ra = np.asarray(robust_accuracy)[np.argsort(eps)]
    rise = float(np.max(np.diff(ra), initial=0.0))
    detail = f"largest rise of robust accuracy with eps: {100 * rise:.2f}%"
    return _c(rise <= 1.0 / num_points + 1e-12, rise, detail)


def _check_budgets(
    pgd_acc, steps: int, n: int, e_mid: float
) -> tuple[dict, dict, float]:
    """``more_steps`` and ``more_restarts``; also returns the best PGD accuracy.

    ``more_steps`` runs PGD-5k over the step grid {2.5/k, 2.5/(5k)} x eps: at PGD-k's
    own step it continues PGD-k's run (same seed, same start), so more steps can only
    add iterates; a deterministic model fails only if its gradients change between
    passes. PGD-5k at 2.5 eps / 5k alone can be weaker than PGD-k on a model that is
    not masked (a rippled loss that small steps cannot climb out of)."""
    base = pgd_acc(steps=steps)
    more = pgd_acc(steps=5 * steps, alpha_rel=(2.5 / steps, 0.5 / steps))
    rest = pgd_acc(steps=steps, restarts=3)
    tol = 1.0 / n + 1e-12
    at = f"at eps={e_mid:.3g}"
    ms = _c(
        more <= base + tol,
        [base, more],
        f"PGD-{steps} {100 * base:.1f}% vs PGD-{5 * steps} {100 * more:.1f}% "
        f"(best of steps 2.5 eps/{steps} and 2.5 eps/{5 * steps}) {at}",
    )
    mr = _c(
        rest <= base + tol,
        [base, rest],
        f"1 run {100 * base:.1f}% vs 3 restarts {100 * rest:.1f}% {at}",
    )
    return ms, mr, min(base, more, rest)


def _check_black_box(model, xc, yc, n, e_mid, norm, queries, gen, best_pgd, bb, seq):
    if xc.ndim == 4:
        square = attacks_mod.Square(eps=e_mid, norm=norm, queries=queries)
        xs = square(model, xc, yc, gen())
        sq = _acc(model, xs, yc) * len(yc) / n
        ok = sq >= best_pgd - 0.02
        detail = f"Square-{queries} {100 * sq:.1f}% vs PGD {100 * best_pgd:.1f}%"
        value = [sq, best_pgd]
    else:
        ok, detail, value = None, "inputs are not images: no Square run", None
    if bb is not None and seq:
        black = [i for i, a in enumerate(seq) if a.kind == "black"]
        if black and any(a.kind == "white" for a in seq):
            frac = float(np.isin(bb, black).sum(1).max()) / max(bb.shape[1], 1)
            ok = (ok is not False) and frac <= 0.01
            detail += (
                f"; black-box attacks broke {100 * frac:.2f}% of points the "
                "white-box attacks missed"
            )
    return _c(ok, value, detail)


def masking_checks(
    model: nn.Module,
    data: list[tuple[Tensor, Tensor]],
    *,
    eps: Sequence[float],
    norm: str,
    robust_accuracy: np.ndarray | None = None,
    broken_by: np.ndarray | None = None,
    attacks: Sequence[attacks_mod.Attack] = (),
    was_training: bool | None = None,
    num_samples: int = 100,
    steps: int = 10,
    queries: int = 300,
    generator: torch.Generator | None = None,
) -> dict:
    """Run the checks on up to ``num_samples`` points (see module docstring).

    Args:
        model: the classifier (its mode is restored).
        data: the evaluation batches, a list of ``(x, y)``.
        eps: the evaluated budgets; norm: ``"linf"`` or ``"l2"``.
        robust_accuracy: the protocol's robust accuracy per eps (the monotonicity
            check); broken_by: which attack broke each point (the black-box check).
        attacks: the protocol's attacks. was_training: the model's mode before the
            evaluation (default its mode now).
        num_samples: points checked; steps: PGD steps; queries: Square queries.
        generator: its seed seeds every attack of the checks (each check starts
            from the same seed); ``None``: a seed drawn from torch's global RNG.

    Returns:
        ``{check_name: {"passed", "value", "detail"}}``.
    """
    norm = _utils.check_norm(norm)
    _, seed = _utils.make_generator(generator)
    training = model.training if was_training is None else was_training
    out: dict = {"eval_mode": _check_eval_mode(model, training)}
    x, y = _utils.first_examples(data, num_samples)
    n = len(y)

    def gen() -> torch.Generator:
        return torch.Generator(device=x.device).manual_seed(seed)

    with _utils.eval_mode(model):
        with torch.no_grad():
            o1, o2 = model(x), model(x)
        out["deterministic"] = _check_deterministic(o1, o2)
        out["logits"] = _check_logits(o1)
        correct = o1.argmax(1) == y
        xc, yc = x[correct], y[correct]
        out["zero_gradients"] = _check_zero_gradients(model, xc, yc)
    out["large_eps"] = _check_large_eps(model, xc, yc, n, norm, steps, gen)
    ntot = sum(len(b[1]) for b in data)
    out["eps_monotone"] = _check_eps_monotone(eps, robust_accuracy, ntot)
    e_mid = float(sorted(eps)[len(eps) // 2])
    if not (len(yc) and e_mid > 0):
        for k in ("more_steps", "more_restarts", "black_box"):
            out[k] = _c(None, None, "no correctly classified point or eps = 0")
        return out
    with _utils.eval_mode(model):

        def pgd_acc(steps: int, restarts: int = 1, alpha_rel=None) -> float:
            atk = _pgd(
                eps=e_mid, norm=norm, steps=steps, restarts=restarts,
                alpha_rel=alpha_rel,
            )  # fmt: skip
            return _acc(model, atk(model, xc, yc, gen()), yc) * len(yc) / n

        out["more_steps"], out["more_restarts"], best = _check_budgets(
            pgd_acc, steps, n, e_mid
        )
        out["black_box"] = _check_black_box(
            model, xc, yc, n, e_mid, norm, queries, gen, best, broken_by, attacks
        )
    return out

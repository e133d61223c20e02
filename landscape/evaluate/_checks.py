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
  never does worse than PGD-k with one run (one-example tolerance).
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

from .. import _utils, attacks
from ._presets import AttackSpec

__all__ = ["masking_checks"]


def _c(passed: bool | None, value, detail: str) -> dict:
    return {
        "passed": None if passed is None else bool(passed),
        "value": value,
        "detail": detail,
    }


def _subset(batches, num: int) -> tuple[Tensor, Tensor]:
    xs, ys, k = [], [], 0
    for x, y in batches:
        xs.append(x[: num - k])
        ys.append(y[: num - k])
        k += len(ys[-1])
        if k >= num:
            break
    return torch.cat(xs), torch.cat(ys)


@torch.no_grad()
def _acc(model, x, y) -> float:
    return float((model(x).argmax(1) == y).float().mean()) if len(y) else float("nan")


def masking_checks(
    model: nn.Module,
    batches: list[tuple[Tensor, Tensor]],
    *,
    eps: Sequence[float],
    norm: str,
    robust_accuracy: np.ndarray | None = None,
    broken_by: np.ndarray | None = None,
    specs: Sequence[AttackSpec] = (),
    was_training: bool | None = None,
    num_samples: int = 100,
    steps: int = 10,
    queries: int = 300,
    seed: int = 0,
) -> dict:
    """Run the checks on up to ``num_samples`` points (see module docstring).

    Returns:
        ``{check_name: {"passed", "value", "detail"}}``.
    """
    norm = _utils.check_norm(norm)
    out: dict = {}
    training = model.training if was_training is None else was_training
    modal = any(
        isinstance(m, (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm))
        for m in model.modules()
    )
    out["eval_mode"] = _c(
        not (training and modal),
        bool(training),
        "model in eval mode"
        if not training
        else "model was in train mode (no Dropout/BatchNorm: harmless)"
        if not modal
        else "model was handed over in train mode with Dropout/BatchNorm layers; "
        "evaluated in eval mode: call model.eval() wherever else it is used",
    )
    x, y = _subset(batches, num_samples)
    n = len(y)

    def gen() -> torch.Generator:
        return torch.Generator(device=x.device).manual_seed(seed)

    with _utils.eval_mode(model):
        with torch.no_grad():
            o1, o2 = model(x), model(x)
        det = bool(torch.equal(o1, o2))
        out["deterministic"] = _c(
            det,
            float((o1 - o2).abs().max()),
            "two forward passes agree"
            if det
            else "outputs differ between two forward "
            "passes: random layers or BatchNorm in train mode mask gradients",
        )
        o = o1.double()
        probs = bool(
            (o >= 0).all()
            and (o <= 1).all()
            and torch.allclose(o.sum(1), torch.ones_like(o[:, 0]), atol=1e-3)
        )
        logprobs = bool(
            torch.allclose(o.logsumexp(1), torch.zeros_like(o[:, 0]), atol=1e-3)
        )
        out["logits"] = _c(
            not probs,
            "probabilities" if probs else "log-probabilities" if logprobs else "logits",
            "outputs look like probabilities: remove the final softmax"
            if probs
            else "outputs are log-probabilities (fine)"
            if logprobs
            else "outputs are logits",
        )
        correct = o1.argmax(1) == y
        xc, yc = x[correct], y[correct]
        if len(yc):
            xi = xc.clone().requires_grad_(True)
            with torch.enable_grad():
                (g,) = torch.autograd.grad(
                    F.cross_entropy(model(xi), yc, reduction="sum"), xi
                )
            frac = float((g.flatten(1).abs().amax(1) == 0).float().mean())
            out["zero_gradients"] = _c(
                frac <= 0.05,
                frac,
                f"{100 * frac:.1f}% of correct points have an all-zero input gradient",
            )
        else:
            out["zero_gradients"] = _c(None, None, "no correctly classified point")

    d = x[0].numel()
    big = 1.0 if norm == "linf" else math.sqrt(d)
    if len(yc):
        xa = attacks.pgd(
            model, xc, yc, eps=big, norm=norm, steps=steps, generator=gen()
        )
        with _utils.eval_mode(model):
            acc_big = _acc(model, xa, yc) * len(yc) / n
        out["large_eps"] = _c(
            acc_big <= 0.05,
            acc_big,
            f"robust accuracy {100 * acc_big:.1f}% at eps={big:.3g} (whole box; should be ~0)",
        )
    else:
        out["large_eps"] = _c(None, None, "no correctly classified point")

    if robust_accuracy is not None and len(robust_accuracy) > 1:
        order = np.argsort(eps)
        ra = np.asarray(robust_accuracy)[order]
        rise = float(np.max(np.diff(ra), initial=0.0))
        ntot = sum(len(b[1]) for b in batches)
        out["eps_monotone"] = _c(
            rise <= 1.0 / ntot + 1e-12,
            rise,
            f"largest rise of robust accuracy with eps: {100 * rise:.2f}%",
        )
    else:
        out["eps_monotone"] = _c(None, None, "single eps")

    e_mid = float(sorted(eps)[len(eps) // 2])
    if len(yc) and e_mid > 0:
        with _utils.eval_mode(model):

            def pgd_acc(**kw) -> float:
                xa = attacks.pgd(
                    model, xc, yc, eps=e_mid, norm=norm, generator=gen(), **kw
                )
                return _acc(model, xa, yc) * len(yc) / n

            base = pgd_acc(steps=steps)
            more = pgd_acc(steps=5 * steps)
            rest = pgd_acc(steps=steps, restarts=3)
            tol = 1.0 / n + 1e-12
            out["more_steps"] = _c(
                more <= base + tol,
                [base, more],
                f"PGD-{steps} {100 * base:.1f}% vs PGD-{5 * steps} {100 * more:.1f}% at eps={e_mid:.3g}",
            )
            out["more_restarts"] = _c(
                rest <= base + tol,
                [base, rest],
                f"1 run {100 * base:.1f}% vs 3 restarts {100 * rest:.1f}% at eps={e_mid:.3g}",
            )
            if x.ndim == 4:
                xs = attacks.square(
                    model,
                    xc,
                    yc,
                    eps=e_mid,
                    norm=norm,
                    queries=queries,
                    generator=gen(),
                )
                sq = _acc(model, xs, yc) * len(yc) / n
                ok = sq >= min(base, more, rest) - 0.02
                detail = f"Square-{queries} {100 * sq:.1f}% vs PGD {100 * min(base, more, rest):.1f}%"
                value = [sq, min(base, more, rest)]
            else:
                ok, detail, value = None, "inputs are not images: no Square run", None
            if broken_by is not None and specs:
                black = [i for i, s in enumerate(specs) if s.kind == "black"]
                if black and any(s.kind == "white" for s in specs):
                    ntot = broken_by.shape[1]
                    frac = float(np.isin(broken_by, black).sum(1).max()) / max(ntot, 1)
                    ok = (ok is not False) and frac <= 0.01
                    detail += (
                        f"; black-box attacks broke {100 * frac:.2f}% of points the "
                        "white-box attacks missed"
                    )
            out["black_box"] = _c(ok, value, detail)
    else:
        for k in ("more_steps", "more_restarts", "black_box"):
            out[k] = _c(None, None, "no correctly classified point or eps = 0")
    return out

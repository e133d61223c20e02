"""Per-epoch evaluation, the catastrophic-overfitting check and device contexts."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math

import torch
from torch import Tensor, nn

from .. import _utils, attacks
from ..evaluate import preset_attacks
from ._config import TrainConfig, target_eps

__all__ = [
    "eval_attack",
    "autocast",
    "attack_ctx",
    "prep",
    "evaluate",
    "evaluate_split",
    "co_attacks",
    "co_check",
    "co_message",
    "upcast",
]


def upcast(out: Tensor) -> Tensor:
    """Half-precision logits (autocast) to float32 for the loss; others unchanged."""
    return out.float() if out.dtype in (torch.bfloat16, torch.float16) else out


def autocast(device: torch.device, cfg: TrainConfig):
    """The training forward passes' precision (``runtime.amp``): bfloat16 autocast
    only when asked for (``"bf16"``), else none (float32)."""
    if cfg.runtime.amp != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def attack_ctx(model: nn.Module, device: torch.device, cfg: TrainConfig):
    """Context for the training attack: the oneDNN policy ``attack_onednn``
    (``"auto"``: native CPU kernels for thin convolutions), applied by
    :func:`landscape._utils.thin_conv_backend` inside every attack."""
    return functools.partial(_utils.onednn_policy, cfg.runtime.attack_onednn)


def prep(x: Tensor, y: Tensor, device, dtype, channels_last: bool):
    x, y = _utils.to_device((x, y), device, dtype)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


@torch.no_grad()
def _accuracy_loss(model: nn.Module, batches, ctx, loss) -> tuple[float, float]:
    correct, total, n = 0.0, 0.0, 0
    for x, y in batches:
        with ctx():
            out = model(x)
        total += float(loss(upcast(out), y))
        correct += float((out.argmax(1) == y).sum())
        n += len(y)
    return correct / max(n, 1), total / max(n, 1)


def eval_attack(cfg: TrainConfig) -> attacks.Attack:
    """The per-epoch evaluation attack: ``runtime.eval_attack``, else the quick
    preset's PGD-10 in the training attack's norm."""
    if cfg.runtime.eval_attack is not None:
        return cfg.runtime.eval_attack
    norm = "linf" if cfg.attack is None else cfg.attack.norm
    return preset_attacks("quick", target_eps(cfg), norm, steps=10)[0]


def _robust(model, batches, attack, gen, ctx, loss) -> tuple[float, float]:
    """Robust accuracy and loss (``loss`` summed over a batch) at the adversarial examples
    ``attack`` returns, every batch attacked once, one generator over the batches.

    A training PGD (``keep="last"``) runs as it trains (its own train / eval mode)
    and a point counts as robust when its last iterate is classified correctly. Any
    other attack (the evaluation PGD, ``keep="best"``, APGD, ...) runs in eval mode
    and returns per point its worst case; a point counts as robust when it is
    classified correctly both clean and at that point (the evaluation protocol's
    definition), and the loss is the loss at the returned points (the clean input
    where the clean prediction is already wrong: the attack returns it there)."""
    training = isinstance(attack, attacks.PGD) and attack.keep == "last"
    mode = (
        contextlib.nullcontext
        if training
        else functools.partial(_utils.eval_mode, model)
    )
    correct, total, n = 0.0, 0.0, 0
    for x, y in batches:
        with ctx(), mode():
            xa = attack(model, x, y, gen)
            with torch.no_grad(), _utils.eval_mode(model):
                out = model(xa)
                ok = out.argmax(1) == y
                if not training:
                    ok &= model(x).argmax(1) == y
                correct += float(ok.sum())
                total += float(loss(upcast(out), y))
        n += len(y)
    return correct / max(n, 1), total / max(n, 1)


def evaluate(model, batches, *, eps_target, eps_sched, cfg, seed, ctx, loss) -> dict:
    """Clean accuracy and loss (``loss`` summed over a batch) and robust accuracy at
    the target and the scheduled eps on the evaluation ``batches``."""
    out = {
        "test_clean_acc": math.nan,
        "test_clean_loss": math.nan,
        "test_robust_acc": math.nan,
        "test_robust_loss": math.nan,
        "test_robust_acc_sched": math.nan,
    }
    if not batches:
        return out
    with _utils.eval_mode(model):
        out["test_clean_acc"], out["test_clean_loss"] = _accuracy_loss(
            model, batches, ctx, loss
        )
    attack = eval_attack(cfg)
    cache: dict[float, tuple[float, float]] = {}
    for key, eps in (
        ("test_robust_acc", eps_target),
        ("test_robust_acc_sched", eps_sched),
    ):
        eps = float(eps)
        if eps not in cache:
            gen = torch.Generator(device=batches[0][0].device).manual_seed(seed)
            cache[eps] = (
                (out["test_clean_acc"], out["test_clean_loss"])
                if eps == 0
                else _robust(
                    model, batches, dataclasses.replace(attack, eps=eps), gen, ctx, loss
                )
            )
        out[key] = cache[eps][0]
        if key == "test_robust_acc":
            out["test_robust_loss"] = cache[eps][1]
    return out


def evaluate_split(
    model, batches, prefix: str, attack, seed: int, *, ctx, loss
) -> dict[str, float]:
    """``<prefix>_clean_acc``, ``_clean_loss``, ``_robust_acc`` and ``_robust_loss``
    of ``batches`` (``loss`` summed over a batch) under ``attack`` (its eps; eps 0:
    the clean values), in eval mode, the attack's randomness from ``seed``."""
    with _utils.eval_mode(model):
        acc, value = _accuracy_loss(model, batches, ctx, loss)
    out = {f"{prefix}_clean_acc": acc, f"{prefix}_clean_loss": value}
    if attack.eps > 0:
        gen = torch.Generator(device=batches[0][0].device).manual_seed(seed)
        acc, value = _robust(model, batches, attack, gen, ctx, loss)
    out[f"{prefix}_robust_acc"], out[f"{prefix}_robust_loss"] = acc, value
    return out


def _single_step(cfg: TrainConfig) -> bool:
    """Whether the training attack takes one gradient step (FGSM-RS, or PGD-1)."""
    return isinstance(cfg.attack, attacks.PGD) and cfg.attack.steps == 1


def _check_steps(cfg: TrainConfig) -> int:
    """The steps of the CO check's PGD: the evaluation attack's, at least 5."""
    return max(int(getattr(eval_attack(cfg), "steps", 10)), 5)


def co_attacks(cfg: TrainConfig, eps: float) -> tuple[attacks.PGD, attacks.PGD]:
    """The two attacks of the catastrophic-overfitting check at ``eps``: FGSM-RS and
    a PGD of :func:`_check_steps` steps of ``2.5 eps / steps``."""
    steps, norm = _check_steps(cfg), cfg.attack.norm
    fgsm = attacks.FGSMRS(eps=eps, norm=norm)
    return fgsm, attacks.PGD(eps=eps, norm=norm, steps=steps, alpha=2.5 * eps / steps)


def co_check(model, batch, *, eps: float, cfg, seed, ctx) -> dict:
    """Catastrophic-overfitting detector: FGSM-RS vs PGD accuracy on a fixed batch.

    Catastrophic overfitting (Wong et al., 2020) is a failure of single-step
    adversarial training: the model comes to resist FGSM but not PGD. So the check
    runs only when the training attack takes a single step (FGSM-RS, or PGD with
    ``steps=1``), at ``eps``, the budget the model is being trained at (the
    scheduled eps: during an eps warm-up the target eps is not the question), and
    not at all when that budget is 0. The flag is raised when FGSM accuracy exceeds
    PGD accuracy by more than ``co_threshold``. The PGD here takes as many steps as
    the per-epoch evaluation attack (at least 5) of ``2.5 eps / steps``, so it can
    always cross the ball.
    """
    none = {"co_fgsm_acc": math.nan, "co_pgd_acc": math.nan, "co_flag": False}
    if batch is None or eps <= 0 or not _single_step(cfg):
        return none
    x, y = batch
    fgsm, pgd = co_attacks(cfg, eps)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    with ctx():
        xf = fgsm(model, x, y, gen)
        xp = pgd(model, x, y, gen)
        with torch.no_grad(), _utils.eval_mode(model):
            fa = float((model(xf).argmax(1) == y).float().mean())
            pa = float((model(xp).argmax(1) == y).float().mean())
    return {
        "co_fgsm_acc": fa,
        "co_pgd_acc": pa,
        "co_flag": bool(fa - pa > cfg.runtime.co_threshold),
    }


def co_message(row: dict, cfg: TrainConfig) -> str:
    """The catastrophic-overfitting warning for a flagged epoch ``row``, with advice
    that fits the run (its single-step attack, step size and eps schedule)."""
    eps = row["eps"]
    steps = _check_steps(cfg)
    attack = "FGSM-RS" if isinstance(cfg.attack, attacks.FGSMRS) else "PGD-1"
    advice = []
    (alpha,) = dataclasses.replace(cfg.attack, eps=eps).step_sizes()
    if alpha > eps:
        advice.append(f"a step no larger than eps (alpha={alpha:g} > eps={eps:g})")
    if cfg.eps_schedule == "constant":
        advice.append("an eps warm-up (eps_schedule='linear')")
    advice.append("multi-step PGD training (attacks.PGD(steps >= 2))")
    return (
        f"possible catastrophic overfitting at epoch {row['epoch']}: on a fixed "
        f"training batch FGSM accuracy is {row['co_fgsm_acc']:.3f} but PGD-{steps} "
        f"accuracy is {row['co_pgd_acc']:.3f} at the trained eps={eps:g} "
        f"({attack} training); try " + ", or ".join(advice)
    )

"""PGD adversarial training of binary linear models (the check of the closed form).

PGD (:class:`landscape.attacks.PGD`) clamps inputs to ``[0, 1]``; the theory
has no box, so :func:`robust_train_pgd` maps the data affinely into the unit box with
room for the whole eps-ball (:func:`embed_unit_box`), which makes the clamp inactive
without changing the problem. For image data the closed form therefore ignores the
``[0, 1]`` box: it upper-bounds the box-constrained robust loss that attacks on images
measure.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch import Tensor, nn

from .. import _utils
from ._closed_form import _as_pm1, _as_x, _norm, robust_loss
from ._training import LinearFit

__all__ = ["embed_unit_box", "robust_train_pgd"]


def embed_unit_box(x, eps: float) -> tuple[np.ndarray, float, float]:
    """Affine map ``u = (x - lo) / scale`` of the data into [0, 1] leaving room for the
    whole eps-ball around every point, so ``[0, 1]`` clamping in PGD never binds.

    A scalar scale maps the L_p ball of radius eps to the ball of radius
    ``eps / scale``; a model ``w.(lo + scale u) + b`` on ``u`` is the same classifier.

    Returns:
        ``(u, lo, scale)``.

    Example:
        >>> u, lo, s = embed_unit_box(np.array([[-2.0], [3.0]]), 0.5)
        >>> np.round(u.ravel(), 4).tolist(), lo, s
        ([0.0833, 0.9167], -2.5, 6.0)
    """
    x = _as_x(x)
    lo = float(x.min()) - eps
    scale = float(x.max()) + eps - lo
    if scale <= 0:
        scale = 1.0
    return (x - lo) / scale, lo, scale


class _Margin(nn.Module):
    """``f(u) = w.(lo + scale u) + b`` on unit-box inputs (one output: the score)."""

    def __init__(self, w: Tensor, b: Tensor, lo: float, scale: float):
        super().__init__()
        self.w, self.b = nn.Parameter(w), nn.Parameter(b)
        self.lo, self.scale = lo, scale

    def forward(self, u: Tensor) -> Tensor:
        return (self.lo + self.scale * u.flatten(1)) @ self.w + self.b


def robust_train_pgd(
    x: ArrayLike | Tensor,
    y: ArrayLike | Tensor,
    *,
    eps: float,
    norm: str | float = "linf",
    bias: bool = False,
    l2: float = 0.0,
    steps: int = 10,
    alpha: float | None = None,
    lr: float | None = None,
    max_iter: int = 500,
    init: np.ndarray | None = None,
    optimizer: str = "sgd",
    generator: torch.Generator | None = None,
    trainer: bool = False,
    progressbar: bool = False,
) -> LinearFit:
    """Full-batch PGD adversarial training of the same binary logistic model.

    Each iteration attacks every training point with :class:`landscape.attacks.PGD`
    (``steps`` steps, random start) at the current weights and takes a gradient
    step (SGD with momentum 0.9 or Adam, cosine-decayed learning rate) on the mean logistic
    loss at the adversarial points plus ``l2 / 2 ||w||^2``. A check of the closed form
    (:func:`robust_train_closed_form`) by the method used for deep networks.

    Args:
        x, y, eps, norm, bias, l2: as in :func:`robust_train_closed_form`.
        steps: PGD steps per iteration; alpha: PGD step (default ``2.5 eps / steps``).
        lr: learning rate (SGD default ``1 / L`` with ``L`` the smoothness bound
            ``(sigma_max(X) / sqrt(n) + eps r)^2 / 4 + l2``, ``r = sqrt(d)`` for L-inf
            (the sign vector of the attack); Adam default ``0.05 / max|x|``).
        max_iter: training iterations (full-batch steps; the cosine learning-rate
            schedule spans them; the name of every iteration count in the package).
        init: initial ``w`` (default zeros).
        optimizer: ``"sgd"`` (heavy ball) or ``"adam"``. The attack's ``sign(w)``
            makes the objective nonsmooth along a dense sign vector, which caps the
            stable SGD step at about ``4 / (eps^2 d)``; Adam's per-coordinate steps
            converge far faster in high dimension (figure 1 uses Adam).
        generator: for the PGD random starts.
        trainer: train through :func:`landscape.train.adversarial_train` (the trainer
            used for deep networks) on ``models.build("linear", num_classes=2)``, whose
            two logits give the logistic loss of ``w = W_1 - W_0``; full batch, SGD
            with momentum 0.9, cosine lr, weight decay ``2 l2`` (``||W||^2 =
            ||w||^2 / 2`` at the symmetric optimum), in float32. Otherwise a minimal
            float64 loop with :class:`landscape.attacks.PGD` (the same algorithm).
        progressbar: show progress (a bar on a terminal, lines in a log).

    Returns:
        :class:`LinearFit` with ``method="pgd"`` (``"pgd-trainer"``); its ``robust_loss`` is the exact
        (closed-form) robust loss of the trained weights.
    """

    eps = _utils.check_eps(eps)
    norm = _norm(norm)
    x = _as_x(x)
    y = _as_pm1(y, x.shape[0])
    n, d = x.shape
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    gen, seed = _utils.make_generator(generator)
    u, lo, scale = embed_unit_box(x, eps)
    if lr is None:
        lr = _default_lr(x, eps=eps, norm=norm, bias=bias, l2=l2, optimizer=optimizer)
    settings = {"eps": eps, "norm": norm, "bias": bias, "l2": l2, "steps": steps}
    settings.update(alpha=alpha, lr=lr, max_iter=max_iter, init=init)
    settings.update(optimizer=optimizer, progressbar=progressbar)
    if trainer:
        w, b = _train_with_trainer(x, y, u, lo, scale, seed=seed, **settings)
    else:
        w, b = _pgd_loop(u, y, lo, scale, generator=gen, **settings)
    meta = {"num_samples": n, "dim": d, "seed": seed, "steps": steps, "lr": lr}
    rl = float(robust_loss(w, b, x, y, eps=eps, norm=norm))
    return LinearFit(
        w,
        b,
        eps,
        norm,
        "logistic",
        float(l2),
        rl,
        rl + 0.5 * l2 * float(w @ w),
        "pgd-trainer" if trainer else "pgd",
        True,
        max_iter,
        meta,
    )


def _default_lr(
    x: np.ndarray, *, eps: float, norm: str, bias: bool, l2: float, optimizer: str
) -> float:
    """Adam: ``0.05 / max|x|``; SGD: ``1 / L`` with ``L`` the smoothness bound."""
    n, d = x.shape
    if optimizer == "adam":
        return 0.05 / max(float(np.abs(x).max()), 1e-12)
    xe = np.hstack([x, np.ones((n, 1))]) if bias else x
    rad = eps * (np.sqrt(d) if norm == "linf" else 1.0)
    smooth = (np.linalg.norm(xe, 2) / np.sqrt(n) + rad) ** 2 / 4 + l2
    return 1.0 / smooth


def _pgd_loop(
    u: np.ndarray,
    y: np.ndarray,
    lo: float,
    scale: float,
    *,
    eps: float,
    norm: str,
    bias: bool,
    l2: float,
    steps: int,
    alpha: float | None,
    lr: float,
    max_iter: int,
    init: np.ndarray | None,
    optimizer: str,
    generator: torch.Generator,
    progressbar: bool,
) -> tuple[np.ndarray, float]:
    """The float64 full-batch loop of :func:`robust_train_pgd`; returns ``(w, b)``."""
    from .._progress import bar
    from ..attacks import PGD

    d = u.shape[1]
    gen = generator
    ut = torch.as_tensor(u)
    yt = torch.as_tensor(y)
    w0 = (
        torch.zeros(d, dtype=torch.float64)
        if init is None
        else torch.as_tensor(np.asarray(init, dtype=np.float64).reshape(-1).copy())
    )
    model = _Margin(w0.clone(), torch.zeros((), dtype=torch.float64), lo, scale)
    if not bias:
        model.b.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max_iter)

    def loss_fn(out: Tensor, t: Tensor) -> Tensor:
        return F.softplus(-t * out).sum()

    attack = PGD(
        eps=eps / scale,
        norm=norm,
        alpha=None if alpha is None else alpha / scale,
        steps=steps,
        loss=loss_fn,
    )
    for _ in bar(
        range(max_iter), desc="robust_train_pgd", unit="iterations", enabled=progressbar
    ):
        xa = attack(model, ut, yt, gen)
        opt.zero_grad()
        obj = F.softplus(-yt * model(xa)).mean() + 0.5 * l2 * (model.w @ model.w)
        obj.backward()
        opt.step()
        sched.step()
    w = model.w.detach().numpy().copy()
    b = float(model.b.detach()) if bias else 0.0
    return w, b


def _train_with_trainer(
    x,
    y,
    u,
    lo,
    scale,
    *,
    eps,
    norm,
    bias,
    l2,
    steps,
    alpha,
    lr,
    max_iter,
    init,
    seed,
    optimizer,
    progressbar,
) -> tuple[np.ndarray, float]:
    from .. import attacks, models, train

    n, d = x.shape
    # Normalize((u - mean) / std) with mean = -lo / scale, std = 1 / scale gives back x
    model = models.build(
        "linear", num_classes=2, in_shape=(d,), mean=-lo / scale, std=1.0 / scale
    )
    lin = [m for m in model.modules() if isinstance(m, nn.Linear)][0]
    w0 = np.zeros(d) if init is None else np.asarray(init, dtype=np.float64).reshape(-1)
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(np.stack([-w0 / 2, w0 / 2])))
        lin.bias.zero_()
    if not bias:
        lin.bias.requires_grad_(False)
    config = train.TrainConfig(
        epochs=max_iter,
        batch_size=n,
        optimizer=optimizer,
        lr=lr / 2 if optimizer == "sgd" else lr,
        momentum=0.9,
        weight_decay=2 * l2,
        lr_schedule="cosine",
        schedule_update="iteration",
        attack=attacks.PGD(
            eps=eps / scale,
            norm=norm,
            steps=steps,
            alpha=None if alpha is None else alpha / scale,
        ),
        shuffle=False,
        seed=seed,
        runtime=train.Runtime(
            eval_num=0, co_check_num=0, amp="off", channels_last=False
        ),
    )
    data = (
        torch.as_tensor(u, dtype=torch.float32),
        torch.as_tensor((y > 0).astype(np.int64)),
    )
    train.adversarial_train(model, data, config, progressbar=progressbar)
    wt = lin.weight.detach().double().numpy()
    w = wt[1] - wt[0]
    b = float((lin.bias[1] - lin.bias[0]).detach()) if bias else 0.0
    return w, b

"""Fast training-time attacks: PGD (L-inf / L2) with random start, and FGSM-RS.

These are the attacks the trainer and the analyses use to build adversarial batches.
They take input gradients only (``torch.autograd.grad`` with respect to the
perturbation), so an attack step never computes or accumulates parameter gradients.
The strong evaluation attacks (restarts, step-size grids, APGD, black-box) live in the
other modules of :mod:`landscape.attacks`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _utils
from .._batches import as_batches
from ._input_grad import input_grad_mode

__all__ = ["perturb", "perturb_batches", "project", "random_init", "fgsm_rs"]


def _per_example_norm(v: Tensor) -> Tensor:
    return v.flatten(1).norm(dim=1).view(-1, *([1] * (v.ndim - 1)))


def project(delta: Tensor, x: Tensor, eps: float, norm: str) -> Tensor:
    """Project ``delta`` onto the eps-ball (``norm``) and keep ``x + delta`` in [0, 1]."""
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        n = _per_example_norm(delta)
        delta = delta * torch.clamp(eps / (n + 1e-12), max=1.0)
    return (x + delta).clamp(0.0, 1.0) - x


def random_init(x: Tensor, eps: float, norm: str, generator: torch.Generator) -> Tensor:
    """A random point of the eps-ball: uniform per coordinate (L-inf) or uniform in the
    L2 ball (Gaussian direction, radius eps * U^(1/d))."""
    if norm == "linf":
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        delta = (2 * u - 1) * eps
    else:
        g = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        d = x[0].numel()
        r = torch.rand(
            (x.shape[0],), generator=generator, device=x.device, dtype=x.dtype
        ) ** (1.0 / d)
        delta = (
            g
            / (_per_example_norm(g) + 1e-12)
            * (eps * r).view(-1, *([1] * (x.ndim - 1)))
        )
    return project(delta, x, eps, norm)


def perturb(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: str = "linf",
    alpha: float | None = None,
    steps: int = 10,
    random_start: bool = True,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    generator: torch.Generator | None = None,
    train: bool = False,
) -> Tensor:
    """Projected gradient ascent on the loss inside the eps-ball (Madry et al., 2018).

    Args:
        model: classifier returning logits.
        x: inputs in [0, 1], shape (N, ...).
        y: labels (class indices).
        eps: budget (>= 0); ``eps=0`` returns ``x`` unchanged.
        norm: ``"linf"`` (signed steps) or ``"l2"`` (normalised-gradient steps).
        alpha: absolute step size; default ``2.5 * eps / steps``. A step larger than
            eps is legitimate (FGSM-RS uses ``1.25 * eps``).
        steps: number of gradient steps (``steps=1`` with ``random_start`` is FGSM-RS).
        random_start: start from a uniform point of the ball.
        loss_fn: maps ``(logits, y)`` to a scalar; default summed cross-entropy.
        generator: for the random start (reproducible under a seed).
        train: run the model in train mode (BatchNorm batch statistics) instead of
            eval mode; the caller's mode is restored either way.

    Returns:
        ``x_adv`` (detached), with ``x_adv - x`` inside the ball and ``x_adv`` in [0, 1].

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x, y = torch.rand(8, 1, 2, 2), torch.randint(0, 2, (8,))
        >>> xa = perturb(model, x, y, eps=0.1, steps=5, generator=torch.Generator().manual_seed(0))
        >>> bool((xa - x).abs().max() <= 0.1 + 1e-6) and bool(xa.min() >= 0 and xa.max() <= 1)
        True
    """
    eps = _utils.check_eps(eps)
    norm = _utils.check_norm(norm)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if eps == 0 or (steps == 0 and not random_start):
        return x.detach().clone()
    if alpha is None:
        alpha = 2.5 * eps / max(steps, 1)
    if alpha <= 0:
        raise ValueError(f"the step size alpha must be > 0, got {alpha}")
    loss_fn = loss_fn or (lambda out, t: F.cross_entropy(out, t, reduction="sum"))
    x = x.detach()
    gen, _ = _utils.make_generator(generator, x.device)
    delta = random_init(x, eps, norm, gen) if random_start else torch.zeros_like(x)
    mode = _utils.train_mode if train else _utils.eval_mode
    fast = input_grad_mode(model, x)
    with mode(model), _utils.thin_conv_backend(model), torch.enable_grad():
        for _ in range(steps):
            grad = _input_grad(model, loss_fn, x, delta, y, fast)
            _ascend_(delta, grad, alpha, norm)
            _project_(delta, x, eps, norm)
    return x + delta


def _input_grad(model, loss_fn, x: Tensor, delta: Tensor, y: Tensor, mode) -> Tensor:
    """d loss / d x at ``x + delta``: one input-gradient pass (no weight gradients)
    with the forward inside ``mode`` (:func:`input_grad_mode`)."""
    xa = (x + delta).requires_grad_(True)
    with mode:
        loss = loss_fn(model(xa), y)
    (grad,) = torch.autograd.grad(loss, xa)
    return grad


def _ascend_(delta: Tensor, grad: Tensor, alpha: float, norm: str) -> None:
    """``delta += alpha * step(grad)`` in place (``grad`` is overwritten)."""
    if norm == "linf":
        delta.add_(grad.sign_(), alpha=alpha)
    else:
        n = _per_example_norm(grad) + 1e-12
        delta.add_(grad.mul_(alpha).div_(n))


def _project_(delta: Tensor, x: Tensor, eps: float, norm: str) -> None:
    """:func:`project` in place."""
    if norm == "linf":
        delta.clamp_(-eps, eps)
    else:
        delta.mul_(torch.clamp(eps / (_per_example_norm(delta) + 1e-12), max=1.0))
    delta.add_(x).clamp_(0.0, 1.0).sub_(x)


def fgsm_rs(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, **kw) -> Tensor:
    """FGSM with random start ("fast" adversarial training, Wong et al. 2020):
    one step of size ``1.25 * eps`` from a uniform random start."""
    kw.setdefault("alpha", 1.25 * _utils.check_eps(eps))
    return perturb(model, x, y, eps=eps, steps=1, random_start=True, **kw)


def perturb_batches(
    model: nn.Module,
    data: Any,
    attack: Callable | None = None,
    *,
    generator: torch.Generator | None = None,
    **legacy: Any,
) -> list[tuple[Tensor, Tensor]]:
    """Attack every batch of ``data`` once at the current model and return the fixed
    adversarial batches ``[(x_adv, y), ...]`` (on the model's device).

    This turns a robust-loss analysis into a question about fixed data (the style of
    every analysis module): attack once, then measure a deterministic objective.

    Args:
        model: the classifier.
        data: an ``(x, y)`` pair (one batch), a list of batches or a loader.
        attack: an attack value, e.g. ``attacks.PGD(eps=0.3, steps=40, alpha=0.01)``
            (any ``attack(model, x, y, generator) -> x_adv``).
        generator: randomness of the attack (``None``: torch's global RNG).
        **legacy: the deprecated loose settings ``eps``, ``norm``, ``alpha``,
            ``steps``, ``random_start``, ``loss_fn`` of a
            :class:`~landscape.attacks.PGD` (one release).

    Returns:
        ``[(x_adv, y), ...]``, one entry per batch of ``data``.

    Example:
        >>> from landscape import attacks
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x, y = torch.rand(6, 1, 2, 2), torch.randint(0, 2, (6,))
        >>> adv = attacks.perturb_batches(model, (x, y), attacks.PGD(eps=0.1))
        >>> len(adv), adv[0][0].shape == x.shape  # a pair is one batch
        (1, True)
    """
    from ._spec import as_attack

    attack = as_attack(attack, where="perturb_batches", **legacy)
    if attack is None:
        raise TypeError(
            "perturb_batches needs an attack: perturb_batches(model, data, "
            "attacks.PGD(eps=...))"
        )
    batches = as_batches(data, model=model, labels="class", images=True)
    gen, _ = _utils.make_generator(generator, batches.device)
    return [(attack(model, x, y, gen), y) for x, y in batches]

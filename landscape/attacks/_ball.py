"""The geometry every gradient attack shares: the eps-ball of a norm intersected with
the box [0, 1], its random points and steepest-ascent steps."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["project", "random_init", "step_direction"]


def per_example_norm(v: Tensor) -> Tensor:
    """The L2 norm of every example (dim 0), shaped to broadcast against ``v``."""
    return v.flatten(1).norm(dim=1).view(-1, *([1] * (v.ndim - 1)))


def project(delta: Tensor, x: Tensor, eps: float, norm: str) -> Tensor:
    """Project ``delta`` onto the eps-ball (``norm``) and keep ``x + delta`` in [0, 1]."""
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        n = per_example_norm(delta)
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
            / (per_example_norm(g) + 1e-12)
            * (eps * r).view(-1, *([1] * (x.ndim - 1)))
        )
    return project(delta, x, eps, norm)


def signed(grad: Tensor) -> Tensor:
    """``sign(grad)``, but NaN where ``grad`` is NaN or inf: ``torch.sign(nan)`` is 0,
    so a NaN gradient would be a silent zero step; the NaN reaches the result, where
    the checks of the attack and of the analysis name it (no host read here).

    Example:
        >>> signed(torch.tensor([-2.0, 0.0, 3.0, float("nan")])).tolist()
        [-1.0, 0.0, 1.0, nan]
    """
    return grad.sign().add_(grad * 0)


def step_direction(grad: Tensor, norm: str) -> Tensor:
    """Steepest-ascent direction of unit ``norm``: ``sign(g)`` (L-inf, NaN where ``g``
    is not finite: :func:`signed`) or ``g/||g||_2``."""
    if norm == "linf":
        return signed(grad)
    return grad / (per_example_norm(grad) + 1e-12)


def ascend_(delta: Tensor, grad: Tensor, alpha: float, norm: str) -> None:
    """``delta += alpha * step(grad)`` in place (``grad`` is overwritten)."""
    if norm == "linf":  # sign(grad), NaN where grad is not finite (signed)
        delta.add_(grad.sign().add_(grad.mul_(0)), alpha=alpha)
    else:
        n = per_example_norm(grad) + 1e-12
        delta.add_(grad.mul_(alpha).div_(n))


def project_(delta: Tensor, x: Tensor, eps: float, norm: str) -> None:
    """:func:`project` in place."""
    if norm == "linf":
        delta.clamp_(-eps, eps)
    else:
        delta.mul_(torch.clamp(eps / (per_example_norm(delta) + 1e-12), max=1.0))
    delta.add_(x).clamp_(0.0, 1.0).sub_(x)

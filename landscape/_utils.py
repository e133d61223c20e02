"""Private helpers shared by every module: device/dtype inference, mode switching,
parameter flattening, seeding, input validation."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import random
import warnings
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "check_eps",
    "check_logits",
    "check_norm",
    "first_examples",
    "eval_mode",
    "flatten",
    "model_device",
    "model_dtype",
    "named_params",
    "num_params",
    "seed_everything",
    "train_mode",
    "unflatten",
    "make_generator",
    "derive_seed",
    "derived_generator",
    "to_device",
    "thin_conv_backend",
    "onednn_policy",
]


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (CPU for parameter-free models)."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    """Floating dtype of the model's first floating parameter (default dtype otherwise)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


@contextlib.contextmanager
def _mode(model: nn.Module, training: bool) -> Iterator[nn.Module]:
    modes = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


def eval_mode(model: nn.Module) -> contextlib.AbstractContextManager[nn.Module]:
    """Put ``model`` (and every submodule) in eval mode; restore each module's mode after."""
    return _mode(model, False)


def train_mode(model: nn.Module) -> contextlib.AbstractContextManager[nn.Module]:
    """Put ``model`` in train mode; restore each module's mode after."""
    return _mode(model, True)


def named_params(model: nn.Module, *, requires_grad: bool = True) -> dict[str, Tensor]:
    """Detached references to the model's (trainable) parameters, by name."""
    return {
        n: p.detach()
        for n, p in model.named_parameters()
        if p.requires_grad or not requires_grad
    }


def num_params(model: nn.Module) -> int:
    """Number of trainable scalar parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flatten(tensors: Iterable[Tensor] | dict[str, Tensor]) -> Tensor:
    """Concatenate tensors (or a dict's values, in order) into one flat vector.

    Example:
        >>> flatten([torch.ones(2, 2), torch.zeros(3)]).tolist()
        [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    """
    if isinstance(tensors, dict):
        tensors = tensors.values()
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vec: Tensor, like: dict[str, Tensor] | Sequence[Tensor]):
    """Split a flat vector into tensors shaped like ``like`` (dict in, dict out).

    Example:
        >>> parts = unflatten(torch.arange(5.0), [torch.empty(2), torch.empty(3)])
        >>> [p.tolist() for p in parts]
        [[0.0, 1.0], [2.0, 3.0, 4.0]]
    """
    items = list(like.values()) if isinstance(like, dict) else list(like)
    total = sum(t.numel() for t in items)
    if vec.numel() != total:
        raise ValueError(
            f"flat vector has {vec.numel()} entries but the parameters have {total}"
        )
    out, i = [], 0
    for t in items:
        out.append(vec[i : i + t.numel()].view_as(t))
        i += t.numel()
    if isinstance(like, dict):
        return dict(zip(like.keys(), out))
    return out


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a torch Generator with that seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def make_generator(
    generator: torch.Generator | None, device: torch.device | str | None = None
) -> tuple[torch.Generator, int]:
    """Return ``(generator, seed)``. A missing generator gets a fresh seed drawn from
    torch's global RNG (itself seeded by :func:`seed_everything`), never from the clock.
    A CPU generator is returned when ``device`` is CPU or None; otherwise a generator on
    ``device`` seeded from the given one, so random draws happen on the data's device."""
    if generator is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
        generator = torch.Generator().manual_seed(seed)
    else:
        seed = int(generator.initial_seed())
    dev = torch.device(device) if device is not None else generator.device
    if dev.type != generator.device.type:
        sub = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        generator = torch.Generator(device=dev).manual_seed(sub)
    return generator, seed


def derive_seed(seed: int, *keys: int | str) -> int:
    """A child seed of ``seed`` for ``keys`` (an epoch, a grid point, a rank, a name).

    The one seed derivation of the package: a SHA-256 of the seed and the keys, so
    children of different keys (and of nearby seeds) are unrelated streams, stable
    across runs, platforms and processes. Returns an int in ``[0, 2**63)``.

    Example:
        >>> derive_seed(0, 1) == derive_seed(0, 1), derive_seed(0, 1) == derive_seed(1, 0)
        (True, False)
    """
    text = repr((int(seed), *(k if isinstance(k, str) else int(k) for k in keys)))
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "little") % 2**63


def derived_generator(
    seed: int, *keys: int | str, device: torch.device | str | None = None
) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`derive_seed`."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return torch.Generator(device=dev).manual_seed(derive_seed(seed, *keys))


def check_eps(eps: float, name: str = "eps") -> float:
    """Validate a perturbation budget."""
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {eps!r}") from None
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(
            f"{name} must be a finite number >= 0, got {eps}; "
            "pass the budget in input units (e.g. 0.3 for MNIST, 8/255 for CIFAR-10)"
        )
    return eps


_NORMS = {"linf": "linf", "inf": "linf", "l2": "l2", "2": "l2"}


def check_norm(norm: str | float | int) -> str:
    """Normalise a norm name to ``"linf"`` or ``"l2"``; anything else is an error."""
    key = str(norm).lower().replace("float('inf')", "inf")
    if key in ("inf", "infinity") or norm == float("inf"):
        return "linf"
    if key in _NORMS:
        return _NORMS[key]
    raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")


def first_examples(
    data: Iterable[tuple[Tensor, Tensor]], num: int
) -> tuple[Tensor, Tensor]:
    """The first ``num`` examples of an iterable of ``(x, y)`` batches, concatenated."""
    xs, ys, seen = [], [], 0
    for xb, yb in data:
        xs.append(xb[: num - seen])
        ys.append(yb[: num - seen])
        seen += len(xs[-1])
        if seen >= num:
            break
    return torch.cat(xs), torch.cat(ys)


def check_logits(out: Tensor, *, where: str = "model") -> None:
    """Warn when a model's output looks like probabilities rather than logits.

    Cross-entropy and margin losses expect raw logits; a softmax output silently
    flattens the loss and masks gradients.
    """
    if out.ndim != 2 or out.shape[1] < 2 or out.numel() == 0:
        return
    with torch.no_grad():
        o = out.detach().float()
        rows = o.sum(dim=1)
        if (
            (o >= 0).all()
            and (o <= 1).all()
            and torch.allclose(rows, torch.ones_like(rows), atol=1e-3)
        ):
            warnings.warn(
                f"{where} output looks like probabilities (rows in [0, 1] summing to 1); "
                "landscape expects logits: remove the final softmax",
                stacklevel=3,
            )


def to_device(batch, device: torch.device, dtype: torch.dtype | None = None):
    """Move an ``(x, y)`` batch to ``device``; floating inputs are cast to ``dtype``."""
    x, y = batch[0], batch[1]
    x = x.to(device, non_blocking=True)
    if dtype is not None and x.is_floating_point():
        x = x.to(dtype)
    return x, y.to(device, non_blocking=True)


def _thin_convs(model: nn.Module, max_channels: int) -> bool:
    convs = [m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    return (
        bool(convs)
        and max(max(m.in_channels, m.out_channels) for m in convs) <= max_channels
    )


_ONEDNN_POLICY: contextvars.ContextVar[str] = contextvars.ContextVar(
    "landscape_onednn_policy", default="auto"
)


@contextlib.contextmanager
def onednn_policy(policy: str) -> Iterator[None]:
    """Choose how attacks use oneDNN on CPU inside this context.

    ``"auto"`` (default): off for thin convolutions only (see :func:`thin_conv_backend`);
    ``"on"``: leave oneDNN as the caller set it; ``"off"``: always off during attacks.
    """
    if policy not in ("auto", "on", "off"):
        raise ValueError(f"oneDNN policy must be 'auto', 'on' or 'off', got {policy!r}")
    token = _ONEDNN_POLICY.set(policy)
    try:
        yield
    finally:
        _ONEDNN_POLICY.reset(token)


@contextlib.contextmanager
def thin_conv_backend(model: nn.Module, max_channels: int = 16) -> Iterator[None]:
    """Switch oneDNN off on CPU while attacking a model whose convolutions are thin.

    PyTorch's oneDNN (mkldnn) CPU kernels compute input gradients through thin
    convolutions (<= 16 channels, e.g. LeNet at width 1) 3-5x slower than the native
    kernels (measured in ``benchmarks/bench_train.py``); for wide networks oneDNN is
    faster and stays on. :func:`onednn_policy` overrides the choice. The previous
    setting is restored on exit.
    """
    policy = _ONEDNN_POLICY.get()
    off = model_device(model).type == "cpu" and (
        policy == "off" or (policy == "auto" and _thin_convs(model, max_channels))
    )
    if not off:
        yield
        return
    prev = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = prev

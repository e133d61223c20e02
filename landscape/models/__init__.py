"""The paper's and the baselines' architectures, with normalisation inside the model.

Every model starts with :class:`Normalize` (the dataset mean/std as buffers), takes
inputs in ``[0, 1]`` and returns logits. Build one from a name and a config::

    model = models.build("lenet", num_classes=10, in_shape=(1, 28, 28), width=16)
    model = models.build("resnet18", in_shape=(3, 32, 32), dataset="cifar10")

Architectures (``width`` multiplies every hidden width / channel count):

* ``linear``: ``Normalize -> Flatten -> Linear``.
* ``mlp``: ``Flatten -> [Linear -> act] * len(hidden) -> Linear``, ``hidden=(100,)``.
* ``lenet``: the LeNet of the paper's code (Liu et al. 2020, ``util/models.py``):
  ``conv5x5(2w) -> act -> pool2 -> conv5x5(4w) -> act -> pool2 -> fc(hidden_size=1024)
  -> act -> fc``, convolutions padded to keep the size. The paper's MNIST models use
  ``width=16`` (32/64 channels), which is exactly ``madry_cnn``.
* ``madry_cnn``: Madry et al. (2018) MNIST CNN: conv 32 5x5 / pool / conv 64 5x5 / pool
  / fc 1024 / fc 10 (3,274,634 parameters at width 1).
* ``vgg16``: VGG-16 with BatchNorm for 32x32 inputs, one linear classifier
  (14,728,266 parameters for CIFAR-10).
* ``resnet18`` / ``preact_resnet18``: the CIFAR ResNet-18 of He et al. (2016) and its
  pre-activation variant (11,173,962 / 11,171,146 parameters for CIFAR-10).

``activation`` is one of ``"relu"``, ``"softplus"``, ``"gelu"``, ``"tanh"`` (modules,
never functional calls, so :func:`smooth_twin` can swap them).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

from torch import nn

from . import _nets
from ._nets import ACTIVATIONS as ACTIVATIONS  # re-exported: in _nets.__all__
from ._nets import (
    MLP,
    VGG,
    LeNet,
    LinearModel,
    MadryCNN,
    Normalize,
    PreActResNet,
    ResNet,
    make_activation,
)

__all__ = [
    "DATASET_STATS",
    "available",
    "build",
    "register",
    "smooth_twin",
    *_nets.__all__,  # the architectures, Normalize, ACTIVATIONS, make_activation
]

#: Per-channel mean and std of the training sets (inputs in [0, 1]).
DATASET_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar10-jpeg": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "none": ((0.0,), (1.0,)),
}

# Default statistics when neither mean/std nor dataset is given.
_SHAPE_DEFAULT = {(1, 28, 28): "mnist", (3, 32, 32): "cifar10"}


def _normalize(
    in_shape: tuple[int, ...],
    mean: Sequence[float] | float | None,
    std: Sequence[float] | float | None,
    dataset: str | None,
) -> Normalize:
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    if mean is None:
        key = dataset or _SHAPE_DEFAULT.get(tuple(in_shape), "none")
        key = key.lower().replace("_", "-")
        if key not in DATASET_STATS:
            raise ValueError(
                f"no statistics for dataset {dataset!r}; known: "
                f"{', '.join(DATASET_STATS)} (or pass mean= and std=)"
            )
        mean, std = DATASET_STATS[key]
    return Normalize(mean, std)


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(
    name: str,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a model factory to the registry under ``name``.

    The factory is called as ``factory(num_classes=..., in_shape=..., norm=Normalize,
    width=..., activation=..., **kw)`` and returns an ``nn.Module`` whose first module
    is ``norm``.
    """

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name.lower()
        if key in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[key] = fn
        return fn

    return deco


def available() -> list[str]:
    """Names accepted by :func:`build`."""
    return sorted(_REGISTRY)


@register("linear")
def _linear(num_classes, in_shape, norm, width=1, activation="relu"):
    return LinearModel(num_classes, in_shape, norm)


# The classes take build()'s arguments as they are: (num_classes, in_shape, norm, *,
# width, activation, their own options).
for _name, _cls in {
    "mlp": MLP,
    "lenet": LeNet,
    "madry_cnn": MadryCNN,
    "vgg16": VGG,
    "resnet18": ResNet,
    "preact_resnet18": PreActResNet,
}.items():
    register(_name)(_cls)


_ALIASES = {
    "madry": "madry_cnn",
    "vgg": "vgg16",
    "vgg16_bn": "vgg16",
    "resnet": "resnet18",
    "preactresnet18": "preact_resnet18",
    "preact-resnet18": "preact_resnet18",
}


def build(
    name: str,
    *,
    num_classes: int = 10,
    in_shape: Sequence[int] = (1, 28, 28),
    width: float = 1,
    activation: str = "relu",
    mean: Sequence[float] | float | None = None,
    std: Sequence[float] | float | None = None,
    dataset: str | None = None,
    **kw,
) -> nn.Module:
    """Build a registered model; the result's first module is ``Normalize(mean, std)``.

    Args:
        name: one of :func:`available` (e.g. ``"lenet"``, ``"resnet18"``).
        num_classes: number of logits.
        in_shape: input shape without the batch dimension, ``(C, H, W)`` or ``(D,)``.
        width: width factor (multiplies hidden widths / channels).
        activation: ``"relu"``, ``"softplus"``, ``"gelu"`` or ``"tanh"``.
        mean: per-channel mean for :class:`Normalize` (with ``std``).
        std: per-channel std.
        dataset: take mean/std from :data:`DATASET_STATS` (default: inferred from
            ``in_shape``: ``(1, 28, 28)`` -> MNIST, ``(3, 32, 32)`` -> CIFAR-10,
            otherwise mean 0, std 1).
        **kw: model-specific options (``hidden`` for ``mlp``, ``hidden_size`` for
            ``lenet``).

    Returns:
        The model (float32, CPU, train mode). Its build arguments are stored in
        ``model.build_config`` so ``build(**model.build_config)`` rebuilds it.

    Raises:
        ValueError: unknown model or activation (the message lists the valid names),
            ``num_classes < 1`` or ``width <= 0``.

    Example:
        >>> import torch
        >>> m = build("madry_cnn")
        >>> m(torch.zeros(2, 1, 28, 28)).shape, sum(p.numel() for p in m.parameters())
        (torch.Size([2, 10]), 3274634)
    """
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available())}")
    make_activation(activation)  # validate early, with the list of names
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if not width > 0:
        raise ValueError(f"width must be > 0 (a factor on the widths), got {width}")
    in_shape = tuple(int(s) for s in in_shape)
    norm = _normalize(in_shape, mean, std, dataset)
    try:
        model = _REGISTRY[key](
            num_classes=int(num_classes),
            in_shape=in_shape,
            norm=norm,
            width=width,
            activation=activation,
            **kw,
        )
    except TypeError as err:
        if kw:
            raise TypeError(
                f"bad options {sorted(kw)} for model {key!r}: {err}"
            ) from err
        raise
    model.build_config = dict(
        name=key,
        num_classes=int(num_classes),
        in_shape=in_shape,
        width=width,
        activation=activation,
        mean=norm.mean.tolist(),
        std=norm.std.tolist(),
        **kw,
    )
    return model


def smooth_twin(model: nn.Module, activation: str = "softplus") -> nn.Module:
    """A deep copy of ``model`` with every ``nn.ReLU`` replaced by ``activation``.

    Parameters and buffers (names and values) are unchanged, so parameter dicts and
    directions computed for one model apply to the other.

    Example:
        >>> twin = smooth_twin(build("mlp", in_shape=(4,)))
        >>> any(isinstance(m, nn.ReLU) for m in twin.modules())
        False
    """
    make_activation(activation)
    twin = copy.deepcopy(model)
    for parent in list(twin.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(parent, child_name, make_activation(activation))
    cfg = getattr(twin, "build_config", None)
    if isinstance(cfg, dict):
        twin.build_config = {**cfg, "activation": activation}
    return twin

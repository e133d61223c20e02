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

import torch
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "DATASET_STATS",
    "Normalize",
    "available",
    "build",
    "make_activation",
    "register",
    "smooth_twin",
    "LinearModel",
    "MLP",
    "LeNet",
    "MadryCNN",
    "VGG",
    "ResNet",
    "PreActResNet",
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

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (``relu``, ``softplus``, ``gelu``, ``tanh``)."""
    if isinstance(name, nn.Module):
        return copy.deepcopy(name)
    key = str(name).lower()
    if key not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}"
        )
    return ACTIVATIONS[key]()


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, with mean and std stored as buffers.

    Works for images ``(N, C, H, W)`` (one value per channel) and flat inputs
    ``(N, D)`` (one value per feature, or a scalar).

    Example:
        >>> n = Normalize((0.5,), (0.25,))
        >>> n(torch.ones(1, 1, 2, 2)).flatten().tolist()
        [2.0, 2.0, 2.0, 2.0]
    """

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float):
        super().__init__()
        m = torch.as_tensor(mean, dtype=torch.float32).flatten()
        s = torch.as_tensor(std, dtype=torch.float32).flatten()
        if m.shape != s.shape:
            raise ValueError(f"mean {tuple(m.shape)} and std {tuple(s.shape)} differ")
        if (s <= 0).any():
            raise ValueError(f"std must be positive, got {s.tolist()}")
        self.register_buffer("mean", m)
        self.register_buffer("std", s)

    def forward(self, x: Tensor) -> Tensor:
        if self.mean.numel() == 1:
            return (x - self.mean) / self.std
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return (x - self.mean.view(shape)) / self.std.view(shape)

    def extra_repr(self) -> str:
        return f"mean={self.mean.tolist()}, std={self.std.tolist()}"


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


def _w(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def _in_features(in_shape: tuple[int, ...]) -> int:
    n = 1
    for s in in_shape:
        n *= int(s)
    return n


class _Net(nn.Module):
    """``normalize -> body``; subclasses fill ``self.body``."""

    normalize: Normalize
    body: nn.Module

    def forward(self, x: Tensor) -> Tensor:
        return self.body(self.normalize(x))


class LinearModel(_Net):
    """``Normalize -> Flatten -> Linear(num_classes)``."""

    def __init__(self, num_classes: int, in_shape: tuple[int, ...], norm: Normalize):
        super().__init__()
        self.normalize = norm
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(_in_features(in_shape), num_classes)
        )


class MLP(_Net):
    """Fully connected net with ``hidden`` widths (times ``width``)."""

    def __init__(
        self,
        num_classes: int,
        in_shape: tuple[int, ...],
        norm: Normalize,
        *,
        hidden: Sequence[int] = (100,),
        width: float = 1,
        activation: str = "relu",
    ):
        super().__init__()
        self.normalize = norm
        layers: list[nn.Module] = [nn.Flatten()]
        d = _in_features(in_shape)
        for h in hidden:
            layers += [nn.Linear(d, _w(h, width)), make_activation(activation)]
            d = _w(h, width)
        layers.append(nn.Linear(d, num_classes))
        self.body = nn.Sequential(*layers)


def _conv_pool_net(
    in_shape: tuple[int, ...],
    channels: tuple[int, int],
    hidden: int,
    num_classes: int,
    activation: str,
) -> nn.Sequential:
    c, h, w = in_shape
    c1, c2 = channels
    return nn.Sequential(
        nn.Conv2d(c, c1, 5, padding=2),
        make_activation(activation),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5, padding=2),
        make_activation(activation),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * (h // 4) * (w // 4), hidden),
        make_activation(activation),
        nn.Linear(hidden, num_classes),
    )


def _image_shape(in_shape: tuple[int, ...], name: str) -> tuple[int, int, int]:
    if len(in_shape) != 3:
        raise ValueError(f"{name} needs in_shape=(C, H, W), got {in_shape}")
    return tuple(int(s) for s in in_shape)  # type: ignore[return-value]


class LeNet(_Net):
    """LeNet of the paper's code: conv ``2w`` / conv ``4w`` channels, fc ``hidden_size``."""

    def __init__(
        self,
        num_classes: int,
        in_shape: tuple[int, ...],
        norm: Normalize,
        *,
        width: float = 1,
        activation: str = "relu",
        hidden_size: int = 1024,
    ):
        super().__init__()
        self.normalize = norm
        shape = _image_shape(in_shape, "lenet")
        self.body = _conv_pool_net(
            shape, (_w(2, width), _w(4, width)), hidden_size, num_classes, activation
        )


class MadryCNN(_Net):
    """Madry et al. (2018) MNIST CNN: conv 32 / conv 64 / fc 1024 (times ``width``)."""

    def __init__(
        self,
        num_classes: int,
        in_shape: tuple[int, ...],
        norm: Normalize,
        *,
        width: float = 1,
        activation: str = "relu",
    ):
        super().__init__()
        self.normalize = norm
        shape = _image_shape(in_shape, "madry_cnn")
        self.body = _conv_pool_net(
            shape,
            (_w(32, width), _w(64, width)),
            _w(1024, width),
            num_classes,
            activation,
        )


_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M")  # fmt: skip


class VGG(_Net):
    """VGG-16 with BatchNorm for small images (one linear classifier on 512 features)."""

    def __init__(
        self,
        num_classes: int,
        in_shape: tuple[int, ...],
        norm: Normalize,
        *,
        width: float = 1,
        activation: str = "relu",
        config: Sequence[int | str] = _VGG16,
    ):
        super().__init__()
        self.normalize = norm
        c = _image_shape(in_shape, "vgg16")[0]
        layers: list[nn.Module] = []
        for v in config:
            if v == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                out = _w(int(v), width)
                layers += [
                    nn.Conv2d(c, out, 3, padding=1),
                    nn.BatchNorm2d(out),
                    make_activation(activation),
                ]
                c = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
        self.body = nn.Sequential(*layers)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, activation: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = make_activation(activation)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = make_activation(activation)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class _PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, activation: str):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.act1 = make_activation(activation)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = make_activation(activation)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(x))
        short = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.act2(self.bn2(out)))
        return out + short


class ResNet(_Net):
    """ResNet-18 for 32x32 inputs (3x3 stem, no max-pool), He et al. (2016)."""

    block: type[nn.Module] = _BasicBlock
    preact: bool = False

    def __init__(
        self,
        num_classes: int,
        in_shape: tuple[int, ...],
        norm: Normalize,
        *,
        width: float = 1,
        activation: str = "relu",
        num_blocks: Sequence[int] = (2, 2, 2, 2),
    ):
        super().__init__()
        self.normalize = norm
        c = _image_shape(in_shape, type(self).__name__)[0]
        base = _w(64, width)
        layers: list[nn.Module] = [nn.Conv2d(c, base, 3, 1, 1, bias=False)]
        if not self.preact:
            layers += [nn.BatchNorm2d(base), make_activation(activation)]
        cin = base
        for i, n in enumerate(num_blocks):
            cout = base * 2**i
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(self.block(cin, cout, stride, activation))
                cin = cout
        if self.preact:
            layers += [nn.BatchNorm2d(cin), make_activation(activation)]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
        self.body = nn.Sequential(*layers)


class PreActResNet(ResNet):
    """Pre-activation ResNet-18 for 32x32 inputs, He et al. (2016b)."""

    block = _PreActBlock
    preact = True


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


@register("mlp")
def _mlp(num_classes, in_shape, norm, width=1, activation="relu", hidden=(100,)):
    return MLP(
        num_classes, in_shape, norm, hidden=hidden, width=width, activation=activation
    )


@register("lenet")
def _lenet(num_classes, in_shape, norm, width=1, activation="relu", hidden_size=1024):
    return LeNet(
        num_classes,
        in_shape,
        norm,
        width=width,
        activation=activation,
        hidden_size=hidden_size,
    )


@register("madry_cnn")
def _madry(num_classes, in_shape, norm, width=1, activation="relu"):
    return MadryCNN(num_classes, in_shape, norm, width=width, activation=activation)


@register("vgg16")
def _vgg16(num_classes, in_shape, norm, width=1, activation="relu"):
    return VGG(num_classes, in_shape, norm, width=width, activation=activation)


@register("resnet18")
def _resnet18(num_classes, in_shape, norm, width=1, activation="relu"):
    return ResNet(num_classes, in_shape, norm, width=width, activation=activation)


@register("preact_resnet18")
def _preact18(num_classes, in_shape, norm, width=1, activation="relu"):
    return PreActResNet(num_classes, in_shape, norm, width=width, activation=activation)


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
        ValueError: unknown model or activation (the message lists the valid names).

    Example:
        >>> m = build("madry_cnn")
        >>> m(torch.zeros(2, 1, 28, 28)).shape, sum(p.numel() for p in m.parameters())
        (torch.Size([2, 10]), 3274634)
    """
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available())}")
    make_activation(activation)  # validate early, with the list of names
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
        >>> any(isinstance(m, torch.nn.ReLU) for m in twin.modules())
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

"""Architectures behind :func:`landscape.models.build` (see the package docstring)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "Normalize",
    "make_activation",
    "LinearModel",
    "MLP",
    "LeNet",
    "MadryCNN",
    "VGG",
    "ResNet",
    "PreActResNet",
]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (``relu``, ``softplus``, ``gelu``, ``tanh``,
    ``silu``; ``swish`` is ``silu``)."""
    if isinstance(name, nn.Module):
        return copy.deepcopy(name)
    key = str(name).lower()
    key = "silu" if key == "swish" else key
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
        # checked on the CPU (the module may be built under torch.device("meta"))
        m = torch.as_tensor(mean, dtype=torch.float32, device="cpu").flatten()
        s = torch.as_tensor(std, dtype=torch.float32, device="cpu").flatten()
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
    """The MNIST LeNet of Liu et al.'s released code (NeurIPS 2020, ``util/models.py``,
    ``MNIST_LeNet``): conv 5x5 ``2w`` / conv 5x5 ``4w`` channels (each ReLU and 2x2
    max-pool) and one hidden fc layer of ``64w`` units (``hidden_size``, default
    ``64 * width``). Width 16 is the paper's network (32 / 64 channels, fc 1024:
    3,274,634 parameters on MNIST, the shape of Madry et al.'s CNN); width 1 has
    13,514 parameters, width 4 206,954."""

    def __init__(
        self,
        num_classes: int,
        in_shape: tuple[int, ...],
        norm: Normalize,
        *,
        width: float = 1,
        activation: str = "relu",
        hidden_size: int | None = None,
    ):
        super().__init__()
        self.normalize = norm
        shape = _image_shape(in_shape, "lenet")
        hidden = _w(64, width) if hidden_size is None else int(hidden_size)
        self.body = _conv_pool_net(
            shape, (_w(2, width), _w(4, width)), hidden, num_classes, activation
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

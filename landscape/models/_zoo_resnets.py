"""The ResNets of the public zoo (see ``_zoo_nets`` for the conventions): the CIFAR
(PreAct) ResNets of RobustBench's ``resnet.py`` and torchvision's ImageNet ResNet."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._nets import Normalize, _BasicBlock, _PreActBlock, _stages, make_activation
from ._zoo_nets import _check_shape, _fixed_width

__all__ = ["CifarResNet", "CifarPreActResNet", "TorchvisionResNet"]


# --------------------------------------------------------------------------- CIFAR ResNets


class _CifarBottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, activation: str):
        super().__init__()
        out = 4 * planes
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = make_activation(activation)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_activation(activation)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.act3 = make_activation(activation)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.act3(out + self.shortcut(x))


_BLOCKS = {"basic": _BasicBlock, "bottleneck": _CifarBottleneck}


class CifarResNet(nn.Module):
    """The CIFAR ResNet of ``kuangliu/pytorch-cifar`` (RobustBench's ``resnet.py``):
    3x3 stem, no max-pool, ``layer1..4``, ``avg_pool2d(4)``, ``linear``.

    ``block="bottleneck", num_blocks=(3, 4, 6, 3)`` is the ResNet-50 of Engstrom et
    al. (2019) (23,520,842 parameters for 10 classes); ``block="basic"`` with
    ``(2, 2, 2, 2)`` is ResNet-18.
    """

    def __init__(
        self,
        num_classes: int,
        in_shape: tuple[int, ...],
        norm: Normalize,
        *,
        block: str = "bottleneck",
        num_blocks: Sequence[int] = (3, 4, 6, 3),
        width: float = 1,
        activation: str = "relu",
    ):
        super().__init__()
        _fixed_width(width, "cifar_resnet")
        c, _, _ = _check_shape(in_shape, "cifar_resnet")
        if block not in _BLOCKS:
            raise ValueError(f"block must be one of {sorted(_BLOCKS)}, got {block!r}")
        kind = _BLOCKS[block]
        self.normalize = norm
        self.conv1 = nn.Conv2d(c, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act = make_activation(activation)
        make = functools.partial(kind, activation=activation)
        stages, _ = _stages(make, num_blocks, 64, expansion=kind.expansion)
        for i, stage in enumerate(stages):
            setattr(self, f"layer{i + 1}", stage)
        self.linear = nn.Linear(512 * kind.expansion, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv1(self.normalize(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)
        return self.linear(out.view(out.size(0), -1))


class CifarPreActResNet(nn.Module):
    """The CIFAR PreAct ResNet of RobustBench's ``resnet.py`` (Wong et al. 2020; Rice
    et al. 2020).

    Args:
        final_bn: ``bn -> ReLU`` before the pooling (RobustBench's ``bn_before_fc``;
            Rice et al.'s models have it, Wong et al.'s CIFAR-10 entry does not).
        shortcut_from: ``"input"`` (the block's input, ``PreActBlock``) or
            ``"activation"`` (its pre-activation, ``PreActBlockV2`` /
            ``out_shortcut=True``), for the projection shortcuts.
        num_blocks: blocks per stage, ``(2, 2, 2, 2)`` for ResNet-18
            (11,171,146 parameters without, 11,172,170 with the final BN).
    """

    def __init__(
        self,
        num_classes: int,
        in_shape: tuple[int, ...],
        norm: Normalize,
        *,
        final_bn: bool = False,
        shortcut_from: str = "input",
        num_blocks: Sequence[int] = (2, 2, 2, 2),
        width: float = 1,
        activation: str = "relu",
    ):
        super().__init__()
        _fixed_width(width, "cifar_preact_resnet")
        c, _, _ = _check_shape(in_shape, "cifar_preact_resnet")
        if shortcut_from not in ("input", "activation"):
            raise ValueError(
                f"shortcut_from must be 'input' or 'activation', got {shortcut_from!r}"
            )
        self.normalize = norm
        self.final_bn = bool(final_bn)
        self.conv1 = nn.Conv2d(c, 64, 3, 1, 1, bias=False)
        make = functools.partial(
            _PreActBlock,
            activation=activation,
            from_act=shortcut_from == "activation",
        )
        stages, _ = _stages(make, num_blocks, 64)
        for i, stage in enumerate(stages):
            setattr(self, f"layer{i + 1}", stage)
        if self.final_bn:
            self.bn = nn.BatchNorm2d(512)
            self.act = make_activation(activation)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.normalize(x))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        if self.final_bn:
            out = self.act(self.bn(out))
        out = F.avg_pool2d(out, 4)
        return self.linear(out.view(out.size(0), -1))


# --------------------------------------------------------------------------- ImageNet


class _TVBottleneck(nn.Module):
    """torchvision's ``Bottleneck`` (stride on the 3x3 convolution, "ResNet v1.5")."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, activation: str):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = make_activation(activation)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + identity)


class TorchvisionResNet(nn.Module):
    """torchvision's ImageNet ResNet with bottleneck blocks (``resnet50`` by default:
    ``num_blocks=(3, 4, 6, 3)``, 25,557,032 parameters for 1000 classes).

    Any input of at least 32x32 works (adaptive average pooling); the published
    models expect 224x224 (resize 256, centre-crop 224).
    """

    def __init__(
        self,
        num_classes: int,
        in_shape: tuple[int, ...],
        norm: Normalize,
        *,
        num_blocks: Sequence[int] = (3, 4, 6, 3),
        width: float = 1,
        activation: str = "relu",
    ):
        super().__init__()
        _fixed_width(width, "resnet50")
        c, _, _ = _check_shape(in_shape, "resnet50", None)
        self.normalize = norm
        self.conv1 = nn.Conv2d(c, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = make_activation(activation)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        make = functools.partial(_TVBottleneck, activation=activation)
        stages, _ = _stages(make, num_blocks, 64, expansion=4)
        for i, stage in enumerate(stages):
            setattr(self, f"layer{i + 1}", stage)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * 4, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.maxpool(self.relu(self.bn1(self.conv1(self.normalize(x)))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(torch.flatten(self.avgpool(out), 1))

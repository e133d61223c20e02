"""Architectures of the public robust-model zoo, state-dict compatible with it.

Each class has the parameter and buffer names, shapes and forward pass of the code
the published checkpoints were saved from, plus one module in front: ``normalize``
(:class:`Normalize`, the model's input mean and std as buffers
``normalize.mean`` / ``normalize.std``), so every model takes inputs in ``[0, 1]``.

* :class:`WideResNet`: the Wide ResNet of TRADES (Zhang et al. 2019), which
  RobustBench's ``wide_resnet.py`` copies (``block1.layer.0.bn1.weight``, ...,
  ``fc``). Checkpoints of the ``sub_block1=True`` variant hold a block the forward pass
  never uses; :func:`landscape.models.load_published` drops it (see ``unused_keys``).
* :class:`DMWideResNet` / :class:`DMPreActResNet`: DeepMind's models of Gowal et al.
  (2020) and Rebuffi et al. (2021) (RobustBench's ``dm_wide_resnet.py``): explicit
  "SAME" padding, Swish/SiLU or ReLU, optional zero padding of the input before the
  normalisation (``padding``).
* :class:`CifarResNet` / :class:`CifarPreActResNet`: the CIFAR (Pre-act) ResNets of
  ``kuangliu/pytorch-cifar`` that RobustBench's ``resnet.py`` keeps (3x3 stem,
  ``avg_pool2d(4)``): Engstrom et al.'s ResNet-50, Wong et al.'s and Rice et al.'s
  PreAct ResNet-18 (options ``final_bn`` and ``shortcut_from``).
* :class:`TorchvisionResNet`: torchvision's ImageNet ResNet (``conv1`` 7x7, max-pool,
  ``layer1..4`` of bottlenecks with ``downsample``, ``fc``), e.g. ResNet-50 of Salman
  et al. (2020) and Engstrom et al. (2019).

Activations are modules (``nn.ReLU``, ``nn.SiLU``), never in-place, so the models
support double backward (Hessian-vector products) and :func:`smooth_twin`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._nets import Normalize, make_activation

__all__ = [
    "WideResNet",
    "DMWideResNet",
    "DMPreActResNet",
    "CifarResNet",
    "CifarPreActResNet",
    "TorchvisionResNet",
]


def _check_shape(
    in_shape: tuple[int, ...], name: str, size: int | None = 32
) -> tuple[int, int, int]:
    """``in_shape`` as ``(C, H, W)``; ``size``: the one spatial size the published
    forward pass supports (a fixed ``avg_pool2d`` window), None: any size >= 32."""
    if len(in_shape) != 3:
        raise ValueError(f"{name} needs in_shape=(C, H, W), got {in_shape}")
    c, h, w = (int(s) for s in in_shape)
    if size is not None and (h, w) != (size, size):
        raise ValueError(
            f"{name} is the published {size}x{size} architecture (its forward pass "
            f"pools a fixed window); got in_shape {in_shape}: use 32x32 images "
            "(e.g. dataset='cifar10', 'cifar100' or 'svhn')"
        )
    if size is None and min(h, w) < 32:
        raise ValueError(f"{name} needs images of at least 32x32, got {in_shape}")
    return c, h, w


def _fixed_width(width: float, name: str) -> None:
    if width != 1:
        raise ValueError(
            f"{name} has the published widths; width={width} is not supported "
            "(Wide ResNets take widen_factor=)"
        )


# --------------------------------------------------------------------------- TRADES


class _WRNBlock(nn.Module):
    """Pre-activation block of the TRADES Wide ResNet (names as published)."""

    def __init__(self, cin: int, cout: int, stride: int, activation: str):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = make_activation(activation)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = make_activation(activation)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equalInOut = cin == cout
        self.convShortcut = (
            None if self.equalInOut else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.equalInOut:
            out = self.relu2(self.bn2(self.conv1(self.relu1(self.bn1(x)))))
            return x + self.conv2(out)
        x = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(x)))
        assert self.convShortcut is not None
        return self.convShortcut(x) + self.conv2(out)


class _WRNGroup(nn.Module):
    def __init__(self, n: int, cin: int, cout: int, stride: int, activation: str):
        super().__init__()
        self.layer = nn.Sequential(
            *(
                _WRNBlock(
                    cin if i == 0 else cout, cout, stride if i == 0 else 1, activation
                )  # fmt: skip
                for i in range(n)
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """Wide ResNet-``depth``-``widen_factor`` of TRADES / RobustBench, 32x32 inputs.

    Channels ``16, 16k, 32k, 64k`` with ``(depth - 4) / 6`` pre-activation blocks per
    group; ``bn1 -> ReLU -> avg_pool2d(8) -> fc``. WRN-28-10 has 36,479,194
    parameters, WRN-34-10 46,160,474, WRN-34-20 184,531,674 (10 classes).
    """

    #: Checkpoint keys the forward pass never reads (``sub_block1=True`` checkpoints
    #: hold a second first group that the published forward skips).
    unused_keys: tuple[str, ...] = ("sub_block1.",)

    def __init__(
        self,
        num_classes: int,
        in_shape: tuple[int, ...],
        norm: Normalize,
        *,
        depth: int = 28,
        widen_factor: int = 10,
        bias_last: bool = True,
        width: float = 1,
        activation: str = "relu",
    ):
        super().__init__()
        _fixed_width(width, "wide_resnet")
        c, _, _ = _check_shape(in_shape, "wide_resnet")
        if (depth - 4) % 6 or depth < 10:
            raise ValueError(
                f"wide_resnet depth must be 6n + 4 (28, 34, 70), got {depth}"
            )
        n = (depth - 4) // 6
        ch = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.normalize = norm
        self.conv1 = nn.Conv2d(c, ch[0], 3, 1, 1, bias=False)
        self.block1 = _WRNGroup(n, ch[0], ch[1], 1, activation)
        self.block2 = _WRNGroup(n, ch[1], ch[2], 2, activation)
        self.block3 = _WRNGroup(n, ch[2], ch[3], 2, activation)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = make_activation(activation)
        self.fc = nn.Linear(ch[3], num_classes, bias=bias_last)
        self.nChannels = ch[3]

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.normalize(x))
        out = self.block3(self.block2(self.block1(out)))
        out = F.avg_pool2d(self.relu(self.bn1(out)), 8)
        return self.fc(out.view(-1, self.nChannels))


# --------------------------------------------------------------------------- DeepMind


def _same_pad(x: Tensor, stride: int) -> Tensor:
    """TensorFlow's "SAME" padding of a 3x3 convolution (stride 1 or 2)."""
    return F.pad(x, (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1))


class _DMBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, activation: str):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"unsupported stride {stride}")
        self.batchnorm_0 = nn.BatchNorm2d(cin)
        self.relu_0 = make_activation(activation)
        self.conv_0 = nn.Conv2d(cin, cout, 3, stride, 0, bias=False)
        self.batchnorm_1 = nn.BatchNorm2d(cout)
        self.relu_1 = make_activation(activation)
        self.conv_1 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.has_shortcut = cin != cout
        self.shortcut = (
            nn.Conv2d(cin, cout, 1, stride, 0, bias=False)
            if self.has_shortcut
            else None
        )
        self._stride = stride

    def forward(self, x: Tensor) -> Tensor:
        act = self.relu_0(self.batchnorm_0(x))
        if self.has_shortcut:
            x = act
        out = self.conv_0(_same_pad(act, self._stride))
        out = self.conv_1(self.relu_1(self.batchnorm_1(out)))
        return (self.shortcut(x) if self.shortcut is not None else x) + out


class _DMGroup(nn.Module):
    def __init__(self, n: int, cin: int, cout: int, stride: int, activation: str):
        super().__init__()
        self.block = nn.Sequential(
            *(
                _DMBlock(
                    cin if i == 0 else cout, cout, stride if i == 0 else 1, activation
                )  # fmt: skip
                for i in range(n)
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class DMWideResNet(nn.Module):
    """DeepMind's Wide ResNet (Gowal et al. 2020; Rebuffi et al. 2021), 32x32 inputs.

    ``init_conv -> layer (3 groups) -> batchnorm -> act -> avg_pool2d(8) -> logits``.
    The published models use ``activation="silu"`` (Swish); ``padding`` zero-pads the
    input before the normalisation, as the original. WRN-28-10 has 36,479,194
    parameters, WRN-70-16 266,796,506 (10 classes).
    """

    def __init__(
        self,
        num_classes: int,
        in_shape: tuple[int, ...],
        norm: Normalize,
        *,
        depth: int = 28,
        widen_factor: int = 10,
        padding: int = 0,
        width: float = 1,
        activation: str = "silu",
    ):
        super().__init__()
        _fixed_width(width, "dm_wide_resnet")
        c, _, _ = _check_shape(in_shape, "dm_wide_resnet", 32 - 2 * int(padding))
        if (depth - 4) % 6 or depth < 10:
            raise ValueError(
                f"dm_wide_resnet depth must be 6n + 4 (28, 34, 70), got {depth}"
            )
        n = (depth - 4) // 6
        ch = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.normalize = norm
        self.padding = int(padding)
        self.init_conv = nn.Conv2d(c, ch[0], 3, 1, 1, bias=False)
        self.layer = nn.Sequential(
            _DMGroup(n, ch[0], ch[1], 1, activation),
            _DMGroup(n, ch[1], ch[2], 2, activation),
            _DMGroup(n, ch[2], ch[3], 2, activation),
        )
        self.batchnorm = nn.BatchNorm2d(ch[3])
        self.relu = make_activation(activation)
        self.logits = nn.Linear(ch[3], num_classes)
        self.num_channels = ch[3]

    def forward(self, x: Tensor) -> Tensor:
        if self.padding > 0:
            x = F.pad(x, (self.padding,) * 4)
        out = self.layer(self.init_conv(self.normalize(x)))
        out = F.avg_pool2d(self.relu(self.batchnorm(out)), 8)
        return self.logits(out.view(-1, self.num_channels))


class _DMPreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, activation: str):
        super().__init__()
        self._stride = stride
        self.batchnorm_0 = nn.BatchNorm2d(cin)
        self.relu_0 = make_activation(activation)
        self.conv_2d_1 = nn.Conv2d(cin, cout, 3, stride, 0, bias=False)
        self.batchnorm_1 = nn.BatchNorm2d(cout)
        self.relu_1 = make_activation(activation)
        self.conv_2d_2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.has_shortcut = stride != 1 or cin != cout
        if self.has_shortcut:
            self.shortcut = nn.Conv2d(cin, cout, 3, stride, 0, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu_0(self.batchnorm_0(x))
        short = self.shortcut(_same_pad(x, self._stride)) if self.has_shortcut else x
        out = self.conv_2d_1(_same_pad(out, self._stride))
        out = self.conv_2d_2(self.relu_1(self.batchnorm_1(out)))
        return out + short


class DMPreActResNet(nn.Module):
    """DeepMind's PreAct ResNet-18/34 (Rebuffi et al. 2021), 32x32 inputs.

    Note the 3x3 shortcut convolutions of the original (12,548,426 parameters for
    ResNet-18 and 10 classes).
    """

    def __init__(
        self,
        num_classes: int,
        in_shape: tuple[int, ...],
        norm: Normalize,
        *,
        depth: int = 18,
        padding: int = 0,
        width: float = 1,
        activation: str = "silu",
    ):
        super().__init__()
        _fixed_width(width, "dm_preact_resnet")
        c, _, _ = _check_shape(in_shape, "dm_preact_resnet", 32 - 2 * int(padding))
        blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
        if depth not in blocks:
            raise ValueError(f"dm_preact_resnet depth must be 18 or 34, got {depth}")
        self.normalize = norm
        self.padding = int(padding)
        self.conv_2d = nn.Conv2d(c, 64, 3, 1, 1, bias=False)
        planes = (64, 128, 256, 512)
        cin = 64
        for i, (n, cout) in enumerate(zip(blocks[depth], planes)):
            layer = nn.Sequential(
                *(
                    _DMPreActBlock(
                        cin if j == 0 else cout,
                        cout,
                        (1 if i == 0 else 2) if j == 0 else 1,
                        activation,
                    )  # fmt: skip
                    for j in range(n)
                )
            )
            setattr(self, f"layer_{i}", layer)
            cin = cout
        self.batchnorm = nn.BatchNorm2d(512)
        self.relu = make_activation(activation)
        self.logits = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if self.padding > 0:
            x = F.pad(x, (self.padding,) * 4)
        out = self.conv_2d(self.normalize(x))
        out = self.layer_3(self.layer_2(self.layer_1(self.layer_0(out))))
        out = F.avg_pool2d(self.relu(self.batchnorm(out)), 4)
        return self.logits(out.view(out.size(0), -1))


# --------------------------------------------------------------------------- CIFAR ResNets


class _CifarBasic(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, activation: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = make_activation(activation)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_activation(activation)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


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


_BLOCKS = {"basic": _CifarBasic, "bottleneck": _CifarBottleneck}


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
        cin = 64
        for i, (n, planes) in enumerate(zip(num_blocks, (64, 128, 256, 512))):
            layers = []
            for j in range(n):
                layers.append(kind(cin, planes, (1 if i == 0 else 2) if j == 0 else 1,
                                   activation))  # fmt: skip
                cin = planes * kind.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.linear = nn.Linear(512 * kind.expansion, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv1(self.normalize(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)
        return self.linear(out.view(out.size(0), -1))


class _CifarPreActBlock(nn.Module):
    expansion = 1

    def __init__(
        self, cin: int, planes: int, stride: int, activation: str, from_act: bool
    ):
        super().__init__()
        self.from_act = from_act
        self.bn1 = nn.BatchNorm2d(cin)
        self.act1 = make_activation(activation)
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_activation(activation)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.has_shortcut = stride != 1 or cin != planes
        if self.has_shortcut:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(x))
        if self.has_shortcut:
            short = self.shortcut(out if self.from_act else x)
        else:
            short = x
        out = self.conv2(self.act2(self.bn2(self.conv1(out))))
        return out + short


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
        cin = 64
        for i, (n, planes) in enumerate(zip(num_blocks, (64, 128, 256, 512))):
            blocks = []
            for j in range(n):
                stride = (1 if i == 0 else 2) if j == 0 else 1
                blocks.append(_CifarPreActBlock(cin, planes, stride, activation,
                                                shortcut_from == "activation"))  # fmt: skip
                cin = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
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
        cin = 64
        for i, (n, planes) in enumerate(zip(num_blocks, (64, 128, 256, 512))):
            blocks = []
            for j in range(n):
                stride = (1 if i == 0 else 2) if j == 0 else 1
                blocks.append(_TVBottleneck(cin, planes, stride, activation))
                cin = planes * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * 4, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.maxpool(self.relu(self.bn1(self.conv1(self.normalize(x)))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(torch.flatten(self.avgpool(out), 1))

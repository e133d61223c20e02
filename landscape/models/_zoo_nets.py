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
In ``_zoo_resnets``:

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

import functools

import torch.nn.functional as F
from torch import Tensor, nn

from ._nets import Normalize, _stages, make_activation

__all__ = ["WideResNet", "DMWideResNet", "DMPreActResNet"]


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


class _Group(nn.Module):
    """A stage of blocks under the attribute name its checkpoints use (``layer`` in
    TRADES' Wide ResNet, ``block`` in DeepMind's)."""

    def __init__(self, attr: str, blocks: nn.Sequential):
        super().__init__()
        self.attr = attr
        self.add_module(attr, blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.get_submodule(self.attr)(x)


def _wrn_groups(
    name: str, attr: str, block: type[nn.Module], depth: int, widen_factor: int,
    in_channels: int, activation: str,
) -> tuple[list[_Group], int]:  # fmt: skip
    """The three groups of a Wide ResNet-``depth``-``widen_factor`` (16 channels in)
    and the channels they output."""
    if (depth - 4) % 6 or depth < 10:
        raise ValueError(f"{name} depth must be 6n + 4 (28, 34, 70), got {depth}")
    n = (depth - 4) // 6
    planes = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
    make = functools.partial(block, activation=activation)
    stages, cout = _stages(make, (n, n, n), in_channels, planes)
    return [_Group(attr, s) for s in stages], cout


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
        self.normalize = norm
        self.conv1 = nn.Conv2d(c, 16, 3, 1, 1, bias=False)
        groups, cout = _wrn_groups(
            "wide_resnet", "layer", _WRNBlock, depth, widen_factor, 16, activation
        )
        self.block1, self.block2, self.block3 = groups
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = make_activation(activation)
        self.fc = nn.Linear(cout, num_classes, bias=bias_last)
        self.nChannels = cout

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
        self.normalize = norm
        self.padding = int(padding)
        self.init_conv = nn.Conv2d(c, 16, 3, 1, 1, bias=False)
        groups, cout = _wrn_groups(
            "dm_wide_resnet", "block", _DMBlock, depth, widen_factor, 16, activation
        )
        self.layer = nn.Sequential(*groups)
        self.batchnorm = nn.BatchNorm2d(cout)
        self.relu = make_activation(activation)
        self.logits = nn.Linear(cout, num_classes)
        self.num_channels = cout

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
        make = functools.partial(_DMPreActBlock, activation=activation)
        stages, _ = _stages(make, blocks[depth], 64)
        for i, stage in enumerate(stages):
            setattr(self, f"layer_{i}", stage)
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

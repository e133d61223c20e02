"""The paper's and the baselines' architectures, with normalisation inside the model.

Every model starts with :class:`Normalize` (the dataset mean/std as buffers), takes
inputs in ``[0, 1]`` and returns logits. Build one from a name and a config::

    model = models.build("lenet", num_classes=10, in_shape=(1, 28, 28), width=16)
    model = models.build("resnet18", in_shape=(3, 32, 32), dataset="cifar10")

Architectures (``width`` multiplies every hidden width / channel count):

* ``linear``: ``Normalize -> Flatten -> Linear``.
* ``mlp``: ``Flatten -> [Linear -> act] * len(hidden) -> Linear``, ``hidden=(100,)``.
* ``lenet``: the LeNet of the paper's code (Liu et al. 2020, ``util/models.py``):
  ``conv5x5(2w) -> act -> pool2 -> conv5x5(4w) -> act -> pool2 -> fc(64w) -> act ->
  fc``, convolutions padded to keep the size (``hidden_size`` overrides the fc width).
  The paper's MNIST models use ``width=16`` (32/64 channels, fc 1024: 3,274,634
  parameters), which is exactly ``madry_cnn``; width 1 has 13,514 parameters.
* ``vgg16`` / ``resnet18`` at ``width=0.5`` are the paper's CIFAR-10 networks at its
  width 8 (its channel unit is 4 or 8 channels, ours 64: paper width w = ours w / 16;
  3,686,954 / 2,797,610 parameters).
* ``madry_cnn``: Madry et al. (2018) MNIST CNN: conv 32 5x5 / pool / conv 64 5x5 / pool
  / fc 1024 / fc 10 (3,274,634 parameters at width 1).
* ``vgg16``: VGG-16 with BatchNorm for 32x32 inputs, one linear classifier
  (14,728,266 parameters for CIFAR-10).
* ``resnet18`` / ``preact_resnet18``: the CIFAR ResNet-18 of He et al. (2016) and its
  pre-activation variant (11,173,962 / 11,171,146 parameters for CIFAR-10).

The architectures of the public robust-model zoo, state-dict compatible with the
published checkpoints (see ``_zoo_nets``; fixed widths, so ``width`` must stay 1):

* ``wide_resnet``: the TRADES / RobustBench Wide ResNet (``depth``, ``widen_factor``;
  WRN-28-10 36,479,194 parameters, WRN-34-20 184,531,674).
* ``dm_wide_resnet``: DeepMind's Wide ResNet with SiLU/Swish (``depth``,
  ``widen_factor``, ``padding``; WRN-70-16 266,796,506 parameters).
* ``dm_preact_resnet``: DeepMind's PreAct ResNet-18/34.
* ``cifar_resnet`` / ``cifar_preact_resnet``: the CIFAR (PreAct) ResNets of
  RobustBench's ``resnet.py`` (Engstrom et al.'s ResNet-50; Wong et al.'s and Rice et
  al.'s PreAct ResNet-18).
* ``resnet50``: torchvision's ImageNet ResNet-50 (25,557,032 parameters).

A name of the zoo registry (:data:`ZOO`, e.g. ``"Carmon2019Unlabeled"``) builds that
model's architecture with its normalisation; :func:`load_published` fills in the
downloaded weights.

``dataset=`` sets the input shape, the number of classes and the normalisation
statistics of a data set of :mod:`landscape.data`; an ``in_shape`` or
``num_classes`` that contradicts it is an error.

``activation`` is one of ``"relu"``, ``"softplus"``, ``"gelu"``, ``"tanh"``, ``"silu"``
(modules, never functional calls, so :func:`smooth_twin` can swap them).
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from . import _nets, _zoo_nets, _zoo_resnets
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
from ._published import (
    CheckpointMismatchError,
    fit_state_dict,
    load_published,
    state_dict_of,
)
from ._zoo import ZOO, ZooEntry, is_zoo_name, zoo_entry
from ._zoo_nets import DMPreActResNet, DMWideResNet, WideResNet
from ._zoo_resnets import CifarPreActResNet, CifarResNet, TorchvisionResNet

__all__ = [
    "DATASET_STATS",
    "ZOO",
    "CheckpointMismatchError",
    "ZooEntry",
    "available",
    "build",
    "fit_state_dict",
    "is_zoo_name",
    "load_published",
    "register",
    "smooth_twin",
    "state_dict_of",
    "zoo_entry",
    *_nets.__all__,  # the architectures, Normalize, ACTIVATIONS, make_activation
    *_zoo_nets.__all__,  # the zoo's Wide ResNets
    *_zoo_resnets.__all__,  # the zoo's ResNets
]

#: Per-channel mean and std of the training sets (inputs in [0, 1]).
DATASET_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar10-jpeg": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "tiny-imagenet": ((0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
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
        if key not in DATASET_STATS:  # an alias of a data set ("cifar-100")
            from ..data._specs import _spec

            try:
                key = _spec(key).name
            except ValueError:
                pass
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
    "wide_resnet": WideResNet,
    "dm_wide_resnet": DMWideResNet,
    "dm_preact_resnet": DMPreActResNet,
    "cifar_resnet": CifarResNet,
    "cifar_preact_resnet": CifarPreActResNet,
    "resnet50": TorchvisionResNet,
}.items():
    register(_name)(_cls)


_ALIASES = {
    "madry": "madry_cnn",
    "vgg": "vgg16",
    "vgg16_bn": "vgg16",
    "resnet": "resnet18",
    "preactresnet18": "preact_resnet18",
    "preact-resnet18": "preact_resnet18",
    "wrn": "wide_resnet",
    "wideresnet": "wide_resnet",
    "dm_wrn": "dm_wide_resnet",
}


def _data_shape(dataset: str | None) -> tuple[tuple[int, ...], int] | None:
    """``(in_shape, num_classes)`` of a :mod:`landscape.data` data set, else None."""
    if dataset is None:
        return None
    from ..data import DATASETS
    from ..data._specs import _spec

    try:
        spec = _spec(dataset)
    except ValueError:
        return None
    assert spec.name in DATASETS
    return tuple(spec.shape), spec.num_classes


def _build_zoo(name: str, dataset: str | None, kw: dict) -> nn.Module:
    threat = kw.pop("threat_model", None)
    entry = zoo_entry(name, dataset=dataset, threat_model=threat)
    if kw:
        raise ValueError(
            f"zoo model {entry.key} fixes its architecture and normalisation; drop "
            f"the options {sorted(kw)} (or build {entry.arch!r} yourself)"
        )
    model = build(
        entry.arch,
        num_classes=entry.num_classes,
        in_shape=entry.in_shape,
        mean=entry.mean,
        std=entry.std,
        **entry.arch_kwargs,
    )
    model.build_config = {"name": entry.key}
    model.zoo_entry = entry
    return model


def build(
    name: str,
    *,
    num_classes: int | None = None,
    in_shape: Sequence[int] | None = None,
    width: float = 1,
    activation: str | None = None,
    mean: Sequence[float] | float | None = None,
    std: Sequence[float] | float | None = None,
    dataset: str | None = None,
    **kw,
) -> nn.Module:
    """Build a registered model; the result's first module is ``Normalize(mean, std)``.

    Args:
        name: one of :func:`available` (e.g. ``"lenet"``, ``"resnet18"``), or a zoo
            entry of :data:`ZOO` (``"Carmon2019Unlabeled"``), which fixes the
            architecture, the class count and the normalisation (``dataset`` and
            ``threat_model=`` pick among entries of the same name).
        num_classes: number of logits (default: the dataset's, else 10).
        in_shape: input shape without the batch dimension, ``(C, H, W)`` or ``(D,)``
            (default: the dataset's, else ``(1, 28, 28)``).
        width: width factor (multiplies hidden widths / channels).
        activation: ``"relu"``, ``"softplus"``, ``"gelu"``, ``"tanh"`` or ``"silu"``
            (default: the architecture's, ReLU except ``dm_*``'s SiLU).
        mean: per-channel mean for :class:`Normalize` (with ``std``).
        std: per-channel std.
        dataset: a :mod:`landscape.data` data set: sets ``in_shape``,
            ``num_classes`` and mean/std (:data:`DATASET_STATS`). Without it the
            statistics follow ``in_shape``: ``(1, 28, 28)`` -> MNIST, ``(3, 32, 32)``
            -> CIFAR-10, otherwise mean 0, std 1.
        **kw: model-specific options (``hidden`` for ``mlp``, ``hidden_size`` for
            ``lenet``, ``depth`` / ``widen_factor`` for Wide ResNets, ...).

    Returns:
        The model (float32, CPU, train mode). Its build arguments are stored in
        ``model.build_config`` so ``build(**model.build_config)`` rebuilds it.

    Raises:
        ValueError: unknown model or activation (the message lists the valid names),
            ``num_classes < 1``, ``width <= 0``, or an ``in_shape`` / ``num_classes``
            that contradicts ``dataset``.

    Example:
        >>> import torch
        >>> m = build("madry_cnn")
        >>> m(torch.zeros(2, 1, 28, 28)).shape, sum(p.numel() for p in m.parameters())
        (torch.Size([2, 10]), 3274634)
        >>> build("resnet18", dataset="cifar100")(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 100])
    """
    if is_zoo_name(name) and name.lower() not in _REGISTRY:
        for flag, value in (("num_classes", num_classes), ("in_shape", in_shape),
                            ("mean", mean), ("std", std), ("activation", activation)):  # fmt: skip
            if value is not None:
                kw[flag] = value
        if width != 1:
            kw["width"] = width
        return _build_zoo(name, dataset, kw)
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _REGISTRY:
        raise ValueError(
            f"unknown model {name!r}; available: {', '.join(available())} or a zoo "
            "model (landscape.models.ZOO, e.g. 'Carmon2019Unlabeled')"
        )
    if activation is not None:
        make_activation(activation)  # validate early, with the list of names
    shape = _data_shape(dataset)
    if shape is not None:
        for what, given, implied in (("in_shape", in_shape, shape[0]),
                                     ("num_classes", num_classes, shape[1])):  # fmt: skip
            if (
                given is not None
                and (tuple(int(s) for s in given) if what == "in_shape" else int(given))
                != implied
            ):
                raise ValueError(
                    f"{what}={given} contradicts dataset={dataset!r}, whose images "
                    f"give {what}={implied}; drop {what} (dataset= sets it) or pass "
                    "the dataset your data comes from"
                )
        in_shape, num_classes = shape
    num_classes = 10 if num_classes is None else num_classes
    in_shape = (1, 28, 28) if in_shape is None else in_shape
    num_classes = _whole(num_classes, "num_classes")
    width = _finite_number(width, "width (a factor on the widths)")
    if not width > 0:
        raise ValueError(f"width must be > 0 (a factor on the widths), got {width}")
    if isinstance(in_shape, (str, bytes)) or not isinstance(in_shape, Sequence):
        raise ValueError(
            f"in_shape must be a list of sizes such as [1, 28, 28], got {in_shape!r}"
        )
    in_shape = tuple(_whole(s, "every size of in_shape") for s in in_shape)
    norm = _normalize(in_shape, mean, std, dataset)
    options = dict(kw) if activation is None else {**kw, "activation": activation}
    try:
        model = _REGISTRY[key](
            num_classes=num_classes,
            in_shape=in_shape,
            norm=norm,
            width=width,
            **options,
        )
    except (TypeError, ValueError) as err:
        if kw:
            raise ValueError(
                f"bad options {kw} for model {key!r} ({err}) - see the docstring of "
                f"landscape.models for the options of {key!r}"
            ) from None
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


def _finite_number(v: Any, name: str) -> float:
    """A finite float (not a bool, not a string), else a ValueError naming it."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ValueError(f"{name} must be a number, got {v!r}")
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v!r}")
    return float(v) if not isinstance(v, numbers.Integral) else int(v)


def _whole(v: Any, name: str) -> int:
    """A whole number >= 1 (``10`` or ``10.0``), else a ValueError naming it."""
    x = _finite_number(v, name)
    if x != int(x) or x < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {v!r}")
    return int(x)


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

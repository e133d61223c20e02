"""A small registry of well-known published robust models (the RobustBench zoo).

Each :class:`ZooEntry` names the architecture (a :func:`landscape.models.build` name
and its options), the input normalisation the model was trained with, the threat
model, and the clean and AutoAttack accuracies RobustBench reports for it (its public
``model_info/<dataset>/<threat>/<name>.json``, in percent). The weights are not
here: download the file (``ZooEntry.download_url``; RobustBench hosts it on Google
Drive) and load it with :func:`landscape.models.load_published`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["ZooEntry", "ZOO", "zoo_entry", "is_zoo_name"]

CIFAR10_DM = ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))
CIFAR100_DM = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
CIFAR100_RICE = (
    (0.5070751592371323, 0.48654887331495095, 0.4409178433670343),
    (0.2673342858792401, 0.2564384629170883, 0.27615047132568404),
)
ENGSTROM_CIFAR = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
NONE = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))

_SHAPES = {"cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "imagenet": (3, 224, 224)}
_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One published model: how to build it and what RobustBench reports for it.

    Attributes:
        name: RobustBench's model name (``"Carmon2019Unlabeled"``).
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet"``.
        threat_model: ``"Linf"`` or ``"L2"`` (RobustBench's spelling).
        eps: the threat model's radius (``8/255``, ``0.5``, ``4/255``, ...).
        arch: the :func:`landscape.models.build` name of the architecture.
        arch_kwargs: its options (depth, widen_factor, activation, ...).
        mean: per-channel input mean the model normalises with (inside the model).
        std: per-channel input std.
        clean_acc: reported clean accuracy on the test set, in percent.
        autoattack_acc: reported AutoAttack accuracy at ``eps``, in percent.
        architecture: the architecture as the paper names it.
        paper: link to the paper (or code).
        gdrive_id: Google Drive id of RobustBench's copy of the weights.
        preprocessing: RobustBench's test-time preprocessing (``"none"`` for CIFAR,
            ``"Res256Crop224"`` or ``"Crop288"`` for ImageNet).
    """

    name: str
    dataset: str
    threat_model: str
    eps: float
    arch: str
    arch_kwargs: dict[str, Any]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    clean_acc: float
    autoattack_acc: float
    architecture: str
    paper: str
    gdrive_id: str = ""
    preprocessing: str = "none"

    @property
    def key(self) -> str:
        """The qualified name ``dataset/threat_model/name`` (unique)."""
        return f"{self.dataset}/{self.threat_model}/{self.name}"

    @property
    def norm(self) -> str:
        """The attack norm in this package's vocabulary (``"linf"`` or ``"l2"``)."""
        return self.threat_model.lower()

    @property
    def num_classes(self) -> int:
        """Number of classes of the entry's dataset."""
        return _CLASSES[self.dataset]

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """Input shape ``(C, H, W)`` the model takes."""
        return _SHAPES[self.dataset]

    @property
    def download_url(self) -> str:
        """Where RobustBench's copy of the weights is (empty when it has none)."""
        if not self.gdrive_id:
            return ""
        return f"https://drive.google.com/uc?id={self.gdrive_id}"


def _e(
    name: str,
    dataset: str,
    threat: str,
    eps: float,
    arch: str,
    kw: dict[str, Any],
    stats: tuple[tuple[float, ...], tuple[float, ...]],
    clean: float,
    aa: float,
    architecture: str,
    paper: str,
    gdrive_id: str,
    preprocessing: str = "none",
) -> ZooEntry:
    return ZooEntry(
        name=name,
        dataset=dataset,
        threat_model=threat,
        eps=eps,
        arch=arch,
        arch_kwargs=kw,
        mean=stats[0],
        std=stats[1],
        clean_acc=clean,
        autoattack_acc=aa,
        architecture=architecture,
        paper=paper,
        gdrive_id=gdrive_id,
        preprocessing=preprocessing,
    )


_WRN_28_10 = {"depth": 28, "widen_factor": 10}
_WRN_34_10 = {"depth": 34, "widen_factor": 10}
_WRN_34_20 = {"depth": 34, "widen_factor": 20}
_DM_28_10 = {"depth": 28, "widen_factor": 10, "activation": "silu"}
_DM_70_16 = {"depth": 70, "widen_factor": 16, "activation": "silu"}
_R50_CIFAR = {"block": "bottleneck", "num_blocks": (3, 4, 6, 3)}
_WONG_PREACT = {"final_bn": False, "shortcut_from": "input"}
_RICE_PREACT = {"final_bn": True, "shortcut_from": "activation"}
_E8 = 8 / 255
_E4 = 4 / 255
_GOWAL = "https://arxiv.org/abs/2010.03593"
_REBUFFI = "https://arxiv.org/abs/2103.01946"
_WANG = "https://arxiv.org/abs/2302.04638"
_RICE = "https://arxiv.org/abs/2002.11569"
_WONG = "https://arxiv.org/abs/2001.03994"
_ROBUSTNESS = "https://github.com/MadryLab/robustness"
_RB = "https://github.com/RobustBench/robustbench/"

# Numbers: RobustBench model_info JSON files (clean_acc, autoattack_acc, eps).
_ENTRIES = [
    # ---- CIFAR-10, Linf
    _e("Standard", "cifar10", "Linf", _E8, "wide_resnet", _WRN_28_10, NONE,
       94.78, 0.0, "WideResNet-28-10", _RB, "1t98aEuzeTL8P7Kpd5DIrCoCL21BNZUhC"),
    _e("Carmon2019Unlabeled", "cifar10", "Linf", _E8, "wide_resnet", _WRN_28_10,
       NONE, 89.69, 59.53, "WideResNet-28-10", "https://arxiv.org/abs/1905.13736",
       "15tUx-gkZMYx7BfEOw1GY5OKC-jECIsPQ"),
    _e("Zhang2019Theoretically", "cifar10", "Linf", 0.031, "wide_resnet",
       _WRN_34_10, NONE, 84.92, 53.08, "WideResNet-34-10",
       "https://arxiv.org/abs/1901.08573", "1hPz9QQwyM7QSuWu-ANG_uXR-29xtL8t_"),
    _e("Rice2020Overfitting", "cifar10", "Linf", _E8, "wide_resnet", _WRN_34_20,
       CIFAR10_DM, 85.34, 53.42, "WideResNet-34-20", _RICE,
       "1vC_Twazji7lBjeMQvAD9uEQxi9Nx2oG-"),
    _e("Gowal2020Uncovering_28_10_extra", "cifar10", "Linf", _E8, "dm_wide_resnet",
       _DM_28_10, CIFAR10_DM, 89.48, 62.80, "WideResNet-28-10", _GOWAL,
       "1MBAWGxiZxKt-GfqEqtLcXcd3tAxPhvV2"),
    _e("Gowal2020Uncovering_70_16_extra", "cifar10", "Linf", _E8, "dm_wide_resnet",
       _DM_70_16, CIFAR10_DM, 91.10, 65.88, "WideResNet-70-16", _GOWAL,
       "1GxryYj_Or-VCDca0wgiFLz4ssXSZXQoJ"),
    _e("Rebuffi2021Fixing_70_16_cutmix_extra", "cifar10", "Linf", _E8,
       "dm_wide_resnet", _DM_70_16, CIFAR10_DM, 92.23, 66.58, "WideResNet-70-16",
       _REBUFFI, "1qKDTp6IJ1BUXZaRtbYuo_t0tuDl_4mLg"),
    _e("Rebuffi2021Fixing_R18_ddpm", "cifar10", "Linf", _E8, "dm_preact_resnet",
       {"depth": 18, "activation": "silu"}, CIFAR10_DM, 83.53, 56.66,
       "PreActResNet-18", _REBUFFI, "1--dxE66AsgBSUsuK2sXCTrsYUV9B5f95"),
    _e("Wang2023Better_WRN-28-10", "cifar10", "Linf", _E8, "dm_wide_resnet",
       _DM_28_10, CIFAR10_DM, 92.44, 67.31, "WideResNet-28-10", _WANG,
       "1-6MYKJdECDVGaWjj6GgqvaT95BGKhUvI"),
    _e("Wong2020Fast", "cifar10", "Linf", _E8, "cifar_preact_resnet", _WONG_PREACT,
       CIFAR10_DM, 83.34, 43.21, "PreActResNet-18", _WONG,
       "1Re--_lf3jCEw9bnQqGkjw3J7v2tSZKrv"),
    _e("Engstrom2019Robustness", "cifar10", "Linf", _E8, "cifar_resnet", _R50_CIFAR,
       ENGSTROM_CIFAR, 87.03, 49.25, "ResNet-50", _ROBUSTNESS,
       "1etqmQsksNIWBvBQ4r8ZFk_3FJlLWr8Rr"),
    # ---- CIFAR-10, L2
    _e("Standard", "cifar10", "L2", 0.5, "wide_resnet", _WRN_28_10, NONE,
       94.78, 0.0, "WideResNet-28-10", _RB, "1t98aEuzeTL8P7Kpd5DIrCoCL21BNZUhC"),
    _e("Engstrom2019Robustness", "cifar10", "L2", 0.5, "cifar_resnet", _R50_CIFAR,
       ENGSTROM_CIFAR, 90.83, 69.24, "ResNet-50", _ROBUSTNESS,
       "1O8rGa6xOUIRwQ-M4ESrCjzknby8TM2ZE"),
    _e("Rice2020Overfitting", "cifar10", "L2", 0.5, "cifar_preact_resnet",
       _RICE_PREACT, CIFAR10_DM, 88.67, 67.68, "PreActResNet-18", _RICE,
       "1jo-31utiYNBVzLM0NxUEWz0teo3Z0xa7"),
    _e("Rebuffi2021Fixing_70_16_cutmix_extra", "cifar10", "L2", 0.5,
       "dm_wide_resnet", _DM_70_16, CIFAR10_DM, 95.74, 82.32, "WideResNet-70-16",
       _REBUFFI, "1JX82BDVBNO-Ffa2J37EuB8C-aFCbz708"),
    _e("Wang2023Better_WRN-28-10", "cifar10", "L2", 0.5, "dm_wide_resnet",
       _DM_28_10, CIFAR10_DM, 95.16, 83.68, "WideResNet-28-10", _WANG,
       "1-fwKiJXEqHHUngt8wKsNnHuD4vAPvPXC"),
    # ---- CIFAR-100, Linf
    _e("Rice2020Overfitting", "cifar100", "Linf", _E8, "cifar_preact_resnet",
       _RICE_PREACT, CIFAR100_RICE, 53.83, 18.95, "PreActResNet-18", _RICE,
       "1XXNZn3fZBOkD1aqNL1cvcD8zZDccyAZ6"),
    _e("Gowal2020Uncovering_extra", "cifar100", "Linf", _E8, "dm_wide_resnet",
       _DM_70_16, CIFAR100_DM, 69.15, 36.88, "WideResNet-70-16", _GOWAL,
       "1LQBdwO2b391mg7VKcP6I0HIOpC6O83gn"),
    _e("Rebuffi2021Fixing_70_16_cutmix_ddpm", "cifar100", "Linf", _E8,
       "dm_wide_resnet", _DM_70_16, CIFAR100_DM, 63.56, 34.64, "WideResNet-70-16",
       _REBUFFI, "1-GkVLo9QaRjCJl-by67xda1ySVhYxsLV"),
    _e("Wang2023Better_WRN-28-10", "cifar100", "Linf", _E8, "dm_wide_resnet",
       _DM_28_10, CIFAR100_DM, 72.58, 38.83, "WideResNet-28-10", _WANG,
       "1-jOu3wKWyw0XnBCXDGR32xn8Bw9GTJgh"),
    # ---- ImageNet, Linf (torchvision ResNet-50 behind RobustBench's normalize_model)
    _e("Salman2020Do_R50", "imagenet", "Linf", _E4, "resnet50", {}, IMAGENET,
       64.02, 34.96, "ResNet-50", "https://arxiv.org/abs/2007.08489",
       "1TmT5oGa1UvVjM3d-XeSj_XmKqBNRUg8r", "Res256Crop224"),
    _e("Engstrom2019Robustness", "imagenet", "Linf", _E4, "resnet50", {}, IMAGENET,
       62.56, 29.22, "ResNet-50", _ROBUSTNESS, "1T2Fvi1eCJTeAOEzrH_4TAIwO8HTOYVyn",
       "Res256Crop224"),
    _e("Wong2020Fast", "imagenet", "Linf", _E4, "resnet50", {}, IMAGENET,
       55.62, 26.24, "ResNet-50", _WONG, "1deM2ZNS5tf3S_-eRURJi-IlvUL8WJQ_w",
       "Crop288"),
    _e("Standard_R50", "imagenet", "Linf", _E4, "resnet50", {}, IMAGENET,
       76.52, 0.0, "ResNet-50", _RB, "", "Res256Crop224"),
]  # fmt: skip

#: The registry: qualified name ``dataset/threat_model/name`` -> :class:`ZooEntry`.
ZOO: dict[str, ZooEntry] = {e.key: e for e in _ENTRIES}

_DATASET_OF = {
    "cifar10-jpeg": "cifar10",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
}


def _zoo_dataset(dataset: str | None) -> str | None:
    if dataset is None:
        return None
    d = dataset.lower().replace("_", "-")
    return _DATASET_OF.get(d, d)


def is_zoo_name(name: str) -> bool:
    """Whether ``name`` names a registry entry (plain or ``dataset/threat/name``).

    Example:
        >>> is_zoo_name("Carmon2019Unlabeled"), is_zoo_name("resnet18")
        (True, False)
    """
    low = str(name).lower()
    return any(low in (e.name.lower(), e.key.lower()) for e in _ENTRIES)


def zoo_entry(
    name: str, *, dataset: str | None = None, threat_model: str | None = None
) -> ZooEntry:
    """The registry entry called ``name`` (case-insensitive).

    A name that several entries share (``"Standard"``, ``"Rice2020Overfitting"``) is
    narrowed by ``dataset`` and ``threat_model``, then by RobustBench's defaults
    (CIFAR-10, then ``Linf``); ``"cifar100/Linf/Rice2020Overfitting"`` names one
    entry directly.

    Raises:
        ValueError: no entry of that name (the message lists them), or none for the
            given dataset / threat model (the message says which exist).

    Example:
        >>> e = zoo_entry("Rice2020Overfitting", dataset="cifar100")
        >>> e.key, e.arch, e.num_classes
        ('cifar100/Linf/Rice2020Overfitting', 'cifar_preact_resnet', 100)
    """
    low = str(name).lower()
    found = [e for e in _ENTRIES if low in (e.name.lower(), e.key.lower())]
    if not found:
        names = sorted({e.name for e in _ENTRIES})
        raise ValueError(f"unknown zoo model {name!r}; known: {', '.join(names)}")
    ds = _zoo_dataset(dataset)
    if ds is not None:
        if not any(e.dataset == ds for e in found):
            have = ", ".join(e.key for e in found)
            raise ValueError(
                f"zoo model {name!r} is not a {dataset} model (entries: {have}); "
                f"use the dataset it was trained on"
            )
        found = [e for e in found if e.dataset == ds]
    if threat_model is not None:
        tm = {"linf": "Linf", "l2": "L2"}.get(str(threat_model).lower())
        if not any(e.threat_model == tm for e in found):
            have = ", ".join(e.key for e in found)
            raise ValueError(
                f"zoo model {name!r} has no {threat_model} entry (entries: {have})"
            )
        found = [e for e in found if e.threat_model == tm]
    for default in (("dataset", "cifar10"), ("threat_model", "Linf")):
        if len(found) > 1 and any(getattr(e, default[0]) == default[1] for e in found):
            found = [e for e in found if getattr(e, default[0]) == default[1]]
    return found[0]

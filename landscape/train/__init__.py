"""Adversarial training: schedules, metrics, checkpoints, exact resume, end-of-period
ensembles and data-parallel (DDP) training.

- :func:`adversarial_train` trains a model in place and returns a :class:`TrainResult`.
- :class:`TrainConfig` holds every option, as plain nested dataclasses: the science
  settings as its fields (the training ``attack`` is an attack value of
  :mod:`landscape.attacks`, ``None`` for standard training; a ``loss_fn`` from
  :data:`LOSSES` or a callable; the :class:`DataRecord` of the data) and the
  :class:`Runtime` settings in ``runtime``. :data:`PRESETS`: the paper's settings
  from its released code (``mnist-lenet``, ``cifar10-vgg16``, ``cifar10-resnet18``;
  :func:`cifar10_periodic` makes a CIFAR-10 one periodic) and ``madry-mnist``.
- :func:`augment` / :func:`crop_flip`: the training-data augmentation of
  ``TrainConfig.augment`` (seeded per epoch and batch, so resume stays exact).
- :func:`load_run` reads a run's metrics back; its models load with
  :func:`landscape.checkpoints.load_model` (``ensemble=True``: the end-of-period
  :class:`~landscape.checkpoints.Ensemble`) and
  :func:`~landscape.checkpoints.load_members`.
- ``python -m landscape.train PRESET [--smoke] [overrides]`` is the command-line tool.

Example:
    >>> import torch
    >>> from landscape import attacks
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.rand(64, 1, 4, 4, generator=g); y = (x.mean((1, 2, 3)) > 0.5).long()
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    >>> cfg = TrainConfig(epochs=2, batch_size=16, lr=0.5,
    ...                   attack=attacks.PGD(eps=0.05, steps=2),
    ...                   runtime=Runtime(eval_num=0, co_check_num=0))
    >>> res = adversarial_train(model, (x, y), cfg)
    >>> res.metrics["epoch"].tolist()
    [1, 2]
"""

from ._augment import augment, crop_flip
from ._config import (
    AUGMENTATIONS,
    LOSSES,
    PRESETS,
    DataRecord,
    Runtime,
    TrainConfig,
    cifar10_periodic,
    paper_eps_schedule,
    preset,
    smoke,
)
from ._loop import DivergedError, adversarial_train
from ._run import RunFolderError, TrainResult, load_run

__all__ = [
    "adversarial_train",
    "TrainConfig",
    "Runtime",
    "DataRecord",
    "LOSSES",
    "TrainResult",
    "PRESETS",
    "preset",
    "smoke",
    "cifar10_periodic",
    "paper_eps_schedule",
    "augment",
    "crop_flip",
    "AUGMENTATIONS",
    "load_run",
    "DivergedError",
    "RunFolderError",
]

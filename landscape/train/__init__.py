"""Adversarial training: schedules, metrics, checkpoints, exact resume, end-of-period
ensembles and data-parallel (DDP) training.

- :func:`adversarial_train` trains a model in place and returns a :class:`TrainResult`.
- :class:`TrainConfig` holds every option: the :class:`Science` settings (with a
  :class:`DatasetSpec` and a ``loss_fn`` from :data:`LOSSES` or a callable) and the
  :class:`Runtime` settings; flat keywords still work. :data:`PRESETS`: the paper's settings
  (``mnist-lenet``, ``cifar10-vgg16``, ``cifar10-resnet18``, ``madry-mnist``).
- :func:`load_run` reads a run's metrics back; its models load with
  :func:`landscape.checkpoints.load_model` (``ensemble=True``: the end-of-period
  :class:`~landscape.checkpoints.Ensemble`) and
  :func:`~landscape.checkpoints.load_members`.
- ``python -m landscape.train PRESET [--smoke] [overrides]`` is the command-line tool.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.rand(64, 1, 4, 4, generator=g); y = (x.mean((1, 2, 3)) > 0.5).long()
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    >>> cfg = TrainConfig(epochs=2, batch_size=16, lr=0.5, eps=0.05, steps=2,
    ...                   eval_num=0, co_check_num=0)
    >>> res = adversarial_train(model, (x, y), cfg)
    >>> res.metrics["epoch"].tolist()
    [1, 2]
"""

from ._config import (
    LOSSES,
    PRESETS,
    DatasetSpec,
    Runtime,
    Science,
    TrainConfig,
    preset,
    smoke,
)
from ._loop import DivergedError, TensorBatches, adversarial_train
from ._run import RunFolderError, TrainResult, load_run

__all__ = [
    "adversarial_train",
    "TrainConfig",
    "Science",
    "Runtime",
    "DatasetSpec",
    "LOSSES",
    "TrainResult",
    "PRESETS",
    "preset",
    "smoke",
    "load_run",
    "TensorBatches",
    "DivergedError",
    "RunFolderError",
]

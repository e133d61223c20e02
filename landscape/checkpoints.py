"""Trained models back from disk: checkpoint files, run folders and their ensembles.

The one loader of a trained model, for the library, the figures and every
command-line tool:

- :func:`load_model`: the final model of a run folder of
  :func:`landscape.train.adversarial_train` (``final.pt`` + ``config.json``), the
  model in a checkpoint file (``{"model": state_dict, "config": {...}}`` as the
  trainer writes it, or ``{"model": state_dict, "arch": NAME, "arch_kwargs": {...}}``,
  or a bare state dict with ``arch``), or with ``ensemble=True`` the run's
  end-of-period models as one :class:`Ensemble` (Liu et al., Sec. 5);
- :func:`load_members`: the end-of-period models one by one;
- :func:`run_config`: the configuration a run folder or checkpoint records, and
  :func:`recorded_dataset`, the dataset in it; :func:`published_config`, what a
  published (zoo) model's registry entry stands in for it.

A downloaded checkpoint of the public zoo loads with ``arch=`` its zoo name
(``"Carmon2019Unlabeled"``): every layout :func:`landscape.models.fit_state_dict`
knows (``state_dict`` / ``model_state_dict`` wrappers, ``module.`` prefixes,
RobustBench's and the ``robustness`` library's files) maps onto the rebuilt model.

The architecture is rebuilt by name (:func:`landscape.models.build`) from the
checkpoint or the run's ``config.json``, or given as ``model=`` (an instance whose
weights are replaced) or ``arch=``. Files load with ``weights_only=True`` only
(:func:`landscape.io.load_torch`); a whole pickled ``nn.Module`` loads only with
``trust=True``. A bad path, file or architecture is a ``FileNotFoundError`` or
``ValueError`` whose message says what to do; weights with NaN or inf are refused
(:class:`landscape.io.NonFiniteError`, naming the file and the tensors).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _finite, io

__all__ = [
    "Ensemble",
    "load_model",
    "load_members",
    "run_config",
    "recorded_dataset",
    "published_config",
    "FINAL",
    "period_checkpoint",
]

FINAL = "final.pt"  # the final model in a run folder


def period_checkpoint(epoch: int) -> str:
    """The file name of the end-of-period checkpoint after ``epoch`` in a run folder.

    Example:
        >>> period_checkpoint(12)
        'ckpt_epoch0012.pt'
    """
    return f"ckpt_epoch{int(epoch):04d}.pt"


class Ensemble(nn.Module):
    """Average of the members' softmax outputs, as one model.

    ``forward`` returns ``log(mean_i softmax(f_i(x)))``: valid logits (their softmax is
    the averaged probabilities), so cross-entropy, accuracy and every attack treat the
    ensemble as a single classifier.

    Example:
        >>> a, b = nn.Linear(3, 4), nn.Linear(3, 4)
        >>> x = torch.randn(5, 3)
        >>> p = (a(x).softmax(1) + b(x).softmax(1)) / 2
        >>> torch.allclose(Ensemble([a, b])(x).softmax(1), p, atol=1e-6)
        True
    """

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("an Ensemble needs at least one model")
        self.members = nn.ModuleList(models)

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, x: Tensor) -> Tensor:
        logp = torch.stack([F.log_softmax(m(x), dim=1) for m in self.members])
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))


def _read_config(path: Path) -> dict:
    obj = io.read_json(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold a JSON object - restore or delete it")
    return obj


def _files(path: Path, members: bool) -> tuple[list[Path], dict]:
    """The checkpoint files to load and the run's ``config.json`` (or ``{}``)."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist - pass a checkpoint file (.pt) or a run folder of "
            "python -m landscape.train"
        )
    if not path.is_dir():
        if members:
            raise ValueError(
                f"the end-of-period models need a run folder, got the file {path} - "
                f"pass the run folder {path.parent}"
            )
        side = path.parent / "config.json"
        return [path], _read_config(side) if side.exists() else {}
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"{path} is not a run folder (no config.json) - pass a run folder of "
            "python -m landscape.train or a checkpoint file"
        )
    cfg = _read_config(path / "config.json")
    if members:
        files = sorted(path.glob(period_checkpoint(0).replace("0000", "*")))
        if not files:
            raise FileNotFoundError(
                f"{path} has no end-of-period checkpoints (ckpt_epoch*.pt) - train "
                "with several periods (--periods N), or load the final model"
            )
        return files, cfg
    if not (path / FINAL).exists():
        raise FileNotFoundError(
            f"{path} has no {FINAL}: the run has not finished - resume it with the "
            "same python -m landscape.train command, or pass one of its checkpoints "
            "(ckpt_epoch*.pt)"
        )
    return [path / FINAL], cfg


def _fit(net: nn.Module, obj: Any, file: Path, name: str) -> nn.Module:
    """Load ``obj``'s weights into ``net`` through :func:`landscape.models.fit_state_dict`
    (this package's checkpoints and the published zoo's file layouts)."""
    from . import models

    try:
        models.fit_state_dict(
            net, obj, source=str(file), target=f"the architecture {name}"
        )
    except models.CheckpointMismatchError as err:
        raise ValueError(
            f"{err} - pass the architecture the checkpoint was trained with (arch= and "
            "arch_kwargs=, --arch and --arch-kwargs, or model=; a published model by "
            "its zoo name, see landscape.models.ZOO)"
        ) from None
    return net


def _template(
    model: nn.Module | None,
    arch: str | None,
    arch_kwargs: dict | None,
    first: dict,
    cfg: dict,
    file: Path,
) -> tuple[nn.Module, str]:
    """The architecture to load the weights into, and its name for messages."""
    if model is not None:
        return model, type(model).__name__
    from . import models

    name = arch or first.get("arch") or cfg.get("model")
    if not name:
        raise ValueError(
            f"{file} records no architecture (no 'arch' or 'config' in it, no "
            "config.json beside it) - pass arch=NAME (--arch NAME; one of "
            f"{', '.join(models.available())}, or a zoo model such as "
            "Carmon2019Unlabeled) or model=an instance"
        )
    base = {}
    if arch is None:
        base = (
            first.get("arch_kwargs") if first.get("arch") else cfg.get("model_kwargs")
        )
    return models.build(name, **{**(base or {}), **(arch_kwargs or {})}), name


def _load(
    path: str | os.PathLike,
    model: nn.Module | None,
    *,
    arch: str | None,
    arch_kwargs: dict | None,
    members: bool,
    device: torch.device | str,
    trust: bool,
) -> list[nn.Module]:
    """The models of ``path`` (the final one, or the end-of-period ``members``)."""
    files, cfg = _files(Path(path), members)
    objs = [io.load_torch(f, map_location="cpu", trust=trust) for f in files]
    net = io.module_in(objs[0])
    if net is not None and not members:  # only reachable with trust=True
        _finite.check_model(net, name=f"the model in {files[0]}")
        return [net.to(device).eval()]
    first = objs[0]
    if not isinstance(first, dict):
        raise ValueError(
            f"{files[0]} holds a {type(first).__name__}, not a model checkpoint - "
            "save {'model': model.state_dict(), 'arch': NAME} with torch.save"
        )
    if isinstance(first.get("config"), dict):
        cfg = {**cfg, **first["config"]}
    template, name = _template(model, arch, arch_kwargs, first, cfg, files[0])
    nets = [_fit(copy.deepcopy(template), o, f, name) for o, f in zip(objs, files)]
    for n, f in zip(nets, files):
        _finite.check_model(n, name=f"the model in {f}")
    return [n.to(device).eval() for n in nets]


def load_model(
    path: str | os.PathLike,
    model: nn.Module | None = None,
    *,
    arch: str | None = None,
    arch_kwargs: dict | None = None,
    ensemble: bool = False,
    device: torch.device | str = "cpu",
    trust: bool = False,
) -> nn.Module:
    """A trained model, in eval mode on ``device``.

    Args:
        path: a run folder (its ``final.pt``) or a checkpoint file.
        model: an instance of the architecture (its weights are replaced; it is not
            modified); default: rebuild it by name.
        arch: a :func:`landscape.models.build` name, overriding the recorded one
            (needed for a bare state dict).
        arch_kwargs: keyword arguments of ``build``, on top of the recorded ones
            (``arch`` given: instead of them).
        ensemble: the run folder's end-of-period models as one :class:`Ensemble`.
        device: where to put the model.
        trust: load a file that holds pickled objects (a whole ``nn.Module``); only
            for files you trust (unpickling can run code).

    Raises:
        FileNotFoundError: no such path, no ``config.json`` in a folder, no
            ``final.pt`` (an unfinished run) or no end-of-period checkpoint.
        ValueError: no or a wrong architecture, a file that holds no model.
        landscape.io.UntrustedFileError: pickled objects and ``trust`` is False.

    Example:
        >>> import tempfile, pathlib
        >>> from landscape import models
        >>> net = models.build("mlp", in_shape=(4,), num_classes=3, hidden=(5,))
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.pt"
        >>> kw = {"in_shape": [4], "num_classes": 3, "hidden": [5]}
        >>> torch.save({"model": net.state_dict(), "arch": "mlp", "arch_kwargs": kw}, p)
        >>> x = torch.randn(2, 4)
        >>> torch.equal(load_model(p)(x), net.eval()(x))
        True
    """
    nets = _load(
        path,
        model,
        arch=arch,
        arch_kwargs=arch_kwargs,
        members=ensemble,
        device=device,
        trust=trust,
    )
    return Ensemble(nets).to(device).eval() if ensemble else nets[0]


def load_members(
    path: str | os.PathLike,
    model: nn.Module | None = None,
    *,
    arch: str | None = None,
    arch_kwargs: dict | None = None,
    device: torch.device | str = "cpu",
    trust: bool = False,
) -> list[nn.Module]:
    """The end-of-period models of a run folder (one per period, in order), in eval
    mode; the arguments are those of :func:`load_model`.

    Raises:
        FileNotFoundError: the run has no end-of-period checkpoint yet.
    """
    return _load(
        path,
        model,
        arch=arch,
        arch_kwargs=arch_kwargs,
        members=True,
        device=device,
        trust=trust,
    )


def run_config(path: str | os.PathLike, *, trust: bool = False) -> dict:
    """The configuration a run folder or checkpoint records (``{}`` when none).

    A run folder: its ``config.json``. A checkpoint file: the ``config.json`` beside
    it, updated by the ``"config"`` the file holds (the trainer writes it into every
    checkpoint).

    Raises:
        FileNotFoundError: no such path.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist - check the path")
    if path.is_dir():
        side = path / "config.json"
        return _read_config(side) if side.exists() else {}
    side = path.parent / "config.json"
    cfg = _read_config(side) if side.exists() else {}
    obj = io.load_torch(path, map_location="cpu", trust=trust)
    if isinstance(obj, dict) and isinstance(obj.get("config"), dict):
        cfg = {**cfg, **obj["config"]}
    return cfg


def recorded_dataset(config: dict) -> str | None:
    """The dataset name a run's configuration records (None when it records none):
    its ``dataset`` (a name or ``{"name": ...}``), else the ``dataset`` of its model's
    keyword arguments.

    Example:
        >>> recorded_dataset({"dataset": {"name": "mnist", "num_train": 500}})
        'mnist'
        >>> recorded_dataset({"model": "vgg16", "model_kwargs": {"dataset": "cifar10"}})
        'cifar10'
    """
    d = config.get("dataset")
    name = d.get("name") if isinstance(d, dict) else d
    if not name:
        name = (config.get("model_kwargs") or {}).get("dataset")
    return str(name) if name else None


def published_config(model: nn.Module) -> dict:
    """What a published model's registry entry says in place of a run configuration:
    ``{"dataset", "eps", "norm", "zoo"}`` for a model built from a zoo name
    (:data:`landscape.models.ZOO`), ``{}`` for any other model.

    Example:
        >>> from landscape import models
        >>> with torch.device("meta"):
        ...     net = models.build("Wong2020Fast")
        >>> published_config(net)["norm"], round(published_config(net)["eps"] * 255)
        ('linf', 8)
    """
    entry = getattr(model, "zoo_entry", None)
    if entry is None:
        return {}
    return {
        "dataset": entry.dataset,
        "eps": entry.eps,
        "norm": entry.norm,
        "zoo": entry.key,
    }


def model_and_batches(args: Any) -> tuple[nn.Module, list[tuple[Tensor, Tensor]]]:
    """The start of the command lines that analyse a checkpoint (``hessian``,
    ``sharpness``): the model of ``args.checkpoint`` and the batches of the dataset
    it records (or ``--dataset``), chosen with ``--seed``, on ``--device``. ``args``
    holds the flags of ``_cli.add_checkpoint``, ``_cli.add_data`` and
    ``_cli.add_common``."""
    from . import _cli, data

    model = load_model(args.checkpoint, **_cli.checkpoint_options(args))
    recorded = recorded_dataset(
        run_config(args.checkpoint, trust=args.trust_checkpoint)
    )
    x, y = data.load_dataset(**_cli.data_options(args, recorded, seed=args.seed))
    batches = data.batches(x, y, batch_size=args.batch_size, device=_cli.device(args))
    return model, list(batches)

"""Load a published checkpoint the user has downloaded into one of our models.

The files of the public zoo come in several layouts; :func:`state_dict_of` finds the
state dict and :func:`fit_state_dict` maps its names onto the model:

* a bare state dict, or one under ``"state_dict"``, ``"model_state_dict"``,
  ``"model"``, ``"net"`` or ``"state"`` (also nested once);
* ``module.`` prefixes of ``nn.DataParallel`` / DDP (on every key, possibly twice);
* RobustBench's ``normalize_model`` wrapper (``normalize.mean`` of shape
  ``(1, 3, 1, 1)`` and the network under ``model.``) and the MadryLab ``robustness``
  library's ``AttackerModel`` (``model.*``, a duplicate under ``attacker.*``,
  ``normalizer.new_mean`` / ``new_std``);
* normalisation buffers called ``mu`` / ``sigma`` (RobustBench's wrappers) or
  ``mean`` / ``std`` become ``normalize.mean`` / ``normalize.std``; a file without
  them keeps the model's normalisation (the registry entry's statistics);
* keys the published forward pass never reads (``sub_block1.*`` of the TRADES Wide
  ResNet) are dropped, ``num_batches_tracked`` counters missing from old files are
  filled in.

Whatever still does not fit is one line that names the missing and unexpected keys
and the shape mismatches (:class:`CheckpointMismatchError`). Files are read with
``torch.load(..., weights_only=True)`` (:func:`landscape.io.load_torch`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .. import _finite, io

__all__ = [
    "CheckpointMismatchError",
    "fit_state_dict",
    "load_published",
    "state_dict_of",
]

_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "state")
_NORM_NAMES = {
    "mu": "normalize.mean",
    "sigma": "normalize.std",
    "mean": "normalize.mean",
    "std": "normalize.std",
    "normalizer.new_mean": "normalize.mean",
    "normalizer.new_std": "normalize.std",
    "normalize.mean": "normalize.mean",
    "normalize.std": "normalize.std",
}


class CheckpointMismatchError(ValueError):
    """A checkpoint's weights do not fit the model (one line: what and where)."""


def _is_state(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def state_dict_of(obj: Any, *, source: str = "the checkpoint") -> dict[str, Tensor]:
    """The state dict inside a loaded checkpoint (see the module docstring).

    Raises:
        CheckpointMismatchError: no dict of tensors found (the message lists the
            top-level keys).

    Example:
        >>> sd = {"w": torch.zeros(1)}
        >>> state_dict_of({"state_dict": sd, "epoch": 3}) == sd
        True
    """
    for _ in range(3):
        if _is_state(obj):
            return dict(obj)
        if not isinstance(obj, Mapping):
            break
        inner = next(
            (obj[k] for k in _WRAPPERS if isinstance(obj.get(k), Mapping)), None
        )
        if inner is None:
            break
        obj = inner
    what = (
        f"a dict with keys {sorted(map(str, obj))[:8]}"
        if isinstance(obj, Mapping)
        else f"a {type(obj).__name__}"
    )
    raise CheckpointMismatchError(
        f"{source} holds {what}, not a state dict (a dict of tensors, bare or under "
        f"one of {', '.join(repr(k) for k in _WRAPPERS)})"
    )


def _strip(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {
        k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()
    }


def _map_names(
    state: dict[str, Tensor], expected: dict[str, Tensor], unused: tuple[str, ...]
) -> tuple[dict[str, Tensor], list[str]]:
    """Rename the file's keys to the model's; returns (state, notes on what changed)."""
    notes: list[str] = []
    while state and all(k.startswith("module.") for k in state):
        state = _strip(state, "module.")
        notes.append("stripped 'module.'")
    own_model_prefix = any(k.startswith("model.") for k in expected)
    body = [k for k in state if k not in _NORM_NAMES and not k.startswith("attacker.")]
    if not own_model_prefix and body and all(k.startswith("model.") for k in body):
        dropped = [k for k in state if k.startswith("attacker.")]
        state = {k: v for k, v in state.items() if not k.startswith("attacker.")}
        state = _strip(state, "model.")
        notes.append("stripped 'model.'")
        if dropped:
            notes.append(f"dropped {len(dropped)} 'attacker.*' duplicates")
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        target = _NORM_NAMES.get(k)
        if target is not None and target in expected and k not in expected:
            if v.numel() == expected[target].numel():
                v = v.reshape(expected[target].shape)
            out[target] = v
            notes.append(f"{k} -> {target}")
        elif target == k and k in expected and v.numel() == expected[k].numel():
            out[k] = v.reshape(expected[k].shape)
        else:
            out[k] = v
    if unused:
        gone = [k for k in out if k.startswith(unused)]
        if gone:
            out = {k: v for k, v in out.items() if not k.startswith(unused)}
            notes.append(
                f"dropped {len(gone)} keys the forward pass never reads "
                f"({', '.join(sorted({k.split('.')[0] for k in gone}))})"
            )
    return out, notes


def _names(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def fit_state_dict(
    model: nn.Module,
    checkpoint: Any,
    *,
    source: str = "the checkpoint",
    target: str | None = None,
) -> list[str]:
    """Load a checkpoint's weights into ``model``, mapping the published layouts.

    Args:
        model: the architecture to fill (e.g. from :func:`landscape.models.build`).
        checkpoint: a loaded checkpoint: a state dict or a dict holding one.
        source: how messages name the checkpoint (its path).
        target: how messages name the model (default: its build name).

    Returns:
        Notes on the mapping (prefixes stripped, names renamed, keys dropped or
        filled), for the record.

    Raises:
        CheckpointMismatchError: keys missing or unexpected, or shapes that differ,
            all named in one line.
    """
    state = state_dict_of(checkpoint, source=source)
    expected = model.state_dict()
    unused = tuple(getattr(model, "unused_keys", ()))
    state, notes = _map_names(state, expected, unused)
    filled = []
    for k in expected:
        if k not in state and (
            k.endswith("num_batches_tracked")
            or k in ("normalize.mean", "normalize.std")
        ):
            state[k] = expected[k]
            filled.append(k)
    if filled:
        notes.append(f"kept the model's {_names(filled, 2)}")
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} in the file, {tuple(expected[k].shape)} in "
        "the model"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys ({_names(missing)})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys ({_names(unexpected)})")
        if shapes:
            parts.append(f"shapes differ: {_names(shapes, 2)}")
        arch = target or (getattr(model, "build_config", None) or {}).get(
            "name", type(model).__name__
        )
        raise CheckpointMismatchError(
            f"the weights in {source} do not fit {arch}: {'; '.join(parts)}"
        )
    model.load_state_dict(state, strict=True)
    return notes


def load_published(
    path: str | os.PathLike,
    name: str,
    *,
    dataset: str | None = None,
    threat_model: str | None = None,
    trust: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    **options: Any,
) -> nn.Module:
    """Build the architecture of ``name`` and load a downloaded checkpoint into it.

    Args:
        path: the checkpoint file (any layout of the module docstring).
        name: a zoo entry (``"Carmon2019Unlabeled"``, ``"cifar100/Linf/
            Rice2020Overfitting"``; see :data:`landscape.models.ZOO`) or a
            :func:`landscape.models.build` name (``"wide_resnet"``).
        dataset: narrows a zoo name shared by several data sets; for a build name,
            sets the input shape, class count and normalisation.
        threat_model: narrows a zoo name (``"Linf"`` / ``"L2"``).
        trust: load files that hold pickled objects besides tensors (runs their
            code; only for files you trust).
        device: where the model goes (default CPU).
        dtype: the model's floating dtype (default float32); ``torch.float64`` keeps
            the values of a float64 file exactly.
        **options: :func:`landscape.models.build` options for a build name.

    Returns:
        The model in eval mode; ``model.checkpoint_notes`` records how the file was
        mapped and ``model.zoo_entry`` the registry entry (None for a build name).

    Raises:
        ValueError: unknown name, or a dataset the entry was not trained on.
        CheckpointMismatchError: the weights do not fit (one line naming the keys).
        landscape.io.UntrustedFileError: the file holds pickled objects.

    Example:
        >>> import tempfile, pathlib
        >>> from landscape import models
        >>> m = models.build("cifar_preact_resnet", dataset="cifar10")
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "ckpt.pt"
        >>> sd = {"module." + k: v for k, v in m.state_dict().items()
        ...       if not k.startswith("normalize.")}
        >>> torch.save({"state_dict": sd, "epoch": 200}, p)
        >>> m2 = load_published(p, "Wong2020Fast")
        >>> m2.checkpoint_notes[0], m2.zoo_entry.autoattack_acc
        ("stripped 'module.'", 43.21)
    """
    from . import build, is_zoo_name, zoo_entry

    entry = None
    if is_zoo_name(name):
        entry = zoo_entry(name, dataset=dataset, threat_model=threat_model)
        model = build(entry.key, **options)
    else:
        model = build(name, dataset=dataset, **options)
    if dtype is not None:
        model = model.to(dtype)
    obj = io.load_torch(path, map_location="cpu", trust=trust)
    module = io.module_in(obj)
    if module is not None:  # a whole pickled model (trust=True): take its weights
        obj = module.state_dict()
    notes = fit_state_dict(model, obj, source=str(path))
    _finite.check_model(model, name=f"the model in {path}")  # as every loader
    model.checkpoint_notes = notes
    model.zoo_entry = entry
    return model.to(device or "cpu").eval()

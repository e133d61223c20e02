"""Results that save and load, provenance, and atomic file writes.

Every result of an analysis is a dataclass deriving from :class:`Result`. ``save(path)``
writes the array fields to ``path`` (``.npz``) and everything else (scalars, strings,
lists, ``meta``) to a JSON sidecar ``path.json``; both are written atomically, so a run
killed mid-write never leaves a half file that a later ``load`` would trust.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import io as _io
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "Result",
    "atomic_write",
    "atomic_save_torch",
    "load_torch",
    "module_in",
    "provenance",
    "git_commit",
    "CorruptFileError",
]

T = TypeVar("T", bound="Result")


class CorruptFileError(RuntimeError):
    """A file exists but cannot be trusted (truncated, wrong format or checksum)."""


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file next to ``path``; rename it over ``path`` only on success.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
        >>> with atomic_write(p, "w") as f:
        ...     _ = f.write("hello")
        >>> p.read_text()
        'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a partial file behind."""
    buf = _io.BytesIO()
    torch.save(obj, buf)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())


def load_torch(path: str | os.PathLike, *, map_location: Any = "cpu") -> Any:
    """``torch.load`` with a clear error for missing or corrupt checkpoints."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # pickle/zip errors from truncated files
        raise CorruptFileError(
            f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {err}); "
            "delete it and resume from an earlier checkpoint or retrain"
        ) from err


def module_in(obj: Any) -> torch.nn.Module | None:
    """The ``nn.Module`` a loaded checkpoint holds: the object itself or its ``"model"``
    entry; None for a state dict or anything else (the CLIs' shared first check).

    Example:
        >>> lin = torch.nn.Linear(2, 1)
        >>> module_in(lin) is lin, module_in({"model": lin}) is lin
        (True, True)
        >>> module_in(lin.state_dict()) is None
        True
    """
    if isinstance(obj, torch.nn.Module):
        return obj
    if isinstance(obj, dict) and isinstance(obj.get("model"), torch.nn.Module):
        return obj["model"]
    return None


def git_commit() -> str | None:
    """Commit hash of the checkout holding this package, or None outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(**extra: Any) -> dict[str, Any]:
    """Where and when a result was made: versions, device, git commit, timestamp."""
    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": git_commit(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, torch.Tensor):
        return _jsonable(v.detach().cpu().numpy())
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (torch.device, torch.dtype, Path)):
        return str(v)
    return repr(v)


def _is_array(v: Any) -> bool:
    return isinstance(v, (np.ndarray, torch.Tensor))


@dataclasses.dataclass(frozen=True)
class Result:
    """Base class: a frozen dataclass whose arrays go to ``.npz`` and the rest to JSON.

    Subclasses declare their fields; array fields hold ``np.ndarray`` (tensors are
    converted on save), a ``dict[str, ndarray]`` field is stored key by key. A field
    named ``meta`` (a dict) receives provenance on save.

    Example:
        >>> import dataclasses, tempfile, pathlib
        >>> @dataclasses.dataclass(frozen=True)
        ... class Pair(Result):
        ...     a: np.ndarray
        ...     label: str = ""
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "pair.npz"
        >>> _ = Pair(np.arange(3.0), "x").save(p)
        >>> q = Pair.load(p)
        >>> q.a.tolist(), q.label
        ([0.0, 1.0, 2.0], 'x')
    """

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def save(self, path: str | os.PathLike) -> Path:
        """Write arrays to ``path`` (.npz) and the rest to ``path + '.json'``, atomically."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        arrays: dict[str, np.ndarray] = {}
        rest: dict[str, Any] = {}
        for name, v in self.to_dict().items():
            if _is_array(v):
                arrays[name] = _np(v)
            elif isinstance(v, dict) and v and all(_is_array(x) for x in v.values()):
                for k, x in v.items():
                    arrays[f"{name}/{k}"] = _np(x)
                rest[name] = {"__array_dict__": list(map(str, v.keys()))}
            elif v is None:
                rest[name] = None
            else:
                rest[name] = _jsonable(v)
        meta = dict(rest.get("meta") or {})
        meta.setdefault("provenance", provenance())
        if "meta" in rest:
            rest["meta"] = _jsonable(meta)
        rest["__class__"] = type(self).__name__
        buf = _io.BytesIO()
        np.savez_compressed(buf, **arrays)
        with atomic_write(path, "wb") as f:
            f.write(buf.getvalue())
        with atomic_write(str(path) + ".json", "w") as f:
            json.dump(rest, f, indent=1)
        return path

    @classmethod
    def load(cls: type[T], path: str | os.PathLike) -> T:
        """Read a result written by :meth:`save`, with clear errors for bad files."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        side = Path(str(path) + ".json")
        for p in (path, side):
            if not p.exists():
                raise FileNotFoundError(f"{p} not found: was the result saved there?")
        try:
            with open(side) as f:
                rest = json.load(f)
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as err:
            raise CorruptFileError(f"result {path} cannot be read: {err}") from err
        stored = rest.pop("__class__", cls.__name__)
        if stored != cls.__name__:
            raise TypeError(f"{path} holds a {stored}, not a {cls.__name__}")
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in arrays:
                kwargs[f.name] = arrays[f.name]
            elif (
                isinstance(rest.get(f.name), dict) and "__array_dict__" in rest[f.name]
            ):
                kwargs[f.name] = {
                    k: arrays[f"{f.name}/{k}"] for k in rest[f.name]["__array_dict__"]
                }
            elif f.name in rest:
                kwargs[f.name] = rest[f.name]
        return cls(**kwargs)


def _np(v: Any) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu()
        if v.dtype == torch.bfloat16:
            v = v.float()
        return v.numpy()
    return np.asarray(v)

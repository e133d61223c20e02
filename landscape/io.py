"""Results that save and load, provenance, safe loading, atomic writes and locks.

Every result of an analysis is a dataclass deriving from :class:`Result`. ``save(path)``
writes one self-contained ``.npz``: the array fields plus everything else (scalars,
strings, lists, ``meta``) as a JSON string inside it. A readable copy of that JSON goes
to the sidecar ``path.json``; ``load`` trusts only the ``.npz``, so a run killed between
the two writes never pairs new arrays with old labels.

Files are written atomically (a temporary file renamed into place) with the mode the
umask gives (0644 under the usual umask 022). Torch files are read with
``torch.load(..., weights_only=True)`` only: a file that holds pickled Python objects
(a whole ``nn.Module``, or anything that could run code) is refused with
:class:`UntrustedFileError` unless the caller passes ``trust=True``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import io as _io
import json
import os
import platform
import re
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "Result",
    "read_result",
    "cached",
    "atomic_write",
    "atomic_save_torch",
    "load_torch",
    "read_json",
    "lock",
    "clean_stale_temps",
    "module_in",
    "provenance",
    "git_commit",
    "CorruptFileError",
    "UntrustedFileError",
    "LockedError",
]

T = TypeVar("T", bound="Result")


class CorruptFileError(RuntimeError):
    """A file exists but cannot be trusted (truncated, wrong format or checksum)."""


class UntrustedFileError(ValueError):
    """A torch file holds pickled Python objects, which could run code when loaded."""


class LockedError(RuntimeError):
    """Another live process holds the lock on a run folder or state file."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; honour the umask
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


# numpy arrays, scalars and dtypes (e.g. numpy's RNG state): these globals only build
# arrays, they cannot run code, so weights_only loading may rebuild them.
_NUMPY_GLOBALS = [
    np._core.multiarray._reconstruct,
    np._core.multiarray.scalar,
    np.ndarray,
    np.dtype,
    *{type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDGUSV"},
]


def _unsafe_globals(path: Path, err: Exception) -> list[str]:
    """Names of the Python objects a torch file would import to unpickle."""
    try:
        names = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # legacy (non-zip) format: the refusal names the first one
        names = re.findall(r"GLOBAL ([\w.]+)", str(err))
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in _NUMPY_GLOBALS}
    return [n for n in names if n not in allowed and not n.startswith("numpy.")]


def _untrusted_message(path: Path, names: list[str]) -> str:
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    is_module = any(n.startswith(("torch.nn.modules.", "landscape.")) for n in names)
    what = "a whole pickled nn.Module" if is_module else "pickled Python objects"
    return (
        f"{path} holds {what} ({shown}), which could run code when loaded, so it was "
        "refused - if you trust the file, convert it once to a state dict: "
        f"m = torch.load('{path}', weights_only=False); torch.save({{'model': "
        "m.state_dict(), 'arch': NAME, 'arch_kwargs': {...}}, 'weights.pt') and load "
        "weights.pt (the model is rebuilt by name with landscape.models.build(NAME)); "
        "or pass --trust-checkpoint (trust=True in Python) to load it as it is"
    )


def load_torch(
    path: str | os.PathLike, *, map_location: Any = "cpu", trust: bool = False
) -> Any:
    """``torch.load(..., weights_only=True)`` with clear errors.

    Tensors, plain Python types (dicts, lists, numbers, strings) and numpy arrays load;
    a file that holds other pickled objects (a whole ``nn.Module``, or a payload that
    runs code) is refused, because unpickling it could run arbitrary code.

    Args:
        path: the torch file.
        map_location: as for ``torch.load``.
        trust: load pickled objects anyway (``weights_only=False``), with a warning.
            Only for files you made yourself or trust.

    Raises:
        FileNotFoundError: no such file.
        UntrustedFileError: the file holds pickled objects and ``trust`` is False.
        CorruptFileError: the file is truncated or not a torch file.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "lin.pt"
        >>> torch.save(torch.nn.Linear(2, 1), p)
        >>> try:
        ...     load_torch(p)
        ... except UntrustedFileError as err:
        ...     print("refused:", "a whole pickled nn.Module" in str(err))
        refused: True
        >>> torch.save(torch.nn.Linear(2, 1).state_dict(), p)
        >>> sorted(load_torch(p))
        ['bias', 'weight']
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a torch file")
    try:
        with torch.serialization.safe_globals(_NUMPY_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle/zip errors from truncated or unsafe files
        unsafe = _unsafe_globals(path, err)
        if not unsafe:
            raise CorruptFileError(
                f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:200]}) - delete it and resume from an "
                "earlier checkpoint or retrain"
            ) from err
        if not trust:
            raise UntrustedFileError(_untrusted_message(path, unsafe)) from None
    warnings.warn(
        f"loading {path} with weights_only=False (trust=True): its pickled objects "
        f"({', '.join(unsafe[:3])}) run code; do this only for files you trust",
        stacklevel=2,
    )
    return torch.load(path, map_location=map_location, weights_only=False)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or truncated file is an error that names it.

    Raises:
        FileNotFoundError: no such file.
        CorruptFileError: the file is not valid JSON (e.g. truncated by a kill).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise CorruptFileError(
            f"{path} is truncated or not valid JSON ({err}) - restore or delete it"
        ) from err


def clean_stale_temps(folder: str | os.PathLike, prefix: str = "") -> list[Path]:
    """Delete the temporary files (``.NAME.XXXX.tmp``) that killed writes left behind.

    Call it while holding :func:`lock` on the folder (then no live writer owns them).
    ``prefix`` limits it to the temporary files of one target (``".name."``).

    Returns:
        The deleted paths.
    """
    removed = []
    for p in Path(folder).glob(f"{prefix or '.'}*.tmp"):
        if p.name.startswith(".") and p.is_file():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


def _holder(lock_path: Path) -> str:
    try:
        return lock_path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on a run folder or a state file while the block runs.

    The lock is ``FOLDER/.lock`` (an existing folder) or ``.NAME.lock`` beside a file
    (present or not), locked
    with ``flock`` and holding ``pid@host``. The kernel drops the lock when the
    holder dies, so the lock of a killed (dead) process is simply taken over. On
    entry the stale temporary files of killed writes are deleted.

    Raises:
        LockedError: another live process holds the lock; the message names its pid.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> with lock(d):
        ...     try:
        ...         with lock(d):
        ...             pass
        ...     except LockedError as err:
        ...         print(f"process {os.getpid()}@" in str(err))
        True
    """
    import fcntl

    path = Path(path)
    is_dir = path.is_dir()
    if is_dir:
        lock_path = path / ".lock"
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = path.parent / f".{path.name}.lock"
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(
                f"{path} is in use by process {_holder(lock_path)} (lock {lock_path}) "
                "- wait for that process to finish or stop it; two processes must not "
                "write one run or state file"
            ) from None
        try:  # the holder may have removed the file between our open and flock
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}@{socket.gethostname()}\n".encode())
        clean_stale_temps(
            path.parent if not is_dir else path, "" if is_dir else f".{path.name}."
        )
        yield lock_path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        os.close(fd)


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
        text = json.dumps(rest, indent=1)
        arrays[_META] = np.array(text)  # the npz alone is the result (one unit)
        buf = _io.BytesIO()
        np.savez_compressed(buf, **arrays)
        with atomic_write(path, "wb") as f:
            f.write(buf.getvalue())
        with atomic_write(str(path) + ".json", "w") as f:  # a readable copy
            f.write(text)
        return path

    @classmethod
    def load(cls: type[T], path: str | os.PathLike) -> T:
        """Read a result written by :meth:`save`, with clear errors for bad files.

        Everything is read from the ``.npz``; the ``.json`` sidecar is only a readable
        copy.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        arrays, rest = read_result(path)
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


_META = "__meta__"


def cached(
    path: str | os.PathLike,
    compute: Any,
    cls: type[T],
    *,
    recompute: bool = False,
) -> T:
    """The result saved at ``path``, else ``compute()`` saved there (the one cache).

    A file that cannot be read (truncated, another class) is recomputed with a
    warning; the save is atomic, so an interrupted run resumes from the last result.

    Args:
        path: the ``.npz`` file.
        compute: ``compute() -> cls`` instance, run only when needed.
        cls: the :class:`Result` class stored there.
        recompute: ignore a saved result.

    Example:
        >>> import tempfile, pathlib
        >>> @dataclasses.dataclass(frozen=True)
        ... class Num(Result):
        ...     value: float
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "n.npz"
        >>> cached(p, lambda: Num(1.0), Num).value, cached(p, lambda: Num(2.0), Num).value
        (1.0, 1.0)
    """
    path = Path(path)
    if path.exists() and not recompute:
        try:
            return cls.load(path)
        except (CorruptFileError, TypeError, KeyError) as err:
            warnings.warn(f"{path} unreadable ({err}); recomputing", stacklevel=2)
    res = compute()
    res.save(path)
    return res


def read_result(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and the metadata (``__class__``, scalars, ``meta``) of a saved result.

    Raises:
        FileNotFoundError: no such file.
        CorruptFileError: the ``.npz`` is truncated or not a result (no metadata
            inside); the message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: was the result saved there?")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as err:
        raise CorruptFileError(
            f"result {path} cannot be read ({type(err).__name__}: {err}) - it is "
            "truncated or not a saved result; recompute it"
        ) from err
    if _META not in arrays:
        raise CorruptFileError(
            f"result {path} holds no metadata ({_META}): it is not a file written by "
            "a landscape result's save() - recompute it"
        )
    try:
        rest = json.loads(str(arrays.pop(_META)))
    except ValueError as err:
        raise CorruptFileError(f"result {path} has corrupt metadata: {err}") from err
    if not isinstance(rest, dict):
        raise CorruptFileError(f"result {path}: metadata is not a JSON object")
    return arrays, rest


def _np(v: Any) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu()
        if v.dtype == torch.bfloat16:
            v = v.float()
        return v.numpy()
    return np.asarray(v)

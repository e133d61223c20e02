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
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from ._finite import NonFiniteError

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
    "NonFiniteError",
    "NotWritableError",
    "check_writable",
    "Interrupted",
    "stop_signals",
    "stop_requested",
    "deferred_signals",
    "KINDS",
    "plain",
]

T = TypeVar("T", bound="Result")


class CorruptFileError(RuntimeError):
    """A file exists but cannot be trusted (truncated, wrong format or checksum)."""


class LockedError(RuntimeError):
    """Another live process holds the lock on a run folder or state file."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGTERM or SIGINT (Ctrl-C), after its current atomic write.

    Attributes:
        signal: ``"SIGTERM"`` or ``"SIGINT"``.
        where: where the run stopped and what it saved, set by the code that knows
            (``"at epoch 3, batch 5/10 (its state is in run/resume.pt)"``).
        resumable: whether rerunning the same call continues from there.
    """

    def __init__(self, signal: str, where: str = "", resumable: bool = False) -> None:
        self.signal, self.where, self.resumable = signal, where, resumable
        super().__init__(self.describe())

    @property
    def exit_status(self) -> int:
        """``128 + signal number`` (143 for SIGTERM, 130 for SIGINT)."""
        import signal

        return 128 + int(getattr(signal, self.signal))

    def describe(self, rerun: str = "rerun the same call") -> str:
        """The message; ``rerun`` says how to run the work again."""
        where = f" {self.where}" if self.where else ""
        if self.resumable:
            return f"stopped by {self.signal}{where} - {rerun} to resume"
        return f"stopped by {self.signal}{where} - nothing was saved: {rerun} to start over"


_STOP_SIGNALS = ("SIGTERM", "SIGINT")
_signals = {"installed": 0, "deferred": 0, "pending": None}


def _on_signal(signum: int, frame: Any) -> None:
    import signal

    name = signal.Signals(signum).name
    if _signals["deferred"]:
        _signals["pending"] = name  # raised when the write (or the step) is done
        return
    raise Interrupted(name)


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT raise :class:`Interrupted` instead of
    killing the process, never in the middle of an atomic write (nor of a step that
    :func:`deferred_signals` protects): a signal that arrives there is raised when
    the write is complete. Every command-line tool and :func:`landscape.train.
    adversarial_train` run under it; nested uses and threads other than the main
    thread change nothing. The previous handlers are restored on exit."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _signals["installed"]:
        yield
        return
    old = {n: signal.getsignal(getattr(signal, n)) for n in _STOP_SIGNALS}
    for n in _STOP_SIGNALS:
        signal.signal(getattr(signal, n), _on_signal)
    _signals["installed"] = 1
    try:
        yield
    finally:
        _signals["installed"] = 0
        _signals["pending"] = None
        for n, h in old.items():
            signal.signal(getattr(signal, n), h)


def stop_requested() -> str | None:
    """The signal (``"SIGTERM"``) that arrived during :func:`deferred_signals`, else
    None: a loop that defers signals polls it at a safe point, saves and raises
    :class:`Interrupted`."""
    return _signals["pending"] if _signals["installed"] else None


@contextlib.contextmanager
def deferred_signals(*, raise_after: bool = True) -> Iterator[None]:
    """Hold SIGTERM / SIGINT (under :func:`stop_signals`) until the block is done;
    then raise :class:`Interrupted` for a signal that arrived (``raise_after``) or
    leave it to :func:`stop_requested`. An exception in the block keeps the signal
    pending."""
    _signals["deferred"] += 1
    try:
        yield
    finally:
        _signals["deferred"] -= 1
    pending = _signals["pending"]
    if raise_after and pending and not _signals["deferred"]:
        _signals["pending"] = None
        raise Interrupted(pending)


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
    with deferred_signals():  # a SIGTERM is raised once the file is in place
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
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


class NotWritableError(OSError):
    """An output path cannot be written (checked before the work starts)."""


def _link_problem(p: Path) -> str | None:
    """Why the symlink ``p`` leads nowhere (None when it leads to something)."""
    import errno

    try:
        os.stat(p)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return f"{p} is a symlink that points back to itself (a loop)"
        return f"{p} is a symlink to {os.readlink(p)}, which does not exist"
    return None


def check_writable(
    path: str | os.PathLike, *, folder: bool = False, what: str = "output"
) -> Path:
    """Check, before any work, that ``path`` (a file, or a folder with ``folder``)
    can be written; creates nothing.

    Refused: a path whose part is a file (``out.txt/s.npz``), a dangling or looping
    symlink, a folder where a file is wanted (and the reverse), and a folder that
    does not accept a new file (read-only, another owner's, a read-only file system:
    tried by creating and removing a temporary file in the nearest existing folder).

    Args:
        path: the output file or folder.
        folder: ``path`` is a folder (a run folder, an output folder).
        what: how messages name it (``"--out"``, ``"run_dir"``).

    Returns:
        ``Path(path)``.

    Raises:
        NotWritableError: the message names the path and what to do.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> (d / "f.txt").write_text("x")
        1
        >>> check_writable(d / "new" / "s.npz") == d / "new" / "s.npz"
        True
        >>> check_writable(d / "f.txt" / "s.npz")
        Traceback (most recent call last):
        ...
        landscape.io.NotWritableError: output: ...f.txt is a file, so the output ...s.npz cannot be created in it - choose another path
    """
    path = Path(path)
    fix = "choose another path"
    if path.is_symlink() and (problem := _link_problem(path)):
        raise NotWritableError(f"{what} {problem} - remove the link or {fix}")
    if path.exists():
        if folder and not path.is_dir():
            raise NotWritableError(
                f"{what} {path} is a file, not a folder - pass a folder (it is "
                "created if missing)"
            )
        if not folder and path.is_dir():
            raise NotWritableError(f"{what} {path} is a folder, not a file - {fix}")
    near = path if folder and path.is_dir() else path.parent
    while not os.path.lexists(near) and near != near.parent:
        near = near.parent
    if near.is_symlink() and (problem := _link_problem(near)):
        raise NotWritableError(
            f"{problem}, so the {what} {path} cannot be created - {fix}"
        )
    if not near.is_dir():
        raise NotWritableError(
            f"{what}: {near} is a file, so the {what} {path} cannot be created in it "
            f"- {fix}"
        )
    try:
        # named like a killed write's leftover: the next lock of the folder cleans it
        fd, tmp = tempfile.mkstemp(dir=near, prefix=".write-check.", suffix=".tmp")
    except OSError as err:
        raise NotWritableError(
            f"{what} {path} cannot be written: the folder {near} does not accept new "
            f"files ({err.strerror}) - {fix}, or make {near} writable"
        ) from None
    os.close(fd)
    os.unlink(tmp)
    return path


def atomic_save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a partial file behind."""
    buf = _io.BytesIO()
    torch.save(obj, buf)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())


# numpy arrays, scalars and dtypes (e.g. numpy's RNG state): these globals only build
# arrays, they cannot run code, so weights_only loading may rebuild them (under their
# names of numpy 2 and of numpy 1, ``numpy.core``, which older files carry).
_NUMPY_GLOBALS: list = [
    np._core.multiarray._reconstruct,
    np._core.multiarray.scalar,
    (np._core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"),
    np.ndarray,
    np.dtype,
    *{type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDGUSV"},
]
_ALLOWED = {
    g[1] if isinstance(g, tuple) else f"{g.__module__}.{g.__qualname__}"
    for g in _NUMPY_GLOBALS
}
# torch's legacy (non-zip) files start with this number, pickled
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# what a file read by load_torch is, for messages: a model checkpoint (the model
# conversion recipe applies), the state file of a resumable tool (written by the tool
# itself: only tensors and plain types), or tensors saved by the user
KINDS = ("checkpoint", "state", "tensors")
_NOUN = {"checkpoint": "checkpoint", "state": "state file", "tensors": "file"}


def plain(text: str) -> str:
    """``text`` without terminal colour codes, on one line (for error messages).

    Example:
        >>> plain("Weights only load failed. \\x1b[1mdo this\\x1b[0m.\\n  next")
        'Weights only load failed. do this. next'
    """
    return " ".join(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).split())


def _first_line(err: BaseException) -> str:
    """What went wrong, from an error's message: torch's unpickler reason (not its
    advice to load with ``weights_only=False``), else the first non-empty line,
    plain (the error's type when empty)."""
    lines = [plain(ln) for ln in str(err).splitlines() if plain(ln)]
    for i, ln in enumerate(lines):
        if "WeightsUnpickler error:" in ln:
            rest = ln.split("WeightsUnpickler error:", 1)[1].strip()
            return (rest or (lines[i + 1] if i + 1 < len(lines) else ""))[:200]
    return lines[0][:200] if lines else type(err).__name__


def _pickle_kind(path: Path) -> str:
    """``"zip"`` (torch's format), ``"legacy"`` (torch's old format), ``"pickle"`` (a
    plain pickle, not written by ``torch.save``) or ``"other"``; read without
    unpickling anything."""
    import pickletools
    import zipfile

    with open(path, "rb") as f:
        if f.read(2) == b"PK" or zipfile.is_zipfile(path):  # a zip, maybe cut short
            return "zip"
    try:
        with open(path, "rb") as f:
            args = [arg for _, arg, _ in pickletools.genops(f)]
    except Exception:  # not a pickle, or one cut short
        return "other"
    return "legacy" if _LEGACY_MAGIC in args else "pickle"


def _unsafe_globals(path: Path, err: Exception | None) -> list[str]:
    """Names of the Python objects a torch file would import to unpickle (those that
    :data:`_NUMPY_GLOBALS` does not allow)."""
    try:
        names = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # legacy (non-zip) format: the refusal names the first one
        names = re.findall(r"GLOBAL ([\w.]+)", str(err))
    return [n for n in names if n not in _ALLOWED]


class UntrustedFileError(ValueError):
    """A torch file holds pickled Python objects, which could run code when loaded.

    ``str(err)`` is the message for a Python caller; :meth:`describe` words it for a
    command-line tool (which offers ``--trust-checkpoint`` only where it has it).

    Attributes:
        path: the file.
        names: the objects it would import (empty for a plain pickle).
        kind: one of :data:`KINDS`: a ``"state"`` file is the tool's own and is never
            loaded with trust, a ``"checkpoint"`` may be converted to a state dict.
        plain_pickle: the file is a plain pickle, not a ``torch.save`` file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        names: list[str],
        *,
        kind: str = "checkpoint",
        plain_pickle: bool = False,
    ) -> None:
        self.path, self.names, self.kind = Path(path), list(names), kind
        self.plain_pickle = plain_pickle
        super().__init__(self.describe("trust=True"))

    def describe(self, trust: str | None) -> str:
        """The message, offering ``trust`` (``"trust=True"``, ``"--trust-checkpoint"``
        or None: the caller has no way to trust a file) as the way to load it anyway."""
        path, names = self.path, self.names
        if self.plain_pickle:
            what = "a plain Python pickle (not a torch.save file)"
        else:
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            module = any(
                n.startswith(("torch.nn.modules.", "landscape.")) for n in names
            )
            what = "a whole pickled nn.Module" if module else "pickled Python objects"
            what = f"{what} ({shown})"
        head = (
            f"{_NOUN[self.kind]} {path} holds {what}, which could run code when "
            "loaded, so it was refused"
        )
        if self.kind == "state":
            return (
                f"{head} - the tool writes its state files with tensors and plain "
                "types only, so this one is not its own: delete it to start that "
                "work over, or restore it from a backup"
            )
        read = (
            f"pickle.load(open('{path}', 'rb'))"
            if self.plain_pickle
            else f"torch.load('{path}', weights_only=False)"
        )
        if self.kind == "checkpoint":
            fixes = [
                f"if you trust the file, convert it once to a state dict: m = {read}; "
                "torch.save({'model': m.state_dict(), 'arch': NAME, 'arch_kwargs': "
                "{...}}, 'weights.pt') and load weights.pt (the model is rebuilt by "
                "name with landscape.models.build(NAME))"
            ]
        else:
            fixes = [
                f"if you trust the file, re-save what {read} returns as tensors, "
                "lists and dicts with torch.save"
            ]
        if trust is not None:
            fixes.append(f"pass {trust} to load it as it is")
        return f"{head} - " + "; or ".join(fixes)


def load_torch(
    path: str | os.PathLike,
    *,
    map_location: Any = "cpu",
    trust: bool = False,
    kind: str = "checkpoint",
) -> Any:
    """``torch.load(..., weights_only=True)`` with clear errors.

    Tensors, plain Python types (dicts, lists, numbers, strings) and numpy arrays load;
    a file that holds other pickled objects (a whole ``nn.Module``, or a payload that
    runs code) or that is a plain pickle is refused, because unpickling it could run
    arbitrary code.

    Args:
        path: the torch file.
        map_location: as for ``torch.load``.
        trust: load pickled objects anyway (``weights_only=False``; a plain pickle
            with ``pickle``), with a warning. Only for files you made yourself or
            trust; never for a ``"state"`` file.
        kind: what the file is, for messages: ``"checkpoint"`` (a model),
            ``"state"`` (the state file of a resumable tool) or ``"tensors"``.

    Raises:
        FileNotFoundError: no such file.
        UntrustedFileError: the file holds pickled objects and ``trust`` is False.
        CorruptFileError: the file is empty, truncated or not a torch file.

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
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    noun = _NOUN[kind]
    if not path.exists():
        raise FileNotFoundError(f"{noun} {path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a torch file")
    again = {
        "checkpoint": "delete it and resume from an earlier checkpoint or retrain",
        "state": "delete it to start that work over",
        "tensors": "re-create it with torch.save",
    }[kind]
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{noun} {path} is empty (0 bytes) - {again}")
    fmt = _pickle_kind(path)
    unsafe: list[str] = []
    if fmt == "pickle":
        if not trust or kind == "state":
            raise UntrustedFileError(path, [], kind=kind, plain_pickle=True)
    else:
        try:
            with torch.serialization.safe_globals(_NUMPY_GLOBALS):
                return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # pickle/zip errors from truncated or unsafe files
            unsafe = _unsafe_globals(path, err)
            if not unsafe:
                raise CorruptFileError(
                    f"{noun} {path} is corrupt or truncated ({type(err).__name__}: "
                    f"{_first_line(err)}) - {again}"
                ) from None
            if not trust or kind == "state":
                raise UntrustedFileError(path, unsafe, kind=kind) from None
    warnings.warn(
        f"loading {path} with weights_only=False (trust=True): its pickled objects "
        f"({', '.join(unsafe[:3]) or 'a plain pickle'}) run code; do this only for "
        "files you trust",
        stacklevel=2,
    )
    if fmt == "pickle":
        import pickle

        with open(path, "rb") as f:
            return pickle.load(f)
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


def _nonfinite(v: Any) -> str | None:
    """``"2 NaN and 0 inf of 9 values"`` when ``v`` (an array or a float) is not all
    finite, else None."""
    if isinstance(v, float):
        return None if np.isfinite(v) else repr(v)
    a = _np(v)
    if a.dtype.kind not in "fc" or np.isfinite(a).all():
        return None
    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    return f"{nan} NaN and {inf} inf of {a.size} values"


class _ShapeError(ValueError):
    pass


def _check_shapes(shapes: dict[str, str], arrays: dict[str, Any]) -> None:
    """Check ``arrays`` (field -> array, or dict of arrays) against ``shapes`` (field
    -> dimension names, see :class:`Result`); raises :class:`_ShapeError` naming the
    array."""
    dims: dict[str, int] = {}
    items = []
    for name, spec in shapes.items():
        v = arrays.get(name)
        if v is None:
            continue
        parts = (
            [(f"{name}/{k}", x) for k, x in v.items()]
            if isinstance(v, dict)
            else [(name, v)]
        )
        items += [(n, spec.split(), np.shape(x)) for n, x in parts]
    # optional dimensions ("Y?") are bound by the arrays that do not mark them so
    for n, tokens, shape in sorted(items, key=lambda it: any("?" in t for t in it[1])):
        want = [t for t in tokens if not t.endswith("?") or t[:-1] in dims]
        want = [t.rstrip("?") for t in want]
        rest = want[-1] == "..." if want else False
        if rest:
            want = want[:-1]
        if len(shape) < len(want) or (len(shape) != len(want) and not rest):
            raise _ShapeError(
                f"{n} has shape {shape} but must have {len(want)}"
                f"{'+' if rest else ''} dimensions ({' '.join(tokens)})"
            )
        for t, size in zip(want, shape):
            expected = int(t) if t.isdigit() else dims.setdefault(t, size)
            if size != expected:
                raise _ShapeError(
                    f"{n} has shape {shape}, but its dimension {t} must be {expected} "
                    f"(dimensions {' '.join(tokens)}, as the other arrays)"
                )


@dataclasses.dataclass(frozen=True)
class Result:
    """Base class: a frozen dataclass whose arrays go to ``.npz`` and the rest to JSON.

    Subclasses declare their fields; array fields hold ``np.ndarray`` (tensors are
    converted on save), a ``dict[str, ndarray]`` field is stored key by key. A field
    named ``meta`` (a dict) receives provenance on save.

    Two class-level tables, checked by :meth:`save` and :meth:`load` (the one check
    of every result):

    - ``SHAPES``: field -> its dimension names (``"E N"``): one name is one size
      across the arrays, a number is a fixed size, ``...`` any trailing dimensions,
      ``Y?`` a dimension present exactly when another array binds ``Y`` (a line has
      no ``ys``). A dict field's entry applies to each of its arrays.
    - ``NONFINITE``: field -> why NaN or inf may appear there (NaN padding, a missing
      entry). Every other array and float field must be finite: ``save`` refuses
      a result with NaN or inf (:class:`NonFiniteError`), ``load`` a file with one.

    Example:
        >>> import dataclasses, tempfile, pathlib
        >>> @dataclasses.dataclass(frozen=True)
        ... class Pair(Result):
        ...     SHAPES = {"a": "N", "b": "N 2"}
        ...     a: np.ndarray
        ...     b: np.ndarray
        ...     label: str = ""
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "pair.npz"
        >>> _ = Pair(np.arange(3.0), np.zeros((3, 2)), "x").save(p)
        >>> q = Pair.load(p)
        >>> q.a.tolist(), q.label
        ([0.0, 1.0, 2.0], 'x')
        >>> Pair(np.arange(3.0), np.zeros((4, 2))).save(p)
        Traceback (most recent call last):
        ...
        ValueError: cannot save the Pair: b has shape (4, 2), but its dimension N must be 3 ...
        >>> Pair(np.array([0.0, np.nan, 1.0]), np.zeros((3, 2))).save(p)
        Traceback (most recent call last):
        ...
        landscape._finite.NonFiniteError: cannot save the Pair: a holds 1 NaN and 0 inf ...
    """

    SHAPES: ClassVar[dict[str, str]] = {}
    NONFINITE: ClassVar[dict[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def _problem(self) -> tuple[type[Exception], str] | None:
        """What makes this result unfit to save or load (None when nothing)."""
        values = self.to_dict()
        try:
            _check_shapes(self.SHAPES, values)
        except _ShapeError as err:
            return ValueError, str(err)
        for name, v in values.items():
            if name == "meta" or name in self.NONFINITE:
                continue
            parts = (
                list(v.items())
                if isinstance(v, dict) and v and all(map(_is_array, v.values()))
                else [(None, v)]
            )
            for key, x in parts:
                if not (_is_array(x) or isinstance(x, float)):
                    continue
                bad = _nonfinite(x)
                if bad is not None:
                    where = name if key is None else f"{name}/{key}"
                    return NonFiniteError, f"{where} holds {bad}"
        return None

    def save(self, path: str | os.PathLike) -> Path:
        """Write arrays to ``path`` (.npz) and the rest to ``path + '.json'``, atomically.

        Raises:
            NonFiniteError: an array or number holds NaN or inf (outside ``NONFINITE``).
            ValueError: the arrays do not have the shapes ``SHAPES`` declares.
        """
        with deferred_signals():  # the .npz and its readable copy, both or neither
            return self._save(path)

    def _save(self, path: str | os.PathLike) -> Path:
        problem = self._problem()
        if problem is not None:
            kind, text = problem
            why = (
                "a result must be finite: the computation that made it went wrong, so "
                "nothing was saved"
                if kind is NonFiniteError
                else "the arrays must agree in shape (a bug in the code that built it)"
            )
            raise kind(f"cannot save the {type(self).__name__}: {text} - {why}")
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
                keys = rest[f.name]["__array_dict__"]
                gone = [k for k in keys if f"{f.name}/{k}" not in arrays]
                if gone:
                    raise CorruptFileError(
                        f"result {path} misses the array {f.name}/{gone[0]} of its "
                        f"{cls.__name__} - the file was altered; recompute it"
                    )
                kwargs[f.name] = {k: arrays[f"{f.name}/{k}"] for k in keys}
            elif f.name in rest:
                kwargs[f.name] = rest[f.name]
            elif (
                f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING
            ):
                raise CorruptFileError(
                    f"result {path} misses {f.name}, which every {cls.__name__} "
                    "holds - the file was altered or is not this result; recompute it"
                )
        try:
            result = cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise CorruptFileError(
                f"result {path} does not make a {cls.__name__} ({err}) - recompute it"
            ) from None
        problem = result._problem()
        if problem is not None:
            raise CorruptFileError(
                f"result {path} is not a valid {cls.__name__}: {problem[1]} - the "
                "file was altered or is damaged; recompute it"
            )
        return result


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

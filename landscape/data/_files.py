"""Readers for the standard dataset files: IDX (.gz), CIFAR python pickles, SVHN ``.mat``.

Every reader validates what it decodes (gzip integrity, magic numbers, sizes, checksums of
known files) and raises :class:`landscape.io.CorruptFileError` with the file name and what
to do, never returning garbage. Decoded arrays are cached in-process, keyed by path, size
and modification time, so repeated loads (e.g. in tests) are fast.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io as _io
import os
import pickle
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..io import CorruptFileError

__all__ = ["md5sum", "read_idx", "read_cifar_batches", "read_svhn_mat"]

T = TypeVar("T")


def md5sum(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex md5 digest of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _cached_per_file(
    maxsize: int,
) -> Callable[[Callable[[str, str | None], T]], Callable[[Path, str | None], T]]:
    """Cache a reader ``read(path, md5)`` per file (resolved path, size, modification
    time: a rewritten file is read again) and md5."""

    def deco(read: Callable[[str, str | None], T]) -> Callable[[Path, str | None], T]:
        @functools.lru_cache(maxsize=maxsize)
        def cached(path: str, size: int, mtime: int, md5: str | None) -> T:
            return read(path, md5)

        @functools.wraps(read)
        def by_path(path: Path, md5: str | None) -> T:
            return cached(*_stat_key(path), md5)

        return by_path

    return deco


def _check_md5(path: Path, raw: bytes, md5: str | None) -> None:
    if md5 is None:
        return
    got = hashlib.md5(raw).hexdigest()
    if got != md5:
        raise CorruptFileError(
            f"{path} has md5 {got}, expected {md5}: the file is corrupt or truncated. "
            f"Delete it and download it again (python -m landscape.data download "
            f"<name> --root <root>)"
        )


def _read_checked(
    path: str,
    md5: str | None,
    decode: Callable[[bytes], T],
    what: str,
    *,
    errors: tuple[type[BaseException], ...] = (Exception,),
    advice: str = "it is probably truncated: delete it and download it again",
) -> tuple[Path, T]:
    """The file's bytes, checked against ``md5``, decoded by ``decode``; a decoding
    error (one of ``errors``) is raised as a :class:`CorruptFileError` that says the
    file is not ``what`` and gives ``advice``."""
    p = Path(path)
    raw = p.read_bytes()
    _check_md5(p, raw, md5)
    try:
        return p, decode(raw)
    except errors as err:
        raise CorruptFileError(
            f"{p} is not {what} ({type(err).__name__}: {err}); {advice}"
        ) from err


# --------------------------------------------------------------------------- IDX


def read_idx(path: str | os.PathLike, *, md5: str | None = None) -> np.ndarray:
    """Decode an IDX file (``.gz`` compressed or raw) into a read-only uint8 array.

    Args:
        path: the ``*-idx?-ubyte[.gz]`` file.
        md5: expected md5 of the file as stored on disk (skip the check when None).

    Returns:
        A read-only ``np.uint8`` array shaped by the file's header (e.g. ``(N, 28, 28)``
        for images, ``(N,)`` for labels). Cached per (path, size, mtime).

    Raises:
        FileNotFoundError: the file does not exist.
        CorruptFileError: bad checksum, truncated gzip, wrong magic number, or a size
            that does not match the header.

    Example:
        >>> import gzip, tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "l.gz"
        >>> _ = p.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])))
        >>> read_idx(p).tolist()
        [7, 2, 1]
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    return _read_idx_file(path, md5)


@_cached_per_file(maxsize=16)
def _read_idx_file(path: str, md5: str | None) -> np.ndarray:
    p, raw = _read_checked(
        path,
        md5,
        lambda raw: gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw,
        "a valid gzip file",
        errors=(OSError, EOFError, zlib.error),
    )
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] == 0:
        raise CorruptFileError(
            f"{p} does not start with an unsigned-byte IDX magic number "
            f"(got {raw[:4].hex() or 'nothing'}, expected 000008xx): wrong or corrupt file"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptFileError(f"{p}: IDX header truncated")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != expected:
        raise CorruptFileError(
            f"{p}: header announces shape {dims} ({expected} bytes) but the file holds "
            f"{len(raw) - header} data bytes: truncated or corrupt file"
        )
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
    arr.flags.writeable = False
    return arr


# --------------------------------------------------------------------------- CIFAR


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only reconstructs numpy arrays (CIFAR batches need nothing else)."""

    _ALLOWED = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}

    def find_class(self, module: str, name: str):
        numpy_array = module.split(".")[0] == "numpy" and name in self._ALLOWED
        if numpy_array or (module, name) == ("_codecs", "encode"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


@_cached_per_file(maxsize=8)
def _read_cifar_file(path: str, md5: str | None) -> tuple[np.ndarray, np.ndarray]:
    p, d = _read_checked(
        path,
        md5,
        lambda raw: _ArrayUnpickler(_io.BytesIO(raw), encoding="bytes").load(),
        "a readable CIFAR python pickle",
        advice="delete it and download the dataset again",
    )
    if not isinstance(d, dict):
        raise CorruptFileError(f"{p}: expected a pickled dict, got {type(d).__name__}")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    label_key = "labels" if "labels" in d else "fine_labels"
    if "data" not in d or label_key not in d:
        raise CorruptFileError(
            f"{p}: CIFAR batch must hold 'data' and 'labels', found {sorted(d)}"
        )
    data = np.asarray(d["data"])
    labels = np.asarray(d[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise CorruptFileError(
            f"{p}: 'data' must be an N x 3072 uint8 array, got {data.shape} {data.dtype}"
        )
    if labels.shape != (data.shape[0],):
        raise CorruptFileError(
            f"{p}: {data.shape[0]} images but {labels.shape[0]} labels"
        )
    x = data.reshape(-1, 3, 32, 32)
    x.flags.writeable = False
    labels.flags.writeable = False
    return x, labels


CIFAR10_BATCHES = {
    "train": [f"data_batch_{i}" for i in range(1, 6)],
    "test": ["test_batch"],
}


def read_cifar_batches(
    folder: str | os.PathLike,
    split: str = "train",
    *,
    md5s: dict[str, str] | None = None,
    files: list[str] | tuple[str, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read CIFAR python pickle batches (CIFAR-10's ``data_batch_1..5`` or
    ``test_batch``; CIFAR-100's ``train`` or ``test`` with ``files=``, whose
    ``fine_labels`` are the labels).

    Args:
        folder: the ``cifar-10-batches-py`` (``cifar-100-python``) folder.
        split: ``"train"`` (the five data batches) or ``"test"``.
        md5s: expected md5 per batch file name (no check for names not in it).
        files: the batch files to read (default: CIFAR-10's files of ``split``).

    Returns:
        ``(x, y)``: uint8 array ``(N, 3, 32, 32)`` and int64 labels ``(N,)``.

    Raises:
        FileNotFoundError: a batch file is missing.
        CorruptFileError: unreadable pickle, wrong keys or shapes, bad checksum.
    """
    if split not in CIFAR10_BATCHES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = Path(folder)
    xs, ys = [], []
    for name in CIFAR10_BATCHES[split] if files is None else files:
        p = folder / name
        if not p.exists():
            raise FileNotFoundError(f"CIFAR batch {p} does not exist")
        x, y = _read_cifar_file(p, (md5s or {}).get(name))
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


# --------------------------------------------------------------------------- SVHN


def read_svhn_mat(
    path: str | os.PathLike, *, md5: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN ``*_32x32.mat`` file (MATLAB v5, read with ``scipy.io.loadmat``).

    The file holds ``X`` (32 x 32 x 3 x N uint8) and ``y`` (N x 1, digits 1..10 with
    10 meaning 0); digit ``d`` gets label ``d``.

    Returns:
        ``(x, y)``: uint8 ``(N, 3, 32, 32)`` and int64 labels ``(N,)`` in 0..9.

    Raises:
        FileNotFoundError: no such file.
        CorruptFileError: bad checksum, unreadable file, wrong fields or shapes.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"SVHN file {path} does not exist")
    return _read_svhn_file(path, md5)


@_cached_per_file(maxsize=2)
def _read_svhn_file(path: str, md5: str | None) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    p, d = _read_checked(
        path,
        md5,
        lambda raw: scipy.io.loadmat(_io.BytesIO(raw), variable_names=("X", "y")),
        "a readable MATLAB file",
    )
    if "X" not in d or "y" not in d:
        raise CorruptFileError(
            f"{p}: an SVHN file holds 'X' and 'y', found {sorted(d)}"
        )
    xm, ym = np.asarray(d["X"]), np.asarray(d["y"]).reshape(-1)
    if xm.dtype != np.uint8 or xm.ndim != 4 or xm.shape[:3] != (32, 32, 3):
        raise CorruptFileError(
            f"{p}: 'X' must be 32 x 32 x 3 x N uint8, got {xm.shape} {xm.dtype}"
        )
    if ym.shape != (xm.shape[3],):
        raise CorruptFileError(f"{p}: {xm.shape[3]} images but {ym.size} labels")
    if ym.size and (int(ym.min()) < 1 or int(ym.max()) > 10):
        raise CorruptFileError(
            f"{p}: SVHN labels are 1..10, found {int(ym.min())}..{int(ym.max())}"
        )
    x = np.ascontiguousarray(xm.transpose(3, 2, 0, 1))
    y = (ym.astype(np.int64)) % 10
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y

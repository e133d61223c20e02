"""Decoded image data sets, cached once per user as verified array files.

Decoding a JPEG data set (CIFAR-10's 60,000 JPEG copies, Tiny-ImageNet's 110,000
images) takes minutes; reading the decoded arrays back takes a fraction of a second.
The first load of a split decodes it and writes
``<per-user cache>/decoded/<dataset>-<split>.npz`` (uncompressed ``x``, ``y``, the class
names and a JSON record) atomically: a temporary file in the same folder, fsynced,
then renamed. The record holds a checksum of the source (the md5 of an archive; for a
folder, a hash of every file's name, size and modification time) and the md5 of the
arrays. A later load uses the file only when both still match; a changed source is
decoded again, a damaged cache file is replaced (both with a ``logging`` warning).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._files import md5sum

__all__ = ["cache_folder", "cached_decode", "source_checksum"]

_log = logging.getLogger("landscape.data")
_FORMAT = 1
_MEMO: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, tuple[str, ...]]] = {}

Decoded = tuple[np.ndarray, np.ndarray, tuple[str, ...]]


def cache_folder() -> Path:
    """Where decoded arrays go: ``<default_root()>/decoded`` (the per-user cache, not
    ``LANDSCAPE_DATA``, which may be a shared read-only copy)."""
    from . import default_root

    return default_root() / "decoded"


def source_checksum(source: str | os.PathLike) -> str:
    """``md5:<hex>`` of a file, or ``tree:<hex>`` over a folder's files (relative
    name, size and modification time of each)."""
    source = Path(source)
    if source.is_file():
        return "md5:" + md5sum(source)
    h = hashlib.sha256()
    for p in sorted(source.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(source).as_posix()}\0{st.st_size}\0".encode())
            h.update(f"{st.st_mtime_ns}\n".encode())
    return "tree:" + h.hexdigest()


def _arrays_md5(x: np.ndarray, y: np.ndarray) -> str:
    h = hashlib.md5()
    h.update(memoryview(np.ascontiguousarray(x)).cast("B"))
    h.update(memoryview(np.ascontiguousarray(y)).cast("B"))
    return h.hexdigest()


def _read(path: Path, record: dict) -> Decoded | None:
    """The cached arrays, or None (with the reason logged) when they do not match."""
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            keys = ("format", "dataset", "split", "source_checksum")
            if any(meta.get(k) != record[k] for k in keys):
                _log.warning(
                    "landscape: %s changed since it was decoded into %s; decoding it "
                    "again",
                    record["source"],
                    path,
                )
                return None
            x, y = f["x"], f["y"]
            classes = tuple(str(c) for c in f["classes"])
    except Exception as err:  # truncated / not an npz / missing fields
        _log.warning(
            "landscape: the decoded cache %s is unreadable (%s); decoding again",
            path,
            type(err).__name__,
        )
        return None
    if _arrays_md5(x, y) != meta.get("arrays_md5"):
        _log.warning(
            "landscape: the decoded cache %s fails its checksum; decoding again", path
        )
        return None
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y, classes


def _write(path: Path, x: np.ndarray, y: np.ndarray, classes, record: dict) -> None:
    meta = {**record, "arrays_md5": _arrays_md5(x, y)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".part"
        )
    except OSError as err:
        _log.warning("landscape: cannot write the decoded cache %s (%s)", path, err)
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                x=x,
                y=y,
                classes=np.array(list(classes), dtype=str),
                meta=np.array(json.dumps(meta)),
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        _log.warning("landscape: cannot write the decoded cache %s (%s)", path, err)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def cached_decode(
    dataset: str,
    split: str,
    source: str | os.PathLike,
    decode: Callable[[], Decoded],
    *,
    checksum: str | None = None,
) -> Decoded:
    """``decode()``'s ``(x, y, classes)`` for ``dataset``'s ``split`` read from
    ``source``, through the per-user cache (see the module docstring); ``checksum``:
    :func:`source_checksum` of ``source`` when the caller has it already."""
    source = Path(source)
    checksum = checksum or source_checksum(source)
    path = cache_folder() / f"{dataset}-{split}.npz"
    memo = (str(path), checksum)
    if memo in _MEMO:
        return _MEMO[memo]
    record = {
        "format": _FORMAT,
        "dataset": dataset,
        "split": split,
        "source": str(source.resolve()),
        "source_checksum": checksum,
    }
    out = _read(path, record) if path.exists() else None
    if out is None:
        _log.warning(
            "landscape: decoding %s %s from %s once into %s (later loads read it)",
            dataset,
            split,
            source,
            path,
        )
        x, y, classes = decode()
        _write(path, x, y, classes, record)
        out = (x, y, tuple(classes))
    while len(_MEMO) >= 2:  # keep the last two decoded splits in memory
        del _MEMO[next(iter(_MEMO))]
    _MEMO[memo] = out
    return out

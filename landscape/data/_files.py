"""Readers for the standard dataset files: IDX (.gz), CIFAR python pickles, image folders.

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
import tarfile
import zlib
from pathlib import Path

import numpy as np

from ..io import CorruptFileError

__all__ = [
    "md5sum",
    "read_idx",
    "read_cifar_batches",
    "read_image_folder",
    "IMAGE_EXTENSIONS",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".webp")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


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
    return _read_idx_cached(*_stat_key(path), md5)


@functools.lru_cache(maxsize=16)
def _read_idx_cached(path: str, size: int, mtime: int, md5: str | None) -> np.ndarray:
    p = Path(path)
    raw = p.read_bytes()
    _check_md5(p, raw, md5)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise CorruptFileError(
                f"{p} is not a valid gzip file ({type(err).__name__}: {err}); it is "
                "probably truncated: delete it and download it again"
            ) from err
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


def _read_cifar_file(path: Path, md5: str | None) -> tuple[np.ndarray, np.ndarray]:
    return _read_cifar_cached(*_stat_key(path), md5)


@functools.lru_cache(maxsize=8)
def _read_cifar_cached(
    path: str, size: int, mtime: int, md5: str | None
) -> tuple[np.ndarray, np.ndarray]:
    p = Path(path)
    raw = p.read_bytes()
    _check_md5(p, raw, md5)
    try:
        d = _ArrayUnpickler(_io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:
        raise CorruptFileError(
            f"{p} is not a readable CIFAR python pickle ({type(err).__name__}: {err}); "
            "delete it and download the dataset again"
        ) from err
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
) -> tuple[np.ndarray, np.ndarray]:
    """Read CIFAR-10 python pickle batches (``data_batch_1..5`` or ``test_batch``).

    Args:
        folder: the ``cifar-10-batches-py`` folder.
        split: ``"train"`` (the five data batches) or ``"test"``.
        md5s: expected md5 per batch file name (no check for names not in it).

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
    for name in CIFAR10_BATCHES[split]:
        p = folder / name
        if not p.exists():
            raise FileNotFoundError(f"CIFAR-10 batch {p} does not exist")
        x, y = _read_cifar_file(p, (md5s or {}).get(name))
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


# --------------------------------------------------------------------------- folders


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(_ARCHIVE_SUFFIXES)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _decode_images(items: list[tuple[str, bytes]], where: Path) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - pillow ships with matplotlib
        raise ImportError(
            "reading image folders needs Pillow: pip install pillow"
        ) from err
    arrays: list[np.ndarray] = []
    mode = None
    shape = None
    for name, blob in items:
        try:
            with Image.open(_io.BytesIO(blob)) as img:
                if mode is None:
                    mode = "L" if img.mode in ("L", "1", "I;16", "I", "LA") else "RGB"
                a = np.asarray(img.convert(mode), dtype=np.uint8)
        except Exception as err:
            raise CorruptFileError(
                f"{where}: cannot decode image {name} ({type(err).__name__}: {err})"
            ) from err
        if shape is None:
            shape = a.shape
        elif a.shape != shape:
            raise ValueError(
                f"{where}: image {name} has shape {a.shape} but the first image has "
                f"{shape}; resize the folder to one size before loading it"
            )
        arrays.append(a)
    if not arrays:
        return np.zeros((0, 1, 1, 1), dtype=np.uint8)
    x = np.stack(arrays)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    x = np.ascontiguousarray(x)
    x.flags.writeable = False
    return x


@functools.lru_cache(maxsize=4)
def _read_folder_cached(
    path: str, size: int, mtime: int, split: str
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    p = Path(path)
    entries: list[tuple[str, str, bytes]] = []  # (class, name, bytes)
    classes: set[str] = set()
    if _is_archive(p):
        try:
            with tarfile.open(p, "r:*") as tar:
                for m in tar:
                    if not m.isfile() or not _is_image(m.name):
                        continue
                    parts = m.name.strip("/").split("/")
                    if len(parts) < 3 or parts[-3] not in ("train", "test", split):
                        continue
                    classes.add(parts[-2])
                    if parts[-3] == split:
                        f = tar.extractfile(m)
                        assert f is not None
                        entries.append((parts[-2], m.name, f.read()))
        except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
            raise CorruptFileError(
                f"{p} is not a readable tar archive ({type(err).__name__}: {err}); "
                "it is probably truncated"
            ) from err
    else:
        for s in {"train", "test", split}:
            if (p / s).is_dir():
                classes.update(c.name for c in (p / s).iterdir() if c.is_dir())
        base = p / split
        if not base.is_dir():
            raise FileNotFoundError(
                f"{base} does not exist: an image folder is laid out "
                f"root/{{train,test}}/<class>/*.png|jpg"
            )
        for c in sorted(base.iterdir()):
            if c.is_dir():
                for f in sorted(c.iterdir()):
                    if f.is_file() and _is_image(f.name):
                        entries.append((c.name, str(f), f.read_bytes()))
    if not entries:
        raise FileNotFoundError(
            f"no images found for split {split!r} in {p} (expected "
            f"{split}/<class>/*.png|jpg)"
        )
    names = tuple(sorted(classes))
    index = {c: i for i, c in enumerate(names)}
    entries.sort(key=lambda e: (index[e[0]], e[1]))
    x = _decode_images([(n, b) for _, n, b in entries], p)
    y = np.array([index[c] for c, _, _ in entries], dtype=np.int64)
    y.flags.writeable = False
    return x, y, names


def read_image_folder(
    path: str | os.PathLike, split: str = "train"
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read ``path/{split}/<class>/*.png|jpg`` from a folder or a ``.tar[.gz]`` archive.

    In an archive, members named ``[prefix/]split/<class>/<file>`` are used. Classes
    are the sorted union of the class folders of the train and test splits (so the
    label of a class is the same in both); images are ordered by class, then name.

    Returns:
        ``(x, y, classes)``: uint8 ``(N, C, H, W)`` with ``C`` 1 for grayscale images
        and 3 otherwise, int64 labels, and the class names.

    Raises:
        FileNotFoundError: no such folder/archive or no images for the split.
        CorruptFileError: unreadable archive or image.
        ValueError: images of different sizes.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image folder or archive {path} does not exist")
    if path.is_dir():
        key = (str(path.resolve()), 0, _dir_mtime(path, split))
    else:
        key = _stat_key(path)
    return _read_folder_cached(*key, split)


def _dir_mtime(path: Path, split: str) -> int:
    """A stamp that changes when any file of the split is added, removed or rewritten."""
    base = path / split
    stamp = path.stat().st_mtime_ns
    if base.is_dir():
        for c in base.iterdir():
            st = c.stat()
            stamp = hash((stamp, c.name, st.st_mtime_ns))
            if c.is_dir():
                for f in c.iterdir():
                    st = f.stat()
                    stamp = hash((stamp, f.name, st.st_size, st.st_mtime_ns))
    return stamp

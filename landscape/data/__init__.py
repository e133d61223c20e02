"""Datasets: synthetic Gaussian mixtures, MNIST, Fashion-MNIST, CIFAR-10, image folders.

Images come out as float32 tensors in ``[0, 1]``, NCHW, with int64 labels;
normalisation belongs inside the model (:class:`landscape.models.Normalize`), never in
the data.

Where the files live: an explicit ``root`` argument, else the ``LANDSCAPE_DATA``
environment variable, else one per-user cache (:func:`default_root`:
``$XDG_CACHE_HOME/landscape``, i.e. ``~/.cache/landscape`` on Linux;
``~/Library/Caches/landscape`` on macOS; ``%LOCALAPPDATA%\\landscape`` on Windows),
so every folder a user works in shares one copy. A download says where it goes (a
``logging`` warning of the ``landscape.data`` logger). Inside the root the standard
layout is used::

    root/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    root/fashion-mnist/  (same four names)
    root/cifar-10-batches-py/{data_batch_1..5,test_batch}
    root/cifar10-jpeg/{train,test}/<class>/*.jpg   or   root/cifar10-jpeg.tar.gz

Missing MNIST / Fashion-MNIST / CIFAR-10 files are downloaded from the standard sources
(:data:`MIRRORS`) with md5 verification and an atomic rename; offline, the error names
the files, the folder and the command ``python -m landscape.data download NAME --root
DIR``. Corrupt files (bad checksum, truncated gzip, wrong magic number, wrong count)
raise :class:`landscape.io.CorruptFileError`.

Example:
    >>> x, y = gaussian_mixture(100, 2, separable=True, margin=0.3, seed=0)
    >>> loader = batches(x, y, batch_size=32, shuffle=True, seed=0)
    >>> len(loader), sum(len(yb) for _, yb in loader)
    (4, 100)
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..io import CorruptFileError
from ._download import MIRRORS, DownloadError, download_file, extract_tar
from ._files import md5sum, read_cifar_batches, read_idx, read_image_folder
from ._loader import Batches, batches, subset_indices
from ._specs import (
    DATASETS,
    DatasetNotFoundError,
    DatasetSpec,
    _check_split,
    _spec,
)
from ._synthetic import binary_subset, gaussian_mixture

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "MIRRORS",
    "Batches",
    "CorruptFileError",
    "DatasetNotFoundError",
    "DownloadError",
    "batches",
    "binary_subset",
    "dataset_files",
    "download",
    "gaussian_mixture",
    "load_dataset",
    "load_image_folder",
    "md5sum",
    "read_cifar_batches",
    "read_idx",
    "read_image_folder",
    "default_root",
    "resolve_root",
    "subset_indices",
]

_log = logging.getLogger(__name__)


def default_root() -> Path:
    """The per-user data cache: ``$XDG_CACHE_HOME/landscape`` (``~/.cache/landscape``)
    on Linux, ``~/Library/Caches/landscape`` on macOS, ``%LOCALAPPDATA%\\landscape`` on
    Windows."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "landscape"
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "landscape"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "landscape"


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """Data root: ``root`` if given, else ``$LANDSCAPE_DATA``, else :func:`default_root`.

    Example:
        >>> str(resolve_root("here"))
        'here'
        >>> resolve_root() == Path(os.environ.get("LANDSCAPE_DATA") or default_root())
        True
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("LANDSCAPE_DATA")
    if env:
        return Path(env).expanduser()
    return default_root()


def dataset_files(name: str, root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Paths of a dataset's files (present or not) under the resolved root."""
    spec = _spec(name)
    folder = resolve_root(root) / spec.folder
    return {f: folder / f for f in spec.files}


def _download_hint(spec: DatasetSpec, root: Path) -> str:
    return f"python -m landscape.data download {spec.name} --root {root}"


def download(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    mirrors: list[str] | None = None,
    force: bool = False,
    timeout: float = 30.0,
    progressbar: bool = False,
) -> Path:
    """Download a dataset's standard files into ``root`` and verify their md5s.

    Files already present with the right md5 are kept (unless ``force``); files with a
    wrong md5 are replaced. Each file is written to a temporary name, verified, and
    renamed into place, so an interrupted download never leaves a file that is later
    trusted.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"`` or ``"cifar10"``.
        root: data root (see :func:`resolve_root`).
        mirrors: base URLs to try instead of ``MIRRORS[name]`` (e.g. ``file://`` URLs).
        force: download even files that are present and valid.
        timeout: socket timeout per attempt, in seconds.
        progressbar: show download progress.

    Returns:
        The dataset folder.

    Raises:
        DownloadError: no mirror delivered a file with the right checksum.
    """
    spec = _spec(name)
    root = resolve_root(root)
    if not spec.downloadable:
        raise ValueError(
            f"{spec.name} has no standard download source; put it at "
            f"{root / spec.folder} or {root / (spec.folder + '.tar.gz')}"
        )
    bases = list(mirrors) if mirrors is not None else MIRRORS[spec.name]
    bases = [b if b.endswith("/") else b + "/" for b in bases]
    folder = root / spec.folder

    def valid(p: Path, md5: str) -> bool:
        return p.exists() and not force and md5sum(p) == md5

    if all(valid(folder / f, m) for f, m in spec.files.items()):
        return folder
    _log.warning(
        "landscape: downloading %s into %s (set LANDSCAPE_DATA or pass a root to "
        "use another folder)",
        spec.name,
        folder.absolute(),
    )
    if spec.archive is None:
        for fname, md5 in spec.files.items():
            if not valid(folder / fname, md5):
                download_file(
                    [b + fname for b in bases],
                    folder / fname,
                    md5=md5,
                    timeout=timeout,
                    progressbar=progressbar,
                )
        return folder
    aname, amd5 = spec.archive
    archive = root / aname
    if not valid(archive, amd5):
        download_file(
            [b + aname for b in bases],
            archive,
            md5=amd5,
            timeout=timeout,
            progressbar=progressbar,
        )
    extract_tar(archive, spec.folder, root, spec.files)
    return folder


def _ensure_files(
    spec: DatasetSpec, root: Path, split: str, allow_download: bool
) -> Path:
    folder = root / spec.folder
    missing = [f for f in spec.splits[split] if not (folder / f).exists()]
    if not missing:
        return folder
    cmd = _download_hint(spec, root)
    what = f"{spec.name} files missing in {folder}: {', '.join(missing)}."
    if not allow_download:
        raise DatasetNotFoundError(
            f"{what} Download them with `{cmd}` (or pass download=True), or set "
            "LANDSCAPE_DATA to a folder that holds them."
        )
    try:
        download(spec.name, root)
    except (DownloadError, OSError) as err:
        first = str(err).splitlines()[0]
        raise DatasetNotFoundError(
            f"{what} Downloading them failed ({first}) - on a machine with internet "
            f"access run `{cmd}`, or set LANDSCAPE_DATA to a folder that holds "
            f"{spec.folder}/"
        ) from None
    return folder


def _to_float(x: np.ndarray) -> Tensor:
    return torch.from_numpy(np.asarray(x, dtype=np.float32)).div_(255.0)


def _finish(
    x: np.ndarray,
    y: np.ndarray,
    spec: DatasetSpec | None,
    split: str,
    where: Path,
    num_samples: int | None,
    stratified: bool,
    seed: int,
) -> tuple[Tensor, Tensor]:
    if spec is not None:
        expected = spec.num_samples[split]
        if len(x) != expected or len(y) != expected:
            raise CorruptFileError(
                f"{where}: {spec.name} {split} split should hold {expected} images and "
                f"labels, found {len(x)} and {len(y)}; delete the files and download "
                f"them again"
            )
        if tuple(x.shape[1:]) != spec.shape:
            raise CorruptFileError(
                f"{where}: images have shape {tuple(x.shape[1:])}, expected {spec.shape}"
            )
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(spec.classes)):
            raise CorruptFileError(
                f"{where}: labels outside 0..{len(spec.classes) - 1} "
                f"(found {int(y.min())}..{int(y.max())})"
            )
    yt = torch.from_numpy(np.array(y, dtype=np.int64))
    if num_samples is not None:
        idx = subset_indices(yt, int(num_samples), stratified=stratified, seed=seed)
        return _to_float(x[idx.numpy()]), yt[idx]
    return _to_float(x), yt


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    split: str = "train",
    num_samples: int | None = None,
    stratified: bool = True,
    seed: int = 0,
    download: bool = True,
    verify: bool = True,
) -> tuple[Tensor, Tensor]:
    """Load a real dataset as float32 NCHW images in ``[0, 1]`` and int64 labels.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` (python pickle batches in
            ``root/cifar-10-batches-py``) or ``"cifar10-jpeg"`` (image folder
            ``root/cifar10-jpeg/`` or the archive ``root/cifar10-jpeg.tar.gz``).
        root: data root; default ``$LANDSCAPE_DATA``, else the per-user cache
            (:func:`default_root`).
        split: ``"train"`` or ``"test"``.
        num_samples: keep a deterministic subset of this size (all when None).
        stratified: keep the class proportions in the subset.
        seed: seed of the subset selection.
        download: fetch missing files from the standard sources.
        verify: check the md5 of the known files (cached per file).

    Returns:
        ``(x, y)``: ``x`` float32 ``(N, C, H, W)`` in ``[0, 1]``, ``y`` int64 ``(N,)``.

    Raises:
        DatasetNotFoundError: files missing and not downloadable (the message names
            the files, the folder and the download command).
        CorruptFileError: bad checksum, truncated file, wrong magic number or count.
    """
    spec = _spec(name)
    split = _check_split(split)
    root = resolve_root(root)
    if spec.name == "cifar10-jpeg":
        folder = root / spec.folder
        source = folder if folder.is_dir() else root / (spec.folder + ".tar.gz")
        if not source.exists():
            raise DatasetNotFoundError(
                f"cifar10-jpeg not found: neither {folder}/ nor {source} exists. It is "
                "a JPEG copy of CIFAR-10 laid out cifar10-jpeg/{train,test}/<class>/"
                "*.jpg; for the original files use load_dataset('cifar10') "
                f"(`python -m landscape.data download cifar10 --root {root}`)"
            )
        x, y, classes = read_image_folder(source, split)
        if tuple(classes) != spec.classes:
            raise CorruptFileError(
                f"{source}: classes {classes} are not the CIFAR-10 classes"
            )
        return _finish(x, y, spec, split, source, num_samples, stratified, seed)
    folder = _ensure_files(spec, root, split, download)
    md5 = spec.files if verify else {}
    if spec.name == "cifar10":
        x, y = read_cifar_batches(folder, split, md5s=md5)
    else:
        img, lab = spec.splits[split]
        x = read_idx(folder / img, md5=md5.get(img))
        y = read_idx(folder / lab, md5=md5.get(lab))
        if x.ndim != 3 or y.ndim != 1:
            raise CorruptFileError(
                f"{folder}: {img} / {lab} hold arrays of {x.ndim} / {y.ndim} dims; "
                "images and labels swapped or wrong files"
            )
        x = x[:, None]
    return _finish(x, y, spec, split, folder, num_samples, stratified, seed)


def load_image_folder(
    path: str | os.PathLike,
    split: str = "train",
    *,
    num_samples: int | None = None,
    stratified: bool = True,
    seed: int = 0,
    return_classes: bool = False,
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, tuple[str, ...]]:
    """Load ``path/{split}/<class>/*.png|jpg`` (a folder or a ``.tar[.gz]`` archive).

    Class indices follow the sorted class-folder names (the union over train and test).
    Grayscale images give one channel, everything else three (RGB).

    Args:
        path: folder holding ``train/`` and/or ``test/``, or an archive whose members
            are ``[prefix/]{train,test}/<class>/<file>``.
        split: ``"train"`` or ``"test"``.
        num_samples: deterministic (stratified) subset size.
        stratified: keep class proportions in the subset.
        seed: seed of the subset selection.
        return_classes: also return the class names.

    Returns:
        ``(x, y)`` (and ``classes``): float32 NCHW in ``[0, 1]``, int64 labels.
    """
    split = _check_split(split)
    x, y, classes = read_image_folder(path, split)
    xt, yt = _finish(x, y, None, split, Path(path), num_samples, stratified, seed)
    return (xt, yt, classes) if return_classes else (xt, yt)

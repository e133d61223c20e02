"""``load_dataset`` / ``download`` / ``load_image_folder``: from files to tensors."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..io import CorruptFileError
from ._cache import cached_decode, source_checksum
from ._download import MIRRORS, DownloadError, download_file, extract_tar
from ._files import md5sum, read_cifar_batches, read_idx, read_svhn_mat
from ._images import (
    decode_entries,
    imagenet_entries,
    read_image_folder,
    resize_center_crop,
    tiny_imagenet_entries,
)
from ._loader import subset_indices
from ._roots import resolve_root
from ._specs import DatasetNotFoundError, DatasetSpec, _check_split, _spec

__all__ = ["dataset_files", "download", "load_dataset", "load_image_folder"]

_log = logging.getLogger("landscape.data")

#: Without ``num_samples``, an ImageNet split larger than this is refused (50,000
#: validation images are 30 GB as float32 224 x 224 tensors).
IMAGENET_MAX_FULL = 10_000


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
    trusted. Tiny-ImageNet's zip is kept as it is (it is read in place).

    Args:
        name: ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``, ``"cifar100"``,
            ``"svhn"`` or ``"tiny-imagenet"``.
        root: data root (see :func:`resolve_root`).
        mirrors: base URLs to try instead of ``MIRRORS[name]`` (e.g. ``file://`` URLs).
        force: download even files that are present and valid.
        timeout: socket timeout per attempt, in seconds.
        progressbar: show download progress.

    Returns:
        The dataset folder (Tiny-ImageNet: its zip).

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

    in_place = spec.reader == "tiny-imagenet"  # the archive is the data
    if not in_place and all(valid(folder / f, m) for f, m in spec.files.items()):
        return folder
    _log.warning(
        "landscape: downloading %s into %s (set LANDSCAPE_DATA or pass a root to "
        "use another folder)",
        spec.name,
        (root if in_place else folder).absolute(),
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
    if in_place:
        return archive
    extract_tar(archive, spec.folder, root, spec.files)
    return folder


def _ensure_files(
    spec: DatasetSpec, root: Path, split: str, allow_download: bool
) -> Path:
    folder = root / spec.folder
    missing = [f for f in spec.splits[split] if not (folder / f).exists()]
    if not missing:
        return folder
    what = f"{spec.name} files missing in {folder}: {', '.join(missing)}."
    _fetch(spec, root, what, allow_download)
    return folder


def _fetch(spec: DatasetSpec, root: Path, what: str, allow_download: bool) -> None:
    cmd = _download_hint(spec, root)
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


def _to_float(x: np.ndarray) -> Tensor:
    return torch.from_numpy(np.asarray(x, dtype=np.float32)).div_(255.0)


def _check(
    x: np.ndarray, y: np.ndarray, spec: DatasetSpec, split: str, where: Path
) -> None:
    if spec.num_samples is not None:
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
    k = spec.num_classes
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= k):
        raise CorruptFileError(
            f"{where}: labels outside 0..{k - 1} (found {int(y.min())}..{int(y.max())})"
        )


def _finish(
    x: np.ndarray,
    y: np.ndarray,
    num_samples: int | None,
    stratified: bool,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    yt = torch.from_numpy(np.array(y, dtype=np.int64))
    if num_samples is not None:
        idx = subset_indices(
            yt, int(num_samples), stratified=stratified, generator=generator
        )
        return _to_float(x[idx.numpy()]), yt[idx]
    return _to_float(x), yt


def _source(spec: DatasetSpec, root: Path, archive: str) -> Path | None:
    """The dataset's folder, else its archive, else None."""
    folder = root / spec.folder
    if folder.is_dir():
        return folder
    return root / archive if (root / archive).is_file() else None


def _load_jpeg_folder(spec: DatasetSpec, root: Path, split: str):
    source = _source(spec, root, spec.folder + ".tar.gz")
    if source is None:
        raise DatasetNotFoundError(
            f"cifar10-jpeg not found: neither {root / spec.folder}/ nor "
            f"{root / (spec.folder + '.tar.gz')} exists. It is a JPEG copy of CIFAR-10 "
            "laid out cifar10-jpeg/{train,test}/<class>/*.jpg; for the original files "
            f"use load_dataset('cifar10') (`{_download_hint(_spec('cifar10'), root)}`)"
        )
    x, y, classes = cached_decode(
        spec.name, split, source, lambda: read_image_folder(source, split)
    )
    if tuple(classes) != spec.classes:
        raise CorruptFileError(
            f"{source}: classes {classes} are not the CIFAR-10 classes"
        )
    return x, y, source


def _load_tiny(spec: DatasetSpec, root: Path, split: str, allow_download: bool, verify):
    assert spec.archive is not None
    aname, amd5 = spec.archive
    source = _source(spec, root, aname)
    if source is None:
        what = (
            f"Tiny-ImageNet missing: neither {root / spec.folder}/ nor {root / aname}."
        )
        _fetch(spec, root, what, allow_download)
        source = root / aname
    checksum = source_checksum(source)
    if verify and source.is_file() and checksum != "md5:" + amd5:
        raise CorruptFileError(
            f"{source} has md5 {checksum[4:]}, expected {amd5}: the file is corrupt or "
            f"truncated. Delete it and download it again ({_download_hint(spec, root)})"
        )

    def decode():
        entries, wnids = tiny_imagenet_entries(source, split)
        x = decode_entries(entries, source, mode="RGB")
        return x, np.array([e[0] for e in entries], dtype=np.int64), wnids

    x, y, classes = cached_decode(spec.name, split, source, decode, checksum=checksum)
    if len(classes) != spec.num_classes:
        raise CorruptFileError(
            f"{source}: wnids.txt lists {len(classes)} classes, expected "
            f"{spec.num_classes}"
        )
    return x, y, source


def _load_imagenet(
    spec: DatasetSpec,
    root: Path,
    split: str,
    num_samples: int | None,
    stratified: bool,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    folder = root / spec.folder
    entries = imagenet_entries(folder, split)
    labels = torch.tensor([e[0] for e in entries], dtype=torch.int64)
    if num_samples is None:
        if len(entries) > IMAGENET_MAX_FULL:
            raise ValueError(
                f"{folder} holds {len(entries)} {split} images (about "
                f"{len(entries) * 3 * 224 * 224 * 4 / 2**30:.0f} GiB as float32): pass "
                "num_samples= (a stratified random sample is decoded, nothing else)"
            )
        idx = torch.arange(len(entries))
    else:
        idx = subset_indices(
            labels, int(num_samples), stratified=stratified, generator=generator
        )
    chosen = [entries[int(i)] for i in idx]
    x = decode_entries(chosen, folder, mode="RGB", transform=resize_center_crop)
    return _to_float(x), labels[idx]


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    split: str = "train",
    num_samples: int | None = None,
    stratified: bool = True,
    generator: torch.Generator | None = None,
    download: bool = True,
    verify: bool = True,
) -> tuple[Tensor, Tensor]:
    """Load a real dataset as float32 NCHW images in ``[0, 1]`` and int64 labels.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` (python pickle batches in
            ``root/cifar-10-batches-py``), ``"cifar10-jpeg"`` (image folder
            ``root/cifar10-jpeg/`` or the archive ``root/cifar10-jpeg.tar.gz``),
            ``"cifar100"`` (``root/cifar-100-python``), ``"svhn"``
            (``root/svhn/{train,test}_32x32.mat``), ``"tiny-imagenet"``
            (``root/tiny-imagenet-200/`` or ``root/tiny-imagenet-200.zip``; ``"test"``
            is its labelled validation split) or ``"imagenet"``
            (``root/imagenet/{train,val}/<wnid>/*.JPEG``, ``"test"`` reads ``val``;
            resized to 256 and centre-cropped to 224, labels in the standard synset
            order).
        root: data root; default ``$LANDSCAPE_DATA``, else the per-user cache
            (:func:`default_root`).
        split: ``"train"`` or ``"test"``.
        num_samples: return a random sample of this size instead of the whole split:
            stratified (the class proportions of the split) and in random order, so
            any prefix ``x[:n]`` is itself a random sample. None: the whole split, in
            the files' order (image folders: sorted by class).
        stratified: keep the class proportions in the sample.
        generator: draws the sample (default: a seed drawn from torch's global RNG,
            see :func:`landscape.seed_everything`); the same seed gives the same
            sample in any process.
        download: fetch missing files from the standard sources.
        verify: check the md5 of the known files (cached per file).

    Returns:
        ``(x, y)``: ``x`` float32 ``(N, C, H, W)`` in ``[0, 1]``, ``y`` int64 ``(N,)``.

    Raises:
        DatasetNotFoundError: files missing and not downloadable (the message names
            the files, the folder and the download command).
        CorruptFileError: bad checksum, truncated file, wrong magic number or count.

    Example:
        >>> import os
        >>> if os.environ.get("LANDSCAPE_DATA"):  # the shared copy in CI
        ...     g = torch.Generator().manual_seed(0)
        ...     x, y = load_dataset("mnist", split="test", num_samples=100, generator=g)
        ...     assert len(set(y[:20].tolist())) > 5  # a prefix mixes the classes
    """
    spec = _spec(name)
    split = _check_split(split)
    root = resolve_root(root)
    if spec.reader == "imagenet":
        return _load_imagenet(spec, root, split, num_samples, stratified, generator)
    if spec.reader == "jpeg-folder":
        x, y, where = _load_jpeg_folder(spec, root, split)
    elif spec.reader == "tiny-imagenet":
        x, y, where = _load_tiny(spec, root, split, download, verify)
    else:
        where = _ensure_files(spec, root, split, download)
        md5 = spec.files if verify else {}
        files = spec.splits[split]
        if spec.reader == "cifar":
            x, y = read_cifar_batches(where, split, md5s=md5, files=files)
        elif spec.reader == "svhn":
            x, y = read_svhn_mat(where / files[0], md5=md5.get(files[0]))
        else:
            img, lab = files
            x = read_idx(where / img, md5=md5.get(img))
            y = read_idx(where / lab, md5=md5.get(lab))
            if x.ndim != 3 or y.ndim != 1:
                raise CorruptFileError(
                    f"{where}: {img} / {lab} hold arrays of {x.ndim} / {y.ndim} dims; "
                    "images and labels swapped or wrong files"
                )
            x = x[:, None]
    _check(x, y, spec, split, where)
    return _finish(x, y, num_samples, stratified, generator)


def load_image_folder(
    path: str | os.PathLike,
    split: str = "train",
    *,
    num_samples: int | None = None,
    stratified: bool = True,
    generator: torch.Generator | None = None,
    return_classes: bool = False,
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, tuple[str, ...]]:
    """Load ``path/{split}/<class>/*.png|jpg`` (a folder or a ``.tar[.gz]`` archive).

    Class indices follow the sorted class-folder names (the union over train and test).
    Grayscale images give one channel, everything else three (RGB). The whole split
    comes in the folder's order (sorted by class): take ``num_samples`` (a stratified
    random sample in random order), not a slice, for a batch that covers the classes.

    Args:
        path: folder holding ``train/`` and/or ``test/``, or an archive whose members
            are ``[prefix/]{train,test}/<class>/<file>``.
        split: ``"train"`` or ``"test"``.
        num_samples: size of a stratified random sample (see :func:`load_dataset`).
        stratified: keep class proportions in the sample.
        generator: draws the sample (default: from torch's global RNG).
        return_classes: also return the class names.

    Returns:
        ``(x, y)`` (and ``classes``): float32 NCHW in ``[0, 1]``, int64 labels.
    """
    split = _check_split(split)
    x, y, classes = read_image_folder(path, split)
    xt, yt = _finish(x, y, num_samples, stratified, generator)
    return (xt, yt, classes) if return_classes else (xt, yt)

"""Image folders and the image-based datasets: decoding, resizing, class indices.

* :func:`read_image_folder`: ``path/{train,test}/<class>/*.png|jpg`` as a folder or a
  ``.tar[.gz]`` archive (CIFAR-10 JPEG copies, user folders); images of one size.
* :func:`tiny_imagenet_entries`: Tiny-ImageNet-200 as the folder ``tiny-imagenet-200/``
  or the published ``tiny-imagenet-200.zip`` (read in place): ``train/<wnid>/images/``
  and ``val/images/`` with ``val/val_annotations.txt`` mapping each validation image to
  its class (the labelled held-out split, our ``"test"``).
* :func:`imagenet_entries`: an ImageNet folder ``{train,val}/<wnid>/*.JPEG``, labelled
  by the standard 1000-synset order (:data:`IMAGENET_WNIDS`) whatever subset of class
  folders is present; decoded per image with :func:`resize_center_crop`.

Entries are listed first (names and labels, no decoding), so a stratified sample can
be chosen before any image is decoded (:func:`decode_entries`).
"""

from __future__ import annotations

import functools
import io as _io
import os
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..io import CorruptFileError
from ._files import _stat_key
from ._imagenet_classes import IMAGENET_WNIDS

__all__ = [
    "IMAGE_EXTENSIONS",
    "decode_entries",
    "imagenet_entries",
    "read_image_folder",
    "resize_center_crop",
    "tiny_imagenet_entries",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".webp")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")

#: ``(label, name, read)``: an image's class index, its name and how to get its bytes.
Entry = tuple[int, str, Callable[[], bytes]]


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(_ARCHIVE_SUFFIXES)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _decode_images(
    items: list[tuple[str, bytes]],
    where: Path,
    *,
    mode: str | None = None,
    transform: Callable | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Decode images to uint8 NCHW. ``mode``: PIL mode for all (default: ``"L"`` when
    the first image is grayscale, else ``"RGB"``); ``transform``: PIL image -> PIL
    image (resize / crop) after the conversion."""
    from PIL import Image

    arrays: list[np.ndarray] = []
    shape = None
    for i, (name, blob) in enumerate(items):
        try:
            with Image.open(_io.BytesIO(blob)) as img:
                if mode is None:
                    mode = "L" if img.mode in ("L", "1", "I;16", "I", "LA") else "RGB"
                img = img.convert(mode)
                if transform is not None:
                    img = transform(img)
                a = np.asarray(img, dtype=np.uint8)
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
        if progress is not None:
            progress(i + 1)
    if not arrays:
        return np.zeros((0, 1, 1, 1), dtype=np.uint8)
    x = np.stack(arrays)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    x = np.ascontiguousarray(x)
    x.flags.writeable = False
    return x


PROGRESS_FROM = 2000  # images: a decode this long says where it is


def _decode_with_progress(items: list[tuple[str, bytes]], where: Path, split: str):
    """:func:`_decode_images` with a progress display (a bar on a terminal, lines with
    an ETA in a log: :func:`landscape._progress.bar`) when there are at least
    ``PROGRESS_FROM`` images: decoding CIFAR-10's 50,000 JPEGs takes minutes."""
    if len(items) < PROGRESS_FROM:
        return _decode_images(items, where)
    from .._progress import bar

    shown = bar(
        desc=f"decode {where.name} {split}",
        total=len(items),
        unit="images",
        leave=False,
        about="once: later loads read the decoded cache",
    )
    try:
        return _decode_images(items, where, progress=lambda i: shown.update(1))
    finally:
        shown.close()


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
    x = _decode_with_progress([(n, b) for _, n, b in entries], p, split)
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


# --------------------------------------------------------------------------- transforms


def resize_center_crop(img, size: int = 256, crop: int = 224):
    """torchvision's ``Resize(size)`` then ``CenterCrop(crop)`` on a PIL image (the
    standard ImageNet evaluation preprocessing, RobustBench's ``Res256Crop224``).

    The shorter side becomes ``size`` (the longer ``int(size * long / short)``),
    bilinear with PIL's antialiasing; the crop starts at
    ``round((side - crop) / 2)``.

    Example:
        >>> from PIL import Image
        >>> resize_center_crop(Image.new("RGB", (500, 375))).size
        (224, 224)
    """
    from PIL import Image

    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    if short != size:
        new_short, new_long = size, int(size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        img = img.resize((new_w, new_h), Image.BILINEAR)
    w, h = img.size
    if min(w, h) < crop:
        raise ValueError(f"image of {w}x{h} is smaller than the {crop}x{crop} crop")
    top = int(round((h - crop) / 2.0))
    left = int(round((w - crop) / 2.0))
    return img.crop((left, top, left + crop, top + crop))


def decode_entries(
    entries: list[Entry],
    where: Path,
    *,
    mode: str | None = "RGB",
    transform: Callable | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Decode the images of ``entries`` (in their order) into uint8 ``(N, C, H, W)``.

    Raises:
        CorruptFileError: an image cannot be decoded (the message names it).
        ValueError: images of different sizes (without a resizing ``transform``).
    """
    return _decode_images(
        [(name, read()) for _, name, read in entries],
        where,
        mode=mode,
        transform=transform,
        progress=progress,
    )


# --------------------------------------------------------------------------- trees


class _Tree:
    """Files under a folder, or the members of a zip: relative names and bytes."""

    def __init__(self, path: Path):
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if path.is_dir():
            self.names = sorted(
                p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()
            )
        else:
            try:
                self.zip = zipfile.ZipFile(path)
                self.names = sorted(
                    i.filename for i in self.zip.infolist() if not i.is_dir()
                )
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise CorruptFileError(
                    f"{path} is not a readable zip archive ({type(err).__name__}: "
                    f"{err}); it is probably truncated: delete it and download it again"
                ) from err

    def reader(self, name: str) -> Callable[[], bytes]:
        if self.zip is None:
            target = self.path / name
            return target.read_bytes
        zf = self.zip

        def read() -> bytes:
            try:
                return zf.read(name)
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
                raise CorruptFileError(
                    f"{self.path}: cannot read {name} ({type(err).__name__}: {err}); "
                    "the archive is corrupt: delete it and download it again"
                ) from err

        return read

    def text(self, name: str) -> str:
        return self.reader(name)().decode("utf-8", errors="replace")


def _strip_top(names: list[str], top: str) -> tuple[str, list[str]]:
    """The prefix under which ``top``'s content lives (``""`` or ``"top/"``)."""
    if any(n.startswith(top + "/") for n in names):
        return top + "/", names
    return "", names


def tiny_imagenet_entries(
    source: str | os.PathLike, split: str
) -> tuple[list[Entry], tuple[str, ...]]:
    """List Tiny-ImageNet-200's labelled images of ``split`` (no decoding).

    Args:
        source: the folder ``tiny-imagenet-200/`` (or a folder holding it), or
            ``tiny-imagenet-200.zip``.
        split: ``"train"`` (``train/<wnid>/images/*.JPEG``, 500 per class) or
            ``"test"`` (``val/images/*.JPEG`` labelled by ``val/val_annotations.txt``,
            50 per class; the official test images carry no labels).

    Returns:
        ``(entries, wnids)``: entries ordered by class, then name; class ``k`` is the
        ``k``-th of the sorted wnids (``torchvision.datasets.ImageFolder``'s order).

    Raises:
        FileNotFoundError: the layout is not Tiny-ImageNet's (the message says what
            is missing).
        CorruptFileError: unreadable archive, an annotation naming an unknown class.
    """
    path = Path(source)
    tree = _Tree(path)
    pre, names = _strip_top(tree.names, "tiny-imagenet-200")
    wnid_file = pre + "wnids.txt"
    if wnid_file not in names:
        raise FileNotFoundError(
            f"{path} is not Tiny-ImageNet-200: no {wnid_file} (expected the folder "
            "tiny-imagenet-200/ with wnids.txt, train/ and val/, or its zip)"
        )
    wnids = tuple(sorted(tree.text(wnid_file).split()))
    index = {w: i for i, w in enumerate(wnids)}
    entries: list[Entry] = []
    if split == "train":
        for n in names:
            parts = n[len(pre) :].split("/")
            if (
                len(parts) == 4
                and parts[0] == "train"
                and parts[2] == "images"
                and parts[3].lower().endswith(IMAGE_EXTENSIONS)
            ):
                if parts[1] not in index:
                    raise CorruptFileError(
                        f"{path}: train/{parts[1]} is not one of the wnids.txt classes"
                    )
                entries.append((index[parts[1]], n, tree.reader(n)))
    else:
        ann = pre + "val/val_annotations.txt"
        if ann not in names:
            raise FileNotFoundError(
                f"{path}: no {ann} (it maps each validation image to its class)"
            )
        present = set(names)
        for line_no, line in enumerate(tree.text(ann).splitlines(), 1):
            cols = line.split("\t")
            if not line.strip():
                continue
            if len(cols) < 2 or cols[1] not in index:
                raise CorruptFileError(
                    f"{path}: {ann} line {line_no} does not name an image and one of "
                    f"the wnids.txt classes: {line[:80]!r}"
                )
            n = f"{pre}val/images/{cols[0]}"
            if n not in present:
                raise FileNotFoundError(f"{path}: {ann} names {n}, which is missing")
            entries.append((index[cols[1]], n, tree.reader(n)))
    entries.sort(key=lambda e: (e[0], e[1]))
    return entries, wnids


def imagenet_entries(folder: str | os.PathLike, split: str) -> list[Entry]:
    """List an ImageNet split laid out ``folder/{train,val}/<wnid>/*.JPEG``.

    ``split`` ``"test"`` reads ``val/`` (the labelled validation set). Labels follow
    the standard order of the 1000 synsets (:data:`IMAGENET_WNIDS`), so a folder with
    only some classes keeps the labels the models were trained with.

    Raises:
        FileNotFoundError: no such folder, or no class folders in it.
        ValueError: a class folder that is not an ILSVRC-2012 synset.
    """
    base = Path(folder) / ("val" if split == "test" else split)
    if not base.is_dir():
        raise FileNotFoundError(
            f"{base} does not exist: lay ImageNet out as {Path(folder)}/val/<wnid>/"
            "*.JPEG (the validation tar sorted into its 1000 class folders, e.g. with "
            "the widely used valprep.sh)"
        )
    index = {w: i for i, w in enumerate(IMAGENET_WNIDS)}
    entries: list[Entry] = []
    for c in sorted(base.iterdir()):
        if not c.is_dir():
            continue
        if c.name not in index:
            raise ValueError(
                f"{c} is not an ILSVRC-2012 class folder (a WordNet id such as "
                "n01440764): sort the images into folders named by their synset"
            )
        for f in sorted(c.iterdir()):
            if f.is_file() and f.name.lower().endswith(IMAGE_EXTENSIONS):
                entries.append((index[c.name], str(f), f.read_bytes))
    if not entries:
        raise FileNotFoundError(f"no images in {base}/<wnid>/")
    return entries

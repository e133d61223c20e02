"""Verified downloads: md5 checked while streaming, atomic rename, mirror fallbacks.

A file is written to a hidden temporary name in the destination folder
(``.<name>.<random>.part``), its md5 is checked, and only then is it renamed over the
final name with :func:`os.replace`. A killed download therefore leaves at most a
``.part`` file, which no reader ever opens; the final name only ever holds verified
bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..io import CorruptFileError
from ._files import md5sum

__all__ = ["DownloadError", "MIRRORS", "download_file", "extract_tar"]


class DownloadError(OSError):
    """No mirror delivered a file with the expected checksum."""


#: Base URLs tried in order for each dataset; override (or pass ``mirrors=``) to use a
#: local copy, e.g. ``{"mnist": ["file:///data/mnist/"]}``.
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ],
    "cifar10": [
        "https://www.cs.toronto.edu/~kriz/",
        "https://cave.cs.toronto.edu/kriz/",
    ],
    "cifar100": [
        "https://www.cs.toronto.edu/~kriz/",
        "https://cave.cs.toronto.edu/kriz/",
    ],
    "svhn": ["http://ufldl.stanford.edu/housenumbers/"],
    "tiny-imagenet": ["http://cs231n.stanford.edu/"],
}


def download_file(
    urls: list[str],
    dest: str | os.PathLike,
    *,
    md5: str | None,
    timeout: float = 30.0,
    progressbar: bool = False,
) -> Path:
    """Fetch the first URL that delivers bytes with the right md5; rename atomically.

    Args:
        urls: full URLs to try in order (``http(s)://`` or ``file://``).
        dest: final path; its folder is created if needed.
        md5: expected hex md5 (None: accept anything; only for unknown files).
        timeout: socket timeout in seconds per attempt.
        progressbar: show progress per attempt.

    Returns:
        ``dest`` as a Path, holding verified bytes.

    Raises:
        DownloadError: every URL failed (network error or wrong checksum); the message
            lists each attempt. No file is left at ``dest`` or in temporary names.
    """
    dest = Path(dest)
    created = _missing_parents(dest.parent)
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(
            dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"
        )
        try:
            h = hashlib.md5()
            with os.fdopen(fd, "wb") as out:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    total = resp.headers.get("Content-Length")
                    bar = None
                    if progressbar:
                        from .._progress import bar as _bar

                        bar = _bar(
                            desc=dest.name,
                            total=int(total) if total else None,
                            unit="B",
                            unit_scale=True,
                        )
                    try:
                        while chunk := resp.read(1 << 16):
                            out.write(chunk)
                            h.update(chunk)
                            if bar is not None:
                                bar.update(len(chunk))
                    finally:
                        if bar is not None:
                            bar.close()
                    if total is not None and out.tell() != int(total):
                        raise OSError(
                            f"connection closed after {out.tell()} of {total} bytes"
                        )
                out.flush()
                os.fsync(out.fileno())
            got = h.hexdigest()
            if md5 is not None and got != md5:
                errors.append(f"{url}: md5 {got} != expected {md5}")
                continue
            os.replace(tmp, dest)
            return dest
        except (urllib.error.URLError, OSError, ValueError) as err:
            errors.append(f"{url}: {type(err).__name__}: {err}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    for d in created:  # leave no empty folder behind
        with contextlib.suppress(OSError):
            d.rmdir()
    last = errors[-1] if errors else "no URL given"
    raise DownloadError(
        f"could not download {dest.name} into {dest.parent} from {len(urls)} "
        f"source(s); last: {last}\n  " + "\n  ".join(errors)
    )


def _missing_parents(folder: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` would create, innermost first."""
    out = []
    while not folder.exists() and folder != folder.parent:
        out.append(folder)
        folder = folder.parent
    return out


def extract_tar(
    archive: Path, member_dir: str, dest: Path, md5s: dict[str, str]
) -> Path:
    """Extract ``member_dir/`` of ``archive`` into ``dest/member_dir`` atomically.

    The members are extracted into a temporary folder beside ``dest``, their md5s
    checked, and the folder renamed into place.
    """
    final = dest / member_dir
    tmpdir = Path(tempfile.mkdtemp(dir=dest, prefix=f".{member_dir}.", suffix=".part"))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [
                m
                for m in tar.getmembers()
                if m.isfile() and m.name.split("/")[0] == member_dir
            ]
            for m in members:
                rel = Path(*m.name.split("/")[1:])
                if ".." in rel.parts or rel.is_absolute():
                    raise CorruptFileError(f"{archive}: unsafe member name {m.name}")
                target = tmpdir / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                assert src is not None
                with open(target, "wb") as f:
                    shutil.copyfileobj(src, f)
        for name, md5 in md5s.items():
            p = tmpdir / name
            if not p.exists():
                raise CorruptFileError(
                    f"{archive} does not contain {member_dir}/{name}"
                )
            if md5sum(p) != md5:
                raise CorruptFileError(f"{archive}: {member_dir}/{name} has a bad md5")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmpdir, final)
        return final
    except (tarfile.TarError, EOFError) as err:
        raise CorruptFileError(f"{archive} cannot be extracted: {err}") from err
    finally:
        if tmpdir.exists():
            shutil.rmtree(tmpdir, ignore_errors=True)

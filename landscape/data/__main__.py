"""``python -m landscape.data``: download, verify and locate the datasets used by
landscape. The data root is --root, else $LANDSCAPE_DATA, else the per-user cache
(see `info`).

Examples::

    python -m landscape.data info
    python -m landscape.data download mnist --root data
    python -m landscape.data download cifar10 --mirror file:///mnt/mirror/
    python -m landscape.data download cifar100 svhn tiny-imagenet

ImageNet cannot be downloaded without registration: put its validation set sorted
into class folders at ROOT/imagenet/val/<wnid>/*.JPEG.
"""

from __future__ import annotations

import argparse
import os

from .. import _cli, io
from . import DATASETS, MIRRORS, DatasetNotFoundError, download, md5sum, resolve_root
from ._download import DownloadError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = _cli.parser("python -m landscape.data", __doc__)
    p.add_argument(
        "--debug", action="store_true", help="show the traceback of an error"
    )
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("download", help="download a dataset and verify its md5 sums")
    d.add_argument(
        "name",
        nargs="+",
        choices=[n for n, s in DATASETS.items() if s.downloadable] + ["all"],
        help="dataset(s) to download",
    )
    d.add_argument(
        "--root",
        default=None,
        help="data root (default: $LANDSCAPE_DATA, else the per-user cache)",
    )
    d.add_argument(
        "--mirror",
        action="append",
        default=None,
        help="base URL to try instead of the standard sources (repeatable; file:// ok)",
    )
    d.add_argument("--force", action="store_true", help="re-download valid files too")
    d.add_argument("--timeout", type=float, default=30.0, help="socket timeout (s)")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    i = sub.add_parser("info", help="show the data root and which files are present")
    i.add_argument(
        "--root",
        default=None,
        help="data root (default: $LANDSCAPE_DATA, else the per-user cache)",
    )
    i.add_argument("--verify", action="store_true", help="also check md5 sums (slower)")
    return p


def _info(root_arg: str | None, verify: bool) -> int:
    root = resolve_root(root_arg)
    src = (
        "--root"
        if root_arg
        else (
            "$LANDSCAPE_DATA"
            if os.environ.get("LANDSCAPE_DATA")
            else "the per-user cache"
        )
    )
    print(f"data root: {root.resolve()} ({src})")
    for name, spec in DATASETS.items():
        folder = root / spec.folder
        if not spec.files:  # a folder or its archive (cifar10-jpeg, tiny-imagenet)
            aname = spec.archive[0] if spec.archive else spec.folder + ".tar.gz"
            archive = root / aname
            where = folder if folder.is_dir() else archive if archive.exists() else None
            print(f"  {name:<14} {'present: ' + str(where) if where else 'missing'}")
            if where is None and spec.downloadable:
                print(
                    f"      fix: python -m landscape.data download {name} --root {root}"
                )
            continue
        status = []
        for f, md5 in spec.files.items():
            p = folder / f
            if not p.exists():
                status.append(f"{f}: missing")
            elif verify:
                status.append(f"{f}: {'ok' if md5sum(p) == md5 else 'BAD MD5'}")
        ok = all(s.endswith("ok") for s in status) if verify else not status
        head = "ok" if ok else "incomplete"
        print(f"  {name:<14} {head} ({folder})")
        for s in status:
            if not s.endswith(": ok"):
                print(f"      {s}")
        if not ok and spec.downloadable:
            print(f"      fix: python -m landscape.data download {name} --root {root}")
    return 0


def _main(args: argparse.Namespace) -> int:
    if args.command == "info":
        return _info(args.root, args.verify)
    names = (
        [n for n, s in DATASETS.items() if s.downloadable]
        if "all" in args.name
        else args.name
    )
    io.check_writable(resolve_root(args.root), folder=True, what="the data root")
    for name in names:
        try:
            folder = download(
                name,
                args.root,
                mirrors=args.mirror,
                force=args.force,
                timeout=args.timeout,
                progressbar=not args.quiet,
            )
        except (DownloadError, DatasetNotFoundError, OSError) as err:
            mirrors = ", ".join(args.mirror or MIRRORS[name])
            raise _cli.CLIError(
                f"{' '.join(str(err).split())} (mirrors tried: {mirrors})",
                "check the network, or pass --mirror URL (file:// works) or copy the "
                "files into the folder named above",
            ) from err
        print(f"{name}: verified files in {folder}")
    return 0


main = _cli.entry(_parser, _main)

if __name__ == "__main__":
    raise SystemExit(main())

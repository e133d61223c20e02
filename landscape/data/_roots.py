"""Where the data files live: an explicit root, ``$LANDSCAPE_DATA``, or the per-user
cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["default_root", "resolve_root"]


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

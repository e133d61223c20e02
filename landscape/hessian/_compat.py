"""Old keyword names of the hessian functions, kept as deprecated aliases.

Issue 13 settled one vocabulary: ``num`` for how many eigenpairs (as
``directions.random_directions(num=...)`` and ``directions.eigen_directions(num=...)``)
and ``chunk_size`` for how many vectors one batched product multiplies (as
``surface.loss_surface(chunk_size=...)`` and ``scattering.scattering(chunk_size=...)``).
The old names ``k`` and ``batch_vectors`` still work for one release, with one
``DeprecationWarning`` at the caller.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["renamed", "DEFAULTS"]

# the defaults of the renamed keywords: a value equal to it counts as "not given"
DEFAULTS = {"num": 1, "chunk_size": 8}


def renamed(
    where: str, new: str, value: Any, old: str, old_value: Any, stacklevel: int = 3
) -> Any:
    """The value of keyword ``new`` when the caller may have used its old name ``old``.

    ``old_value`` is ``None`` when the old name was not given; otherwise it wins, with
    a ``DeprecationWarning`` pointing at the caller of ``where``. Giving both names
    with different values is an error.

    Example:
        >>> renamed("top_eigenvalues", "num", 3, "k", None)
        3
    """
    if old_value is None:
        return value
    if value != DEFAULTS[new] and value != old_value:
        raise TypeError(f"{where}: pass {new}= only ({old}= is its old name)")
    warnings.warn(
        f"{where}: {old}= is deprecated; pass {new}= instead",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return old_value

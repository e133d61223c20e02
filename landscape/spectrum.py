"""Hessian eigenvalue density by stochastic Lanczos quadrature (SLQ): an alias.

The code lives in :mod:`landscape.hessian` (``hessian.lanczos_density``,
``hessian.lanczos_quadrature``, ``hessian.slq`` for any linear operator, ``Density``,
``LanczosQuadrature``, ``papyan_bandwidth``); this module keeps the names that users
already call, ``spectrum.lanczos_density(model, loss_fn, data, ...)``, by answering
every name of :mod:`landscape.hessian` with the same object.

Example:
    >>> from landscape import hessian, spectrum
    >>> spectrum.lanczos_density is hessian.lanczos_density
    True
"""

from __future__ import annotations

from typing import Any

from . import hessian as _hessian

__all__ = list(_hessian.__all__)


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(_hessian, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

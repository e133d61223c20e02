"""Hessian eigenvalue density by stochastic Lanczos quadrature (SLQ).

The code lives in :mod:`landscape.hessian` (``hessian.lanczos_density``,
``hessian.slq`` for any linear operator); this module keeps the public names that
users already call: ``spectrum.lanczos_density(model, loss_fn, data, ...)``.
"""

from __future__ import annotations

from .hessian import (
    Density,
    LanczosQuadrature,
    lanczos_density,
    lanczos_quadrature,
    papyan_bandwidth,
    slq,
)

__all__ = [
    "Density",
    "LanczosQuadrature",
    "slq",
    "lanczos_quadrature",
    "lanczos_density",
    "papyan_bandwidth",
]

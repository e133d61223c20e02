"""landscape: the loss landscape of adversarial training.

Submodules are imported on first use, so ``landscape.hessian.top_eigenvalues(...)``
works after ``import landscape`` and the command-line tools start fast.
``python -m landscape`` lists the command-line tools.

The modules sit in layers and import only their own layer and the ones below
(``tests/test_imports.py`` checks it, with no cycle): the foundation (``_utils``,
``io``, ``_batches``, ``_cli``), the inputs (``data``, ``models``, ``attacks``,
``schedules``), the analyses (``checkpoints``, ``directions``, ``hessian``,
``surface``, ``scattering``, ``certify``, ``sharpness``), training and evaluation (``train``,
``evaluate``, ``linear``, ``connectivity``), drawing (``plot``) and the applications
(``report``, ``demo``).
"""

from __future__ import annotations

import importlib
from typing import Any

from ._utils import seed_everything

__version__ = "0.1.0"

_SUBMODULES = (
    "attacks",
    "certify",
    "checkpoints",
    "connectivity",
    "data",
    "directions",
    "evaluate",
    "hessian",
    "io",
    "linear",
    "models",
    "plot",
    "report",
    "scattering",
    "schedules",
    "sharpness",
    "surface",
    "train",
)

__all__ = ["seed_everything", "__version__", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'landscape' has no attribute {name!r}")

"""All plotting (matplotlib, and plotly imported lazily). Compute modules never import
this package. Plot functions take a result and an optional axis and return the axis.

Parts (one private module per concern):
- ``_style``: ``PAPER_STYLE`` rc dict and shared helpers.
- ``_surfaces``: loss surfaces and lines (static and interactive 3D).
- ``_curves``: schedules, learning curves, linear theory, eps sweeps.
- ``_curvature``: eigenvalues and spectral densities.
- ``_scatter``: gradient-scattering statistics.

``python -m landscape.plot`` is the command-line tool (``landscape/plot/__main__.py``).
"""

from ._style import *  # noqa: F401,F403
from ._style import __all__ as _a0
from ._curves import *  # noqa: F401,F403
from ._curves import __all__ as _a1
from ._curvature import *  # noqa: F401,F403
from ._curvature import __all__ as _a2
from ._scatter import *  # noqa: F401,F403
from ._scatter import __all__ as _a3
from ._surfaces import *  # noqa: F401,F403
from ._surfaces import __all__ as _a4

__all__ = [*_a0, *_a1, *_a2, *_a3, *_a4]

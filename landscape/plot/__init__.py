"""All plotting (matplotlib, and plotly imported lazily). Compute modules never import
this package.

What the functions return, as in matplotlib and seaborn:

- ``plot_*`` functions take a result and an optional ``ax`` and return the Axes they
  drew on; those that draw several panels (:func:`plot_surfaces`,
  :func:`plot_run`, :func:`plot_connectivity`, ...) return the array of Axes, like
  ``plt.subplots``;
- ``*_figure`` functions build a whole figure and return the ``Figure``;
- ``surface_3d``, ``surfaces_3d``, ``contour_interactive`` and ``surfaces_menu``
  return a plotly ``Figure`` (write it with :func:`write_html`).

Save any of them with :func:`savefig` (``plot.savefig(ax, "surface.png")``; it finds
the figure of an Axes or an array of Axes, writes atomically and closes the figure), or
with matplotlib: ``ax.figure.savefig("surface.png")``. Save the computed result
first (``surf.save("surface.npz")``): a plotting error then costs no computation.

Parts (one private module per concern):
- ``_style``: ``PAPER_STYLE`` rc dict and shared helpers.
- ``_curves``: schedules and learning curves.
- ``_evaluation``: robust-accuracy tables and eps sweeps.
- ``_certify``: certified vs attacked robust accuracy (the bracket).
- ``_linear``: linear-classifier theory.
- ``_curvature``: eigenvalues and spectral densities.
- ``_scatter``: gradient-scattering statistics.
- ``_surfaces``: loss surfaces and lines (static and interactive 3D).
- ``_demo``: the overview figures of the main job (``python -m landscape.demo``).
- ``_connectivity``: loss / accuracy along curves between two models.
- ``_report``: the composite figures of :mod:`landscape.report`.
- ``_overfit``: robust overfitting (train / validation / test robust accuracy) and
  the landscape metrics tracked along a run.

``python -m landscape.plot`` is the command-line tool (``landscape/plot/__main__.py``).
"""

from . import (
    _certify,
    _connectivity,
    _curvature,
    _curves,
    _demo,
    _evaluation,
    _linear,
    _overfit,
    _report,
    _scatter,
    _style,
    _surfaces,
)
from ._certify import *  # noqa: F403
from ._connectivity import *  # noqa: F403
from ._curvature import *  # noqa: F403
from ._curves import *  # noqa: F403
from ._demo import *  # noqa: F403
from ._evaluation import *  # noqa: F403
from ._linear import *  # noqa: F403
from ._overfit import *  # noqa: F403
from ._report import *  # noqa: F403
from ._scatter import *  # noqa: F403
from ._style import *  # noqa: F403
from ._surfaces import *  # noqa: F403

__all__ = [
    name
    for part in (
        _style,
        _curves,
        _evaluation,
        _certify,
        _linear,
        _curvature,
        _scatter,
        _surfaces,
        _demo,
        _connectivity,
        _report,
        _overfit,
    )
    for name in part.__all__
]

"""One self-contained HTML report on any model: ``build_report`` and
``python -m landscape.report CHECKPOINT --dataset ...``.

The report holds the robust accuracy with the gradient-masking checks explained, the
top Hessian eigenvalues and spectral density, a 2D clean and adversarial loss surface
with an interactive 3D view, and gradient scattering; plus one PNG per section and a
JSON file of every number. ``--budget quick | standard | reviewer`` sizes it (the
names of the evaluation presets, with their meaning); finished sections are cached,
so an interrupted report resumes.

Parts:
- ``_budget``: the sizes each budget buys.
- ``_sections``: the analyses, one cached function per section.
- ``_html``: the page (images and plotly.js inlined; opens offline).
- ``_build``: :func:`build_report`.
"""

from ._budget import BUDGETS, Budget, budget
from ._build import Report, build_report
from ._cli import main
from ._html import CHECK_EXPLANATIONS
from ._sections import SECTIONS, first_samples

__all__ = [
    "BUDGETS",
    "Budget",
    "CHECK_EXPLANATIONS",
    "Report",
    "SECTIONS",
    "budget",
    "build_report",
    "first_samples",
    "main",
]

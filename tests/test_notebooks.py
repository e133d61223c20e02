"""Notebooks under the backend a Jupyter user gets (matplotlib-inline), not only Agg.

``make test`` also runs the notebooks with nbmake under ``MPLBACKEND=Agg``; that run
cannot see a figure that fails to display, so this file executes them in a real kernel
with the inline backend and checks that every plotting cell has an image output.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
INLINE = "module://matplotlib_inline.backend_inline"

# a cell that calls one of these draws a matplotlib figure
_MPL_CALL = re.compile(
    r"\bplot\.(plot_\w+|subplots|new_axes|evaluation_figure|\w+_figure)\("
    r"|\bplt\.\w+\(|\.imshow\("
)
_PLOTLY_CALL = re.compile(r"\bplot\.surface_3d\(")


def _execute(nb, monkeypatch, tmp_path: Path, timeout: int = 600, **kwargs):
    monkeypatch.setenv("MPLBACKEND", INLINE)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    client = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
        **kwargs,
    )
    client.execute()
    return nb


def _mimes(cell) -> set[str]:
    return {m for o in cell.get("outputs", []) for m in o.get("data", {})}


def test_first_figure_in_a_kernel_keeps_later_figures_displayed(monkeypatch, tmp_path):
    """The kernel's first figure made by ``plot.new_axes`` (inside the paper style)
    left interactive mode off, so later cells printed ``Text(...)`` and no image."""
    cells = [
        "from landscape import plot\nax = plot.new_axes()\nax.plot([0, 1])",
        "ax = plot.new_axes()\nax.plot([1, 0])\nax.set_ylabel('lr')",
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([0, 2])",
        "fig, axes = plot.subplots(1, 2)\naxes[0].plot([0, 3])",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    _execute(nb, monkeypatch, tmp_path, timeout=120, allow_errors=True)
    missing = [i for i, c in enumerate(nb.cells) if "image/png" not in _mimes(c)]
    assert not missing, (
        f"cells {missing} show no figure: {nb.cells[missing[0]].outputs}"
    )


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_shows_every_figure_inline(path, data_root, monkeypatch, tmp_path):
    """Execute the notebook (default ``FULL = False``) under the inline backend; every
    cell that draws with matplotlib shows a PNG, every plotly cell a plotly figure."""
    monkeypatch.setenv("LANDSCAPE_DATA", str(data_root))
    nb = _execute(nbformat.read(path, as_version=4), monkeypatch, tmp_path)
    plotting = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        src, mimes = cell.source, _mimes(cell)
        if _MPL_CALL.search(src):
            plotting += 1
            assert "image/png" in mimes, f"{path.name} cell {i} shows no image:\n{src}"
        if _PLOTLY_CALL.search(src):
            plotting += 1
            assert "application/vnd.plotly.v1+json" in mimes or "text/html" in mimes, (
                f"{path.name} cell {i} shows no plotly figure:\n{src}"
            )
    assert plotting, f"{path.name} has no plotting cell (the pattern missed them?)"

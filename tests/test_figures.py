"""Every figure script runs with ``--smoke`` and writes non-empty figures; the shared
figure helpers cache and redraw.

The scripts are found by globbing ``figures/fig*.py``, so a new script is tested
without editing this file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, _find_data_root

FIG_DIR = REPO / "figures"
SCRIPTS = sorted(FIG_DIR.glob("fig*.py"))
FIGURE_SUFFIXES = {".png", ".pdf", ".html", ".svg"}
SMOKE_TIMEOUT = (
    300  # seconds; the target is < 30 s, this is a hang guard on shared CPUs
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    )
    env.setdefault("MPLBACKEND", "Agg")
    root = _find_data_root()
    if root is not None:
        env.setdefault("LANDSCAPE_DATA", str(root))
    return env


def _results_snapshot(stem: str) -> dict[str, float]:
    """Files of data/results/ that belong to one figure script (name starts with it)."""
    res = REPO / "data" / "results"
    if not res.exists():
        return {}
    return {str(p): p.stat().st_mtime for p in res.rglob(f"{stem}*") if p.is_file()}


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_figure_script_smoke(script: Path, tmp_path: Path) -> None:
    """``figNN.py --smoke --out-dir TMP`` exits 0, writes at least one non-empty figure
    there, leaves ``data/results`` alone, and a second run redraws from its cache."""
    doc = script.read_text().lstrip()
    assert doc.startswith(('"""', "'''", "#!")), f"{script.name}: no module docstring"
    before = _results_snapshot(script.stem)
    cmd = [sys.executable, str(script), "--smoke", "--out-dir", str(tmp_path)]
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT,
    )
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed (rc={proc.returncode})\n"
        f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
    )
    figures = [p for p in tmp_path.rglob("*") if p.suffix in FIGURE_SUFFIXES]
    assert figures, (
        f"{script.name} --smoke wrote no figure (.png/.pdf/.html/.svg) into "
        f"{tmp_path}; found {[p.name for p in tmp_path.rglob('*')]}"
    )
    empty = [
        p.name for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size == 0
    ]
    assert not empty, f"{script.name} wrote empty files: {empty}"
    assert _results_snapshot(script.stem) == before, (
        f"{script.name} --smoke modified data/results/: smoke runs must cache into "
        "the --out-dir (or a temporary folder)"
    )
    # Redraw from the cache: when the run left cached results in the out-dir, a second
    # run must reuse them (cache files untouched) and still write every figure.
    caches = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npz")}
    if not caches:
        return
    for p in figures:
        p.unlink()
    proc2 = subprocess.run(
        cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=SMOKE_TIMEOUT
    )
    assert proc2.returncode == 0, proc2.stderr[-4000:]
    for p in figures:
        assert p.exists() and p.stat().st_size > 0, f"{p.name} not redrawn from cache"
    changed = [p.name for p, m in caches.items() if p.stat().st_mtime_ns != m]
    assert not changed, (
        f"{script.name}: the second --smoke run recomputed {changed} instead of "
        "redrawing from the cache"
    )


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_figure_script_help(script: Path, monkeypatch, capsys) -> None:
    """``main(["--help"])`` works (in-process: cheap) and documents the size flags."""
    import importlib.util

    monkeypatch.syspath_prepend(str(FIG_DIR))
    spec = importlib.util.spec_from_file_location(f"_fig_{script.stem}", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert callable(getattr(mod, "main", None)), f"{script.name} has no main(argv)"
    with pytest.raises(SystemExit) as exc:
        mod.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--smoke", "--full", "--out-dir"):
        assert flag in out, f"{script.name} --help does not mention {flag}"


# ----------------------------------------------------------------- _common helpers


@pytest.fixture
def common(monkeypatch):
    monkeypatch.syspath_prepend(str(FIG_DIR))
    import _common

    return _common


def test_cached_computes_once_then_loads(common, tmp_path):
    args = common.parser("doc").parse_args(["--smoke", "--out-dir", str(tmp_path)])
    ctx = common.setup(args, "figtest")
    assert ctx.size == "smoke" and ctx.out_dir == tmp_path
    assert ctx.cache_dir == tmp_path / "results"
    calls = []

    def compute():
        calls.append(1)
        return common.FigureData(
            arrays={"curve": np.linspace(0, 1, 5)},
            table={"rows": [["constant", 0.25, None]], "note": "x"},
        )

    a = common.cached(ctx, "figtest", compute)
    b = common.cached(ctx, "figtest", compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(a.arrays["curve"], np.linspace(0, 1, 5))
    np.testing.assert_array_equal(b.arrays["curve"], a.arrays["curve"])
    assert b.table == {"rows": [["constant", 0.25, None]], "note": "x"}
    assert b.meta["size"] == "smoke" and "compute_seconds" in b.meta
    assert (tmp_path / "results" / "figtest_smoke.npz").stat().st_size > 0

    args = common.parser("doc").parse_args(
        ["--smoke", "--out-dir", str(tmp_path), "--recompute"]
    )
    common.cached(common.setup(args, "figtest"), "figtest", compute)
    assert len(calls) == 2


def test_sizes_and_default_folders(common, tmp_path):
    p = common.parser("doc")
    ctx = common.setup(p.parse_args(["--out-dir", str(tmp_path)]), "figx")
    assert ctx.size == "cpu" and ctx.cache_dir == common.RESULTS
    assert ctx.pick(1, 2, 3) == 2
    ctx = common.setup(p.parse_args(["--full", "--out-dir", str(tmp_path)]), "figx")
    assert ctx.size == "full" and ctx.pick(1, 2, 3) == 3
    ctx = common.setup(p.parse_args(["--smoke"]), "figx")
    assert ctx.out_dir != common.FIGURES_OUT and ctx.out_dir.exists()
    with pytest.raises(SystemExit):
        p.parse_args(["--smoke", "--full"])


def test_save_figure_writes_png_and_pdf(common, tmp_path):
    import matplotlib.pyplot as plt

    ctx = common.setup(
        common.parser("d").parse_args(["--smoke", "--out-dir", str(tmp_path)]), "figy"
    )
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    paths = common.save_figure(fig, ctx)
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    assert (tmp_path / "figy.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "figy.pdf").read_bytes()[:4] == b"%PDF"

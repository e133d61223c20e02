"""Surface plots, self-contained HTML, and the ``python -m landscape.plot`` CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from landscape import directions as D  # noqa: E402
from landscape import io as lio  # noqa: E402
from landscape import models  # noqa: E402
from landscape import plot as P  # noqa: E402
from landscape import surface as S  # noqa: E402
from landscape.plot import __main__ as cli  # noqa: E402
from landscape.surface.__main__ import main as surface_main  # noqa: E402


def _surf(scale: float = 1.0, adversarial: str | None = None) -> S.Surface:
    xs, ys = np.linspace(-1, 1, 9), np.linspace(-1, 1, 7)
    X, Y = np.meshgrid(xs, ys)
    loss = scale * (0.1 + X**2 + 2 * Y**2)
    meta = {"adversarial": adversarial or "clean", "eps": 0.3 if adversarial else None}
    return S.Surface(xs, ys, loss, np.exp(-loss), meta)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("kind", ["contour", "contourf"])
@pytest.mark.parametrize("log", [False, True])
def test_plot_surface_draws_levels_and_centre(kind, log):
    s = _surf()
    ax = P.plot_surface(
        s, kind=kind, log=log, levels=12, points=[[0.5, 0.5]], point_labels=["p"]
    )
    cs = next(c for c in ax.collections if hasattr(c, "levels"))
    lv = np.asarray(cs.levels)
    assert lv.min() >= s.loss.min() - 1e-12 and lv.max() <= s.loss.max() + 1e-12
    if log:  # geometric spacing: constant ratio between levels
        np.testing.assert_allclose(
            np.diff(np.log(lv)), np.log(lv[1] / lv[0]), rtol=1e-6
        )
    else:
        np.testing.assert_allclose(np.diff(lv), lv[1] - lv[0], rtol=1e-6)
    xy = [tuple(line.get_xydata()[0]) for line in ax.lines]
    assert (0.0, 0.0) in xy and (0.5, 0.5) in xy  # centre star and the extra point
    assert ax.get_title() == "clean loss"


def test_plot_surfaces_shares_colour_scale():
    s1, s2 = _surf(1.0), _surf(3.0, "fixed")
    axes = P.plot_surfaces([s1, s2], titles=["eps 0", "eps 0.3"], log=True)
    norms = [next(c for c in ax.collections if hasattr(c, "norm")).norm for ax in axes]
    assert norms[0].vmin == norms[1].vmin == pytest.approx(s1.loss.min())
    assert norms[0].vmax == norms[1].vmax == pytest.approx(s2.loss.max())
    fig = axes[0].figure
    assert len(fig.axes) == 3  # two panels + one shared colour bar
    axes2 = P.plot_surfaces([s1, s2], share_scale=False)
    n2 = [next(c for c in ax.collections if hasattr(c, "norm")).norm for ax in axes2]
    assert n2[0].vmax == pytest.approx(s1.loss.max()) != n2[1].vmax


def test_plot_line_and_accuracy():
    s = _surf()
    line = S.Surface(s.xs, None, s.loss[3], s.accuracy[3], {})
    ax = P.plot_line([line, s], labels=["line", "row y=0"], log=True)
    ys = [ln.get_ydata() for ln in ax.lines if len(ln.get_xdata()) == len(s.xs)]
    np.testing.assert_allclose(ys[0], ys[1])  # the 2D surface contributes its y=0 row
    assert ax.get_yscale() == "log"
    ax = P.plot_surface(line, which="accuracy")  # a line falls back to plot_line
    np.testing.assert_allclose(ax.lines[0].get_ydata(), s.accuracy[3])
    with pytest.raises(ValueError, match="no accuracy"):
        P.plot_surface(S.Surface(s.xs, s.ys, s.loss, None, {}), which="accuracy")


def _check_html(path):
    text = path.read_text()
    assert '<script src="http' not in text
    assert re.search(r"<script[^>]*\bsrc=", text) is None  # no external script at all
    assert "plotly.js v" in text or "Plotly" in text[:200000]  # the library itself
    assert len(text) > 1_000_000  # plotly.js embedded (several MB)
    return text


def test_plotly_figures_and_self_contained_html(tmp_path):
    s = _surf()
    fig = P.surface_3d(s, log=True)
    np.testing.assert_allclose(np.asarray(fig.data[0].z), np.log10(s.loss))
    assert fig.data[1].z[0] == pytest.approx(np.log10(s.loss[3, 4]))  # the centre
    c = P.contour_interactive(s)
    np.testing.assert_allclose(np.asarray(c.data[0].z), s.loss)
    p = P.write_html(fig, tmp_path / "s.html")
    _check_html(p)
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temporary left over


def test_cli_draws_saved_surface(tmp_path, capsys):
    a = _surf().save(tmp_path / "a.npz")
    b = _surf(2.0, "fixed").save(tmp_path / "b.npz")
    figs = tmp_path / "figs"
    assert cli.main([str(a), "-o", str(figs)]) == 0  # the folder, png by default
    assert (figs / "a.png").read_bytes()[:4] == b"\x89PNG"
    argv = [str(a), str(b), "-o", str(figs), "--format", "pdf", "--name", "ab"]
    assert cli.main([*argv, "--log"]) == 0
    assert (figs / "ab.pdf").read_bytes()[:4] == b"%PDF"
    assert cli.main([str(a), "-o", str(figs), "--format", "html"]) == 0
    _check_html(figs / "a.html")
    argv = [str(a), "-o", str(figs), "--kind", "contour", "--format", "html"]
    assert cli.main([*argv, "--name", "c"]) == 0
    _check_html(figs / "c.html")
    assert f"wrote {figs / 'c.html'}" in capsys.readouterr().out
    # -o is a folder: a file name is an error that says so
    assert cli.main([str(a), "-o", str(tmp_path / "a.png")]) == 2
    assert "takes the folder of this run" in capsys.readouterr().err
    assert cli.main([str(a), "--kind", "3d", "--format", "png", "-o", str(figs)]) == 2
    assert "--format html" in capsys.readouterr().err


def test_cli_dispatch_on_stored_class(tmp_path):
    assert cli._plot_function("Surface") is P.plot_surface
    assert cli._plot_function("TrainResult") is P.plot_run
    assert cli._result_class("TrainResult").__module__.startswith("landscape.train")
    assert type(cli.load_result(_surf().save(tmp_path / "s.npz"))).__name__ == "Surface"
    with pytest.raises(TypeError, match="no landscape module"):
        cli._result_class("NoSuchResult")
    np.savez(tmp_path / "n.npz", __meta__=np.array(json.dumps({"__class__": ""})))
    with pytest.raises(TypeError, match="__class__"):
        cli.load_result(tmp_path / "n.npz")


def test_cli_help_explains_every_option(capsys):
    for main, argv in ((cli.main, ["--help"]), (surface_main, ["compute", "--help"])):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in (
        "--kind",
        "--log",
        "--grid",
        "--adversarial",
        "--eps",
        "--to",
        "--partial",
    ):
        assert opt in out


def test_cli_computes_surface_from_checkpoint(tmp_path):
    torch.manual_seed(0)
    kw = {"in_shape": [1, 4, 4], "num_classes": 3, "hidden": [5]}
    model = models.build("mlp", **kw)
    ckpt = tmp_path / "ckpt.pt"
    lio.atomic_save_torch(
        {"model": model.state_dict(), "arch": "mlp", "arch_kwargs": kw}, ckpt
    )
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(30, 1, 4, 4, generator=g), torch.randint(0, 3, (30,), generator=g)
    torch.save({"x": x, "y": y}, tmp_path / "data.pt")
    out = tmp_path / "surf"
    argv = [
        "compute",
        str(ckpt),
        "--data",
        str(tmp_path / "data.pt"),
        "--grid",
        "-1",
        "1",
        "3",
    ]
    argv += ["-o", str(out), "--no-progress"]
    argv += ["--save-directions", str(tmp_path / "dirs.pt")]
    assert surface_main(argv) == 0
    assert cli.main([str(out / "surface.npz"), "-o", str(out)]) == 0
    s = S.Surface.load(out / "surface.npz")
    assert s.loss.shape == (3, 3) and (out / "surface.png").exists()
    with torch.no_grad():
        plain = float(nn.CrossEntropyLoss()(model.eval()(x), y))
    assert s.loss[1, 1] == pytest.approx(plain, rel=1e-6)
    assert s.meta["checkpoint"] == str(ckpt) and s.meta["norm"] == "filter"
    # the saved directions reproduce the surface (same data, same grid)
    dirs = D.eigen_directions(torch.load(tmp_path / "dirs.pt"), like=model)
    again = S.loss_surface(model, nn.CrossEntropyLoss(), [(x, y)], dirs, xs=[-1, 0, 1])
    np.testing.assert_allclose(again.loss, s.loss, rtol=1e-6)
    # adversarial line towards a second checkpoint
    model2 = models.build("mlp", **kw)
    ck2 = tmp_path / "ckpt2.pt"
    lio.atomic_save_torch(
        {"model": model2.state_dict(), "arch": "mlp", "arch_kwargs": kw}, ck2
    )
    out2 = tmp_path / "line"
    argv = ["compute", str(ckpt), "--data", str(tmp_path / "data.pt"), "--to", str(ck2)]
    argv += [
        "--grid",
        "0",
        "1",
        "2",
        "--adversarial",
        "fixed",
        "--eps",
        "0.1",
        "--steps",
        "2",
    ]
    assert surface_main([*argv, "-o", str(out2), "--no-progress"]) == 0
    line = S.Surface.load(out2 / "surface.npz")
    assert line.is_line and line.meta["adversarial"] == "fixed"
    assert line.loss[0] > plain  # adversarial examples raise the loss at the centre


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed")
def test_html_renders_in_headless_chromium(tmp_path):
    p = P.write_html(P.surface_3d(_surf()), tmp_path / "s.html")
    cmd = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu",
        "--virtual-time-budget=5000", "--dump-dom", p.as_uri(),
    ]  # fmt: skip
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=90).stdout
    assert "js-plotly-plot" in dom and 'class="main-svg"' in dom  # plotly rendered


def test_surfaces_3d_side_by_side_shared_scale():
    s1, s2 = _surf(1.0), _surf(3.0, "fixed")
    fig = P.surfaces_3d([s1, s2], titles=["a", "b"])
    assert len(fig.data) == 2 and fig.data[0].showscale and not fig.data[1].showscale
    for tr in fig.data:
        assert tr.cmin == pytest.approx(s1.loss.min())
        assert tr.cmax == pytest.approx(s2.loss.max())
    np.testing.assert_allclose(np.asarray(fig.data[1].z), s2.loss)
    with pytest.raises(ValueError, match="2D"):
        P.surfaces_3d([S.Surface(s1.xs, None, s1.loss[0], None, {})])

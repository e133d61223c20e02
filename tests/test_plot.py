"""Plots that explain themselves: legends, labels, colour ticks, fits, page titles."""

from __future__ import annotations

import types

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from landscape import plot as P  # noqa: E402
from landscape import surface as S  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _surf(lo: float, hi: float) -> S.Surface:
    xs = ys = np.linspace(-1, 1, 9)
    X, Y = np.meshgrid(xs, ys)
    r = (X**2 + Y**2) / 2  # in [0, 1]
    return S.Surface(xs, ys, lo * (hi / lo) ** r, None, {"adversarial": "clean"})


def _colorbar_ticks(ax) -> np.ndarray:
    cbar_ax = ax.figure.axes[-1]
    return np.asarray(cbar_ax.get_yticks())


@pytest.mark.parametrize(
    ("lo", "hi", "log"),
    [(0.1, 3.0, True), (0.2, 0.9, True), (2.19, 2.32, True), (0.213, 0.977, False)],
)
def test_colour_bar_ticks_are_round_numbers(lo, hi, log):
    """Ticks were every 5th contour level (0.285, 0.471, ...); now round values."""
    ax = P.plot_surface(_surf(lo, hi), kind="contourf", log=log, levels=25)
    ticks = _colorbar_ticks(ax)
    assert len(ticks) >= 3
    assert ticks.min() >= lo * (1 - 1e-9) and ticks.max() <= hi * (1 + 1e-9)
    decades = np.floor(np.log10(ticks))
    mant = ticks / 10.0**decades
    if log and hi / lo > 3:  # 1, 2, 5 x 10^k (or finer mantissas 1..9)
        np.testing.assert_allclose(mant, np.round(mant), atol=1e-9)
    else:  # evenly spaced by 1, 2, 2.5 or 5 x 10^k
        step = np.diff(ticks)
        np.testing.assert_allclose(step, step[0], rtol=1e-6)
        m = step[0] / 10.0 ** np.floor(np.log10(step[0]))
        assert any(np.isclose(m, v) for v in (1, 2, 2.5, 5)), step[0]
        np.testing.assert_allclose(
            ticks / step[0], np.round(ticks / step[0]), atol=1e-6
        )


def test_html_page_has_a_title(tmp_path):
    fig = P.surface_3d(_surf(0.1, 1.0), title="adversarial loss, eps=0.1")
    text = P.write_html(fig, tmp_path / "s.html").read_text()
    assert "<title>adversarial loss, eps=0.1</title>" in text
    untitled = P.surfaces_3d([_surf(0.1, 1.0), _surf(0.2, 2.0)])
    text = P.write_html(
        untitled, tmp_path / "two_surfaces.html", title=None
    ).read_text()
    assert "<title>two surfaces</title>" in text
    text = P.write_html(untitled, tmp_path / "x.html", title="a < b").read_text()
    assert "<title>a &lt; b</title>" in text


def _excess_result(medians):
    eps = np.linspace(0, 0.3, len(medians))
    vals = np.asarray(medians, float)[:, None] * np.ones((1, 5))
    return types.SimpleNamespace(eps=eps, excess=lambda max_scale=None: vals)


def test_excess_fit_only_through_monotone_points():
    ax = P.plot_excess_vs_eps(_excess_result([0.1, 0.3, 0.35, 0.7]))
    labels = [line.get_label() for line in ax.lines]
    assert any(lab.startswith("fit") for lab in labels)
    ax = P.plot_excess_vs_eps(_excess_result([0.1, 0.6, 0.2, 0.7]))
    labels = [line.get_label() for line in ax.lines]
    assert not any("fit" in lab for lab in labels), labels  # no line drawn
    assert any("not monotone" in lab for lab in labels)  # and the legend says why
    ax = P.plot_excess_vs_eps(_excess_result([0.1, 0.6, 0.2, 0.7]), fit=True)
    fits = [line.get_label() for line in ax.lines if "fit" in line.get_label()]
    assert fits and "not monotone" in fits[0]


def _covered_points(ax) -> int:
    """Data vertices (segments subdivided) under the legend box, counted
    independently of the library's own helper."""
    fig = ax.figure
    fig.canvas.draw()
    box = ax.get_legend().get_window_extent()
    n = 0
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), float)
        t = np.linspace(0, 1, 20)[:, None, None]
        dense = (xy[:-1] + t * (xy[1:] - xy[:-1])).reshape(-1, 2)
        d = line.get_transform().transform(dense)
        n += int(
            ((d[:, 0] > box.x0) & (d[:, 0] < box.x1))
            .__and__((d[:, 1] > box.y0) & (d[:, 1] < box.y1))
            .sum()
        )
    return n


def test_legend_never_covers_the_curves():
    """Noisy curves fill the whole axis: no place inside is free, so the legend must
    go outside (it used to sit on top of the curves)."""
    g = np.random.default_rng(0)
    epochs = np.arange(1, 41)
    run = {
        "metrics": {
            "epoch": epochs,
            "train_acc": g.uniform(0, 1, 40),
            "test_clean_acc": g.uniform(0, 1, 40),
            "test_robust_acc": g.uniform(0, 1, 40),
        }
    }
    ax = P.plot_learning_curves(run)
    assert _covered_points(ax) == 0
    # a plot with room inside keeps its legend inside the axis
    quiet = {
        "metrics": {
            "epoch": epochs,
            "train_acc": np.linspace(0.0, 1.0, 40),  # diagonals: upper left is free
            "test_clean_acc": np.linspace(0.0, 0.95, 40),
            "test_robust_acc": np.linspace(0.0, 0.9, 40),
        }
    }
    ax = P.plot_learning_curves(quiet)
    assert _covered_points(ax) == 0
    box = ax.get_legend().get_window_extent()
    assert ax.get_window_extent().contains(box.x0 + 1, box.y0 + 1)


@pytest.mark.parametrize(
    ("keys", "label"),
    [
        (("train_acc", "test_clean_acc"), "accuracy (%)"),
        (("train_loss", "test_clean_loss"), "loss"),
        (("train_acc", "train_loss"), "accuracy (%) / loss"),
        (("grad_norm_mean",), "grad norm mean"),
    ],
)
def test_learning_curves_say_what_the_y_axis_is(keys, label):
    m = {k: np.linspace(0.1, 0.9, 3) for k in keys}
    ax = P.plot_learning_curves({"metrics": {"epoch": np.arange(3), **m}}, keys=keys)
    assert ax.get_ylabel() == label  # was "value" for anything but accuracies


def test_empty_panel_instead_of_a_repeated_surface():
    surfs = [None, _surf(0.1, 1.0), _surf(0.2, 2.0)]
    note = "eps = 0: adversarial = clean"
    axes = P.plot_surfaces(surfs, titles=[note, "a", "b"], log=True)
    assert not axes[0].axison and [t.get_text() for t in axes[0].texts] == [note]
    assert not axes[0].collections and axes[1].collections and axes[2].collections
    assert axes[1].get_xticks().size > 0  # shared axes keep their ticks
    assert len(axes[0].figure.axes) == 4  # three panels and one shared colour bar
    with pytest.raises(ValueError, match="at least one"):
        P.plot_surfaces([None])


def test_paper_style_keeps_interactive_mode():
    """Leaving the style context restored ``interactive`` too: the first figure of a
    Jupyter kernel (which switches it on) turned display off for all later cells."""
    before = matplotlib.is_interactive()
    try:
        matplotlib.interactive(False)
        with P.paper_style():
            matplotlib.interactive(True)  # what the inline backend does on first use
        assert matplotlib.is_interactive()
        with P.paper_style():
            assert plt.rcParams["font.size"] == P.PAPER_STYLE["font.size"]
    finally:
        matplotlib.interactive(before)


def test_attack_bars_say_what_the_numbers_on_top_are():
    res = types.SimpleNamespace(
        eps=np.array([0.1, 0.2]),
        per_attack_accuracy=lambda: {"pgd": np.array([0.6, 0.3])},
        broken_counts=lambda: {"pgd": np.array([4, 7])},
    )
    ax = P.plot_attack_bars(res)
    assert [t.get_text() for t in ax.texts] == ["-4", "-7"]
    assert "broke first" in ax.get_legend().get_title().get_text()  # was unexplained


def test_savefig_takes_what_a_plot_function_returns(tmp_path):
    """The getting-started example ends in a saved figure: plot functions return an
    Axes (several panels: an array of Axes, whole figures: a Figure), and
    ``plot.savefig`` saves any of them (before: a Figure only, so
    ``plot.savefig(plot.plot_surface(...), ...)`` failed)."""
    surf = _surf(0.1, 10.0)
    ax = P.plot_surface(surf, kind="contourf", log=True)
    assert isinstance(ax, matplotlib.axes.Axes)
    assert P.savefig(ax, tmp_path / "one.png") == [tmp_path / "one.png"]
    axes = P.plot_surfaces([surf, surf], titles=["a", "b"])
    assert P.figure_of(axes) is axes.flat[0].figure
    assert [p.suffix for p in P.savefig(axes, tmp_path / "two")] == [".png", ".pdf"]
    fig, _ = P.subplots()
    assert P.figure_of(fig) is fig and P.savefig(fig, tmp_path / "f.svg")
    for p in (tmp_path / "one.png", tmp_path / "two.png"):
        assert p.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(TypeError, match="write_html"):
        P.savefig(P.surface_3d(surf), tmp_path / "x.png")


def test_demo_overviews_have_one_readable_legend_and_whole_epochs():
    """learning_curves.png: the legend was in panel 1 only at 6 pt, epochs read 1.0 /
    1.5 / 2.0; scattering.png: the legend beside panel 1 left half the canvas empty.
    Now one figure legend below the panels (run names only), integer epoch ticks."""
    from landscape import demo  # noqa: F401  (the demo's labels)
    from landscape.demo._figures import _label

    assert _label("constant_eps0.2/fixed") == "eps = 0.2, fixed"  # was "eps0.2 fixed"
    m = {
        k: np.linspace(0.1, 0.9, 2)
        for k in ("train_loss", "train_acc", "test_robust_acc", "dist_init")
    }
    runs = {
        "eps = 0": {"metrics": {"epoch": np.arange(1, 3), **m}},
        "eps = 0.3": {"metrics": {"epoch": np.arange(1, 3), **m}},
    }
    axes = P.plot_training_overview(runs)
    fig = axes[0].figure
    fig.canvas.draw()
    assert all(ax.get_legend() is None for ax in axes)
    (leg,) = fig.legends
    texts = [t.get_text() for t in leg.get_texts()]
    assert (
        texts[:2] == ["eps = 0", "eps = 0.3"] and leg.get_texts()[0].get_fontsize() >= 8
    )
    for ax in axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks == [1.0, 2.0], ticks  # was 1.0, 1.2, ... 2.0


def test_plot_run_draws_robust_overfitting_and_tracked_metrics():
    """A run with a validation split and tracking gets a 2x3 grid: the robust
    curves and the landscape metrics at the tracked epochs only."""
    import matplotlib.pyplot as plt

    from landscape import plot

    nan = float("nan")
    ep = np.arange(1, 5)
    metrics = {
        "epoch": ep, "train_acc": ep / 10, "test_clean_acc": ep / 10,
        "test_robust_acc": np.array([0.1, 0.3, 0.25, 0.2]), "train_loss": 1 / ep,
        "test_clean_loss": 1 / ep, "eps": ep * 0 + 0.1, "lr": ep * 0 + 0.1,
        "dist_init": ep * 1.0, "train_robust_acc": ep / 5,
        "val_robust_acc": np.array([0.1, 0.35, 0.3, 0.2]),
        "lam_max_adv": np.array([1.0, nan, 3.0, nan]),
        "lam_max_residual_adv": np.array([0.1, nan, 0.1, nan]),
        "sharp_adv_w": np.array([0.01, nan, 0.03, nan]),
    }  # fmt: skip
    axes = plot.plot_run({"metrics": metrics})
    assert axes.shape == (2, 2)  # the classic panels, returned
    fig = axes.flat[0].figure
    assert len(fig.axes) >= 6
    over, tracked = fig.axes[2], fig.axes[5]
    assert [ln.get_label() for ln in over.lines] == ["train", "val", "test"]
    assert sorted(ln.get_label() for ln in tracked.lines) == [
        "lam_max_adv",
        "sharp_adv_w",
    ]
    assert all(len(ln.get_xdata()) == 2 for ln in tracked.lines)  # tracked epochs
    plt.close(fig)
    assert plot.tracked_keys(metrics) == ["lam_max_adv", "sharp_adv_w"]

"""Figure 2 (Liu et al., NeurIPS 2020, learning curves): adversarial training with a
constant eps schedule at several eps; with a large eps training stalls near the
initialisation.

LeNet on MNIST is trained with PGD at each eps from the start (constant schedule), and
per epoch we plot (a) the training loss at that eps (the robust training loss), (b) the
robust training accuracy, (c) the distance of the weights from their initialisation
``||w_t - w_0||`` and (d) the test robust accuracy at the training eps. The paper's
observation: as eps grows the robust loss stays near ``log 10`` (chance) for longer and
the weights move less; past some eps the model does not leave the initialisation.

Commands::

    python figures/fig02_learning_curves.py --smoke   # 256 images, eps 0 / 0.3, < 30 s
    python figures/fig02_learning_curves.py           # 2k images, 5 eps, 6 epochs, CPU
    python figures/fig02_learning_curves.py --full    # the paper's setting, GPU
    python figures/fig02_learning_curves.py --study   # CPU study tier (below)
    python figures/fig02_learning_curves.py --from-results   # redraw results/

``--study`` (claim 1; the shared zoo of ``figures/_study.py``): LeNet per eps in
{0, 0.1, 0.2, 0.3, 0.4} x seeds {0, 1, 2}, 8,000 training images, 8 epochs of PGD-5 (batch 256),
constant schedule, plus linear warm-up (eps 0.3, 0.4) and periodic (eps 0.4) runs of
the same length; final metrics on 2,000 test images. The table (results/) gives mean
+- std over seeds, how many seeds stalled (test clean accuracy < 20 %: the constant
classifier) and Welch's t-test of constant vs warm-up / periodic at eps 0.3 and 0.4.

Sizes: the default CPU size (LeNet, 2,000 training images, PGD-5 with step
``2.5 eps / 5``, Adam lr 1e-3, 6 epochs; about 5 to 10 minutes on one CPU core) is an
illustration of the trend, not the paper's numbers. ``--full`` is the paper's MNIST
setting (preset ``mnist-lenet``: all 60k images, 100 epochs, Adam lr 1e-4, PGD step 0.01
with ``eps / 0.01 + 10`` steps, eps in {0, 0.1, 0.2, 0.3, 0.4}): a GPU session.
Output: ``figures/out/fig02_learning_curves.{png,pdf}`` (``--out-dir`` to change).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import _study  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from landscape import train  # noqa: E402

NAME = "fig02_learning_curves"
NOTE = "CPU size: a few epochs on a data subset; the trend, not the paper's numbers"
COLUMNS = ("epoch", "train_loss", "train_acc", "dist_init", "test_robust_acc", "eps")


def settings(ctx: _common.Context) -> dict:
    """Sizes per ``--smoke`` / default / ``--full``: training eps, images, epochs,
    PGD steps and learning rate."""
    return dict(
        eps=ctx.pick((0.0, 0.3), (0.0, 0.1, 0.2, 0.3, 0.4), (0.0, 0.1, 0.2, 0.3, 0.4)),
        num_train=ctx.pick(256, 2000, None),
        num_test=ctx.pick(64, 200, 1000),
        epochs=ctx.pick(2, 6, 100),
        steps=ctx.pick(2, 5, None),
        lr=ctx.pick(1e-3, 1e-3, 1e-4),
    )


def _config(ctx: _common.Context, s: dict, eps: float) -> train.TrainConfig:
    if ctx.size == "full":
        return _common.paper_lenet_config(ctx, eps, eval_num=s["num_test"])
    return _common.small_lenet_config(
        ctx, s, eps, eval_num=s["num_test"], eval_steps=s["steps"]
    )


def compute(ctx: _common.Context) -> _common.FigureData:
    """Train one LeNet per eps (same initialisation) and keep its per-epoch metrics."""
    s = settings(ctx)
    x, y, xt, yt = _common.mnist(ctx, s["num_train"], s["num_test"])
    dev = ctx.device
    arrays: dict[str, np.ndarray] = {}
    for eps in s["eps"]:
        cfg = _config(ctx, s, eps)
        torch.manual_seed(ctx.seed)  # the same initial weights for every eps
        model = _common.model_for(cfg).to(dev)  # --full: the paper's width-16 LeNet
        s["num_params"] = _common.num_params(model)
        res = train.adversarial_train(
            model,
            (x.to(dev), y.to(dev)),
            cfg,
            test_data=(xt.to(dev), yt.to(dev)),
            progressbar=True,
        )
        for col in COLUMNS:
            arrays[f"eps{eps:g}/{col}"] = np.asarray(res.metrics[col], dtype=float)
    table = {
        "eps": list(s["eps"]),
        "settings": {k: v for k, v in s.items() if k != "eps"},
        "final": {
            f"{e:g}": {
                c: float(arrays[f"eps{e:g}/{c}"][-1])
                for c in ("train_loss", "train_acc", "dist_init", "test_robust_acc")
            }
            for e in s["eps"]
        },
    }
    return _common.FigureData(arrays=arrays, table=table)


def draw(fd: _common.FigureData, ctx: _common.Context) -> list[Path]:
    """Four panels: robust training loss, robust training accuracy, distance from the
    initialisation and test robust accuracy, one line per training eps."""
    import matplotlib.pyplot as plt

    from landscape import plot

    runs = {
        f"eps={e:g}": {
            "metrics": {c: fd.arrays[f"eps{e:g}/{c}"] for c in COLUMNS},
        }
        for e in fd.table["eps"]
    }
    with plt.rc_context(plot.PAPER_STYLE):
        fig, axes = plt.subplots(1, 4, figsize=(12.5, 2.9))
    plot.plot_learning_curves(runs, axes[0], keys=("train_loss",))
    axes[0].axhline(np.log(10), color="k", lw=0.6, ls=":", label="log 10 (chance)")
    axes[0].set_title("robust training loss")
    axes[0].legend(fontsize=6)
    plot.plot_learning_curves(runs, axes[1], keys=("train_acc",))
    axes[1].set_title("robust training accuracy (%)")
    plot.plot_distance_from_init(runs, axes[2])
    axes[2].set_title("distance from the initialisation")
    plot.plot_learning_curves(runs, axes[3], keys=("test_robust_acc",))
    axes[3].set_title("test robust accuracy (%), training eps")
    for ax in axes[[1, 3]]:
        ax.set_ylim(-2, 102)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    title = (
        f"MNIST LeNet, constant eps schedule ({ctx.size} size"
        + (", CPU illustration" if ctx.size != "full" else "")
        + ")"
    )
    return _common.save_figure(fig, ctx, title=title)


STUDY_RUNS = [("constant", e) for e in (0.0, 0.1, 0.2, 0.3, 0.4)] + [
    ("linear", 0.3),
    ("linear", 0.4),
    ("periodic", 0.4),
]
STUDY_COLUMNS = (
    "schedule",
    "eps",
    "seeds",
    "stalled",
    "train_loss",
    "train_acc_%",
    "dist_init",
    "test_clean_%",
    "test_pgd20_%_own_eps",
)


def study_compute(ctx: _common.Context, compute: bool = True) -> _common.FigureData:
    """Claim 1 from the zoo: per-epoch curves and final metrics per (schedule, eps,
    seed), summaries over seeds and the constant-vs-warm-up tests."""
    arrays: dict[str, np.ndarray] = {}
    rows, finals, specs = [], {}, []
    for sch, eps in STUDY_RUNS:
        got = []
        for seed in _study.SIZE["seeds"]:
            spec = _study.Spec(eps=eps, seed=seed, schedule=sch)
            specs.append(spec)
            fe = _study.final_eval(ctx, spec, compute=compute)
            if fe is None:
                continue
            got.append(fe)
            for col, v in _study.curves(ctx, spec).items():
                if col in (*COLUMNS, "test_clean_acc", "test_robust_acc_sched"):
                    arrays[f"{sch}/eps{eps:g}/s{seed}/{col}"] = v
        own = f"pgd20_acc@{eps:g}"
        summ = {
            k: _study.summary([g.get(k) for g in got])
            for k in ("final_train_loss", "final_train_acc", "final_dist_init")
        }
        summ["clean_acc"] = _study.summary([g["clean_acc"] for g in got])
        summ["robust_acc"] = _study.summary(
            [g[own] if eps > 0 else g["clean_acc"] for g in got]
        )
        summ["stalled"] = sum(bool(_study.stalled(g)) for g in got)
        finals[f"{sch}/{eps:g}"] = summ
        rows.append(
            [
                sch,
                eps,
                len(got),
                summ["stalled"],
                _study.fmt(summ["final_train_loss"], digits=3),
                _study.fmt(summ["final_train_acc"], 100),
                _study.fmt(summ["final_dist_init"], digits=2),
                _study.fmt(summ["clean_acc"], 100),
                _study.fmt(summ["robust_acc"], 100),
            ]
        )
    tests = {}
    for eps, other in ((0.3, "linear"), (0.4, "linear"), (0.4, "periodic")):
        a, b = finals.get(f"constant/{eps:g}"), finals.get(f"{other}/{eps:g}")
        if a and b:
            for k in ("clean_acc", "final_dist_init", "final_train_loss"):
                tests[f"{other} vs constant, eps {eps:g}, {k}"] = _study.welch(
                    b[k].get("values", []), a[k].get("values", [])
                )
    cost = sum(_study.cost(ctx, s) for s in specs)
    return _study.figure_data(
        arrays, STUDY_COLUMNS, rows, cost, finals=finals, tests=tests
    )


def _num_seeds(fd: _common.FigureData) -> str:
    """The number of seeds per run in the table, e.g. ``"1-3"``."""
    ns = sorted({int(r[2]) for r in fd.table["rows"] if int(r[2]) > 0})
    return "0" if not ns else f"{ns[0]}" if ns[0] == ns[-1] else f"{ns[0]}-{ns[-1]}"


def study_draw(fd: _common.FigureData, ctx: _common.Context) -> list[Path]:
    """Mean +- std over seeds per epoch: robust training loss, distance from the
    initialisation, test clean and robust accuracy; constant (solid) vs warm-up
    (dashed) and periodic (dotted)."""
    import matplotlib.pyplot as plt

    from landscape import plot

    with plt.rc_context(plot.PAPER_STYLE):
        fig, axes = plt.subplots(1, 4, figsize=(13, 3.1))
    keys = ("train_loss", "dist_init", "test_clean_acc", "test_robust_acc")
    titles = (
        "robust training loss",
        "distance from the initialisation",
        "test clean accuracy (%)",
        "test PGD-10 accuracy (%), target eps",
    )
    styles = {"constant": "-", "linear": "--", "cosine": "-.", "periodic": ":"}
    for i, (sch, eps) in enumerate(STUDY_RUNS):
        color = f"C{i % 10}"  # one colour per run family (the eps-0.4 ones differ)
        for ax, key in zip(axes, keys):
            ys = [
                v
                for k, v in fd.arrays.items()
                if k.startswith(f"{sch}/eps{eps:g}/") and k.endswith(f"/{key}")
            ]
            if not ys:
                continue
            scale = 100.0 if key.endswith("_acc") else 1.0
            x = np.arange(1, len(ys[0]) + 1)
            _study.band(
                ax,
                x,
                np.array(ys) * scale,
                label=f"{sch} eps={eps:g} (n={len(ys)})",
                color=color,
                ls=styles.get(sch, "-"),
            )
    axes[0].axhline(
        np.log(10), color="k", lw=0.6, ls=":", label="log 10 (uniform prediction)"
    )
    axes[2].axhline(11.35, color="k", lw=0.6, ls=":", label="11.35 % (one class)")
    for ax, t in zip(axes, titles):
        ax.set_title(t, fontsize=8)
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=5.5)
    spread = "mean +- std over seeds (n per line; no band for n = 1)"
    return _study.save_claim(fig, ctx, fd, "Claim 1: ", spread)


def _summary(fd: _common.FigureData, ctx: _common.Context) -> None:
    for e, row in fd.table["final"].items():
        print(
            f"[{NAME}] eps={e}: final robust train loss {row['train_loss']:.3f}, "
            f"train acc {row['train_acc']:.3f}, dist from init {row['dist_init']:.3f}, "
            f"test robust acc {row['test_robust_acc']:.3f}"
        )


STUDY = _study.tier(
    study_compute,
    study_draw,
    test_line=lambda k, t: f"{k}: diff {t['diff']}, p {t['p']}",
)
main = _common.figure_main(
    __doc__, NAME, compute, draw, show=_summary, note=NOTE, study=STUDY
)


if __name__ == "__main__":
    raise SystemExit(main())

"""Figure 10 (issue 26, robust overfitting; Rice et al., 2020): PGD-AT against AWP
(Wu et al., 2020), TRADES (Zhang et al., 2019) and an EMA of the weights, with the
landscape along the run.

Each method trains the same small CNN (LeNet width 8, ReLU: conv 16 / conv 32 and a
512-unit hidden layer, 1,068,266 parameters on CIFAR-10) from the same initialisation
per seed with the one trainer (``landscape.train.adversarial_train``): SGD, momentum
0.9, weight decay 5e-4, the learning rate divided by 10 at 50 % and 75 % of the
epochs (Rice et al.'s piecewise schedule), PGD-3 at eps 4/255 (linf; half of Rice et
al.'s 8/255, where this CNN on this little data barely leaves the constant
classifier). AWP (gamma 0.01) starts after 5 warm-up epochs: from the first epoch it
kept this CNN at the constant classifier (10 % clean accuracy through epoch 5 in the
first try). TRADES: beta 6; EMA: decay 0.99 of the PGD-AT weights, BatchNorm-free
here; PGD-AT's rows are the online weights of the EMA run (averaging never touches
the training: a separate PGD-AT run gave bitwise the same metrics, 33 columns x 20
epochs at seed 0), so 3 runs per seed give the 4 rows. A stratified
validation split of the training set is held out (``val_num``); every
``eval_every``-th epoch logs the clean and robust accuracy and loss of a fixed
training subset, the validation split and the test subset under the evaluation PGD
named in the table (keep="best": the loss at its returned points), and keeps
``best.pt`` (best validation robust accuracy). Every 5 epochs the run also records
(``Runtime(track=Tracking(...))``) the top Hessian eigenvalue of the loss at fixed
adversarial examples of a held-out batch (10 Lanczos steps, adversarial loss only)
and its adaptive worst-case sharpness (element-wise, L-inf, rho 0.005, 5 ascent
steps; Andriushchenko et al. 2023).

Panels: (a) robust accuracy and (b) robust loss on train / validation / test per
evaluated epoch (mean +- std over seeds), (c) the top eigenvalue and (d) the adaptive
sharpness along the run.
The table gives per method: best-vs-last test robust accuracy (the gap, with a 95 %
t-interval over seeds), the robust generalisation gap (train minus test robust
accuracy) at the last epoch, the landscape values at the last tracked epoch, the rise
of the robust test loss from its minimum to the last epoch, the tracking overhead, and
the verdict whether flatness tracks the robust generalisation gap at this size (see
``_verdict``).

Commands::

    python figures/fig10_robust_overfitting.py --smoke  # MNIST subset, seconds
    python figures/fig10_robust_overfitting.py          # CIFAR-10 JPEG subset, CPU
    python figures/fig10_robust_overfitting.py --study  # CPU study tier, 3 seeds
    python figures/fig10_robust_overfitting.py --full   # CIFAR-10, PreAct ResNet-18, GPU

Sizes: ``--smoke`` (256 MNIST images, 2 epochs, 1 seed) checks the code path only.
The default (CIFAR-10 JPEG copy, 500 training images + 200 validation, 200 test
images, 200 fixed training images for the robust train curve, 20 epochs of batch 64
at lr 0.03, evaluation PGD-3 every 2 epochs, tracking on 64 held-out examples every 5
epochs, 3 seeds x 4 methods) is the setting of the committed figure and table
(``results/fig10_robust_overfitting.{png,csv}``): 9 runs (EMA, AWP, TRADES x 3
seeds), each 3-8 minutes of wall time at load 6-12 on 2 shared cores (about 1.5
minutes of CPU: 8 min CPU for the last 5.5 runs), about 14 minutes of CPU in all;
redrawing from the finished run folders takes 20 s. ``--study`` (2,000
images, 60 epochs, PGD-5, 3 seeds) has not been run. ``--full`` is Rice et al.'s
setting (all of CIFAR-10, PreAct ResNet-18, 200 epochs, PGD-10) and needs a GPU.
Every run is a run folder under the cache folder (``fig10_runs/<size>/``): an
interrupted study resumes exactly. Output: ``figures/out/fig10_robust_overfitting.{png,
pdf}`` (``results/`` with ``--study``; the committed default-size one with ``--out-dir
results``) and a CSV table beside it.

Measured at the default size (3 seeds, 95 % t-intervals): robust overfitting in
Rice et al.'s sense (test robust accuracy at the best-validation epoch minus the last)
is **not shown**: 0.3 +- 1.9 points for PGD-AT, 0.0 +- 1.2 AWP, -0.2 +- 3.8 TRADES,
1.7 +- 6.3 EMA; what opens is the robust generalisation gap (train minus test robust
accuracy at the last epoch: PGD-AT 44 +- 11, TRADES 62 +- 6, AWP 12 +- 3 points) and
the robust test loss rises from its minimum (PGD-AT +0.15 +- 0.18, TRADES +0.11 +-
0.08, EMA +0.16 +- 0.13, AWP 0.00). Flatness tracks the robust gap over the 9 PGD-AT / AWP / TRADES runs
(Spearman 0.88, p = 0.0016): AWP is 4-5x flatter (top eigenvalue 14.7 vs 64-72,
adaptive sharpness 0.041 vs 0.16-0.20) with a 4-5x smaller gap, at a test robust
accuracy no different from PGD-AT's (25.3 +- 5.0 vs 22.5 +- 4.5 %); the correlation
is between methods (AWP against the others), and AWP's small gap comes with a robust
training accuracy of 37 % against 67-83 %: it fits the training set less, not the test
set better.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from landscape import attacks, evaluate, models, sharpness, train  # noqa: E402

NAME = "fig10_robust_overfitting"
NOTE = (
    "CPU size: a small CNN on a CIFAR-10 subset; the trend, not Rice et al.'s numbers"
)
METHODS = ("pgd-at", "awp", "trades", "ema")
# the runs: PGD-AT is the online model of the EMA run (the average never touches the
# training: the two runs' metrics were bitwise equal at seed 0, 33 columns x 20
# epochs), so one run gives both rows
RUNS = ("ema", "awp", "trades")
SPLITS = ("train", "val", "test")


def settings(ctx: _common.Context) -> dict:
    """Sizes per tier: data, epochs, attack steps, seeds, evaluation and tracking."""
    return dict(
        dataset=ctx.pick("mnist", "cifar10-jpeg", "cifar10-jpeg"),
        arch=ctx.pick("lenet", "lenet", "preact_resnet18"),
        width=ctx.pick(1, 8, 1),
        num_train=ctx.pick(256, 500, None, study=2000),
        val_num=ctx.pick(64, 200, 1000, study=500),
        num_test=ctx.pick(64, 200, 1000, study=500),
        train_eval_num=ctx.pick(64, 200, 1000, study=500),
        epochs=ctx.pick(2, 20, 200, study=60),
        steps=ctx.pick(2, 3, 10, study=5),
        eval_steps=ctx.pick(2, 3, 10, study=10),
        eval_every=ctx.pick(1, 2, 1, study=1),
        eps=ctx.pick(0.1, 4 / 255, 8 / 255, study=4 / 255),
        seeds=ctx.pick((0,), (0, 1, 2), (0, 1, 2), study=(0, 1, 2)),
        track_every=ctx.pick(1, 5, 10, study=5),
        track_num=ctx.pick(32, 64, 512, study=256),
        lr=ctx.pick(0.05, 0.03, 0.1, study=0.03),
        batch_size=ctx.pick(128, 64, 128, study=128),
        awp_warmup=ctx.pick(0, 5, 0, study=5),
    )


def _data(ctx: _common.Context, s: dict):
    if s["dataset"] == "mnist":
        x, y = _common.mnist_or_synthetic(ctx, s["num_train"] + s["val_num"])
        xt, yt = _common.mnist_or_synthetic(ctx, s["num_test"], "test")
        return x, y, xt, yt
    from landscape import data

    n = None if s["num_train"] is None else s["num_train"] + s["val_num"]
    x, y = data.load_dataset(
        s["dataset"], ctx.data_root, split="train", num_samples=n,
        generator=torch.Generator().manual_seed(ctx.seed),
    )  # fmt: skip
    xt, yt = data.load_dataset(
        s["dataset"], ctx.data_root, split="test", num_samples=s["num_test"],
        generator=torch.Generator().manual_seed(ctx.seed),
    )  # fmt: skip
    return x, y, xt, yt


def config(s: dict, method: str, seed: int, eps: float) -> train.TrainConfig:
    """The run of ``method`` (PGD-AT, AWP on PGD-AT, TRADES, EMA of PGD-AT)."""
    e = s["epochs"]
    tracking = train.Tracking(
        every=s["track_every"],
        epochs=(e,),
        num=s["track_num"],
        max_iter=10,
        num_matvecs=0,
        hessian_on=("adv",),
        sharpness=(
            sharpness.WorstCase(
                rho=0.005, norm="linf", adaptive="element", max_iter=5,
                label="adaptive_worst",
            ),
        ),
    )  # fmt: skip
    quick = evaluate.preset_attacks("quick", eps, "linf", steps=s["eval_steps"])[0]
    extra: dict = {}
    if method == "awp":
        extra["awp"] = train.AWP(gamma=0.01, warmup=s["awp_warmup"])
    elif method == "trades":
        extra["objective"] = train.TRADES(beta=6.0)
    elif method == "ema":
        extra["averaging"] = train.EMA(decay=0.99, bn="train", bn_num=256)
    return train.TrainConfig(
        epochs=e,
        batch_size=s["batch_size"],
        lr=s["lr"],
        weight_decay=5e-4,
        attack=attacks.PGD(eps=eps, steps=s["steps"], alpha_rel=2.5 / s["steps"]),
        lr_schedule="step",
        lr_kwargs={"milestones": [0.5 * e, 0.75 * e], "gamma": 0.1},
        seed=seed,
        val_num=s["val_num"],
        val_seed=0,
        model=s["arch"],
        model_kwargs={"width": s["width"]},
        runtime=train.Runtime(
            eval_num=s["num_test"],
            eval_attack=quick,
            eval_every=s["eval_every"],
            co_check_num=0,
            train_eval_num=s["train_eval_num"],
            track=tracking,
        ),
        **extra,
    )


def _run_folder(ctx: _common.Context, method: str, seed: int) -> Path:
    return ctx.cache_dir / "fig10_runs" / ctx.size / f"{method}_s{seed}"


def compute(ctx: _common.Context) -> _common.FigureData:
    """Train every (method, seed) in its own resumable run folder; keep the curves
    and the summaries."""
    s = settings(ctx)
    x, y, xt, yt = _data(ctx, s)
    eps = s["eps"]
    shape = tuple(x.shape[1:])
    arrays: dict[str, np.ndarray] = {}
    summaries: dict = {}
    for seed in s["seeds"]:  # seed-major: an interrupted study has every method
        for method in RUNS:
            torch.manual_seed(seed)  # the same initial weights for every method
            model = models.build(s["arch"], in_shape=shape, width=s["width"]).to(
                ctx.device
            )
            params = sum(p.numel() for p in model.parameters())
            res = train.adversarial_train(
                model,
                (x.to(ctx.device), y.to(ctx.device)),
                config(s, method, seed, eps),
                test_data=(xt.to(ctx.device), yt.to(ctx.device)),
                run_dir=None if ctx.size == "smoke" else _run_folder(ctx, method, seed),
                progressbar=True,
            )
            # the EMA run's online weights are PGD-AT's run: its rows too
            for row in ("pgd-at", "ema") if method == "ema" else (method,):
                for k, v in res.metrics.items():
                    if row == "pgd-at" and k.startswith("avg_"):
                        continue
                    if np.asarray(v).dtype.kind == "f" or k == "epoch":
                        arrays[f"{row}/s{seed}/{k}"] = np.asarray(v, dtype=float)
                summaries[f"{row}/s{seed}"] = res.summary
    table = {
        "methods": list(METHODS),
        "seeds": list(s["seeds"]),
        "eps": eps,
        "params": params,
        "settings": {k: v for k, v in s.items() if k != "seeds"},
        "summaries": summaries,
    }
    table.update(_table(arrays, table))
    return _common.FigureData(arrays=arrays, table=table)


def _interval(values: list[float]) -> dict:
    v = np.asarray([a for a in values if a is not None and np.isfinite(a)], float)
    if len(v) == 0:
        return {"mean": None, "n": 0}
    out = {"mean": float(v.mean()), "n": int(len(v)), "values": v.tolist()}
    if len(v) > 1:
        from scipy import stats

        half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
        out.update(std=float(v.std(ddof=1)), ci95=half)
    return out


def _loss_rise(arrays: dict, key: str) -> float | None:
    """The last evaluated value minus the smallest one (robust overfitting shows as
    a robust test loss that rises again after its minimum)."""
    v = arrays.get(key)
    if v is None:
        return None
    f = v[np.isfinite(v)]
    return float(f[-1] - f.min()) if len(f) else None


def _last_tracked(arrays: dict, key: str) -> float | None:
    v = arrays.get(key)
    if v is None:
        return None
    f = v[np.isfinite(v)]
    return float(f[-1]) if len(f) else None


SHARP = "sharp_adv_adaptive_worst"


def _best_of_average(arrays: dict, run: str) -> tuple[float, float] | None:
    """(best, best minus last) test robust accuracy of the averaged model, best by
    its validation robust accuracy (the first maximum), as the trainer does for the
    online model."""
    val, test = (
        arrays.get(f"{run}/avg_val_robust_acc"),
        arrays.get(f"{run}/avg_test_robust_acc"),
    )
    if val is None or test is None:
        return None
    ok = np.isfinite(val) & np.isfinite(test)
    if not ok.any():
        return None
    v, t = val[ok], test[ok]
    b = int(np.argmax(v))
    return float(t[b]), float(t[b] - t[-1])


def _table(arrays: dict, table: dict) -> dict:
    """Rows per method and the verdict on flatness vs the robust generalisation gap.

    EMA's row is the averaged model's (best by its own validation accuracy); its
    robust gap and landscape are n/a: the run tracks and evaluates on the training
    set only the online weights, which are PGD-AT's of the same seed."""
    rows, per = [], {}
    for method in table["methods"]:
        runs = [f"{method}/s{s}" for s in table["seeds"]]
        sm = [table["summaries"].get(r, {}) for r in runs]
        ema = method == "ema"
        pre = "avg_" if ema else ""
        if ema:
            bl = [_best_of_average(arrays, r) for r in runs]
            best = [None if b is None else b[0] for b in bl]
            gap = [None if b is None else b[1] for b in bl]
        else:
            best = [x.get("best_test_robust_acc") for x in sm]
            gap = [x.get("best_minus_last") for x in sm]
        online = lambda vals, ema=ema: [] if ema else vals  # noqa: E731
        d = {
            "best_minus_last": _interval(gap),
            "robust_gap_last": _interval(online([x.get("robust_gap_last") for x in sm])),
            "last_test_robust_acc": _interval(
                [_last_tracked(arrays, f"{r}/{pre}test_robust_acc") for r in runs]
            ),
            "best_test_robust_acc": _interval(best),
            "lam_max_adv": _interval(
                online([_last_tracked(arrays, f"{r}/lam_max_adv") for r in runs])
            ),
            "sharpness": _interval(
                online([_last_tracked(arrays, f"{r}/{SHARP}") for r in runs])
            ),
            "test_robust_loss_rise": _interval(
                [_loss_rise(arrays, f"{r}/{pre}test_robust_loss") for r in runs]
            ),
            "track_overhead": _interval([x.get("track_overhead") for x in sm]),
        }  # fmt: skip
        per[method] = d
        rows.append([method, len(table["seeds"]), *(_fmt(d[k]) for k in d)])
    return {"rows": rows, "per_method": per, "verdict": _verdict(per, table, arrays)}


def _fmt(s: dict, scale: float = 1.0) -> str:
    if s.get("mean") is None:
        return "n/a"
    if abs(s["mean"]) < 1e-12:  # a mean of exact zeros and +-0.005 steps
        s = {**s, "mean": 0.0}
    if "ci95" not in s:
        return f"{s['mean'] * scale:.4g} (1 seed)"
    return f"{s['mean'] * scale:.4g} +- {s['ci95'] * scale:.2g}"


COLUMNS = (
    "method",
    "seeds",
    "best_minus_last_test_robust_acc",
    "robust_gap_last(train-test)",
    "last_test_robust_acc",
    "best_test_robust_acc",
    "lam_max_adv_last",
    "adaptive_sharpness_last",
    "test_robust_loss_last_minus_min",
    "track_overhead(time_track/time_train, wall)",
)


def _verdict(per: dict, table: dict, arrays: dict) -> str:
    """Whether flatness tracks the robust generalisation gap, over the runs of the
    methods whose tracked model is the evaluated one (EMA's tracking measures the
    online PGD-AT weights, not the average, so it is left out): the Spearman
    correlation of the last-epoch adaptive sharpness with the last-epoch robust gap
    (train minus test robust accuracy) over the runs. ``holds`` when it is positive
    with p < 0.05, ``does not hold`` when negative with p < 0.05, else ``undecided``
    (with the correlation, its p and the number of runs); ``not tested at this size``
    with one seed or a missing run."""
    if len(table["seeds"]) < 2:
        return "not tested at this size (one seed: no intervals)"
    sharp, gaps = [], []
    for m in per:
        if m == "ema":
            continue
        for s in table["seeds"]:
            a = _last_tracked(arrays, f"{m}/s{s}/{SHARP}")
            g = table["summaries"].get(f"{m}/s{s}", {}).get("robust_gap_last")
            if a is None or g is None:
                return "not tested at this size (a run or its tracking is missing)"
            sharp.append(a)
            gaps.append(g)
    from scipy import stats

    res = stats.spearmanr(sharp, gaps)
    rho, p = float(res.statistic), float(res.pvalue)
    what = f"Spearman {rho:.2f}, p = {p:.2g}, {len(gaps)} runs"
    if p < 0.05:
        return f"{'holds' if rho > 0 else 'does not hold'} ({what})"
    return f"undecided ({what}; more seeds needed)"


def _band(ax, fd, method, key, **kw):
    ys = [fd.arrays[k] for k in sorted(fd.arrays) if k.startswith(f"{method}/")
          and k.endswith(f"/{key}")]  # fmt: skip
    if not ys:
        return
    ep = fd.arrays[f"{method}/s{fd.table['seeds'][0]}/epoch"]
    ys = np.array(ys)
    ok = np.isfinite(ys).all(0)
    if not ok.any():
        return
    from landscape import plot

    plot.plot_band(ax, ep[ok], ys[:, ok], **kw)


def draw(fd: _common.FigureData, ctx: _common.Context) -> list[Path]:
    """Robust accuracy and loss on train (dotted), validation (dashed) and test
    (solid) per method; the top eigenvalue and the adaptive sharpness along the run."""
    import matplotlib.pyplot as plt

    from landscape import plot

    with plt.rc_context(plot.PAPER_STYLE):
        fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    styles = {"train": ":", "val": "--", "test": "-"}
    for i, method in enumerate(fd.table["methods"]):
        color = f"C{i}"
        pre = "avg_" if method == "ema" else ""
        for split in SPLITS:
            if method == "ema" and split == "train":
                continue  # the online weights: PGD-AT's curve
            p = "" if split == "train" else pre
            _band(axes[0], fd, method, f"{p}{split}_robust_acc", color=color,
                  ls=styles[split], label=f"{method} {split}", scale=100.0)  # fmt: skip
            _band(axes[1], fd, method, f"{p}{split}_robust_loss", color=color,
                  ls=styles[split])  # fmt: skip
        if method == "ema":
            continue  # tracked on the online weights: PGD-AT's curves
        _band(axes[2], fd, method, "lam_max_adv", color=color, marker=".", label=method)
        _band(axes[3], fd, method, SHARP, color=color, marker=".", label=method)
    axes[0].set_title("robust accuracy (%): train ..., val --, test -", fontsize=8)
    axes[1].set_title("robust loss: train ..., val --, test -", fontsize=8)
    axes[2].set_title("top Hessian eigenvalue, adversarial loss", fontsize=8)
    axes[3].set_title("adaptive worst-case sharpness (linf, rho 0.005)", fontsize=8)
    for ax in axes:
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=5, ncol=2)
    axes[2].legend(fontsize=6)
    s = fd.table["settings"]
    title = (
        f"Robust overfitting: {s['arch']} width {s['width']} ({fd.table['params']:,} "
        f"params) on {s['dataset']} (n = {s['num_train']} train, {s['val_num']} val, "
        f"{s['num_test']} test; eps {fd.table['eps'] * 255:.3g}/255, {s['epochs']} "
        f"epochs), {len(fd.table['seeds'])} seed(s), mean +- std; EMA: val/test of "
        f"the averaged weights (its online weights are PGD-AT's)\nflatness tracks the "
        f"robust gap (PGD-AT, AWP, TRADES runs): {fd.table['verdict']}"
    )
    paths = _common.save_figure(fig, ctx, title=title)
    csv_path = ctx.out_dir / f"{NAME}_{ctx.size}.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(fd.table["rows"])
    return [*paths, csv_path]


def _summary(fd: _common.FigureData, ctx: _common.Context) -> None:
    for row in fd.table["rows"]:
        print(f"[{NAME}] " + ", ".join(f"{c}={v}" for c, v in zip(COLUMNS, row)))
    print(
        f"[{NAME}] flatness tracks the robust generalisation gap: {fd.table['verdict']}"
    )


main = _common.figure_main(__doc__, NAME, compute, draw, show=_summary, note=NOTE)


if __name__ == "__main__":
    raise SystemExit(main())

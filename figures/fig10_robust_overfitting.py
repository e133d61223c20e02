"""Figure 10 (issue 26, robust overfitting; Rice et al., 2020): PGD-AT against AWP
(Wu et al., 2020), TRADES (Zhang et al., 2019) and an EMA of the weights, with the
landscape along the run.

Each method trains the same small CNN (LeNet, ReLU) from the same initialisation per
seed with the one trainer (``landscape.train.adversarial_train``): SGD, momentum
0.9, weight decay 5e-4, the learning rate divided by 10 at 50 % and 75 % of the
epochs (Rice et al.'s piecewise schedule), PGD at eps 8/255 (linf). A stratified
validation split of the training set is held out (``val_num``); every epoch logs the
clean and robust accuracy and loss of a fixed training subset, the validation split
and the test subset under the per-epoch PGD named in the table, and keeps
``best.pt`` (best validation robust accuracy). At chosen epochs the run also
records (``Runtime(track=Tracking(...))``) the top Hessian eigenvalue of the loss at
fixed adversarial examples of a held-out batch and its adaptive worst-case
sharpness (element-wise, L-inf, Andriushchenko et al. 2023).

Panels: (a) robust accuracy on train / validation / test per epoch (mean +- std
over seeds), (b) the top eigenvalue and (c) the adaptive sharpness along the run.
The table gives per method: best-vs-last test robust accuracy (the gap, with a 95 %
t-interval over seeds), the robust generalisation gap (train minus test robust
accuracy) at the last epoch, the landscape values at the last tracked epoch and the
verdict whether flatness tracks the robust generalisation gap at this size.

Commands::

    python figures/fig10_robust_overfitting.py --smoke  # MNIST subset, seconds
    python figures/fig10_robust_overfitting.py          # CIFAR-10 JPEG subset, CPU
    python figures/fig10_robust_overfitting.py --study  # CPU study tier, 3 seeds
    python figures/fig10_robust_overfitting.py --full   # CIFAR-10, PreAct ResNet-18, GPU

Sizes: ``--smoke`` (256 MNIST images, 2 epochs, 1 seed) checks the code path only.
The default (CIFAR-10 JPEG copy, 1,000 training images, 30 epochs, PGD-3, lr 0.05,
2 seeds; about 30 minutes of one quiet core) and ``--study`` (2,000 images, 60
epochs, PGD-5, 3 seeds; about 3 core-hours) are meant to let a small network
memorise its robust training set after the first lr decay, and have NOT been run to
the end yet: first tries showed LeNet at lr 0.1 collapsing to the constant
classifier (10 % everywhere after 40 epochs) and at lr 0.05 still at 19 %
adversarial training accuracy after 12 epochs (no overfitting regime at that size); ``--full`` is Rice et al.'s setting (all of CIFAR-10, PreAct
ResNet-18, 200 epochs, PGD-10) and needs a GPU. Every run is a run folder under the
cache folder (``fig10_runs/<size>/``): an interrupted study resumes exactly.
Output: ``figures/out/fig10_robust_overfitting.{png,pdf}`` (``results/`` with
``--study``) and a CSV table beside it.
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
EPS = 8 / 255
SPLITS = ("train", "val", "test")


def settings(ctx: _common.Context) -> dict:
    """Sizes per tier: data, epochs, attack steps, seeds, evaluation and tracking."""
    return dict(
        dataset=ctx.pick("mnist", "cifar10-jpeg", "cifar10-jpeg"),
        arch=ctx.pick("lenet", "lenet", "preact_resnet18"),
        num_train=ctx.pick(256, 1000, None, study=2000),
        val_num=ctx.pick(64, 200, 1000, study=500),
        num_test=ctx.pick(64, 200, 1000, study=500),
        train_eval_num=ctx.pick(64, 200, 1000, study=500),
        epochs=ctx.pick(2, 30, 200, study=60),
        steps=ctx.pick(2, 3, 10, study=5),
        eval_steps=ctx.pick(2, 5, 10, study=10),
        seeds=ctx.pick((0,), (0, 1), (0, 1, 2), study=(0, 1, 2)),
        track_every=ctx.pick(1, 5, 10, study=5),
        track_num=ctx.pick(32, 128, 512, study=256),
        lr=ctx.pick(0.05, 0.05, 0.1, study=0.05),
        batch_size=128,
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
        extra["awp"] = train.AWP(gamma=0.01)
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
        runtime=train.Runtime(
            eval_num=s["num_test"],
            eval_attack=quick,
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
    eps = EPS if s["dataset"] != "mnist" else 0.1
    shape = tuple(x.shape[1:])
    arrays: dict[str, np.ndarray] = {}
    summaries: dict = {}
    for method in METHODS:
        for seed in s["seeds"]:
            torch.manual_seed(seed)  # the same initial weights for every method
            model = models.build(s["arch"], in_shape=shape).to(ctx.device)
            res = train.adversarial_train(
                model,
                (x.to(ctx.device), y.to(ctx.device)),
                config(s, method, seed, eps),
                test_data=(xt.to(ctx.device), yt.to(ctx.device)),
                run_dir=None if ctx.size == "smoke" else _run_folder(ctx, method, seed),
                progressbar=True,
            )
            for k, v in res.metrics.items():
                if np.asarray(v).dtype.kind == "f" or k == "epoch":
                    arrays[f"{method}/s{seed}/{k}"] = np.asarray(v, dtype=float)
            summaries[f"{method}/s{seed}"] = res.summary
    table = {
        "methods": list(METHODS),
        "seeds": list(s["seeds"]),
        "eps": eps,
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


def _last_tracked(arrays: dict, key: str) -> float | None:
    v = arrays.get(key)
    if v is None:
        return None
    f = v[np.isfinite(v)]
    return float(f[-1]) if len(f) else None


SHARP = "sharp_adv_adaptive_worst"


def _table(arrays: dict, table: dict) -> dict:
    """Rows per method and the verdict on flatness vs the robust generalisation gap."""
    rows, per = [], {}
    for method in table["methods"]:
        sm = [table["summaries"].get(f"{method}/s{s}", {}) for s in table["seeds"]]
        key = "avg_test_robust_acc" if method == "ema" else "test_robust_acc"
        last = [_last_tracked(arrays, f"{method}/s{s}/{key}") for s in table["seeds"]]
        d = {
            "best_minus_last": _interval([x.get("best_minus_last") for x in sm]),
            "robust_gap_last": _interval([x.get("robust_gap_last") for x in sm]),
            "last_test_robust_acc": _interval(last),
            "best_test_robust_acc": _interval([x.get("best_test_robust_acc") for x in sm]),
            "lam_max_adv": _interval(
                [_last_tracked(arrays, f"{method}/s{s}/lam_max_adv") for s in table["seeds"]]
            ),
            "sharpness": _interval(
                [_last_tracked(arrays, f"{method}/s{s}/{SHARP}") for s in table["seeds"]]
            ),
            "track_overhead": _interval([x.get("track_overhead") for x in sm]),
        }  # fmt: skip
        per[method] = d
        rows.append([method, len(table["seeds"]), *(_fmt(d[k]) for k in d)])
    return {"rows": rows, "per_method": per, "verdict": _verdict(per, table)}


def _fmt(s: dict, scale: float = 1.0) -> str:
    if s.get("mean") is None:
        return "not run"
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
    "track_overhead",
)


def _verdict(per: dict, table: dict) -> str:
    """``holds`` when, over the methods, the ordering of the last-epoch adaptive
    sharpness and of the robust generalisation gap agree (Spearman rho >= 0.8 over
    the four methods) and the gaps of the flattest and the sharpest method differ
    beyond their 95 % intervals; ``does not hold`` when the orderings disagree
    (rho <= 0) with separated gaps; else ``undecided (seeds needed)``; ``not tested
    at this size`` with one seed."""
    if len(table["seeds"]) < 2:
        return "not tested at this size (one seed: no intervals)"
    gaps = [per[m]["robust_gap_last"].get("mean") for m in per]
    sharp = [per[m]["sharpness"].get("mean") for m in per]
    if any(v is None for v in gaps + sharp):
        return "not tested at this size (a run or its tracking is missing)"
    from scipy import stats

    rho = float(stats.spearmanr(sharp, gaps).statistic)
    lo, hi = int(np.argmin(sharp)), int(np.argmax(sharp))
    a = per[list(per)[lo]]["robust_gap_last"]
    b = per[list(per)[hi]]["robust_gap_last"]
    separated = abs(a["mean"] - b["mean"]) > a.get("ci95", np.inf) + b.get(
        "ci95", np.inf
    )
    if rho >= 0.8 and separated:
        return f"holds (Spearman {rho:.2f} over the methods)"
    if rho <= 0 and separated:
        return f"does not hold (Spearman {rho:.2f} over the methods)"
    return f"undecided (seeds needed; Spearman {rho:.2f}, gaps separated: {separated})"


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
    """Robust accuracy on train (dotted), validation (dashed) and test (solid) per
    method; the top eigenvalue and the adaptive sharpness along the run."""
    import matplotlib.pyplot as plt

    from landscape import plot

    with plt.rc_context(plot.PAPER_STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.3))
    styles = {"train": ":", "val": "--", "test": "-"}
    for i, method in enumerate(fd.table["methods"]):
        color = f"C{i}"
        pre = "avg_" if method == "ema" else ""
        for split in SPLITS:
            key = (
                f"{split}_robust_acc"
                if split == "train"
                else f"{pre}{split}_robust_acc"
            )
            _band(axes[0], fd, method, key, color=color, ls=styles[split],
                  label=f"{method} {split}", scale=100.0)  # fmt: skip
        _band(axes[1], fd, method, "lam_max_adv", color=color, marker=".", label=method)
        _band(axes[2], fd, method, SHARP, color=color, marker=".", label=method)
    axes[0].set_title("robust accuracy (%): train ..., val --, test -", fontsize=8)
    axes[1].set_title("top Hessian eigenvalue, adversarial loss", fontsize=8)
    axes[2].set_title("adaptive worst-case sharpness (linf, rho 0.005)", fontsize=8)
    for ax in axes:
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=5, ncol=2)
    axes[1].legend(fontsize=6)
    s = fd.table["settings"]
    title = (
        f"Robust overfitting: {s['arch']} on {s['dataset']} ({s['num_train']} images, "
        f"{s['epochs']} epochs), {len(fd.table['seeds'])} seed(s), {ctx.size} size; "
        f"flatness tracks the gap: {fd.table['verdict']}"
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

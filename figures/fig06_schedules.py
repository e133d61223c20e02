"""Schedules at eps 0.4 on MNIST (the paper's Table 1 is CIFAR-10; its released MNIST
runs are constant / cosine / linear, one period, no ensemble): constant vs the paper's
``cycle_linear`` / ``cycle_cos`` warm-up vs a periodic schedule, with and without the
periodic run's end-of-period ensemble, under the "standard" and the "reviewer"
evaluation protocols.

LeNet on MNIST at the paper's eps = 0.4 (L-inf; ``--full``: preset ``mnist-lenet``,
the paper's width-16 LeNet, 3,274,634 parameters, and recipe). Every run uses the same
optimizer, initialisation and number of epochs; schedules update per epoch:

- ``constant``: eps = 0.4 from the first epoch;
- ``linear``: ``cycle_linear``, 0 rising by 0.8 over the run, capped at 0.4 (reached
  at mid-run; inferred from the released checkpoints' names);
- ``cosine``: ``cycle_cos`` from 0 to 0.6 capped at 0.4 (the README's MNIST setting:
  0.4 from 61 % of the run on);
- ``periodic`` (ours: the paper has no MNIST periodic run): ``cycle_cos`` in each of
  three periods ``[0, E/2, 3E/4, E]`` (the paper's CIFAR-10 boundaries) with the lr
  ``cycle_jump`` (x0.1 at half and three quarters of each period).

The periodic run writes a checkpoint at the end of each period; its "ensemble" rows
average the softmax of those 3 models (:class:`landscape.checkpoints.Ensemble`); for
the one-period schedules the "ensemble" is the final model. The "final" rows use the
last model alone (reviewers asked for results without the ensemble). Each model is evaluated with :func:`landscape.evaluate.evaluate`:
"standard" = APGD-CE, APGD-T, Square (AutoAttack-like); "reviewer" = PGD-100 with a
step-size grid and restarts, PGD-CW, SimBA and Square; robust accuracy is the pointwise
worst case over the sequence.

Commands::

    python figures/fig06_schedules.py --smoke   # 256 images, 2 epochs, tiny budgets
    python figures/fig06_schedules.py           # 2k images, 8 epochs, CPU (~15 min)
    python figures/fig06_schedules.py --full    # the paper's setting, GPU (hours)
    python figures/fig06_schedules.py --study   # CPU study tier (claims 4, 5; below)
    python figures/fig06_schedules.py --from-results   # redraw from results/

``--study`` (claims 4 and 5; the shared zoo of ``figures/_study.py``): LeNet at eps =
0.4, 8,000 images, 8 epochs of PGD-5, Adam lr 2e-3, batch 256, 4 periods
(end-of-period checkpoints at epochs 2, 4, 6, 8 for every schedule: the 4-member
ensemble), seeds 0,
1, 2; constant, linear and cosine warm-up (over 4 epochs) and periodic (cosine ramp,
peak 0.6 capped at 0.4). Each final model and ensemble is evaluated under the quick,
standard and reviewer protocols at FULL attack budgets on the first 1,000 test
images (cells whose evaluation did not finish are marked not run). Claim 5: constant
vs periodic at lr 6e-4, 2e-3 and 6e-3 (seeds 0, 1), PGD-20 at eps 0.4 on 2,000 test
images; writes ``fig06_lr_sensitivity`` next to it.

Sizes: the default CPU size (2,000 training images, 8 epochs, PGD-5, Adam lr 1e-3, 4
periods, 200 test points, attack budgets scaled by 0.1) shows the protocol and the
comparison on a small model; its numbers are far below the paper's. ``--full`` is the
paper's setting (preset ``mnist-lenet``: 60k images, 100 epochs, Adam 1e-4, PGD step
0.01 with 50 steps; 1,000 test points; full attack budgets): a GPU session.
Output: ``figures/out/fig06_schedules.{png,pdf,md}`` (``--out-dir`` to change).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import _study  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from landscape import checkpoints, train  # noqa: E402

NAME = "fig06_schedules"
NOTE = (
    "CPU size (small data, few epochs, scaled-down attack budgets): compare the rows "
    "with each other, not with the paper's numbers; --full is the paper's setting for "
    "a GPU session"
)
EPS = 0.4
SCHEDULES = ("constant", "linear", "cosine", "periodic")
PROTOCOLS = ("standard", "reviewer")


def settings(ctx: _common.Context) -> dict:
    """Sizes per ``--smoke`` / default / ``--full``: training length, periods, test
    points and the scale of the attack budgets."""
    return dict(
        num_train=ctx.pick(256, 2000, None),
        epochs=ctx.pick(2, 8, 100),
        steps=ctx.pick(2, 5, 50),
        lr=ctx.pick(1e-3, 1e-3, 1e-4),
        num_eval=ctx.pick(32, 200, 1000),
        scale=ctx.pick(0.02, 0.1, 1.0),
    )


def _periods(epochs: int) -> list[int]:
    """The periodic run's boundaries: three periods ``[0, E/2, 3E/4, E]`` (the
    paper's CIFAR-10 ``0:100:150:200``; it released no MNIST periodic run)."""
    return sorted({0, epochs // 2, (3 * epochs) // 4, epochs})


def _config(ctx: _common.Context, s: dict, schedule: str) -> train.TrainConfig:
    """The paper's schedule shapes at every size (``--full``: preset ``mnist-lenet``,
    the paper's network and recipe): constant; ``cycle_linear`` rising by 2 eps over
    the run, capped at eps; ``cycle_cos`` from 0 to 1.5 eps capped at eps, one period,
    per epoch; periodic = ``cycle_cos`` in each of three periods with the lr
    ``cycle_jump`` (x0.1 at 1/2 and 3/4 of each). Only the periodic run has
    end-of-period checkpoints (its ensemble); the others' "ensemble" is the final
    model."""
    if ctx.size == "full":
        base = train.preset("mnist-lenet")
        base = dataclasses.replace(
            base, attack=dataclasses.replace(base.attack, eps=EPS)
        )
    else:
        base = _common.small_lenet_config(ctx, s, EPS, eval_steps=s["steps"])
    family = "cosine" if schedule == "periodic" else schedule
    eps_schedule, eps_kwargs = train.paper_eps_schedule(family, EPS, 1.5)
    kw: dict = dict(
        eps_schedule=eps_schedule,
        eps_kwargs=eps_kwargs,
        periods=None,
        schedule_update="epoch",
        seed=ctx.seed,
    )
    if schedule == "periodic":
        kw.update(
            periods=_periods(s["epochs"]),
            lr_schedule="cycle_jump",
            lr_kwargs={"drops": [0.5, 0.75], "gamma": 0.1},
        )
    kw["runtime"] = dataclasses.replace(
        base.runtime, eval_num=min(200, s["num_eval"]), co_check_num=0
    )
    return dataclasses.replace(base, **kw)


def compute(ctx: _common.Context) -> _common.FigureData:
    """Train one LeNet per schedule, then evaluate its final model and its ensemble
    under both protocols."""
    s = settings(ctx)
    dev = ctx.device
    x, y, xt, yt = _common.mnist(ctx, s["num_train"], s["num_eval"])
    xt, yt = xt.to(dev), yt.to(dev)
    rows: list[list] = []
    checks: dict = {}
    arrays: dict[str, np.ndarray] = {}
    for schedule in SCHEDULES:
        cfg = _config(ctx, s, schedule)
        torch.manual_seed(ctx.seed)
        model = _common.model_for(cfg).to(dev)  # --full: the paper's width-16 LeNet
        s["num_params"] = _common.num_params(model)
        run_dir = ctx.cache_dir / f"{NAME}_{ctx.size}_runs" / schedule
        if ctx.recompute and run_dir.exists():
            shutil.rmtree(run_dir)  # --recompute retrains (the trainer would resume)
        train.adversarial_train(
            model,
            (x.to(dev), y.to(dev)),
            cfg,
            test_data=(xt, yt),
            run_dir=run_dir,
            progressbar=True,
        )
        t = np.linspace(0, cfg.epochs, 200)
        arrays[f"{schedule}/t"] = t
        arrays[f"{schedule}/eps"] = np.array([cfg.eps_fn()(v) for v in t])
        members = {
            "final": checkpoints.load_model(run_dir, device=dev),
            "ensemble": checkpoints.load_model(run_dir, ensemble=True, device=dev),
        }
        for member, m in members.items():
            for protocol in PROTOCOLS:
                key = f"{schedule}/{member}/{protocol}"
                res, robust, checks[key] = _common.evaluate(
                    ctx, m, (xt, yt), eps=EPS, preset=protocol, scale=s["scale"]
                )
                rows.append(
                    [schedule, member, protocol, float(res.clean_accuracy), robust]
                )
                print(
                    f"[{NAME}] {schedule:9s} {member:8s} {protocol:9s} "
                    f"clean {res.clean_accuracy:.3f} robust {robust:.3f}"
                )
    table = {
        "columns": ["schedule", "model", "protocol", "clean_acc", "robust_acc"],
        "rows": rows,
        "checks": checks,
        "eps": EPS,
        "settings": s,
    }
    return _common.FigureData(arrays=arrays, table=table)


def markdown(fd: _common.FigureData, size: str) -> str:
    """The table as Markdown: one row per schedule and model, robust accuracy (%) per
    protocol."""
    rows = fd.table["rows"]
    s = fd.table["settings"]
    get = {(r[0], r[1], r[2]): r for r in rows}
    lines = [
        "MNIST LeNet"
        + (f" ({s['num_params']:,} parameters)" if "num_params" in s else "")
        + f", eps = {fd.table['eps']} (L-inf), {size} size: "
        f"{s['num_train'] or 60000} training images, {s['epochs']} epochs, "
        + (
            f"{s['periods']} periods, "
            if "periods" in s  # the earlier recipe's record: P periods for all
            else "3 periods for the periodic run (one for the others), "
        )
        + f"{s['num_eval']} test points, attack budgets x "
        f"{s['scale']:g}.",
        "",
        "| schedule | model | clean % | standard % | reviewer % |",
        "|---|---|---|---|---|",
    ]
    for sch in SCHEDULES:
        for member in ("final", "ensemble"):
            std, rev = get[(sch, member, "standard")], get[(sch, member, "reviewer")]
            lines.append(
                f"| {sch} | {member} | {100 * std[3]:.1f} | {100 * std[4]:.1f} | "
                f"{100 * rev[4]:.1f} |"
            )
    lines += _common.failed_checks(fd.table["checks"])
    return "\n".join(lines) + "\n"


def _eps_panel(ax, fd: _common.FigureData) -> None:
    """The training eps of each schedule against the epoch."""
    for sch in SCHEDULES:
        ax.plot(fd.arrays[f"{sch}/t"], fd.arrays[f"{sch}/eps"], label=sch)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training eps")
    ax.legend(fontsize=7)


def draw(fd: _common.FigureData, ctx: _common.Context) -> list[Path]:
    """Left: the eps schedules. Right: robust accuracy per schedule, final model vs
    ensemble, under both protocols (the table is also written as Markdown)."""
    import matplotlib.pyplot as plt

    from landscape import plot

    with plt.rc_context(plot.PAPER_STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), width_ratios=[1, 1.6])
    _eps_panel(axes[0], fd)
    get = {(r[0], r[1], r[2]): r for r in fd.table["rows"]}
    x = np.arange(len(SCHEDULES))
    bars = [(m, p) for m in ("final", "ensemble") for p in PROTOCOLS]
    w = 0.8 / len(bars)
    for i, (m, p) in enumerate(bars):
        vals = [100 * get[(s, m, p)][4] for s in SCHEDULES]
        axes[1].bar(
            x + (i - (len(bars) - 1) / 2) * w,
            vals,
            w,
            label=f"{m}, {p}",
            hatch="//" if m == "ensemble" else None,
            color=f"C{PROTOCOLS.index(p)}",
            alpha=0.9 if m == "final" else 0.55,
        )
    clean = [100 * get[(s, "final", "standard")][3] for s in SCHEDULES]
    axes[1].plot(x, clean, "k_", ms=22, mew=2, label="clean (final)")
    axes[1].set_xticks(x, SCHEDULES)
    axes[1].set_ylabel(f"accuracy % (eps={fd.table['eps']})")
    axes[1].legend(fontsize=7, ncols=2)
    axes[1].set_ylim(0, 100)
    fig.suptitle(
        f"MNIST LeNet eps=0.4: schedules x protocols ({ctx.size} size)", fontsize=9
    )
    return [
        *_common.save_figure(fig, ctx),
        _common.write_markdown(ctx, markdown(fd, ctx.size)),
    ]


STUDY_PROTOCOLS = ("quick", "standard", "reviewer")
STUDY_LRS = (6e-4, 2e-3, 6e-3)
STUDY_COLUMNS = (
    "schedule",
    "model",
    "protocol",
    "seeds",
    "clean_%",
    "robust_%",
    "robust_ci95",
    "p_vs_constant",
)
LR_COLUMNS = ("schedule", "lr", "seeds", "clean_%", "pgd20_%", "stalled")


def _claim4(ctx, compute: bool) -> tuple[list, dict, dict, float]:
    rows, tests, cells, cost = [], {}, {}, 0.0
    for sch in SCHEDULES:
        for s in _study.SIZE["seeds"]:
            cost += _study.cost(ctx, _study.Spec(eps=EPS, seed=s, schedule=sch))
        for member in ("final", "ensemble"):
            for protocol in STUDY_PROTOCOLS:
                got = []
                for seed in _study.SIZE["seeds"]:
                    r = _study.protocol_eval(
                        ctx,
                        _study.Spec(eps=EPS, seed=seed, schedule=sch),
                        protocol,
                        ensemble=member == "ensemble",
                        compute=compute,
                    )
                    if r is not None:
                        got.append({**r, "seed": seed})
                cells[(sch, member, protocol)] = got
    rows, tests = _claim4_table(cells)
    return rows, tests, {f"{k[0]}/{k[1]}/{k[2]}": v for k, v in cells.items()}, cost


def _claim4_table(cells: dict) -> tuple[list, dict]:
    """Claim 4's rows and tests from its cells ((schedule, member, protocol) -> the
    per-seed protocol results): robust accuracy per cell, Welch against constant
    (no p-value for groups without variance), the paired ensemble - final
    difference."""
    rows, tests = [], {}
    for (sch, member, protocol), got in cells.items():
        rob = _study.summary([g["robust_acc"] for g in got])
        base = cells[("constant", member, protocol)]
        w = {"p": None}
        if sch != "constant":
            w = _study.welch(
                [g["robust_acc"] for g in got], [g["robust_acc"] for g in base]
            )
            tests[f"{sch} vs constant, {member}, {protocol}"] = w
        if member == "ensemble":
            fin = {g["seed"]: g["robust_acc"] for g in cells[(sch, "final", protocol)]}
            diffs = [g["robust_acc"] - fin[g["seed"]] for g in got if g["seed"] in fin]
            tests[f"{sch}: ensemble - final, {protocol} (paired)"] = _study.summary(
                diffs
            )
        ci = rob["ci95"]
        rows.append(
            [
                sch,
                member,
                protocol,
                len(got),
                _study.fmt(_study.summary([g["clean_acc"] for g in got]), 100),
                _study.fmt(rob, 100),
                "" if ci[0] is None else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]",
                _study.fmt_p(w) if w.get("n") else None,
            ]
        )
    return rows, tests


def _claim5(ctx, compute: bool) -> tuple[list, dict, float, dict]:
    rows, res, cost = [], {}, 0.0
    for sch in ("constant", "periodic"):
        for lr in STUDY_LRS:
            got = []
            for seed in (0, 1):
                spec = _study.Spec(eps=EPS, seed=seed, schedule=sch, lr=lr)
                fe = _study.final_eval(ctx, spec, compute=compute)
                if fe is not None:
                    cost += _study.cost(ctx, spec)
                    got.append(fe)
            res[(sch, lr)] = got
            rows.append(
                [
                    sch,
                    lr,
                    len(got),
                    _study.fmt(_study.summary([g["clean_acc"] for g in got]), 100),
                    _study.fmt(
                        _study.summary([g[f"pgd20_acc@{EPS:g}"] for g in got]), 100
                    ),
                    sum(bool(_study.stalled(g)) for g in got),
                ]
            )
    tests = {}
    for lr in STUDY_LRS:
        tests[f"lr {lr:g}: periodic vs constant, PGD-20"] = _study.welch(
            [g[f"pgd20_acc@{EPS:g}"] for g in res[("periodic", lr)]],
            [g[f"pgd20_acc@{EPS:g}"] for g in res[("constant", lr)]],
        )
    for sch in ("constant", "periodic"):
        means = [
            np.mean([g[f"pgd20_acc@{EPS:g}"] for g in res[(sch, lr)]])
            for lr in STUDY_LRS
            if res[(sch, lr)]
        ]
        tests[f"{sch}: range of mean PGD-20 over lr"] = (
            float(max(means) - min(means)) if len(means) == len(STUDY_LRS) else None
        )
    cells = {
        f"{sch}/{lr:g}": [[g["clean_acc"], g[f"pgd20_acc@{EPS:g}"]] for g in got]
        for (sch, lr), got in res.items()
    }
    return rows, tests, cost, cells


def study_compute(ctx: _common.Context, compute: bool = True) -> _common.FigureData:
    """Claims 4 and 5 from the zoo."""
    rows, tests, cells, cost4 = _claim4(ctx, compute)
    lr_rows, lr_tests, cost5, lr_cells = _claim5(ctx, compute)
    arrays: dict[str, np.ndarray] = {}
    for sch in SCHEDULES:
        cfg = _study.Spec(eps=EPS, seed=0, schedule=sch).config()
        t = np.linspace(0, cfg.epochs, 200)
        arrays[f"{sch}/t"] = t
        arrays[f"{sch}/eps"] = np.array([cfg.eps_fn()(v) for v in t])
    return _study.figure_data(
        arrays, STUDY_COLUMNS, rows, cost4 + cost5, tests=tests, cells=cells,
        lr_columns=list(LR_COLUMNS), lr_rows=lr_rows, lr_tests=lr_tests,
        lr_cells=lr_cells, eps=EPS,
    )  # fmt: skip


def study_draw(fd: _common.FigureData, ctx: _common.Context) -> list[Path]:
    """Schedules: robust accuracy per schedule x model x protocol (mean +- std over
    seeds); lr sensitivity: PGD-20 accuracy against lr, constant vs periodic."""
    import matplotlib.pyplot as plt

    from landscape import plot

    with plt.rc_context(plot.PAPER_STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.3), width_ratios=[1, 2])
    _eps_panel(axes[0], fd)
    lr_note = (
        "lr: Adam 2e-3, constant for every schedule\n(the earlier recipe; the paper's "
        "periodic\nrun restarts a cycle_jump lr each period)"
        if _study.BUDGET != "cpu"
        else "lr: Adam 2e-3 constant; periodic: cycle_jump\n(x0.1 at 1/2 and 3/4 of "
        "each period)"
    )
    axes[0].set_title(lr_note, fontsize=6)
    bars = [(m, p) for m in ("final", "ensemble") for p in STUDY_PROTOCOLS]
    w = 0.8 / len(bars)
    x = np.arange(len(SCHEDULES))
    for i, (m, p) in enumerate(bars):
        ms, sds, ns = [], [], []
        for sch in SCHEDULES:
            v = [100 * g["robust_acc"] for g in fd.table["cells"][f"{sch}/{m}/{p}"]]
            ms.append(np.mean(v) if v else np.nan)
            sds.append(np.std(v, ddof=1) if len(v) > 1 else 0.0)
            ns.append(len(v))
        ms, sds = np.array(ms), np.array(sds)
        pos = x + (i - (len(bars) - 1) / 2) * w
        # error bars stop at 0 (an accuracy is never negative); n = 1: none
        yerr = np.array([np.minimum(sds, np.nan_to_num(ms)), sds])
        axes[1].bar(
            pos,
            ms,
            w,
            yerr=yerr,
            capsize=2,
            label=f"{m}, {p}",
            color=f"C{STUDY_PROTOCOLS.index(p)}",
            hatch="//" if m == "ensemble" else None,
            alpha=0.9 if m == "final" else 0.55,
        )
        for xp, n in zip(pos, ns):
            if n:
                axes[1].text(xp, 1.0, f"n={n}", ha="center", va="bottom",
                             fontsize=5, rotation=90,
                             color="k" if n > 1 else "red")  # fmt: skip
    axes[1].axhline(11.35, color="k", lw=0.7, ls=":",
                    label="11.35 % (one class: trivial)")  # fmt: skip
    axes[1].set_xticks(x, SCHEDULES)
    axes[1].set_ylim(bottom=0)
    axes[1].set_ylabel(f"robust accuracy % (eps = {EPS})")
    axes[1].legend(fontsize=5.5, ncols=3, loc="upper left", bbox_to_anchor=(0, -0.13))
    fig.suptitle(
        f"Claim 4: schedules at eps = {EPS}, {_study.recipe_label(fd)}; full attack "
        "budgets, 1,000 test images; mean +- std over seeds (n per bar; red: n = 1, no "
        "error bar)",
        fontsize=8,
    )
    paths = _common.save_figure(fig, ctx)
    cells = fd.table.get("lr_cells", {})
    if max(sum(bool(v) for k, v in cells.items() if k.startswith(f"{sch}/"))
           for sch in ("constant", "periodic")) < 2:  # fmt: skip
        # claim 5 was not run at this budget (at most one lr): no figure rather
        # than an empty one
        return paths
    with plt.rc_context(plot.PAPER_STYLE):
        fig2, ax = plt.subplots(1, 2, figsize=(8, 3.0))
    nmax = 0
    for sch, mk in (("constant", "o"), ("periodic", "s")):
        for j, key in enumerate(("clean", "PGD-20")):
            lrs, ms, sds = [], [], []
            for lr in STUDY_LRS:
                v = [100 * c[j] for c in fd.table["lr_cells"].get(f"{sch}/{lr:g}", [])]
                if v:
                    lrs.append(lr)
                    ms.append(np.mean(v))
                    sds.append(np.std(v, ddof=1) if len(v) > 1 else 0.0)
                    nmax = max(nmax, len(v))
            ax[j].errorbar(lrs, ms, sds, marker=mk, capsize=3, label=sch)
            ax[j].set_xscale("log")
            ax[j].set_xticks(list(STUDY_LRS), [f"{v:g}" for v in STUDY_LRS])
            ax[j].minorticks_off()
            ax[j].set_xlabel("Adam learning rate")
            ax[j].set_title(f"{key} accuracy %, eps = {EPS}", fontsize=8)
    for a in ax:
        a.axhline(11.35, color="k", lw=0.7, ls=":", label="11.35 % (one class)")
    ax[0].legend(fontsize=7)
    fig2.suptitle(
        f"Claim 5: lr sensitivity, constant vs periodic, {_study.recipe_label(fd)}; "
        f"n = {nmax} seeds; PGD-20 is a cheap indicator, not a verdict",
        fontsize=7,
    )
    return paths + _common.save_figure(fig2, ctx, "fig06_lr_sensitivity")


def _publish_lr(fd: _common.FigureData, ctx: _common.Context) -> list[Path]:
    """Claim 5's table, ``results/fig06_lr_sensitivity_study.csv``."""
    if ctx.from_results:
        return []
    path = _common.PUBLISHED / "fig06_lr_sensitivity_study.csv"
    cols, rows = fd.table["lr_columns"], fd.table["lr_rows"]
    return [_study.write_csv(path, cols, rows, meta=fd.meta)]


def _summary(fd: _common.FigureData, ctx: _common.Context) -> None:
    print(markdown(fd, ctx.size))


STUDY = _study.tier(
    study_compute, study_draw, more=_publish_lr, tables=("rows", "lr_rows")
)
main = _common.figure_main(
    __doc__, NAME, compute, draw, show=_summary, note=NOTE, study=STUDY
)


if __name__ == "__main__":
    raise SystemExit(main())

"""Figure 4: Hessian curvature of models adversarially trained at several eps (MNIST).

Models (LeNet; an MLP at --smoke) are trained with
:func:`landscape.train.adversarial_train` (Adam, PGD, eps ramped linearly over the first
half of the epochs) at each training eps. For each model the Hessian of the training
objective is analysed on a fixed subset: the loss on adversarial examples generated
once at the final model (PGD at the training eps,
:func:`landscape.attacks.perturb_batches`; clean data at eps = 0). Panels: (a) the top-k eigenvalues (Lanczos) of the adversarial
and of the clean loss against the training eps; (b) the spectral densities (stochastic
Lanczos quadrature, log scale); (c) the trace (Hutch++) with its 95% interval. The
paper's observation: larger training eps gives a sharper adversarial loss (larger top
eigenvalues and more outliers).

Commands::

    python figures/fig04_hessian.py --smoke   # MLP, 3 eps, tiny subsets; < 30 s CPU
    python figures/fig04_hessian.py           # LeNet (hidden 256), 4 eps; ~10-20 min CPU
    python figures/fig04_hessian.py --full    # LeNet, 5 eps, more data; GPU or ~hours CPU
    python figures/fig04_hessian.py --study   # CPU study tier (claim 3, below)
    python figures/fig04_hessian.py --from-results   # redraw from results/

``--study`` (claim 3; the shared zoo of ``figures/_study.py``): LeNet per eps in {0,
0.1, 0.2, 0.3, 0.4} x seeds {0, 1, 2}, a fixed budget (8,000 images, 8 epochs of
PGD-5) with eps warmed up linearly over the first 4 epochs so that no model stalls
(the constant-schedule models of claim 1 are added where their Hessians were
computed); top-5 Lanczos eigenvalues of the clean and of the adversarial loss (PGD-20
at the training eps) and the Hutch++ trace (60 probes) on 1,000 training images. The
table gives mean +- std over seeds, the per-seed slope of lambda_1 against eps with
its 95 % interval, and Welch's t-test of each eps against eps = 0.

Hardware: one CPU thread (no GPU needed) for --smoke and the default size. Results are
cached in ``data/results/fig04_hessian_<size>.npz``; figures go to ``figures/out/``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import _study  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from landscape import attacks, hessian, models  # noqa: E402

NAME = "fig04_hessian"
NOTE = "small CPU size: eigenvalue magnitudes are not the paper's"


def _settings(ctx: _common.Context) -> dict:
    return dict(
        **_common.network(ctx, (32,)),
        num_train=ctx.pick(256, 2048, 10000),
        epochs=ctx.pick(2, 8, 20),
        lr=ctx.pick(3e-3, 2e-3, 1e-3),
        train_eps=ctx.pick(
            [0.0, 0.1, 0.3], [0.0, 0.1, 0.2, 0.3], [0.0, 0.1, 0.2, 0.3, 0.4]
        ),
        train_steps=ctx.pick(3, 5, 10),
        num_hessian=ctx.pick(128, 1000, 2000),
        attack_steps=ctx.pick(5, 20, 40),
        num_eigenvalues=ctx.pick(3, 5, 10),
        max_iter=ctx.pick(20, 80, 100),
        num_runs=ctx.pick(2, 3, 5),
        num_matvecs=ctx.pick(21, 60, 150),
    )


def _train(model, x, y, eps: float, cfg: dict, ctx: _common.Context):
    res = _common.train_warmup(
        model,
        x,
        y,
        eps,
        epochs=cfg["epochs"],
        lr=cfg["lr"],
        steps=cfg["train_steps"],
        ctx=ctx,
    )
    return model.eval(), float(np.asarray(res.metrics["train_loss"])[-1])


def compute(ctx: _common.Context) -> _common.FigureData:
    cfg = _settings(ctx)
    x, y = _common.mnist_or_synthetic(ctx, cfg["num_train"])
    n = cfg["num_hessian"]
    fixed = [
        (x[i : i + 500].to(ctx.device), y[i : i + 500].to(ctx.device))
        for i in range(0, n, 500)
    ]
    lf = torch.nn.CrossEntropyLoss()
    arrays: dict[str, np.ndarray] = {"eps": np.array(cfg["train_eps"], dtype=float)}
    table: dict = {
        "settings": {k: v for k, v in cfg.items() if k != "model_kw"},
        "rows": [],
    }
    top_adv, top_clean, traces = [], [], []
    for eps in cfg["train_eps"]:
        t0 = time.perf_counter()
        torch.manual_seed(ctx.seed)
        model = models.build(cfg["model"], **cfg["model_kw"]).to(ctx.device)
        model, train_loss = _train(model, x, y, eps, cfg, ctx)
        gen = torch.Generator().manual_seed(ctx.seed)
        adv = (
            fixed
            if eps == 0
            else attacks.perturb_batches(
                model,
                fixed,
                attacks.PGD(eps=eps, steps=cfg["attack_steps"]),
                generator=gen,
            )
        )
        ea = hessian.top_eigenvalues(
            model,
            lf,
            adv,
            num=cfg["num_eigenvalues"],
            generator=gen,
            return_vectors=False,
        )
        ec = (
            ea
            if eps == 0
            else hessian.top_eigenvalues(
                model,
                lf,
                fixed,
                num=cfg["num_eigenvalues"],
                generator=gen,
                return_vectors=False,
            )
        )
        dens = hessian.lanczos_density(
            model,
            lf,
            adv,
            max_iter=cfg["max_iter"],
            num_runs=cfg["num_runs"],
            generator=gen,
        )
        tr = hessian.trace(
            model,
            lf,
            adv,
            num_matvecs=cfg["num_matvecs"],
            method="hutch++",
            generator=gen,
        )
        top_adv.append(ea.eigenvalues)
        top_clean.append(ec.eigenvalues)
        traces.append([tr.estimate, tr.std_error, tr.ci_low, tr.ci_high])
        arrays[f"grid_{eps:g}"] = dens.grid
        arrays[f"density_{eps:g}"] = dens.density
        table["rows"].append(
            {
                "eps": eps,
                "train_loss": train_loss,
                "top_adv": ea.eigenvalues.tolist(),
                "top_clean": ec.eigenvalues.tolist(),
                "trace": tr.estimate,
                "trace_se": tr.std_error,
                "hvps": ea.num_matvecs
                + ec.num_matvecs
                + dens.num_matvecs
                + tr.num_matvecs,
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
        print(
            f"[{NAME}] eps={eps:g}: train loss {train_loss:.3f}, top adv "
            f"{np.round(ea.eigenvalues, 3).tolist()}, trace {tr.estimate:.2f}"
            f" +- {tr.std_error:.2f}"
        )
    arrays["top_adv"] = np.array(top_adv)
    arrays["top_clean"] = np.array(top_clean)
    arrays["trace"] = np.array(traces)
    return _common.FigureData(arrays=arrays, table=table)


def draw(fd: _common.FigureData, ctx: _common.Context) -> list[Path]:
    import matplotlib.pyplot as plt

    from landscape import plot as lplot
    from landscape.hessian import Density, TraceEstimate

    a = fd.arrays
    eps = a["eps"]
    with plt.rc_context(lplot.PAPER_STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    lplot.plot_eigenvalues_vs_eps(eps, a["top_adv"], axes[0], label="adv.")
    axes[0].plot(
        eps, a["top_clean"][:, 0], "k--", marker="x", label=r"clean $\lambda_1$"
    )
    axes[0].legend(fontsize="x-small")
    axes[0].set_title("(a) top Hessian eigenvalues")
    dens = {
        f"$\\epsilon$={e:g}": Density(a[f"grid_{e:g}"], a[f"density_{e:g}"])
        for e in eps
    }
    lplot.plot_density(dens, axes[1], log=True)
    axes[1].set_title("(b) spectral density (adversarial loss)")
    tr = [
        TraceEstimate(float(t[0]), float(t[1]), float(t[2]), float(t[3]))
        for t in a["trace"]
    ]
    lplot.plot_trace(eps, tr, axes[2])
    axes[2].set_title("(c) trace (Hutch++)")
    return _common.save_figure(fig, ctx)


STUDY_EPS = _study.SIZE["eps"]  # 0, 0.1, 0.2, 0.3, 0.4
STUDY_COLUMNS = (
    "family",
    "eps",
    "seeds",
    "train_loss",
    "test_clean_%",
    "lambda1_adv",
    "lambda1_clean",
    "trace_adv",
    "p_lambda1_adv_vs_eps0",
)


#: claim 3's family: the paper's ``cycle_cos`` with its recipe (budget ``cpu``), the
#: linear warm-up in the earlier record (``v1`` / ``v1-long``)
FAMILY = "cosine" if _study.BUDGET == "cpu" else "linear"


def study_compute(ctx: _common.Context, compute: bool = True) -> _common.FigureData:
    """Claim 3 from the zoo: Hessian statistics per (family, eps, seed), summaries
    over seeds, slope and Welch tests."""
    arrays: dict[str, np.ndarray] = {}
    rows, tests, cost = [], {}, 0.0
    for family in (FAMILY, "constant"):
        per = {}
        for eps in STUDY_EPS:
            got = []
            for seed in range(8):
                spec = _study.Spec(eps=eps, seed=seed, schedule=family)
                # the warm-up family's seeds of SIZE are this figure's; constant models
                # and further seeds (the claim-3 queues) only if done
                mine = family == FAMILY and seed in _study.SIZE["seeds"]
                h = _study.hessian_eval(ctx, spec, compute=compute and mine)
                fe = _study.final_eval(ctx, spec, compute=compute and mine)
                if h is None or fe is None:
                    continue
                cost += _study.cost(ctx, spec)
                got.append({**h, **fe, "seed": seed})
            per[eps] = got
            if not got:
                continue
            arrays[f"{family}/eps{eps:g}/top_adv"] = np.array(
                [g["top_adv"] for g in got]
            )
            arrays[f"{family}/eps{eps:g}/top_clean"] = np.array(
                [g["top_clean"] for g in got]
            )
            arrays[f"{family}/eps{eps:g}/trace_adv"] = np.array(
                [g["trace_adv"] for g in got]
            )
        r, t = _study.eps_rows(family, per, lambda g: g["top_adv"][0], "lambda1_adv", [
            (lambda g: g["top_adv"][0], 1.0, 2), (lambda g: g["top_clean"][0], 1.0, 2),
            (lambda g: g["trace_adv"], 1.0, 1),
        ])  # fmt: skip
        rows += r
        tests.update(t)
        seeds = sorted({g["seed"] for got in per.values() for g in got})
        for key, pick in (
            ("lambda1_adv", lambda g: g["top_adv"][0]),
            ("lambda1_clean", lambda g: g["top_clean"][0]),
            ("trace_adv", lambda g: g["trace_adv"]),
        ):
            slope = _study.eps_slope(per, pick, seeds)
            if slope is not None:
                tests[f"{family}: slope of {key} vs eps"] = slope
    return _study.figure_data(arrays, STUDY_COLUMNS, rows, cost, tests=tests)


def study_draw(fd: _common.FigureData, ctx: _common.Context) -> list[Path]:
    """lambda_1 (adversarial and clean loss) and the trace against the training eps,
    mean +- std over seeds; warm-up family (solid) and constant family (dashed)."""
    import matplotlib.pyplot as plt

    from landscape import plot as lplot

    with plt.rc_context(lplot.PAPER_STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    panels = (
        ("top_adv", 0, r"(a) $\lambda_1$, adversarial loss"),
        ("top_clean", 0, r"(b) $\lambda_1$, clean loss"),
        ("trace_adv", None, "(c) trace (Hutch++), adversarial loss"),
    )
    for ax, (key, col, title) in zip(axes, panels):
        for family, ls in ((FAMILY, "-"), ("constant", "--")):
            xs, ms, sds, ns = [], [], [], []
            for eps in STUDY_EPS:
                a = fd.arrays.get(f"{family}/eps{eps:g}/{key}")
                if a is None or (family == "constant" and eps == 0):
                    continue  # eps 0 is the one plain-training model, drawn apart
                v = a[:, col] if col is not None else a
                xs.append(eps)
                ms.append(v.mean())
                sds.append(v.std(ddof=1) if len(v) > 1 else 0.0)
                ns.append(len(v))
            if xs:
                name = {"linear": "eps warm-up (linear)", "cosine": "cycle_cos"}
                ax.errorbar(xs, ms, sds, ls=ls, marker="o", capsize=3,
                            label=name.get(family, "constant eps"))  # fmt: skip
                for x, m, n in zip(xs, ms, ns):
                    ax.annotate(f"n={n}", (x, m), fontsize=5, xytext=(3, 3),
                                textcoords="offset points")  # fmt: skip
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("training eps (eps 0: plain training, one model for both)")
    axes[0].legend(fontsize=7)
    what = "Claim 3: Hessian per training eps, "
    return _study.save_claim(fig, ctx, fd, what, "mean +- std over seeds (n per point)")


STUDY = _study.tier(study_compute, study_draw, test_line=_study.verdict_line(2))
main = _common.figure_main(__doc__, NAME, compute, draw, note=NOTE, study=STUDY)


if __name__ == "__main__":
    raise SystemExit(main())

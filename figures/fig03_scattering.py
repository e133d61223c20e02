"""Figure 3 (Liu et al., NeurIPS 2020): gradient scattering of the adversarial loss.

Proposition 2 bounds ``||grad L_eps(w1) - grad L_eps(w2)||`` by ``L_ww ||w1 - w2|| +
2 eps L_wx``: the second term does not vanish as ``w2 -> w1``, so the gradients of the
adversarial loss scatter, more for larger eps. This script trains small MNIST models
adversarially at several eps, once with ReLU and once with a smooth activation
(GELU, the "smooth twin" the theory assumes; softplus with beta = 1 trains much worse
and its eps = 0.3 model stays at the constant classifier at the CPU size), and measures at each model, at its
own training eps, with :func:`landscape.scattering.scattering`:

(a, b) the gradient-Lipschitz ratio ``||delta g|| / ||delta w||`` against the step
       ``s`` (random unit directions; PGD recomputed at ``w + s v`` with the same
       random start), ReLU and GELU;
(c)    the excess ``||delta g||`` as ``s -> 0`` (fitted intercept) against eps, with a
       line through the origin (Prop. 2 predicts growth roughly linear in eps);
(d)    the cosine between ``x_adv - x`` at ``w`` and at ``w + s v``;
(e)    the scattering picture: ``g(w + s v)`` relative to ``g(w)`` (ReLU);
(f)    per-example gradient norms of the adversarial loss per eps (ReLU);
(g)    the distribution of the gradient cosine at the smallest step (ReLU);
(h)    the mean gradient norm per epoch logged by the trainer (ReLU), per eps.

Models are trained with :func:`landscape.train.adversarial_train` (Adam, PGD-k, eps
ramped up linearly over the first half of the epochs).

Commands::

    python figures/fig03_scattering.py --smoke     # MLP, 256 images, < 30 s on CPU
    python figures/fig03_scattering.py             # LeNet, 2k images, 5-9 min on 1 CPU
    python figures/fig03_scattering.py --full      # LeNet, 10k images, GPU (~10 min)
    python figures/fig03_scattering.py --study     # CPU study tier (claim 2, below)
    python figures/fig03_scattering.py --from-results   # redraw from results/

``--study`` (claim 2; the shared zoo of ``figures/_study.py``): the warm-up family of
LeNets (8,000 images, 8 epochs of PGD-5, eps warmed up over 4 epochs) per eps in {0,
0.1, 0.2, 0.3, 0.4}, ReLU (seeds 0, 1, 2) and the GELU twin (seeds 0, 1); scattering
at each model's training eps on 256 test images (4 random directions, s = 1e-4 ..
1e-1, PGD-10 recomputed at w + s v). The table gives the excess ||delta g|| as s -> 0
(mean +- std over seeds), the per-seed slope of the excess against eps with its 95 %
interval and Welch's t-test of each eps against eps = 0.

Hardware: CPU for the smoke and default sizes; ``--full`` is meant for one GPU.
Output: ``figures/out/fig03_scattering.{png,pdf}`` (``--out-dir`` to change).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import _study  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from landscape import attacks, models, scattering  # noqa: E402

NAME = "fig03_scattering"
NOTE = "small models and subsets: qualitative trends only, not the paper's numbers"
ACTIVATIONS = ("relu", "gelu")
_LOGGED = ("epoch", "eps", "train_loss", "grad_norm_mean", "grad_norm_max")
_FIELDS = [
    "eps",
    "grad_diff",
    "ratio",
    "cosine",
    "grad_norm_pert",
    "pert_cosine",
    "sign_cosine",
    "grad_norm",
    "loss",
]


def _settings(ctx: _common.Context) -> dict:
    return dict(
        **_common.network(ctx, (64,)),
        num_train=ctx.pick(256, 2048, 10000),
        num_eval=ctx.pick(64, 256, 512),
        eval_batch=ctx.pick(64, 128, 256),
        epochs=ctx.pick(2, 8, 20),
        lr=ctx.pick(2e-3, 2e-3, 1e-3),
        train_eps=ctx.pick([0.0, 0.1, 0.3], [0.0, 0.1, 0.2, 0.3], [0.0, 0.1, 0.2, 0.3]),
        train_steps=ctx.pick(3, 5, 10),
        scales=ctx.pick(
            [1e-3, 1e-2, 1e-1], [1e-4, 1e-3, 1e-2, 1e-1], [1e-4, 1e-3, 1e-2, 1e-1]
        ),
        num_directions=ctx.pick(2, 4, 8),
        attack_steps=ctx.pick(5, 10, 20),
    )


def _train(model, x, y, eps, cfg, ctx):
    """Adversarial training with :func:`landscape.train.adversarial_train` (Adam, PGD,
    eps ramped linearly from 0 over the first half of the epochs: without the ramp a
    small LeNet trained from scratch at eps = 0.3 stays at the constant classifier)."""
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
    cols = res.metrics
    records = [
        {k: float(np.asarray(v)[i]) for k, v in cols.items() if k in _LOGGED}
        for i in range(len(cols["epoch"]))
    ]
    return model.eval(), records


def compute(ctx: _common.Context) -> _common.FigureData:
    cfg = _settings(ctx)
    x, y = _common.mnist_or_synthetic(ctx, cfg["num_train"])
    xe, ye = _common.mnist_or_synthetic(ctx, cfg["num_eval"], "test")
    b = cfg["eval_batch"]
    ev = [
        (xe[i : i + b].to(ctx.device), ye[i : i + b].to(ctx.device))
        for i in range(0, len(xe), b)
    ]
    arrays: dict[str, np.ndarray] = {}
    table: dict = {"settings": {k: v for k, v in cfg.items() if k != "model_kw"}}
    # runs are bit-reproducible only at the same thread count (LANDSCAPE_THREADS)
    table["settings"]["num_threads"] = torch.get_num_threads()
    for act in ACTIVATIONS:
        parts, norms, logged = [], [], []
        for eps in cfg["train_eps"]:
            t0 = time.perf_counter()
            torch.manual_seed(ctx.seed)
            model = models.build(cfg["model"], activation=act, **cfg["model_kw"])
            model, records = _train(model.to(ctx.device), x, y, eps, cfg, ctx)
            table[f"{act}/eps={eps:g}/train_loss"] = records[-1]["train_loss"]
            if records[-1]["train_loss"] > 0.95 * np.log(10):
                warnings.warn(
                    f"{act} model trained at eps={eps:g} is still at the constant "
                    "classifier (train loss ~ log 10): its scattering is not meaningful;"
                    " train longer (--full)",
                    stacklevel=2,
                )
            logged.append(
                scattering.summarize_training_gradnorms(records).values[
                    "grad_norm_mean"
                ]
            )
            gen = torch.Generator().manual_seed(ctx.seed)
            res = scattering.scattering(
                model,
                None,
                ev,
                eps=[eps],
                scales=cfg["scales"],
                attack=attacks.PGD(eps=eps, steps=cfg["attack_steps"]),
                directions="unit",
                num_directions=cfg["num_directions"],
                generator=gen,
            )
            parts.append(res)
            norms.append(
                scattering.gradient_norms(
                    model,
                    None,
                    ev,
                    attack=attacks.PGD(eps=eps, steps=cfg["attack_steps"]),
                    generator=gen,
                ).per_example[0]
            )
            table[f"{act}/eps={eps:g}/seconds"] = round(time.perf_counter() - t0, 2)
        res = scattering.concat_eps(parts)
        for f in _FIELDS:
            arrays[f"{act}/{f}"] = np.asarray(getattr(res, f))
        arrays[f"{act}/gradnorms"] = np.stack(norms)
        arrays[f"{act}/train_gradnorm"] = np.stack(logged)
        arrays["scales"] = res.scales
        arrays["step_norm"] = res.step_norm
        exc = res.excess().mean(axis=(1, 2))
        table[f"{act}/excess"] = exc.tolist()
        print(
            f"[{NAME}] {act}: eps {[float(e) for e in res.eps]} excess {np.round(exc, 5).tolist()}"
        )
    return _common.FigureData(arrays=arrays, table=table)


def _result(data: _common.FigureData, act: str) -> scattering.ScatteringResult:
    a = data.arrays
    kw = {f: a[f"{act}/{f}"] for f in _FIELDS}
    return scattering.ScatteringResult(
        scales=a["scales"], step_norm=a["step_norm"], meta={"activation": act}, **kw
    )


def draw(data: _common.FigureData, ctx: _common.Context) -> list[Path]:
    import matplotlib.pyplot as plt

    from landscape import plot

    res = {act: _result(data, act) for act in ACTIVATIONS}
    with plt.rc_context(plot.PAPER_STYLE):
        fig, axes = plt.subplots(2, 4, figsize=(14.5, 6.4))
    for ax, act in zip(axes[0, :2], ACTIVATIONS):
        plot.plot_ratio_vs_scale(res[act], ax=ax)
        ax.set_title(
            f"({'ab'[ACTIVATIONS.index(act)]}) {act}: gradient-Lipschitz ratio"
        )
    plot.plot_excess_vs_eps(res, ax=axes[0, 2])
    axes[0, 2].set_title("(c) excess as s -> 0 vs eps")
    plot.plot_perturbation_cosine(res["relu"], ax=axes[1, 0])
    axes[1, 0].set_title("(d) relu: cosine of x_adv - x")
    plot.plot_gradient_scatter(res["relu"], ax=axes[1, 1])
    axes[1, 1].set_title("(e) relu: g(w + s v) relative to g(w)")
    stats = scattering.GradNormStats(
        eps=res["relu"].eps,
        per_example=data.arrays["relu/gradnorms"],
        batch=res["relu"].grad_norm,
    )
    plot.plot_gradnorm_distribution(stats, ax=axes[1, 2])
    axes[1, 2].set_title("(f) relu: per-example gradient norms")
    plot.plot_scattering_distribution(res["relu"], stat="cosine", ax=axes[0, 3])
    axes[0, 3].set_title(f"(g) relu: gradient cosine at s = {res['relu'].scales[0]:g}")
    runs = {
        float(e): scattering.TrainingGradNorms(
            epoch=np.arange(1, len(g) + 1, dtype=float),
            eps=np.full(len(g), e),
            values={"grad_norm_mean": g},
            target_eps=float(e),
        )
        for e, g in zip(res["relu"].eps, data.arrays["relu/train_gradnorm"])
    }
    plot.plot_training_gradnorms(runs, ax=axes[1, 3])
    axes[1, 3].set_title("(h) relu: gradient norm during training")
    fig.suptitle(f"Gradient scattering ({ctx.size} size, models trained at each eps)")
    return _common.save_figure(fig, ctx)


STUDY_EPS = _study.SIZE["eps"]  # 0, 0.1, 0.2, 0.3, 0.4
STUDY_SEEDS = {"relu": (0, 1, 2), "gelu": (0, 1)}
STUDY_COLUMNS = (
    "activation",
    "eps",
    "seeds",
    "train_loss",
    "test_clean_%",
    "excess_dg",
    "ratio_at_s=1e-4",
    "p_excess_vs_eps0",
)


def study_compute(ctx: _common.Context, compute: bool = True) -> _common.FigureData:
    """Claim 2 from the zoo: scattering per (activation, eps, seed), summaries over
    seeds, slope and Welch tests."""
    arrays: dict[str, np.ndarray] = {"scales": np.array(_study.SCATTER_SCALES)}
    rows, tests, cost = [], {}, 0.0
    for act, seeds in STUDY_SEEDS.items():
        per = {}
        for eps in STUDY_EPS:
            got = []
            for seed in seeds:
                spec = _study.Spec(
                    eps=eps, seed=seed, schedule="linear", activation=act
                )
                sc = _study.scattering_eval(ctx, spec, compute=compute)
                fe = _study.final_eval(ctx, spec, compute=compute)
                if sc is None or fe is None:
                    continue
                cost += _study.cost(ctx, spec)
                got.append({**sc, **fe, "seed": seed})
            per[eps] = got
            if got:
                arrays[f"{act}/eps{eps:g}/ratio"] = np.array([g["ratio"] for g in got])
                arrays[f"{act}/eps{eps:g}/excess"] = np.array(
                    [g["excess"] for g in got]
                )
                arrays[f"{act}/eps{eps:g}/excess_rel"] = np.array(
                    [_study.excess_rel(g) for g in got]
                )
        r, t = _study.eps_rows(act, per, lambda g: g["excess"], "excess", [
            (lambda g: g["excess"], 1.0, 4), (lambda g: g["ratio"][0], 1.0, 1),
        ])  # fmt: skip
        rows += r
        tests.update(t)
        slope = _study.eps_slope(per, lambda g: g["excess"], seeds)
        if slope is not None:
            tests[f"{act}: slope of excess vs eps"] = slope
    return _study.figure_data(arrays, STUDY_COLUMNS, rows, cost, tests=tests)


def study_draw(fd: _common.FigureData, ctx: _common.Context) -> list[Path]:
    """(a) the excess ||delta g|| as s -> 0 against eps, ReLU and GELU (mean +- std
    over seeds); (b, c) the gradient-Lipschitz ratio against s per eps."""
    import matplotlib.pyplot as plt

    from landscape import plot

    with plt.rc_context(plot.PAPER_STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    rel = _relative(fd)
    for ax, key in ((axes[0], "excess"), (axes[1], "excess_rel")):
        for act, m in (("relu", "o"), ("gelu", "s")):
            xs, ms, sds, ns = [], [], [], []
            for eps in STUDY_EPS:
                a = fd.arrays.get(f"{act}/eps{eps:g}/excess")
                if key == "excess_rel":
                    a = rel.get((act, eps))
                if a is None or not len(a):
                    continue
                xs.append(eps)
                ms.append(np.mean(a))
                sds.append(np.std(a, ddof=1) if len(a) > 1 else 0.0)
                ns.append(len(a))
            if xs:
                n = f"n={min(ns)}" + (f"-{max(ns)}" if max(ns) != min(ns) else "")
                ax.errorbar(xs, ms, sds, marker=m, capsize=3, label=f"{act} ({n})")
        ax.set_xlabel("training (and attack) eps")
        ax.legend(fontsize=7)
        if not ax.lines:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center",
                    transform=ax.transAxes)  # fmt: skip
    axes[0].set_title("(a) excess ||delta g|| as s -> 0", fontsize=8)
    axes[1].set_title("(b) the same relative to ||g(w)|| (claim 2's test)", fontsize=8)
    scales = fd.arrays["scales"]
    ax = axes[2]
    for i, eps in enumerate(STUDY_EPS):
        a = fd.arrays.get(f"relu/eps{eps:g}/ratio")
        if a is not None:
            _study.band(ax, scales, a, label=f"eps={eps:g} (n={len(a)})",
                        color=f"C{i}", log=True)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step s")
    ax.set_title("(c) relu: ||delta g|| / ||delta w||", fontsize=8)
    ax.legend(fontsize=6)
    loss = ", ".join(
        f"{r[1]:g}: {r[3]}" for r in fd.table.get("rows", []) if r[0] == "relu"
    )
    spread = (
        f"mean +- std over seeds\nfinal robust training loss per eps (relu) {loss}: "
        "not converged at the larger eps"
    )
    return _study.save_claim(fig, ctx, fd, "Claim 2: gradient scattering, ", spread)


def _relative(fd: _common.FigureData) -> dict[tuple[str, float], list[float]]:
    """The relative excess per (activation, eps): the table's ``excess_rel``
    arrays, or for the earlier record (tables without them) each model's excess
    over its ``grad_norm`` from the committed evaluations
    (``results/study_evals/evals/<run>/scattering.json``)."""
    import json

    out: dict[tuple[str, float], list[float]] = {}
    for act in ("relu", "gelu"):
        for eps in STUDY_EPS:
            a = fd.arrays.get(f"{act}/eps{eps:g}/excess_rel")
            if a is not None:
                out[(act, eps)] = list(a)
    if out:
        return out
    size = fd.table.get("size") or {}
    rec = _common.REPO / "results" / "study_evals" / "evals"
    tail = f"-n{size.get('num_train')}-e{size.get('epochs')}-"
    for act in ("relu", "gelu"):
        for eps in STUDY_EPS:
            sch = "constant" if eps == 0 else "linear"
            pat = f"lenet-w1-{act}-{sch}-eps{eps:g}-lr0.002-s*{tail}*/scattering.json"
            vals = [_study.excess_rel(json.loads(p.read_text()))
                    for p in sorted(rec.glob(pat))]  # fmt: skip
            if vals:
                out[(act, eps)] = vals
    return out


STUDY = _study.tier(study_compute, study_draw, test_line=_study.verdict_line(4))
main = _common.figure_main(__doc__, NAME, compute, draw, note=NOTE, study=STUDY)


if __name__ == "__main__":
    raise SystemExit(main())

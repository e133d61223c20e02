"""Figure 1: robust linear classifiers across eps / eps* (the paper's theory, §3).

For the robust logistic loss of a linear model under an L-inf attack, sweep
``eps / eps*`` from 0 to 1.5 on Gaussian mixtures in d = 2, 50 and 784 and on MNIST
3 vs 7 (d = 784, with a bias), and plot ``||w||_2``, clean and robust error (train,
and test where held out) and the distance from the initialisation, with the robust
max-margin ``gamma`` (L1-constrained weights, a linear program) and the
constant-classifier threshold ``eps*`` marked. The curves are the exact optimum of
the convex closed form (:func:`landscape.linear.robust_train_closed_form`, L-BFGS-B);
the markers are full-batch PGD adversarial training of the same model
(:func:`landscape.linear.robust_train_pgd`: :class:`landscape.attacks.PGD`, 3
steps, 600 full-batch Adam iterations with cosine decay at the default size; ``--trainer`` runs them through
``landscape.train.adversarial_train`` instead) started from the same initialisation.
Past eps* PGD-AT ends near, not exactly at, ``w = 0`` (the L1 kink makes SGD hover),
so its errors there are those of a tiny non-constant classifier. Expected: ``||w||``
collapses to exactly 0 at eps*, the robust error goes to the constant classifier's
rate, PGD-AT lands on the closed-form curve.

A small L2 penalty (``--l2``, default 1e-4) keeps ``||w||`` finite below gamma, where
the unpenalised optimum runs off to infinity; it does not move eps*.

Commands::

    python figures/fig01_linear_theory.py --smoke     # d = 2, 50; 8 eps points; ~10 s
    python figures/fig01_linear_theory.py             # 4 panels, 16 points; ~2-3 min CPU
    python figures/fig01_linear_theory.py --full      # 31 points, n = 1000 / 4000; ~1 h CPU
    python figures/fig01_linear_theory.py --study     # claim 6: n = 1000 / 4000, 16 + 6
                                                      # points, 1000 PGD-AT iterations
    python figures/fig01_linear_theory.py --from-results   # redraw the table's figure

``--study`` also writes the claim-6 table to ``results/`` (eps*, gamma, ||w|| and the
robust error past eps* against the constant classifier's error, and the PGD-AT vs
closed-form cosines), with the default CPU size's rows next to it when those panels
are cached.

Hardware: one CPU core (no GPU needed). Results are cached per panel in
``data/results/fig01_<panel>_<size>.npz``; figures go to ``figures/out/``.
"""

from __future__ import annotations

import os
import sys

# One BLAS thread (before numpy loads): on a shared CPU OpenBLAS threads spin and make
# the L-BFGS solves of the closed form 10-50x slower in CPU time.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import _study  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from landscape import data as ldata  # noqa: E402
from landscape import linear  # noqa: E402
from landscape import plot as lplot  # noqa: E402

NAME = "fig01_linear_theory"


def _parser():
    p = _common.parser(__doc__)
    p.add_argument(
        "--norm",
        default="linf",
        choices=["linf", "l2"],
        help="attack norm (default linf: the weights pay their L1 norm)",
    )
    p.add_argument(
        "--l2",
        type=float,
        default=1e-4,
        help="L2 weight penalty (keeps ||w|| finite below gamma; 1e-4)",
    )
    p.add_argument(
        "--trainer",
        action="store_true",
        help="PGD points through landscape.train.adversarial_train (float32, slower "
        "per iteration) instead of the minimal float64 PGD-AT loop",
    )
    p.add_argument(
        "--digits",
        default="3,7",
        help="the two MNIST digits of the real binary task (default 3,7)",
    )
    return p


def _panels(ctx: _common.Context) -> list[dict]:
    n = ctx.pick(120, 400, 1000, study=1000)
    panels = [
        {
            "key": f"gauss_d{d}",
            "kind": "gauss",
            "dim": d,
            "n": n,
            "bias": False,
            "lr": 0.02,
            "label": f"Gaussian, d = {d}",
        }
        for d in ctx.pick((2, 50), (2, 50, 784), (2, 50, 784))
    ]
    if ctx.size != "smoke":
        panels.append(
            {
                "key": "mnist",
                "kind": "mnist",
                "n": ctx.pick(0, 1000, 4000, study=4000),
                "bias": True,
                "lr": 0.05,
                "label": "MNIST",
            }
        )
    return panels


def _gauss(dim: int, n: int, seed: int):
    x, y = ldata.gaussian_mixture(
        n,
        dim,
        margin=1.0,
        noise=1.0,
        generator=torch.Generator().manual_seed(seed),
        labels="pm1",
        dtype=torch.float64,
    )
    xt, yt = ldata.gaussian_mixture(
        2000,
        dim,
        margin=1.0,
        noise=1.0,
        generator=torch.Generator().manual_seed(seed + 1),
        labels="pm1",
        dtype=torch.float64,
    )
    return x.numpy(), y.numpy(), xt.numpy(), yt.numpy()


def _mnist(ctx: _common.Context, n: int, digits: tuple[int, int]):
    root = ctx.data_root or os.environ.get("LANDSCAPE_DATA")
    out = []
    for split, num in (("train", n), ("test", 2000)):
        x, y = ldata.load_dataset("mnist", root, split=split, download=False)
        x, y = ldata.binary_subset(x, y, classes=digits, labels="pm1")
        out += [x[:num].flatten(1).double().numpy(), y[:num].double().numpy()]
    return out


def compute_panel(ctx: _common.Context, panel: dict, args) -> linear.LinearSweep:
    """Run (or load) one panel's sweep, cached as ``fig01_<key>_<size>.npz``."""
    path = ctx.cache_dir / f"fig01_{panel['key']}_{ctx.size}.npz"
    if path.exists() and not ctx.recompute:
        try:
            print(f"[{NAME}] using cached results {path}")
            return linear.LinearSweep.load(path)
        except Exception as err:  # corrupt cache: recompute
            print(f"[{NAME}] cache {path} unreadable ({err}); recomputing")
    if panel["kind"] == "gauss":
        x, y, xt, yt = _gauss(panel["dim"], panel["n"], ctx.seed)
        label = panel["label"]
    else:
        digits = tuple(int(c) for c in args.digits.split(","))
        x, y, xt, yt = _mnist(ctx, panel["n"], digits)
        label = f"MNIST {digits[1]} vs {digits[0]}"
    pgd_rel = ctx.pick(
        (0.25, 1.25),
        (0.15, 0.5, 0.8, 1.25),
        (0.1, 0.3, 0.5, 0.7, 0.9, 1.25),
        study=(0.1, 0.3, 0.5, 0.7, 0.9, 1.25),
    )
    # the closed-form grid also holds the PGD points' eps, so markers sit on the curve
    eps_rel = np.union1d(np.linspace(0, 1.5, ctx.pick(8, 16, 31, study=16)), pgd_rel)
    print(f"[{NAME}] {label}: n = {len(y)}, d = {x.shape[1]} ...")
    sweep = linear.linear_sweep(
        x,
        y,
        norm=args.norm,
        eps_rel=eps_rel,
        bias=panel["bias"],
        l2=args.l2,
        x_test=xt,
        y_test=yt,
        pgd_eps_rel=pgd_rel,
        pgd_kw={
            "max_iter": ctx.pick(60, 600, 2000, study=1000),
            "steps": ctx.pick(3, 3, 5),
            "optimizer": "adam",
            "lr": panel["lr"],
            "trainer": bool(args.trainer),
        },
        generator=ctx.generator,
        label=label,
    )
    sweep.save(path)
    return sweep


def draw(sweeps: list[linear.LinearSweep], ctx: _common.Context) -> list[Path]:
    axes = lplot.plot_linear_sweeps(sweeps, quantities=("w_norm", "error", "dist_init"))
    n = ", ".join(
        f"d = {sw.meta.get('dim', '?')}: n = {sw.meta.get('num_samples', '?')}"
        for sw in sweeps
    )
    title = (
        "Claim 6: linear models, closed form (lines) vs PGD-AT (markers); "
        "w0 = the common initialisation, uniform in [-1/sqrt(d), 1/sqrt(d)], of the "
        "closed-form solver and PGD-AT\nPGD-AT points past eps* sit near w = 0 "
        "(the closed form is w = 0 exactly there):\ntheir small ||w|| and noisy "
        "error are ties of a near-constant classifier, not a second solution"
        + (f"\n{n}" if "?" not in n else "")
    )
    return _common.save_figure(axes[0, 0].figure, ctx, title=title)


STUDY_COLUMNS = (
    "size",
    "panel",
    "n",
    "d",
    "eps_star",
    "gamma",
    "max_w_norm_past_eps_star",
    "robust_err_past_eps_star",
    "constant_classifier_err",
    "pgd_eps_rel",
    "pgd_cosine",
    "holds",
)


def _row(size: str, key: str, sw: linear.LinearSweep) -> list:
    """One claim-6 row: past eps* the closed-form optimum is w = 0 and its robust
    error is the constant classifier's."""
    past = sw.eps >= sw.eps_star * (1 + 1e-9)
    wmax = float(np.max(sw.w_norm[past])) if past.any() else float("nan")
    rerr = float(np.max(sw.robust_error[past])) if past.any() else float("nan")
    holds = bool(wmax < 1e-6 and abs(rerr - sw.majority_error) < 1e-9)
    rel = np.asarray(sw.pgd_eps) / sw.eps_star if sw.eps_star > 0 else sw.pgd_eps
    return [
        size,
        key,
        int(sw.meta.get("num_samples", 0)) or None,
        int(sw.meta.get("dim", np.asarray(sw.w_init).shape[-1])),
        round(float(sw.eps_star), 6),
        round(float(sw.gamma), 6),
        wmax,
        round(rerr, 4),
        round(float(sw.majority_error), 4),
        " ".join(f"{v:.2f}" for v in rel),
        " ".join(f"{c:.4f}" for c in sw.pgd_cosine),
        holds,
    ]


def study_table(
    ctx: _common.Context, panels: list[dict], sweeps: list[linear.LinearSweep]
) -> list[Path]:
    """The claim-6 table (this size, plus the default size's cached panels), published
    with the study panels in ``results/`` (a ``--from-results`` run prints it)."""
    if ctx.from_results:
        fd = _study.assemble(ctx, NAME, None)
        for r in fd.table["rows"]:
            print(f"[{NAME}] " + " | ".join(str(v) for v in r))
        return []
    rows = [_row("study", p["key"], sw) for p, sw in zip(panels, sweeps)]
    for p in _panels(ctx):
        cpu = ctx.cache_dir / f"fig01_{p['key']}_cpu.npz"
        if cpu.exists():
            rows.append(_row("cpu", p["key"], linear.LinearSweep.load(cpu)))
    fd = _study.assemble(
        ctx,
        NAME,
        lambda compute: _common.FigureData(
            table={"columns": list(STUDY_COLUMNS), "rows": rows}
        ),
    )
    for r in rows:
        print(f"[{NAME}] " + " | ".join(str(v) for v in r))
    out = []
    for p, sw in zip(panels, sweeps):
        path = _common.PUBLISHED / f"fig01_{p['key']}_study.npz"
        sw.save(path)
        out += [path, Path(f"{path}.json")]
    return out + _study.publish(ctx, NAME, fd, STUDY_COLUMNS, rows)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    ctx = _common.setup(args, NAME)
    torch.set_num_threads(1)
    panels = _panels(ctx)
    if ctx.collect or ctx.from_results:  # study tier: the panels that finished
        panels = [
            p
            for p in panels
            if (ctx.cache_dir / f"fig01_{p['key']}_{ctx.size}.npz").exists()
        ]
        if not panels:
            raise SystemExit(
                f"[{NAME}] no {ctx.size} panel in {ctx.cache_dir}: not run yet; "
                "run --study first"
            )
    sweeps = [compute_panel(ctx, p, args) for p in panels]
    for s in sweeps:
        # past eps* the closed form is w = 0, where a cosine is undefined
        cos = ", ".join(
            f"{c:.4f}" if np.isfinite(c) else "n/a (w = 0)" for c in s.pgd_cosine
        )
        print(
            f"[{NAME}] {s.label}: eps* = {s.eps_star:.4g}, gamma = {s.gamma:.4g}, "
            f"PGD-AT vs closed-form cosine per PGD-AT point [{cos}]"
        )
    paths = draw(sweeps, ctx)
    if ctx.size == "study":
        paths += study_table(ctx, panels, sweeps)
    _common.report(ctx, paths)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

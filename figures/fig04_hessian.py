"""Figure 4: Hessian curvature of models adversarially trained at several eps (MNIST).

Models (LeNet; an MLP at --smoke) are trained with
:func:`landscape.train.adversarial_train` (Adam, PGD, eps ramped linearly over the first
half of the epochs) at each training eps. For each model the Hessian of the training
objective is analysed on a fixed subset: the loss on adversarial examples generated
once at the final model (PGD at the training eps, :func:`landscape.hessian.adversarial_data`;
clean data at eps = 0). Panels: (a) the top-k eigenvalues (Lanczos) of the adversarial
and of the clean loss against the training eps; (b) the spectral densities (stochastic
Lanczos quadrature, log scale); (c) the trace (Hutch++) with its 95% interval. The
paper's observation: larger training eps gives a sharper adversarial loss (larger top
eigenvalues and more outliers).

Commands::

    python figures/fig04_hessian.py --smoke   # MLP, 3 eps, tiny subsets; < 30 s CPU
    python figures/fig04_hessian.py           # LeNet (hidden 256), 4 eps; ~10-20 min CPU
    python figures/fig04_hessian.py --full    # LeNet, 5 eps, more data; GPU or ~hours CPU

Hardware: one CPU thread (no GPU needed) for --smoke and the default size. Results are
cached in ``data/results/fig04_hessian_<size>.npz``; figures go to ``figures/out/``.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from landscape import hessian, models, spectrum  # noqa: E402

NAME = "fig04_hessian"


def _settings(ctx: _common.Context) -> dict:
    return dict(
        model=ctx.pick("mlp", "lenet", "lenet"),
        model_kw=ctx.pick({"hidden": (32,)}, {"hidden_size": 256}, {}),
        num_train=ctx.pick(256, 2048, 10000),
        epochs=ctx.pick(2, 8, 20),
        lr=ctx.pick(3e-3, 2e-3, 1e-3),
        train_eps=ctx.pick(
            [0.0, 0.1, 0.3], [0.0, 0.1, 0.2, 0.3], [0.0, 0.1, 0.2, 0.3, 0.4]
        ),
        train_steps=ctx.pick(3, 5, 10),
        num_hessian=ctx.pick(128, 1000, 2000),
        attack_steps=ctx.pick(5, 20, 40),
        k=ctx.pick(3, 5, 10),
        num_iters=ctx.pick(20, 80, 100),
        num_runs=ctx.pick(2, 3, 5),
        num_probes=ctx.pick(21, 60, 150),
    )


def _load(ctx: _common.Context, n: int):
    from landscape import data

    try:
        return data.load_dataset(
            "mnist",
            ctx.data_root,
            num_samples=n,
            seed=ctx.seed,
            download=ctx.size != "smoke",
        )
    except (
        Exception
    ) as err:  # no data folder: synthetic images keep the smoke run going
        warnings.warn(
            f"MNIST unavailable ({err}); using synthetic images", stacklevel=2
        )
        g = torch.Generator().manual_seed(ctx.seed)
        y = torch.randint(0, 10, (n,), generator=g)
        proto = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        return (proto[y] + 0.3 * torch.randn(n, 1, 28, 28, generator=g)).clamp(0, 1), y


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
    x, y = _load(ctx, cfg["num_train"])
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
            else hessian.adversarial_data(
                model, fixed, eps=eps, steps=cfg["attack_steps"], generator=gen
            )
        )
        ea = hessian.top_eigenvalues(
            model, lf, adv, k=cfg["k"], generator=gen, return_vectors=False
        )
        ec = (
            ea
            if eps == 0
            else hessian.top_eigenvalues(
                model, lf, fixed, k=cfg["k"], generator=gen, return_vectors=False
            )
        )
        dens = spectrum.lanczos_density(
            model,
            lf,
            adv,
            num_iters=cfg["num_iters"],
            num_runs=cfg["num_runs"],
            generator=gen,
        )
        tr = hessian.trace(
            model,
            lf,
            adv,
            num_probes=cfg["num_probes"],
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
                "hvps": ea.num_hvps + ec.num_hvps + dens.num_hvps + tr.num_hvps,
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
    from landscape.hessian import TraceEstimate
    from landscape.spectrum import Density

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


def main(argv: list[str] | None = None) -> int:
    ctx = _common.setup(_common.parser(__doc__).parse_args(argv), NAME)
    fd = _common.cached(ctx, NAME, lambda: compute(ctx))
    paths = draw(fd, ctx)
    note = None
    if ctx.size != "full":
        note = "small CPU size: eigenvalue magnitudes are not the paper's"
    _common.report(ctx, paths, note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

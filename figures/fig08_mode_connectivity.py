"""Figure 8 (Liu et al., NeurIPS 2020, Appendix C, mode connectivity under adversarial
training): two adversarially trained MNIST LeNets connected by the straight line and
by a trained quadratic Bezier curve; clean and robust loss and accuracy along both.

Two LeNets are trained with PGD from different initialisations
(``landscape.train.adversarial_train``, eps ramped up over the first half of the
epochs). The straight line between them (``landscape.connectivity.init_curve``) and a
quadratic Bezier curve whose bend is trained with PGD adversarial training at random
t (a ``landscape.connectivity.CurveModel`` trained by ``adversarial_train``; endpoints
fixed) are scanned at equally
spaced t on test images (``scan_curve``): clean loss / accuracy and robust loss /
accuracy under PGD at the training eps. The barrier height is the maximum loss along
a path minus the mean of the endpoints' losses (for accuracy: the endpoints' mean
minus the minimum).

Commands::

    python figures/fig08_mode_connectivity.py --smoke   # 256 images, 1 epoch, < 30 s
    python figures/fig08_mode_connectivity.py           # 2k images, CPU, a few minutes
    python figures/fig08_mode_connectivity.py --full    # paper-like size, GPU

Sizes: the default CPU size (LeNet, 2,000 training images, eps = 0.1, PGD-5 training
for 4 epochs per endpoint and 4 epochs for the curve, Adam 1e-3; 11 points on 500 test
images, PGD-10 evaluation; 3 minutes wall measured at nice 10 on a shared 2-core
machine, 37 s of CPU time) illustrates the effect, not the paper's numbers.
``--full`` (eps = 0.3, 60k images, PGD-40 step 0.01, 20 epochs per model and curve, 21
points on 1,000 test images, PGD-20) is a GPU session.
Output: ``figures/out/fig08_mode_connectivity.{png,pdf}``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from landscape import attacks, connectivity, data, models, train  # noqa: E402

NAME = "fig08_mode_connectivity"
NOTE = "CPU sizes illustrate the effect; --full is a GPU run"
_KEYS = ("clean_loss", "clean_acc", "robust_loss", "robust_acc")


def settings(ctx: _common.Context) -> dict:
    """Sizes per ``--smoke`` / default / ``--full``: the endpoints' training, the
    curve's epochs and the scan (points, PGD steps)."""
    return dict(
        eps=ctx.pick(0.1, 0.1, 0.3),
        num_train=ctx.pick(256, 2000, None),
        num_test=ctx.pick(128, 500, 1000),
        epochs=ctx.pick(1, 4, 20),
        steps=ctx.pick(2, 5, 40),
        lr=ctx.pick(1e-3, 1e-3, 1e-3),
        curve_epochs=ctx.pick(1, 4, 20),
        num_points=ctx.pick(5, 11, 21),
        eval_steps=ctx.pick(3, 10, 20),
    )


def _scan(ctx, s, model, curve, test) -> connectivity.CurveScan:
    # the evaluation PGD (best iterate, random start)
    attack = attacks.PGD(eps=s["eps"], steps=s["eval_steps"], loss="ce", keep="best")
    return connectivity.scan_curve(
        model,
        torch.nn.CrossEntropyLoss(),
        test,
        curve,
        num=s["num_points"],
        attack=attack,
        generator=torch.Generator().manual_seed(ctx.seed + 1),
        progressbar=True,
    )


def compute(ctx: _common.Context) -> _common.FigureData:
    """Train two endpoints and a Bezier curve; scan the line and the curve."""
    s = settings(ctx)
    x, y, xt, yt = _common.mnist(ctx, s["num_train"], s["num_test"])
    dev = ctx.device
    ends = []
    for i in range(2):
        torch.manual_seed(ctx.seed + 100 * i)  # two different initialisations
        m = models.build("lenet", dataset="mnist").to(dev)
        _common.train_warmup(
            m, x, y, s["eps"], epochs=s["epochs"], lr=s["lr"], steps=s["steps"], ctx=ctx
        )
        ends.append(m.eval())
    # the curve, trained by the one training loop: its bends at a random t per batch
    curve_model = connectivity.CurveModel(ends[0], ends[1], kind="bezier", num_bends=1)
    cfg = train.TrainConfig(
        epochs=s["curve_epochs"],
        batch_size=64,
        optimizer="adam",
        lr=s["lr"],
        attack=attacks.PGD(eps=s["eps"], steps=s["steps"]),
        seed=ctx.seed,
        runtime=train.Runtime(eval_num=0, co_check_num=0),
    )
    loader = data.batches(x, y, batch_size=64, shuffle=True, seed=ctx.seed, device=dev)
    res = train.adversarial_train(curve_model, loader, cfg, progressbar=True)
    test = data.batches(xt, yt, batch_size=500, device=dev)
    scans = {
        "line": _scan(
            ctx, s, ends[0], connectivity.init_curve(*ends, kind="line"), test
        ),
        "bezier": _scan(ctx, s, ends[0], curve_model.curve(), test),
    }
    arrays: dict[str, np.ndarray] = {"ts": scans["line"].ts}
    table: dict = {
        "settings": s,
        "curve_train_loss": res.metrics["train_loss"].tolist(),
    }
    for name, sc in scans.items():
        for k in _KEYS:
            arrays[f"{name}/{k}"] = getattr(sc, k)
        table[name] = {k.replace("_", " ") + " barrier": sc.barrier(k) for k in _KEYS}
        table[name]["min clean acc"] = float(sc.clean_acc.min())
        table[name]["min robust acc"] = float(sc.robust_acc.min())
    table["endpoints"] = {
        k: [float(v[0]), float(v[-1])]
        for k, v in ((k, getattr(scans["line"], k)) for k in _KEYS)
    }
    return _common.FigureData(arrays=arrays, table=table)


def _scans(fd: _common.FigureData) -> dict[str, connectivity.CurveScan]:
    eps = fd.table["settings"]["eps"]
    out = {}
    for name, label in (("line", "line"), ("bezier", "Bezier curve")):
        out[label] = connectivity.CurveScan(
            ts=fd.arrays["ts"],
            kind=name,
            meta={"eps": eps},
            **{k: fd.arrays[f"{name}/{k}"] for k in _KEYS},
        )
    return out


def draw(fd: _common.FigureData, ctx: _common.Context) -> list[Path]:
    """Loss (left) and accuracy (right) against t: line and Bezier curve, clean
    (solid) and robust (dashed)."""
    from landscape import plot

    axes = plot.plot_connectivity(
        _scans(fd),
        title=f"two PGD-trained LeNets (eps={fd.table['settings']['eps']:g})",
    )
    return _common.save_figure(axes[0].figure, ctx)


def _summary(fd: _common.FigureData, ctx: _common.Context) -> None:
    for name in ("line", "bezier"):
        t = fd.table[name]
        print(
            f"[{NAME}] {name}: clean loss barrier {t['clean loss barrier']:.3f}, robust "
            f"loss barrier {t['robust loss barrier']:.3f}, min clean acc "
            f"{t['min clean acc']:.3f}, min robust acc {t['min robust acc']:.3f}"
        )


main = _common.figure_main(
    __doc__, NAME, compute, draw, show=_summary, note=NOTE, full_note=True
)


if __name__ == "__main__":
    raise SystemExit(main())

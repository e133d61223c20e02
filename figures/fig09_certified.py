"""Certified vs attacked robust accuracy against eps for an adversarially trained MNIST
MLP: the true robust accuracy lies in the bracket [certified (CROWN), attacked].

A ReLU MLP (``models.build("mlp")``, hidden 100) is PGD-trained on MNIST at eps = 0.1
(L-inf, eps ramped over the first half of the epochs), then evaluated over an eps sweep
with :func:`landscape.evaluate.evaluate` (``certify=True``: the attacks give the upper
end, CROWN the lower end, and a check flags any point both certified and broken); IBP
is drawn for comparison (:func:`landscape.certify.certify`, ``method="ibp"``).

Commands::

    python figures/fig09_certified.py --smoke   # 512 images, 2 epochs, 64 points (~20 s)
    python figures/fig09_certified.py           # 6k images, 6 epochs, 300 points (CPU)
    python figures/fig09_certified.py --full    # 60k images, 20 epochs, 1,000 points

Attacked: the "quick" preset (PGD-20) for ``--smoke``, "standard" (AutoAttack's
standard version, budgets x 0.2 on CPU, full with ``--full``) otherwise.
Output: ``figures/out/fig09_certified.{png,pdf}`` (``--out-dir`` to change).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from landscape import certify, evaluate, models  # noqa: E402

NAME = "fig09_certified"
TRAIN_EPS = 0.1


def settings(ctx: _common.Context) -> dict:
    """Sizes per ``--smoke`` / default / ``--full``: training, test points and the
    attack preset."""
    return dict(
        num_train=ctx.pick(512, 6000, 60000),
        epochs=ctx.pick(2, 6, 20),
        steps=ctx.pick(3, 5, 10),
        num_eval=ctx.pick(64, 300, 1000),
        preset=ctx.pick("quick", "standard", "standard"),
        scale=ctx.pick(1.0, 0.2, 1.0),
    )


def compute(ctx: _common.Context) -> _common.FigureData:
    """Train the MLP, then attack and certify it over the eps sweep."""
    s = settings(ctx)
    x, y, xt, yt = _common.mnist(ctx, s["num_train"], s["num_eval"])
    torch.manual_seed(ctx.seed)
    model = models.build("mlp", dataset="mnist", hidden=(100,)).to(ctx.device)
    _common.train_warmup(
        model, x, y, TRAIN_EPS, epochs=s["epochs"], lr=1e-3, steps=s["steps"], ctx=ctx
    )
    model.eval()
    eps = np.round(np.linspace(0.0, 0.15, 7 if ctx.size == "smoke" else 11), 4)
    res = evaluate.evaluate(
        model,
        (xt, yt),
        eps=eps,
        preset=s["preset"],
        scale=s["scale"],
        certify=True,
        checks=False,
        generator=ctx.generator,
        progressbar=True,
    )
    ibp = certify.certify(model, (xt, yt), eps=eps, method="ibp")
    cert, att = res.bracket
    for e, c, a, i in zip(eps, cert, att, ibp.certified_accuracy):
        print(f"[{NAME}] eps {e:.3f}: certified {c:.3f} (IBP {i:.3f}) attacked {a:.3f}")
    return _common.FigureData(
        arrays={
            "eps": np.asarray(eps, dtype=float),
            "certified": np.asarray(res.certified),
            "robust_correct": np.asarray(res.robust_correct),
            "clean_correct": np.asarray(res.clean_correct),
            "ibp": np.asarray(ibp.certified),
        },
        table={
            "preset": res.preset,
            "violations": int(res.checks["certified_attacked"]["value"]),
            "settings": s,
        },
    )


def draw(fd: _common.FigureData, ctx: _common.Context) -> list[Path]:
    """The bracket against eps, with IBP."""
    from landscape import plot

    eps = fd.arrays["eps"]
    n = len(fd.arrays["clean_correct"])
    res = evaluate.EvalResult(
        eps=eps,
        norm="linf",
        preset=fd.table["preset"],
        attacks=[],
        clean_correct=fd.arrays["clean_correct"],
        robust_correct=fd.arrays["robust_correct"],
        broken_by=np.zeros((len(eps), n), dtype=int),
        certified=fd.arrays["certified"],
    )
    ibp = certify.CertifyResult(
        eps=eps,
        norm="linf",
        method="ibp",
        certified=fd.arrays["ibp"],
        clean_correct=fd.arrays["clean_correct"],
    )
    ax = plot.plot_certified(res, others={"IBP": ibp})
    ax.set_title(
        f"MNIST MLP, PGD-trained at eps {TRAIN_EPS}, {n} points "
        f"({fd.table['violations']} certified-yet-broken)",
        fontsize=8,
    )
    return _common.save_figure(ax.figure, ctx)


main = _common.figure_main(__doc__, NAME, compute, draw)


if __name__ == "__main__":
    raise SystemExit(main())

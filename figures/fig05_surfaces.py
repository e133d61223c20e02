"""Figure 5 (Liu et al., NeurIPS 2020, loss landscapes per training eps): 2D
filter-normalised loss surfaces of LeNet models adversarially trained on MNIST with
different eps, for the clean loss and the adversarial loss at the training eps.

For every training eps a LeNet is trained from the same initialisation
(``landscape.train.adversarial_train``, PGD at that eps from the start); around the
final weights we draw two filter-normalised random directions (Li et al., 2018;
``ignore="biasbn"``) and evaluate ``landscape.surface.loss_surface`` on test images:
the clean loss, and the adversarial loss at the training eps (PGD examples fixed at the
centre for the CPU sizes, re-attacked at every grid point with ``--full``). The figure
shows one filled-contour panel per eps (log-scaled levels, one colour scale per row:
clean on top, adversarial below) and an interactive HTML with the 3D adversarial
surfaces side by side.

Commands::

    python figures/fig05_surfaces.py --smoke   # 256 images, eps 0 / 0.3, 5x5 grid, < 30 s
    python figures/fig05_surfaces.py           # 2k images, 4 eps, 21x21 grid, CPU
    python figures/fig05_surfaces.py --full    # the paper's setting, GPU
    python figures/fig05_surfaces.py --study   # surfaces of the study zoo (below)
    python figures/fig05_surfaces.py --from-results   # redraw from results/

``--study``: the surfaces (21 x 21, span 1, 500 test images, PGD-10 examples fixed at
the centre) of the study zoo's converged warm-up models (``figures/_study.py``: 8,000
images, 8 epochs of PGD-5, eps warmed up over 4 epochs), seed 0, eps in {0, 0.1, 0.2,
0.3, 0.4}; the table gives the centre loss and the mean rise of the loss on the grid's
border (a flatness proxy). One seed: an illustration, no claim is tested here.

Sizes: the default CPU size (LeNet, 2,000 training images, PGD-5, Adam lr 1e-3, 4
epochs; surfaces 21 x 21 on 500 test images with PGD-10 examples fixed at the centre;
6.5 minutes measured on one thread of a shared 2-core machine) illustrates the trend,
not the paper's numbers; at this size the eps=0.3 model has not left its
initialisation and its surfaces are flat near log 10.
``--full`` (preset ``mnist-lenet``: 60k images, 100 epochs; 41 x 41 grid on 1,000
test images, PGD re-attacked at every point) is a GPU session.
Output: ``figures/out/fig05_surfaces.{png,pdf}`` and ``fig05_surfaces.html``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import _study  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from landscape import attacks, directions, surface, train  # noqa: E402

NAME = "fig05_surfaces"
NOTE = "CPU sizes illustrate the trend; --full is the paper's setting"


def settings(ctx: _common.Context) -> dict:
    """Sizes per ``--smoke`` / default / ``--full``: the LeNet runs, then the grid
    and the attack of the adversarial surfaces."""
    return dict(
        eps=ctx.pick((0.0, 0.3), (0.0, 0.1, 0.2, 0.3), (0.0, 0.1, 0.2, 0.3, 0.4)),
        num_train=ctx.pick(256, 2000, None),
        num_test=ctx.pick(128, 500, 1000),
        epochs=ctx.pick(1, 4, 100),
        steps=ctx.pick(2, 5, None),
        lr=ctx.pick(1e-3, 1e-3, 1e-4),
        grid=ctx.pick(5, 21, 41),
        span=ctx.pick(1.0, 1.0, 1.0),
        attack_steps=ctx.pick(3, 10, 20),
        adversarial=ctx.pick("fixed", "fixed", "reattack"),
    )


def _config(ctx: _common.Context, s: dict, eps: float) -> train.TrainConfig:
    if ctx.size == "full":
        return _common.paper_lenet_config(ctx, eps)
    return _common.small_lenet_config(ctx, s, eps, eval_num=0)


def compute(ctx: _common.Context) -> _common.FigureData:
    """Train one LeNet per eps and evaluate its clean and adversarial surfaces."""
    s = settings(ctx)
    x, y, xt, yt = _common.mnist(ctx, s["num_train"], s["num_test"])
    dev = ctx.device
    test = [(xt.to(dev), yt.to(dev))]
    xs = np.linspace(-s["span"], s["span"], s["grid"])
    loss_fn = torch.nn.CrossEntropyLoss()
    arrays: dict[str, np.ndarray] = {"xs": xs}
    table: dict = {
        "eps": list(s["eps"]),
        "settings": {k: v for k, v in s.items() if k != "eps"},
    }
    for eps in s["eps"]:
        cfg = _config(ctx, s, eps)
        torch.manual_seed(ctx.seed)  # the same initial weights for every eps
        model = _common.model_for(cfg).to(dev)  # --full: the paper's width-16 LeNet
        table["settings"]["num_params"] = _common.num_params(model)
        train.adversarial_train(model, (x.to(dev), y.to(dev)), cfg)
        model.eval()
        g = torch.Generator().manual_seed(ctx.seed)
        dirs = directions.random_directions(
            model, norm="filter", ignore="biasbn", generator=g
        )
        clean = surface.loss_surface(
            model, loss_fn, test, dirs, xs=xs, progressbar=True
        )
        adv = surface.loss_surface(
            model,
            loss_fn,
            test,
            dirs,
            xs=xs,
            adversarial=s["adversarial"] if eps > 0 else None,
            attack=_pgd(eps, s["attack_steps"]),
            generator=torch.Generator().manual_seed(ctx.seed + 1),
            progressbar=True,
        )
        for kind, surf in (("clean", clean), ("adv", adv)):
            arrays[f"eps{eps:g}/{kind}_loss"] = surf.loss
            arrays[f"eps{eps:g}/{kind}_acc"] = surf.accuracy
        table[f"eps{eps:g}"] = {
            "clean_center": clean.center_loss,
            "adv_center": adv.center_loss,
            "points_per_second": clean.meta["points_per_second"],
            "strategy": clean.meta["strategy"],
            "batch_size": clean.meta["batch_size"],
        }
    return _common.FigureData(arrays=arrays, table=table)


def _surfaces(fd: _common.FigureData, kind: str) -> list[surface.Surface]:
    xs = fd.arrays["xs"]
    mode = fd.table["settings"]["adversarial"] if kind == "adv" else "clean"
    out = []
    for e in fd.table["eps"]:
        meta = {"adversarial": mode if e > 0 else "clean", "eps": e}
        out.append(
            surface.Surface(
                xs,
                xs,
                fd.arrays[f"eps{e:g}/{kind}_loss"],
                fd.arrays[f"eps{e:g}/{kind}_acc"],
                meta,
            )
        )
    return out


STUDY_COLUMNS = (
    "eps",
    "clean_center",
    "clean_border_rise",
    "adv_center",
    "adv_border_rise",
)


def _pgd(eps: float, steps: int) -> attacks.PGD | None:
    """PGD-``steps`` at ``eps``, its default step ``2.5 eps / steps`` (None at eps 0)."""
    return attacks.PGD(eps=eps, steps=steps) if eps > 0 else None


def _study_surfaces(ctx, spec: _study.Spec, xs: np.ndarray) -> dict:
    model = _study.load_final(ctx, spec)
    _, _, xt, yt = _study.mnist(ctx)
    test = [(xt[:500].to(ctx.device), yt[:500].to(ctx.device))]
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(0)
    dirs = directions.random_directions(
        model, norm="filter", ignore="biasbn", generator=g
    )
    out = {}
    for kind in ("clean", "adv"):
        adv = kind == "adv" and spec.eps > 0
        surf = surface.loss_surface(
            model,
            loss_fn,
            test,
            dirs,
            xs=xs,
            adversarial="fixed" if adv else None,
            attack=_pgd(spec.eps, 10) if adv else None,
            generator=torch.Generator().manual_seed(1),
        )
        out[f"{kind}_loss"] = np.asarray(surf.loss).tolist()
        out[f"{kind}_acc"] = np.asarray(surf.accuracy).tolist()
    return out


def study_compute(ctx: _common.Context, compute: bool = True) -> _common.FigureData:
    """Surfaces of the zoo's warm-up models (seed 0), cached per model."""
    xs = np.linspace(-1.0, 1.0, 21)
    arrays: dict[str, np.ndarray] = {"xs": xs}
    table: dict = {"eps": [], "settings": {"adversarial": "fixed"}, "rows": []}
    cost = 0.0
    for eps in _study.SIZE["eps"]:  # 0, 0.1, 0.2, 0.3, 0.4
        spec = _study.Spec(eps=eps, seed=0, schedule="linear")
        if _study.train_run(ctx, spec, compute=compute) is None:
            continue
        r = _study.memo(
            ctx,
            spec,
            "surfaces",
            lambda spec=spec: _study_surfaces(ctx, spec, xs),
            compute=compute,
        )
        if r is None:
            continue
        cost += _study.cost(ctx, spec)
        table["eps"].append(eps)
        row = [eps]
        for kind in ("clean", "adv"):
            loss = np.asarray(r[f"{kind}_loss"])
            arrays[f"eps{eps:g}/{kind}_loss"] = loss
            arrays[f"eps{eps:g}/{kind}_acc"] = np.asarray(r[f"{kind}_acc"])
            c = loss[len(xs) // 2, len(xs) // 2]
            border = np.concatenate([loss[0], loss[-1], loss[1:-1, 0], loss[1:-1, -1]])
            row += [round(float(c), 4), round(float(border.mean() - c), 4)]
        table["rows"].append(row)
    table["columns"] = list(STUDY_COLUMNS)
    table["compute_seconds"] = round(cost, 1)
    return _common.FigureData(arrays=arrays, table=table)


def draw(
    fd: _common.FigureData,
    ctx: _common.Context,
    *,
    html: bool = True,
    title: str | None = None,
) -> list[Path]:
    """Two rows of filled contours (clean, adversarial at the training eps), one column
    per training eps, log-scaled levels with a shared colour scale per row; plus the
    interactive 3D adversarial surfaces as one self-contained HTML file."""
    import matplotlib.pyplot as plt

    from landscape import plot

    eps_list = fd.table["eps"]
    n = len(eps_list)
    with plt.rc_context(plot.PAPER_STYLE):
        fig, axes = plt.subplots(2, n, figsize=(2.7 * n + 1.0, 5.0), squeeze=False)
    for row, (kind, label) in enumerate((("clean", "clean"), ("adv", "adversarial"))):
        surfs = _surfaces(fd, kind)
        if kind == "adv":  # at eps 0 the adversarial loss is the clean one (row above)
            surfs = [None if e == 0 else s for e, s in zip(eps_list, surfs)]
        plot.plot_surfaces(
            surfs,
            titles=[
                f"train eps={e:g}: {label} loss"
                if e > 0 or kind == "clean"
                else "train eps=0:\nadversarial loss at eps 0\n= clean loss (above)"
                for e in eps_list
            ],
            kind="contourf",
            log=True,
            levels=25,
            axes=axes[row],
        )
    paths = _common.save_figure(fig, ctx, title=title)
    if html:  # (the self-contained HTML is megabytes: not for results/)
        page = plot.surfaces_3d(
            _surfaces(fd, "adv"),
            titles=[f"train eps={e:g} (adv. loss)" for e in eps_list],
            log=True,
        )
        paths.append(plot.write_html(page, ctx.out_dir / f"{NAME}.html"))
    return paths


def _study_draw(fd: _common.FigureData, ctx: _common.Context) -> list[Path]:
    if not fd.table["eps"]:
        raise SystemExit(f"[{NAME}] no zoo model is finished yet: nothing to draw")
    centre = ", ".join(f"{r[0]:g}: {r[3]:.2f}" for r in fd.table["rows"])
    title = (
        f"Loss surfaces (filter-normalised random directions, 500 test images), "
        f"{_study.recipe_label(fd)}; ONE seed (n = 1, no spread)\nadversarial loss at "
        f"the centre per eps {centre}: the flat-looking large-eps surfaces are a "
        "plateau near log 10 = 2.30 of under-trained models, not a flat minimum"
    )
    return draw(fd, ctx, html=False, title=title)


STUDY = _study.tier(study_compute, _study_draw)
main = _common.figure_main(
    __doc__, NAME, compute, draw, note=NOTE, full_note=True, study=STUDY
)


if __name__ == "__main__":
    raise SystemExit(main())

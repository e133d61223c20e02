"""``python -m landscape.plot``: draw saved results, or compute a loss surface from a
checkpoint and draw it, in one command.

Draw (the default)::

    python -m landscape.plot data/results/surf_eps0.npz -o fig.pdf --kind contour
    python -m landscape.plot a.npz b.npz c.npz -o side_by_side.png --log
    python -m landscape.plot surf.npz -o surf.html               # interactive 3D
    python -m landscape.plot data/results/scatter.npz -o s.png     # any saved result

Compute a surface from a checkpoint::

    python -m landscape.plot compute runs/mnist_eps0.3/final.pt --dataset mnist \\
        --num-samples 1000 --grid -1 1 21 --adversarial fixed --eps 0.3 \\
        -o data/results/surf.npz --plot figures/out/surf.png

A saved result is dispatched on the class recorded in its JSON sidecar
(``__class__``) to the matching plot function of :mod:`landscape.plot`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "load_result", "DISPATCH"]

# class name -> (module that defines it, plot function in landscape.plot). Classes not
# listed are looked up in every landscape module and drawn with plot_<snake_name>.
DISPATCH: dict[str, tuple[str, str]] = {
    "Surface": ("landscape.surface", "plot_surface"),
    "LinearSweep": ("landscape.linear", "plot_linear_sweep"),
    "ScatteringResult": ("landscape.scattering", "plot_scattering_distribution"),
    "GradNormStats": ("landscape.scattering", "plot_gradnorm_distribution"),
    "TrainingGradNorms": ("landscape.scattering", "plot_training_gradnorms"),
    "TrainResult": ("landscape.train", "plot_run"),
    "EvalResult": ("landscape.evaluate", "evaluation_figure"),
    "Eigenpairs": ("landscape.hessian", "plot_eigenvalues"),
    "Density": ("landscape.spectrum", "plot_density"),
}
_MODULES = (
    "surface",
    "hessian",
    "spectrum",
    "scattering",
    "linear",
    "evaluate",
    "train",
    "schedules",
    "data",
)

_EPILOG = """\
Compute a surface from a checkpoint with `python -m landscape.plot compute --help`.

Output formats follow the suffix of -o: .png / .pdf (matplotlib) or .html (plotly,
self-contained: plotly.js is embedded, the file works offline). Several surfaces are
drawn side by side with a shared colour scale (2D) or overlaid (1D lines)."""


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _result_class(name: str):
    if name in DISPATCH:
        mod = importlib.import_module(DISPATCH[name][0])
        if hasattr(mod, name):
            return getattr(mod, name)
    for m in _MODULES:
        try:
            mod = importlib.import_module(f"landscape.{m}")
        except ImportError:
            continue
        if isinstance(getattr(mod, name, None), type):
            return getattr(mod, name)
    raise TypeError(f"no landscape module defines the result class {name!r}")


def load_result(path: str | Path) -> Any:
    """Load any saved :class:`landscape.io.Result`, picking the class from its
    sidecar's ``__class__``."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    side = Path(str(path) + ".json")
    if not side.exists():
        raise FileNotFoundError(
            f"{side} not found: is {path} a saved landscape result?"
        )
    name = json.loads(side.read_text()).get("__class__")
    if not name:
        raise TypeError(f"{side} records no __class__: not a landscape result")
    return _result_class(name).load(path)


def _plot_function(name: str):
    import landscape.plot as P

    cands = [DISPATCH[name][1]] if name in DISPATCH else []
    cands += [f"plot_{_snake(name)}", f"plot_{_snake(name).removesuffix('_result')}"]
    for c in cands:
        if hasattr(P, c):
            return getattr(P, c)
    raise TypeError(
        f"no plot function for a {name} (looked for {', '.join(cands)} in "
        "landscape.plot)"
    )


def _figure(obj: Any):
    if hasattr(obj, "savefig"):
        return obj
    if isinstance(obj, np.ndarray):
        obj = obj.flat[0]
    if isinstance(obj, (list, tuple)):
        obj = obj[0]
    return obj.figure


# ----------------------------------------------------------------------- drawing
def _draw_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m landscape.plot",
        description="Draw saved loss surfaces (and other saved landscape results).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "results",
        nargs="+",
        type=Path,
        help="saved result(s) (.npz with a .json sidecar)",
    )
    p.add_argument(
        "-o", "--out", type=Path, required=True, help="output file: .png, .pdf or .html"
    )
    p.add_argument(
        "--kind",
        choices=["contour", "contourf", "3d", "line"],
        default=None,
        help="surface plot kind (default: contour for PNG/PDF, 3d for HTML; "
        "'contour' with .html gives an interactive contour map; 'line' draws the "
        "y=0 row)",
    )
    p.add_argument(
        "--which",
        choices=["loss", "accuracy"],
        default="loss",
        help="quantity to draw (loss)",
    )
    p.add_argument(
        "--levels", type=int, default=30, help="number of contour levels (30)"
    )
    p.add_argument(
        "--log", action="store_true", help="log-scaled levels / colours / y axis"
    )
    p.add_argument("--titles", nargs="+", default=None, help="one title per result")
    p.add_argument(
        "--no-share-scale",
        action="store_true",
        help="give each side-by-side surface its own colour scale",
    )
    p.add_argument(
        "--ncols", type=int, default=None, help="panels per row for several surfaces"
    )
    return p


def _draw(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import landscape.plot as P

    results = [load_result(p) for p in args.results]
    names = {type(r).__name__ for r in results}
    suffix = args.out.suffix.lower()
    if suffix not in (".png", ".pdf", ".html", ".svg"):
        raise SystemExit(f"-o must end in .png, .pdf, .svg or .html, got {args.out}")
    if names == {"Surface"}:
        lines = [r.is_line for r in results]
        if suffix == ".html":
            if len(results) != 1 or lines[0]:
                raise SystemExit("an HTML output takes one 2D surface")
            fn = (
                P.contour_interactive
                if args.kind in ("contour", "contourf")
                else P.surface_3d
            )
            title = args.titles[0] if args.titles else None
            P.write_html(
                fn(results[0], which=args.which, log=args.log, title=title), args.out
            )
            print(f"wrote {args.out}")
            return 0
        if args.kind == "3d":
            raise SystemExit("--kind 3d needs an .html output")
        if args.kind == "line" or all(lines):
            ax = P.plot_line(
                results, which=args.which, log=args.log, labels=args.titles
            )
        elif len(results) == 1:
            ax = P.plot_surface(
                results[0],
                kind=args.kind or "contour",
                which=args.which,
                levels=args.levels,
                log=args.log,
                title=args.titles[0] if args.titles else None,
            )
        else:
            if any(lines):
                raise SystemExit("cannot mix 1D lines and 2D surfaces in one figure")
            ax = P.plot_surfaces(
                results,
                titles=args.titles,
                kind=args.kind or "contourf",
                which=args.which,
                levels=args.levels,
                log=args.log,
                share_scale=not args.no_share_scale,
                ncols=args.ncols,
            )
    else:
        if len(results) != 1:
            raise SystemExit(
                "several results can only be drawn together if all are surfaces"
            )
        (name,) = names
        out = _plot_function(name)(results[0])
        if suffix == ".html":
            if not hasattr(out, "to_html"):
                raise SystemExit(f"the plot of a {name} is static: use .png or .pdf")
            P.write_html(out, args.out)
            print(f"wrote {args.out}")
            return 0
        ax = out
    for p in P.savefig(_figure(ax), args.out):
        print(f"wrote {p}")
    return 0


# --------------------------------------------------------------------- computing
def _compute_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m landscape.plot compute",
        description=(
            "Compute a loss surface (or line) around a checkpoint and save it; "
            "optionally draw it. Directions are filter-normalised random directions "
            "(Li et al. 2018) unless --to or --directions says otherwise."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "checkpoint",
        type=Path,
        help="a run folder or checkpoint of landscape.train (config.json names the "
        "model), or a file {'model': state_dict, 'arch': name, 'arch_kwargs': {...}}",
    )
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        required=True,
        help="where to save the Surface (.npz + .json)",
    )
    p.add_argument(
        "--plot", type=Path, default=None, help="also draw it to this .png/.pdf/.html"
    )
    g = p.add_argument_group("model")
    g.add_argument(
        "--arch",
        default=None,
        help="architecture for landscape.models.build (overrides the checkpoint's)",
    )
    g.add_argument(
        "--arch-kwargs", default=None, help="JSON dict of build() keyword arguments"
    )
    g.add_argument("--device", default="cpu", help="torch device")
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset", default="mnist", help="landscape.data.load_dataset name"
    )
    g.add_argument(
        "--data",
        type=Path,
        default=None,
        help="a torch file holding (x, y) or {'x':..., 'y':...} instead of --dataset",
    )
    g.add_argument(
        "--data-root", default=None, help="dataset folder (default: $LANDSCAPE_DATA)"
    )
    g.add_argument("--split", default="test", help="dataset split")
    g.add_argument(
        "--num-samples", type=int, default=1000, help="number of examples (stratified)"
    )
    g.add_argument(
        "--batch-size",
        default="auto",
        help="evaluation batch size, or 'auto' (measured)",
    )
    g = p.add_argument_group("directions and grid")
    g.add_argument(
        "--grid",
        nargs=3,
        type=float,
        default=[-1.0, 1.0, 21],
        metavar=("MIN", "MAX", "NUM"),
        help="x grid",
    )
    g.add_argument(
        "--ygrid",
        nargs=3,
        type=float,
        default=None,
        metavar=("MIN", "MAX", "NUM"),
        help="y grid (default: same as --grid)",
    )
    g.add_argument(
        "--line", action="store_true", help="a 1D line along the first direction"
    )
    g.add_argument(
        "--norm",
        default="filter",
        choices=["filter", "layer", "none"],
        help="direction normalisation",
    )
    g.add_argument(
        "--ignore",
        default="biasbn",
        choices=["biasbn", "none"],
        help="zero biases and BatchNorm parameters",
    )
    g.add_argument(
        "--orthogonal",
        action="store_true",
        help="Gram-Schmidt the second random direction",
    )
    g.add_argument(
        "--directions",
        type=Path,
        default=None,
        help="torch file with a list of direction dicts (instead of random ones)",
    )
    g.add_argument(
        "--save-directions",
        type=Path,
        default=None,
        help="save the directions used to this torch file",
    )
    g.add_argument(
        "--to",
        type=Path,
        nargs="+",
        default=None,
        metavar="CKPT",
        help="one checkpoint: the line towards it; two: the plane through all three",
    )
    g = p.add_argument_group("adversarial")
    g.add_argument(
        "--adversarial",
        default="clean",
        choices=["clean", "fixed", "reattack"],
        help="clean loss, examples attacked once at the centre, or re-attacked at every point",
    )
    g.add_argument(
        "--eps", type=float, default=None, help="attack budget (needed unless clean)"
    )
    g.add_argument(
        "--attack-norm", default="linf", choices=["linf", "l2"], help="attack norm"
    )
    g.add_argument("--steps", type=int, default=10, help="PGD steps")
    g.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="PGD step size (default 2.5 eps / steps)",
    )
    g = p.add_argument_group("run")
    g.add_argument(
        "--strategy",
        default="auto",
        choices=["auto", "loop", "vmap"],
        help="evaluation strategy",
    )
    g.add_argument(
        "--partial",
        type=Path,
        default=None,
        help="partial-results file for resuming an interrupted run",
    )
    g.add_argument(
        "--seed", type=int, default=0, help="seed for directions and attacks"
    )
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _load_checkpoint(path: Path, arch: str | None, arch_kwargs: dict | None, device):

    from landscape import io as lio

    run_dir = path if path.is_dir() else path.parent
    if arch is None and (run_dir / "config.json").exists():
        from landscape import train

        return train.load_model(path, device=device)
    ckpt = lio.load_torch(path)
    net = lio.module_in(ckpt)
    if net is not None:
        return net.to(device).eval()
    if not isinstance(ckpt, dict):
        raise SystemExit(f"{path} holds a {type(ckpt).__name__}, not a checkpoint dict")
    state = ckpt.get("model", ckpt)
    name = arch or ckpt.get("arch")
    if not name:
        raise SystemExit(
            f"{path} names no architecture: pass --arch (and --arch-kwargs) or save "
            "{'model': state_dict, 'arch': name, 'arch_kwargs': {...}}"
        )
    from landscape import models

    kwargs = arch_kwargs if arch_kwargs is not None else ckpt.get("arch_kwargs") or {}
    model = models.build(name, **kwargs)
    model.load_state_dict(state)
    return model.to(device).eval()


def _load_data(args):
    import torch

    from landscape import io as lio

    if args.data is not None:
        obj = lio.load_torch(args.data)
        x, y = (obj["x"], obj["y"]) if isinstance(obj, dict) else obj
    else:
        from landscape import data

        x, y = data.load_dataset(
            args.dataset, args.data_root, split=args.split, num_samples=args.num_samples
        )
    if args.num_samples is not None:
        x, y = x[: args.num_samples], y[: args.num_samples]
    return [(torch.as_tensor(x), torch.as_tensor(y))]


def _compute(args: argparse.Namespace) -> int:
    import torch

    from landscape import directions as D
    from landscape import io as lio
    from landscape import surface as S

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    kw = json.loads(args.arch_kwargs) if args.arch_kwargs else None
    model = _load_checkpoint(args.checkpoint, args.arch, kw, device)
    data = _load_data(args)
    gen = torch.Generator().manual_seed(args.seed)
    meta: dict[str, Any] = {"checkpoint": str(args.checkpoint)}
    if args.to:
        others = [_load_checkpoint(c, args.arch, kw, device) for c in args.to]
        if len(others) == 1:
            dirs = [D.interpolation_direction(model, others[0])]
            args.line = True
            meta["directions"] = f"interpolation to {args.to[0]}"
        elif len(others) == 2:
            plane = D.plane_directions(model, *others)
            dirs = plane.directions
            meta.update(directions="plane", points=plane.coords.tolist())
        else:
            raise SystemExit("--to takes one checkpoint (line) or two (plane)")
    elif args.directions is not None:
        dirs = D.eigen_directions(lio.load_torch(args.directions), like=model)
        meta["directions"] = str(args.directions)
    else:
        dirs = D.random_directions(
            model,
            num=1 if args.line else 2,
            norm=None if args.norm == "none" else args.norm,
            ignore=None if args.ignore == "none" else args.ignore,
            orthogonal=args.orthogonal,
            generator=gen,
        )
        meta.update(directions="random", norm=args.norm, ignore=args.ignore)
    if args.save_directions:
        lio.atomic_save_torch(
            [{k: v.cpu() for k, v in d.items()} for d in dirs], args.save_directions
        )
    lo, hi, num = args.grid
    xs = np.linspace(lo, hi, int(num))
    ys = np.linspace(*args.ygrid[:2], int(args.ygrid[2])) if args.ygrid else xs
    bs = args.batch_size if args.batch_size in ("auto", None) else int(args.batch_size)
    common = dict(
        adversarial=None if args.adversarial == "clean" else args.adversarial,
        eps=args.eps,
        norm=args.attack_norm,
        steps=args.steps,
        alpha=args.alpha,
        strategy=args.strategy,
        batch_size=bs,
        partial_path=args.partial,
        generator=gen,
        progressbar=not args.no_progress,
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    if args.line:
        surf = S.loss_line(model, loss_fn, data, dirs[0], xs=xs, **common)
    else:
        if len(dirs) < 2:
            raise SystemExit("a 2D surface needs two directions (or pass --line)")
        surf = S.loss_surface(model, loss_fn, data, dirs[:2], xs=xs, ys=ys, **common)
    import dataclasses

    surf = dataclasses.replace(surf, meta={**surf.meta, **meta})
    path = surf.save(args.out)
    print(f"saved {path} (loss at the centre {surf.center_loss:.4g})")
    if args.plot is not None:
        return _draw(_draw_parser().parse_args([str(path), "-o", str(args.plot)]))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m landscape.plot`` (``compute`` as first argument
    computes a surface; anything else draws saved results)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "compute":
        return _compute(_compute_parser().parse_args(argv[1:]))
    return _draw(_draw_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m landscape.plot``: draw saved loss surfaces and other saved landscape
results (it computes nothing).

Examples::

    python -m landscape.plot runs/surface/a/surface.npz -o runs/figs --format pdf
    python -m landscape.plot a.npz b.npz c.npz -o runs/figs --name side_by_side --log
    python -m landscape.plot surface.npz -o runs/figs --format html  # interactive 3D
    python -m landscape.plot runs/scattering/a/scattering.npz         # any saved result

The figure is written as <name>.<format> into the folder -o (default runs/plot;
name: the first result's file name). Surfaces are computed from a checkpoint by
``python -m landscape.surface compute``. A saved result is dispatched on the class
recorded inside it (``__class__``) to the matching plot function of
:mod:`landscape.plot`.
"""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path
from typing import Any

from landscape import _cli
from landscape import io as lio

__all__ = ["main", "load_result", "DISPATCH"]

_PROG = "python -m landscape.plot"

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
    "Density": ("landscape.hessian", "plot_density"),
}
_MODULES = (
    "surface",
    "hessian",
    "scattering",
    "linear",
    "evaluate",
    "train",
    "schedules",
    "data",
)

_EPILOG = """\
Compute a surface from a checkpoint with `python -m landscape.surface compute --help`.

Formats: png / pdf / svg (matplotlib) or html (plotly, self-contained: plotly.js is
embedded, the file works offline). Several surfaces are drawn side by side with a
shared colour scale (2D) or overlaid (1D lines)."""


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _result_class(name: str):
    if name in DISPATCH:
        mod = importlib.import_module(DISPATCH[name][0])
        if hasattr(mod, name):
            return getattr(mod, name)
    for m in _MODULES:
        mod = importlib.import_module(f"landscape.{m}")
        if isinstance(getattr(mod, name, None), type):
            return getattr(mod, name)
    raise TypeError(f"no landscape module defines the result class {name!r}")


def load_result(path: str | Path) -> Any:
    """Load any saved :class:`landscape.io.Result`, picking the class from the
    ``__class__`` recorded inside it."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    _, rest = lio.read_result(path)
    name = rest.get("__class__")
    if not name:
        raise TypeError(f"{path} records no __class__: not a landscape result")
    cls = _result_class(name)
    if not (isinstance(cls, type) and issubclass(cls, lio.Result)):
        raise TypeError(
            f"{path} records the class {name}, which is not a saved landscape result "
            "(it has no load) - pass a file written by a Result's save()"
        )
    return cls.load(path)


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


# ----------------------------------------------------------------------- drawing
def _draw_parser() -> argparse.ArgumentParser:
    p = _cli.parser(
        _PROG,
        __doc__,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "results",
        nargs="+",
        type=Path,
        help="saved result(s) (.npz with a .json sidecar)",
    )
    _cli.add_choice(
        p,
        "--format",
        ["png", "pdf", "svg", "html"],
        "file format (default png; html with --kind 3d)",
        optional=True,
    )
    p.add_argument(
        "--name",
        default=None,
        help="file name without the suffix (default: the first result's)",
    )
    _cli.add_choice(
        p,
        "--kind",
        ["contour", "contourf", "3d", "line"],
        "surface plot kind (default: contour for png/pdf/svg, 3d for html; "
        "'contour' with html gives an interactive contour map; 'line' draws the "
        "y=0 row)",
        optional=True,
    )
    _cli.add_choice(p, "--which", ["loss", "accuracy"], "quantity to draw (loss)")
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
    _cli.add_common(
        p, out="plot", out_default="runs/plot", progress=False, device=False
    )
    return p


def _draw(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import landscape.plot as P

    fmt = args.format or ("html" if args.kind == "3d" else "png")
    suffix = f".{fmt}"
    out = _cli.out_folder(args, "plot") / f"{args.name or args.results[0].stem}{suffix}"
    results = [load_result(p) for p in args.results]
    names = {type(r).__name__ for r in results}
    if names == {"Surface"}:
        lines = [r.is_line for r in results]
        if suffix == ".html":
            if len(results) != 1 or lines[0]:
                raise _cli.CLIError(
                    "an HTML output takes one 2D surface", "pass one 2D surface"
                )
            fn = (
                P.contour_interactive
                if args.kind in ("contour", "contourf")
                else P.surface_3d
            )
            title = args.titles[0] if args.titles else None
            P.write_html(
                fn(results[0], which=args.which, log=args.log, title=title), out
            )
            print(f"wrote {out}")
            return 0
        if args.kind == "3d":
            raise _cli.CLIError("--kind 3d needs an html output", "use --format html")
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
                raise _cli.CLIError(
                    "cannot mix 1D lines and 2D surfaces in one figure",
                    "draw them separately",
                )
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
            raise _cli.CLIError(
                "several results can only be drawn together if all are surfaces",
                "draw one result per command",
            )
        (name,) = names
        drawn = _plot_function(name)(results[0])
        if suffix == ".html":
            if not hasattr(drawn, "to_html"):
                raise _cli.CLIError(
                    f"the plot of a {name} is static", "use --format png or pdf"
                )
            P.write_html(drawn, out)
            print(f"wrote {out}")
            return 0
        ax = drawn
    for p in P.savefig(ax, out):
        print(f"wrote {p}")
    return 0


main = _cli.entry(_draw_parser, _draw)


if __name__ == "__main__":
    raise SystemExit(main())

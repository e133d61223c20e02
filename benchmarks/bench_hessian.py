"""Benchmark: landscape.hessian vs pyhessian 0.1 on LeNet, 1,000 MNIST images.

Run: ``python benchmarks/bench_hessian.py`` (``--quick`` for a shorter run).

Setting: ``landscape.models.build("lenet", hidden_size=1024)`` (212k parameters: the
fc width of the recorded runs; the default is now the paper's 64 x width), trained briefly
(plain SGD on 1,000 MNIST training images, so the spectrum has outliers), analysed on
the same 1,000 images as ONE batch (pyhessian's fastest path: it caches the gradient
graph for a single batch). One torch thread; timings are wall-clock medians over
repeats, interleaving ours and pyhessian's, on a shared machine, so read the ratios.

Printed:
- the cost of one HVP in units of one gradient (forward + backward of the same loss;
  the physical floor of a double backward is ~2) for each formulation;
- top-1 / top-5 / top-20 eigenvalues: seconds, HVPs and the max relative error vs a
  tight reference (float64 Lanczos, tol 1e-10), and whether the order is swapped;
- trace: Hutchinson / Hutch++ / pyhessian, estimate +- standard error, HVPs, seconds;
- a 100-step SLQ density (ours) and pyhessian's density (fails on this torch).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np
import torch

from landscape import data as ldata
from landscape import hessian, models

warnings.filterwarnings("ignore", message=".*create_graph=True.*")


def _train(model, x, y, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    lf = torch.nn.CrossEntropyLoss()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (100,), generator=g)
        opt.zero_grad()
        lf(model(x[idx]), y[idx]).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    return acc


class _Count:
    """Count pyhessian's HVPs by wrapping its module-level function."""

    def __init__(self):
        import sys

        import pyhessian  # noqa: F401  (the package shadows its submodule's name)

        ph = sys.modules["pyhessian.hessian"]
        self.ph, self.n = ph, 0
        self.orig = ph.hessian_vector_product

    def __enter__(self):
        def counted(*a, **kw):
            self.n += 1
            return self.orig(*a, **kw)

        self.ph.hessian_vector_product = counted
        return self

    def __exit__(self, *exc):
        self.ph.hessian_vector_product = self.orig


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _relerr(got, ref):
    got, ref = np.asarray(got, dtype=float), np.asarray(ref, dtype=float)
    return float(np.max(np.abs(np.sort(got)[::-1] - ref) / np.abs(ref)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats and steps")
    p.add_argument("--num", type=int, default=1000, help="MNIST images (1000)")
    p.add_argument(
        "--repeats", type=int, default=None, help="timing repeats (3; 1 quick)"
    )
    p.add_argument(
        "--reference",
        choices=["float64", "float32"],
        default=None,
        help="dtype of the tight reference Lanczos (float64; float32 with --quick): "
        "float64 errors include float32 rounding of the HVPs, float32 errors are the "
        "algorithms' own",
    )
    args = p.parse_args(argv)
    ref_dtype = {"float64": torch.float64, "float32": torch.float32}[
        args.reference or ("float32" if args.quick else "float64")
    ]
    torch.set_num_threads(1)
    reps = args.repeats or (1 if args.quick else 3)
    os.environ.setdefault("LANDSCAPE_DATA", "/work/shared/data")
    x, y = ldata.load_dataset("mnist", num_samples=args.num, download=False)
    torch.manual_seed(0)
    model = models.build("lenet", hidden_size=1024)
    acc = _train(model, x, y, 100 if args.quick else 300)
    lf = torch.nn.CrossEntropyLoss()
    data = [(x, y)]
    n = sum(q.numel() for q in model.parameters())
    print(
        f"LeNet ({n:,} params), {len(x)} MNIST images, train acc {acc:.3f}, 1 thread\n"
    )

    # -- reference ------------------------------------------------------------------
    ks = (1, 5) if args.quick else (1, 5, 20)
    ref, t_ref = _timed(
        lambda: hessian.top_eigenvalues(
            model,
            lf,
            data,
            num=max(ks),
            tol=1e-10,
            max_iter=400,
            dtype=torch.float64,
            return_vectors=False,
            generator=torch.Generator().manual_seed(123),
        )
    )
    print(
        f"reference: float64 Lanczos top-{max(ks)}, {ref.num_matvecs} HVPs, {t_ref:.1f} s"
    )
    print("  top-5:", np.array2string(ref.eigenvalues[:5], precision=5))

    # -- cost of one HVP in gradient units ----------------------------------------------
    ops = {
        m: hessian.HessianOperator(model, lf, data, mode=m, check_deterministic=False)
        for m in ("graph", "recompute", "jvp")
    }
    ops["graph"].matvec(torch.randn(n))  # build the graph outside the timing
    v1, v8 = torch.randn(1, n), torch.randn(8, n)
    times: dict[str, list[float]] = {}

    def grad_once():
        model.zero_grad(set_to_none=True)
        lf(model(x), y).backward()

    for _ in range(max(reps, 3)):
        for name, fn, r in (
            [("gradient", grad_once, 1)]
            + [(f"{m} x1", lambda o=o: o.matmat(v1), 1) for m, o in ops.items()]
            + [
                (f"{m} x8 (per vector)", lambda o=o: o.matmat(v8), 8)
                for m, o in ops.items()
            ]
        ):
            times.setdefault(name, []).append(_timed(fn)[1] / r)
    model.zero_grad(set_to_none=True)
    g = statistics.median(times["gradient"])
    print(
        "\nHVP cost in units of one gradient (floor ~2 for a single double backward):"
    )
    for name, ts in times.items():
        print(
            f"  {name:<24} {statistics.median(ts):7.3f} s   {statistics.median(ts) / g:5.2f}"
        )

    # -- top-k eigenvalues --------------------------------------------------------------
    print("\ntop-k eigenvalues (error: max relative vs reference, after sorting):")
    print(
        f"  {'k':>3} {'method':<22} {'seconds':>8} {'HVPs':>6} {'max rel err':>12} swapped"
    )
    rows = {}
    for k in ks:
        r_ours, r_py = [], []
        for rep in range(reps):

            def top(k=k, rep=rep, **backend):
                g = torch.Generator().manual_seed(rep)
                return hessian.top_eigenvalues(
                    model, lf, data, num=k, return_vectors=False, generator=g, **backend
                )

            ours, t1 = _timed(top)
            r_ours.append((t1, ours))
            with _Count() as c:
                py, t2 = _timed(lambda top=top: top(backend="pyhessian"))
            r_py.append((t2, py, c.n))
        refk = ref.eigenvalues[:k]
        t_o = statistics.median(t for t, _ in r_ours)
        e_o = max(_relerr(o.eigenvalues, refk) for _, o in r_ours)
        h_o = r_ours[0][1].num_matvecs
        t_p = statistics.median(t for t, _, _ in r_py)
        e_p = max(_relerr(o.eigenvalues, refk) for _, o, _ in r_py)
        h_p = r_py[0][2]
        sw = any(np.any(np.diff(o.eigenvalues) > 0) for _, o, _ in r_py)
        print(f"  {k:>3} {'landscape lanczos':<22} {t_o:8.2f} {h_o:6d} {e_o:12.2e} no")
        print(
            f"  {k:>3} {'pyhessian power':<22} {t_p:8.2f} {h_p:6d} {e_p:12.2e} {'YES' if sw else 'no'}"
        )
        print(
            f"      -> speed-up {t_p / t_o:.1f}x, error ratio {e_p / max(e_o, 1e-16):.0f}x"
        )
        rows[k] = (t_o, e_o, t_p, e_p)

    if ref_dtype == torch.float64:
        e64, t64 = _timed(
            lambda: hessian.top_eigenvalues(
                model,
                lf,
                data,
                num=5,
                dtype=torch.float64,
                tol=1e-8,
                return_vectors=False,
                generator=torch.Generator().manual_seed(0),
            )
        )
        print(
            f"    5 {'landscape lanczos f64':<22} {t64:8.2f} {e64.num_matvecs:6d} "
            f"{_relerr(e64.eigenvalues, ref.eigenvalues[:5]):12.2e} no  (dtype=float64)"
        )

    # -- trace --------------------------------------------------------------------------
    print("\ntrace (100-HVP budget; +- is one standard error):")
    for name, kw in [
        ("landscape hutchinson", {}),
        ("landscape hutch++", {"method": "hutch++"}),
        ("pyhessian hutchinson", {"backend": "pyhessian", "tol": 1e-3}),
    ]:
        with _Count() as c:
            t, dt = _timed(
                lambda kw=kw: hessian.trace(
                    model,
                    lf,
                    data,
                    num_matvecs=100,
                    generator=torch.Generator().manual_seed(0),
                    **kw,
                )
            )
        h = c.n if "backend" in kw else t.num_matvecs
        print(
            f"  {name:<22} {t.estimate:10.3f} +- {t.std_error:8.3f}  {h:4d} HVPs  {dt:6.2f} s"
        )

    # -- density ------------------------------------------------------------------------
    print("\nspectral density, 100 Lanczos steps, 1 probe:")
    d, dt = _timed(
        lambda: hessian.lanczos_density(
            model, lf, data, max_iter=100, generator=torch.Generator().manual_seed(0)
        )
    )
    print(
        f"  landscape SLQ: {dt:.2f} s, {d.num_matvecs} HVPs, range [{d.grid[0]:.3g}, "
        f"{d.grid[-1]:.3g}], integral {np.trapezoid(d.density, d.grid):.6f}, top Ritz "
        f"{np.nanmax(d.nodes):.5f} (reference {ref.eigenvalues[0]:.5f})"
    )
    from pyhessian import hessian as PyHessian

    h = PyHessian(model, lf, data=(x, y), cuda=False)
    try:
        h.density(iter=100, n_v=1)
        print("  pyhessian density: ran")
    except Exception as err:  # the documented torch.eig failure
        print(
            f"  pyhessian density: FAILS: {type(err).__name__}: {str(err).splitlines()[0]}"
        )
    for q in model.parameters():
        q.grad = None

    t_o, e_o, t_p, e_p = rows[5]
    print(
        f"\nsummary top-5: {t_p / t_o:.1f}x faster than pyhessian at "
        f"{e_p / max(e_o, 1e-16):.0f}x smaller error (goal: >= 3x faster, >= 100x smaller)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

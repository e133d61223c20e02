"""Benchmark: landscape.hessian side by side with curvlinops, on a BatchNorm+residual CNN.

Run: ``python benchmarks/bench_curvlinops.py`` (``--quick``: fewer repeats). curvlinops
is a benchmark-only dependency (``make bench`` installs it with ``--no-deps``); without
it the curvlinops columns read "not installed" and only our rows are measured.

Setting: a BatchNorm + residual CNN (822 parameters, ``bench_hvp_batching.bn_resnet(4)``)
trained 150 Adam steps on 512 Fashion-MNIST training images (MNIST if Fashion-MNIST is
missing), analysed in eval mode in float64 on 128 of them (two batches of 64), one
torch thread. Ground truth: the dense Hessian (822 HVPs) and its eigenvalues.

Rows (CPU seconds of this process, medians over interleaved repeats; ratio = theirs /
ours, > 1 means we are faster):

- top-10 eigenvalues: ``hessian.top_eigenvalues`` (Lanczos, tol 1e-6) vs curvlinops'
  ``HessianLinearOperator`` + ``scipy.sparse.linalg.eigsh`` (ARPACK, tol 1e-6);
  HVPs and the max relative error against the dense eigenvalues;
- trace at 96 products: Hutchinson, Hutch++, XTrace, ours and curvlinops'. Seconds on
  the model's operator; the *error* (mean |relative error| over 200 seeds) on the
  dense Hessian as a matrix, where both packages' estimators run at no HVP cost;
- SLQ density (100 Lanczos steps, 1 probe): seconds, the mass below -1% of
  lambda_max against the exact fraction of eigenvalues, and the bandwidth.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import _bench
import numpy as np
import scipy.sparse.linalg as sla
import torch
from bench_hvp_batching import bn_resnet

from landscape import data as ldata
from landscape import hessian

warnings.filterwarnings("ignore", message=".*create_graph=True.*")

try:  # benchmark-only dependency; its rows are skipped without it
    import curvlinops
except ImportError:  # pragma: no cover - depends on the environment
    curvlinops = None

TRACE_MATVECS = 96  # divisible by 2 (XTrace) and 3 (curvlinops' Hutch++)


def _setting(seed: int = 0):
    torch.manual_seed(seed)
    name = "fashion-mnist"
    try:
        x, y = ldata.load_dataset(
            name,
            split="train",
            num_samples=512,
            generator=torch.Generator().manual_seed(seed),
        )
    except (FileNotFoundError, OSError):
        name = "mnist"
        x, y = ldata.load_dataset(
            name,
            split="train",
            num_samples=512,
            generator=torch.Generator().manual_seed(seed),
        )
    model = bn_resnet(4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    lf = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    for _ in range(150):
        i = torch.randint(0, len(x), (64,), generator=g)
        opt.zero_grad()
        lf(model(x[i]), y[i]).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model = model.double().eval()
    x = x[:128].double()
    data = [(x[:64], y[:64]), (x[64:128], y[64:128])]
    return name, model, lf, data


def _cpu(fn):
    t = time.process_time()
    out = fn()
    return time.process_time() - t, out


class _Counted(sla.LinearOperator):
    """A scipy operator that counts its products (for ARPACK's HVPs)."""

    def __init__(self, A):
        super().__init__(A.dtype, A.shape)
        self.A, self.count = A, 0

    def _matvec(self, v):
        self.count += 1
        return self.A.matvec(v)

    def _matmat(self, X):
        self.count += X.shape[1]
        return self.A.matmat(X)


def _theirs_op(model, lf, data):
    params = [p for p in model.parameters() if p.requires_grad]
    return curvlinops.HessianLinearOperator(model, lf, params, data)


def _topk(model, lf, data, exact, reps):
    top = np.sort(exact)[::-1][:10]
    rows = {"ours": [], "theirs": []}
    info = {}
    for r in range(reps):
        g = torch.Generator().manual_seed(r)
        t, eig = _cpu(
            lambda g=g: hessian.top_eigenvalues(
                model, lf, data, num=10, tol=1e-6, generator=g
            )
        )
        rows["ours"].append(t)
        info["ours"] = (eig.num_matvecs, np.abs(eig.eigenvalues / top - 1).max())
        if curvlinops is None:
            continue

        def theirs():
            A = _Counted(_theirs_op(model, lf, data).to_scipy())
            vals = sla.eigsh(A, k=10, which="LA", tol=1e-6, return_eigenvectors=False)
            return A.count, np.sort(vals)[::-1]

        t, (count, vals) = _cpu(theirs)
        rows["theirs"].append(t)
        info["theirs"] = (count, np.abs(vals / top - 1).max())
    return rows, info


def _trace_errors(H: torch.Tensor, exact: float, seeds: int) -> dict:
    out = {}
    for method, f in (
        ("hutchinson", hessian.hutchinson),
        ("hutch++", hessian.hutchpp),
        ("xtrace", hessian.xtrace),
    ):
        errs = [
            abs(
                f(H, TRACE_MATVECS, generator=torch.Generator().manual_seed(s)).estimate
                - exact
            )
            / abs(exact)
            for s in range(seeds)
        ]
        out[("ours", method)] = float(np.mean(errs))
    if curvlinops is not None:
        theirs = {
            "hutchinson": curvlinops.hutchinson_trace,
            "hutch++": curvlinops.hutchpp_trace,
            "xtrace": curvlinops.xtrace,
        }
        for method, f in theirs.items():
            errs = []
            for s in range(seeds):
                torch.manual_seed(s)
                errs.append(abs(float(f(H, TRACE_MATVECS)) - exact) / abs(exact))
            out[("theirs", method)] = float(np.mean(errs))
    return out


def _trace_times(model, lf, data, reps) -> dict:
    out: dict = {}
    for r in range(reps):
        for method in ("hutchinson", "hutch++", "xtrace"):
            g = torch.Generator().manual_seed(r)
            t, _ = _cpu(
                lambda g=g, m=method: hessian.trace(
                    model, lf, data, num_matvecs=TRACE_MATVECS, method=m, generator=g
                )
            )
            out.setdefault(("ours", method), []).append(t)
            if curvlinops is None:
                continue
            f = {
                "hutchinson": curvlinops.hutchinson_trace,
                "hutch++": curvlinops.hutchpp_trace,
                "xtrace": curvlinops.xtrace,
            }[method]
            torch.manual_seed(r)
            t, _ = _cpu(lambda f=f: f(_theirs_op(model, lf, data), TRACE_MATVECS))
            out.setdefault(("theirs", method), []).append(t)
    return out


def _slq(model, lf, data, exact, reps) -> dict:
    thr = -0.01 * exact.max()
    out: dict = {"exact": float((exact < thr).mean())}
    for r in range(reps):
        g = torch.Generator().manual_seed(r)
        t, d = _cpu(
            lambda g=g: hessian.lanczos_density(
                model, lf, data, max_iter=100, num_runs=1, generator=g
            )
        )
        out.setdefault("ours_t", []).append(t)
        out["ours"] = (d.mass_below(thr), d.sigma, d.quadrature.mass_below(thr))
        lo, hi = d.quadrature.range
        out["old"] = d.rebroaden(0.01 * (hi - lo)).mass_below(thr)
        if curvlinops is None:
            continue
        torch.manual_seed(r)
        t, (grid, dens) = _cpu(
            lambda: curvlinops.lanczos_approximate_spectrum(
                _theirs_op(model, lf, data), 100, num_repeats=1
            )
        )
        out.setdefault("theirs_t", []).append(t)
        grid, dens = grid.numpy(), dens.numpy()
        below = grid <= thr
        out["theirs"] = float(np.trapezoid(dens[below], grid[below]))
    return out


def _ratio(ours: list[float], theirs: list[float] | None) -> str:
    if not theirs:
        return "not installed"
    return f"{statistics.median(theirs):7.2f} s  ratio {statistics.median(theirs) / statistics.median(ours):5.2f}"


def main(argv: list[str] | None = None) -> int:
    """Print the side-by-side table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    reps = 1 if args.quick else 3
    seeds = 50 if args.quick else 200
    print(
        f"curvlinops: {getattr(curvlinops, '__version__', 'installed') if curvlinops else 'not installed'}; torch {torch.__version__}"
    )
    name, model, lf, data = _setting()
    t_dense, H = _cpu(lambda: hessian.dense_hessian(model, lf, data))
    exact = torch.linalg.eigvalsh(H).numpy()
    print(
        f"{name}, bn_resnet(4): {H.shape[0]} params, 128 images, float64; dense "
        f"Hessian {t_dense:.1f} s; lambda_max {exact.max():.5g}, trace {exact.sum():.5g}"
    )

    rows, info = _topk(model, lf, data, exact, reps)
    o_hvps, o_err = info["ours"]
    print("\ntop-10 eigenvalues (tol 1e-6)")
    print(
        f"  ours       {statistics.median(rows['ours']):7.2f} s  {o_hvps:4d} HVPs  max rel err {o_err:.1e}"
    )
    if curvlinops is not None:
        c_hvps, c_err = info["theirs"]
        print(
            f"  curvlinops {_ratio(rows['ours'], rows['theirs'])}  {c_hvps:4d} HVPs  max rel err {c_err:.1e}  (+ scipy eigsh)"
        )
    else:
        print("  curvlinops not installed")

    errs = _trace_errors(H, float(exact.sum()), seeds)
    times = _trace_times(model, lf, data, reps)
    print(
        f"\ntrace, {TRACE_MATVECS} products (error: mean |rel. error| over {seeds} seeds on the dense H)"
    )
    for method in ("hutchinson", "hutch++", "xtrace"):
        line = f"  {method:<11} ours {statistics.median(times[('ours', method)]):6.2f} s  err {errs[('ours', method)]:.4f}"
        if curvlinops is not None:
            line += (
                f" | curvlinops {_ratio(times[('ours', method)], times[('theirs', method)])}"
                f"  err {errs[('theirs', method)]:.4f}"
            )
        print(line)
    if ("ours", "xtrace") in errs:
        print(
            f"  error ratio hutch++ / xtrace (ours): {errs[('ours', 'hutch++')] / errs[('ours', 'xtrace')]:.2f}"
        )

    s = _slq(model, lf, data, exact, reps)
    mass, sigma, qmass = s["ours"]
    print("\nSLQ density, 100 steps, 1 probe: mass below -1% lambda_max")
    print(f"  exact (dense)  {s['exact']:.4f}")
    print(f"  ours, former default bandwidth (1% of the range)  {s['old']:.4f}")
    print(
        f"  ours           {mass:.4f}  (bandwidth {sigma:.3g}; unbroadened quadrature {qmass:.4f})  {statistics.median(s['ours_t']):6.2f} s"
    )
    if curvlinops is not None:
        print(
            f"  curvlinops     {s['theirs']:.4f}  {_ratio(s['ours_t'], s['theirs_t'])}"
        )
    return 0


if __name__ == "__main__":
    _bench.run(main)

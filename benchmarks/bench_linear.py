"""Benchmark: closed-form robust loss of a linear model vs PGD-k, and gamma by LP vs d.

1. Robust logistic loss + gradient w.r.t. ``(w, b)`` of a binary linear model
   (d = 784, MNIST-sized, float32, one thread): the closed form
   (:func:`landscape.linear.robust_loss`, one matrix-vector product and one dual
   norm) against PGD-k (:class:`landscape.attacks.PGD`, k steps) followed by the
   loss and gradient at the adversarial points. Both give the same number on a linear
   model (checked here); the anchor is the closed form and the physical limit of the
   ratio is ``k + 1`` (PGD-k does k + 1 forward-backward passes through the same
   matrix product the closed form does once; the random start adds a little). A PGD
   step is memory-bound, though: about 8 elementwise passes over an x-sized tensor
   against the closed form's 2 reads of x, so the memory-pass limit is ~ 1 + 4k.
   Timings are interleaved, median of repeats (the CPU is shared).
2. The robust max-margin gamma for L-inf attacks (an L1-constrained linear program,
   HiGHS) and for L2 attacks (least-distance NNLS) against the dimension d at fixed n.

Run: ``python benchmarks/bench_linear.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import statistics

import _bench
import numpy as np
import torch
import torch.nn.functional as F

from landscape import linear
from landscape.attacks import PGD


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    p.add_argument("--batch", type=int, default=1000, help="examples per batch (1000)")
    p.add_argument("--repeats", type=int, default=None, help="timing repeats")
    return p


def bench_loss(batch: int, steps_list: list[int], repeats: int) -> None:
    d, eps = 784, 0.1
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, d, generator=g) * 0.8 + 0.1  # room for the eps-ball in [0, 1]
    y = torch.where(torch.rand(batch, generator=g) < 0.5, 1.0, -1.0)
    lin = torch.nn.Linear(d, 1)

    def closed():
        w, b = lin.weight[0], lin.bias[0]
        loss = linear.robust_loss(w, b, x, y, eps=eps, norm="linf")
        return torch.autograd.grad(loss, (lin.weight, lin.bias)), loss

    def loss_fn(out, t):
        return F.softplus(-t * out[:, 0]).sum()

    def pgd(k):
        def run():
            xa = PGD(eps=eps, steps=k, loss=loss_fn)(lin, x, y, g)
            loss = F.softplus(-y * lin(xa)[:, 0]).mean()
            return torch.autograd.grad(loss, (lin.weight, lin.bias)), loss

        return run

    _, exact = closed()
    for k in steps_list:
        _, approx = pgd(k)()
        print(
            f"  check PGD-{k}: loss {float(approx.detach()):.6f} vs closed form {float(exact.detach()):.6f}"
        )
    fns = {"closed": closed, **{f"pgd{k}": pgd(k) for k in steps_list}}
    times: dict[str, list[float]] = {n: [] for n in fns}
    for _ in range(repeats):  # interleaved
        for n, f in fns.items():
            times[n] += _bench.times(f, 1)
    base = statistics.median(times["closed"])
    print(f"robust loss + gradient, d = {d}, batch = {batch}, float32, 1 thread")
    print(f"  closed form: {base / batch * 1e6:8.3f} us/example (anchor)")
    for k in steps_list:
        t = statistics.median(times[f"pgd{k}"])
        print(
            f"  PGD-{k:<3d}    : {t / batch * 1e6:8.3f} us/example, ratio {t / base:7.1f}x "
            f"(matmul-count limit {k + 1}x; memory-pass limit ~{1 + 4 * k}x)"
        )
    print(
        "  (a PGD step on a linear model is memory-bound: besides the two matrix\n"
        "   products it makes ~8 elementwise passes over an x-sized tensor (sign, step,\n"
        "   clamp to the ball, clamp to [0, 1], ...), where the closed form reads x twice)"
    )


def bench_gamma(dims: list[int], n: int, repeats: int) -> None:
    print(
        f"robust max-margin gamma vs d (Gaussian mixture, n = {n}, median of {repeats})"
    )
    rng = np.random.default_rng(0)
    for d in dims:
        y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
        mu = np.zeros(d)
        mu[0] = 2.0
        x = y[:, None] * mu + rng.normal(size=(n, d))
        row = [f"  d = {d:5d}:"]
        for norm in ("linf", "l2"):
            ts = _bench.times(
                lambda norm=norm, x=x, y=y: linear.robust_margin(x, y, norm=norm),
                repeats,
            )
            gam = linear.robust_margin(x, y, norm=norm).gamma
            row.append(
                f"{norm} {statistics.median(ts) * 1e3:8.1f} ms (gamma {gam:.4f})"
            )
        print("  ".join(row))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(1)
    repeats = args.repeats or (3 if args.quick else 9)
    steps = [1, 10] if args.quick else [1, 10, 20]
    bench_loss(args.batch, steps, repeats)
    dims = [2, 50, 200] if args.quick else [2, 50, 200, 784]
    bench_gamma(dims, 500, 1 if args.quick else 3)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark of landscape.scattering.

1. Cost of one scattering measurement (one batch, one eps, D directions x S scales, so
   K = 1 + D*S weight points) in units of the anchor "one PGD attack + one parameter
   gradient" at ``w`` (the training PGD ``landscape.attacks.PGD`` +
   ``torch.autograd.grad``).
   Physical limit: every point needs its own attack and gradient, so the compute floor
   is K anchors (ratio per point = 1); batching (``torch.func.vmap``) can only win by
   removing per-call overhead, the loop over points (``strategy="loop"``) shows the
   overhead-bound reference.
2. Per-example gradient norms: ``torch.func.vmap(grad)`` vs a loop of backward passes
   (speedup ratio; the limit is about the batch size when per-call overhead dominates).

Timings are interleaved (anchor, batched, loop, ...) and the median of repeats is
reported, because the CPUs are shared. Run: ``python benchmarks/bench_scattering.py``
(``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import statistics

import _bench
import torch
import torch.nn.functional as F

from landscape import attacks, models, scattering


def _anchor(model, x, y, eps, steps):
    def run():
        xa = attacks.PGD(eps=eps, steps=steps)(
            model, x, y, torch.Generator().manual_seed(0)
        )
        loss = F.cross_entropy(model(xa), y)
        torch.autograd.grad(loss, [p for p in model.parameters()])

    return run


def bench_measurement(name, model, x, y, *, eps, steps, D, S, reps):
    scales = [10.0 ** -(i + 1) for i in range(S)]
    K = 1 + D * S
    anchor = _anchor(model, x, y, eps, steps)

    def meas(strategy):
        return lambda: scattering.scattering(
            model,
            None,
            [(x, y)],
            attack=attacks.PGD(eps=eps, steps=steps),
            scales=scales,
            num_directions=D,
            strategy=strategy,
            generator=torch.Generator().manual_seed(0),
        )

    for f in (anchor, meas("vmap"), meas("loop")):  # warm-up
        f()
    ta, tb, tl = [], [], []
    for _ in range(reps):
        ta += _bench.times(anchor, 1)
        tb += _bench.times(meas("vmap"), 1)
        tl += _bench.times(meas("loop"), 1)
    a, b, lo = (statistics.median(t) for t in (ta, tb, tl))
    print(f"{name}: batch {len(x)}, PGD-{steps}, D={D} x S={S} -> K={K} points")
    print(f"  anchor (attack + gradient)  {a * 1e3:8.1f} ms")
    print(
        f"  scattering batched (vmap)   {b * 1e3:8.1f} ms = {b / a:6.2f} anchors "
        f"= {b / (K * a):5.2f} per point (limit 1.0)"
    )
    print(
        f"  scattering loop (attack)    {lo * 1e3:8.1f} ms = {lo / a:6.2f} anchors "
        f"= {lo / (K * a):5.2f} per point;  vmap speedup x{lo / b:.2f}"
    )
    return b / (K * a), lo / (K * a)


def bench_per_example(name, model, x, y, reps):
    def v():
        return scattering.per_example_grad_norms(model, None, x, y, method="vmap")

    def lp():
        return scattering.per_example_grad_norms(model, None, x, y, method="loop")

    assert torch.allclose(v(), lp(), rtol=1e-4, atol=1e-6)
    tv, tl = [], []
    for _ in range(reps):
        tv += _bench.times(v, 1)
        tl += _bench.times(lp, 1)
    a, b = statistics.median(tv), statistics.median(tl)
    print(
        f"{name}: per-example grad norms, batch {len(x)}: vmap {a * 1e3:.1f} ms, "
        f"loop {b * 1e3:.1f} ms, speedup x{b / a:.1f} (limit ~ batch size "
        f"{len(x)} when overhead-bound)"
    )
    return b / a


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reps = 3 if args.quick else 7
    n = 32 if args.quick else 128
    x = torch.rand(n, 1, 28, 28)
    y = torch.randint(0, 10, (n,))
    nets = {
        "mlp(100)": models.build("mlp", hidden=(100,)).eval(),
        "lenet": models.build("lenet", hidden_size=256 if args.quick else 1024).eval(),
    }
    for name, m in nets.items():
        nparam = sum(q.numel() for q in m.parameters())
        print(f"== {name} ({nparam} parameters), {args.threads} thread(s)")
        bench_measurement(
            name,
            m,
            x,
            y,
            eps=0.1,
            steps=5 if args.quick else 10,
            D=2 if args.quick else 4,
            S=2 if args.quick else 4,
            reps=reps,
        )
        bench_per_example(name, m, x, y, reps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

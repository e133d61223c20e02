"""Benchmark of issue 26's measurements: the cost of landscape tracking along a run,
and of the sharpness measures in gradient and Hessian-vector-product units.

1. Tracking overhead. The tracking cost is fixed per tracked epoch (a held-out batch
   of ``num`` examples), the training cost grows with the data, so the overhead is
   measured per size: the CPU time of one tracked epoch's measurements
   (``landscape.train._track.track``, median of the repeats) over the CPU time of
   ``every = 5`` training epochs (PGD-3, no per-epoch evaluation), for

   - ``fig10``: fig10's default size (LeNet width 8, 1,068,266 parameters, 500
     CIFAR-sized images, batch 64, eps 4/255);
   - ``bench``: this benchmark's earlier size (LeNet width 1, 1,256 images, batch
     128, eps 8/255);

   and the tracking settings ``old`` (256 examples, top eigenvalue by 10 Lanczos
   steps and adaptive worst-case sharpness by 5 steps, each on the clean and the
   adversarial loss), ``fig10`` (64 examples, 10 Lanczos steps and 5 sharpness steps,
   adversarial loss only: ``hessian_on=("adv",)``), ``cheap`` (32 examples, 10
   Lanczos steps, 3 sharpness steps, adversarial only) and ``cheaper`` (``cheap``
   with 5 Lanczos steps). What the cheap settings cost in accuracy: the top
   eigenvalue after 5 and 10 Lanczos steps against 40 steps,
   and the sharpness after 3 and 5 ascent steps against 20, on the same batch.
   Goal <= 10 %.
2. Sharpness cost: one ``WorstCase(max_iter=20)`` and one
   ``AverageCase(num_samples=20)`` on a batch of 256, in units of one gradient
   (forward + backward of the batch) and one HVP (``landscape.hessian.hvp``), median
   of the repeats (CPU time of this process: waiting for a core does not count).

Run: ``python benchmarks/bench_overfit.py`` (``--quick``: fewer repeats; ``--size
fig10``: that size only; ``--no-sharpness-cost``: part 1 only).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from _bench import load, run, times

from landscape import attacks, evaluate, hessian, models, sharpness, train
from landscape.train._track import track


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    proto = torch.rand(10, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    x = (proto[y] + 0.3 * torch.randn(n, 3, 32, 32, generator=g)).clamp(0, 1)
    return x, y


SIZES = {  # width, training images, batch, eps
    "fig10": (8, 500, 64, 4 / 255),
    "bench": (1, 1256, 128, 8 / 255),
}


def _tracking(kind: str, lanczos: int | None = None, steps: int | None = None):
    num, lz, st, on = {
        "old": (256, 10, 5, ("clean", "adv")),
        "fig10": (64, 10, 5, ("adv",)),
        "cheap": (32, 10, 3, ("adv",)),
        "cheaper": (32, 5, 3, ("adv",)),
    }[kind]
    return train.Tracking(
        every=5, num=num, max_iter=lanczos or lz, num_matvecs=0, hessian_on=on,
        sharpness=(sharpness.WorstCase(rho=0.005, norm="linf", adaptive="element",
                                       max_iter=steps or st, label="s"),),
        sharpness_on=on,
    )  # fmt: skip


def _epoch_seconds(width, n, batch, eps, epochs: int) -> tuple[float, torch.nn.Module]:
    """CPU seconds per training epoch (PGD-3, no evaluation) and the trained model."""
    x, y = _data(n, 0)
    torch.manual_seed(0)
    model = models.build("lenet", in_shape=(3, 32, 32), width=width)
    cfg = train.TrainConfig(
        epochs=epochs, batch_size=batch, lr=0.02,
        attack=attacks.PGD(eps=eps, steps=3),
        runtime=train.Runtime(eval_num=0, co_check_num=0),
    )  # fmt: skip
    t0 = time.process_time()
    train.adversarial_train(model, (x, y), cfg)
    return (time.process_time() - t0) / epochs, model


def tracking_overhead(epochs: int, repeats: int, sizes) -> None:
    loss = lambda o, t: F.cross_entropy(o, t)  # noqa: E731
    for size in sizes:
        width, n, batch, eps = SIZES[size]
        epoch, model = _epoch_seconds(width, n, batch, eps, epochs)
        held = _data(256, 7)
        attack = evaluate.preset_attacks("quick", eps, "linf", steps=3)[0]
        params = sum(p.numel() for p in model.parameters())
        print(f"[{size}] LeNet width {width} ({params:,} parameters), {n} images, "
              f"batch {batch}: one PGD-3 training epoch {epoch:.2f} s CPU")  # fmt: skip
        for kind in ("old", "fig10", "cheap", "cheaper"):
            spec = _tracking(kind)
            batches = [(held[0][: spec.num], held[1][: spec.num])]
            out = {}

            def call(m=model, a=attack, spec=spec, batches=batches, out=out):
                out.update(track(m, loss, batches, spec, a, 0))

            t = statistics.median(times(call, repeats, clock=time.process_time))
            print(f"  tracking {kind:5s} ({spec.num} examples, {spec.max_iter} "
                  f"Lanczos, {spec.sharpness[0].max_iter} sharpness steps, on "
                  f"{'+'.join(spec.hessian_on)}): {t:.2f} s CPU = "
                  f"{t / epoch:.2f} training epochs; every 5 epochs: overhead "
                  f"{t / (5 * epoch):.1%}")  # fmt: skip
            if kind == "old":
                continue
            ref = track(model, loss, batches, _tracking(kind, 40, 20), attack, 0)
            lam, sh = out["lam_max_adv"], out["sharp_adv_s"]
            lam_ref, sh_ref = ref["lam_max_adv"], ref["sharp_adv_s"]
            print(f"    top eigenvalue {lam:.4g} vs {lam_ref:.4g} after 40 Lanczos "
                  f"steps (relative error {abs(lam - lam_ref) / abs(lam_ref):.1%}, "
                  f"residual {out.get('lam_max_residual_adv', float('nan')):.3g}); "
                  f"sharpness {sh:.4g} vs {sh_ref:.4g} after 20 steps (relative "
                  f"{abs(sh - sh_ref) / abs(sh_ref):.1%})")  # fmt: skip


def sharpness_cost(repeats: int) -> None:
    torch.manual_seed(0)
    model = models.build("lenet", in_shape=(3, 32, 32)).eval()
    x, y = _data(256, 1)
    data = [(x, y)]
    params = [p for p in model.parameters() if p.requires_grad]

    def grad():
        loss = F.cross_entropy(model(x), y)
        torch.autograd.grad(loss, params)

    v = torch.randn(sum(p.numel() for p in params))

    def hvp():
        hessian.hvp(model, F.cross_entropy, data, v, check_deterministic=False)

    clock = time.process_time
    t_grad = statistics.median(times(grad, 3 * repeats, clock=clock))
    t_hvp = statistics.median(times(hvp, 3 * repeats, clock=clock))
    print(f"one gradient: {t_grad * 1e3:.1f} ms, one HVP: {t_hvp * 1e3:.1f} ms "
          f"(HVP / gradient {t_hvp / t_grad:.2f}), batch 256, LeNet 3x32x32")  # fmt: skip
    for m in (
        sharpness.WorstCase(rho=0.005, norm="linf", adaptive="element", max_iter=20),
        sharpness.WorstCase(rho=0.05, norm="l2", max_iter=20),
        sharpness.AverageCase(rho=0.005, adaptive="element", num_samples=20),
    ):
        res = {}

        def call(m=m, res=res):
            res["r"] = m(model, F.cross_entropy, data, torch.Generator().manual_seed(0))

        t = statistics.median(times(call, repeats, clock=clock))
        r = res["r"]
        print(
            f"{m.name}: {t * 1e3:.0f} ms = {t / t_grad:.1f} gradients = "
            f"{t / t_hvp:.1f} HVPs (counted: {r.num_grad} gradient passes, "
            f"{r.num_forward} forward passes)"
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--size",
        choices=list(SIZES),
        action="append",
        help="the sizes of the tracking overhead (default: all)",
    )
    p.add_argument("--no-sharpness-cost", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    q = 2 if args.quick else 3
    tracking_overhead(q, q, args.size or list(SIZES))
    print(f"load average: {load()}")
    if not args.no_sharpness_cost:
        sharpness_cost(2 if args.quick else 5)
    return 0


if __name__ == "__main__":
    run(main)

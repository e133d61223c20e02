"""Benchmark of issue 26's measurements: the cost of landscape tracking along a run,
and of the sharpness measures in gradient and Hessian-vector-product units.

1. Tracking overhead: the same PGD-3 run (LeNet on CIFAR-10-sized inputs, 1,000
   random images, batch 128, 10 epochs, one torch thread) with and without
   ``Runtime(track=Tracking(every=5, ...))`` (the fig10 settings: top eigenvalue by
   10 Lanczos steps and adaptive worst-case sharpness with 5 ascent steps, on the
   clean and the adversarial loss of a fixed held-out batch of 256). Reported:
   ``time_track / time`` from the run's summary (the tracked seconds over the
   training seconds) and the ratio of the CPU times of the two whole runs minus 1.
   Goal <= 10 %.
2. Sharpness cost: one ``WorstCase(max_iter=20)`` and one
   ``AverageCase(num_samples=20)`` on a batch of 256, in units of one gradient
   (forward + backward of the batch) and one HVP (``landscape.hessian.hvp``), median
   of the repeats (CPU time of this process: waiting for a core does not count).

Run: ``python benchmarks/bench_overfit.py`` (``--quick``: fewer epochs and repeats).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from _bench import load, run, times

from landscape import attacks, hessian, models, sharpness, train


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    proto = torch.rand(10, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    x = (proto[y] + 0.3 * torch.randn(n, 3, 32, 32, generator=g)).clamp(0, 1)
    return x, y


def _config(epochs: int, track: bool) -> train.TrainConfig:
    tracking = train.Tracking(
        every=5, num=256, max_iter=10, num_matvecs=0,
        sharpness=(sharpness.WorstCase(rho=0.005, norm="linf", adaptive="element",
                                       max_iter=5),),
        sharpness_on=("clean", "adv"),
    )  # fmt: skip
    return train.TrainConfig(
        epochs=epochs,
        batch_size=128,
        lr=0.05,
        attack=attacks.PGD(eps=8 / 255, steps=3),
        val_num=256,
        runtime=train.Runtime(
            eval_num=0, co_check_num=0, track=tracking if track else None
        ),
    )


def tracking_overhead(epochs: int) -> None:
    x, y = _data(1256, 0)
    out = {}
    for track in (False, True):
        torch.manual_seed(0)
        model = models.build("lenet", in_shape=(3, 32, 32))
        t0 = time.process_time()
        res = train.adversarial_train(model, (x, y), _config(epochs, track))
        out[track] = (time.process_time() - t0, res.summary)
    s = out[True][1]
    print(
        f"tracking every 5 of {epochs} epochs: time_track / time = "
        f"{s['track_overhead']:.3f} ({s['time_track']:.1f} s of {s['time_train']:.1f} s"
        f" wall); whole-run CPU time with / without tracking - 1 = "
        f"{out[True][0] / out[False][0] - 1:.3f} ({out[True][0]:.1f} s vs "
        f"{out[False][0]:.1f} s)"
    )


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
    args = p.parse_args()
    torch.set_num_threads(1)
    tracking_overhead(5 if args.quick else 10)
    print(f"load average: {load()}")
    sharpness_cost(2 if args.quick else 5)
    return 0


if __name__ == "__main__":
    run(main)

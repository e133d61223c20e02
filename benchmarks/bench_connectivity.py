"""Benchmark of landscape.connectivity: cost of a curve-training epoch.

Anchor: one epoch of plain PGD-k adversarial training of one model
(``landscape.train.adversarial_train``, per-epoch evaluation and checks off) on the
same data, batch size, attack and optimizer. The curve epoch is the same trainer on a
``connectivity.CurveModel`` (the bends trained at a random t per batch): a curve step
does the same work (k input-gradient passes of the attack, one forward + backward,
one optimizer step) at ``theta(t)``, plus building ``theta(t)`` from the control
points in every forward pass and going through ``torch.func.functional_call``; the
goal is a ratio close to 1.

Times are the CPU time of this process (``time.process_time``: waiting for a core of
the shared machine does not count). Reported: ``ratio = (curve epoch) /
(adversarial_train epoch)``, the median of
interleaved pairs (each curve epoch timed right after its anchor, so both see the same
machine load), and images per second of each. CPU setting: LeNet (width 1) on 1,000
MNIST images (random images when the files are missing), batch 100, PGD-5, Adam, one
torch thread. Run ``python benchmarks/bench_connectivity.py`` (``--quick``: fewer
pairs, fewer images).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import _bench
import torch

from landscape import attacks, connectivity, models
from landscape.train import Runtime, TrainConfig, adversarial_train


def _data(n: int):
    try:
        from landscape import data

        return data.load_dataset(
            "mnist", os.environ.get("LANDSCAPE_DATA"), num_samples=n, download=False
        )
    except Exception as err:  # no files: random images of the right shape
        warnings.warn(f"using random images ({err})", stacklevel=2)
        g = torch.Generator().manual_seed(0)
        return torch.rand(n, 1, 28, 28, generator=g), torch.randint(
            0, 10, (n,), generator=g
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 pairs on 400 images")
    p.add_argument("--pairs", type=int, default=None)
    p.add_argument("--num", type=int, default=None, help="training images")
    p.add_argument("--steps", type=int, default=5, help="PGD steps")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    pairs = args.pairs or (3 if args.quick else 7)
    n = args.num or (400 if args.quick else 1000)
    x, y = _data(n)
    eps, bs = 0.1, 100
    tc = TrainConfig(
        epochs=1,
        batch_size=bs,
        optimizer="adam",
        lr=1e-3,
        attack=attacks.PGD(eps=eps, steps=args.steps),
        runtime=Runtime(eval_num=0, co_check_num=0, amp="off", channels_last=False),
    )
    torch.manual_seed(0)
    a = models.build("lenet", dataset="mnist", hidden_size=1024)
    b = models.build("lenet", dataset="mnist", hidden_size=1024)
    ratios, t_plain, t_curve = [], [], []
    for i in range(pairs + 1):  # the first pair warms up and is dropped
        m = models.build("lenet", dataset="mnist", hidden_size=1024)
        t0 = time.process_time()
        adversarial_train(m, (x, y), tc)
        t1 = time.process_time()
        adversarial_train(connectivity.CurveModel(a, b), (x, y), tc)
        t2 = time.process_time()
        if i:
            t_plain.append(t1 - t0)
            t_curve.append(t2 - t1)
            ratios.append((t2 - t1) / (t1 - t0))
    tp, tcv = statistics.median(t_plain), statistics.median(t_curve)
    print(
        f"LeNet, {n} MNIST images, batch {bs}, PGD-{args.steps}, {args.threads} thread(s), "
        f"{pairs} interleaved pairs"
    )
    print(f"  adversarial_train epoch: {tp:.3f} s ({n / tp:.0f} img/s)")
    print(f"  curve epoch:             {tcv:.3f} s ({n / tcv:.0f} img/s)")
    print(
        f"  ratio curve / plain: median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
    )
    return 0


if __name__ == "__main__":
    _bench.run(main)

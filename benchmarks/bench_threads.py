"""Benchmark of torch's CPU threads for the tools' default (``--threads``, issue 28).

One PGD-5 adversarial-training epoch of LeNet on MNIST (the demo's training stage in
small: 1,024 images, batch 128, ``adversarial_train``), timed with 1, 2 and 4 torch
threads in alternating order (1, 2, 4, 4, 2, 1, ...). Each timing runs in a fresh
subprocess, as a tool run does. Printed per thread count: the median wall time and
CPU time (user + system of the child) and their ratio to one thread (the anchor);
below 1 is faster. The load average (``uptime``) is printed at the start and the end.

The question: does the tools' default (``_cli.default_threads``: the cores the load
average leaves free, 1..4) beat torch's default (one thread per core) on a busy and on
a quiet machine?

    python benchmarks/bench_threads.py            # 3 rounds
    python benchmarks/bench_threads.py --quick    # 1 round, 512 images
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from _bench import load

_CHILD = r"""
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
from landscape import data, models
from landscape.attacks import PGD
from landscape.train import Runtime, TrainConfig, adversarial_train
x, y = data.load_dataset("mnist", num_samples=int(sys.argv[2]))
model = models.build("lenet", dataset="mnist")
cfg = TrainConfig(epochs=1, batch_size=128, optimizer="sgd", lr=1e-2, seed=0,
                  attack=PGD(eps=0.3, steps=5), runtime=Runtime(eval_num=0, co_check_num=0))
adversarial_train(model, (x[:256], y[:256]), cfg)  # warm-up
t0, c0 = time.perf_counter(), time.process_time()
adversarial_train(model, (x, y), cfg)
print(time.perf_counter() - t0, time.process_time() - c0)
"""


def _one(threads: int, num: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of all threads) of the epoch."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(threads), str(num)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    args = p.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    num = 512 if args.quick else 1024
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from landscape._cli import default_threads

    print(
        f"load average at start: {load()}; cores {os.cpu_count()}; "
        f"default_threads() now: {default_threads()}; images {num}, rounds {rounds}"
    )
    wall: dict[int, list[float]] = {t: [] for t in args.threads}
    cpu: dict[int, list[float]] = {t: [] for t in args.threads}
    for r in range(rounds):
        order = args.threads if r % 2 == 0 else args.threads[::-1]
        for t in order:
            w, c = _one(t, num)
            wall[t].append(w)
            cpu[t].append(c)
            print(
                f"  round {r + 1}: {t} thread(s): epoch {w:.2f} s wall, {c:.2f} s CPU"
            )
    anchor_w = statistics.median(wall[args.threads[0]])
    anchor_c = statistics.median(cpu[args.threads[0]])
    print(f"threads | epoch wall (median) | x {args.threads[0]} thread | CPU | x")
    for t in args.threads:
        w, c = statistics.median(wall[t]), statistics.median(cpu[t])
        print(
            f"{t:7d} | {w:8.2f} s | {w / anchor_w:5.2f} | {c:7.2f} s | "
            f"{c / anchor_c:5.2f}"
        )
    print(
        f"load average at end: {load()} ({time.strftime('%H:%M UTC', time.gmtime())})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

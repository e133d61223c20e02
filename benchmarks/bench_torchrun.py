"""Benchmark of the data-parallel paths: 2 gloo processes against 1 (issue 24).

Physical unit: the same call in one process (one torch thread). Each case runs once
in this process and once in 2 spawned processes joined in a gloo group (one thread
each, the ranks split the work: training shards every global batch (DDP), surfaces
the grid points, the Hessian the batches); every rank reports its wall time and its
CPU time (``time.process_time``, what the shared machine's load does not inflate).
Reported per case: ``cpu/rank = (a rank's CPU time) / (1-process CPU time)`` (ideal
0.5 with 2 ranks; above it: the collectives and the work every rank repeats),
``wall/rank`` likewise (meaningful only on a quiet machine with >= 2 free cores), and
whether the 2-process answer equals the 1-process one.

Cases (synthetic 28x28 images, an MLP 784-256-10, float32):

- ``train``: 1 epoch of PGD-3 training on 2,048 images, batch 128 (16 steps; no
  random start: with random starts each rank draws its shard's starts from its own
  stream, the same run statistically, not bitwise);
- ``surface``: an 11 x 11 loss surface on 2,048 images (121 points);
- ``hessian``: top-2 eigenvalues (Lanczos, 20 steps) on 2,048 images, batch 128.

Run: ``python benchmarks/bench_torchrun.py`` (``--quick``: smaller cases).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from landscape import attacks, directions, hessian, surface, train

N_TRAIN, N_EVAL = 2048, 2048


def _data(n: int):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(
        0, 10, (n,), generator=g
    )


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)
    )


def _case(name: str, quick: bool):
    """Run case ``name``; returns its answer as a flat float64 array."""
    k = 4 if quick else 1
    model = _model()
    ce = nn.CrossEntropyLoss()
    if name == "train":
        x, y = _data(N_TRAIN // k)
        cfg = train.TrainConfig(
            epochs=1,
            batch_size=128,
            lr=0.05,
            seed=0,
            attack=attacks.PGD(eps=0.1, steps=3, random_start=False),
            runtime=train.Runtime(eval_num=0, co_check_num=0, channels_last=False),
        )
        train.adversarial_train(model, (x, y), cfg)
        return torch.cat([p.detach().flatten() for p in model.parameters()]).double()
    x, y = _data(N_EVAL // k)
    batches = [(x[i : i + 128], y[i : i + 128]) for i in range(0, len(x), 128)]
    if name == "surface":
        d = directions.random_directions(
            model, generator=torch.Generator().manual_seed(1)
        )
        grid = np.linspace(-1, 1, 11 if not quick else 5)
        s = surface.loss_surface(model, ce, batches, d, xs=grid, ys=grid)
        return torch.as_tensor(s.loss, dtype=torch.float64).flatten()
    eig = hessian.top_eigenvalues(
        model,
        ce,
        batches,
        num=2,
        max_iter=20,
        generator=torch.Generator().manual_seed(2),
    )
    return torch.as_tensor(eig.eigenvalues, dtype=torch.float64)


def _timed(name: str, quick: bool):
    w0, c0 = time.perf_counter(), time.process_time()
    out = _case(name, quick)
    return out, time.perf_counter() - w0, time.process_time() - c0


def _worker(rank: int, world: int, init: str, out: str, name: str, quick: bool):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init}", rank=rank, world_size=world
    )
    try:
        dist.barrier()
        ans, wall, cpu = _timed(name, quick)
        torch.save(
            {"answer": ans, "wall": wall, "cpu": cpu}, os.path.join(out, f"r{rank}.pt")
        )
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller cases")
    p.add_argument("--cases", nargs="+", default=["train", "surface", "hessian"])
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print(f"load {os.getloadavg()[0]:.2f}; 1 thread per process; quick={args.quick}")
    rows = []
    for name in args.cases:
        ref, wall1, cpu1 = _timed(name, args.quick)
        with tempfile.TemporaryDirectory() as tmp:
            init = os.path.join(tmp, "init")
            mp.spawn(_worker, args=(2, init, tmp, name, args.quick), nprocs=2)
            ranks = [torch.load(os.path.join(tmp, f"r{r}.pt")) for r in range(2)]
        err = max(
            float((r["answer"] - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
            for r in ranks
        )
        row = {
            "case": name,
            "cpu_1": round(cpu1, 2),
            "wall_1": round(wall1, 2),
            "cpu_per_rank": [round(r["cpu"] / cpu1, 3) for r in ranks],
            "wall_per_rank": [round(r["wall"] / wall1, 3) for r in ranks],
            "max_rel_diff": err,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"load at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

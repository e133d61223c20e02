"""Loss-surface throughput: ``surface.loss_surface`` vs a plain weight-copy loop.

Two model shapes, each on 1,000 test images and a grid of filter-normalised random
directions:

- ``lenet``: LeNet (``models.build("lenet", hidden_size=1024)``), float32, MNIST;
- ``bnres``: a BatchNorm + residual CNN (two residual blocks, 16 channels), float64,
  Fashion-MNIST (the model of issue 18's measurement).

Per model, in grid points per second of CPU time:

- ours: ``loss_surface(..., strategy="auto", batch_size="auto")`` over the whole grid,
  including all its set-up (reading and validating the data, the determinism check,
  the batch-size measurement);
- loop: the plain weight-copy loop (the reference loss-landscape code's
  ``net_plotter.set_weights``): write ``w + a d1 + b d2`` into the model's parameters
  point by point and evaluate loss and accuracy with batches of 128;
- floor: one forward pass over the images per point at the best batch size.

The ratio ours / loop is the number to watch (goal: <= 1.0 on every model). Timings
are interleaved (loop, ours, loop, ours, ..., loop): each call of ``loss_surface`` is
divided by the mean of the loop timings just before and after it (so a drift of the
machine cancels), and the first call (batch-size tuning and determinism check paid)
is reported apart from the later ones (batch size remembered). On CPU the times are
CPU seconds of this process (``time.process_time``, one torch thread), which other
processes on a shared machine inflate far less than wall-clock time; the load
(``os.getloadavg``) is printed at the start and the end of each model.

    python benchmarks/bench_surface.py                # 21 x 21 grid, both models
    python benchmarks/bench_surface.py --quick        # 9 x 9 grid
    python benchmarks/bench_surface.py --model bnres  # one model
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import _bench
import numpy as np
import torch
from torch import nn

from landscape import directions, models, surface

_DEVICE = [torch.device("cpu")]


def _clock() -> float:
    """CPU seconds of this process; wall-clock seconds on a GPU."""
    return time.perf_counter() if _DEVICE[0].type == "cuda" else time.process_time()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        h = torch.relu(self.b1(self.c1(x)))
        return torch.relu(x + self.b2(self.c2(h)))


def bn_res_cnn(channels: int = 16, num_classes: int = 10) -> nn.Module:
    """A small BatchNorm + residual CNN for 1 x 28 x 28 inputs."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        _Block(channels),
        _Block(channels),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, num_classes),
    )


def _data(name: str, num: int, root: str | None):
    from landscape import data

    try:
        x, y = data.load_dataset(
            name, root, split="test", num_samples=num, download=False
        )
        return x, y, f"{name} test"
    except (FileNotFoundError, OSError, RuntimeError, ValueError) as err:
        print(f"{name} not found ({type(err).__name__}); random images of that shape")
        g = torch.Generator().manual_seed(0)
        x = torch.rand(num, 1, 28, 28, generator=g)
        return x, torch.randint(0, 10, (num,), generator=g), "random"


def _setup(which: str, num: int, root: str | None, device: torch.device):
    torch.manual_seed(0)
    if which == "lenet":
        model = models.build("lenet", hidden_size=1024)
        x, y, src = _data("mnist", num, root)
        dtype = torch.float32
    else:
        model = bn_res_cnn()
        x, y, src = _data("fashion-mnist", num, root)
        dtype = torch.float64
        with torch.no_grad():  # non-trivial running statistics
            model.train()
            for xb in x.split(200):
                model(xb)
    model = model.to(device=device, dtype=dtype).eval()
    return model, x.to(device=device, dtype=dtype), y.to(device), src


def _loop(model, x, y, dirs, coefs, batch_size: int = 128) -> float:
    """CPU seconds per point of the plain weight-copy loop."""
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    named = list(model.named_parameters())
    w0 = [p.detach().clone() for _, p in named]
    d1 = [dirs[0][n] for n, _ in named]
    d2 = [dirs[1][n] for n, _ in named]
    _sync(x.device)
    t = _clock()
    with torch.no_grad():
        for a, b in coefs:
            for (_, p), w, u, v in zip(named, w0, d1, d2):
                p.copy_(w + float(a) * u + float(b) * v)
            total, correct = 0.0, 0
            for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
                out = model(xb)
                total += loss_fn(out, yb).item()
                correct += (out.argmax(1) == yb).sum().item()
    _sync(x.device)
    elapsed = _clock() - t
    with torch.no_grad():
        for (_, p), w in zip(named, w0):
            p.copy_(w)
    return elapsed / len(coefs)


def _ours(model, x, y, dirs, xs) -> tuple[float, surface.Surface]:
    _sync(x.device)
    t = _clock()
    surf = surface.loss_surface(model, nn.CrossEntropyLoss(), [(x, y)], dirs, xs=xs)
    _sync(x.device)
    return (_clock() - t) / (len(xs) ** 2), surf


def _floor(model, x, repeats: int = 3) -> float:
    best = float("inf")
    with torch.no_grad():
        for bs in (128, 256, 500, 1000):
            times = []
            for _ in range(repeats):
                _sync(x.device)
                t = _clock()
                for xb in x.split(bs):
                    model(xb)
                _sync(x.device)
                times.append(_clock() - t)
            best = min(best, statistics.median(times))
    return best


def run(which: str, n: int, rounds: int, args, device) -> dict:
    model, x, y, src = _setup(which, args.num_samples, args.root, device)
    dirs = directions.random_directions(
        model, generator=torch.Generator().manual_seed(0)
    )
    xs = np.linspace(-1, 1, n)
    coefs = np.stack([a.ravel() for a in np.meshgrid(xs, xs)], axis=1)
    sub = coefs[:: max(1, len(coefs) // args.loop_points)]
    nparams = sum(p.numel() for p in model.parameters())
    load0 = os.getloadavg()[0]
    print(
        f"\n{which}: {nparams:,} params, {str(x.dtype)[6:]}, {len(x)} {src} images, "
        f"{n}x{n} grid, {device}, load {load0:.1f}"
    )
    loops, ours, surf = [], [], None
    for _ in range(rounds):
        loops.append(_loop(model, x, y, dirs, sub))
        o, surf = _ours(model, x, y, dirs, xs)
        ours.append(o)
    loops.append(_loop(model, x, y, dirs, sub))
    floor = _floor(model, x)
    loop, mine = statistics.median(loops), statistics.median(ours)
    m = surf.meta
    print(f"  floor (forward only, best batch)     {1e3 * floor:8.2f} ms/point")
    print(f"  plain weight-copy loop (batch 128)   {1e3 * loop:8.2f} ms/point")
    print(
        f"  loss_surface ({m['strategy']}, batch {m['batch_size']}, incl. set-up) "
        f"{1e3 * mine:8.2f} ms/point"
    )
    ratios = [o / (0.5 * (a + b)) for o, a, b in zip(ours, loops, loops[1:])]
    later = ratios[1:] or ratios
    print(
        f"  ours / loop: first call {ratios[0]:.3f}, later calls "
        f"{statistics.median(later):.3f} (range {min(later):.3f}-{max(later):.3f}, "
        f"{len(later)} calls); ours / floor = {mine / floor:.3f}; "
        f"load {load0:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    return {
        "model": which,
        "loop": loop,
        "ours": mine,
        "floor": floor,
        "first": ratios[0],
        "later": statistics.median(later),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="9 x 9 grid")
    p.add_argument("--model", choices=["lenet", "bnres", "both"], default="both")
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--loop-points", type=int, default=40, help="points timed in loop")
    p.add_argument("--rounds", type=int, default=3, help="calls of loss_surface")
    p.add_argument("--root", default=None, help="data root (default $LANDSCAPE_DATA)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    _DEVICE[0] = device
    n, rounds = (9 if args.quick else 21), args.rounds
    which = ["lenet", "bnres"] if args.model == "both" else [args.model]
    rows = [run(w, n, rounds, args, device) for w in which]
    print("\nmodel   ours/loop (first call, later calls)  ours/floor")
    for r in rows:
        print(
            f"{r['model']:7s} {r['first']:9.3f} {r['later']:9.3f}"
            f"                   {r['ours'] / r['floor']:9.3f}"
        )
    return 0


if __name__ == "__main__":
    _bench.run(main)

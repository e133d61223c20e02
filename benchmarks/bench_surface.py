"""Loss-surface throughput: ``surface.loss_surface`` vs the reference loop and the floor.

LeNet (``models.build("lenet")``) on 1,000 MNIST test images, a 21 x 21 grid of
filter-normalised random directions. Three numbers, all in grid points per second:

- ours: ``loss_surface(..., strategy="auto", batch_size="auto")`` over the whole grid,
  including its set-up (batch-size measurement and the determinism check);
- anchor: the reference loss-landscape code's way (``net_plotter.set_weights``): write
  ``w + a d1 + b d2`` into the model's parameters point by point, then evaluate the
  loss with batches of 128 (the reference's default batch size);
- floor: one forward pass over the 1,000 images per point at the best batch size
  (forward only, no loss, best of batch sizes 128, 256, 500 and 1,000).

Timings are interleaved (floor, anchor, ours, floor, anchor, floor) on one thread and
the medians are reported. On CPU they are CPU seconds of this process
(``time.process_time``), which other processes on a shared machine do not inflate; on a
GPU they are wall-clock seconds. A vmap over stacked grid points is
timed as well, to show why ``strategy="auto"`` picks the loop on CPU.

    python benchmarks/bench_surface.py            # 21 x 21 grid
    python benchmarks/bench_surface.py --quick    # 7 x 7 grid
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

from landscape import directions, models, surface


def _clock() -> float:
    """CPU seconds of this process (immune to other processes on a shared machine
    when torch runs one thread); wall-clock seconds on a GPU."""
    return time.perf_counter() if _DEVICE[0].type == "cuda" else time.process_time()


_DEVICE = [torch.device("cpu")]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _data(num: int, root: str | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    from landscape import data

    try:
        x, y = data.load_dataset(
            "mnist", root, split="test", num_samples=num, download=False
        )
        return x, y, "MNIST test"
    except (FileNotFoundError, OSError, RuntimeError) as err:
        print(f"MNIST not found ({err}); using random images of the same shape")
        g = torch.Generator().manual_seed(0)
        return (
            torch.rand(num, 1, 28, 28, generator=g),
            torch.randint(0, 10, (num,), generator=g),
            "random",
        )


def _floor(model, x, device, repeats: int = 5) -> tuple[float, int]:
    """Seconds per point: one forward pass over ``x`` at the best batch size (median of
    ``repeats`` passes per batch size, the smallest median over batch sizes)."""
    best = (float("inf"), 0)
    with torch.no_grad():
        for bs in (128, 256, 500, 1000):
            times = []
            for _ in range(repeats):
                _sync(device)
                t = _clock()
                for xb in x.split(bs):
                    model(xb)
                _sync(device)
                times.append(_clock() - t)
            best = min(best, (statistics.median(times), bs))
    return best


def _anchor(model, x, y, dirs, coefs, device, batch_size: int = 128) -> float:
    """Seconds per point of the reference's set_weights loop."""
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    params = list(model.parameters())
    w0 = [p.data.clone() for p in params]
    d1 = [dirs[0][n] for n, _ in model.named_parameters()]
    d2 = [dirs[1][n] for n, _ in model.named_parameters()]
    _sync(device)
    t = _clock()
    with torch.no_grad():
        for a, b in coefs:
            for p, w, u, v in zip(params, w0, d1, d2):
                p.data = w + float(a) * u + float(b) * v
            total, correct = 0.0, 0
            for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
                out = model(xb)
                total += loss_fn(out, yb).item()
                correct += (out.argmax(1) == yb).sum().item()
    _sync(device)
    elapsed = _clock() - t
    for p, w in zip(params, w0):
        p.data = w
    return elapsed / len(coefs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="7 x 7 grid instead of 21 x 21")
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--root", default=None, help="data root (default $LANDSCAPE_DATA)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    _DEVICE[0] = device
    n = 7 if args.quick else 21
    x, y, source = _data(args.num_samples, args.root)
    x, y = x.to(device), y.to(device)
    torch.manual_seed(0)
    model = models.build("lenet").to(device).eval()
    dirs = directions.random_directions(
        model, generator=torch.Generator().manual_seed(0)
    )
    xs = np.linspace(-1, 1, n)
    coefs = np.stack([a.ravel() for a in np.meshgrid(xs, xs)], axis=1)
    row = coefs[: min(len(coefs), 21)]
    loss_fn = nn.CrossEntropyLoss()
    print(
        f"LeNet ({sum(p.numel() for p in model.parameters()):,} params), {len(x)} "
        f"{source} images, {n}x{n} grid, {device}, {args.threads} thread(s)"
    )

    floors, anchors, ours, surf = [], [], [], None
    for rnd in range(2):
        f, bs = _floor(model, x, device)
        floors.append(f)
        anchors.append(_anchor(model, x, y, dirs, row, device))
        if rnd == 0:
            t = _clock()
            surf = surface.loss_surface(model, loss_fn, [(x, y)], dirs, xs=xs)
            _sync(device)
            ours.append((_clock() - t) / len(coefs))
    f2, _ = _floor(model, x, device)
    floors.append(f2)
    floor, anchor, mine = (statistics.median(v) for v in (floors, anchors, ours))
    m = surf.meta

    # vmap over stacked grid points, for the record (auto picks the loop on CPU)
    k = 7
    t = _clock()
    surface.loss_surface(
        model,
        loss_fn,
        [(x, y)],
        dirs,
        xs=xs[:k],
        ys=[0.0],
        strategy="vmap",
        chunk_size=k,
        batch_size=m["batch_size"],
        check_deterministic=False,
    )
    _sync(device)
    vm = (_clock() - t) / k

    print(
        f"floor  (forward only, best batch {bs:4d}) {1e3 * floor:7.1f} ms/point  {1 / floor:6.1f} points/s"
    )
    print(
        f"anchor (set_weights loop, batch 128)   {1e3 * anchor:7.1f} ms/point  {1 / anchor:6.1f} points/s"
    )
    print(
        f"ours   (loss_surface: {m['strategy']}, batch {m['batch_size']})       "
        f"{1e3 * mine:7.1f} ms/point  {1 / mine:6.1f} points/s  (incl. set-up)"
    )
    print(
        f"vmap over {k} stacked points (batch {m['batch_size']})   {1e3 * vm:7.1f} ms/point"
    )
    steady = 1 / m["points_per_second"] if device.type == "cuda" else None
    if steady is not None:
        print(f"ours, grid loop only (wall)            {1e3 * steady:7.1f} ms/point")
    print(f"ours / floor  = {mine / floor:.2f}x  (goal <= 1.2x on CPU)")
    print(f"anchor / ours = {anchor / mine:.2f}x faster than the reference loop")
    print(
        f"loss at the centre {surf.center_loss:.4f}, range {surf.loss.min():.3f}..{surf.loss.max():.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Loader throughput: ``landscape.data.batches`` vs ``torch.utils.data.DataLoader``.

One shuffled epoch over MNIST train (60,000 x 1 x 28 x 28 float32, batch size 128) with
``batches()`` (whole dataset kept on the device, one gather per batch) and with a
``DataLoader`` over a ``TensorDataset`` (per-sample indexing + default collate, the
usual anchor). The physical limit is a memory copy of the whole dataset into a preallocated buffer
(every byte of an epoch is read and written once), measured in the same run.

Timings are interleaved (anchor, ours, limit, repeated) and the median is reported,
because the machine is shared.

    python benchmarks/bench_data.py            # 7 repeats, full MNIST train
    python benchmarks/bench_data.py --quick    # 3 repeats, 10,000 samples
    python benchmarks/bench_data.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from torch.utils.data import DataLoader, TensorDataset

from landscape import data


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _epoch(loader, device: torch.device) -> int:
    n = 0
    for xb, yb in loader:
        xb = xb.to(device, non_blocking=True)
        yb = yb.to(device, non_blocking=True)
        n += 1
    _sync(device)
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 repeats on 10,000 samples")
    p.add_argument("--root", default=None, help="data root (default $LANDSCAPE_DATA)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    device = torch.device(args.device)
    num = 10_000 if args.quick else None
    repeats = args.repeats or (3 if args.quick else 7)
    try:
        x, y = data.load_dataset("mnist", args.root, num_samples=num, download=False)
        source = "MNIST train"
    except FileNotFoundError as err:
        warnings.warn(f"MNIST not found ({err}); timing random tensors", stacklevel=1)
        n = num or 60_000
        x, y = torch.rand(n, 1, 28, 28), torch.randint(0, 10, (n,))
        source = "random tensors"
    ours = data.batches(x, y, batch_size=args.batch_size, shuffle=True, device=device)
    g = torch.Generator().manual_seed(0)
    anchor = DataLoader(
        TensorDataset(x, y), batch_size=args.batch_size, shuffle=True, generator=g
    )
    xd = x.to(device)
    buf = torch.empty_like(xd)
    buf.copy_(xd)  # touch the pages once: the limit is bandwidth, not page faults
    times: dict[str, list[float]] = {"anchor": [], "ours": [], "limit": []}
    nb = len(ours)
    _epoch(ours, device)  # warm-up
    for _ in range(repeats):
        t = time.perf_counter()
        _epoch(anchor, device)
        times["anchor"].append(time.perf_counter() - t)
        t = time.perf_counter()
        _epoch(ours, device)
        times["ours"].append(time.perf_counter() - t)
        t = time.perf_counter()
        buf.copy_(xd)
        _sync(device)
        times["limit"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    gb = x.numel() * x.element_size() / 1e9
    print(
        f"{source}: {len(x)} samples, batch {args.batch_size}, {nb} batches/epoch, "
        f"device {device}, {repeats} interleaved repeats (median), 1 thread"
    )
    print(f"  DataLoader(TensorDataset) : {nb / med['anchor']:10.0f} batches/s")
    print(f"  landscape.data.batches    : {nb / med['ours']:10.0f} batches/s")
    print(
        f"  memcpy limit              : {nb / med['limit']:10.0f} batches/s "
        f"({2 * gb / med['limit']:.1f} GB/s read+write)"
    )
    print(f"  speed-up vs DataLoader    : {med['anchor'] / med['ours']:.1f}x")
    print(f"  fraction of memcpy limit  : {med['limit'] / med['ours']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

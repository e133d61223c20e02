"""Loading the CIFAR-10 JPEG copy: decoding the ``.tar.gz`` in every process (anchor)
vs the decoded-array cache (``landscape.data``'s per-user ``decoded/*.npz``).

Each measurement is a fresh Python process that runs ``load_dataset("cifar10-jpeg",
split=..., num_samples=1000)`` (the 1,000 images the issue's users asked for); the
anchor forces the old path (decode the split from the archive, no cache). The cache's
first load pays the decode plus one write; every later process reads the verified
array file. The limit is reading the same array file without the checksum (``np.load``
alone); the floor is a process that only imports torch and landscape. CPU time of the
child (user + system) and wall time are reported; the machine is shared, so read the
CPU times and the ratios (the last column subtracts the floor).

    python benchmarks/bench_decode_cache.py            # train split, 3 repeats
    python benchmarks/bench_decode_cache.py --quick    # test split, 1 repeat
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    t = time.perf_counter()
    import numpy as np, torch
    from landscape import data
    from landscape.data import _cache, _load
    mode, split, root = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "anchor":  # every process decodes (the code before the cache)
        _load.cached_decode = lambda name, split, source, decode, **kw: decode()
    if mode == "floor":  # the imports alone
        y = []
    elif mode == "limit":  # read the array file, no checksum, no subsample
        with np.load(_cache.cache_folder() / f"cifar10-jpeg-{split}.npz") as f:
            x, y = f["x"], f["y"]
    else:
        x, y = data.load_dataset("cifar10-jpeg", root, split=split, num_samples=1000,
                                 generator=torch.Generator().manual_seed(0))
    print(json.dumps({"wall": time.perf_counter() - t, "n": len(y)}))
    """
)


def _run(mode: str, split: str, root: str, env: dict) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, split, root],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, json.loads(out.stdout.strip().splitlines()[-1])["wall"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="test split, 1 repeat")
    p.add_argument("--root", default=os.environ.get("LANDSCAPE_DATA"))
    p.add_argument("--repeats", type=int, default=None)
    args = p.parse_args(argv)
    if not args.root or not (Path(args.root) / "cifar10-jpeg.tar.gz").exists():
        print("needs cifar10-jpeg.tar.gz under --root / $LANDSCAPE_DATA")
        return 2
    split = "test" if args.quick else "train"
    repeats = args.repeats or (1 if args.quick else 3)
    cache = tempfile.mkdtemp(prefix="bench_decode_cache.")
    env = {**os.environ, "XDG_CACHE_HOME": cache, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = str(REPO)
    rows: dict[str, list[tuple[float, float]]] = {}
    rows["first load (decode + write cache)"] = [_run("cache", split, args.root, env)]
    for _ in range(repeats):  # interleaved: anchor, cached, limit
        for label, mode in (
            ("anchor: decode in every process", "anchor"),
            ("later loads (verified cache)", "cache"),
            ("limit: np.load of the array file", "limit"),
            ("floor: python + torch + landscape", "floor"),
        ):
            rows.setdefault(label, []).append(_run(mode, split, args.root, env))
    anchor = statistics.median(c for c, _ in rows["anchor: decode in every process"])
    floor = statistics.median(c for c, _ in rows["floor: python + torch + landscape"])
    print(f"cifar10-jpeg {split} split, 1,000 images per process, {repeats} repeats")
    head = (
        f"{'':36} {'CPU s':>8} {'wall s':>8} {'CPU vs anchor':>14} {'above floor':>12}"
    )
    print(head)
    for label, vals in rows.items():
        cpu = statistics.median(c for c, _ in vals)
        wall = statistics.median(w for _, w in vals)
        extra = (cpu - floor) / (anchor - floor)
        print(f"{label:36} {cpu:8.2f} {wall:8.2f} {cpu / anchor:13.3f}x {extra:11.3f}x")
    size = sum(f.stat().st_size for f in Path(cache).rglob("*.npz")) / 2**20
    print(f"cache file: {size:.0f} MiB in {cache}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

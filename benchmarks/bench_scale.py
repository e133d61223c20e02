"""Scale benchmark (issue 24): peak memory and CPU time of every analysis at N = 256,
1,024 and 4,096 CIFAR-10 images. Goal: peak memory at the largest N within 1.2x of
that at the smallest on every row (memory bounded by the loader batch, not the data
set), CPU time linear in N.

Setting: ``models.build("resnet18", dataset="cifar10", width=0.125)`` (the CIFAR
ResNet-18 at 1/8 of its channels: 8-16-32-64, 176,402 parameters; the full
11M-parameter one is too slow for every row on a 2-core machine; the ratios are what
is measured), float32, its BatchNorm statistics set by one forward pass over 256
images in train mode (otherwise untrained). Data: a stratified sample of N images of
the CIFAR-10 JPEG copy's test split (``load_dataset("cifar10-jpeg")``, decoded once
into the per-user cache), streamed by ``data.batches(x, y, batch_size=128)``. One
torch thread.

Rows (fixed iteration counts, so the work is linear in N):

- ``evaluate``: ``evaluate(preset="quick", steps=6)``, PGD-6 at eps 8/255, no
  masking checks, no adaptive attacks, against the model's own predictions as
  labels (clean accuracy 100 %: every point is attacked, so the attacked batches are
  full at every N; with the true labels an untrained model attacks ~10 % of them);
- ``top5``: ``hessian.top_eigenvalues(num=5, max_iter=6, tol=1e-12)`` (6 products);
- ``trace``: ``hessian.trace(num_matvecs=2)`` (Hutchinson, 2 probes);
- ``slq``: ``hessian.lanczos_quadrature(max_iter=4, num_runs=1)``;
- ``surface``: ``surface.loss_surface`` on a 5 x 5 grid of two filter-normalised
  random directions;
- ``scattering``: ``scattering.scattering`` with PGD-5, 1 scale x 1 direction;
- ``sharp_worst`` / ``sharp_avg``: ``sharpness.WorstCase(rho=0.05, max_iter=5)`` /
  ``sharpness.AverageCase(rho=0.05, num_samples=5)``.

Each (row, N) runs in a fresh subprocess. Memory: the peak resident set size during
the call minus the resident set size just before it (after the model and the N
images are loaded): the process's high-water mark is reset by writing ``5`` to
``/proc/self/clear_refs`` before the call and read as ``VmHWM`` of
``/proc/self/status`` after it (where the reset is refused: ``ru_maxrss`` minus the
RSS before, which then also counts the loading). Time: CPU seconds of the process
(``time.process_time``) next to wall seconds. Finished rows are kept in a JSON state
file (default ``runs/bench_scale/state.json``), so a second call runs only the rest.

    python benchmarks/bench_scale.py                   # every row, N = 256, 1024, 4096
    python benchmarks/bench_scale.py --rows surface --sizes 256 4096 --rerun
    python benchmarks/bench_scale.py --smoke           # tiny model and data, seconds
                                                       # (every row in this process)
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import _bench

ROWS = (
    "evaluate",
    "top5",
    "trace",
    "slq",
    "surface",
    "scattering",
    "sharp_worst",
    "sharp_avg",
)
SIZES = (256, 1024, 4096)
BATCH = 128
GOAL = 1.2


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _setup(n: int, smoke: bool, width: float):
    import torch

    from landscape import data, models

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    if smoke:
        x = torch.rand(n, 3, 8, 8, generator=g)
        y = torch.randint(0, 10, (n,), generator=g)
        model = models.build("resnet18", in_shape=(3, 8, 8), width=width)
    else:
        x, y = data.load_dataset(
            "cifar10-jpeg", split="test", num_samples=n, generator=g
        )
        model = models.build("resnet18", dataset="cifar10", width=width)
    model.train()
    with torch.no_grad():  # BatchNorm statistics of real data, then eval mode
        model(x[:256])
    model.eval()
    return model, x, y


def _hvp(result) -> dict:
    """The HVP formulation ``mode="auto"`` chose and the graph size it projected."""
    meta = getattr(result, "meta", {}) or {}
    g = meta.get("graph_bytes")
    return {
        "hvp_mode": meta.get("hvp_mode"),
        "graph_mib": None if g is None else g / 2**20,
    }


def _analysis(row: str, model, loader, smoke: bool):
    import numpy as np
    import torch
    from torch import nn

    from landscape import attacks, hessian, scattering, sharpness, surface
    from landscape import directions as D
    from landscape.evaluate import evaluate

    ce = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(1)
    it = 2 if smoke else 6
    if row == "evaluate":
        r = evaluate(
            model, loader, eps=8 / 255, preset="quick", steps=it, checks=False,
            adaptive=None, generator=g,
        )  # fmt: skip
        return {"robust_accuracy": float(np.mean(r.robust_correct))}
    if row == "top5":
        r = hessian.top_eigenvalues(
            model, ce, loader, num=5, max_iter=6, tol=1e-12, return_vectors=False,
            generator=g,
        )  # fmt: skip
        return {
            "eigenvalues": [float(v) for v in r.eigenvalues],
            "matvecs": r.num_matvecs,
            **_hvp(r),
        }
    if row == "trace":
        r = hessian.trace(model, ce, loader, num_matvecs=2, generator=g)
        return {"trace": float(r.estimate), "matvecs": r.num_matvecs, **_hvp(r)}
    if row == "slq":
        r = hessian.lanczos_quadrature(
            model, ce, loader, max_iter=4, num_runs=1, generator=g
        )
        return {"range": list(r.range), "matvecs": r.num_matvecs, **_hvp(r)}
    if row == "surface":
        dirs = D.random_directions(model, generator=g)
        grid = np.linspace(-1, 1, 3 if smoke else 5)
        r = surface.loss_surface(model, ce, loader, dirs, xs=grid, ys=grid, generator=g)
        return {"loss_mean": float(np.mean(r.loss))}
    if row == "scattering":
        r = scattering.scattering(
            model, ce, loader, attack=attacks.PGD(eps=8 / 255, steps=2 if smoke else 5),
            scales=(1e-2,), num_directions=1, generator=g,
        )  # fmt: skip
        return {"points": int(np.size(r.scales))}
    if row == "sharp_worst":
        measure = sharpness.WorstCase(rho=0.05, max_iter=2 if smoke else 5)
        r = measure(model, ce, loader, g)
        return {"sharpness": float(r.value)}
    if row == "sharp_avg":
        measure = sharpness.AverageCase(rho=0.05, num_samples=2 if smoke else 5)
        r = measure(model, ce, loader, g)
        return {"sharpness": float(r.value)}
    raise ValueError(f"unknown row {row!r}; use one of {ROWS}")


def child(row: str, n: int, smoke: bool, width: float) -> dict:
    """Run one (row, N) in this process and return its measurements."""
    import torch

    from landscape import data

    torch.set_num_threads(1)
    model, x, y = _setup(n, smoke, width)
    if row == "evaluate":  # the model's own labels: every point is attacked, at any N
        with torch.no_grad():
            y = torch.cat([model(xb).argmax(1) for xb in x.split(BATCH)])
    loader = data.batches(x, y, batch_size=BATCH)
    gc.collect()
    rss0 = _status_kib("VmRSS")
    reset = _reset_peak()
    w0, c0 = time.perf_counter(), time.process_time()
    out = _analysis(row, model, loader, smoke)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    peak = (
        _status_kib("VmHWM")
        if reset
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    )
    return {
        "row": row,
        "n": n,
        "peak_mib": (peak - rss0) / 1024,
        "rss_before_mib": rss0 / 1024,
        "peak_method": "VmHWM after clear_refs" if reset else "ru_maxrss",
        "cpu_s": cpu,
        "wall_s": wall,
        "load": _bench.load(),
        "result": out,
    }


def table(state: dict, rows, sizes) -> tuple[str, bool]:
    """The Markdown table of the finished rows and whether every row meets the goal."""
    lo, hi = min(sizes), max(sizes)
    head = (
        "| row | "
        + " | ".join(f"peak MiB N={n}" for n in sizes)
        + f" | peak {hi}/{lo} | "
        + " | ".join(f"CPU s N={n}" for n in sizes)
        + " | CPU/N ratio to N="
        + str(lo)
        + " | wall s (largest N) |"
    )
    lines = [head, "|" + "---|" * (len(sizes) * 2 + 4)]
    ok = True
    for row in rows:
        got = {n: state.get(f"{row}:{n}") for n in sizes}
        peak = [f"{got[n]['peak_mib']:.1f}" if got[n] else "-" for n in sizes]
        cpu = [f"{got[n]['cpu_s']:.1f}" if got[n] else "-" for n in sizes]
        ratio, lin = "-", "-"
        if got[lo] and got[hi]:
            r = got[hi]["peak_mib"] / max(got[lo]["peak_mib"], 1.0)
            ratio = f"{r:.2f}" + (" **miss**" if r > GOAL else "")
            ok &= r <= GOAL
        if got[lo]:
            per = got[lo]["cpu_s"] / lo
            lin = " / ".join(
                f"{got[n]['cpu_s'] / n / per:.2f}" if got[n] else "-" for n in sizes
            )
        wall = f"{got[hi]['wall_s']:.0f}" if got[hi] else "-"
        lines.append(
            f"| {row} | "
            + " | ".join(peak)
            + f" | {ratio} | "
            + " | ".join(cpu)
            + f" | {lin} | {wall} |"
        )
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    p.add_argument("--sizes", nargs="+", type=int, default=None)
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--state", default=None, help="JSON of finished rows")
    p.add_argument("--rerun", action="store_true", help="run the chosen rows again")
    p.add_argument("--smoke", action="store_true", help="tiny model and data (seconds)")
    p.add_argument("--child", nargs=2, metavar=("ROW", "N"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child[0], int(a.child[1]), a.smoke, a.width)))
        return 0
    sizes = a.sizes or ((16, 64) if a.smoke else SIZES)
    default = "runs/bench_scale/" + ("smoke.json" if a.smoke else "state.json")
    path = Path(a.state or default)
    state = json.loads(path.read_text()) if path.exists() and not a.rerun else {}
    if a.rerun and path.exists():  # keep the rows not asked for
        state = {
            k: v for k, v in json.loads(path.read_text()).items()
            if k.split(":")[0] not in a.rows or int(k.split(":")[1]) not in sizes
        }  # fmt: skip
    order = sorted(sizes)
    order = order[:1] + order[-1:] + order[1:-1] if len(order) > 2 else order
    for n in order:  # smallest and largest N of every row first: the goal early
        for row in a.rows:
            key = f"{row}:{n}"
            if key in state:
                continue
            if a.smoke:  # in this process: seconds, not one torch import per row
                state[key] = child(row, n, True, a.width)
            else:
                cmd = [
                    sys.executable,
                    __file__,
                    "--child",
                    row,
                    str(n),
                    "--width",
                    str(a.width),
                ]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(f"{key}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
                    return 1
                state[key] = json.loads(proc.stdout.strip().splitlines()[-1])
            s = state[key]
            print(
                f"{key}: peak +{s['peak_mib']:.1f} MiB, CPU {s['cpu_s']:.1f} s, wall "
                f"{s['wall_s']:.1f} s, load {s['load']}",
                flush=True,
            )
            _bench.save_json(path, state)
    text, ok = table(state, a.rows, sizes)
    print(text)
    print(
        f"memory goal (peak at N={max(sizes)} <= {GOAL}x N={min(sizes)}): "
        + ("met" if ok else "MISSED")
    )
    return 0


if __name__ == "__main__":
    if "--child" in sys.argv:  # one JSON line on stdout, nothing else
        raise SystemExit(main())
    _bench.run(main)

"""Certified bounds (``landscape.certify``) against auto_LiRPA 0.3 and the dense-matrix
version this package had before, on an MNIST MLP and a small MNIST CNN.

    python benchmarks/bench_certify.py [--quick] [--lirpa-python PATH]

Both models (``_lirpa_certify.ARCHS``: 784-100-10 MLP; conv 16 4x4/2, conv 32 4x4/2,
fc 100, fc 10) are PGD-trained here at eps 0.1 (MNIST, 6,000 images, cached in
``data/bench_certify/``). On ``--points`` test images (50, a stratified subset; the
correctly classified ones) the script prints, per model:

- CPU seconds of CROWN's margin bounds at eps 0.01 (one torch thread, median of
  ``--repeats``): ours (float64, convolutions as convolutions), the dense-matrix
  version (the package's previous algorithm: every layer a dense matrix, CROWN on
  every neuron; run once), and auto_LiRPA's ``compute_bounds(method="CROWN")``
  (float32, its default patches mode, and float64) when ``--lirpa-python`` names an
  interpreter with auto_LiRPA (``_lirpa_certify.py --patch`` makes 0.3 run with torch
  2.13), else the anchor recorded in issue 29 (1.4 s for 50 points);
- certified accuracy per eps for IBP with subtracted logit intervals (this package's
  IBP before), IBP with the margin folded into the last layer (ours now, and
  auto_LiRPA's) and CROWN (ours, auto_LiRPA's), and how far auto_LiRPA's margin lower
  bounds lie above and below ours (float32: its rounding, ~1e-5; float64: ~1e-14).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))

import _bench  # noqa: E402
import _lirpa_certify as lirpa  # noqa: E402
from _helpers import dense_backsub  # noqa: E402  (tests/: the dense CROWN step)

from landscape import certify, data  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ANCHOR_S = 1.4  # auto_LiRPA CROWN, 50 points, the CNN of issue 29 (its filer's machine)
EPS = (0.01, 0.02, 0.05)


def _train(arch: str, x, y, *, eps=0.1, epochs=4, steps=5, seed=0):
    """PGD-``steps`` adversarial training (Adam 1e-3, batch 64), eps ramped from 0
    over the first half of the epochs."""
    torch.manual_seed(seed)
    net = lirpa.ARCHS[arch]()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    g = torch.Generator().manual_seed(seed)
    n = len(x)
    total = epochs * ((n + 63) // 64)
    it = 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, 64):
            xb, yb = x[perm[i : i + 64]], y[perm[i : i + 64]]
            e = eps * min(1.0, it / (total / 2))
            it += 1
            xa = xb.clone()
            if e > 0:
                xa = (xb + e * (2 * torch.rand(xb.shape, generator=g) - 1)).clamp(0, 1)
                for _ in range(steps):
                    xa.requires_grad_(True)
                    (grad,) = torch.autograd.grad(F.cross_entropy(net(xa), yb), xa)
                    step = xa.detach() + 2.5 * e / steps * grad.sign()
                    xa = torch.min(torch.max(step, xb - e), xb + e).clamp(0, 1)
            opt.zero_grad()
            F.cross_entropy(net(xa.detach()), yb).backward()
            opt.step()
    return net.eval()


def _model(arch: str, x, y):
    path = ROOT / "data" / "bench_certify" / f"{arch}.pt"
    net = lirpa.ARCHS[arch]()
    if path.exists():
        net.load_state_dict(torch.load(path, weights_only=True))
        return net.eval()
    net = _train(arch, x, y)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(net.state_dict(), tmp)
    os.replace(tmp, path)
    return net


# ----------------------------------------------------------------- the dense version
def _dense_layers(net, x):
    """The previous algorithm's network: dense (W, b) between ReLUs, read by probing
    (here a float64 copy) with unit vectors."""
    import copy

    net64 = copy.deepcopy(net).double()
    groups, cur = [], []
    for m in net64:
        if isinstance(m, torch.nn.ReLU):
            groups.append(cur)
            cur = []
        else:
            cur.append(m)
    groups.append(cur)
    shape, out = tuple(x.shape[1:]), []
    for layers in groups:
        d = int(torch.tensor(shape).prod())
        h1 = torch.eye(d, dtype=torch.float64).view(d, *shape)
        h0 = torch.zeros(1, *shape, dtype=torch.float64)
        with torch.no_grad():
            for m in layers:
                h0, h1 = m(h0), m(h1)
        b = h0.flatten(1)[0]
        out.append(((h1.flatten(1) - b).T.contiguous(), b))
        shape = tuple(h0.shape[1:])
    return out


def _dense_crown_margins(layers, x, y, eps):
    """CROWN on dense matrices, every neuron of every layer (the previous code)."""
    x = x.flatten(1).double()
    lo_in, hi_in = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    n = len(x)

    def backsub(k, lam, relax):
        return dense_backsub(layers, k, lam, relax, lo_in, hi_in)

    relax = []
    for k in range(len(layers) - 1):
        eye = torch.eye(layers[k][0].shape[0], dtype=torch.float64).expand(n, -1, -1)
        lo = backsub(k, eye, relax)
        hi = -backsub(k, -eye, relax)
        relax.append(_relu_relax(lo, hi))
    k_out = layers[-1][0].shape[0]
    spec = torch.eye(k_out, dtype=torch.float64)
    spec = spec[y].unsqueeze(1) - spec.unsqueeze(0)
    return backsub(len(layers) - 1, spec, relax)


def _relu_relax(lo, hi):
    unstable = (lo < 0) & (hi > 0)
    active = (lo >= 0).double()
    den = torch.where(unstable, hi - lo, torch.ones_like(hi))
    up = torch.where(unstable, hi / den, active)
    icpt = torch.where(unstable, -up * lo, torch.zeros_like(lo))
    low = torch.where(unstable, (hi >= -lo).double(), active)
    return low, up, icpt


# ----------------------------------------------------------------------- measurement
def _cpu(fn, repeats):
    out = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        out.append(time.process_time() - t0)
    return out


def _certified(lower) -> float:
    return 100.0 * float((lower > 0).all(1).double().mean())


def _others(m: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, K) margins -> (N, K - 1) without the column ``y`` (auto_LiRPA's rows)."""
    keep = torch.ones_like(m, dtype=torch.bool)
    keep[torch.arange(len(y)), y] = False
    return m[keep].view(len(y), -1)


def _run_lirpa(python, arch, net, x, y, repeats):
    with tempfile.TemporaryDirectory() as d:
        job, out = Path(d) / "job.pt", Path(d) / "out.json"
        torch.save(
            {"arch": arch, "state": net.state_dict(), "x": x, "y": y,
             "eps": list(EPS), "repeats": repeats, "threads": 1},
            job,
        )  # fmt: skip
        side = Path(__file__).resolve().parent / "_lirpa_certify.py"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        subprocess.run([python, str(side), str(job), str(out)], check=True, env=env)
        return json.loads(out.read_text())


def bench(arch, net, x, y, args) -> dict:
    """Times and certified accuracies of one model on the points (x, y)."""
    with torch.no_grad():
        clean = net(x).argmax(1) == y
    x, y = x[clean], y[clean]  # certify correctly classified points only
    row = {"model": arch, "points": len(x), "of": len(clean)}
    e0 = EPS[0]

    def ours():
        return certify.margin_bounds(net, x, y, eps=e0)

    ours_s = _cpu(ours, args.repeats)
    lirpa_res = None
    if args.lirpa_python:
        lirpa_res = _run_lirpa(args.lirpa_python, arch, net, x, y, args.repeats)
        ours_s += _cpu(ours, args.repeats)  # again after, against drift in load
    row["ours_s"] = statistics.median(ours_s)
    if not args.no_dense:
        layers = _dense_layers(net, x)
        row["dense_s"] = _cpu(lambda: _dense_crown_margins(layers, x, y, e0), 1)[0]
        dense = _dense_crown_margins(layers, x, y, e0)
        ref = _others(ours(), y)
        row["dense_vs_ours"] = float((ref - _others(dense, y)).min())
    if lirpa_res is not None:
        for dt in ("float32", "float64"):
            sec = lirpa_res[f"CROWN {e0} {dt}"]["seconds"]
            row[f"lirpa_s {dt}"] = statistics.median(sec)
    row["ibp_s"] = statistics.median(
        _cpu(lambda: certify.margin_bounds(net, x, y, eps=e0, method="ibp"), 3)
    )
    for e in EPS:
        lo, hi = certify.logit_bounds(net, x, eps=e, method="ibp")
        loose = lo.gather(1, y.view(-1, 1)) - hi
        row[f"ibp_sub {e}"] = _certified(_others(loose, y))
        ibp = certify.margin_bounds(net, x, y, eps=e, method="ibp")
        row[f"ibp {e}"] = _certified(ibp)
        crown = certify.margin_bounds(net, x, y, eps=e)
        row[f"crown {e}"] = _certified(crown)
        if lirpa_res is None:
            continue
        for meth, ours_m in (("IBP", ibp), ("CROWN", crown)):
            for dt in ("float32", "float64"):
                lb = lirpa_res[f"{meth} {e} {dt}"]["lower"]
                lb = torch.tensor(lb, dtype=torch.float64)
                row[f"lirpa_{meth.lower()} {e} {dt}"] = _certified(lb)
                diff = lb - _others(ours_m, y)
                row[f"lirpa_above {meth.lower()} {e} {dt}"] = float(diff.max())
                row[f"lirpa_below {meth.lower()} {e} {dt}"] = float(-diff.min())
    return row


def _print(rows):
    print("\nCROWN margin bounds at eps 0.01, CPU seconds (one thread)")
    print("| model | points | ours (float64) | dense version | auto_LiRPA float32 | "
          "auto_LiRPA float64 | ours / auto_LiRPA float32 (goal <= 2) | "
          "dense / ours |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        f32 = r.get("lirpa_s float32", ANCHOR_S)
        tag = "" if "lirpa_s float32" in r else " (anchor)"
        f64 = r.get("lirpa_s float64", float("nan"))
        dense = r.get("dense_s", float("nan"))
        print(
            f"| {r['model']} | {r['points']}/{r['of']} | {r['ours_s']:.3f} | "
            f"{dense:.2f} | {f32:.3f}{tag} | {f64:.3f} | {r['ours_s'] / f32:.2f} | "
            f"{dense / r['ours_s']:.0f}x |"
        )
    print("\ncertified accuracy, % of the correctly classified points "
          "(auto_LiRPA: float32 / float64)")  # fmt: skip
    print("| model | eps | IBP subtracted | IBP folded | auto_LiRPA IBP | CROWN | "
          "auto_LiRPA CROWN |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    nan = float("nan")
    for r in rows:
        for e in EPS:
            li = [r.get(f"lirpa_ibp {e} {d}", nan) for d in ("float32", "float64")]
            lc = [r.get(f"lirpa_crown {e} {d}", nan) for d in ("float32", "float64")]
            print(
                f"| {r['model']} | {e} | {r[f'ibp_sub {e}']:.1f} | {r[f'ibp {e}']:.1f} | "
                f"{li[0]:.1f} / {li[1]:.1f} | {r[f'crown {e}']:.1f} | "
                f"{lc[0]:.1f} / {lc[1]:.1f} |"
            )
    print("\nmargin lower bounds, auto_LiRPA's minus ours: largest above / below")
    print("| model | eps | IBP float32 | IBP float64 | CROWN float32 | CROWN float64 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        for e in EPS:
            cells = []
            for m in ("ibp", "crown"):
                for d in ("float32", "float64"):
                    a = r.get(f"lirpa_above {m} {e} {d}", nan)
                    b = r.get(f"lirpa_below {m} {e} {d}", nan)
                    cells.append(f"{a:.1e} / {b:.1e}")
            print(f"| {r['model']} | {e} | " + " | ".join(cells) + " |")
    for r in rows:
        if "dense_vs_ours" in r:
            print(
                f"{r['model']}: ours minus the dense version's CROWN margin bound, "
                f"smallest {r['dense_vs_ours']:.2e}"
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10 points, 1 repeat")
    p.add_argument("--points", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--lirpa-python", help="an interpreter that imports auto_LiRPA")
    p.add_argument("--no-dense", action="store_true", help="skip the dense version")
    p.add_argument("--models", default="mlp,cnn")
    args = p.parse_args(argv)
    if args.quick:
        args.points, args.repeats = 10, 1
    torch.set_num_threads(1)
    x, y = data.load_dataset("mnist", num_samples=6000)
    xt, yt = data.load_dataset("mnist", split="test", num_samples=args.points)
    rows = []
    for arch in args.models.split(","):
        net = _model(arch, x, y)
        rows.append(bench(arch, net, xt, yt, args))
    _print(rows)
    return 0


if __name__ == "__main__":
    _bench.run(main)

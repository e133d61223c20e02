"""What one published-size model costs on this machine: the primitives the report is
made of, on a random-weight zoo model (WRN-28-10 by default) and a report-sized batch.

Each primitive runs in a fresh process (so its peak resident memory is its own) on
``--num-samples`` CIFAR images (the JPEG copy), after one warm-up call:

- forward: the logits, no graph (the anchor);
- gradient: loss and backward through the weights;
- HVP: one Hessian-vector product of ``landscape.hessian.hvp`` (one batch, double
  backward, ``check_deterministic=False``), the unit of every curvature estimate;
- PGD step: one input-gradient step of an attack (``attacks.PGD(steps=1)``);
- setup: the process with the model built and the images loaded, nothing run (its RSS
  is the floor under the others').

Printed: CPU and wall seconds, the ratio to the forward pass, the peak RSS, and the
report's curvature section projected from its Hessian-vector-product count (the
``quick`` budget used 142: 49 + 53 for the clean and adversarial top-3, 2 x 20 for the
density, on the WRN-10-1 report of the same code). The machine is shared: read CPU
times and ratios.

    python benchmarks/bench_zoo_model.py                       # WRN-28-10, 128 images
    python benchmarks/bench_zoo_model.py --model Wong2020Fast --num-samples 32
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import torch
    from landscape import attacks, data, hessian, models
    op, name, n, root = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    torch.manual_seed(0)
    model = models.build(name).eval()
    g = torch.Generator().manual_seed(0)
    x, y = data.load_dataset("cifar10-jpeg", root, split="train", num_samples=n,
                             generator=g)
    loss_fn = torch.nn.CrossEntropyLoss()
    v = [torch.randn_like(p) for p in model.parameters()]
    vec = torch.cat([t.flatten() for t in v])

    def run():
        if op == "setup":
            pass
        elif op == "forward":
            with torch.no_grad():
                model(x)
        elif op == "gradient":
            model.zero_grad()
            loss_fn(model(x), y).backward()
        elif op == "hvp":
            hessian.hvp(model, loss_fn, [(x, y)], vec, check_deterministic=False)
        elif op == "pgd-step":
            attacks.PGD(eps=8 / 255, steps=1)(model, x, y, generator=g)

    run()  # warm-up (allocator, oneDNN kernels)
    t, c = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"wall": wall, "cpu": cpu, "rss_gib": rss, "params": params}))
    """
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="Carmon2019Unlabeled", help="a zoo name")
    p.add_argument("--num-samples", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--root", default=os.environ.get("LANDSCAPE_DATA"))
    p.add_argument(
        "--hvps", type=int, default=142, help="HVPs of the curvature section"
    )
    args = p.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(REPO)}
    rows = {}
    for op in ("setup", "forward", "gradient", "hvp", "pgd-step"):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, op, args.model, str(args.num_samples),
             str(args.root)],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        if out.returncode:
            print(f"{op}: failed\n{out.stderr[-2000:]}")
            return 1
        rows[op] = json.loads(out.stdout.strip().splitlines()[-1])
    params = rows["forward"]["params"]
    print(
        f"{args.model} ({params:,} parameters), {args.num_samples} CIFAR images, "
        f"{args.threads} thread(s); peak RSS of a fresh process per primitive"
    )
    base = rows["forward"]["cpu"]
    print(f"{'':10} {'CPU s':>9} {'wall s':>9} {'x forward':>10} {'peak RSS GiB':>13}")
    for op, r in rows.items():
        ratio = f"{r['cpu'] / base:10.2f}" if op != "setup" else f"{'':10}"
        print(f"{op:10} {r['cpu']:9.2f} {r['wall']:9.2f} {ratio} {r['rss_gib']:13.2f}")
    hvp = rows["hvp"]["cpu"]
    print(
        f"curvature section of the quick budget (~{args.hvps} HVPs): "
        f"~{args.hvps * hvp / 3600:.1f} CPU hours at this HVP cost"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: where does multiplying a block of vectors at once (vmap) pay for HVPs?

Run: ``python benchmarks/bench_hvp_batching.py`` (``--quick``: fewer repeats).

For models of several sizes (random inputs of MNIST shape, 256 images as one batch,
one torch thread), the cost per vector of

- ``graph``: one double backward per vector through the cached gradient graph (what
  ``mode="auto"`` uses for single vectors: Lanczos, power iteration);
- ``vmap-jvp``: ``vmap(jvp(grad))`` over a block of 8 vectors (forward-over-reverse,
  the forward pass shared by the block), per vector;
- ``batched-dbl``: ``autograd.grad(..., is_grads_batched=True)`` over 8 vectors
  (recomputed graph), per vector;

in units of one gradient (forward + backward of the same loss). Timings are CPU time
of this process, interleaved over repeats, medians; the machine load (``uptime``) is
printed with them. The result decides ``HessianOperator``'s ``auto`` block rule.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import _bench
import torch
from torch import nn

from landscape import hessian

warnings.filterwarnings("ignore", message=".*create_graph=True.*")


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(c)
        self.c2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(c)

    def forward(self, x):
        h = torch.relu(self.b1(self.c1(x)))
        return torch.relu(x + self.b2(self.c2(h)))


def bn_resnet(width: int = 8) -> nn.Module:
    """A small BatchNorm + residual CNN for 1x28x28 inputs (the curvature benches')."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        _Block(width),
        nn.AvgPool2d(2),
        _Block(width),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * width, 10),
    )


def _models() -> dict[str, nn.Module]:
    def mlp(h: int) -> nn.Module:
        return nn.Sequential(
            nn.Flatten(), nn.Linear(784, h), nn.Tanh(), nn.Linear(h, 10)
        )

    from landscape import models

    return {
        "mlp-4": mlp(4),
        "mlp-32": mlp(32),
        "mlp-256": mlp(256),
        "bn-resnet-8": bn_resnet(8),
        "bn-resnet-16": bn_resnet(16),
        "lenet": models.build("lenet", hidden_size=1024),
    }


def _cpu(fn, reps: int) -> list[float]:
    """CPU seconds of this process per call."""
    return _bench.times(fn, reps, clock=time.process_time)


def measure(model: nn.Module, dtype: torch.dtype, reps: int, n: int = 256) -> dict:
    """Per-vector costs (in gradients) of the three formulations on one model."""
    torch.manual_seed(0)
    model = model.to(dtype).eval()
    x = torch.rand(n, 1, 28, 28, dtype=dtype)
    y = torch.randint(0, 10, (n,))
    data = [(x, y)]
    lf = nn.CrossEntropyLoss()
    ops = {
        "graph": hessian.HessianOperator(model, lf, data, mode="graph"),
        "vmap-jvp": hessian.HessianOperator(model, lf, data, mode="jvp"),
        "batched-dbl": hessian.HessianOperator(model, lf, data, mode="recompute"),
    }
    dim = ops["graph"].dim
    V = torch.randn(8, dim, dtype=dtype)
    ops["graph"].matvec(V[0])  # build the cached graph outside the timing
    params = [p for p in model.parameters()]

    def grad():
        loss = lf(model(x), y)
        torch.autograd.grad(loss, params)

    times: dict[str, list[float]] = {k: [] for k in ("grad", *ops)}
    for _ in range(reps):  # interleaved
        times["grad"] += _cpu(grad, 1)
        times["graph"] += [t / 8 for t in _cpu(lambda: ops["graph"].matmat(V), 1)]
        for k in ("vmap-jvp", "batched-dbl"):
            times[k] += [t / 8 for t in _cpu(lambda k=k: ops[k].matmat(V), 1)]
    g = statistics.median(times["grad"])
    out = {"dim": dim, "grad_ms": 1e3 * g}
    for k in ops:
        out[k] = statistics.median(times[k]) / g
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    dtype = getattr(torch, args.dtype)
    reps = 3 if args.quick else 7
    print(f"{args.dtype}, 256 images, 1 thread; cost per vector in gradients")
    print(
        f"{'model':<14}{'params':>9}{'grad ms':>9}{'graph':>8}{'vmap-jvp':>10}"
        f"{'batched-dbl':>13}{'vmap/graph':>12}"
    )
    for name, model in _models().items():
        r = measure(model, dtype, reps)
        print(
            f"{name:<14}{r['dim']:>9,}{r['grad_ms']:>9.2f}{r['graph']:>8.2f}"
            f"{r['vmap-jvp']:>10.2f}{r['batched-dbl']:>13.2f}"
            f"{r['vmap-jvp'] / r['graph']:>12.2f}"
        )
    return 0


if __name__ == "__main__":
    _bench.run(main)

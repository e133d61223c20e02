"""The auto_LiRPA side of ``bench_certify.py``: run by another interpreter (a venv with
auto_LiRPA 0.3 patched for torch 2.13 and numpy 2), it imports only torch and
auto_LiRPA.

    python _lirpa_certify.py --patch        # once: patch the installed auto_LiRPA
    python _lirpa_certify.py JOB.pt OUT.json

``JOB.pt`` holds ``arch`` (a name in :data:`ARCHS`), ``state`` (its state_dict),
``x``, ``y``, ``eps`` (a list), ``repeats`` and ``threads``; ``OUT.json`` gets, per
method (IBP, CROWN), eps and dtype (the model and data in float32, auto_LiRPA's
usual, and in float64), the margin lower bounds (N, K - 1: the classes other than
``y`` in order) and the CPU seconds of each repeat of ``compute_bounds``.
"""

from __future__ import annotations

import json
import sys
import time

import torch
from torch import nn


def mlp() -> nn.Sequential:
    """784-100-10 ReLU MLP on MNIST."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10)
    )


def cnn() -> nn.Sequential:
    """Small MNIST CNN (Wong & Kolter's): conv 16 4x4/2, conv 32 4x4/2, fc 100, fc 10."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 4, 2, 1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 4, 2, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 100),
        nn.ReLU(),
        nn.Linear(100, 10),
    )


ARCHS = {"mlp": mlp, "cnn": cnn}


def margin_rows(y: torch.Tensor, k: int) -> torch.Tensor:
    """``e_y - e_j`` for the classes ``j != y``: (N, K - 1, K)."""
    eye = torch.eye(k)
    rows = eye[y].unsqueeze(1) - eye.unsqueeze(0)  # (N, K, K), row y is zero
    keep = torch.ones(len(y), k, dtype=torch.bool)
    keep[torch.arange(len(y)), y] = False
    return rows[keep].view(len(y), k - 1, k)


#: (file, old, new): what auto_LiRPA 0.3 (its only PyPI release, for torch < 1.13)
#: needs to import and trace with torch 2.13 and numpy 2
PATCHES = [
    ("operators/base.py", "from numpy.lib.arraysetops import isin",
     "from numpy import isin"),
    ("bound_general.py", "torch._six.string_classes", "str"),
    ("parse_graph.py", "from torch.onnx.utils import _optimize_graph",
     "from torch.onnx._internal.torchscript_exporter.utils import _optimize_graph"),
    ("parse_graph.py", "from torch.onnx.symbolic_helper import _set_opset_version\n",
     "from torch.onnx._internal.torchscript_exporter._globals import GLOBALS\n\n\n"
     "def _set_opset_version(v):\n    GLOBALS.export_onnx_opset_version = v\n"),
    ("parse_graph.py", "attrs = {k: n[k] for k in n.attributeNames()}",
     "attrs = {k: getattr(n, n.kindOf(k))(k) for k in n.attributeNames()}"),
]  # fmt: skip


def patch(root: str) -> None:
    """Apply :data:`PATCHES` to the auto_LiRPA package folder ``root`` (idempotent)."""
    import os

    for name, old, new in PATCHES:
        path = os.path.join(root, name)
        with open(path) as f:
            text = f.read()
        if old in text:
            with open(path, "w") as f:
                f.write(text.replace(old, new))
        elif new not in text:
            raise SystemExit(f"{path}: {old!r} not found (not auto_LiRPA 0.3?)")


def main(argv: list[str]) -> int:
    if argv == ["--patch"]:
        import importlib.util
        import os

        spec = importlib.util.find_spec("auto_LiRPA")
        if spec is None or spec.origin is None:
            raise SystemExit("auto_LiRPA is not installed in this interpreter")
        patch(os.path.dirname(spec.origin))
        return 0
    from auto_LiRPA import BoundedModule, BoundedTensor
    from auto_LiRPA.perturbations import PerturbationLpNorm

    job = torch.load(argv[0], weights_only=True)
    torch.set_num_threads(int(job["threads"]))
    out = {}
    for dtype in (torch.float32, torch.float64):
        net = ARCHS[job["arch"]]()
        net.load_state_dict(job["state"])
        net = net.to(dtype).eval()
        x, y = job["x"].to(dtype), job["y"]
        bm = BoundedModule(net, torch.zeros_like(x[:1]))
        c = margin_rows(y, 10).to(dtype)
        for eps in job["eps"]:
            ptb = PerturbationLpNorm(
                norm=float("inf"),
                eps=eps,
                x_L=(x - eps).clamp(0, 1),
                x_U=(x + eps).clamp(0, 1),
            )
            bx = BoundedTensor(x, ptb)
            for method in ("IBP", "CROWN"):
                secs = []
                for _ in range(int(job["repeats"])):
                    t0 = time.process_time()
                    lb, _ = bm.compute_bounds(x=(bx,), C=c, method=method)
                    secs.append(time.process_time() - t0)
                key = f"{method} {eps} {str(dtype).split('.')[-1]}"
                out[key] = {"seconds": secs, "lower": lb.tolist()}
    with open(argv[1], "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

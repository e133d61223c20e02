"""Shared test case: a binary linear classifier with closed-form robust accuracy
and a tiny CNN that records its modes (used by test_attacks.py and test_evaluate.py;
tests/ is on sys.path under pytest)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TwoLogit(nn.Module):
    """Binary linear classifier as two logits [0, w.x + b]: class 1 iff w.x + b > 0."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.lin = nn.Linear(w.numel(), 1).double()
        with torch.no_grad():
            self.lin.weight.copy_(w.view(1, -1))
            self.lin.bias.fill_(b)

    def forward(self, x):
        z = self.lin(x.flatten(1))
        return torch.cat([torch.zeros_like(z), z], dim=1)


def _linear_case(seed=0, n=400, d=16):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    x = 0.3 + 0.4 * torch.rand(n, d, generator=g, dtype=torch.float64)
    b = -float(w @ torch.full((d,), 0.5, dtype=torch.float64))
    model = TwoLogit(w, b)
    z = x @ w + b
    y = (z > 0).long()
    y[:20] = 1 - y[:20]  # a few clean errors
    return model, x, y, w, z


def _closed_form(w, z, y, eps, norm):
    """Exact robust correctness: y_pm * z - eps * ||w||_dual > 0 (box never binds:
    x in [0.3, 0.7] and eps <= 0.2 per coordinate)."""
    s = 2.0 * y.double() - 1
    dual = w.abs().sum() if norm == "linf" else w.norm()
    m = s * z - eps * dual
    return m > 0, m.abs()


class Recorder(nn.Module):
    """Tiny CNN on 1x8x8 images that records the mode of every forward pass."""

    def __init__(self, softmax: bool = False, classes: int = 5):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 16, classes)
        for p in self.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * 0.7)
        self.softmax = softmax
        self.modes: list[bool] = []

    def forward(self, x):
        self.modes.append(self.training)
        h = F.max_pool2d(torch.tanh(self.conv(x)), 2).flatten(1)
        out = self.fc(h)
        return out.softmax(1) if self.softmax else out

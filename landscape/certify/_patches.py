"""Linear-bound coefficients as local windows ("patches", auto_LiRPA's idea).

A bound on one neuron of a convolutional layer, passed backwards through the
convolutions before it, has coefficients only inside the neuron's receptive field.
:class:`Patch` keeps, per (example, row), that window of the node it sits on:
``p`` (N, m, C, kh, kw) with its top-left corner ``(top, left)`` (N, m) in the node's
coordinates (negative or past the edge where the window covers zero padding, whose
entries are kept at zero). Through a convolution the window is the transposed
convolution of the window (no dense map of the layer is formed); through
per-channel scaling and ReLU relaxations the window meets the same window of their
tensors. Anything else (pooling, reshapes, dense layers) takes the dense form
(:meth:`Patch.dense`), as does a window that grows as large as its map.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _ops

__all__ = ["Patch", "add", "start"]


@dataclasses.dataclass
class Patch:
    """Coefficients ``p`` (N, m, C, kh, kw) at ``(top, left)`` (N, m) on a (C, H, W)
    map of spatial size ``hw``."""

    p: Tensor
    top: Tensor
    left: Tensor
    hw: tuple[int, int]

    def _index(self) -> tuple[Tensor, Tensor, tuple[int, int, int, int]]:
        kh, kw = self.p.shape[-2:]
        h, w = self.hw
        pt = max(0, -int(self.top.min()))
        pl = max(0, -int(self.left.min()))
        pb = max(0, int(self.top.max()) + kh - h)
        pr = max(0, int(self.left.max()) + kw - w)
        rows = (self.top + pt).unsqueeze(-1) + torch.arange(kh, device=self.p.device)
        cols = (self.left + pl).unsqueeze(-1) + torch.arange(kw, device=self.p.device)
        wp = w + pl + pr
        flat = rows.unsqueeze(-1) * wp + cols.unsqueeze(-2)  # (N, m, kh, kw)
        return flat, rows, (pl, pr, pt, pb)

    def windows(self, t: Tensor) -> Tensor:
        """The windows of ``t`` (N or 1, C, H, W) under the patch: (N, m, C, kh, kw),
        zero outside the map."""
        n, m, c, kh, kw = self.p.shape
        flat, _, pads = self._index()
        tp = F.pad(t, pads).flatten(2)  # (N', C, Hp * Wp)
        tp = tp.expand(n, -1, -1)
        idx = flat.view(n, 1, m * kh * kw).expand(n, tp.shape[1], -1)
        out = tp.gather(2, idx).view(n, -1, m, kh, kw)
        return out.transpose(1, 2)

    def mask(self) -> Patch:
        """Zero the entries outside the map (they stand on zero padding)."""
        kh, kw = self.p.shape[-2:]
        h, w = self.hw
        r = self.top.unsqueeze(-1) + torch.arange(kh, device=self.p.device)
        c = self.left.unsqueeze(-1) + torch.arange(kw, device=self.p.device)
        mh = ((r >= 0) & (r < h)).to(self.p.dtype)
        mw = ((c >= 0) & (c < w)).to(self.p.dtype)
        keep = mh.unsqueeze(-1) * mw.unsqueeze(-2)  # (N, m, kh, kw)
        return dataclasses.replace(self, p=self.p * keep.unsqueeze(2))

    def dense(self) -> Tensor:
        """The same coefficients on the whole map: (N, m, C, H, W)."""
        n, m, c, kh, kw = self.p.shape
        h, w = self.hw
        flat, _, (pl, pr, pt, pb) = self._index()
        hp, wp = h + pt + pb, w + pl + pr
        out = self.p.new_zeros(n * m, c, hp * wp)
        idx = flat.view(n * m, 1, kh * kw).expand(-1, c, -1)
        out.scatter_(2, idx, self.p.reshape(n * m, c, kh * kw))
        out = out.view(n, m, c, hp, wp)
        return out[..., pt : pt + h, pl : pl + w]

    def scale(self, s: Tensor) -> Patch:
        return dataclasses.replace(self, p=self.p * s)

    def sum_dot(self, t: Tensor) -> Tensor:
        """``sum p * t`` per row for a per-channel ``t`` (C,): (N, m)."""
        return self.p.sum((3, 4)) @ t


def start(rows: Tensor, signs: Tensor, shape: tuple[int, ...]) -> Patch:
    """One-hot coefficients ``signs`` at the flat neuron indices ``rows`` (N, m) of a
    (C, H, W) node: 1 x 1 windows."""
    c, h, w = shape
    n, m = rows.shape
    p = signs.new_zeros(n, m, c, 1, 1)
    ch, pos = rows // (h * w), rows % (h * w)
    p.view(n, m, c).scatter_(2, ch.unsqueeze(-1), signs.unsqueeze(-1))
    return Patch(p, pos // w, pos % w, (h, w))


def conv_back(op: _ops.Conv, lam: Patch, in_hw: tuple[int, int]) -> Patch | Tensor:
    """``lam`` (on the convolution's output) passed back through it."""
    n, m, c, kh, kw = lam.p.shape
    q = F.conv_transpose2d(
        lam.p.reshape(n * m, c, kh, kw), op.weight, None, op.stride, 0, 0,
        op.groups, op.dilation,
    )  # fmt: skip
    q = q.view(n, m, *q.shape[1:])
    top = lam.top * op.stride[0] - op.padding[0]
    left = lam.left * op.stride[1] - op.padding[1]
    out = Patch(q, top, left, in_hw).mask()
    if q.shape[-2] * q.shape[-1] >= in_hw[0] * in_hw[1]:
        return out.dense()
    return out


def per_channel(op: _ops.Op) -> bool:
    """Whether a :class:`_ops.Scale` scales and shifts whole channels."""
    return all(
        t.dim() == 0 or (t.dim() == 3 and tuple(t.shape[1:]) == (1, 1))
        for t in (op.scale, op.shift)
    )


def scale_back(op: _ops.Scale, lam: Patch) -> tuple[Patch, Tensor]:
    """Through a per-channel scaling: (coefficients, constant)."""
    c = lam.p.shape[2]
    s = op.scale.reshape(-1).expand(c)
    b = op.shift.reshape(-1).expand(c)
    return lam.scale(s.view(1, 1, c, 1, 1)), lam.sum_dot(b)


def relu_back(lam: Patch, relax) -> tuple[Patch, Tensor]:
    """Through a ReLU relaxation (see :meth:`_ops.ReLU.back`)."""
    low, up, icpt = (lam.windows(t) for t in relax)
    pos, neg = lam.p.clamp_min(0), lam.p.clamp_max(0)
    const = (neg * icpt).flatten(2).sum(2)
    return dataclasses.replace(lam, p=pos * low + neg * up), const


def add(a: Patch | Tensor, b: Patch | Tensor) -> Patch | Tensor:
    """The sum of two coefficient sets on the same node: a patch if their windows
    keep a fixed offset (same strides on both paths), else dense."""
    if isinstance(a, Patch) and isinstance(b, Patch):
        dt, dl = b.top - a.top, b.left - a.left
        if bool((dt == dt.flatten()[0]).all()) and bool((dl == dl.flatten()[0]).all()):
            dt0, dl0 = int(dt.flatten()[0]), int(dl.flatten()[0])
            ah, aw = a.p.shape[-2:]
            bh, bw = b.p.shape[-2:]
            t0, l0 = min(0, dt0), min(0, dl0)
            h = max(ah, dt0 + bh) - t0
            w = max(aw, dl0 + bw) - l0
            pa = F.pad(a.p, (-l0, w - aw + l0, -t0, h - ah + t0))
            pb = F.pad(b.p, (dl0 - l0, w - bw - dl0 + l0, dt0 - t0, h - bh - dt0 + t0))
            return Patch(pa + pb, a.top + t0, a.left + l0, a.hw)
    da = a.dense() if isinstance(a, Patch) else a
    db = b.dense() if isinstance(b, Patch) else b
    return da + db

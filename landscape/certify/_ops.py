"""The operations of a :class:`~._graph.BoundGraph`, each with what bound propagation
needs, never as a dense matrix:

- linear operations (``Dense``, ``Conv``, ``ConvTranspose``, ``Scale``, ``Reshape``,
  ``Pool``): ``forward``; ``radius`` (``|A| r``, interval propagation); ``back``
  (``lam A``, the coefficients of a linear bound passed backwards: a convolution's
  is ``conv_transpose``, a transposed convolution's is ``conv``); ``bias_dot``
  (``<lam, b>``); ``sq`` (``(A * A) v``, the exact radius of an L2 ball's image;
  ``None`` where not implemented);
- ``Sum``: ``sum_i c_i x_i`` of several nodes (residual additions);
- ``ReLU`` and ``MaxPool``: ``ibp`` (interval image), ``relax`` (linear bounds from
  the input's interval) and ``back`` (a linear bound passed through the relaxation).

Every tensor is float64; shapes are ``(batch, *shape)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Conv",
    "ConvTranspose",
    "Dense",
    "Input",
    "MaxPool",
    "Op",
    "Pool",
    "ReLU",
    "Reshape",
    "Scale",
    "Sum",
]


class Op:
    """Base class. ``kind``: ``"input"``, ``"linear"``, ``"sum"`` or ``"nonlinear"``;
    ``elementwise``: a linear map that sends each coordinate to one coordinate (a box
    to a box, exactly)."""

    kind = "linear"
    elementwise = False
    sq: Callable[[Tensor], Tensor] | None = None

    def forward(self, *xs: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class Input(Op):
    """The network's input."""

    kind = "input"
    elementwise = True


class _Weighted(Op):
    """A linear operation with a weight and a bias: ``forward``, ``radius`` and ``sq``
    are its map ``_apply(x, w, b)`` with the weight, its absolute value (no bias) and
    its square (no bias)."""

    def __init__(self, weight: Tensor, bias: Tensor | None):
        self.weight, self.bias = weight, bias
        self._abs = weight.abs()

    def _apply(
        self, x: Tensor, w: Tensor, b: Tensor | None = None
    ) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self._apply(x, self.weight, self.bias)

    def radius(self, r: Tensor) -> Tensor:
        return self._apply(r, self._abs)

    def sq(self, v: Tensor) -> Tensor:
        return self._apply(v, self.weight.square())


class Dense(_Weighted):
    """``x W^T + b`` on flat features (``nn.Linear``)."""

    def _apply(self, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        return F.linear(x, w, b)

    def back(self, lam: Tensor) -> Tensor:
        return lam @ self.weight

    def bias_dot(self, lam: Tensor) -> Tensor:
        return lam.new_zeros(lam.shape[0]) if self.bias is None else lam @ self.bias


_CONV = {1: F.conv1d, 2: F.conv2d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d}


class _ConvBase(_Weighted):
    def __init__(self, weight, bias, *, stride, padding, dilation, groups):
        super().__init__(weight, bias)
        self.nd = weight.dim() - 2
        self.stride, self.padding = stride, padding
        self.dilation, self.groups = dilation, groups

    def bias_dot(self, lam: Tensor) -> Tensor:
        if self.bias is None:
            return lam.new_zeros(lam.shape[0])
        return lam.flatten(2).sum(2) @ self.bias


class Conv(_ConvBase):
    """A zero-padded convolution (``nn.Conv1d`` / ``nn.Conv2d``); ``back`` is the
    transposed convolution with the output padding that restores the input shape."""

    def __init__(self, weight, bias, *, in_shape, **kw):
        super().__init__(weight, bias, **kw)
        self.in_shape = tuple(in_shape)

    def _apply(self, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        return _CONV[self.nd](
            x, w, b, self.stride, self.padding, self.dilation, self.groups
        )

    def back(self, lam: Tensor) -> Tensor:
        k = self.weight.shape[2:]
        out = lam.shape[2:]
        opad = tuple(
            self.in_shape[1 + i]
            + 2 * self.padding[i]
            - self.dilation[i] * (k[i] - 1)
            - 1
            - (out[i] - 1) * self.stride[i]
            for i in range(self.nd)
        )
        return _CONV_T[self.nd](
            lam, self.weight, None, self.stride, self.padding, opad, self.groups,
            self.dilation,
        )  # fmt: skip


class ConvTranspose(_ConvBase):
    """A transposed convolution (``nn.ConvTranspose1d`` / ``2d``); ``back`` is the
    convolution with the same settings."""

    def __init__(self, weight, bias, *, output_padding, **kw):
        super().__init__(weight, bias, **kw)
        self.output_padding = output_padding

    def _apply(self, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        return _CONV_T[self.nd](
            x, w, b, self.stride, self.padding, self.output_padding, self.groups,
            self.dilation,
        )  # fmt: skip

    def back(self, lam: Tensor) -> Tensor:
        return _CONV[self.nd](
            lam, self.weight, None, self.stride, self.padding, self.dilation,
            self.groups,
        )  # fmt: skip


class Scale(Op):
    """``x * scale + shift``, both broadcast against one example (BatchNorm in eval
    mode, ``Normalize``, adding a constant)."""

    elementwise = True

    def __init__(self, scale: Tensor, shift: Tensor):
        self.scale, self.shift = scale, shift

    @classmethod
    def per_channel(cls, scale: Tensor, shift: Tensor, in_shape: tuple[int, ...]):
        """One value per channel (dimension 1 of the batch)."""
        view = (-1,) + (1,) * (len(in_shape) - 1)
        return cls(scale.view(view), shift.view(view))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift

    def radius(self, r: Tensor) -> Tensor:
        return r * self.scale.abs()

    def ball(self, s: Tensor) -> Tensor:
        return s * self.scale

    def back(self, lam: Tensor) -> Tensor:
        return (lam * self.scale).expand(lam.shape)

    def bias_dot(self, lam: Tensor) -> Tensor:
        return (lam * self.shift).flatten(1).sum(1)


class Reshape(Op):
    """A change of shape (``Flatten``, ``view``, ``reshape``)."""

    elementwise = True

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)

    @classmethod
    def flatten(cls, in_shape: tuple[int, ...], start_dim: int, end_dim: int):
        """``nn.Flatten(start_dim, end_dim)`` on inputs of ``in_shape``."""
        full = (1, *in_shape)
        s, e = start_dim % len(full), end_dim % len(full)
        if s == 0:
            raise ValueError(
                "certify: a Flatten over the batch dimension has no bounds"
            )
        merged = 1
        for d in full[s : e + 1]:
            merged *= d
        return cls(in_shape, full[1:s] + (merged,) + full[e + 1 :])

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.out_shape)

    def radius(self, r: Tensor) -> Tensor:
        return self.forward(r)

    def ball(self, s: Tensor) -> Tensor:
        return s.expand(1, *self.in_shape).reshape(1, *self.out_shape)

    def back(self, lam: Tensor) -> Tensor:
        return lam.reshape(lam.shape[0], *self.in_shape)

    def bias_dot(self, lam: Tensor) -> Tensor:
        return lam.new_zeros(lam.shape[0])


@dataclasses.dataclass(eq=False)
class Pool(Op):
    """A linear pooling with non-negative weights and no bias (average pooling,
    adaptive average pooling): ``fn(x, **kw)``; ``back`` is its vector-Jacobian
    product."""

    fn: Callable[..., Tensor]
    kw: dict[str, Any]
    in_shape: tuple[int, ...]
    name: str

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x, **self.kw)

    def radius(self, r: Tensor) -> Tensor:
        return self.fn(r, **self.kw)

    def back(self, lam: Tensor) -> Tensor:
        x0 = lam.new_zeros((lam.shape[0], *self.in_shape))
        _, vjp = torch.func.vjp(self.forward, x0)
        return vjp(lam)[0]

    def bias_dot(self, lam: Tensor) -> Tensor:
        return lam.new_zeros(lam.shape[0])


@dataclasses.dataclass(eq=False)
class Sum(Op):
    """``sum_i coefs[i] * x_i`` over the input nodes (a residual addition)."""

    coefs: tuple[float, ...]
    kind = "sum"

    def forward(self, *xs: Tensor) -> Tensor:
        out = self.coefs[0] * xs[0]
        for c, x in zip(self.coefs[1:], xs[1:]):
            out = out + c * x
        return out


class ReLU(Op):
    """``max(x, 0)``. Relaxation (CROWN, Zhang et al. 2018): on an unstable neuron
    (``l < 0 < u``) the chord ``u (x - l) / (u - l)`` above and ``a x`` below, ``a = 1``
    if ``u > -l`` else 0; exact on stable ones."""

    kind = "nonlinear"

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()

    def ibp(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        return lo.relu(), hi.relu()

    def relax(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(lower slope, upper slope, upper intercept), each shaped like ``lo``."""
        active = lo >= 0
        unstable = (lo < 0) & (hi > 0)
        den = torch.where(unstable, hi - lo, torch.ones_like(hi))
        up = torch.where(unstable, hi / den, active.to(lo.dtype))
        icpt = torch.where(unstable, -up * lo, torch.zeros_like(lo))
        low = torch.where(unstable, (hi > -lo).to(lo.dtype), active.to(lo.dtype))
        return low, up, icpt

    def back(self, lam: Tensor, relax) -> tuple[Tensor, Tensor]:
        """Coefficients on the input and the constant of a lower bound of ``lam . y``
        (``lam`` (N, m, *shape))."""
        low, up, icpt = (t.unsqueeze(1) for t in relax)
        pos, neg = lam.clamp_min(0), lam.clamp_max(0)
        const = (neg * icpt).flatten(2).sum(2)
        return pos * low + neg * up, const


@dataclasses.dataclass(eq=False)
class MaxPool(Op):
    """2D max pooling. Relaxation (as auto_LiRPA's): below, the input with the
    largest lower bound ``x_i``; above, ``x_i`` as well where its lower bound is at
    least every other input's upper bound (then the maximum is ``x_i``), else the
    window's largest upper bound. Overlapping windows, padding, dilation and
    ``ceil_mode`` are handled window by window."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    ceil_mode: bool
    kind = "nonlinear"

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.dilation,
            ceil_mode=self.ceil_mode,
        )  # fmt: skip

    def ibp(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        return self.forward(lo), self.forward(hi)

    def _windows(self, t: Tensor, out_hw: tuple[int, int]) -> Tensor:
        """``t`` (N, C, H, W) -> (N, C, kh * kw, Ho * Wo), padding as ``-inf``."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        (ph, pw), (dh, dw) = self.padding, self.dilation
        eh = (out_hw[0] - 1) * sh + dh * (kh - 1) + 1
        ew = (out_hw[1] - 1) * sw + dw * (kw - 1) + 1
        big_h, big_w = max(0, eh - t.shape[2] - ph), max(0, ew - t.shape[3] - pw)
        tp = F.pad(t, (pw, big_w, ph, big_h), value=float("-inf"))[..., :eh, :ew]
        n, c = t.shape[:2]
        cols = F.unfold(tp, (kh, kw), dilation=(dh, dw), stride=(sh, sw))
        return cols.view(n, c, kh * kw, -1)

    def relax(self, lo: Tensor, hi: Tensor):
        """(flat input index of each window's chosen input, whether the window is
        linear, the window's largest upper bound; each (N, C, Ho * Wo)) and the
        input's spatial size."""
        out_hw = tuple(self.forward(lo[:1, :1]).shape[2:])
        lw, hw = self._windows(lo, out_hw), self._windows(hi, out_hw)
        best, j = lw.max(2)
        top = hw.max(2).values
        others = hw.scatter(2, j.unsqueeze(2), float("-inf")).max(2).values
        linear = best >= others
        kw, (sh, sw) = self.kernel_size[1], self.stride
        (ph, pw), (dh, dw) = self.padding, self.dilation
        wo = out_hw[1]
        pos = torch.arange(j.shape[2], device=j.device)
        row = (pos // wo) * sh - ph + (j // kw) * dh
        col = (pos % wo) * sw - pw + (j % kw) * dw
        index = row * lo.shape[3] + col
        return index, linear, top, tuple(lo.shape[2:])

    def back(self, lam: Tensor, relax) -> tuple[Tensor, Tensor]:
        """As :meth:`ReLU.back`, ``lam`` (N, m, C, Ho, Wo)."""
        index, linear, top, (h, w) = relax
        n, m, c = lam.shape[:3]
        lam = lam.flatten(3)
        pos, neg = lam.clamp_min(0), lam.clamp_max(0)
        lin = linear.unsqueeze(1).to(lam.dtype)
        coef = pos + neg * lin
        const = (neg * (1 - lin) * top.unsqueeze(1)).flatten(2).sum(2)
        out = lam.new_zeros(n, m, c, h * w)
        out.scatter_add_(3, index.unsqueeze(1).expand(n, m, c, -1), coef)
        return out.view(n, m, c, h, w), const

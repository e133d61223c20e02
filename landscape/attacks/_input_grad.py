"""Input-gradient passes for the training attacks: no weight gradients, and on CPU the
input gradient of a stride-1 convolution computed as a forward convolution.

An attack step needs d loss / d x only. Inside :func:`input_grad_mode` every
``conv2d`` of the model sees detached weights (autograd records no path to them) and,
for stride 1, dilation 1 and one group, differentiates its input as the forward
convolution of the output gradient with the flipped, transposed kernel
(``conv_transpose2d`` written as ``conv2d``). PyTorch's CPU backward-data kernels
(im2col + col2im) are 3-6x slower than its forward kernels for the thin convolutions
of LeNet-sized models and 1.2-1.7x slower for 16-64 channels (see
``benchmarks/bench_train.py``). The result is the same gradient up to floating-point
rounding (another summation order), so an attack that takes ``sign(grad)`` may flip
the sign of coordinates whose gradient is within rounding of zero.

A 2x2 / stride-2 max-pooling (LeNet's) of a large input goes through
:func:`landscape._pool.max_pool2d`: the same values and gradients as PyTorch's kernel,
bitwise, in 0.6x its time.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from .._pool import _pair, max_pool2d

__all__ = ["input_grad_mode"]


class _FlippedConv(torch.autograd.Function):
    """``conv2d(x, w, b)`` (stride 1, one group; ``w``, ``b`` detached) whose backward
    gives the input gradient as a forward convolution with the flipped kernel."""

    @staticmethod
    def forward(ctx, x, w, b, padding, w_flip):
        ctx.save_for_backward(w_flip)
        ctx.padding = tuple(w.shape[k] - 1 - p for k, p in zip((2, 3), padding))
        return F.conv2d(x, w, b, 1, padding)

    @staticmethod
    def backward(ctx, grad):
        (w_flip,) = ctx.saved_tensors
        # oneDNN's direct convolution: an all-zero window gives an exact 0 (NNPACK's
        # Winograd transform would not, and sign(grad) would move such pixels).
        prev = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = True
        try:
            gx = F.conv2d(grad, w_flip, None, 1, ctx.padding)
        finally:
            torch.backends.mkldnn.enabled = prev
        return gx, None, None, None, None


class _InputGradMode(TorchFunctionMode):
    """Intercepts ``conv2d`` (detached weights, flipped-kernel input gradients) and
    2x2 ``max_pool2d`` (four strided views)."""

    def __init__(self):
        super().__init__()
        self._flipped: dict[int, Tensor] = {}  # weights are fixed during an attack

    def _flip(self, w: Tensor) -> Tensor:
        if not isinstance(w, nn.Parameter):  # computed weights: no caching
            return w.detach().transpose(0, 1).flip(2, 3).contiguous()
        key = id(w)
        if key not in self._flipped:
            self._flipped[key] = w.detach().transpose(0, 1).flip(2, 3).contiguous()
        return self._flipped[key]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.conv2d:
            out = self._conv(*args, **kwargs)
            if out is not None:
                return out
        elif func is F.max_pool2d:
            out = max_pool2d(*args, **kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)

    def _conv(
        self, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1
    ) -> Tensor | None:
        if not (isinstance(x, Tensor) and x.requires_grad and x.ndim == 4):
            return None
        if _pair(stride) != (1, 1) or _pair(dilation) != (1, 1) or groups != 1:
            return None
        k = tuple(weight.shape[2:])
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if k[0] % 2 == 0 or k[1] % 2 == 0:
                return None
            padding = (k[0] // 2, k[1] // 2)
        pad = _pair(padding)
        if pad is None or not all(0 <= p <= kk - 1 for p, kk in zip(pad, k)):
            return None
        b = None if bias is None else bias.detach()
        return _FlippedConv.apply(x, weight.detach(), b, pad, self._flip(weight))


def input_grad_mode(model: nn.Module, x: Tensor):
    """Context for the forward passes of the input-gradient steps of one attack (see
    the module doc); re-enterable, so one attack builds it once.

    Active on CPU for eager float32 / float64 models outside autocast; elsewhere
    (CUDA, whose cuDNN backward-data kernels are fast, ``torch.compile``, bf16
    autocast) a no-op.
    """
    if (
        x.device.type != "cpu"
        or x.dtype not in (torch.float32, torch.float64)
        or torch.is_autocast_enabled("cpu")
        or hasattr(model, "_orig_mod")  # torch.compile
    ):
        return _NoMode()
    return _InputGradMode()


class _NoMode(contextlib.AbstractContextManager):
    """A re-enterable no-op context."""

    def __exit__(self, *exc) -> None:
        return None

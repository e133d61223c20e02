"""Interval bound propagation and CROWN on an :class:`AffineReLUNet`.

The input set is the L-inf ball intersected with the box ``[0, 1]^d`` (itself a box),
or the L2 ball (the box is dropped there: a sound over-approximation).

- IBP (Gowal et al., 2018): intervals pushed through each layer (``W`` split into
  centre and radius terms).
- CROWN (Zhang et al., 2018, "Efficient neural network robustness certification with
  general activation functions"): linear bounds propagated backwards; each unstable
  ReLU (``l < 0 < u``) is bounded above by the chord ``u (z - l) / (u - l)`` and below
  by ``a z`` with ``a = 1`` if ``u >= -l`` else ``0``; the pre-activation bounds of
  every layer come from CROWN itself on the layers before it; a linear function over
  the input set is minimised in closed form (``a.c - |a|.r`` on a box, ``a.x - eps
  ||a||_2`` on an L2 ball). Margins ``z_y - z_j`` are bounded directly (the
  specification folded into the last layer), which is exact for a linear model.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._network import AffineReLUNet

__all__ = ["ibp_bounds", "crown_bounds", "margin_matrix"]


class _InputSet:
    def __init__(self, x: Tensor, eps: float, norm: str):
        self.x, self.eps, self.norm = x.flatten(1), float(eps), norm
        if norm == "linf":
            lo = (self.x - self.eps).clamp(0, 1)
            hi = (self.x + self.eps).clamp(0, 1)
            self.mid, self.rad = (lo + hi) / 2, (hi - lo) / 2

    def minimum(self, a: Tensor, c: Tensor) -> Tensor:
        """``min_{x in set} a x + c`` for ``a`` (N, m, d), ``c`` (N, m)."""
        if self.norm == "linf":
            centre = torch.einsum("nmd,nd->nm", a, self.mid)
            return centre - torch.einsum("nmd,nd->nm", a.abs(), self.rad) + c
        return torch.einsum("nmd,nd->nm", a, self.x) - self.eps * a.norm(dim=2) + c


def ibp_bounds(net: AffineReLUNet, x: Tensor, eps: float, norm: str):
    """Interval bounds of every pre-activation: a list of ``(lower, upper)``, the last
    being the logits, each (N, n_i)."""
    inp = _InputSet(x, eps, norm)
    w, b = net.weights[0], net.biases[0]
    if norm == "linf":
        mid, rad = inp.mid @ w.T + b, inp.rad @ w.abs().T
    else:
        mid, rad = inp.x @ w.T + b, inp.eps * w.norm(dim=1).expand(len(x), -1)
    out = [(mid - rad, mid + rad)]
    for w, b in zip(net.weights[1:], net.biases[1:]):
        lo, hi = (v.relu() for v in out[-1])
        mid, rad = (lo + hi) / 2 @ w.T + b, (hi - lo) / 2 @ w.abs().T
        out.append((mid - rad, mid + rad))
    return out


def _relax(lo: Tensor, hi: Tensor):
    """ReLU relaxation: (lower slope, upper slope, upper intercept), each (N, n)."""
    active, dead = lo >= 0, hi <= 0
    unstable = ~(active | dead)
    den = (hi - lo).where(unstable, torch.ones_like(hi))
    up = torch.where(active, 1.0, 0.0).to(lo.dtype)
    up = torch.where(unstable, hi / den, up)
    icpt = torch.where(unstable, -up * lo, torch.zeros_like(lo))
    low = torch.where(active, 1.0, 0.0).to(lo.dtype)
    low = torch.where(unstable & (hi >= -lo), 1.0, low)
    return low, up, icpt


def _backsub(net, inp, relax, k: int, lam: Tensor, c: Tensor) -> Tensor:
    """Lower bound of ``lam z_k + c`` (``lam`` (N, m, n_k)) through layers k..1."""
    for i in range(k, -1, -1):
        c = c + lam @ net.biases[i]
        lam = lam @ net.weights[i]
        if i == 0:
            return inp.minimum(lam, c)
        low, up, icpt = relax[i - 1]
        pos, neg = lam.clamp_min(0), lam.clamp_max(0)
        c = c + torch.einsum("nmj,nj->nm", neg, icpt)
        lam = pos * low.unsqueeze(1) + neg * up.unsqueeze(1)
    raise AssertionError("unreachable")


def crown_bounds(
    net: AffineReLUNet, x: Tensor, eps: float, norm: str, spec: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """CROWN bounds of ``spec @ logits`` (``spec`` (N, m, K); default the identity):
    ``(lower, upper)``, each (N, m)."""
    inp = _InputSet(x, eps, norm)
    n = len(x)
    relax = []
    for k in range(len(net.weights) - 1):  # pre-activation bounds, layer by layer
        eye = torch.eye(net.weights[k].shape[0], dtype=x.dtype, device=x.device)
        lam = eye.expand(n, -1, -1)
        zero = torch.zeros(n, eye.shape[0], dtype=x.dtype, device=x.device)
        lo = _backsub(net, inp, relax, k, lam, zero)
        hi = -_backsub(net, inp, relax, k, -lam, zero)
        relax.append(_relax(lo, hi))
    k_out = net.weights[-1].shape[0]
    if spec is None:
        spec = torch.eye(k_out, dtype=x.dtype, device=x.device).expand(n, -1, -1)
    zero = torch.zeros(n, spec.shape[1], dtype=x.dtype, device=x.device)
    last = len(net.weights) - 1
    lo = _backsub(net, inp, relax, last, spec, zero)
    hi = -_backsub(net, inp, relax, last, -spec, zero)
    return lo, hi


def margin_matrix(y: Tensor, num_classes: int, dtype=None) -> Tensor:
    """Rows ``e_y - e_j`` for every class ``j``: (N, K, K); row ``y`` is zero."""
    eye = torch.eye(num_classes, dtype=dtype, device=y.device)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)

"""Interval bound propagation and CROWN on a :class:`~._graph.BoundGraph`.

The input set is the L-inf ball intersected with the box ``[0, 1]^d`` (itself a box),
or the L2 ball (the box is dropped there: a sound over-approximation).

Both methods bound ``spec . z`` (``z`` the network's output, ``spec`` a few rows such
as the margins ``e_y - e_j``) from below:

- **IBP** (Gowal et al., 2018): intervals pushed forward through every operation
  (a linear one as ``A mid + b`` and ``|A| rad``: a convolution by ``conv(rad, |W|)``);
  the L2 ball is carried exactly up to the first operation that mixes coordinates.
  The specification is folded into the linear operations after the last nonlinear
  one, as auto_LiRPA's C matrix: the margin ``z_y - z_j`` is bounded through
  ``W_y - W_j`` (and any linear layers before it back to the last ReLU or pooling),
  never by subtracting two logit intervals.
- **CROWN** (Zhang et al., 2018): linear bounds passed backwards through the graph
  (through a convolution by ``conv_transpose2d``, a residual addition to both
  branches, a ReLU by its linear relaxation, a max pooling by auto_LiRPA's), and
  minimised in closed form over the input set (``a.c - |a|.r`` on a box,
  ``a.x - eps ||a||_2`` on an L2 ball). The intermediate bounds every relaxation needs
  come from CROWN itself, node by node, and only where they can change a relaxation:
  a ReLU input's neurons that its interval (IBP one step from the bounds before it)
  leaves unstable are refined by CROWN and intersected with that interval (the
  others keep it; a stable neuron's relaxation is exact); a node whose interval is
  already exact (one linear operation from the input set, or elementwise of an exact
  one) is not refined. The final bounds are intersected with IBP's folded bounds
  from the same intermediate bounds, so CROWN is never looser than IBP.
- **CROWN-IBP** (Zhang et al., 2020, "Towards stable and efficient training of
  verifiably robust neural networks"): CROWN's backward pass for the specification
  only, the relaxations from IBP's intermediate bounds; the cost of one backward
  pass, where CROWN makes one per layer with a row per unstable neuron (deep
  networks such as ResNets), and never looser than IBP.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import _ops, _patches
from ._graph import BoundGraph
from ._patches import Patch

__all__ = ["spec_bounds", "margin_spec"]

METHODS = ("crown", "crown-ibp", "ibp")
#: elements of one chunk of linear-bound coefficients (float64: 64 MiB)
_BUDGET = 2**23


class _InputSet:
    """The L-inf ball clipped to ``[0, 1]`` (a box) or the L2 ball around ``x``."""

    def __init__(self, x: Tensor, eps: float, norm: str):
        self.x, self.eps, self.norm = x, float(eps), norm
        if norm == "linf":
            self.lo = (x - self.eps).clamp(0, 1)
            self.hi = (x + self.eps).clamp(0, 1)

    def minimum(self, lam: Tensor) -> Tensor:
        """``min_{x in set} lam . x`` for ``lam`` (N, m, *shape) -> (N, m)."""
        a = lam.flatten(2)
        if self.norm == "linf":
            mid = ((self.lo + self.hi) / 2).flatten(1)
            rad = ((self.hi - self.lo) / 2).flatten(1)
            return torch.einsum("nmd,nd->nm", a, mid) - torch.einsum(
                "nmd,nd->nm", a.abs(), rad
            )
        return torch.einsum("nmd,nd->nm", a, self.x.flatten(1)) - self.eps * a.norm(
            dim=2
        )


def _box_minimum(lam: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """``min lam . z`` over the box ``[lo, hi]``: lam (N, m, *shape) -> (N, m)."""
    a = lam.flatten(2)
    mid, rad = ((lo + hi) / 2).flatten(1), ((hi - lo) / 2).flatten(1)
    return torch.einsum("nmd,nd->nm", a, mid) - torch.einsum("nmd,nd->nm", a.abs(), rad)


class _Bounder:
    """One bounding run: the intervals and relaxations of every node for inputs ``x``."""

    def __init__(
        self,
        graph: BoundGraph,
        x: Tensor,
        eps: float,
        norm: str,
        method: str,
        patches: bool = True,
    ):
        self.g, self.method, self.patches = graph, method, patches
        self.nodes = graph.nodes
        self.inp = _InputSet(x, eps, norm)
        self.n = len(x)
        self.box: dict[int, tuple[Tensor, Tensor]] = {}  # intervals kept
        self.relax: dict[int, object] = {}
        self._forward()

    # ---------------------------------------------------------------- forward pass
    def _forward(self) -> None:
        nodes, inp = self.nodes, self.inp
        consumers = self.g.consumers()
        nonlinear_in = {
            i for nd in nodes if nd.op.kind == "nonlinear" for i in nd.inputs
        }
        relu_only = {
            i: all(isinstance(nodes[k].op, _ops.ReLU) for k in consumers[i])
            for i in nonlinear_in
        }
        self.frontier = self._frontier()
        uses = [len(c) for c in consumers]
        # per node: ("box", lo, hi) or ("ball", centre, scale) (L2, before any mixing)
        state: dict[int, tuple] = {}
        exact_set: dict[int, bool] = {}  # the state is the node's exact set
        tight: dict[int, bool] = {}  # the interval is exact or refined by CROWN
        for k, node in enumerate(nodes):
            op = node.op
            if op.kind == "input":
                if inp.norm == "linf":
                    state[k] = ("box", inp.lo, inp.hi)
                else:
                    one = torch.ones(
                        (1, *node.shape), dtype=inp.x.dtype, device=inp.x.device
                    )
                    state[k] = ("ball", inp.x, one)
                exact_set[k] = tight[k] = True
                continue
            ins = [state[i] for i in node.inputs]
            first = node.inputs[0]
            if op.kind == "linear" and op.elementwise:
                state[k] = self._elementwise(op, ins[0])
                exact_set[k], tight[k] = exact_set[first], tight[first]
            elif op.kind == "linear":
                state[k], exact = self._mixing(op, ins[0], exact_set[first])
                exact_set[k], tight[k] = False, exact
            elif op.kind == "sum":
                boxes = [self._as_box(s) for s in ins]
                lo = sum(c * (b[1] if c < 0 else b[0]) for c, b in zip(op.coefs, boxes))
                hi = sum(c * (b[0] if c < 0 else b[1]) for c, b in zip(op.coefs, boxes))
                state[k] = ("box", lo, hi)
                exact_set[k] = tight[k] = False
            else:  # nonlinear: from its input's interval (refined before if needed)
                lo, hi = self._as_box(ins[0])
                linear_bounds = self.method != "ibp"
                self.relax[k] = op.relax(lo, hi) if linear_bounds else None
                state[k] = ("box", *op.ibp(lo, hi))
                exact_set[k] = False
                tight[k] = tight[first] and isinstance(op, _ops.ReLU)
            if k in nonlinear_in and self.method == "crown" and not tight[k]:
                state[k] = (
                    "box",
                    *self._refine(k, *self._as_box(state[k]), relu_only[k]),
                )
                tight[k] = True
            if k in self.frontier:
                self.box[k] = self._as_box(state[k])
            for i in node.inputs:  # free what no later node reads
                uses[i] -= 1
                if uses[i] == 0 and i in state:
                    del state[i]

    def _as_box(self, s: tuple) -> tuple[Tensor, Tensor]:
        if s[0] == "box":
            return s[1], s[2]
        rad = self.inp.eps * s[2].abs()
        return s[1] - rad, s[1] + rad

    def _elementwise(self, op, s: tuple) -> tuple:
        if s[0] == "ball":
            return ("ball", op.forward(s[1]), op.ball(s[2]))
        mid, rad = op.forward((s[1] + s[2]) / 2), op.radius((s[2] - s[1]) / 2)
        return ("box", mid - rad, mid + rad)

    def _mixing(self, op, s: tuple, exact_set: bool) -> tuple[tuple, bool]:
        if s[0] == "ball" and op.sq is not None:
            v = s[2].square().expand(1, *s[1].shape[1:]).contiguous()
            mid, rad = op.forward(s[1]), self.inp.eps * op.sq(v).clamp_min(0).sqrt()
            return ("box", mid - rad, mid + rad), True
        lo, hi = self._as_box(s)
        mid, rad = op.forward((lo + hi) / 2), op.radius((hi - lo) / 2)
        return ("box", mid - rad, mid + rad), exact_set and s[0] == "box"

    def _frontier(self) -> set[int]:
        """Nonlinear nodes (and the input) that the specification, folded backwards
        through the linear operations after them, reaches: IBP concretises there."""
        seen, todo, out = set(), [len(self.nodes) - 1], set()
        while todo:
            k = todo.pop()
            if k in seen:
                continue
            seen.add(k)
            if self.nodes[k].op.kind in ("nonlinear", "input"):
                out.add(k)
            else:
                todo.extend(self.nodes[k].inputs)
        return out

    # ---------------------------------------------------------------- backward pass
    def backward(self, target: int, lam: Tensor | Patch, *, crown: bool) -> Tensor:
        """Lower bound of ``lam . z_target`` (``lam`` (N, m, *shape) or a
        :class:`Patch`) over the input set: CROWN through every node, or
        (``crown=False``) concretised with the intervals at the nonlinear nodes the
        linear operations lead back to."""
        n, m = (lam.p if isinstance(lam, Patch) else lam).shape[:2]
        const = torch.zeros(n, m, dtype=torch.float64, device=self.inp.x.device)
        pending: dict[int, Tensor | Patch] = {target: lam}
        for k in range(target, -1, -1):
            lam = pending.pop(k, None)
            if lam is None:
                continue
            node = self.nodes[k]
            op = node.op
            if isinstance(lam, Patch):
                step = self._patch_step(k, lam)
                if step is None:
                    lam = lam.dense()
                else:
                    c, nxt = step
                    const = const + c
                    for i, t in nxt:
                        pending[i] = _patches.add(pending[i], t) if i in pending else t
                    continue
            if op.kind == "input":
                const = const + self.inp.minimum(lam)
                continue
            if op.kind == "nonlinear" and not crown:
                const = const + _box_minimum(lam, *self.box[k])
                continue
            if op.kind == "linear":
                flat = lam.reshape(n * m, *node.shape)
                const = const + op.bias_dot(flat).view(n, m)
                back = op.back(flat)
                nxt = [(node.inputs[0], back.view(n, m, *back.shape[1:]))]
            elif op.kind == "sum":
                nxt = [(i, c * lam) for i, c in zip(node.inputs, op.coefs)]
            else:
                lam_in, c = op.back(lam, self.relax[k])
                const = const + c
                nxt = [(node.inputs[0], lam_in)]
            for i, t in nxt:
                pending[i] = _patches.add(pending[i], t) if i in pending else t
        return const

    def _patch_step(self, k: int, lam: Patch):
        """One node of :meth:`backward` on a patch: (constant, [(node, coefficients)])
        or ``None`` where the node needs the dense form."""
        node = self.nodes[k]
        op = node.op
        if op.kind == "input":
            if self.inp.norm == "linf":
                lo, hi = lam.windows(self.inp.lo), lam.windows(self.inp.hi)
                a = lam.p
                val = (a * (lo + hi)).flatten(2).sum(2) / 2 - (
                    a.abs() * (hi - lo)
                ).flatten(2).sum(2) / 2
                return val, []
            val = (lam.p * lam.windows(self.inp.x)).flatten(2).sum(2)
            return val - self.inp.eps * lam.p.flatten(2).norm(dim=2), []
        if isinstance(op, _ops.Conv) and op.nd == 2:
            c = 0.0 if op.bias is None else lam.sum_dot(op.bias)
            in_hw = self.nodes[node.inputs[0]].shape[1:]
            return c, [(node.inputs[0], _patches.conv_back(op, lam, in_hw))]
        if isinstance(op, _ops.Scale) and _patches.per_channel(op):
            q, c = _patches.scale_back(op, lam)
            return c, [(node.inputs[0], q)]
        if isinstance(op, _ops.ReLU):
            q, c = _patches.relu_back(lam, self.relax[k])
            return c, [(node.inputs[0], q)]
        if op.kind == "sum":
            return 0.0, [(i, lam.scale(c)) for i, c in zip(node.inputs, op.coefs)]
        return None

    def _refine(self, k: int, lo: Tensor, hi: Tensor, relu_only: bool):
        """CROWN bounds of node ``k``'s neurons that its interval leaves unstable
        (all of them if a max pooling reads it), intersected with the interval."""
        n = self.n
        shape = self.nodes[k].shape
        d = math.prod(shape)
        flo, fhi = lo.reshape(n, d), hi.reshape(n, d)
        pick = (
            (flo < 0) & (fhi > 0)
            if relu_only
            else torch.ones_like(flo, dtype=torch.bool)
        )
        count = pick.sum(1)
        most = int(count.max()) if n else 0
        if most == 0:
            return lo, hi
        # per example, the indices of its picked neurons first (stable sort)
        order = torch.argsort((~pick).to(torch.int8), dim=1, stable=True)[:, :most]
        valid = torch.arange(most, device=lo.device).unsqueeze(0) < count.unsqueeze(1)
        widest = max(math.prod(self.nodes[i].shape) for i in range(k + 1))
        if len(shape) == 3 and self.patches:  # windows: a fraction of the maps
            widest = max(1, widest // 8)
        step = max(1, min(most, _BUDGET // max(1, 2 * n * widest)))
        new_lo, new_hi = flo.clone(), fhi.clone()
        for s in range(0, most, step):
            idx, ok = order[:, s : s + step], valid[:, s : s + step]
            u = idx.shape[1]
            sign = ok.to(lo.dtype)
            signs, both = torch.cat([sign, -sign], 1), torch.cat([idx, idx], 1)
            if len(shape) == 3 and self.patches:
                lam = _patches.start(both, signs, shape)
            else:
                lam = lo.new_zeros(n, 2 * u, d)
                lam.scatter_(2, both.unsqueeze(2), signs.unsqueeze(2))
                lam = lam.view(n, 2 * u, *shape)
            c = self.backward(k, lam, crown=True)
            lower, upper = c[:, :u], -c[:, u:]
            cur_lo, cur_hi = new_lo.gather(1, idx), new_hi.gather(1, idx)
            new_lo.scatter_(
                1, idx, torch.where(ok, torch.maximum(cur_lo, lower), cur_lo)
            )
            new_hi.scatter_(
                1, idx, torch.where(ok, torch.minimum(cur_hi, upper), cur_hi)
            )
        return new_lo.view(n, *shape), new_hi.view(n, *shape)


def spec_bounds(
    graph: BoundGraph,
    x: Tensor,
    spec: Tensor,
    *,
    eps: float,
    norm: str = "linf",
    method: str = "crown",
) -> Tensor:
    """Lower bounds of ``spec . z`` over the eps-ball around each ``x``, where ``z``
    is the graph's output: ``spec`` (N, m, *out_shape) -> (N, m), float64.

    ``method="ibp"``: intervals, the specification folded into the linear
    operations after the last nonlinear one; ``"crown"``: linear bounds (see the
    module docstring), never looser than IBP; ``"crown-ibp"``: CROWN's backward
    pass for the specification only, on IBP's intermediate bounds (Zhang et al.,
    2020), one pass instead of one per layer: for deep networks.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    b = _Bounder(graph, x.to(torch.float64), eps, norm, method)
    last = len(graph.nodes) - 1
    n, m = spec.shape[:2]
    widest = max(math.prod(node.shape) for node in graph.nodes)
    step = max(1, min(m, _BUDGET // max(1, n * widest)))  # rows per backward pass
    out = []
    for i in range(0, m, step):
        rows = spec[:, i : i + step]
        low = b.backward(last, rows, crown=False)
        if method != "ibp":
            low = torch.maximum(low, b.backward(last, rows, crown=True))
        out.append(low)
    return torch.cat(out, 1)


def margin_spec(y: Tensor, num_classes: int, dtype=None) -> Tensor:
    """Rows ``e_y - e_j`` for every class ``j``: (N, K, K); row ``y`` is zero."""
    eye = torch.eye(num_classes, dtype=dtype, device=y.device)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)

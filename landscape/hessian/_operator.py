"""The Hessian of the mean loss over a fixed dataset as a linear operator.

Three formulations of the Hessian-vector product (HVP), picked with ``mode``:

- ``"graph"``: one forward and one ``create_graph`` backward per batch at construction;
  the weighted total gradient's graph is kept and every HVP is a single double
  backward through it (``autograd.grad(g, params, v, retain_graph=True)``). The
  fastest when the activations of the whole dataset fit in memory: its memory grows
  with the data (every batch's graph is kept).
- ``"recompute"``: forward, ``create_graph`` backward and double backward per batch per
  HVP (memory of one batch).
- ``"jvp"``: ``torch.func`` forward-over-reverse, ``jvp(grad(loss))`` per batch per HVP
  (memory of one batch; needs every op to support forward-mode AD).

Several vectors are multiplied at once (``matmat``) in blocks of ``chunk_size``.
With an explicit ``mode`` a block uses that formulation (``"jvp"``: ``vmap`` over the
vectors, sharing the forward; ``"recompute"``: ``is_grads_batched``; ``"graph"``: one
double backward per vector). No formulation is fastest on every model: measured per
vector in gradients (``benchmarks/bench_hvp_batching.py``, float32, 256 images, one
thread, CPU), the cached graph costs 0.7-2.5, ``vmap(jvp)`` 1.1-4.4 and batched double
backward 0.5-3.0; ``vmap(jvp)`` wins only on LeNet (thin 5x5 convolutions: 0.49x the
graph), batched double backward on MLPs (0.65-0.75x), the graph on BatchNorm-residual
CNNs. So ``"auto"`` (default) uses the cached graph for single vectors (Lanczos, power
iteration) when it fits the memory budget (:mod:`landscape._memory`: the bytes the
first batch's graph saves, measured with saved-tensor hooks, times the batches of the
data, against ``max_memory``), else the recomputed double backward (memory of one
batch), and, on the first block of >= 2 vectors (Hutchinson, Hutch++, XTrace, SLQ
probes, dense Hessians), times each formulation once on that block and keeps the
fastest (``batch_mode``, ``batch_timings``). The formulations agree to rounding; pass
an explicit ``mode`` for bitwise-reproducible blocks.

Data streams batch by batch from the caller's loader in every formulation (nothing
holds the data set on the device). Under ``torch.distributed`` (a process group is
initialised, e.g. by ``torchrun``) every rank builds the operator with the same
arguments, keeps the batches ``i % world == rank`` and every product (and the loss)
is all-reduced: every rank holds the Hessian of the mean loss over the whole data.
Data with fewer batches than processes is not sharded: every rank then computes
all of it (the same answer, no collective). The products inside one HVP read nothing
back to the host (no device sync).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .. import _dist, _finite, _memory, _utils
from .._batches import as_batches, is_class_loss

__all__ = [
    "HessianOperator",
    "NondeterministicLossError",
    "hvp",
    "dense_hessian",
    "model_operator",
    "MODES",
]

MODES = ("auto", "graph", "recompute", "jvp")
LossFn = Callable[[Tensor, Tensor], Tensor]

# In auto mode, products of at least this many vectors choose their formulation.
_MIN_BATCH_FOR_JVP = 2


class NondeterministicLossError(RuntimeError):
    """Two evaluations of the loss on the same data and weights differ."""


class HessianOperator:
    """The Hessian ``H`` of the mean loss over ``data`` at the model's weights.

    The loss of each batch is weighted by its size over the total, so results do not
    depend on how the data is batched (``loss_fn`` must return the batch *mean*).
    The model is analysed in eval mode (BatchNorm running statistics, Dropout off) and
    is never modified: the weights enter through ``torch.func.functional_call``.

    Args:
        model: the network (never modified; with ``dtype`` a cast copy is analysed).
        loss_fn: maps ``(output, y)`` to the batch-mean loss.
        data: iterable of ``(x, y)`` batches (a list or a re-iterable loader).
        dtype: analyse a copy of the model and data cast to this dtype
            (e.g. ``torch.float64``); default the model's dtype.
        mode: ``"auto"``, ``"graph"``, ``"recompute"`` or ``"jvp"`` (module docstring).
            ``"auto"`` keeps the graph when its measured size fits ``max_memory``.
        chunk_size: how many vectors one batched HVP multiplies at most (the name
            ``surface`` and ``scattering`` use).
        check_deterministic: evaluate the loss twice and raise
            :class:`NondeterministicLossError` if the values differ.
        max_memory: bytes the cached graph may take (``mode="auto"``); default
            :func:`landscape._memory.graph_budget`: 1 GiB, or less where half the
            free CUDA memory / a quarter of the available host memory is less
            (memory then follows the batch, not the data set; raise it to keep
            the graph of a larger data set and save a forward pass per product).

    Attributes:
        dim: number of trainable parameters. ``names``/``shapes``: their layout.
        num_matvecs: HVPs done so far (a batched product of r vectors counts r).
        loss: the mean loss over the data.
        graph_bytes: the projected size of the cached graph (``mode="auto"``;
            None when not measured).
        rank, world: this process's share of the data under ``torch.distributed``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Iterable,
        *,
        dtype: torch.dtype | None = None,
        mode: str = "auto",
        chunk_size: int = 8,
        check_deterministic: bool = True,
        max_memory: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        _finite.check_model(model)
        if dtype is not None and dtype != _utils.model_dtype(model):
            model = copy.deepcopy(model).to(dtype)
        self.model = model
        self.loss_fn = loss_fn
        self.device = _utils.model_device(model)
        self.dtype = _utils.model_dtype(model)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("the model has no trainable parameters")
        self.names = [n for n, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.dim = sum(p.numel() for _, p in named)
        self._params = {n: p.detach() for n, p in named}
        self.chunk_size = max(1, int(chunk_size))
        self.num_matvecs = 0
        self._vmap_ok = True
        labels = "class" if is_class_loss(loss_fn) else "auto"
        self._data = as_batches(data, model=model, labels=labels)
        self.rank, self.world = _dist.info()
        self.max_memory = _memory.check_max_memory(max_memory)
        self.num_samples = 0  # set by the first loss pass (all ranks together)
        self._grad: Tensor | None = None
        self._leaves: list[Tensor] = []
        self.loss = self._eval_loss()
        auto = mode == "auto"
        self.graph_bytes: int | None = None
        if auto:
            mode = "graph" if self._graph_fits() else "recompute"
        self.mode = mode
        # blocks of vectors: no formulation is fastest on every model (module
        # docstring), so auto times them on the first block; explicit modes stay
        self.batch_mode = "select" if auto else mode
        self.batch_timings: dict[str, float] = {}
        if check_deterministic:
            again = self._eval_loss()
            tol = 1000 * torch.finfo(self.dtype).eps * max(1.0, abs(self.loss))
            if abs(again - self.loss) > tol:
                raise NondeterministicLossError(
                    f"the loss differs between two evaluations ({self.loss!r} vs "
                    f"{again!r}): the objective is not a fixed function of the weights. "
                    "Usual causes: Dropout or noise that stays active in eval mode, data "
                    "augmentation or attacks generated on the fly by the loader (attack "
                    "once with attacks.perturb_batches and pass the fixed batches). "
                    "Pass check_deterministic=False to analyse it anyway."
                )

    def settings(self) -> dict:
        """What a model-level result records about the operator (its ``meta``)."""
        return {
            "loss": self.loss,
            "num_params": self.dim,
            "hvp_mode": self.mode,
            "graph_bytes": self.graph_bytes,
            "world_size": self.world,
        }

    # -- data and loss ------------------------------------------------------------
    def _batches(self):
        """This rank's batches (all of them in a single process), validated, on the
        device, x in the model's dtype; the others are skipped before they move."""
        owned = self._owned if self.world > 1 else None  # None: a whole pass
        for x, y in self._data.iter(owned=owned):
            yield x, (y.to(self.dtype) if y.is_floating_point() else y)

    def _owned(self, i: int) -> bool:
        return _dist.owned(i, self.rank, self.world)

    def _batch_loss(self, params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return self.loss_fn(functional_call(self.model, params, (x,)), y)

    def _eval_loss(self) -> float:
        """The mean loss over the data (all ranks); the first call also counts the
        samples. One read back to the host per pass, none per batch."""
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        local, nb = 0, 0
        with torch.no_grad(), _utils.eval_mode(self.model):
            for x, y in self._batches():
                total += self._batch_loss(self._params, x, y).double() * x.shape[0]
                local, nb = local + x.shape[0], nb + 1
        counts = torch.tensor([local, nb == 0], dtype=torch.float64, device=self.device)
        both = _dist.all_reduce_sum(torch.cat([total[None], counts]), self.world)
        loss_sum, n, idle = both.tolist()
        if not math.isfinite(loss_sum):  # rare: a second pass names the batch
            self._name_nonfinite_batch()
            _finite.check_number(loss_sum, "the loss", "on the data")
        if idle:  # fewer batches than processes: every process takes all of them
            self.rank, self.world = 0, 1
            return self._eval_loss()
        if self.num_samples == 0:
            self.num_samples, self._local_samples = int(n), local
        return loss_sum / self.num_samples

    def _graph_fits(self) -> bool:
        """Whether the cached graph fits the memory budget: the bytes the first batch's
        ``create_graph`` backward saves (saved-tensor hooks; the weights excluded),
        scaled to this rank's data, against :func:`landscape._memory.graph_budget`
        (the largest projection over the ranks decides for all)."""
        weights = {p.untyped_storage().data_ptr() for p in self._params.values()}
        seen: dict[int, int] = {}

        def pack(t: Tensor) -> Tensor:
            s = t.untyped_storage()
            if s.data_ptr() not in weights:
                seen.setdefault(s.data_ptr(), s.nbytes())
            return t

        projected = 0.0
        if self._local_samples:
            leaves = {
                n: p.detach().requires_grad_(True) for n, p in self._params.items()
            }
            x, y = next(iter(self._batches()))
            with (
                torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
                torch.enable_grad(),
                _utils.eval_mode(self.model),
            ):
                lb = self._batch_loss(leaves, x, y)
                torch.autograd.grad(lb, list(leaves.values()), create_graph=True)
            projected = sum(seen.values()) * self._local_samples / max(len(x), 1)
        t = torch.tensor([projected], dtype=torch.float64, device=self.device)
        projected = float(_dist.all_reduce_max(t, self.world)[0])
        self.graph_bytes = int(projected)
        return projected <= _memory.graph_budget(self.device, self.max_memory)

    def _name_nonfinite_batch(self) -> None:
        """Raise for the first of this rank's batches whose loss is NaN or inf (only
        after the pass's sum was not finite: one read per batch)."""
        with torch.no_grad(), _utils.eval_mode(self.model):
            for b, (x, y) in enumerate(self._batches()):
                lb = float(self._batch_loss(self._params, x, y))
                _finite.check_number(lb, "the loss", f"on batch {b} of data")

    def _build_graph(self) -> None:
        leaves = {n: p.detach().requires_grad_(True) for n, p in self._params.items()}
        self._leaves = list(leaves.values())
        total: Tensor | None = None
        with torch.enable_grad(), _utils.eval_mode(self.model):
            for x, y in self._batches():
                w = x.shape[0] / self.num_samples
                lb = self._batch_loss(leaves, x, y)
                gs = torch.autograd.grad(lb * w, self._leaves, create_graph=True)
                g = _utils.flatten(gs)
                total = g if total is None else total + g
        assert total is not None
        self._grad = total
        if not total.requires_grad:
            raise RuntimeError(
                "the gradient does not depend on the weights (linear loss?)"
            )
        if float(total.detach().abs().max()) == 0.0:
            warnings.warn(
                "the gradient is exactly zero: is the loss detached?", stacklevel=3
            )

    # -- products -----------------------------------------------------------------
    def matvec(self, v: Tensor) -> Tensor:
        """``H @ v`` for a flat vector ``v`` of length ``dim``."""
        return self.matmat(v.reshape(1, -1))[0]

    def matmat(self, V: Tensor) -> Tensor:
        """``(H @ V.T).T`` for ``V`` of shape ``(r, dim)`` (rows are vectors)."""
        if V.ndim != 2 or V.shape[1] != self.dim:
            raise ValueError(
                f"expected vectors of shape (r, {self.dim}), got {tuple(V.shape)}"
            )
        V = V.to(self.device, self.dtype)
        out = [
            self._product(V[i : i + self.chunk_size])
            for i in range(0, V.shape[0], self.chunk_size)
        ]
        self.num_matvecs += V.shape[0]
        return torch.cat(out)

    def _product(self, V: Tensor) -> Tensor:
        if V.shape[0] < _MIN_BATCH_FOR_JVP:
            return self._run(V, self.mode)
        if self.batch_mode == "select":
            return self._select_block_mode(V)
        return self._run(V, self.batch_mode)

    def _clock(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return time.perf_counter()
        return time.process_time()  # CPU time: less sensitive to other processes

    def _select_block_mode(self, V: Tensor) -> Tensor:
        """``auto`` for blocks: time each formulation once on this block (all give
        ``H V``), keep the fastest for later blocks (``batch_timings``: seconds per
        vector), return the first result."""
        cands = ["graph", "jvp", "recompute"] if self.mode == "graph" else []
        cands = cands or ["recompute", "jvp"]
        if self.mode == "graph" and self._grad is None:
            self._build_graph()  # a one-time cost, not the product's
        out, timings = None, {}
        for m in cands:
            t0 = self._clock()
            try:
                res = self._run(V, m, strict=True)
            except RuntimeError:  # e.g. no forward-mode formula for an op
                continue
            timings[m] = (self._clock() - t0) / V.shape[0]
            out = res if out is None else out
        if out is None:
            raise RuntimeError("no HVP formulation succeeded on this model")
        if self.world > 1:  # every rank keeps the same formulation
            t = torch.tensor([timings[m] for m in timings], dtype=torch.float64)
            t = _dist.all_reduce_sum(t.to(self.device), self.world).tolist()
            timings = dict(zip(timings, t))
        self.batch_timings = timings
        self.batch_mode = min(timings, key=lambda m: timings[m])
        return out

    def _graph_product(self, V: Tensor) -> Tensor:
        if self._grad is None:
            self._build_graph()
        assert self._grad is not None
        # one double backward per vector: is_grads_batched (vmap over the backward)
        # measured slower per vector than this loop on CPU (bench_hessian.py)
        rows = []
        with torch.enable_grad():
            for v in V:
                hv = torch.autograd.grad(
                    self._grad, self._leaves, grad_outputs=v, retain_graph=True
                )
                rows.append(_utils.flatten(hv))
        return torch.stack(rows)

    def _run(self, V: Tensor, mode: str, strict: bool = False) -> Tensor:
        """``H V`` in formulation ``mode``: this rank's share, summed over ranks."""
        out = self._local(V, mode, strict)
        return _dist.all_reduce_sum(out, self.world)

    def _local(self, V: Tensor, mode: str, strict: bool) -> Tensor:
        """This rank's share of ``H V`` (its batches' weighted products)."""
        if mode == "graph":
            return self._graph_product(V)
        out = torch.zeros_like(V)
        with _utils.eval_mode(self.model):
            for x, y in self._batches():
                w = x.shape[0] / self.num_samples
                if mode == "jvp":
                    try:
                        out += w * self._jvp(V, x, y)
                        continue
                    except RuntimeError as err:
                        if strict:
                            raise
                        # some backward formulas lack forward-mode support in torch
                        # (e.g. mse_loss_backward: "ZeroTensors are immutable")
                        if self.mode == "jvp":
                            warnings.warn(
                                f"forward-over-reverse failed ({err}); switching to "
                                "mode='recompute' (double backward)",
                                stacklevel=5,
                            )
                            self.mode = "recompute"
                        self.batch_mode = self.mode
                        return self._local(V, self.mode, strict)
                out += w * self._dbl(V, x, y)
        return out

    def _dbl(self, V: Tensor, x: Tensor, y: Tensor) -> Tensor:
        leaves = {n: p.detach().requires_grad_(True) for n, p in self._params.items()}
        lv = list(leaves.values())
        with torch.enable_grad():
            gs = torch.autograd.grad(
                self._batch_loss(leaves, x, y), lv, create_graph=True
            )
            g = _utils.flatten(gs)
            if V.shape[0] == 1:
                hv = torch.autograd.grad(g, lv, grad_outputs=V[0])
                return _utils.flatten(hv)[None]
            hv = torch.autograd.grad(g, lv, grad_outputs=V, is_grads_batched=True)
        return torch.cat([t.reshape(V.shape[0], -1) for t in hv], dim=1)

    def _jvp(self, V: Tensor, x: Tensor, y: Tensor) -> Tensor:
        params = self._params

        def grad_fn(p: dict[str, Tensor]) -> dict[str, Tensor]:
            return torch.func.grad(lambda q: self._batch_loss(q, x, y))(p)

        def one(v: Tensor) -> Tensor:
            tang = dict(zip(self.names, _utils.unflatten(v, list(params.values()))))
            _, hv = torch.func.jvp(grad_fn, (params,), (tang,))
            return _utils.flatten([hv[n] for n in self.names])

        if V.shape[0] > 1 and self._vmap_ok:
            try:
                return torch.func.vmap(one)(V)
            except RuntimeError:  # e.g. "ZeroTensors are immutable" for linear models
                self._vmap_ok = False
        return torch.stack([one(v) for v in V])

    # -- layout -------------------------------------------------------------------
    def to_dict(self, v: Tensor) -> dict[str, Tensor]:
        """Split a flat vector into tensors keyed like ``model.named_parameters()``."""
        out, i = {}, 0
        for n, s in zip(self.names, self.shapes):
            k = 1
            for d in s:
                k *= d
            out[n] = v[i : i + k].reshape(s)
            i += k
        return out

    def from_dict(self, d: dict[str, Tensor]) -> Tensor:
        """Flatten a dict keyed like the trainable parameters into one vector."""
        missing = [n for n in self.names if n not in d]
        if missing:
            raise KeyError(
                f"vector lacks parameters {missing[:3]}... (keys must match named_parameters())"
            )
        return torch.cat(
            [d[n].reshape(-1).to(self.device, self.dtype) for n in self.names]
        )


def model_operator(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable,
    dtype: torch.dtype | None,
    mode: str,
    check_deterministic: bool,
    chunk_size: int = 8,
    max_memory: int | None = None,
) -> HessianOperator:
    """The :class:`HessianOperator` behind a model-level call (``hvp``,
    ``dense_hessian``, ``top_eigenvalues``, ``trace``, ``lanczos_quadrature``)."""
    return HessianOperator(
        model,
        loss_fn,
        data,
        dtype=dtype,
        mode=mode,
        chunk_size=chunk_size,
        check_deterministic=check_deterministic,
        max_memory=max_memory,
    )


def hvp(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable,
    v: dict[str, Tensor] | Tensor,
    *,
    dtype: torch.dtype | None = None,
    mode: str = "auto",
    check_deterministic: bool = True,
) -> dict[str, Tensor] | Tensor:
    """One Hessian-vector product of the mean loss over ``data``.

    Args:
        model: the network (left untouched; analysed in eval mode).
        loss_fn: maps ``(output, y)`` to the batch-mean loss.
        data: iterable of ``(x, y)`` batches.
        v: a dict keyed like the trainable parameters, or a flat vector.
        dtype: analyse a copy in this dtype. mode: see :class:`HessianOperator`.
        check_deterministic: raise if the loss is not a fixed function of the weights.

    Returns:
        ``H v`` in the same form as ``v`` (dict or flat vector).

    Example:
        >>> X = torch.randn(8, 3, dtype=torch.float64)
        >>> model = torch.nn.Linear(3, 1, bias=False).double()
        >>> v = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        >>> hv = hvp(model, torch.nn.MSELoss(), [(X, torch.zeros(8, 1, dtype=X.dtype))], v)
        >>> torch.allclose(hv, 2 * X.T @ X[:, 0] / 8)
        True
    """
    op = model_operator(model, loss_fn, data, dtype, mode, check_deterministic)
    vec = v if isinstance(v, Tensor) else op.from_dict(v)
    _finite.check_given(vec, "v")
    hv = _finite.check_tensor(op.matvec(vec.reshape(-1)), "the Hessian-vector product")
    if isinstance(v, dict):
        return {k: t.detach() for k, t in op.to_dict(hv).items()}
    return hv.reshape(v.shape).detach()


def dense_hessian(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable,
    *,
    dtype: torch.dtype | None = None,
    mode: str = "auto",
    check_deterministic: bool = True,
) -> Tensor:
    """Materialise the full Hessian (tiny models only: ``dim`` HVPs, ``dim**2`` memory).

    Rows and columns follow ``model.named_parameters()`` flattened in order.

    Example:
        >>> X = torch.randn(8, 3, dtype=torch.float64)
        >>> model = torch.nn.Linear(3, 1, bias=False).double()
        >>> H = dense_hessian(model, torch.nn.MSELoss(), [(X, torch.zeros(8, 1, dtype=X.dtype))])
        >>> torch.allclose(H, 2 * X.T @ X / 8)
        True
    """
    op = model_operator(model, loss_fn, data, dtype, mode, check_deterministic)
    if op.dim > 20_000:
        raise ValueError(
            f"the model has {op.dim} parameters: a dense Hessian needs {op.dim}^2 entries; "
            "use top_eigenvalues / lanczos_density / trace instead"
        )
    eye = torch.eye(op.dim, device=op.device, dtype=op.dtype)
    return _finite.check_tensor(op.matmat(eye).detach(), "the Hessian")

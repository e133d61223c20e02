"""A network as a graph of exact float64 operations that bounds can pass through.

:func:`as_graph` traces the model with ``torch.fx`` (``models.Normalize`` and every
``torch.nn`` layer are leaves) and turns each traced node into one operation of
:mod:`._ops`, its parameters read from the modules and cast to float64 (exactly: a
float32 number is a float64 number). So the graph evaluates, and the bounds are for,
the model's own weights in float64, not a rounded copy. Residual additions are graph
nodes with two inputs; ``BatchNorm`` (eval mode) is the per-channel affine map of its
running statistics; ``Dropout`` and ``Identity`` vanish. Anything else raises a
``ValueError`` naming the layer.
"""

from __future__ import annotations

import dataclasses
import operator

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _utils, models
from . import _ops

__all__ = ["BoundGraph", "Node", "as_graph"]

_SUPPORTED = (
    "Linear, Conv1d/2d, ConvTranspose1d/2d, BatchNorm (eval), Normalize, Flatten / "
    "view / reshape, AvgPool, AdaptiveAvgPool, MaxPool2d, ReLU, Dropout (eval), "
    "Identity, and additions / subtractions of two tensors (residual connections)"
)


@dataclasses.dataclass(eq=False)
class Node:
    """One operation: ``op`` applied to the outputs of the nodes ``inputs``.

    Attributes:
        op: the operation (:mod:`._ops`).
        inputs: indices of the nodes it reads (earlier nodes: the list is in
            topological order).
        shape: the shape of its output for one example.
        name: where it comes from in the model (for messages).
    """

    op: _ops.Op
    inputs: tuple[int, ...]
    shape: tuple[int, ...]
    name: str


@dataclasses.dataclass(eq=False)
class BoundGraph:
    """A network as float64 operations in topological order; node 0 is the input
    and the last node the output.

    Attributes:
        nodes: the operations.
    """

    nodes: list[Node]

    def forward(self, x: Tensor) -> Tensor:
        """Evaluate the graph on ``x`` (cast to float64)."""
        vals: list[Tensor | None] = [x.to(torch.float64)]
        for node in self.nodes[1:]:
            vals.append(node.op.forward(*(vals[i] for i in node.inputs)))
        out = vals[-1]
        assert out is not None
        return out

    def consumers(self) -> list[list[int]]:
        """For each node, the nodes that read it."""
        out: list[list[int]] = [[] for _ in self.nodes]
        for k, node in enumerate(self.nodes):
            for i in node.inputs:
                out[i].append(k)
        return out


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, models.Normalize):
            return True
        return super().is_leaf_module(m, qualname)


def _unsupported(name: str, what: str) -> ValueError:
    return ValueError(
        f"certify: cannot bound {what} at {name!r}; supported are {_SUPPORTED} "
        "(feed-forward or residual networks traced by torch.fx)"
    )


def _f64(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.detach().to(torch.float64)


def _int_tuple(v, n: int, where: str) -> tuple[int, ...]:
    if isinstance(v, str):
        raise ValueError(
            f"certify: {where} has padding={v!r}; give the padding as integers"
        )
    t = tuple(v) if isinstance(v, (tuple, list)) else (v,) * n
    return tuple(int(a) for a in t)


def _module_op(m: nn.Module, name: str, in_shape: tuple[int, ...]) -> _ops.Op | None:
    """The operation of one leaf module (``None``: the identity)."""
    where = f"{name!r} ({type(m).__name__})"
    if isinstance(m, (nn.Identity, nn.modules.dropout._DropoutNd)):
        return None
    if isinstance(m, nn.ReLU):
        return _ops.ReLU()
    if isinstance(m, nn.Linear):
        if len(in_shape) != 1:
            raise ValueError(
                f"certify: {where} reads inputs of shape {in_shape}; bounds need "
                "Linear layers on flat features (Flatten before them)"
            )
        return _ops.Dense(_f64(m.weight), _f64(m.bias))
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d)):
        if m.padding_mode != "zeros":
            raise ValueError(
                f"certify: {where} pads with {m.padding_mode!r}; only zero padding "
                "is supported"
            )
        nd = 1 if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)) else 2
        kw = dict(
            stride=_int_tuple(m.stride, nd, where),
            padding=_int_tuple(m.padding, nd, where),
            dilation=_int_tuple(m.dilation, nd, where),
            groups=int(m.groups),
        )
        if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d)):
            op = _int_tuple(m.output_padding, nd, where)
            return _ops.ConvTranspose(
                _f64(m.weight), _f64(m.bias), output_padding=op, **kw
            )
        return _ops.Conv(_f64(m.weight), _f64(m.bias), in_shape=in_shape, **kw)
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        if m.running_mean is None or m.running_var is None:
            raise ValueError(
                f"certify: {where} keeps no running statistics "
                "(track_running_stats=False): its eval-mode output depends on the "
                "batch, so it has no bounds"
            )
        rv, rm = _f64(m.running_var), _f64(m.running_mean)
        scale = 1.0 / torch.sqrt(rv + m.eps)
        shift = -rm * scale
        if m.affine:
            w, b = _f64(m.weight), _f64(m.bias)
            scale, shift = scale * w, shift * w + b
        return _ops.Scale.per_channel(scale, shift, in_shape)
    if isinstance(m, models.Normalize):
        mean, std = _f64(m.mean), _f64(m.std)
        if mean.numel() == 1:
            return _ops.Scale(1.0 / std.view(()), -mean.view(()) / std.view(()))
        return _ops.Scale.per_channel(1.0 / std, -mean / std, in_shape)
    if isinstance(m, nn.Flatten):
        return _ops.Reshape.flatten(in_shape, m.start_dim, m.end_dim)
    if isinstance(m, (nn.AvgPool1d, nn.AvgPool2d)):
        kw = dict(
            kernel_size=m.kernel_size,
            stride=m.stride,
            padding=m.padding,
            ceil_mode=m.ceil_mode,
            count_include_pad=m.count_include_pad,
        )
        if isinstance(m, nn.AvgPool2d):
            kw["divisor_override"] = m.divisor_override
            fn = F.avg_pool2d
        else:
            fn = F.avg_pool1d
        return _ops.Pool(fn, kw, in_shape, type(m).__name__)
    if isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        fn = F.adaptive_avg_pool1d
        if isinstance(m, nn.AdaptiveAvgPool2d):
            fn = F.adaptive_avg_pool2d
        return _ops.Pool(fn, {"output_size": m.output_size}, in_shape, type(m).__name__)
    if isinstance(m, nn.MaxPool2d):
        if m.return_indices:
            raise _unsupported(name, "MaxPool2d(return_indices=True)")
        return _ops.MaxPool(
            kernel_size=_int_tuple(m.kernel_size, 2, where),
            stride=_int_tuple(m.stride, 2, where),
            padding=_int_tuple(m.padding, 2, where),
            dilation=_int_tuple(m.dilation, 2, where),
            ceil_mode=bool(m.ceil_mode),
        )
    raise _unsupported(name, f"layer {type(m).__name__}")


_ADD = (operator.add, torch.add, operator.iadd)
_SUB = (operator.sub, torch.sub, operator.isub)
_RELU = (F.relu, torch.relu)
_FLATTEN = (torch.flatten,)


def as_graph(model: nn.Module, x: Tensor) -> BoundGraph:
    """Read ``model`` (in eval mode) as a :class:`BoundGraph` for inputs shaped like
    ``x`` (only ``x[:1]`` is evaluated).

    The parameters and buffers are read exactly, in float64; the graph's output is
    checked against the model evaluated in float64 on ``x[:1]``.

    Raises:
        ValueError: for an operation that cannot be bounded (it is named), or a model
            that ``torch.fx`` cannot trace (data-dependent control flow).
    """
    tracer = _Tracer()
    if tracer.is_leaf_module(model, ""):  # one layer as the model: trace it as a leaf
        model = nn.Sequential(model)
    try:
        fx_graph = tracer.trace(model)
    except Exception as err:  # fx raises many kinds; one clear message
        raise ValueError(
            f"certify: torch.fx cannot trace {type(model).__name__} ({err}); bounds "
            "need a network without data-dependent control flow"
        ) from None
    mods = dict(model.named_modules())
    sample = x[:1].detach().to(torch.float64)
    with _utils.eval_mode(model):
        return _build(model, fx_graph, mods, sample)


def _build(model, fx_graph, mods, sample) -> BoundGraph:
    nodes: list[Node] = []
    index: dict[torch.fx.Node, int] = {}
    values: dict[torch.fx.Node, object] = {}  # sample values (tensors and constants)
    p64 = {
        k: v.detach().to(torch.float64) if v.is_floating_point() else v
        for k, v in [*model.named_parameters(), *model.named_buffers()]
    }

    def add_node(fxn, op, inputs, out):
        if op is None:  # identity: alias to its input
            index[fxn] = inputs[0]
        else:
            nodes.append(Node(op, tuple(inputs), tuple(out.shape[1:]), fxn.name))
            index[fxn] = len(nodes) - 1
        values[fxn] = out

    for fxn in fx_graph.nodes:
        if fxn.op == "placeholder":
            if nodes:
                raise ValueError("certify: the model takes more than one input")
            nodes.append(Node(_ops.Input(), (), tuple(sample.shape[1:]), fxn.name))
            index[fxn] = 0
            values[fxn] = sample
            continue
        if fxn.op == "output":
            out = fxn.args[0]
            if not isinstance(out, torch.fx.Node) or out not in index:
                raise ValueError(
                    "certify: the model must return one tensor computed from its input"
                )
            last = index[out]
            if last != len(nodes) - 1:  # the output is not the last node: copy it
                shape = nodes[last].shape
                nodes.append(Node(_ops.Reshape(shape, shape), (last,), shape, fxn.name))
            break
        if fxn.op == "get_attr":
            values[fxn] = _fetch(model, fxn.target, p64)
            continue
        args = torch.fx.node.map_arg(fxn.args, lambda a: values[a])
        kwargs = torch.fx.node.map_arg(fxn.kwargs, lambda a: values[a])
        tensor_in = [a for a in fxn.all_input_nodes if a in index]
        if not tensor_in:  # a constant computed from constants (e.g. x.size(0))
            values[fxn] = _run(model, fxn, args, kwargs, p64)
            continue
        out = _run(model, fxn, args, kwargs, p64)
        if not isinstance(out, Tensor):  # x.size(0), x.shape, x.dim(): constants
            values[fxn] = out
            continue
        if out.shape[:1] != sample.shape[:1]:
            raise _unsupported(fxn.name, f"{fxn.target} (it mixes the batch dimension)")
        ins = [index[a] for a in tensor_in]
        in_shape = nodes[ins[0]].shape
        op = _node_op(fxn, mods, args, kwargs, values, tensor_in, in_shape, out)
        if isinstance(op, _ops.Sum):
            ins = [index[a] for a in op_inputs(fxn)]
        add_node(fxn, op, ins, out)

    graph = BoundGraph(nodes)
    with torch.no_grad():
        ref = torch.func.functional_call(model, p64, (sample,))
        got = graph.forward(sample)
    if ref.shape != got.shape or not torch.allclose(got, ref, rtol=1e-9, atol=1e-9):
        raise ValueError(
            "certify: the traced graph does not reproduce the model's output in "
            "float64 (the model computes something tracing does not see); bound a "
            "model built from the supported layers"
        )
    return graph


def op_inputs(fxn: torch.fx.Node) -> list[torch.fx.Node]:
    """The two tensor operands of an addition or subtraction, in order."""
    return [a for a in fxn.args[:2] if isinstance(a, torch.fx.Node)]


def _fetch(model: nn.Module, target: str, p64: dict[str, Tensor]):
    if target in p64:
        return p64[target]
    obj = model
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _run(model, fxn, args, kwargs, p64):
    with torch.no_grad():
        if fxn.op == "call_module":
            m = model.get_submodule(fxn.target)
            prefix = fxn.target + "."
            sub = {k[len(prefix) :]: v for k, v in p64.items() if k.startswith(prefix)}
            return torch.func.functional_call(m, sub, args, kwargs)
        if fxn.op == "call_function":
            return fxn.target(*args, **kwargs)
        if fxn.op == "call_method":
            return getattr(args[0], fxn.target)(*args[1:], **kwargs)
    raise _unsupported(fxn.name, fxn.op)


def _node_op(fxn, mods, args, kwargs, values, tensor_in, in_shape, out):
    out_shape = tuple(out.shape[1:])
    if fxn.op == "call_module":
        return _module_op(mods[fxn.target], fxn.target, in_shape)
    target = fxn.target
    name = getattr(target, "__name__", str(target))
    if fxn.op == "call_method":
        if target in ("view", "reshape", "flatten", "contiguous"):
            return _ops.Reshape(in_shape, out_shape)
        if target == "relu":
            return _ops.ReLU()
        if target in ("add", "sub", "__add__", "__sub__"):
            target = torch.add if target in ("add", "__add__") else torch.sub
        else:
            raise _unsupported(fxn.name, f"method .{target}()")
    if target in _FLATTEN:
        return _ops.Reshape(in_shape, out_shape)
    if target in _RELU:
        return _ops.ReLU()
    if target in _ADD or target in _SUB:
        sign = 1.0 if target in _ADD else -1.0
        a, b = fxn.args[:2]
        alpha = float(kwargs.get("alpha", 1)) * sign
        one = torch.ones((), dtype=torch.float64)
        if a is b:  # x + x
            return _ops.Scale(one * (1 + alpha), one * 0)
        if a in tensor_in and b in tensor_in:
            if tuple(values[a].shape) != tuple(values[b].shape):
                raise _unsupported(fxn.name, f"{name} with broadcasting")
            return _ops.Sum((1.0, alpha))
        if len(tensor_in) == 1:  # a tensor and a constant
            const = values[b] if b not in tensor_in else values[a]
            const = torch.as_tensor(const, dtype=torch.float64)
            if a in tensor_in:  # x + alpha * c
                return _ops.Scale(one, alpha * const)
            return _ops.Scale(one * alpha, const)  # c + alpha * x
        raise _unsupported(fxn.name, f"{name} of these operands")
    raise _unsupported(fxn.name, f"function {name}")

"""Curves ``theta(t)`` in weight space between two endpoints (Garipov et al., 2018).

A curve is a function of parameter dicts: the two endpoints and the bends (control
points). No curve-specific layers: the model at ``theta(t)`` is evaluated with
``torch.func.functional_call(model, curve.state(t), (x,))``. :class:`CurveModel` is
the curve as a model whose trainable parameters are the bends, trained by
:func:`landscape.train.adversarial_train` at a random ``t`` per batch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .. import _finite, io

__all__ = [
    "KINDS",
    "Curve",
    "CurveModel",
    "curve_weights",
    "curve_point",
    "init_curve",
    "bn_buffer_names",
]

KINDS = ("line", "bezier", "polychain")
FORMAT = "landscape.connectivity.curve/1"
_BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


def _check_kind(kind: str, num_bends: int) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown curve kind {kind!r}; choose one of {KINDS}")
    if kind == "line" and num_bends != 0:
        raise ValueError(f"a line has no bends, got num_bends={num_bends}")
    if kind != "line" and num_bends < 1:
        raise ValueError(
            f"a {kind} curve needs num_bends >= 1 (got {num_bends}); "
            "use kind='line' for the straight line"
        )


def _check_t(t: float) -> float:
    t = float(t)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"the curve parameter t must lie in [0, 1], got {t}")
    return t


def curve_weights(kind: str, t: float, num_bends: int) -> list[float]:
    """Weights of the control points ``[start, *bends, end]`` at ``t``.

    ``line``: ``(1 - t, t)``. ``bezier``: Bernstein polynomials of degree
    ``num_bends + 1`` (one bend: the quadratic Bezier curve
    ``(1-t)^2 a + 2t(1-t) m + t^2 b``). ``polychain``: piecewise linear through the
    bends placed at ``t = i / (num_bends + 1)``. At ``t = 0`` and ``t = 1`` the weights
    are exactly one-hot, so the curve passes exactly through its endpoints.

    Example:
        >>> curve_weights("bezier", 0.5, 1)
        [0.25, 0.5, 0.25]
        >>> curve_weights("polychain", 0.25, 1)
        [0.5, 0.5, 0.0]
    """
    _check_kind(kind, num_bends)
    t = _check_t(t)
    n = num_bends + 1  # segments (polychain) / degree (Bezier)
    if kind in ("line", "polychain"):
        w = [0.0] * (n + 1)
        j = min(int(math.floor(t * n)), n - 1)
        s = t * n - j
        w[j], w[j + 1] = 1.0 - s, s
        return w
    return [math.comb(n, k) * t**k * (1.0 - t) ** (n - k) for k in range(n + 1)]


def curve_point(
    t: float,
    start: Mapping[str, Tensor],
    end: Mapping[str, Tensor],
    bends: Sequence[Mapping[str, Tensor]] = (),
    *,
    kind: str = "bezier",
) -> dict[str, Tensor]:
    """``theta(t)``: the weighted sum of the control points ``[start, *bends, end]``.

    Differentiable in the bends (and endpoints): the curve trainer calls it with bend
    tensors that require gradients.

    Args:
        t: position on the curve, in [0, 1].
        start: parameters at ``t = 0`` (a dict keyed like ``named_parameters()``).
        end: parameters at ``t = 1`` (same keys and shapes).
        bends: the bends' parameter dicts (none for ``kind="line"``).
        kind: ``"line"``, ``"bezier"`` or ``"polychain"``.

    Returns:
        A new dict of tensors (never aliases of the inputs).

    Example:
        >>> a, b, m = {"w": torch.zeros(2)}, {"w": torch.ones(2)}, {"w": torch.tensor([1.0, 3.0])}
        >>> curve_point(0.5, a, b, [m])["w"].tolist()
        [0.75, 1.75]
        >>> torch.equal(curve_point(1.0, a, b, [m])["w"], b["w"])
        True
    """
    points = [start, *bends, end]
    w = curve_weights(kind, t, len(bends))
    terms = [(wi, p) for wi, p in zip(w, points) if wi != 0.0]
    out = {}
    for k in start:
        acc = terms[0][0] * terms[0][1][k]
        for wi, p in terms[1:]:
            acc = acc + wi * p[k]
        out[k] = acc
    return out


def bn_buffer_names(model: nn.Module) -> list[str]:
    """Names of the BatchNorm running-statistics buffers (re-estimated along a curve)."""
    names = []
    for mname, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            names += [f"{mname}.{b}" if mname else b for b in _BN_STATS]
    return names


def _detached(d: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in d.items()}


@dataclass(frozen=True)
class Curve:
    """A curve between two models: endpoints, bends and the endpoints' buffers.

    Attributes:
        kind: ``"line"``, ``"bezier"`` or ``"polychain"``.
        start: parameters at ``t = 0`` (``named_parameters()`` of the first model).
        end: parameters at ``t = 1``.
        bends: the bends' parameter dicts (trained as :class:`CurveModel`).
        start_buffers / end_buffers: the endpoints' buffers (``named_buffers()``).

    Buffers are handled explicitly: BatchNorm running statistics have no meaning
    between the endpoints and are re-estimated at every ``t`` by :func:`scan_curve`
    (:func:`bn_statistics`); :meth:`buffers` interpolates them linearly as a
    placeholder, exactly the endpoints' at ``t = 0`` and ``1``. Every other floating
    buffer (e.g. a normalisation's mean) is the endpoints' value when both agree and
    is interpolated linearly otherwise; integer buffers are the nearer endpoint's.
    """

    kind: str
    start: dict[str, Tensor]
    end: dict[str, Tensor]
    bends: tuple[dict[str, Tensor], ...] = ()
    start_buffers: dict[str, Tensor] = field(default_factory=dict)
    end_buffers: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "bends", tuple(self.bends))
        _check_kind(self.kind, len(self.bends))
        _check_same(self.start, self.end, "the endpoints' parameters")
        _check_same(self.start_buffers, self.end_buffers, "the endpoints' buffers")
        for i, b in enumerate(self.bends):
            _check_same(self.start, b, f"bend {i} and the endpoints")

    @property
    def num_bends(self) -> int:
        return len(self.bends)

    def params(self, t: float) -> dict[str, Tensor]:
        """Parameters ``theta(t)`` (new tensors)."""
        return curve_point(t, self.start, self.end, self.bends, kind=self.kind)

    def buffers(self, t: float) -> dict[str, Tensor]:
        """Buffers at ``t`` (new tensors; see the class docstring for the rule)."""
        return _buffers_at(_check_t(t), self.start_buffers, self.end_buffers)

    def state(self, t: float) -> dict[str, Tensor]:
        """Parameters and buffers at ``t``: the dict for ``functional_call``."""
        return {**self.params(t), **self.buffers(t)}

    def replace(self, **kw: Any) -> Curve:
        """A copy with some fields changed (e.g. ``bends=``)."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d.update(kw)
        return Curve(**d)

    def to(self, device: torch.device | str) -> Curve:
        """The curve with every tensor on ``device``."""

        def mv(d):
            return {k: v.to(device) for k, v in d.items()}

        return Curve(
            self.kind,
            mv(self.start),
            mv(self.end),
            tuple(mv(b) for b in self.bends),
            mv(self.start_buffers),
            mv(self.end_buffers),
        )

    def to_state(self) -> dict[str, Any]:
        """Plain dict of tensors (what :meth:`save` writes)."""
        return {
            "format": FORMAT,
            "kind": self.kind,
            "start": _detached(self.start),
            "end": _detached(self.end),
            "bends": [_detached(b) for b in self.bends],
            "start_buffers": _detached(self.start_buffers),
            "end_buffers": _detached(self.end_buffers),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Curve:
        if not isinstance(state, Mapping) or state.get("format") != FORMAT:
            raise io.CorruptFileError(
                "not a saved curve (no 'format': 'landscape.connectivity.curve/1')"
            )
        return cls(
            state["kind"],
            dict(state["start"]),
            dict(state["end"]),
            tuple(dict(b) for b in state["bends"]),
            dict(state["start_buffers"]),
            dict(state["end_buffers"]),
        )

    def save(self, path: str | Path, **extra: Any) -> Path:
        """Write the curve (plus JSON-able ``extra`` entries) atomically."""
        io.atomic_save_torch({**self.to_state(), **extra}, path)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Curve:
        """Read a curve written by :meth:`save` (``weights_only=True``); a file that
        is not a curve, or whose weights hold NaN or inf, is refused naming it."""
        state = io.load_torch(path, kind="state")
        try:
            curve = cls.from_state(state)
        except (KeyError, TypeError, ValueError, io.CorruptFileError) as err:
            raise io.CorruptFileError(
                f"{path} is not a saved curve ({err}) - retrain the curve (python -m "
                "landscape.connectivity train) or pass the right file"
            ) from None
        for name, d in (("start", curve.start), ("end", curve.end)):
            _finite.check_params(d, name=f"the curve in {path}", what=f"its {name}")
        for i, b in enumerate(curve.bends):
            _finite.check_params(b, name=f"the curve in {path}", what=f"its bend {i}")
        return curve


def _check_same(a: Mapping[str, Tensor], b: Mapping[str, Tensor], what: str) -> None:
    if a.keys() != b.keys():
        diff = sorted(set(a) ^ set(b))
        raise ValueError(f"{what} have different entries: {diff[:5]}")
    for k in a:
        if a[k].shape != b[k].shape or a[k].dtype != b[k].dtype:
            raise ValueError(
                f"{what} differ at {k!r}: {tuple(a[k].shape)} {a[k].dtype} vs "
                f"{tuple(b[k].shape)} {b[k].dtype}"
            )


def _split(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    return params, buffers


def init_curve(
    model_a: nn.Module | Mapping[str, Tensor],
    model_b: nn.Module | Mapping[str, Tensor],
    *,
    kind: str = "bezier",
    num_bends: int | None = None,
) -> Curve:
    """A curve between two models (copies of their tensors) with the bends on the line.

    Bend ``i`` starts at ``(1 - s) a + s b`` with ``s = (i + 1) / (num_bends + 1)``
    (Garipov et al.'s linear initialisation), so an untrained Bezier curve or
    polygonal chain traces the straight line.

    Args:
        model_a: the model at ``t = 0`` (an ``nn.Module``, or a dict of parameters
            alone: such a curve has no buffers).
        model_b: the model at ``t = 1`` (same architecture).
        kind: ``"line"``, ``"bezier"`` or ``"polychain"``.
        num_bends: bends (default 1 for a curve, 0 for the line).

    Example:
        >>> a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
        >>> c = init_curve(a, b)
        >>> torch.allclose(c.params(0.3)["weight"], 0.7 * a.weight + 0.3 * b.weight)
        True
    """
    if num_bends is None:
        num_bends = 0 if kind == "line" else 1
    _check_kind(kind, int(num_bends))
    if isinstance(model_a, nn.Module) and isinstance(model_b, nn.Module):
        pa, ba = _split(model_a)
        pb, bb = _split(model_b)
    elif isinstance(model_a, Mapping) and isinstance(model_b, Mapping):
        pa, pb, ba, bb = _detached(model_a), _detached(model_b), {}, {}
    else:
        raise TypeError(
            "init_curve takes two nn.Modules or two parameter dicts, got "
            f"{type(model_a).__name__} and {type(model_b).__name__}"
        )
    _check_same(pa, pb, "the two models' parameters")
    n = int(num_bends)
    bends = []
    for i in range(n):
        s = (i + 1) / (n + 1)
        bends.append({k: (1.0 - s) * pa[k] + s * pb[k].to(pa[k]) for k in pa})
    return Curve(kind, pa, pb, tuple(bends), ba, bb)


def _frozen(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.requires_grad_(False)
    return m


class CurveModel(nn.Module):
    """A curve between two models as a model: the network at ``theta(t)``, whose
    trainable parameters are the bends (Garipov et al., 2018); the endpoints are
    fixed.

    Train it with :func:`landscape.train.adversarial_train` like any model (Liu et
    al., 2020, Appendix C, train it adversarially): the trainer calls
    :meth:`resample` at the start of every batch, which draws ``t ~ U(0, 1)`` from
    the run's generator, so the attack and the optimizer step of a batch see the
    same point of the curve and a resumed run draws the same ``t``s. The forward
    pass evaluates the endpoints' architecture at ``theta(t)`` through
    ``functional_call`` with fresh buffers (:meth:`Curve.buffers`): BatchNorm in
    train mode normalises by batch statistics and its running-statistics updates go
    to scratch tensors (re-estimate them with :func:`scan_curve` /
    :func:`bn_statistics`; for a BatchNorm model train with
    ``attack_train_mode=True``, as there are no running statistics between the
    endpoints). :meth:`curve` gives the trained :class:`Curve`.

    The endpoints are part of the model's state: loading the state of a curve
    between other endpoints is an error (so a resumed run refuses other models).

    Args:
        model_a: the model at ``t = 0``.
        model_b: the model at ``t = 1`` (same architecture, device and dtype).
        kind: ``"bezier"`` or ``"polychain"``.
        num_bends: bends (default 1), initialised on the line (:func:`init_curve`).

    Example:
        >>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
        >>> cm = CurveModel(a, b)
        >>> [n for n, p in cm.named_parameters() if p.requires_grad]
        ['bends.0.weight', 'bends.0.bias']
        >>> cm.t = 1.0
        >>> torch.equal(cm(torch.ones(1, 2)), b(torch.ones(1, 2)))
        True
    """

    def __init__(
        self,
        model_a: nn.Module,
        model_b: nn.Module,
        *,
        kind: str = "bezier",
        num_bends: int = 1,
    ):
        super().__init__()
        if kind not in KINDS or kind == "line":
            raise ValueError(
                f"kind must be 'bezier' or 'polychain' (a line has nothing to train), "
                f"got {kind!r}"
            )
        curve = init_curve(model_a, model_b, kind=kind, num_bends=num_bends)
        self.kind = kind
        self.start = _frozen(model_a)
        self.end = _frozen(model_b)
        self.bends = nn.ModuleList()
        for b in curve.bends:
            m = copy.deepcopy(model_a)
            with torch.no_grad():
                for n, p in m.named_parameters():
                    p.copy_(b[n])
                    p.requires_grad_(True)
            self.bends.append(m)
        self.t = 0.5
        self._theta = _Cache()  # theta(t) for the forwards of one step
        self.register_load_state_dict_pre_hook(_same_endpoints)

    def resample(self, generator: torch.Generator) -> None:
        """Draw the point ``t ~ U(0, 1)`` of the next batch (the trainer's hook)."""
        self.t = float(torch.rand((), generator=generator, dtype=torch.float64))

    def curve(self) -> Curve:
        """The curve with the current bends (detached copies, on the model's device)."""
        start, end = (
            dict(self.start.named_parameters()),
            dict(self.end.named_parameters()),
        )
        bends = tuple(dict(b.named_parameters()) for b in self.bends)
        return Curve(
            self.kind,
            _detached(start),
            _detached(end),
            tuple(_detached(b) for b in bends),
            _detached(dict(self.start.named_buffers())),
            _detached(dict(self.end.named_buffers())),
        )

    def _params_at(self, t: float) -> dict[str, Tensor]:
        """theta(t), computed once for the forwards of a step (the attack's and the
        optimizer step's): kept while t, the grad mode and every control point's
        version (bumped by an optimizer step or a load) are the same, and until a
        backward pass goes through it (which frees its graph). Rebuilding it from
        the control points costs about a third of a LeNet forward pass."""
        points = [self.start, *self.bends, self.end]
        key = (
            t,
            torch.is_grad_enabled(),
            tuple(p._version for m in points for p in m.parameters()),
        )
        if self._theta.key != key:
            bends = [dict(b.named_parameters()) for b in self.bends]
            start = dict(self.start.named_parameters())
            end = dict(self.end.named_parameters())
            params = curve_point(t, start, end, bends, kind=self.kind)
            for v in params.values():
                if v.requires_grad:
                    v.register_hook(self._theta.clear_on_backward)
            self._theta.key, self._theta.params = key, params
        return self._theta.params

    def forward(self, x: Tensor) -> Tensor:
        t = _check_t(self.t)
        # fresh buffers every forward: BatchNorm's updates in train mode are scratch
        buffers = _buffers_at(
            t, dict(self.start.named_buffers()), dict(self.end.named_buffers())
        )
        return functional_call(self.start, {**self._params_at(t), **buffers}, (x,))


class _Cache:
    """theta(t) of the current step; not copied with the model (a copy recomputes)."""

    def __init__(self):
        self.key: tuple | None = None
        self.params: dict[str, Tensor] = {}

    def clear_on_backward(self, grad: Tensor) -> None:
        self.key = None  # a backward pass went through theta(t): rebuild it

    def __deepcopy__(self, memo: dict) -> _Cache:
        return _Cache()


def _buffers_at(t: float, a: dict[str, Tensor], b: dict[str, Tensor]):
    """:meth:`Curve.buffers` of the endpoints' buffers ``a`` and ``b`` at ``t``."""
    out = {}
    for k, va in a.items():
        vb = b[k]
        if not va.is_floating_point():
            out[k] = (va if t < 0.5 else vb).clone()
        elif t == 0.0 or torch.equal(va, vb):
            out[k] = va.clone()
        elif t == 1.0:
            out[k] = vb.clone()
        else:
            out[k] = (1.0 - t) * va + t * vb
    return out


def _same_endpoints(module, state_dict, prefix, *args) -> None:
    """The load-state hook of :class:`CurveModel`: the endpoints must not change."""
    for side in ("start", "end"):
        mine = getattr(module, side).state_dict()
        for k, v in mine.items():
            other = state_dict.get(f"{prefix}{side}.{k}")
            if other is not None and not torch.equal(other.to(v.device), v):
                raise RuntimeError(
                    f"the curve's {side} model differs from the one in the state "
                    f"being loaded (at {k}): a curve is defined by its endpoints"
                )

"""The evaluation protocol: clean accuracy, then attacks in sequence on the points still
correct, pointwise worst case, per-attack and overall robust accuracy, an eps sweep;
resumable through a state file.

The data streams from the caller's loader one batch at a time (two passes: the clean
pass, then every attack at every eps on each batch in turn), so the device holds one
batch, never the data set. Under ``torch.distributed`` every rank calls
:func:`evaluate` with the same arguments and attacks the batches ``b % world ==
rank`` (each attack's generator depends only on (eps, attack, batch), so the merged
result is the single-process one, bitwise); the ranks' per-point results are merged
at the end and every rank returns the whole result. A state file then holds one
part per rank (``NAME.rankRofW.pt``)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import _batches, _dist, _finite, _utils, io
from .. import attacks as attacks_mod
from .. import certify as certify_mod
from ._adaptive import adapt
from ._checks import masking_checks
from ._presets import preset_attacks

__all__ = ["EvalResult", "evaluate", "robust_accuracy"]

# the methods of certify.certify that evaluate(certify=...) names (tests check them)
CERTIFY_METHODS = ("crown", "crown-ibp", "ibp")


@dataclasses.dataclass(frozen=True)
class EvalResult(io.Result):
    """Per-example outcome of an evaluation protocol at one or more eps.

    Attributes:
        eps: budgets, shape (E,).
        norm: ``"linf"`` or ``"l2"``.
        preset: preset name (or ``"custom"``).
        attacks: attack names, in the order they ran.
        clean_correct: (N,) bool, clean prediction correct.
        robust_correct: (E, N) bool, correct under every attack (pointwise worst case).
        broken_by: (E, N) int, index into ``attacks`` of the first attack that broke the
            point; -1 if none did, -2 if the clean prediction is already wrong.
        checks: gradient-masking checks, ``{name: {"passed", "value", "detail"}}``.
        timings: ``{attack: seconds per eps}`` (shape (E,) each; work skipped on a
            resume counts as 0).
        restart_curves: ``{attack: (E, R) robust accuracy after each restart}`` for
            the PGD attacks (the curve flattens where more restarts stop paying; an
            early exit, ``patience``, holds the last value).
        certified: with ``certify``, (E, N) bool: certified robust (the method in
            ``meta["certify"]``).
        adversarial: with ``return_adversarial=True``, (E, N, ...) inputs: the one
            that broke each point, the clean input elsewhere; else None.
        meta: call arguments, attack settings, seed and provenance.
    """

    SHAPES = {
        "eps": "E",
        "clean_correct": "N",
        "robust_correct": "E N",
        "broken_by": "E N",
        "timings": "E",
        "restart_curves": "E ...",
        "certified": "E N",
        "adversarial": "E N ...",
    }

    eps: np.ndarray
    norm: str
    preset: str
    attacks: list
    clean_correct: np.ndarray
    robust_correct: np.ndarray
    broken_by: np.ndarray
    checks: dict = dataclasses.field(default_factory=dict)
    timings: dict = dataclasses.field(default_factory=dict)
    restart_curves: dict = dataclasses.field(default_factory=dict)
    certified: np.ndarray | None = None
    adversarial: np.ndarray | None = None
    meta: dict = dataclasses.field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return int(np.asarray(self.clean_correct).shape[0])

    @property
    def clean_accuracy(self) -> float:
        return float(np.mean(self.clean_correct)) if self.num_samples else float("nan")

    @property
    def robust_accuracy(self) -> np.ndarray:
        """Overall robust accuracy per eps, shape (E,)."""
        return np.asarray(self.robust_correct, dtype=float).mean(axis=1)

    @property
    def bracket(self) -> tuple[np.ndarray, np.ndarray]:
        """``(certified, attacked)`` robust accuracy per eps: the true robust accuracy
        lies between them (needs ``certify=True``)."""
        if self.certified is None:
            raise ValueError("no certificate: run evaluate(..., certify=True)")
        cert = np.asarray(self.certified, dtype=float).mean(axis=1)
        return cert, self.robust_accuracy

    def per_attack_accuracy(self) -> dict[str, np.ndarray]:
        """Robust accuracy after each attack of the sequence (cumulative), per eps."""
        bb = np.asarray(self.broken_by)
        out = {}
        for i, name in enumerate(self.attacks):
            alive = (bb == -1) | (bb > i)
            out[str(name)] = alive.mean(axis=1) if bb.size else np.zeros(len(self.eps))
        return out

    def broken_counts(self) -> dict[str, np.ndarray]:
        """Number of points each attack broke first (the others had missed), per eps."""
        bb = np.asarray(self.broken_by)
        return {str(n): (bb == i).sum(axis=1) for i, n in enumerate(self.attacks)}

    def table(self) -> str:
        """A readable text table: robust accuracy (%) after each attack, per eps."""
        names = [str(a) for a in self.attacks]
        w = max([10, *(len(n) + 2 for n in names)])
        head = (
            f"{self.preset} evaluation, {self.norm}, {self.num_samples} points, "
            f"clean accuracy {100 * self.clean_accuracy:.2f}%"
        )
        lines = [
            head,
            "eps".ljust(10) + "".join(n.rjust(w) for n in names) + "robust".rjust(w),
        ]
        per = self.per_attack_accuracy()
        for e, eps in enumerate(np.atleast_1d(self.eps)):
            row = f"{float(eps):<10.4g}" + "".join(
                f"{100 * per[n][e]:.2f}%".rjust(w) for n in names
            )
            row += f"{100 * self.robust_accuracy[e]:.2f}%".rjust(w)
            if self.certified is not None:
                row += f"  certified {100 * self.bracket[0][e]:.2f}%"
            lines.append(row)
        if self.meta.get("adaptive"):
            lines.append("adaptive attacks: " + ", ".join(self.meta["adaptive"]))
        if self.checks:
            lines.append("gradient-masking checks:")
            for name, c in self.checks.items():
                tag = {True: "PASS", False: "FAIL", None: "n/a "}.get(
                    c.get("passed"), "n/a "
                )
                lines.append(f"  [{tag}] {name}: {c.get('detail', '')}")
        return "\n".join(lines)

    def save_table(self, path: str | Path) -> Path:
        """Write :meth:`table` to a text file (atomically)."""
        path = Path(path)
        with io.atomic_write(path, "w") as f:
            f.write(self.table() + "\n")
        return path


def _class_batches(data: Any, *, batch_size: int, model) -> _batches.Batched:
    """``data`` as validated batches (class labels, inputs in [0, 1]) by the
    package's one owner of batches, :func:`landscape._batches.as_batches`, moved to
    the model's device one at a time."""
    return _batches.as_batches(
        data, model=model, labels="class", images=True, batch_size=batch_size
    )


@dataclasses.dataclass
class _Clean:
    """What the clean pass learns: per-point clean correctness, the batch sizes, the
    data signature, the classes, the first batch (for the attacks' fitting) and,
    with ``return_adversarial``, the clean inputs of this rank's batches."""

    clean: Tensor  # (N,) bool
    sizes: list[int]
    digest: str
    num_classes: int
    first: Tensor
    inputs: dict[int, Tensor]


def _clean_pass(model, batches, rank: int, world: int, keep: bool) -> _Clean:
    """Clean predictions of this rank's batches (merged over the ranks), one read
    back to the host per pass."""
    parts: dict[int, tuple] = {}
    first = None
    outs, ys, xsums, idx, bad = [], [], [], [], []
    inputs: dict[int, Tensor] = {}
    with _utils.eval_mode(model), torch.no_grad():
        owned = (lambda i: _dist.owned(i, rank, world)) if world > 1 else None
        for b, (x, y) in batches.numbered(owned=owned):
            out = model(x)
            if first is None:
                _utils.check_logits(out, where="evaluate: model")
                first, k = x, int(out.shape[1])
            outs.append(out.argmax(1) == y)
            bad.append((~torch.isfinite(out)).sum())  # read with the predictions
            ys.append(y.long())
            xsums.append(x.double().sum())
            idx.append(b)
            if keep:
                inputs[b] = x.detach().cpu()
    if outs:  # the pass's one read
        flat = torch.cat([torch.cat(outs).long(), torch.cat(ys), torch.stack(bad)])
        flat = flat.cpu()
        sums = torch.stack(xsums).cpu().numpy()
        total = (len(flat) - len(bad)) // 2
        for j, b in enumerate(idx):
            if int(flat[2 * total + j]):
                raise _finite.NonFiniteError(
                    f"NaN or inf in the model's outputs at the clean inputs of batch {b}"
                    f" ({int(flat[2 * total + j])} values) - check the inputs and "
                    "weights for values that overflow; nothing was saved from this "
                    "computation"
                )
        n = 0
        for j, b in enumerate(idx):
            m = len(ys[j])
            parts[b] = (flat[n : n + m].bool(), flat[total + n :][:m], sums[j])
            n += m
    if world > 1:
        gathered = _dist.all_gather_objects(
            (parts, k if first is not None else 0), world
        )
        parts = {b: v for p, _ in gathered for b, v in p.items()}
        k = max(kk for _, kk in gathered)
        if first is None:  # fewer batches than ranks: this rank attacks nothing
            first = next(iter(batches))[0]
    order = sorted(parts)
    h = hashlib.sha256()
    for b in order:
        h.update(parts[b][1].numpy().tobytes())
        h.update(np.float64(parts[b][2]).tobytes())
    return _Clean(
        clean=torch.cat([parts[b][0] for b in order]),
        sizes=[len(parts[b][1]) for b in order],
        digest=h.hexdigest()[:16],
        num_classes=k,
        first=first,
        inputs=inputs,
    )


def _signature(
    digest: str, eps, norm, sequence: list[attacks_mod.Attack], seed
) -> dict:
    return {
        "data": digest,
        "eps": [float(e) for e in eps],
        "norm": norm,
        "attacks": [a.to_dict() for a in sequence],
        "seed": seed,
    }


def _chunk_generator(seed: int, e: int, a: int, b: int, device) -> torch.Generator:
    """Per (eps, attack, batch) seed, independent of history: resumed runs match."""
    return _utils.derived_generator(seed, e, a, b, device=device)


def _eval_seed(generator: torch.Generator | None, state_path) -> int:
    """The evaluation's seed: the generator's; without one, the seed of the state
    file being resumed, else one drawn from torch's global RNG (as everywhere)."""
    if generator is not None:
        return int(generator.initial_seed())
    if state_path is not None and Path(state_path).exists():
        sig = _read_state(state_path).get("signature") or {}
        if "seed" in sig:
            return int(sig["seed"])
    return _utils.make_generator(None)[1]


_STATE_KEYS = ("signature", "robust", "broken_by", "done")


def _read_state(path) -> dict:
    """An evaluation state file, or a CorruptFileError that says what to do."""
    st = io.load_torch(path, kind="state")
    if not isinstance(st, dict) or not all(k in st for k in _STATE_KEYS):
        raise io.CorruptFileError(
            f"state file {path} is not an evaluation state - delete it to start the "
            "evaluation over"
        )
    return st


def _sequence(preset, attacks, eps, norm, first, num_classes, budgets) -> tuple:
    """The attack sequence (a preset's or the caller's), the budgets it runs at and
    its norm, fitted to the inputs: Square dropped and SimBA on the pixel basis for
    non-image inputs (with a warning)."""
    if attacks is None:
        norm = _utils.check_norm(norm or "linf")
        eps_list = _eps_list(eps)
        sequence = preset_attacks(
            preset, eps_list[0], norm, num_classes=num_classes, **budgets
        )
    else:
        sequence, preset = list(attacks), "custom"
        if not sequence or not all(isinstance(a, attacks_mod.Attack) for a in sequence):
            raise TypeError(
                "attacks must be a non-empty list of attack values, e.g. "
                "[attacks.APGD(eps=0.3), attacks.Square(eps=0.3)]"
            )
        norms = sorted({a.norm for a in sequence})
        if len(norms) > 1 or (norm is not None and _utils.check_norm(norm) != norms[0]):
            raise ValueError(
                f"the attacks' norms {norms} (and norm={norm!r}) differ: one "
                "evaluation has one threat model"
            )
        norm = norms[0]
        if eps is None:
            given = sorted({a.eps for a in sequence})
            if len(given) > 1:
                raise ValueError(
                    f"the attacks have different eps {given}: pass eps= (one budget "
                    "or a sweep) to run all of them at each budget"
                )
            eps = given[0]
        eps_list = _eps_list(eps)
    if first.ndim != 4:
        dropped = [a.name for a in sequence if isinstance(a, attacks_mod.Square)]
        sequence = [
            dataclasses.replace(a, dct=False) if isinstance(a, attacks_mod.SimBA) else a
            for a in sequence
            if not isinstance(a, attacks_mod.Square)
        ]
        if dropped:
            warnings.warn(
                f"inputs are not images (N, C, H, W): skipping {dropped}", stacklevel=3
            )
    return sequence, preset, eps_list, norm


def _eps_list(eps) -> list[float]:
    eps_list = [
        _utils.check_eps(e) for e in np.atleast_1d(np.asarray(eps, dtype=float))
    ]
    if not eps_list:
        raise ValueError("eps must hold at least one budget")
    return eps_list


@dataclasses.dataclass
class _State:
    """What the sequence of attacks has found so far (saved after every batch)."""

    robust: Tensor  # (E, N) bool
    broken_by: Tensor  # (E, N) long
    done: dict  # "e/a" -> number of finished batches
    seconds: Tensor  # (E, A) float64, attack time per eps
    adv: Tensor | None  # (E, N, ...) worst-case inputs, or None
    curves: dict = dataclasses.field(default_factory=dict)  # "e/a" -> unbroken/restart

    def save(self, path, sig: dict) -> None:
        io.atomic_save_torch({"signature": sig, **dataclasses.asdict(self)}, path)


def _initial_state(clean: _Clean, num_eps, num_attacks, keep_adv, sig, path):
    if path is not None and Path(path).exists():
        st = _read_state(path)
        if st.get("signature") != sig:
            raise ValueError(
                f"state file {path} belongs to another evaluation "
                f"({st.get('signature')} != {sig}); delete it or pass another state_path"
            )
        return _State(
            st["robust"],
            st["broken_by"],
            st["done"],
            st.get("seconds", torch.zeros(num_eps, num_attacks, dtype=torch.float64)),
            st.get("adv"),
            st.get("curves", {}),
        )
    adv = None
    if keep_adv:
        shape = (num_eps, len(clean.clean), *clean.first.shape[1:])
        adv = torch.zeros(shape, dtype=clean.first.dtype)
        offsets = np.cumsum([0, *clean.sizes])
        for b, x in clean.inputs.items():
            adv[:, int(offsets[b]) : int(offsets[b + 1])] = x
    c = clean.clean
    return _State(
        c.unsqueeze(0).repeat(num_eps, 1),
        torch.where(c, -1, -2).unsqueeze(0).repeat(num_eps, 1).long(),
        {},
        torch.zeros(num_eps, num_attacks, dtype=torch.float64),
        adv,
    )


def _rank_path(path, rank: int, world: int) -> Path | None:
    """The state file of this rank (one per rank under ``torch.distributed``)."""
    if path is None:
        return None
    path = Path(path)
    if world == 1:
        return path
    return path.with_name(f"{path.stem}.rank{rank}of{world}{path.suffix}")


def _fast_layout(model: nn.Module, first: Tensor) -> nn.Module:
    """The model the attacks query: on CPU, for image inputs and a model with 2-D
    convolutions, a channels-last copy of it (the same function; oneDNN's CPU
    convolutions run 1.2x (forward + backward) to 1.8x (forward) faster in that
    layout on a small CNN, issue 29) whose ``ReLU -> MaxPool2d`` pairs run as
    ``MaxPool2d -> ReLU`` (:func:`_pool_before_relu`: the same outputs and input
    gradients, bitwise, with the ReLU on a 4x smaller tensor) and whose
    convolutions of few input channels compute their input gradient by one
    matrix product and shifted sums (:func:`_input_convs`), and whose forward
    passes without autograd run a frozen trace of it (:class:`_NoGradFrozen`); else, or when the
    model cannot be copied, the model itself. The verdicts stay the model's own
    (:func:`_attack_alive`)."""
    if first.ndim != 4 or first.device.type != "cpu":
        return model
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return model
    try:
        fast = copy.deepcopy(model)
    except Exception:  # e.g. a module holding a handle that cannot be copied
        return model
    _pool_before_relu(fast)
    _input_convs(fast)
    fast = fast.to(memory_format=torch.channels_last)
    frozen = _frozen_inference(fast, first)
    return fast if frozen is None else _NoGradFrozen(fast, frozen, first)


class _NoGradFrozen(nn.Module):
    """The attacks' copy whose forward passes without autograd (Square's queries,
    FAB's checks) run a frozen, inference-optimised TorchScript trace of it
    (oneDNN's prepacked weights and fused convolution + ReLU: 0.7x the time of
    the eager copy on an MNIST CNN at Square's batch sizes, issue 29); passes with
    autograd, other input shapes or dtypes, and training mode use the copy."""

    def __init__(self, fast: nn.Module, frozen, first: Tensor):
        super().__init__()
        self.fast = fast
        self.__dict__["_frozen"] = frozen  # not a submodule: never trained or moved
        self._key = (tuple(first.shape[1:]), first.dtype, first.device)

    def forward(self, x: Tensor) -> Tensor:
        if (
            self.training
            or torch.is_grad_enabled()
            or (tuple(x.shape[1:]), x.dtype, x.device) != self._key
        ):
            return self.fast(x)
        return self._frozen(x)


def _frozen_inference(fast: nn.Module, first: Tensor):
    """A frozen, inference-optimised TorchScript trace of ``fast`` (eval mode),
    or None when the model is not deterministic, cannot be traced, or the trace
    does not reproduce its outputs (to 1e-4 of their scale) at the traced batch
    size, at batch size 1 and at perturbed inputs (a trace records one path of
    Python control flow). Leaves torch's global RNG as it was."""
    import warnings

    k = min(8, first.shape[0])
    if k < 2:
        return None
    g = torch.Generator().manual_seed(0)
    noisy = (first[:k] + 0.1 * torch.rand(first[:k].shape, generator=g)).clamp(0, 1)
    probes = [first[:k], noisy, first[k - 1 : k], noisy[:1]]
    try:
        # (fork_rng: a randomised model's probes leave torch's global RNG as it was)
        with _utils.eval_mode(fast), torch.no_grad(), warnings.catch_warnings(), \
                torch.random.fork_rng(devices=[]):  # fmt: skip
            warnings.simplefilter("ignore")  # tracer and deprecation warnings
            want = [fast(v) for v in probes]
            if not torch.equal(fast(probes[0]), want[0]):
                return None  # a randomised model
            traced = torch.jit.trace(fast, probes[0], check_trace=False)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            for v, ref in zip(probes, want):
                out = frozen(v)
                tol = 1e-4 * max(1.0, float(ref.abs().max()))
                if (
                    not isinstance(out, Tensor)
                    or out.shape != ref.shape
                    or not bool((out - ref).abs().max() <= tol)
                ):
                    return None
    except Exception:  # not traceable (data-dependent outputs, unsupported ops)
        return None
    return frozen


def _pool_before_relu(model: nn.Module) -> int:
    """Swap every ``nn.ReLU`` directly followed by an ``nn.MaxPool2d`` (without
    ``return_indices``) in an ``nn.Sequential`` of ``model``, in place; returns the
    number of pairs swapped. ``max(relu(v)) = relu(max(v))`` exactly (ReLU is
    monotone), and the input gradients agree bitwise: where a window's maximum is
    positive both route the gradient to its first maximum (the same element), else
    both give 0. The ReLU then runs (forward and backward) on the pooled tensor.
    Used on the attacks' copy of a model (issue 29: 15-25 % of a forward or forward
    + backward pass of an MNIST CNN on CPU)."""
    swapped = 0
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        keys = list(seq._modules)
        i = 0
        while i + 1 < len(keys):
            a, b = seq._modules[keys[i]], seq._modules[keys[i + 1]]
            if (
                type(a) is nn.ReLU
                and type(b) is nn.MaxPool2d
                and not b.return_indices
                and not a._forward_hooks and not a._forward_pre_hooks
                and not b._forward_hooks and not b._forward_pre_hooks
            ):  # fmt: skip
                seq._modules[keys[i]], seq._modules[keys[i + 1]] = b, a
                swapped += 1
                i += 2
            else:
                i += 1
    return swapped


class _SmallInputConv(nn.Module):
    """A ``Conv2d`` of few input channels (an image's first layer) whose input
    gradient is one matrix product and ``k * k * C_in`` shifted sums
    (:class:`_SmallInputConvFn`) instead of oneDNN's backward-data kernel, which is
    slow for so few output channels (issue 29: 75-130 us per 28 x 28 image for 16 ->
    1 channels, 5 x 5, against ~30). The forward is the convolution's own."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        c = self.conv
        if not (torch.is_grad_enabled() and x.requires_grad):
            return c(x)
        return _SmallInputConvFn.apply(
            x, c.weight, c.bias, c.stride, c.padding, c.dilation
        )


class _SmallInputConvFn(torch.autograd.Function):
    """``conv2d(x, w, b)`` (groups 1, zero padding) with the input gradient
    ``sum_k w_k^T g`` placed by shifted additions; the weight and bias gradients,
    when asked for, by PyTorch's own kernel."""

    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation):
        ctx.save_for_backward(x, w)
        ctx.conf = (stride, padding, dilation, b is not None)
        return torch.nn.functional.conv2d(x, w, b, stride, padding, dilation)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        (sh, sw), (ph, pw), (dh, dw), has_bias = ctx.conf
        n, cin, h, wd = x.shape
        cout, _, kh, kw = w.shape
        ho, wo = g.shape[2:]
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            wm = w.reshape(cout, -1).t().to(g.dtype)  # (cin kh kw, cout)
            gx = g.new_zeros(n, cin, h + 2 * ph, wd + 2 * pw)
            for lo in range(0, n, 64):  # chunks that stay in the cache
                hi = min(lo + 64, n)
                # (channels-last g: a transposed operand of the product, no copy)
                cols = torch.matmul(wm, g[lo:hi].flatten(2))
                cols = cols.view(hi - lo, cin, kh, kw, ho, wo)
                out = gx[lo:hi]
                for c in range(cin):
                    for i in range(kh):
                        for j in range(kw):
                            r0, c0 = i * dh, j * dw
                            out[:, c, r0 : r0 + sh * (ho - 1) + 1 : sh,
                                c0 : c0 + sw * (wo - 1) + 1 : sw] += cols[:, c, i, j]  # fmt: skip
            gx = gx[:, :, ph : ph + h, pw : pw + wd]
        if ctx.needs_input_grad[1] or (has_bias and ctx.needs_input_grad[2]):
            _, gw, gb = torch.ops.aten.convolution_backward(
                g, x, w, [cout] if has_bias else None, [sh, sw], [ph, pw],
                [dh, dw], False, [0, 0], 1,
                [False, ctx.needs_input_grad[1], has_bias and ctx.needs_input_grad[2]],
            )  # fmt: skip
        return gx, gw, gb, None, None, None


def _input_convs(model: nn.Module, max_channels: int = 3) -> int:
    """Replace, in place, every ``nn.Conv2d`` of at most ``max_channels`` input
    channels (groups 1, zero padding of given size) by :class:`_SmallInputConv`
    (the same forward; a faster input gradient on CPU, equal up to the float
    rounding of a different summation order); returns the number replaced."""
    found = []
    for parent in model.modules():
        for name, m in parent.named_children():
            if (
                type(m) is nn.Conv2d
                and m.in_channels <= max_channels
                and m.groups == 1
                and m.padding_mode == "zeros"
                and not isinstance(m.padding, str)
                and not m._forward_hooks and not m._forward_pre_hooks
            ):  # fmt: skip
                found.append((parent, name, m))
    for parent, name, m in found:
        setattr(parent, name, _SmallInputConv(m))
    return len(found)


def _attack_alive(models, attack, x, y, alive, gen, where: str) -> tuple:
    """Run one attack on the still-robust points of a batch: (hit flags, x_adv, the
    restart curve of an attack with restarts). ``models``: the model the attack sees
    (adaptive wrappers) and the judged model."""
    attack_model, model = models
    xa, info = attack(attack_model, x[alive], y[alive], gen, return_info=True)
    curve = info.get("restart_curve")
    with _utils.eval_mode(model), torch.no_grad():
        out = model(xa)
    _finite.check_tensor(out, "the model's outputs at the adversarial inputs", where)
    return (out.argmax(1) != y[alive]).cpu(), xa, curve


def _add_curve(total: list[int], curve: list[int], alive: int) -> list[int]:
    """Sum per-batch unbroken-vs-restart curves; a curve that exited early (or a
    batch with nothing to attack) holds its last value."""
    curve = list(curve) or [alive]
    n = max(len(total), len(curve))
    pad = lambda c, v: c + [c[-1] if c else v] * (n - len(c))  # noqa: E731
    return [a + b for a, b in zip(pad(total, 0), pad(curve, alive))]


def _run_sequence(models, batches, sequence, eps_list, seed, st, sig, path, bar, mine):
    """Each batch of this rank (streamed once), each eps, each attack: attack the
    points still robust, in place. The generator of (eps, attack, batch) depends on
    nothing else, so the order of the loops (and the ranks) does not change the
    result."""
    offsets = np.cumsum([0, *bar.sizes])
    keys = [(e, a) for e in range(len(eps_list)) for a in range(len(sequence))]

    def todo(b: int) -> bool:  # a finished batch is not even moved to the device
        unfinished = any(st.done.get(f"{e}/{a}", 0) <= b for e, a in keys)
        if not unfinished:
            bar.update(len(keys))
        return mine(b) and unfinished

    for b, (x, y) in batches.numbered(owned=todo):
        lo, hi = int(offsets[b]), int(offsets[b + 1])
        for e, a in keys:
            bar.update(1)
            key = f"{e}/{a}"
            if st.done.get(key, 0) > b:
                continue
            ep = eps_list[e]
            attack = dataclasses.replace(sequence[a], eps=ep)
            alive = st.robust[e, lo:hi].nonzero().squeeze(1)
            if alive.numel() and ep > 0:
                t0 = time.perf_counter()
                gen = _chunk_generator(seed, e, a, b, x.device)
                where = f"of {attack.name} at eps {ep:g}, batch {b}"
                hit, xa, curve = _attack_alive(models, attack, x, y, alive, gen, where)
                st.seconds[e, a] += time.perf_counter() - t0
                if curve is not None:
                    st.curves[key] = _add_curve(
                        st.curves.get(key, []), curve, alive.numel()
                    )
                st.robust[e, lo + alive[hit]] = False
                st.broken_by[e, lo + alive[hit]] = a
                if st.adv is not None:
                    st.adv[e, lo + alive[hit]] = xa[hit].detach().cpu()
            st.done[key] = b + 1
            if path is not None:
                st.save(path, sig)


class _Bar:
    """The progress over (batch, eps, attack) of this rank (or nothing), and the
    batch sizes the loop needs."""

    def __init__(self, sizes: list[int], total: int, show: bool, about: str = ""):
        self.sizes = sizes
        self.bar = None
        if show:
            from .._progress import bar

            self.bar = bar(
                desc="evaluate", total=total, unit="attack runs", about=about
            )

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _merge_states(st: _State, sizes: list[int], world: int) -> None:
    """Every rank's batches into the state of all ranks, in place: each batch's
    points from the rank that attacked it; times and restart curves summed."""
    if world == 1:
        return
    parts = _dist.all_gather_objects(
        (st.robust, st.broken_by, st.seconds, st.curves, st.adv), world
    )
    offsets = np.cumsum([0, *sizes])
    for b in range(len(sizes)):
        robust, broken, _, _, adv = parts[b % world]
        lo, hi = int(offsets[b]), int(offsets[b + 1])
        st.robust[:, lo:hi] = robust[:, lo:hi]
        st.broken_by[:, lo:hi] = broken[:, lo:hi]
        if st.adv is not None:
            st.adv[:, lo:hi] = adv[:, lo:hi]
    st.seconds = sum(p[2] for p in parts)
    curves: dict = {}
    for p in parts:
        for key, curve in p[3].items():
            curves[key] = _add_curve(curves.get(key, []), curve, 0)
    st.curves = curves


def _curve_table(sequence, st: _State, num_eps: int, n: int) -> dict[str, np.ndarray]:
    """Per attack with restarts: (E, R) overall robust accuracy after each restart."""
    out: dict[str, np.ndarray] = {}
    for a, s in enumerate(sequence):
        rows = [st.curves.get(f"{e}/{a}") for e in range(num_eps)]
        if all(r is None for r in rows):
            continue
        width = max(len(r) for r in rows if r is not None)
        bb = st.broken_by
        after = ((bb == -1) | (bb > a)).sum(1).tolist()  # not attacked: eps = 0
        rows = [([after[e]] if r is None else r) for e, r in enumerate(rows)]
        arr = np.array([r + [r[-1]] * (width - len(r)) for r in rows], dtype=float)
        out[s.name if s.name not in out else f"{s.name}#{a}"] = arr / max(n, 1)
    return out


def _timing_table(sequence, seconds: Tensor) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for a, s in enumerate(sequence):
        name = s.name if s.name not in out else f"{s.name}#{a}"
        out[name] = seconds[:, a].numpy().astype(float)
    return out


def _checks(model, batches, eps_list, norm, st, sequence, was_training, num, seed):
    return masking_checks(
        model,
        batches,
        eps=eps_list,
        norm=norm,
        robust_accuracy=st.robust.float().mean(1).numpy(),
        broken_by=st.broken_by.numpy(),
        attacks=sequence,
        was_training=was_training,
        num_samples=num,
        generator=torch.Generator().manual_seed(seed),
    )


def evaluate(
    model: nn.Module,
    data: Any,
    *,
    attacks: Sequence[attacks_mod.Attack] | None = None,
    eps: float | Sequence[float] | None = None,
    norm: str | None = None,
    preset: str = "quick",
    scale: float = 1.0,
    steps: int | None = None,
    restarts: int | None = None,
    queries: int | None = None,
    batch_size: int = 500,
    adaptive: str | Sequence[str] | None = "auto",
    bpda: Sequence[str] = (),
    eot_iter: int = 20,
    checks: bool = True,
    check_samples: int = 100,
    certify: bool | str = False,
    return_adversarial: bool = False,
    state_path: str | Path | None = None,
    generator: torch.Generator | None = None,
    progressbar: bool = False,
) -> EvalResult:
    """Run a robustness-evaluation protocol (in the spirit of AutoAttack).

    Clean accuracy first; then, for each eps, the attacks in sequence, each only on the
    points every earlier attack failed to break; a point is robust if no attack breaks
    it (pointwise worst case). The verdict is always the model's own prediction.

    Args:
        model: any ``nn.Module`` returning logits or log-probabilities, ensembles
            included (attacked as a whole). Evaluated in eval mode; its mode is restored.
        data: ``(x, y)`` tensors or an iterable of ``(x, y)`` batches, x in [0, 1].
        attacks: the attack values to run in sequence, e.g.
            ``[attacks.APGD(eps=0.3), attacks.Square(eps=0.3)]`` (one norm), instead
            of a preset; each runs at ``dataclasses.replace(attack, eps=e)`` for
            every budget ``e``.
        eps: one budget or a sweep; default (with ``attacks``) the attacks' common
            eps. Required for a preset.
        norm: ``"linf"`` (the default) or ``"l2"`` for a preset; with ``attacks``
            their norm (if given, it must agree).
        preset: ``"quick"``, ``"standard"`` or ``"reviewer"`` (see
            :func:`preset_attacks`); ignored when ``attacks`` is given.
        scale: multiply every step / restart / query budget of a preset (CPU smoke
            runs).
        steps, restarts, queries: override those budgets for every attack of a
            preset.
        batch_size: for ``(x, y)`` tensors.
        adaptive: answers to gradient masking (:func:`adapt`): ``"auto"`` applies EOT
            to a randomised model, logits recovery to a model returning
            probabilities, and BPDA when ``bpda`` names transforms; ``None``: none;
            or a list of ``"eot"``, ``"logits"``, ``"bpda"``.
        bpda: names of non-differentiable input transforms (submodules of ``model``)
            to attack with straight-through gradients.
        eot_iter: forward passes per EOT gradient (AutoAttack's "rand": 20).
        checks: run the gradient-masking checks (:func:`masking_checks`).
        check_samples: points used by the checks.
        certify: also certify every point (:func:`landscape.certify.certify`, any
            ReLU network it traces: residual additions and BatchNorm in eval mode
            included): ``True`` or ``"crown"`` (the tightest, slow on deep
            networks), ``"crown-ibp"`` (CROWN on IBP's intermediate bounds: one
            backward pass, the choice for ResNets) or ``"ibp"`` (fastest, loosest).
            ``result.bracket`` is then [certified, attacked] robust accuracy, and
            the check ``certified_attacked`` fails on any point both certified and
            broken by an attack; ``result.meta["certify"]`` records the method.
        return_adversarial: also keep, per eps, the input that broke each point (the
            clean input where no attack did) in ``result.adversarial`` (E, N, ...).
        state_path: resumable state file: per-example results per attack and batch,
            written atomically after every batch; a rerun skips finished work (a
            finished batch is not even read to the device). It must belong to the
            same data, eps, norm, attacks and seed (else an error). Under
            ``torch.distributed`` each rank writes its own
            ``NAME.rankRofW.SUFFIX``.
        generator: seeds every attack. ``None``: a seed drawn from torch's global RNG,
            as everywhere in ``landscape`` (seed it with
            :func:`landscape.seed_everything`), or, when resuming ``state_path``,
            the seed the state was written with.
        progressbar: progress over (eps, attack, batch) (a bar on a terminal,
            lines in a log).

    Speed: on CPU the attacks query a channels-last copy of a convolutional model
    (faster CPU convolutions; ``ReLU -> MaxPool2d`` run as ``MaxPool2d -> ReLU``,
    the same function; the first convolution's input gradient by a matrix
    product; passes without autograd through a frozen TorchScript trace when it
    reproduces the copy), so the attacks see the model's function to float
    rounding and the verdicts stay the model's own; APGD-T and FAB-T run their
    targets as one batch of (point, target) pairs.

    Memory: the data streams from ``data`` one batch at a time; the device holds
    one batch, the host the per-point results (and, with ``return_adversarial``,
    one input per point and eps). Under ``torch.distributed`` every rank calls
    ``evaluate`` with the same arguments, attacks its share of the batches and
    returns the whole, merged result (see the module docstring); the
    gradient-masking checks and the certificate run on every rank (the same seed,
    the same answer).

    Returns:
        :class:`EvalResult`; ``result.timings`` holds each attack's seconds per eps
        (summed over the ranks), ``result.meta["adaptive"]`` the adaptive answers
        applied.
    """
    if attacks is None and eps is None:
        raise TypeError("evaluate needs eps= (one budget or a sweep) or attacks=")
    _certify_method(certify)  # before any work
    _finite.check_model(model, name="evaluate: model")
    if state_path is not None:
        state_path = io.check_writable(state_path, what="state_path")
    # one process per state file (each rank its own under torch.distributed)
    mine = _rank_path(state_path, *_dist.info())
    lock = io.lock(mine) if mine is not None else contextlib.nullcontext()
    with lock, _finite.checked_at_entry():
        return _evaluate(
            model, data, attacks=attacks, eps=eps, norm=norm, preset=preset,
            scale=scale, steps=steps, restarts=restarts, queries=queries,
            batch_size=batch_size, adaptive=adaptive, bpda=bpda, eot_iter=eot_iter,
            checks=checks, check_samples=check_samples, certify=certify,
            return_adversarial=return_adversarial, state_path=state_path,
            generator=generator, progressbar=progressbar,
        )  # fmt: skip


def _evaluate(
    model, data, *, attacks, eps, norm, preset, scale, steps, restarts, queries,
    batch_size, adaptive, bpda, eot_iter, checks, check_samples, certify,
    return_adversarial, state_path, generator, progressbar,
) -> EvalResult:  # fmt: skip
    """:func:`evaluate` after its entry checks, holding the state file's lock."""
    method = _certify_method(certify)
    rank, world = _dist.info()
    batches = _class_batches(data, batch_size=batch_size, model=model)
    clean = _clean_pass(model, batches, rank, world, return_adversarial)
    was_training = model.training
    seed = _eval_seed(generator, state_path)
    budgets = {"scale": scale, "steps": steps, "restarts": restarts, "queries": queries}
    sequence, preset, eps_list, norm = _sequence(
        preset, attacks, eps, norm, clean.first, clean.num_classes, budgets
    )
    attack_model, sequence, applied = adapt(
        model, clean.first, sequence, adaptive=adaptive, bpda=bpda, eot_iter=eot_iter
    )
    sig = _signature(clean.digest, eps_list, norm, sequence, seed)
    sig.update(adversarial=bool(return_adversarial), adaptive=applied)
    path = _rank_path(state_path, rank, world)
    st = _initial_state(
        clean, len(eps_list), len(sequence), return_adversarial, sig, path
    )
    num_batches = len(clean.sizes)
    mine = [b for b in range(num_batches) if _dist.owned(b, rank, world)]
    total = len(eps_list) * len(sequence) * len(mine)
    bar = _Bar(
        clean.sizes,
        total,
        progressbar and _dist.is_main(rank),
        about=f"{len(eps_list)} eps x {len(sequence)} attacks "
        f"({', '.join(a.name for a in sequence)}) x {len(mine)} batches",
    )
    models = (_fast_layout(attack_model, clean.first), model)
    phase = "in the attacks"
    try:
        try:
            _run_sequence(
                models, batches, sequence, eps_list, seed, st, sig, path, bar,
                lambda b: _dist.owned(b, rank, world),
            )  # fmt: skip
        finally:
            bar.close()
        _merge_states(st, clean.sizes, world)
        phase = "in the gradient-masking checks"  # the attacks' results are saved
        check_res = (
            _checks(
                model,
                batches,
                eps_list,
                norm,
                st,
                sequence,
                was_training,
                check_samples,
                seed,
            )
            if checks
            else {}
        )
        phase = "in the certification"
        cert = None
        if method is not None:
            cert = _certify(model, batches, eps_list, norm, st, check_res, method)
    except io.Interrupted as err:
        done = sum(
            1 for e in range(len(eps_list)) for a in range(len(sequence))
            for b in mine if st.done.get(f"{e}/{a}", 0) > b
        )  # fmt: skip
        where = f"evaluate {phase}, after {done} of {total} (eps, attack, batch) steps"
        saved = path is not None and Path(path).exists()
        if path is None:
            where += " (no state file: pass one to make a run resumable)"
        elif saved:
            where += f"; its progress is in {path}"
        raise io.Interrupted(err.signal, where, resumable=saved) from None
    return EvalResult(
        eps=np.asarray(eps_list, dtype=float),
        norm=norm,
        preset=preset,
        attacks=[a.name for a in sequence],
        clean_correct=clean.clean.numpy(),
        robust_correct=st.robust.numpy(),
        broken_by=st.broken_by.numpy(),
        checks=check_res,
        timings=_timing_table(sequence, st.seconds),
        restart_curves=_curve_table(sequence, st, len(eps_list), len(clean.clean)),
        certified=cert,
        adversarial=None if st.adv is None else st.adv.numpy(),
        meta={
            **_meta(sequence, applied, seed, scale, clean.num_classes, model, method),
            "world_size": world,
        },
    )


def _certify_method(certify: bool | str) -> str | None:
    """``evaluate``'s ``certify`` as a method of :func:`certify_mod.certify` (None:
    no certificate)."""
    if certify is False or certify is None:
        return None
    if certify is True:
        return "crown"
    if isinstance(certify, str) and certify in CERTIFY_METHODS:
        return certify
    raise ValueError(
        f"certify must be True, False or one of {list(CERTIFY_METHODS)}, got "
        f"{certify!r}"
    )


def _meta(sequence, applied, seed, scale, num_classes, model, method) -> dict:
    return {
        "certify": method,
        "attacks": [a.to_dict() for a in sequence],
        "adaptive": applied,
        "seed": seed,
        "scale": scale,
        "num_classes": int(num_classes),
        "model": type(model).__name__,
    }


def _certify(model, batches, eps_list, norm, st, check_res, method) -> np.ndarray:
    res = certify_mod.certify(model, batches, eps=eps_list, norm=norm, method=method)
    cert = res.certified
    check_res["certified_attacked"] = _check_certified(cert, st.robust.numpy())
    return cert


def _check_certified(cert: np.ndarray, robust: np.ndarray) -> dict:
    """Certified points must never be broken: a violation is a bug in one of the two."""
    bad = cert & ~robust
    num = int(bad.sum())
    detail = (
        "no point is both certified and broken by an attack"
        if num == 0
        else f"{num} point(s) certified yet broken (eps index, point): "
        f"{np.argwhere(bad)[:10].tolist()}: a bug in the bounds or the attacks"
    )
    return {"passed": num == 0, "value": num, "detail": detail}


def robust_accuracy(
    model: nn.Module,
    data: Iterable | tuple[Tensor, Tensor],
    *,
    attacks: Sequence[attacks_mod.Attack] | None = None,
    eps: float | None = None,
    norm: str | None = None,
    preset: str = "quick",
    steps: int | None = None,
    generator: torch.Generator | None = None,
    **kwargs: Any,
) -> float:
    """Robust accuracy (a float in [0, 1]) under attack values or a preset at one
    budget, without the checks (:func:`evaluate`).

    The trainer's per-epoch call is ``robust_accuracy(model, batches,
    attacks=[attack])``; ``robust_accuracy(model, batches, eps=0.3)`` runs the
    ``"quick"`` preset's PGD-20 (``steps`` overrides the 20).

    Example:
        >>> model = torch.nn.Linear(2, 2)
        >>> x, y = torch.rand(16, 2), torch.randint(0, 2, (16,))
        >>> 0.0 <= robust_accuracy(model, (x, y), eps=0.1, steps=3) <= 1.0
        True
    """
    res = evaluate(
        model,
        data,
        attacks=attacks,
        eps=eps,
        norm=norm,
        preset=preset,
        steps=steps,
        checks=False,
        generator=generator,
        **kwargs,
    )
    if len(res.eps) != 1:
        raise ValueError(f"robust_accuracy takes one budget, got eps={res.eps}")
    return float(res.robust_accuracy[0])

"""Evaluating a model at many parameter points over fixed data, streamed batch by
batch to the device at every point (memory of one batch, not of the data set)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from .._batches import Batched, as_batches, is_class_loss

__all__ = ["LossFn"]

LossFn = Callable[[Tensor, Tensor], Tensor]
_BATCH_CANDIDATES = (128, 256, 512, 1024)
_CHUNK_CANDIDATES = (4, 16, 64)
_SLOWER = 1.25  # a batch-size candidate this much slower than the best: stop tuning


class _Bound(nn.Module):
    """``model`` evaluated at fixed parameters (for attacks); the model is not a
    registered submodule, so mode switches on the wrapper leave it alone."""

    def __init__(self, model: nn.Module, params: dict[str, Tensor]):
        super().__init__()
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_params", params)

    def forward(self, x: Tensor) -> Tensor:
        return functional_call(self._model, self._params, (x,))


class _Multi(nn.Module):
    """Loss and correct-count sums over all batches in one call, so
    ``functional_call`` swaps the parameters in once per grid point rather than once
    per batch; the batches stream through (one on the device at a time)."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, acc: Callable):
        super().__init__()
        self.m = model
        object.__setattr__(self, "_loss_fn", loss_fn)
        object.__setattr__(self, "_acc", acc)

    def forward(self, batches: Iterable, loss: Tensor, corr: Tensor) -> None:
        for x, y in batches:
            out = self.m(x)
            loss += self._loss_fn(out, y).double() * len(y)
            corr += self._acc(out, y)


# --------------------------------------------------------------------------- data
class _Data:
    """The evaluation batches of a surface, re-read from their source at every pass:
    the caller's loader through :func:`landscape._batches.as_batches` (validated on
    the first pass, moved to the device one batch at a time), regrouped on the fly
    into batches of ``batch_size`` (None: the source's batches).

    The first pass (:meth:`scan`) records the number of samples, the shape of a
    batch and whether the batches are ragged (then they are never regrouped)."""

    def __init__(self, batched: Batched, batch_size: int | None = None):
        self.batched = batched
        self.batch_size = batch_size
        self.n = 0
        self.shape: tuple[int, ...] = ()
        self.ragged = False

    def resized(self, batch_size: int | None) -> _Data:
        """The same source regrouped into batches of ``batch_size``."""
        out = _Data(self.batched, None if self.ragged else batch_size)
        out.n, out.shape, out.ragged = self.n, self.shape, self.ragged
        return out

    def scan(self) -> torch.Tensor:
        """One pass: sample count, shapes, and per-batch statistics (count, sums and
        squared sums of x and y, float64, on the device; read once by the caller)."""
        stats, shapes = [], set()
        for x, y in self.batched:
            xd, yd = x.detach().double(), y.detach().double()
            stats.append(
                torch.stack(
                    [xd.new_tensor(float(len(x))), xd.sum(), (xd * xd).sum(),
                     yd.sum().to(xd.device), (yd * yd).sum().to(xd.device)]
                )
            )  # fmt: skip
            shapes.add((tuple(x.shape[1:]), tuple(y.shape[1:])))
            self.n += len(x)
            self.shape = self.shape or tuple(x.shape)
        self.ragged = len(shapes) > 1
        if self.ragged:
            self.batch_size = None
        return torch.stack(stats)

    def __iter__(self):
        if self.batch_size is None:
            return iter(self.batched)
        return _regroup(self.batched, self.batch_size)


def _regroup(batches: Iterable, size: int):
    """Batches of ``size`` examples from a stream of batches (the last one smaller):
    the same batches as splitting the concatenated data, holding one at a time."""
    xs: list[Tensor] = []
    ys: list[Tensor] = []
    have = 0
    for x, y in batches:
        while len(x):
            take = min(size - have, len(x))
            xs.append(x[:take])
            ys.append(y[:take])
            x, y, have = x[take:], y[take:], have + take
            if have == size:
                yield _joined(xs, ys)
                xs, ys, have = [], [], 0
    if have:
        yield _joined(xs, ys)


def _joined(xs: list[Tensor], ys: list[Tensor]) -> tuple[Tensor, Tensor]:
    if len(xs) == 1:
        return xs[0], ys[0]
    return torch.cat(xs), torch.cat(ys)


def _source(
    data: Iterable, model: nn.Module, loss_fn: LossFn, *, images: bool | None = None
) -> _Data:
    """The validated batches of ``data`` for the model (moved one at a time)."""
    labels = "class" if is_class_loss(loss_fn) else "auto"
    return _Data(as_batches(data, model=model, labels=labels, images=images))


# --------------------------------------------------------------------- evaluation
def _correct(out: Tensor, y: Tensor) -> Tensor | None:
    if out.ndim == 2 and out.shape[1] > 1 and not y.is_floating_point() and y.ndim == 1:
        return (out.argmax(1) == y).sum()
    if y.is_floating_point() and out.numel() == y.numel():
        o, t = out.reshape(-1), y.reshape(-1)
        if bool(((t == 1) | (t == -1)).all()):
            return (torch.sign(o) == t).sum()
    return None


class _Evaluator:
    """Loss and accuracy of ``model`` at many parameter points over fixed data
    (``batches``: a :class:`_Data`, streamed at every point)."""

    def __init__(self, model, loss_fn, batches: _Data, center, dirs, *, attack=None):
        self.model, self.loss_fn, self.batches = model, loss_fn, batches
        self.center, self.dirs, self.attack = center, dirs, attack
        self.n = batches.n
        self.has_acc = True
        self._multi = _Multi(model, loss_fn, self._acc)

    def params(self, coef: Sequence[float]) -> dict[str, Tensor]:
        out = {}
        for k, c in self.center.items():
            p = c
            for a, d in zip(coef, self.dirs):
                if k in d and a != 0:
                    p = p + float(a) * d[k]
            out[k] = p
        return out

    def _acc(self, out: Tensor, y: Tensor) -> Tensor:
        c = _correct(out, y) if self.has_acc else None
        if c is None:
            self.has_acc = False
            return torch.zeros((), device=out.device)
        return c

    def loop(self, coefs: np.ndarray, gens: list | None = None) -> list[tuple]:
        dev = self.center_device
        res = []
        for i, coef in enumerate(coefs):
            p = self.params(coef)
            loss = torch.zeros((), dtype=torch.float64, device=dev)
            corr = torch.zeros((), device=dev)
            if self.attack is None:  # one parameter swap for all batches
                q = {f"m.{k}": v for k, v in p.items()}
                functional_call(self._multi, q, (self.batches, loss, corr))
            else:
                for x, y in self.batches:
                    with torch.enable_grad():
                        g = gens[i] if gens else None
                        x = self.attack(_Bound(self.model, p), x, y, g)
                    out = functional_call(self.model, p, (x,))
                    loss += self.loss_fn(out, y).double() * len(y)
                    corr += self._acc(out, y)
            res.append((loss, corr))
        return [(float(lo) / self.n, float(c) / self.n) for lo, c in res]

    def vmap(self, coefs: np.ndarray) -> list[tuple]:
        k = len(coefs)
        cf = torch.as_tensor(np.asarray(coefs), dtype=torch.float64)
        stacked = {}
        for name, c in self.center.items():
            p = c.unsqueeze(0).expand(k, *c.shape)
            for j, d in enumerate(self.dirs):
                if name in d:
                    a = cf[:, j].to(device=c.device, dtype=c.dtype)
                    p = p + a.view(-1, *([1] * c.dim())) * d[name].unsqueeze(0)
            stacked[name] = p.contiguous()
        f = vmap(lambda q, x: functional_call(self.model, q, (x,)), in_dims=(0, None))
        loss = torch.zeros(k, dtype=torch.float64, device=self.center_device)
        corr = torch.zeros(k, device=self.center_device)
        for x, y in self.batches:
            out = f(stacked, x)
            for j in range(k):
                loss[j] += self.loss_fn(out[j], y).double() * len(x)
                corr[j] += self._acc(out[j], y)
        lo, co = loss.cpu().tolist(), corr.cpu().tolist()
        return [(a / self.n, b / self.n) for a, b in zip(lo, co)]

    @property
    def center_device(self) -> torch.device:
        return next(iter(self.center.values())).device


def _timeit(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds of ``fn()``: CPU seconds of the process on a one-thread CPU run (other
    processes on a shared machine do not move them), else wall-clock seconds."""
    cpu = device.type == "cpu" and torch.get_num_threads() == 1
    clock = time.process_time if cpu else time.perf_counter
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = clock()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock() - t


# Batch sizes measured per (model shape, data shape, device): later surfaces of the
# same model and data reuse the measurement (the tuning is paid once per session).
_TUNED: dict[tuple, int] = {}


def _tuning_key(ev: _Evaluator, raw: _Data, device: torch.device) -> tuple:
    shapes = tuple((k, tuple(v.shape), str(v.dtype)) for k, v in ev.center.items())
    return (type(ev.model).__qualname__, shapes, raw.shape[1:], ev.n, str(device))


def _choose(
    ev: _Evaluator,
    raw: _Data,
    strategy: str,
    batch_size: int | str | None,
    chunk_size: int | None,
    probe: np.ndarray,
    num_points: int,
    device: torch.device,
) -> tuple[str, int | None, int, list[tuple]]:
    """Pick (strategy, batch size, chunk size) by timing on the device.

    Batch sizes are timed on real grid points (the rows of ``probe``, up to two per
    candidate, the second one timed after the first warmed up that shape), so the
    measurement costs only the difference between the candidates: their results are
    returned, in ``probe`` order. Candidates go from small to large; one whose first
    point is clearly slower (> 1.25x) than the best so far gets no second point, and
    no larger candidate is tried after it (per-point time grows past the optimum: a
    float64 BatchNorm + residual CNN costs 2.3x more per point at batch 256 than at
    128 on CPU). The choice is remembered for the model's and data's shapes on this
    device.
    """
    n = ev.n
    done: list[tuple] = []
    tune = num_points >= 32 and ev.attack is None
    key = _tuning_key(ev, raw, device)
    if batch_size == "auto" and key in _TUNED:  # measured by an earlier call
        batch_size = _TUNED[key]
    if batch_size == "auto":
        cands = sorted({min(b, n) for b in _BATCH_CANDIDATES})
        if device.type != "cpu":
            cands = [c for c in cands if c >= 256] or [cands[-1]]
        if tune and len(cands) > 1 and len(probe) >= 2 * len(cands):
            times: dict[int, float] = {}
            for b in cands:
                ev.batches = raw.resized(b)
                best = min(times.values(), default=math.inf)
                t = []
                for row in probe[len(done) : len(done) + 2]:
                    t.append(
                        _timeit(lambda r=row: done.extend(ev.loop(r[None])), device)
                    )
                    if t[0] > _SLOWER * best:
                        break
                times[b] = min(t)
                if times[b] > _SLOWER * best:
                    break
            batch_size = _TUNED[key] = min(times, key=times.get)
        else:
            batch_size = 256 if device.type == "cpu" else min(n, 1024)
        batch_size = min(int(batch_size), n)
    ev.batches = raw.resized(batch_size)
    if strategy == "auto":
        strategy = "loop"
        if device.type != "cpu" and ev.attack is None and tune:
            zero = np.zeros((1, len(ev.dirs)))
            best = _timeit(lambda: ev.loop(zero), device)
            for k in [chunk_size] if chunk_size else _CHUNK_CANDIDATES:
                if k > num_points:
                    continue
                try:
                    ev.vmap(np.zeros((k, len(ev.dirs))))
                    t = _timeit(
                        lambda k=k: ev.vmap(np.zeros((k, len(ev.dirs)))), device
                    )
                except RuntimeError:  # out of memory or an op vmap cannot batch
                    break
                if t / k < best:
                    best, strategy, chunk_size = t / k, "vmap", k
    if strategy == "loop":
        chunk_size = 1
    elif chunk_size is None:
        chunk_size = 8
    return strategy, batch_size, int(chunk_size), done

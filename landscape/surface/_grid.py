"""The grid loop: attacks, partial results and resume, sharding across ranks."""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .. import _dist, _finite, _pool, _utils, io
from .._batches import as_batches
from .._finite import NonFiniteError
from ._evaluate import (
    _BATCH_CANDIDATES,
    _TUNED,
    LossFn,
    _Bound,
    _choose,
    _Data,
    _Evaluator,
    _source,
    _tuning_key,
)
from ._result import _Partial

__all__: list[str] = []


def _fingerprint(coefs: np.ndarray, center: dict, dirs: list, extra: dict) -> str:
    h = hashlib.sha1(np.ascontiguousarray(coefs, dtype=np.float64).tobytes())
    for t in [center, *dirs]:
        v = _utils.flatten(t).double()
        h.update(np.array([float(v.sum()), float(v.norm()), v.numel()]).tobytes())
    h.update(repr(sorted(extra.items())).encode())
    return h.hexdigest()


def _data_fingerprint(stats: Tensor) -> str:
    """Digest of the evaluation data (sample count, sums and squared norms of x and
    y, from the per-batch statistics of :meth:`_Data.scan`), independent of how the
    samples are split into batches."""
    acc = stats.sum(0).cpu().numpy()
    return hashlib.sha1(np.round(acc, 6).tobytes()).hexdigest()


_ADVERSARIAL = (None, "none", "clean", "fixed", "reattack")


def _check_options(
    strategy: str, adversarial: str | None, attack, batch_size
) -> str | None:
    if strategy not in ("auto", "loop", "vmap"):
        raise ValueError(f"strategy must be 'auto', 'loop' or 'vmap', got {strategy!r}")
    if adversarial not in _ADVERSARIAL:
        raise ValueError(
            f"adversarial must be None, 'fixed' or 'reattack', got {adversarial!r}"
        )
    adversarial = None if adversarial in ("none", "clean") else adversarial
    if attack is not None and adversarial is None:
        adversarial = "reattack"  # attack= alone: the re-attacked (robust) surface
    if adversarial is not None and attack is None:
        raise ValueError(
            f"adversarial={adversarial!r} needs an attack: pass "
            "attack=attacks.PGD(eps=...)"
        )
    if batch_size is not None and batch_size != "auto" and int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, 'auto' or None, got {batch_size!r}")
    return adversarial


def _center_and_dirs(
    model: nn.Module,
    center: Mapping[str, Tensor] | nn.Module | None,
    dirs: Sequence[Mapping[str, Tensor]],
) -> tuple[dict[str, Tensor], list[dict[str, Tensor]]]:
    """The centre parameters and the directions, checked and on the model's device."""
    device = _utils.model_device(model)
    names = dict(model.named_parameters())
    if isinstance(center, nn.Module):
        center = _utils.named_params(center)
    c = {
        k: (center[k] if center is not None and k in center else p.detach()).to(
            device=device, dtype=p.dtype
        )
        for k, p in names.items()
    }
    dd = []
    for i, d in enumerate(dirs):
        bad = [k for k in d if k not in names]
        if bad:
            raise KeyError(
                f"direction {i} has entries {bad[:3]} that are not parameters of the "
                "model; key directions like model.named_parameters()"
            )
        for k, v in d.items():
            if v.shape != names[k].shape:
                raise ValueError(f"direction {i} entry {k!r} has the wrong shape")
        dd.append(
            {
                k: v.detach().to(device=device, dtype=names[k].dtype)
                for k, v in d.items()
            }
        )
    _finite.check_params(c, name="center")
    for i, d in enumerate(dd):
        _finite.check_params(d, name=f"direction {i}")
    return c, dd


def _prepare_data(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable,
    *,
    adversarial: str | None,
    attack,
    center: dict[str, Tensor],
    gen: torch.Generator,
    check_deterministic: bool,
) -> tuple[_Data, str]:
    """The evaluation batches and the fingerprint of the clean data. The caller's
    batches stream from its loader at every grid point; for ``"fixed"`` they are
    attacked once at the centre and the adversarial batches kept in host memory
    (moved to the device one at a time)."""
    raw = _source(data, model, loss_fn, images=True if attack else None)
    stats = raw.scan()
    if check_deterministic and not isinstance(data, (list, tuple)):
        again = _Data(as_batches(data, model=model, labels="any", images=False))
        if not torch.equal(again.scan(), stats):
            raise RuntimeError(
                "iterating the data twice gave different batches (shuffling or "
                "random augmentation?): pass fixed batches, e.g. a list of (x, y)"
            )
    data_fp = _data_fingerprint(stats)
    if adversarial == "fixed":
        bound = _Bound(model, center)
        with torch.enable_grad():
            kept = [(attack(bound, x, y, gen).cpu(), y.cpu()) for x, y in raw]
        fixed = _Data(as_batches(kept, model=model, labels="any", images=False))
        fixed.scan()
        return fixed, data_fp
    return raw, data_fp


def _attack_extra(adversarial: str | None, attack) -> dict:
    """What of the attack enters the partial file's fingerprint: the adversarial
    mode and the attack's description (its settings)."""
    if attack is None:
        return {"adversarial": None, "attack": None}
    d = attack.to_dict() if hasattr(attack, "to_dict") else {"repr": repr(attack)}
    return {"adversarial": adversarial, "attack": repr(sorted(d.items()))}


def _partial_file(
    partial_path: str | Path | None, rank: int, world: int
) -> Path | None:
    """This rank's partial file (``.npz``), checked for writing before any work."""
    if partial_path is None:
        return None
    ppath = Path(partial_path)
    if ppath.suffix != ".npz":
        ppath = ppath.with_suffix(".npz")
    if world > 1:
        ppath = ppath.with_name(f"{ppath.stem}.rank{rank}of{world}.npz")
    return io.check_writable(ppath, what="partial_path")


def _open_partial(
    ppath: Path | None, fp: str, m: int
) -> tuple[Path | None, np.ndarray, np.ndarray, np.ndarray]:
    """The partial file's path and the (resumed) loss, accuracy and done arrays."""
    loss, acc, done = np.full(m, np.nan), np.full(m, np.nan), np.zeros(m, dtype=bool)
    if ppath is None:
        return None, loss, acc, done
    if ppath.exists():
        part = _Partial.load(ppath)
        if part.meta.get("fingerprint") != fp:
            raise ValueError(
                f"partial file {ppath} belongs to a different grid, model, "
                "directions or attack (adversarial runs also need the same generator "
                "seed); delete it or pass another partial_path"
            )
        loss, acc, done = part.loss.copy(), part.accuracy.copy(), part.done.copy()
    return ppath, loss, acc, done


class _Grid:
    """Loss/accuracy arrays of a grid, the points this rank owns, partial saves and
    the progress bar."""

    def __init__(self, coefs, ppath, loss, acc, done, fp, rank, world, bar_desc):
        self.coefs, self.ppath, self.fp = coefs, ppath, fp
        self.loss, self.acc, self.done = loss, acc, done
        m = len(coefs)
        owned = [i for i in range(m) if i % world == rank]
        self.mine = [i for i in owned if not done[i]]
        self.bar = None
        if bar_desc:
            from .._progress import bar

            self.bar = bar(
                desc=bar_desc,
                total=len(owned),
                unit="points",
                initial=len(owned) - len(self.mine),
            )
        self.last_save = time.perf_counter()

    def record(self, idx: Sequence[int], results: list[tuple]) -> None:
        for i, (lo, ac) in zip(idx, results):
            if not math.isfinite(lo):  # host floats already: no extra read
                raise NonFiniteError(
                    f"the loss is not finite ({lo!r}) at grid point {i} "
                    f"(coefficients {self.coefs[i].tolist()}) - the weights there "
                    "overflow the model (a too long direction or grid): use a smaller "
                    "grid range; nothing was saved for this point"
                )
            self.loss[i], self.acc[i], self.done[i] = lo, ac, True
        if self.bar is not None:
            self.bar.update(len(results))

    def left(self) -> list[int]:
        return [i for i in self.mine if not self.done[i]]

    def save(self, every: float | None = None) -> None:
        if self.ppath is None:
            return
        if every is not None and time.perf_counter() - self.last_save < every:
            return
        _Partial(
            self.coefs, None, self.loss, self.acc, self.done, {"fingerprint": self.fp}
        ).save(self.ppath)
        self.last_save = time.perf_counter()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.mine:
            self.save()


def _check_batches(ev: _Evaluator, raw: _Data, batch_size, device) -> _Data:
    """The batches of the determinism check: the caller's, except for a clean CPU
    surface with a batch size (given, remembered, or else the smallest tuning
    candidate), whose grid loop uses that size. A float64 BatchNorm CNN costs 2.4x
    more per point as one batch of 1,000 than in batches of 128."""
    if isinstance(batch_size, int):
        return raw.resized(batch_size)
    if batch_size != "auto" or ev.attack is not None or device.type != "cpu":
        return raw
    size = _TUNED.get(_tuning_key(ev, raw, device), min(_BATCH_CANDIDATES[0], ev.n))
    return raw.resized(size)


def _origin_twice(ev: _Evaluator, grid: _Grid, point_gens) -> None:
    """The determinism check: evaluate the grid point nearest the origin twice (with
    ``ev.batches``, before any tuning) and keep it as that point's result."""
    coefs = grid.coefs
    origin = [int(np.argmin(np.abs(coefs).sum(1)))]
    a = ev.loop(coefs[origin], point_gens(origin))[0]
    if not math.isfinite(a[0]):
        raise NonFiniteError(
            f"the loss at the centre is not finite ({a[0]!r}) - the model overflows "
            "on these inputs (check the loss function and the inputs' scale)"
        )
    b = ev.loop(coefs[origin], point_gens(origin))[0]
    if not np.isclose(a[0], b[0], rtol=1e-6, atol=1e-9):
        raise RuntimeError(
            f"the loss is not deterministic ({a[0]!r} then {b[0]!r}): the "
            "usual causes are Dropout/BatchNorm in train mode inside a custom "
            "forward, or randomness in the loss; pass check_deterministic=False "
            "to skip this check"
        )
    if origin[0] in grid.mine and not grid.done[origin[0]]:
        grid.record(origin, [a])


def _evaluate_grid(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable,
    dirs: Sequence[Mapping[str, Tensor]],
    coefs: np.ndarray,
    *,
    center: Mapping[str, Tensor] | nn.Module | None,
    adversarial: str | None,
    attack,
    strategy: str,
    batch_size: int | str | None,
    chunk_size: int | None,
    partial_path: str | Path | None,
    save_interval: float,
    generator: torch.Generator | None,
    check_deterministic: bool,
    progressbar: bool,
    desc: str,
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    adversarial = _check_options(strategy, adversarial, attack, batch_size)
    _finite.check_model(model, name=f"{desc}: model")
    device = _utils.model_device(model)
    center, dd = _center_and_dirs(model, center, dirs)
    gen, seed = _utils.make_generator(generator, device)
    rank, world = _dist.info()
    ppath = _partial_file(partial_path, rank, world)  # before any work
    save_interval = _finite.check_option(
        save_interval, "save_interval", "seconds between saves, 0: every grid point"
    )
    m = len(coefs)
    t0 = time.perf_counter()

    lock = io.lock(ppath) if ppath is not None else contextlib.nullcontext()
    with (
        lock,
        _finite.checked_at_entry(),  # the attacks at the points do not re-read
        _utils.eval_mode(model),
        torch.no_grad(),
        _pool_mode(model),
    ):
        raw, data_fp = _prepare_data(
            model, loss_fn, data, adversarial=adversarial, attack=attack,
            center=center, gen=gen, check_deterministic=check_deterministic,
        )  # fmt: skip
        point_attack = attack if adversarial == "reattack" else None
        ev = _Evaluator(model, loss_fn, raw, center, dd, attack=point_attack)

        def point_gens(idx: Sequence[int]) -> list | None:
            if point_attack is None:
                return None
            return [_utils.derived_generator(seed, i, device=device) for i in idx]

        extra = {**_attack_extra(adversarial, attack), "data": data_fp}
        if adversarial is not None:  # the attacks' random starts depend on the seed
            extra["seed"] = seed
        fp = _fingerprint(coefs, center, dd, extra)
        grid = _Grid(
            coefs, *_open_partial(ppath, fp, m), fp, rank, world,
            desc if progressbar else None,
        )  # fmt: skip
        try:
            strategy_used, bs, chunk, t_eval = _run_grid(
                ev, grid, raw, coefs, point_gens, point_attack, strategy,
                batch_size, chunk_size, save_interval, check_deterministic, device, m,
            )  # fmt: skip
        except io.Interrupted as err:
            raise _stopped(err, grid, desc) from None
        grid.close()

    loss, acc = grid.loss, grid.acc
    if world > 1:
        parts = _dist.all_gather_arrays(np.stack([loss, acc]), world)
        for i in range(m):
            loss[i], acc[i] = parts[i % world][0, i], parts[i % world][1, i]
    mine = grid.mine
    meta = {
        "adversarial": adversarial or "clean",
        "attack": attack.to_dict() if hasattr(attack, "to_dict") else None,
        "eps": getattr(attack, "eps", None) if adversarial is not None else None,
        "strategy": strategy_used,
        "batch_size": bs,
        "chunk_size": chunk,
        "num_samples": ev.n,
        "num_points": m,
        "seed": seed,
        "world_size": world,
        "rank": rank,
        "points_evaluated": len(mine),
        "direction_norms": [float(_dir_norm(d)) for d in dd],
        "seconds": time.perf_counter() - t0,
        "points_per_second": len(mine) / t_eval if mine and t_eval > 0 else None,
    }
    return loss, (acc if ev.has_acc else None), meta


def _run_grid(
    ev, grid, raw, coefs, point_gens, point_attack, strategy, batch_size,
    chunk_size, save_interval, check_deterministic, device, m,
) -> tuple:  # fmt: skip
    """Evaluate the grid points this rank owns; returns the strategy, batch size,
    chunk and seconds of evaluation."""
    if check_deterministic:
        ev.batches = _check_batches(ev, raw, batch_size, device)
        _origin_twice(ev, grid, point_gens)

    t_eval = time.perf_counter()
    left = grid.left()
    strategy_used, bs, chunk, probed = _choose(
        ev, raw, strategy, batch_size, chunk_size, coefs[left[:16]], m, device
    )
    grid.record(left, probed)
    if point_attack is not None and strategy_used == "vmap":
        warnings.warn("adversarial='reattack' evaluates point by point", stacklevel=4)
        strategy_used, chunk = "loop", 1
    left = grid.left()
    for s in range(0, len(left), chunk):
        idx = left[s : s + chunk]
        if strategy_used == "vmap":
            grid.record(idx, ev.vmap(coefs[idx]))
        else:
            grid.record(idx, ev.loop(coefs[idx], point_gens(idx)))
        grid.save(every=save_interval)
    return strategy_used, bs, chunk, time.perf_counter() - t_eval


def _stopped(err: io.Interrupted, grid: _Grid, desc: str) -> io.Interrupted:
    """SIGTERM / SIGINT in the grid loop: save the finished points (atomically) and
    say where the run stopped."""
    if grid.bar is not None:
        grid.bar.close()
    done = int(grid.done.sum())
    where = f"{desc} after {done} of {len(grid.done)} grid points"
    if grid.ppath is None:
        return io.Interrupted(
            err.signal, f"{where} (no partial file: pass one to make a run resumable)"
        )
    grid.save()
    return io.Interrupted(err.signal, f"{where}, saved in {grid.ppath}", resumable=True)


def _pool_mode(model: nn.Module):
    """2x2 max-pooling from strided views (:mod:`landscape._pool`: bitwise PyTorch's
    values, 0.12 vs 1.0 ms for LeNet's first pooling on CPU) for models that pool."""
    if any(isinstance(m, nn.MaxPool2d) for m in model.modules()):
        return _pool.FastPoolMode()
    return contextlib.nullcontext()


def _dir_norm(d: Mapping[str, Tensor]) -> float:
    return float(sum(float(v.double().pow(2).sum()) for v in d.values()) ** 0.5)

"""The grid loop: attacks, partial results and resume, sharding across ranks."""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .. import _utils
from ._evaluate import (
    LossFn,
    _Bound,
    _choose,
    _Evaluator,
    _materialize,
    _same_data,
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


def _data_fingerprint(batches: list) -> str:
    """Digest of the evaluation data (sample count, sums and squared norms of x and
    y), independent of how the samples are split into batches."""
    acc = np.zeros(5)
    for x, y in batches:
        xd, yd = x.detach().double(), y.detach().double()
        acc += [len(x), xd.sum(), (xd * xd).sum(), yd.sum(), (yd * yd).sum()]
    return hashlib.sha1(np.round(acc, 6).tobytes()).hexdigest()


def _dist_info(distributed: bool | None) -> tuple[int, int]:
    import torch.distributed as dist

    on = dist.is_available() and dist.is_initialized()
    if distributed and not on:
        raise RuntimeError(
            "distributed=True but torch.distributed is not initialised: call "
            "dist.init_process_group (or launch with torchrun) first"
        )
    if distributed is False or not on:
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def _gather(values: np.ndarray, world: int) -> list[np.ndarray]:
    import torch.distributed as dist

    dev = torch.device("cpu")
    if dist.get_backend() == "nccl":
        dev = torch.device("cuda", torch.cuda.current_device())
    t = torch.as_tensor(values, dtype=torch.float64, device=dev)
    out = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(out, t)
    return [o.cpu().numpy() for o in out]


def _evaluate_grid(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable,
    dirs: Sequence[Mapping[str, Tensor]],
    coefs: np.ndarray,
    *,
    center: Mapping[str, Tensor] | nn.Module | None,
    adversarial: str | None,
    eps: float | None,
    norm: str,
    steps: int,
    alpha: float | None,
    attack_loss_fn: LossFn | None,
    strategy: str,
    batch_size: int | str | None,
    chunk_size: int | None,
    partial_path: str | Path | None,
    save_interval: float,
    distributed: bool | None,
    generator: torch.Generator | None,
    check_deterministic: bool,
    progressbar: bool,
    desc: str,
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    if strategy not in ("auto", "loop", "vmap"):
        raise ValueError(f"strategy must be 'auto', 'loop' or 'vmap', got {strategy!r}")
    if adversarial not in (None, "none", "clean", "fixed", "reattack"):
        raise ValueError(
            f"adversarial must be None, 'fixed' or 'reattack', got {adversarial!r}"
        )
    adversarial = None if adversarial in ("none", "clean") else adversarial
    if adversarial is not None and eps is None:
        raise ValueError(
            f"adversarial={adversarial!r} needs eps=... (the attack budget)"
        )
    if batch_size is not None and batch_size != "auto" and int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, 'auto' or None, got {batch_size!r}")
    device, dtype = _utils.model_device(model), _utils.model_dtype(model)
    names = dict(model.named_parameters())
    if isinstance(center, nn.Module):
        center = _utils.named_params(center)
    center = {
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
    gen, seed = _utils.make_generator(generator, device)
    rank, world = _dist_info(distributed)
    m = len(coefs)
    t0 = time.perf_counter()

    with _utils.eval_mode(model), torch.no_grad():
        raw = _materialize(data, device, dtype)
        if check_deterministic and not isinstance(data, (list, tuple)):
            if not _same_data(raw, _materialize(data, device, dtype)):
                raise RuntimeError(
                    "iterating the data twice gave different batches (shuffling or "
                    "random augmentation?): pass fixed batches, e.g. a list of (x, y)"
                )
        data_fp = _data_fingerprint(raw)
        attack = None
        if adversarial == "fixed":
            bound = _Bound(model, center)
            with torch.enable_grad():
                raw = [
                    (
                        _perturb(
                            bound, x, y, eps, norm, steps, alpha, attack_loss_fn, gen
                        ),
                        y,
                    )
                    for x, y in raw
                ]
        elif adversarial == "reattack":

            def attack(bm, x, y, g):
                return _perturb(bm, x, y, eps, norm, steps, alpha, attack_loss_fn, g)

        ev = _Evaluator(model, loss_fn, raw, center, dd, attack=attack)

        def point_gens(idx: Sequence[int]) -> list | None:
            if attack is None:
                return None
            return [
                torch.Generator(device=device).manual_seed(
                    (seed * 1_000_003 + i) % 2**62
                )
                for i in idx
            ]

        if check_deterministic:  # with the caller's batches, before any tuning
            origin = [int(np.argmin(np.abs(coefs).sum(1)))]
            a = ev.loop(coefs[origin], point_gens(origin))[0]
            b = ev.loop(coefs[origin], point_gens(origin))[0]
            if not np.isclose(a[0], b[0], rtol=1e-6, atol=1e-9):
                raise RuntimeError(
                    f"the loss is not deterministic ({a[0]!r} then {b[0]!r}): the "
                    "usual causes are Dropout/BatchNorm in train mode inside a custom "
                    "forward, or randomness in the loss; pass check_deterministic=False "
                    "to skip this check"
                )

        loss = np.full(m, np.nan)
        acc = np.full(m, np.nan)
        done = np.zeros(m, dtype=bool)
        extra = {
            "adversarial": adversarial,
            "eps": eps,
            "steps": steps,
            "norm": norm,
            "alpha": alpha,
            "data": data_fp,
        }
        if adversarial is not None:  # the attacks' random starts depend on the seed
            extra["seed"] = seed
        fp = _fingerprint(coefs, center, dd, extra)
        ppath = None
        if partial_path is not None:
            ppath = Path(partial_path)
            if ppath.suffix != ".npz":
                ppath = ppath.with_suffix(".npz")
            if world > 1:
                ppath = ppath.with_name(f"{ppath.stem}.rank{rank}of{world}.npz")
            if ppath.exists():
                part = _Partial.load(ppath)
                if part.meta.get("fingerprint") != fp:
                    raise ValueError(
                        f"partial file {ppath} belongs to a different grid, model, "
                        "directions or attack (adversarial runs also need the same generator "
                        "seed); delete it or pass another partial_path"
                    )
                loss, acc, done = (
                    part.loss.copy(),
                    part.accuracy.copy(),
                    part.done.copy(),
                )

        mine = [i for i in range(m) if i % world == rank and not done[i]]
        bar = None
        if progressbar:
            from tqdm.auto import tqdm

            bar = tqdm(total=sum(1 for i in range(m) if i % world == rank), desc=desc)
            bar.update(sum(1 for i in range(m) if i % world == rank and done[i]))

        def save_partial() -> None:
            if ppath is not None:
                _Partial(coefs, None, loss, acc, done, {"fingerprint": fp}).save(ppath)

        t_eval = time.perf_counter()
        strategy_used, bs, chunk, probed = _choose(
            ev, raw, strategy, batch_size, chunk_size, coefs[mine[:16]], m, device
        )
        for i, (lo, ac) in zip(mine, probed):
            loss[i], acc[i], done[i] = lo, ac, True
        if bar is not None:
            bar.update(len(probed))
        mine_left = mine[len(probed) :]
        if adversarial == "reattack" and strategy_used == "vmap":
            warnings.warn(
                "adversarial='reattack' evaluates point by point", stacklevel=3
            )
            strategy_used, chunk = "loop", 1

        def run(idx: Sequence[int]) -> list[tuple]:
            if strategy_used == "vmap":
                return ev.vmap(coefs[list(idx)])
            return ev.loop(coefs[list(idx)], point_gens(idx))

        last = time.perf_counter()
        for s in range(0, len(mine_left), chunk):
            idx = mine_left[s : s + chunk]
            for i, (lo, ac) in zip(idx, run(idx)):
                loss[i], acc[i], done[i] = lo, ac, True
            if bar is not None:
                bar.update(len(idx))
            if ppath is not None and time.perf_counter() - last >= save_interval:
                save_partial()
                last = time.perf_counter()
        t_eval = time.perf_counter() - t_eval
        if bar is not None:
            bar.close()
        if ppath is not None and mine:
            save_partial()

    if world > 1:
        parts = _gather(np.stack([loss, acc]), world)
        for i in range(m):
            loss[i], acc[i] = parts[i % world][0, i], parts[i % world][1, i]
    meta = {
        "adversarial": adversarial or "clean",
        "eps": eps,
        "norm": norm if adversarial else None,
        "steps": steps if adversarial else None,
        "alpha": alpha,
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


def _dir_norm(d: Mapping[str, Tensor]) -> float:
    return float(sum(float(v.double().pow(2).sum()) for v in d.values()) ** 0.5)


def _perturb(model, x, y, eps, norm, steps, alpha, loss_fn, generator) -> Tensor:
    from ..attacks import perturb

    return perturb(
        model,
        x,
        y,
        eps=eps,
        norm=norm,
        steps=steps,
        alpha=alpha,
        loss_fn=loss_fn,
        generator=generator,
    )

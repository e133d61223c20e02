"""The training loop: adversarial_train()."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _utils, io
from ..attacks.perturb import perturb
from . import _dist
from ._config import TrainConfig
from ._data import (
    TensorBatches,
    as_loader,
    check_batch,
    check_labels,
    eval_subset,
    fixed_batch,
)
from ._eval import attack_ctx, autocast, co_check, co_message, evaluate, prep, upcast
from ._run import (
    FINAL,
    FORMAT,
    INIT,
    RESUME,
    RunFolderError,
    TrainResult,
    check_config,
    columns,
    period_ckpt_name,
    rng_state,
    set_rng_state,
    write_metrics,
)

__all__ = ["adversarial_train", "TensorBatches", "DivergedError"]


class DivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


def _grad_norm(params: list[Tensor]) -> Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = torch._foreach_norm(grads)
    return torch.linalg.vector_norm(torch.stack([n.double() for n in norms]))


@torch.no_grad()
def _distance(params: list[Tensor], init: list[Tensor]) -> float:
    diffs = [(p.detach().float() - q.float()) for p, q in zip(params, init)]
    return float(torch.linalg.vector_norm(torch.stack([d.norm() for d in diffs])))


def _make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def adversarial_train(
    model: nn.Module,
    data: tuple[Tensor, Tensor] | Iterable[tuple[Tensor, Tensor]],
    config: TrainConfig | dict,
    *,
    test_data: tuple[Tensor, Tensor] | Iterable[tuple[Tensor, Tensor]] | None = None,
    run_dir: str | Path | None = None,
    progressbar: bool = False,
    resume: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Adversarial training (Madry et al., 2018) with eps / lr schedules, per-epoch
    metrics, checkpoints, exact resume, end-of-period ensembles and DDP.

    Every batch: eps and lr are read from the schedules at the (fractional) epoch, the
    training attack (PGD or FGSM-RS from :mod:`landscape.attacks.perturb`, input
    gradients only, model in eval mode by default) perturbs the batch inside the
    eps-ball, and one optimizer step is taken on the adversarial batch. Every epoch
    logs train loss / accuracy at the scheduled eps, test clean and robust accuracy
    at the target and the scheduled eps, gradient norms, the distance from the
    initialisation, eps, lr and wall time, and runs a catastrophic-overfitting check
    (FGSM vs PGD accuracy on a fixed training batch; ``co_flag`` plus a warning).

    The model is trained in place (on its own device and dtype). With ``run_dir`` the
    folder receives ``config.json``, ``metrics.jsonl``/``metrics.csv``, ``init.pt``,
    ``ckpt_epochNNNN.pt`` at every period end (the ensemble members, see
    :func:`load_ensemble`), ``final.pt`` and ``resume.pt`` (every epoch and every
    ``checkpoint_every`` iterations; model, optimizer, every RNG state, position in
    the epoch). Calling again with the same folder and config resumes exactly where
    the run stopped: the final weights are bit-identical to an uninterrupted run on
    CPU. Under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in DDP, each
    global batch is split across ranks, and only rank 0 evaluates and writes (a
    resumed DDP run restores rank 0's attack RNG on every rank, so with random starts
    it is statistically, not bitwise, the same run).

    Reproducibility: on CPU a seeded run is a bit-identical function of the initial
    weights, the data, the config and ``torch.get_num_threads()`` (recorded in
    ``meta``; other thread counts change the floating-point reduction order, and with
    PGD at eps > 0 the gradient signs amplify that into visibly different models).
    The caller's global RNG state and ``torch.backends.mkldnn.enabled`` play no part:
    the global RNG (dropout) is reseeded from ``config.seed`` inside a fork and
    oneDNN is pinned on for the run, both restored on return.

    Args:
        model: classifier returning logits.
        data: ``(x, y)`` tensors (batched with ``config.batch_size``, reshuffled per
            epoch from ``config.seed``) or a deterministic, len()-able loader such as
            ``landscape.data.batches`` (``set_epoch`` is called when it exists).
        config: a :class:`TrainConfig` (or its dict).
        test_data: held-out data for the per-epoch evaluation (first
            ``config.eval_num`` examples).
        run_dir: run folder (None: no files, no resume).
        progressbar: tqdm bars over epochs and batches.
        resume: continue a run found in ``run_dir``; with False an existing run there
            is an error.
        callback: called after every optimizer step with ``{"epoch", "batch",
            "iteration", "loss", "eps", "lr"}`` (e.g. to stop a run in a test).

    Returns:
        :class:`TrainResult` with the per-epoch metrics.

    Raises:
        DivergedError: NaN / inf loss (names the epoch and batch; lower the lr).
        RunFolderError: ``run_dir`` holds a run with another configuration.
        landscape.io.CorruptFileError: a corrupt resume checkpoint.
    """
    cfg = TrainConfig.from_dict(config) if isinstance(config, dict) else config
    if not isinstance(cfg, TrainConfig):
        raise TypeError(
            f"config must be a TrainConfig or dict, got {type(cfg).__name__}"
        )
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    with _isolated(_utils.model_device(model)):
        return _train(
            model,
            data,
            cfg,
            test_data=test_data,
            run_dir=run_dir,
            progressbar=progressbar,
            resume=resume,
            callback=callback,
        )


@contextlib.contextmanager
def _isolated(device: torch.device) -> Iterator[None]:
    """Make a run a function of its inputs only: torch's global RNG (dropout) is
    forked, so the caller's stream neither feeds the run nor is consumed by it, and
    oneDNN is pinned on (PyTorch's default) for the training step and evaluation, so
    a caller that switched ``torch.backends.mkldnn.enabled`` off (its conv kernels
    round differently) gets the same weights. Both are restored on exit."""
    cuda_ids = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    prev = torch.backends.mkldnn.enabled
    with torch.random.fork_rng(devices=cuda_ids):
        torch.backends.mkldnn.enabled = True
        try:
            yield
        finally:
            torch.backends.mkldnn.enabled = prev


def _train(
    model: nn.Module,
    data: Any,
    cfg: TrainConfig,
    *,
    test_data: Any,
    run_dir: str | Path | None,
    progressbar: bool,
    resume: bool,
    callback: Callable[[dict[str, Any]], None] | None,
) -> TrainResult:
    raw = model
    modes = [(m, m.training) for m in raw.modules()]
    device, dtype = _utils.model_device(raw), _utils.model_dtype(raw)
    rank, world = _dist.setup(device)
    main = _dist.is_main(rank)
    loader = as_loader(data, cfg)
    num_batches = len(loader)
    ctx = lambda: autocast(device, cfg)  # noqa: E731
    channels_last = cfg.channels_last and device.type == "cuda"
    if channels_last:
        raw.to(memory_format=torch.channels_last)
    params = [p for p in raw.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    opt = _make_optimizer(params, cfg)
    eps_fn, lr_fn = cfg.eps_fn(), cfg.lr_fn()
    period_ends = set(cfg.period_end_epochs())
    gen = torch.Generator(device=device).manual_seed(cfg.seed * 9973 + rank + 17)
    torch.manual_seed(cfg.seed * 7919 + rank + 101)  # dropout; restored on resume
    generators = {"attack": gen}

    # -- run folder: fresh start or resume ----------------------------------------
    folder = Path(run_dir) if run_dir is not None else None
    start_epoch, start_batch, iteration, elapsed = 0, 0, 0, 0.0
    rows: list[dict[str, Any]] = []
    checkpoints: list[str] = []
    accum = None
    init = [p.detach().clone() for p in params]
    if folder is not None:
        if world > 1 and not main:
            torch.distributed.barrier()  # rank 0 sets the folder up first
        has_run = (folder / "config.json").exists()
        if has_run and not resume and main:
            raise RunFolderError(
                f"{folder} already holds a run; pass resume=True to continue it or "
                "choose a new folder"
            )
        if has_run:
            check_config(folder, cfg)
        if has_run and (folder / RESUME).exists():
            state = io.load_torch(folder / RESUME, map_location="cpu")
            if state.get("format") != FORMAT:
                raise io.CorruptFileError(f"{folder / RESUME} is not a training state")
            try:
                raw.load_state_dict(state["model"])
            except RuntimeError as err:
                raise RunFolderError(
                    f"the model does not match the checkpoint in {folder}: {err}"
                ) from err
            opt.load_state_dict(state["optimizer"])
            set_rng_state(state["rng"], generators)
            start_epoch, start_batch = state["epoch"], state["batch"]
            iteration, elapsed = state["iteration"], state["elapsed"]
            rows, checkpoints, accum = (
                state["rows"],
                state["checkpoints"],
                state["accum"],
            )
            init_state = io.load_torch(folder / INIT, map_location=device)
            init = [init_state[n].to(p.dtype) for n, p in _named(raw, params)]
        elif main:
            with io.atomic_write(folder / "config.json", "w") as f:
                json.dump(cfg.to_dict(), f, indent=1)
            io.atomic_save_torch(
                {n: p.detach().cpu() for n, p in _named(raw, params)}, folder / INIT
            )
        if main and rows:
            write_metrics(folder, rows)
        if world > 1 and main:
            torch.distributed.barrier()

    # -- forward models ------------------------------------------------------------
    fwd_model: nn.Module = raw
    if world > 1:
        fwd_model = nn.parallel.DistributedDataParallel(
            raw, device_ids=[device.index] if device.type == "cuda" else None
        )
    atk_model: nn.Module = raw
    if cfg.compile:
        fwd_model = torch.compile(fwd_model)
        atk_model = torch.compile(raw)
    use_attack = cfg.attack != "none" and cfg.eps > 0
    atk_ctx = attack_ctx(raw, device, cfg)
    co_batch = fixed_batch(loader, data, cfg.co_check_num) if main else None
    if co_batch is not None:
        co_batch = prep(*co_batch, device, dtype, channels_last)
    eval_batches = (
        [
            prep(x, y, device, dtype, channels_last)
            for x, y in eval_subset(test_data, cfg.eval_num, cfg.batch_size)
        ]
        if main
        else []
    )

    num_classes = None
    for i, (xe, ye) in enumerate(eval_batches):
        check_batch(xe, ye, where="test_data")
        if i == 0:
            num_classes = _probe_classes(raw, xe, ctx)
        check_labels(ye, num_classes, where="test_data")

    from tqdm.auto import tqdm

    show = progressbar and main
    ebar = tqdm(
        total=cfg.epochs,
        initial=start_epoch,
        desc="adversarial_train",
        disable=not show,
    )
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        if accum is None or start_batch == 0:
            accum = {
                "loss": 0.0,
                "correct": 0.0,
                "n": 0.0,
                "gsum": 0.0,
                "gmax": 0.0,
                "nb": 0,
                "eps_sum": 0.0,
                "eps": 0.0,
                "lr": 0.0,
                "time": 0.0,
            }
        bbar = tqdm(
            total=num_batches,
            initial=start_batch,
            desc=f"epoch {epoch + 1}",
            leave=False,
            disable=not show,
        )
        for b, batch in enumerate(loader):
            if b < start_batch:
                continue
            t = epoch + b / num_batches if cfg.schedule_update == "iteration" else epoch
            eps_t, lr_t = float(eps_fn(t)), float(lr_fn(t))
            for g in opt.param_groups:
                g["lr"] = lr_t
            opt.zero_grad(set_to_none=True)
            x, y = prep(batch[0], batch[1], device, dtype, channels_last)
            check_batch(x, y)
            if num_classes is None:
                num_classes = _probe_classes(raw, x, ctx)
            check_labels(y, num_classes)
            n_global = len(y)
            x, y = _dist.shard(x, rank, world), _dist.shard(y, rank, world)
            if use_attack and eps_t > 0:
                with ctx(), atk_ctx():
                    x = perturb(
                        atk_model,
                        x,
                        y,
                        eps=eps_t,
                        norm=cfg.norm,
                        alpha=cfg.step_size(eps_t),
                        steps=1 if cfg.attack == "fgsm" else cfg.steps,
                        random_start=cfg.random_start,
                        generator=gen,
                        train=cfg.attack_train_mode,
                    )
            raw.train()
            with ctx():
                out = fwd_model(x)
            loss_sum = F.cross_entropy(upcast(out), y, reduction="sum")
            loss = loss_sum / (n_global / world)
            loss.backward()
            gnorm = _grad_norm(params)
            correct = (out.detach().argmax(1) == y).sum()
            ls, cs, gn = torch.stack(
                [loss_sum.detach().double(), correct.float(), gnorm.to(loss.device)]
            ).tolist()
            if not (math.isfinite(ls) and math.isfinite(gn)):
                raise DivergedError(
                    f"training diverged: loss is {ls / max(len(y), 1)} (gradient norm "
                    f"{gn}) at epoch {epoch + 1}, batch {b + 1}/{num_batches} "
                    f"(iteration {iteration + 1}, lr={lr_t:g}, eps={eps_t:g}); "
                    "lower the learning rate"
                )
            opt.step()
            iteration += 1
            accum["loss"] += ls
            accum["correct"] += cs
            accum["n"] += len(y)
            accum["gsum"] += gn
            accum["gmax"] = max(accum["gmax"], gn)
            accum["nb"] += 1
            accum["eps_sum"] += eps_t
            accum["eps"], accum["lr"] = eps_t, lr_t
            bbar.update(1)
            if callback is not None:
                callback(
                    {
                        "epoch": epoch,
                        "batch": b,
                        "iteration": iteration,
                        "loss": ls / max(len(y), 1),
                        "eps": eps_t,
                        "lr": lr_t,
                    }
                )
            if (
                folder is not None
                and main
                and cfg.checkpoint_every
                and iteration % cfg.checkpoint_every == 0
                and b + 1 < num_batches
            ):
                accum["time"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                _save_resume(
                    folder,
                    raw,
                    opt,
                    generators,
                    epoch,
                    b + 1,
                    iteration,
                    elapsed,
                    rows,
                    checkpoints,
                    accum,
                    cfg,
                )
        bbar.close()
        start_batch = 0
        accum["time"] += time.perf_counter() - t0
        # -- end of epoch: reduce, evaluate, log, checkpoint ----------------------
        tot = torch.tensor(
            [accum["loss"], accum["correct"], accum["n"]], dtype=torch.float64
        )
        tot = _dist.all_reduce_sum(tot.to(device), world).cpu().tolist()
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "iteration": iteration,
            "eps": accum["eps"],
            "eps_mean": accum["eps_sum"] / max(accum["nb"], 1),
            "lr": accum["lr"],
            "train_loss": tot[0] / max(tot[2], 1),
            "train_acc": tot[1] / max(tot[2], 1),
            "grad_norm_mean": accum["gsum"] / max(accum["nb"], 1),
            "grad_norm_max": accum["gmax"],
            "dist_init": _distance(params, init),
        }
        if main:
            last = epoch + 1 == cfg.epochs
            do_eval = last or (epoch + 1) % cfg.eval_every == 0
            seed = cfg.seed * 100_003 + epoch
            cuda_ids = (
                [
                    device.index
                    if device.index is not None
                    else torch.cuda.current_device()
                ]
                if device.type == "cuda"
                else []
            )
            with torch.random.fork_rng(devices=cuda_ids):
                if do_eval:
                    row.update(
                        evaluate(
                            raw,
                            eval_batches,
                            eps_target=cfg.eps,
                            eps_sched=accum["eps"],
                            cfg=cfg,
                            seed=seed,
                            ctx=ctx,
                        )
                    )
                else:
                    row.update(
                        evaluate(
                            raw,
                            [],
                            eps_target=0,
                            eps_sched=0,
                            cfg=cfg,
                            seed=seed,
                            ctx=ctx,
                        )
                    )
                row.update(
                    co_check(
                        raw,
                        co_batch,
                        eps=accum["eps"] if use_attack else 0.0,
                        cfg=cfg,
                        seed=seed + 1,
                        ctx=ctx,
                    )
                )
            if row["co_flag"]:
                warnings.warn(co_message(row, cfg), stacklevel=2)
        elapsed += accum["time"]
        row["time"] = accum["time"]
        row["time_total"] = elapsed
        rows.append(row)
        if folder is not None and main:
            if epoch + 1 in period_ends:
                path = folder / period_ckpt_name(epoch + 1)
                io.atomic_save_torch(
                    {
                        "model": raw.state_dict(),
                        "epoch": epoch + 1,
                        "config": cfg.to_dict(),
                        "metrics": row,
                    },
                    path,
                )
                if str(path) not in checkpoints:
                    checkpoints.append(str(path))
            write_metrics(folder, rows)
            _save_resume(
                folder,
                raw,
                opt,
                generators,
                epoch + 1,
                0,
                iteration,
                elapsed,
                rows,
                checkpoints,
                None,
                cfg,
            )
        accum = None
        ebar.update(1)
        ebar.set_postfix(
            loss=f"{row['train_loss']:.3f}",
            acc=f"{row['train_acc']:.3f}",
            rob=f"{row.get('test_robust_acc', math.nan):.3f}",
        )
    ebar.close()
    opt.zero_grad(set_to_none=True)
    for m, mode in modes:
        m.training = mode
    if folder is not None and main:
        io.atomic_save_torch(
            {"model": raw.state_dict(), "epoch": cfg.epochs, "config": cfg.to_dict()},
            folder / FINAL,
        )
    return TrainResult(
        metrics=columns(rows),
        config=cfg.to_dict(),
        run_dir=str(folder) if folder is not None else None,
        checkpoints=list(checkpoints),
        meta={
            "rank": rank,
            "world_size": world,
            "device": str(device),
            "num_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
    )


def _fork(device: torch.device):
    """``torch.random.fork_rng`` over the CPU and ``device``'s CUDA generator."""
    cuda_ids = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    return torch.random.fork_rng(devices=cuda_ids)


@torch.no_grad()
def _probe_classes(model: nn.Module, x: Tensor, ctx) -> int:
    """The model's number of outputs (one eval-mode forward of a few inputs); warns
    when the outputs look like probabilities instead of logits."""
    with _fork(x.device), _utils.eval_mode(model), ctx():
        out = model(x[:8])
    _utils.check_logits(out, where="adversarial_train: model")
    if out.ndim != 2:
        raise ValueError(
            f"the model must return logits of shape (N, num_classes), got "
            f"{tuple(out.shape)}"
        )
    return int(out.shape[1])


def _named(model: nn.Module, params: list[Tensor]) -> list[tuple[str, Tensor]]:
    ids = {id(p) for p in params}
    return [(n, p) for n, p in model.named_parameters() if id(p) in ids]


def _save_resume(
    folder,
    raw,
    opt,
    generators,
    epoch,
    batch,
    iteration,
    elapsed,
    rows,
    checkpoints,
    accum,
    cfg,
) -> None:
    io.atomic_save_torch(
        {
            "format": FORMAT,
            "config": cfg.to_dict(),
            "model": raw.state_dict(),
            "optimizer": opt.state_dict(),
            "rng": rng_state(generators),
            "epoch": epoch,
            "batch": batch,
            "iteration": iteration,
            "elapsed": elapsed,
            "rows": copy.deepcopy(rows),
            "checkpoints": list(checkpoints),
            "accum": copy.deepcopy(accum),
        },
        folder / RESUME,
    )

"""The training loop: adversarial_train(), as small steps over one run state."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import _dist, _finite, _utils, attacks, io
from .._batches import Batched, as_batches
from ..checkpoints import FINAL, period_checkpoint
from ._augment import augment
from ._average import Averager
from ._config import TrainConfig, target_eps
from ._data import (
    as_loader,
    eval_subset,
    fixed_batch,
    fixed_subset,
    validation_split,
)
from ._eval import (
    attack_ctx,
    autocast,
    co_check,
    co_message,
    eval_attack,
    evaluate,
    evaluate_split,
    prep,
    upcast,
)
from ._objective import awp_perturbation, awp_tensors
from ._run import (
    AVERAGED,
    BEST,
    FORMAT,
    INIT,
    RESUME,
    SUMMARY,
    RunFolderError,
    TrainResult,
    check_config,
    columns,
    folder_lock,
    rng_state,
    set_rng_state,
    summarize,
    write_metrics,
)
from ._track import track

__all__ = ["adversarial_train", "DivergedError"]


class DivergedError(_finite.NonFiniteError):
    """The training loss (or gradient) became NaN or infinite."""


@dataclass
class _Epoch:
    """Running sums of one epoch (saved in ``resume.pt`` as a plain dict).

    A step reads nothing back to the host: its loss sum, correct count, gradient
    norm and the sum of its adversarial inputs (finite or not) stay on the device in
    :attr:`pending` (one small tensor per step), and :func:`_read` reads them all
    at once (at the end of the epoch and at a resume point), checks them and adds
    them to the float fields in the order of the steps."""

    loss: float = 0.0
    correct: float = 0.0
    n: float = 0.0
    gsum: float = 0.0
    gmax: float = 0.0
    nb: int = 0
    eps_sum: float = 0.0
    eps: float = 0.0
    lr: float = 0.0
    time: float = 0.0
    pending: list[Tensor] = field(default_factory=list, repr=False, compare=False)


@dataclass
class _Run:
    """The state of one training run, shared by the steps below."""

    cfg: TrainConfig
    raw: nn.Module  # the caller's model, trained in place
    params: list[Tensor]
    opt: torch.optim.Optimizer
    loader: Any
    device: torch.device
    dtype: torch.dtype
    rank: int
    world: int
    gen: torch.Generator  # the training attack's random starts
    model_gen: torch.Generator  # the model's per-batch randomness (``resample``)
    loss: Callable[[Tensor, Tensor], Tensor]  # summed training loss
    attack: attacks.Attack | None  # the training attack (its loss resolved)
    folder: Path | None
    modes: list[tuple[nn.Module, bool]]
    eps_fn: Callable[[float], float] = float  # the schedules (set by _setup)
    lr_fn: Callable[[float], float] = float
    fwd: nn.Module | None = None  # DDP / compiled model for the training forward
    atk: nn.Module | None = None  # (compiled) model for the attack
    epoch: int = 0
    batch: int = 0  # first batch of ``epoch`` still to run
    iteration: int = 0
    elapsed: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    accum: _Epoch | None = None
    attack_at: attacks.Attack | None = None  # the attack at the last scheduled eps
    init: list[Tensor] = field(default_factory=list)
    batches: Batched | None = None  # the loader's batches, validated on the first pass
    num_classes: int | None = None
    eval_batches: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    co_batch: tuple[Tensor, Tensor] | None = None
    val_batches: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    train_batches: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    track_batches: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    bn_batches: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    awp_params: list[Tensor] = field(default_factory=list)  # the tensors AWP moves
    avg: Averager | None = None  # the weight average (EMA / SWA)
    best: float = -math.inf  # the best validation robust accuracy so far
    n_global: int = 0  # size of the current global batch (``share``)
    sizes: dict[int, int] = field(default_factory=dict)  # this rank's batch sizes
    offset: int = 0  # this rank's first example in it

    @property
    def main(self) -> bool:
        return _dist.is_main(self.rank)

    @property
    def num_batches(self) -> int:
        return len(self.loader)

    @property
    def channels_last(self) -> bool:
        return bool(self.cfg.runtime.channels_last) and self.device.type == "cuda"

    def ctx(self):
        """Autocast context of the training forward passes (``runtime.amp``)."""
        return autocast(self.device, self.cfg)

    @staticmethod
    def eval_ctx():
        """The measurements' context: the model's own precision whatever
        ``runtime.amp`` (the per-epoch accuracies do not depend on it)."""
        return contextlib.nullcontext()

    def prep(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return prep(x, y, self.device, self.dtype, self.channels_last)

    def share(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """This rank's contiguous shard of a global training batch (taken before
        the batch moves to the device); records its offset and the global size."""
        self.n_global = len(y)
        if self.world == 1:
            self.offset = 0
            return x, y
        sizes = [len(p) for p in torch.tensor_split(y, self.world)]
        self.offset = sum(sizes[: self.rank])
        return _dist.shard(x, self.rank, self.world), _dist.shard(
            y, self.rank, self.world
        )


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
    training attack ``dataclasses.replace(config.attack, eps=eps_t)`` (e.g.
    :class:`landscape.attacks.PGD`: input gradients only, model in eval mode by
    default) perturbs the batch inside the eps-ball to increase its loss (an attack
    without a loss of its own: ``config.loss_fn``), and one optimizer step is taken on
    ``config.loss_fn`` at the adversarial batch. Every epoch logs train loss / accuracy
    at the scheduled eps, test clean and robust accuracy at the target and the
    scheduled eps (under ``runtime.eval_attack``), gradient norms, the distance from
    the initialisation, eps, lr and wall time; a single-step (FGSM-RS) run also gets a
    catastrophic-overfitting check (FGSM vs PGD accuracy on a fixed training batch at
    the trained eps; ``co_flag`` plus a warning).

    A model with per-batch randomness of its own defines ``resample(generator)``
    (e.g. :class:`landscape.connectivity.CurveModel` draws the point ``t`` of its
    curve): it is called once at the start of every step, before the attack, so the
    attack and the optimizer step see the same draw, from a generator of the run
    (derived from ``config.seed``, the same on every rank) that ``resume.pt`` saves.

    The model is trained in place (on its own device and dtype). With ``run_dir`` the
    folder receives ``config.json``, ``metrics.jsonl``/``metrics.csv``, ``init.pt``,
    ``ckpt_epochNNNN.pt`` at every period end (the ensemble members, see
    :func:`landscape.checkpoints.load_members`), ``final.pt`` and ``resume.pt`` (every epoch and every
    ``checkpoint_every`` iterations; model, optimizer, every RNG state, position in
    the epoch). Every file loads with ``torch.load(..., weights_only=True)``. Calling
    again with the same folder and science settings resumes exactly where the run
    stopped (the runtime settings may change; ``config.json`` then records the new
    ones): the final weights are bit-identical to an uninterrupted run on CPU. Under
    ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in DDP, each global batch
    is split across ranks, and only rank 0 evaluates and writes (a resumed DDP run
    restores rank 0's attack RNG on every rank, so with random starts it is
    statistically, not bitwise, the same run).

    Reproducibility: on CPU a seeded run is a bit-identical function of the initial
    weights, the data, the config and ``torch.get_num_threads()`` (recorded in
    ``meta``; set it with ``runtime.num_threads``; other thread counts change the
    floating-point reduction order, and with PGD at eps > 0 the gradient signs
    amplify that into visibly different models). The caller's global RNG state and
    ``torch.backends.mkldnn.enabled`` play no part: the global RNG (dropout) is
    reseeded from ``config.seed`` inside a fork and oneDNN is pinned on for the run,
    both restored on return.

    Args:
        model: classifier returning logits.
        data: ``(x, y)`` tensors (batched with ``config.batch_size``, reshuffled per
            epoch from ``config.seed``) or a deterministic, len()-able loader such as
            ``landscape.data.batches`` (``set_epoch`` is called when it exists).
            Images are floats in [0, 1], labels class indices.
        config: a :class:`TrainConfig` (or its dict).
        test_data: held-out data for the per-epoch evaluation (first
            ``config.runtime.eval_num`` examples).
        run_dir: run folder (None: no files, no resume).
        progressbar: progress over epochs and batches (a bar on a terminal, lines
            in a log).
        resume: continue a run found in ``run_dir``; with False an existing run there
            is an error.
        callback: called after every optimizer step with ``{"epoch", "batch",
            "iteration", "loss", "eps", "lr"}`` (e.g. to stop a run in a test);
            ``loss`` (the step's mean loss) is a 0-dim tensor on the model's device:
            reading it (``float(info["loss"])``) is a host sync per step.

    Returns:
        :class:`TrainResult` with the per-epoch metrics.

    Raises:
        DivergedError: NaN / inf loss or gradient norm (names the epoch and batch;
            lower the lr). A step reads nothing back to the host: its loss and
            gradient norm stay on the device and are read, all at once, at the end
            of the epoch and at each resume point (``runtime.checkpoint_every``),
            before anything is written; the steps after a non-finite one run on
            (non-finite) weights until then.
        RunFolderError: ``run_dir`` holds a run with other science settings.
        ValueError, TypeError: bad data (uint8 or [0, 255] images, float, one-hot or
            out-of-range labels, empty batches) with what to change.
        landscape.io.CorruptFileError: a corrupt resume checkpoint.
        landscape.io.LockedError: another live process is training in ``run_dir``
            (the run folder is locked while a run writes it; a killed run's lock is
            taken over).
    """
    cfg = TrainConfig.from_dict(config) if isinstance(config, dict) else config
    if not isinstance(cfg, TrainConfig):
        raise TypeError(
            f"config must be a TrainConfig or dict, got {type(cfg).__name__}"
        )
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    data, val_data = validation_split(data, int(cfg.val_num), cfg.val_seed)
    _finite.check_model(model, name="adversarial_train: model")
    with (
        io.stop_signals(),  # SIGTERM / SIGINT: save at the next step, say where
        _finite.checked_at_entry(),  # batches checked on the first pass: no re-read
        _isolated(_utils.model_device(model), cfg.runtime.num_threads),
    ):
        run = _setup(model, data, cfg, run_dir)
        with folder_lock(run.folder, run.main):
            _open_folder(run, resume)
            _wrap_models(run)
            _monitor_data(run, data, test_data, val_data)
            _train_epochs(run, progressbar, callback)
            return _finish(run)


@contextlib.contextmanager
def _isolated(device: torch.device, num_threads: int | None = None) -> Iterator[None]:
    """Make a run a function of its inputs only: torch's global RNG (dropout) is
    forked, so the caller's stream neither feeds the run nor is consumed by it, and
    oneDNN is pinned on (PyTorch's default) for the training step and evaluation, so
    a caller that switched ``torch.backends.mkldnn.enabled`` off (its conv kernels
    round differently) gets the same weights; ``num_threads`` (if given) is the
    thread count of the run. All are restored on exit."""
    prev, threads = torch.backends.mkldnn.enabled, torch.get_num_threads()
    with _fork(device):
        torch.backends.mkldnn.enabled = True
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        try:
            yield
        finally:
            torch.backends.mkldnn.enabled = prev
            if num_threads is not None:
                torch.set_num_threads(threads)


def _fork(device: torch.device):
    """``torch.random.fork_rng`` over the CPU and ``device``'s CUDA generator."""
    cuda_ids = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    return torch.random.fork_rng(devices=cuda_ids)


# -- set-up ------------------------------------------------------------------------
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


def _setup(model: nn.Module, data: Any, cfg: TrainConfig, run_dir) -> _Run:
    """The run state of a fresh start: optimizer, loader, generators, the loss."""
    device, dtype = _utils.model_device(model), _utils.model_dtype(model)
    rank, world = _dist.setup(device)
    loader = as_loader(data, cfg)
    modes = [(m, m.training) for m in model.modules()]
    if cfg.runtime.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    # the attack's random starts and the global RNG (dropout), one stream per rank;
    # both are saved in resume.pt and restored on resume
    gen = _utils.derived_generator(cfg.seed, "attack", rank, device=device)
    torch.manual_seed(_utils.derive_seed(cfg.seed, "dropout", rank))
    loss = cfg.summed_loss()
    attack = cfg.attack
    own_loss = getattr(attack, "loss", "its own")  # None: the caller's (PGD, FGSM-RS)
    if own_loss is None and cfg.loss_fn != "cross_entropy":
        # an attack without a loss of its own ascends the training loss
        attack = dataclasses.replace(attack, loss=loss)
    run = _Run(
        cfg=cfg,
        raw=model,
        params=params,
        opt=_make_optimizer(params, cfg),
        loader=loader,
        device=device,
        dtype=dtype,
        rank=rank,
        world=world,
        gen=gen,
        # one stream on every rank: a model's per-batch draw (a curve's t) is the
        # same everywhere
        model_gen=_utils.derived_generator(cfg.seed, "model"),
        loss=loss,
        attack=attack,
        folder=Path(run_dir) if run_dir is not None else None,
        modes=modes,
        init=[p.detach().clone() for p in params],
        eps_fn=cfg.eps_fn(),
        lr_fn=cfg.lr_fn(),
    )
    if cfg.awp is not None:
        run.awp_params = [p for _, p in awp_tensors(model)]
    if cfg.averaging is not None:
        run.avg = Averager(cfg.averaging, model, params)
    return run


def _open_folder(run: _Run, resume: bool) -> None:
    """Start the run folder, or restore the run it holds."""
    folder = run.folder
    if folder is None:
        return
    if run.world > 1 and not run.main:
        torch.distributed.barrier()  # rank 0 sets the folder up first
    has_run = (folder / "config.json").exists()
    if has_run and not resume and run.main:
        raise RunFolderError(
            f"{folder} already holds a run; pass resume=True to continue it or "
            "choose a new folder"
        )
    if has_run:
        check_config(folder, run.cfg)
    if has_run and (folder / RESUME).exists():
        _restore(run, folder)
    elif run.main:
        io.atomic_save_torch(
            {n: p.detach().cpu() for n, p in _named(run.raw, run.params)},
            folder / INIT,
        )
    if run.main:
        with io.atomic_write(folder / "config.json", "w") as f:
            json.dump(run.cfg.to_dict(), f, indent=1)
        if run.rows:
            write_metrics(folder, run.rows)
    if run.world > 1 and run.main:
        torch.distributed.barrier()


def _restore(run: _Run, folder: Path) -> None:
    """Load ``resume.pt`` (and ``init.pt``) into the run state."""
    state = io.load_torch(folder / RESUME, map_location="cpu", kind="state")
    keys = "model optimizer rng epoch batch iteration elapsed rows checkpoints accum"
    if (
        not isinstance(state, dict)
        or state.get("format") != FORMAT
        or not all(k in state for k in keys.split())
    ):
        raise io.CorruptFileError(
            f"{folder / RESUME} is not a training state of this version - delete it "
            "to start the run over (or restore it from a backup)"
        )
    try:
        run.raw.load_state_dict(state["model"])
    except RuntimeError as err:
        raise RunFolderError(
            f"the model does not match the checkpoint in {folder}: {err}"
        ) from err
    _finite.check_model(run.raw, name=f"the model in {folder / RESUME}")
    run.opt.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"], {"attack": run.gen, "model": run.model_gen})
    run.epoch, run.batch = state["epoch"], state["batch"]
    run.iteration, run.elapsed = state["iteration"], state["elapsed"]
    run.rows, run.checkpoints = state["rows"], state["checkpoints"]
    run.accum = _Epoch(**state["accum"]) if state["accum"] is not None else None
    if run.avg is not None:
        run.avg.load(state["averaged"])
    run.best = max(
        [r["val_robust_acc"] for r in run.rows if _is_number(r.get("val_robust_acc"))],
        default=-math.inf,
    )
    init_state = io.load_torch(folder / INIT, map_location=run.device, kind="state")
    run.init = [init_state[n].to(p.dtype) for n, p in _named(run.raw, run.params)]


def _wrap_models(run: _Run) -> None:
    """The DDP / compiled models of the training forward and of the attack."""
    run.fwd = run.atk = run.raw
    if run.world > 1:
        run.fwd = nn.parallel.DistributedDataParallel(
            run.raw,
            device_ids=[run.device.index] if run.device.type == "cuda" else None,
        )
    if run.cfg.runtime.compile:
        run.fwd = torch.compile(run.fwd)
        run.atk = torch.compile(run.raw)


def _monitor_data(run: _Run, data: Any, test_data: Any, val_data: Any) -> None:
    """The validated training batches; the evaluation batches (test, validation, the
    fixed training subset), the fixed CO-check batch, the tracked batch and the
    BatchNorm batch of the averaged model (every rank: the per-epoch evaluation is
    sharded over the ranks, the tracked analyses sum over them)."""
    run.batches = _checked(run, run.loader, "data")
    cfg = run.cfg.runtime
    co = fixed_batch(run.loader, data, cfg.co_check_num)
    if co is not None:
        run.co_batch = run.prep(*co)
    run.eval_batches = _eval_batches(run, test_data, cfg.eval_num, "test_data")
    if run.eval_batches:
        run.num_classes = _probe_classes(run, run.eval_batches[0][0])
    if val_data is not None:
        run.val_batches = _eval_batches(run, val_data, len(val_data[1]), "val")
    sub_seed = _utils.derive_seed(run.cfg.val_seed, "train-subset")
    train_fixed = fixed_subset(run.loader, data, cfg.train_eval_num, sub_seed)
    if train_fixed is not None:
        run.train_batches = _eval_batches(run, train_fixed, cfg.train_eval_num, "data")
    if run.avg is not None and run.cfg.averaging.bn != "copy":
        bn = fixed_subset(run.loader, data, run.cfg.averaging.bn_num, sub_seed)
        run.bn_batches = _eval_batches(run, bn, run.cfg.averaging.bn_num, "data")
    spec = cfg.track
    if spec is not None:
        if spec.on == "train":
            source, name = fixed_subset(run.loader, data, spec.num, sub_seed), "data"
        elif val_data is not None:
            source, name = val_data, "val"
        else:
            source, name = test_data, "test_data"
        if source is None:
            raise ValueError(
                "Tracking(on='heldout') measures a held-out batch: give the run a "
                "validation split (val_num > 0) or test_data, or Tracking(on='train')"
            )
        run.track_batches = _eval_batches(run, source, spec.num, name)


def _eval_batches(run: _Run, source: Any, num: int, name: str) -> list:
    """At most ``num`` examples of ``source`` as validated batches on the device."""
    subset = eval_subset(source, num, run.cfg.batch_size)
    if not subset:
        return []
    return [run.prep(x, y) for x, y in _checked(run, subset, name).to_list()]


def _checked(run: _Run, source: Any, name: str) -> Batched:
    """``source`` through the package's one batches owner (validated once)."""
    named = isinstance(run.cfg.loss_fn, str)
    return as_batches(
        source,
        device=run.device,
        dtype=run.dtype,
        model=run.raw,
        labels="class" if named else "auto",
        images=True,
        name=name,
    )


@torch.no_grad()
def _probe_classes(run: _Run, x: Tensor) -> int:
    """The model's number of outputs (one eval-mode forward of a few validated
    inputs, RNG forked); warns when the outputs look like probabilities instead of
    logits."""
    with _fork(run.device), _utils.eval_mode(run.raw), run.ctx():
        out = run.raw(x[:8])
    _utils.check_logits(out, where="adversarial_train: model")
    if out.ndim != 2:
        raise ValueError(
            f"the model must return logits of shape (N, num_classes), got "
            f"{tuple(out.shape)}"
        )
    return int(out.shape[1])


# -- the epochs --------------------------------------------------------------------
def _train_epochs(run: _Run, progressbar: bool, callback) -> None:
    from .._progress import bar

    show = progressbar and run.main
    attack = (
        "standard training"
        if run.attack is None
        else f"{run.attack.name} at eps {run.attack.eps:g}"
    )
    ebar = bar(
        desc="adversarial_train",
        total=run.cfg.epochs,
        unit="epochs",
        initial=run.epoch,
        enabled=show,
        about=f"{run.num_batches} batches per epoch, {attack}",
    )
    while run.epoch < run.cfg.epochs:
        with io.deferred_signals(raise_after=False):  # stop between steps only
            _run_epoch(run, show, callback)
            row = _end_epoch(run)
            run.epoch, run.batch, run.accum = run.epoch + 1, 0, None
            _write_epoch(run, row)
            _stop_if_asked(run)
        ebar.update(1)
        ebar.set_postfix(
            loss=f"{row['train_loss']:.3f}",
            acc=f"{row['train_acc']:.3f}",
            rob=f"{row.get('test_robust_acc', math.nan):.3f}",
        )
    ebar.close()


def _run_epoch(run: _Run, show: bool, callback) -> None:
    """The optimizer steps of one epoch (from ``run.batch`` on)."""
    from .._progress import bar

    t0 = time.perf_counter()
    if hasattr(run.loader, "set_epoch"):
        run.loader.set_epoch(run.epoch)
    if run.accum is None or run.batch == 0:
        run.accum = _Epoch()
    bbar = bar(
        desc=f"epoch {run.epoch + 1}",
        total=run.num_batches,
        unit="batches",
        initial=run.batch,
        leave=False,
        enabled=show,
    )
    # a resumed epoch skips its first batches without moving them; under DDP each
    # rank moves only its shard of every global batch
    for b, batch in run.batches.numbered(start=run.batch, take=run.share):
        info = _step(run, b, batch)
        run.batch = b + 1
        bbar.update(1)
        if callback is not None:
            callback(info)
        if _resume_point(run) or (io.stop_requested() and _mid_epoch(run)):
            run.accum.time += time.perf_counter() - t0
            t0 = time.perf_counter()
            _read(run)  # the sums for resume.pt; stops a diverged run here
            if run.folder is not None and run.main:
                _save_resume(run)
            _stop_if_asked(run)
    bbar.close()
    run.accum.time += time.perf_counter() - t0


def _resume_point(run: _Run) -> bool:
    every = run.cfg.runtime.checkpoint_every
    return (
        run.folder is not None
        and run.main
        and bool(every)
        and run.iteration % every == 0
        and _mid_epoch(run)
    )


def _mid_epoch(run: _Run) -> bool:
    """A step boundary inside the epoch (the end of an epoch saves on its own)."""
    return run.batch < run.num_batches


def _stop_if_asked(run: _Run) -> None:
    """After SIGTERM / SIGINT (held during the step): stop with where the run
    stopped; the resume state of this very point was just written."""
    signal = io.stop_requested()
    if signal is None:
        return
    where = (
        f"at epoch {run.epoch + 1}, batch {run.batch}/{run.num_batches}"
        if run.batch
        else f"after epoch {run.epoch}"
    )
    if run.folder is None:
        raise io.Interrupted(
            signal, f"training {where} (no run folder: pass run_dir to resume runs)"
        )
    raise io.Interrupted(
        signal,
        f"training {where} (iteration {run.iteration}); its state is in "
        f"{run.folder / RESUME}",
        resumable=True,
    )


def _batch(run: _Run, b: int, batch: Any) -> tuple[Tensor, Tensor, int]:
    """This rank's checked share of the global batch ``b`` (moved alone by
    :meth:`_Run.share`; augmented with the draws of the whole batch, the same on
    every rank), and the global batch size."""
    x, y = run.prep(batch[0], batch[1])
    if run.num_classes is None:
        run.num_classes = _probe_classes(run, x)
    if run.cfg.augment is not None:
        gen = _utils.derived_generator(
            run.cfg.seed, "augment", run.epoch, b, device=run.device
        )
        x = augment(run.cfg.augment, x, gen, part=(run.offset, run.n_global))
    return x, y, run.n_global


def _attack(run: _Run, x: Tensor, y: Tensor, eps_t: float) -> Tensor:
    """The training attack's adversarial batch at the scheduled budget ``eps_t``:
    ``dataclasses.replace(attack, eps=eps_t)``."""
    if run.attack is None or run.attack.eps <= 0 or eps_t <= 0:
        return x
    if run.attack_at is None or run.attack_at.eps != eps_t:
        run.attack_at = dataclasses.replace(run.attack, eps=eps_t)
    train = {"train": True} if run.cfg.attack_train_mode else {}
    with run.ctx(), attack_ctx(run.raw, run.device, run.cfg)():
        attack = run.attack_at
        if run.cfg.objective is not None:  # e.g. TRADES: the KL to p(x)
            with _utils.eval_mode(run.raw):
                fn = run.cfg.objective.attack_loss(run.atk, x, y)
            if fn is not None:
                attack = dataclasses.replace(attack, loss=fn)
        return attack(run.atk, x, y, run.gen, **train)


def _step(run: _Run, b: int, batch: Any) -> dict[str, Any]:
    """One optimizer step on the adversarial batch; returns the callback's record."""
    cfg = run.cfg
    t = (
        run.epoch + b / run.num_batches
        if cfg.schedule_update == "iteration"
        else run.epoch
    )
    eps_t, lr_t = float(run.eps_fn(t)), float(run.lr_fn(t))
    for g in run.opt.param_groups:
        g["lr"] = lr_t
    run.opt.zero_grad(set_to_none=True)
    x, y, n_global = _batch(run, b, batch)
    if hasattr(run.raw, "resample"):  # the model's per-batch draw, before the attack
        run.raw.resample(run.model_gen)
    x_adv = _attack(run, x, y, eps_t)
    awp = _awp_push(run, x, x_adv, y)
    run.raw.train()
    loss_sum, out = _loss(run, x, x_adv, y)
    (loss_sum / (n_global / run.world)).backward()
    gnorm = _grad_norm(run.params)
    correct = (out.detach().argmax(1) == y).sum()
    _accumulate(run, loss_sum.detach(), correct, gnorm, x_adv, x)
    run.sizes[b] = len(y)
    run.opt.step()
    _awp_pop(run, awp)
    if run.avg is not None:
        run.avg.step(run.params)
    run.iteration += 1
    a = run.accum
    a.n, a.nb = a.n + len(y), a.nb + 1
    a.eps_sum, a.eps, a.lr = a.eps_sum + eps_t, eps_t, lr_t
    return {
        "epoch": run.epoch,
        "batch": b,
        "iteration": run.iteration,
        "loss": loss_sum.detach() / max(len(y), 1),
        "eps": eps_t,
        "lr": lr_t,
    }


def _accumulate(
    run: _Run,
    loss_sum: Tensor,
    correct: Tensor,
    gnorm: Tensor,
    x_adv: Tensor,
    x: Tensor,
) -> None:
    """Keep a step's loss sum, correct count, gradient norm and the sum of its
    adversarial inputs on the device for :func:`_read` (no host read)."""
    dev = loss_sum.device
    # the sum of the adversarial inputs is finite exactly when they all are (they
    # lie in the input box: no overflow), and far cheaper than isfinite().all()
    adv = (
        x_adv.detach().sum().double()
        if x_adv is not x
        else torch.zeros((), dtype=torch.float64, device=dev)
    )
    parts = [loss_sum.double(), correct.double(), gnorm.to(dev, torch.float64), adv]
    run.accum.pending.append(torch.stack(parts))


def _read(run: _Run) -> None:
    """Read the steps kept since the last read (one host read), raise
    :class:`DivergedError` for the first whose loss or gradient norm is not finite
    (its epoch, batch, iteration, lr and eps), else add them to the epoch's sums in
    the order of the steps."""
    a = run.accum
    if a is None or not a.pending:
        return
    rows = torch.stack(a.pending).tolist()
    a.pending = []
    first = run.batch - len(rows)  # the steps since the last read are consecutive
    for k, (ls, cs, gn, adv) in enumerate(rows):
        if not (math.isfinite(ls) and math.isfinite(gn)):
            _diverged(run, first + k, ls, gn, math.isfinite(adv))
        a.loss, a.correct = a.loss + ls, a.correct + cs
        a.gsum, a.gmax = a.gsum + gn, max(a.gmax, gn)


def _diverged(run: _Run, b: int, ls: float, gn: float, adv_ok: bool) -> None:
    """Raise the :class:`DivergedError` of the step at batch ``b``."""
    t = (
        run.epoch + b / run.num_batches
        if run.cfg.schedule_update == "iteration"
        else run.epoch
    )
    eps_t, lr_t = float(run.eps_fn(t)), float(run.lr_fn(t))
    iteration = run.iteration - run.batch + b + 1
    where = (
        f"at epoch {run.epoch + 1}, batch {b + 1}/{run.num_batches} (iteration "
        f"{iteration}, lr={lr_t:g}, eps={eps_t:g})"
    )
    if not adv_ok:
        raise DivergedError(
            f"the training attack returned NaN or inf inputs {where}: the model's "
            "loss or input gradient is NaN or inf at the attacked points - check "
            "the model (e.g. a sqrt or log of 0 in its forward) or the attack's loss"
        )
    raise DivergedError(
        f"training diverged: loss is {ls / max(run.sizes.get(b, 1), 1)} (gradient "
        f"norm {gn}) {where}; lower the learning rate"
    )


def _loss(
    run: _Run, x: Tensor, x_adv: Tensor, y: Tensor, model: nn.Module | None = None
) -> tuple[Tensor, Tensor]:
    """The training loss summed over the batch and the adversarial logits: the
    objective's (TRADES, MART: clean and adversarial forward) or ``loss_fn`` at the
    adversarial batch."""
    fwd = run.fwd if model is None else model
    obj = run.cfg.objective
    if obj is None:
        with run.ctx():
            out = fwd(x_adv)
        return run.loss(upcast(out), y), out
    with run.ctx():
        out_clean = fwd(x)
        out = fwd(x_adv)
    return obj.loss(upcast(out_clean), upcast(out), y) * len(y), out


def _awp_push(run: _Run, x: Tensor, x_adv: Tensor, y: Tensor) -> list[Tensor] | None:
    """AWP (Wu et al., 2020): move the weights to ``w + v`` (:class:`AWP`); returns
    ``v`` (None when AWP does not act in this epoch). The gradient is the run's loss
    in train mode at the unperturbed weights, the model's buffers (BatchNorm
    statistics) restored afterwards, summed over the ranks (every rank moves alike)."""
    spec = run.cfg.awp
    if spec is None or not spec.active(run.epoch) or not run.awp_params:
        return None
    buffers = [b.detach().clone() for b in run.raw.buffers()]
    with _utils.train_mode(run.raw):
        loss_sum, _ = _loss(run, x, x_adv, y, model=run.raw)
        grads = torch.autograd.grad(loss_sum / max(len(y), 1), run.awp_params)
    with torch.no_grad():
        for b, saved in zip(run.raw.buffers(), buffers):
            b.copy_(saved)
        grads = [_dist.all_reduce_sum(g.detach(), run.world) for g in grads]
        v = awp_perturbation([p.detach() for p in run.awp_params], grads, spec.gamma)
        torch._foreach_add_(run.awp_params, v)
    return v


@torch.no_grad()
def _awp_pop(run: _Run, v: list[Tensor] | None) -> None:
    """Take the perturbation off again after the optimizer step."""
    if v is not None:
        torch._foreach_sub_(run.awp_params, v)


def _end_epoch(run: _Run) -> dict[str, Any]:
    """The epoch's metrics row: reduced sums, evaluation and the CO check."""
    _read(run)
    a = run.accum
    tot = torch.tensor([a.loss, a.correct, a.n], dtype=torch.float64)
    tot = _dist.all_reduce_sum(tot.to(run.device), run.world).cpu().tolist()
    row: dict[str, Any] = {
        "epoch": run.epoch + 1,
        "iteration": run.iteration,
        "eps": a.eps,
        "eps_mean": a.eps_sum / max(a.nb, 1),
        "lr": a.lr,
        "train_loss": tot[0] / max(tot[2], 1),
        "train_acc": tot[1] / max(tot[2], 1),
        "grad_norm_mean": a.gsum / max(a.nb, 1),
        "grad_norm_max": a.gmax,
        "dist_init": _distance(run.params, run.init),
    }
    if run.avg is not None:
        run.avg.end_epoch(run.params, run.epoch + 1)
    # every rank evaluates (its share of the attacked batches, merged by the
    # evaluation protocol): no rank waits in a collective on rank 0 working alone
    t0 = time.perf_counter()
    row.update(_monitor(run, a.eps))
    row["time_eval"] = time.perf_counter() - t0 - row.get("time_track", 0.0)
    if run.main:
        if row["co_flag"]:
            warnings.warn(co_message(row, run.cfg), stacklevel=4)
    run.elapsed += a.time
    row["time"] = a.time
    row["time_total"] = run.elapsed
    run.rows.append(row)
    return row


def _monitor(run: _Run, eps_sched: float) -> dict[str, Any]:
    """Per-epoch evaluation and CO check (RNG forked: they never touch the run)."""
    cfg, epoch = run.cfg, run.epoch
    do_eval = epoch + 1 == cfg.epochs or (epoch + 1) % cfg.runtime.eval_every == 0
    trained = target_eps(cfg) > 0
    with _fork(run.device):
        out = evaluate(
            run.raw,
            run.eval_batches if do_eval else [],
            eps_target=target_eps(cfg),
            eps_sched=eps_sched,
            cfg=cfg,
            seed=_utils.derive_seed(cfg.seed, "eval", epoch),
            ctx=run.eval_ctx,
            loss=run.loss,
        )
        out.update(
            co_check(
                run.raw,
                run.co_batch,
                eps=eps_sched if trained else 0.0,
                cfg=cfg,
                seed=_utils.derive_seed(cfg.seed, "co-check", epoch),
                ctx=run.eval_ctx,
            )
        )
        if do_eval:
            out.update(_more_evaluations(run, eps_sched))
        spec = cfg.runtime.track
        if spec is not None and spec.due(epoch + 1):
            out.update(
                track(
                    run.raw,
                    lambda o, t: run.loss(upcast(o), t) / len(t),
                    run.track_batches,
                    spec,
                    spec.attack or _eval_at(cfg, target_eps(cfg)),
                    _utils.derive_seed(cfg.seed, "track", epoch),
                )
            )
    return out


def _eval_at(cfg: TrainConfig, eps: float) -> attacks.Attack:
    return dataclasses.replace(eval_attack(cfg), eps=eps)


def _more_evaluations(run: _Run, eps_sched: float) -> dict[str, Any]:
    """The validation split and the fixed training subset (``val_*``, ``train_*``)
    and the averaged model on test and validation data (``avg_*``), under the
    evaluation attack at the target eps (the same seed for every set)."""
    cfg, epoch = run.cfg, run.epoch
    attack = _eval_at(cfg, target_eps(cfg))
    seed = _utils.derive_seed(cfg.seed, "eval", epoch)
    jobs = [(run.raw, "val", run.val_batches), (run.raw, "train", run.train_batches)]
    if run.avg is not None and run.avg.ready:
        avg = _averaged_model(run, eps_sched)
        jobs += [(avg, "avg_test", run.eval_batches), (avg, "avg_val", run.val_batches)]
    out: dict[str, Any] = {}
    for model, prefix, batches in jobs:
        if batches:
            out.update(
                evaluate_split(
                    model,
                    batches,
                    prefix,
                    attack,
                    seed,
                    ctx=run.eval_ctx,
                    loss=run.loss,
                )
            )
    return out


def _averaged_model(run: _Run, eps: float) -> nn.Module:
    """The averaged model with its BatchNorm statistics set (``averaging.bn``): for
    ``"train"`` re-estimated on the BatchNorm batch attacked at ``eps`` by the
    training attack against the averaged model (with the online statistics)."""
    spec = run.cfg.averaging
    gen = _utils.derived_generator(run.cfg.seed, "avg-bn", run.epoch, device=run.device)

    def data(model: nn.Module) -> list[tuple[Tensor, Tensor]]:
        if spec.bn == "clean" or run.attack is None or eps <= 0:
            return run.bn_batches
        attack = dataclasses.replace(run.attack, eps=eps)
        with run.eval_ctx():
            return [(attack(model, x, y, gen), y) for x, y in run.bn_batches]

    return run.avg.model_for_eval(run.raw, data)


def _write_epoch(run: _Run, row: dict[str, Any]) -> None:
    """End-of-period checkpoint, the best-by-validation checkpoint, metrics files and
    the resume checkpoint."""
    if not run.main:
        return
    val = row.get("val_robust_acc")
    better = _is_number(val) and val > run.best  # strictly better (Rice et al.)
    if better:
        run.best = val
    if run.folder is None:
        return
    if better:
        io.atomic_save_torch(
            {
                "model": run.raw.state_dict(),
                "epoch": run.epoch,
                "config": run.cfg.to_dict(),
                "metrics": row,
            },
            run.folder / BEST,
        )
    if run.epoch in set(run.cfg.period_end_epochs()):
        path = run.folder / period_checkpoint(run.epoch)
        io.atomic_save_torch(
            {
                "model": run.raw.state_dict(),
                "epoch": run.epoch,
                "config": run.cfg.to_dict(),
                "metrics": row,
            },
            path,
        )
        if str(path) not in run.checkpoints:
            run.checkpoints.append(str(path))
    write_metrics(run.folder, run.rows)
    _save_resume(run)


def _finish(run: _Run) -> TrainResult:
    """Restore the modes, write ``final.pt`` and return the result."""
    run.opt.zero_grad(set_to_none=True)
    for m, mode in run.modes:
        m.training = mode
    summary = summarize(run.rows, run.cfg)
    if run.folder is not None and run.main:
        io.atomic_save_torch(
            {
                "model": run.raw.state_dict(),
                "epoch": run.cfg.epochs,
                "config": run.cfg.to_dict(),
            },
            run.folder / FINAL,
        )
        if run.avg is not None and run.avg.ready:
            with _fork(run.device):
                model = _averaged_model(run, run.rows[-1]["eps"] if run.rows else 0.0)
            io.atomic_save_torch(
                {
                    "model": model.state_dict(),
                    "epoch": run.cfg.epochs,
                    "config": run.cfg.to_dict(),
                    "averaging": run.avg.n,
                },
                run.folder / AVERAGED,
            )
        with io.atomic_write(run.folder / SUMMARY, "w") as f:
            json.dump(summary, f, indent=1)
    return TrainResult(
        metrics=columns(run.rows),
        config=run.cfg.to_dict(),
        summary=summary,
        run_dir=str(run.folder) if run.folder is not None else None,
        checkpoints=list(run.checkpoints),
        meta={
            "rank": run.rank,
            "world_size": run.world,
            "device": str(run.device),
            "num_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
    )


# -- helpers -----------------------------------------------------------------------
def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


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


def _named(model: nn.Module, params: list[Tensor]) -> list[tuple[str, Tensor]]:
    ids = {id(p) for p in params}
    return [(n, p) for n, p in model.named_parameters() if id(p) in ids]


def _save_resume(run: _Run) -> None:
    """``resume.pt``: everything to continue at (``run.epoch``, ``run.batch``)."""
    io.atomic_save_torch(
        {
            "format": FORMAT,
            "config": run.cfg.to_dict(),
            "model": run.raw.state_dict(),
            "optimizer": run.opt.state_dict(),
            "rng": rng_state({"attack": run.gen, "model": run.model_gen}),
            "epoch": run.epoch,
            "batch": run.batch,
            "iteration": run.iteration,
            "elapsed": run.elapsed,
            "rows": copy.deepcopy(run.rows),
            "checkpoints": list(run.checkpoints),
            "accum": {
                f.name: getattr(run.accum, f.name)
                for f in dataclasses.fields(run.accum)
                if f.name != "pending"
            }
            if run.accum is not None and run.batch > 0
            else None,
            "averaged": run.avg.state() if run.avg is not None else None,
        },
        run.folder / RESUME,
    )

"""GPU benchmark (issue 24): ResNet-18 on CIFAR-10 on one GPU, in parts that resume.

Run from the checkout on a machine with a CUDA torch and no registry access
(``PYTHONPATH=.``; nothing is installed but the pyautoattack wheel). Preparation on a
developer machine (both folders are git-ignored and travel with the checkout)::

    mkdir -p .devdata && cp ../shared/data/cifar10-jpeg.tar.gz .devdata/   # 18.8 MB
    python -m pip download pyautoattack==0.2.0 --no-deps -d .whl            # 42 MB

and on the GPU machine::

    pip install --no-index --no-deps --target /tmp/site .whl/pyautoattack-0.2.0-py3-none-any.whl
    PYTHONPATH=.:/tmp/site python benchmarks/bench_gpu.py --data-root .devdata --out "$OUT"

(benchmarks/README.md has the exact ``run`` call.) Data: the CIFAR-10 JPEG copy's test
split (10,000 images; decoded on first use into the per-user cache: one pass over the
archive), for every part: the training parts measure throughput, not accuracy.

Parts (each one records its result in the state file ``runs/bench_gpu/state.json``
after it ends, so a second call runs only the parts the first did not finish; a
part that fails is recorded as failed and the next one runs; ``--redo PART`` runs a
part again):

- ``train_fp32`` / ``train_bf16``: one PGD-10 epoch of ResNet-18 (11.2M parameters,
  batch 128, SGD) through ``train.adversarial_train`` on 10,000 images (img/s) and
  the ratio of its time to 11 plain epochs of the same loop (``attack=None``), at
  ``Runtime(amp="off")`` / ``Runtime(amp="bf16")`` (main's spelling of the precision
  option at the time of writing; the fp32 model is kept for the later parts);
- ``sync_train``: ``torch.cuda.set_sync_debug_mode("error")`` around every training
  step (``landscape.train._loop._step``: attack, forward, backward, optimizer step)
  of a 20-batch PGD-10 run; a host sync fails the part and names the line;
- ``sync_attacks``: the same around PGD-10 (training and evaluation versions), APGD-CE,
  APGD-T, FAB-T and Square (budgets cut to 5 % of the standard ones) on one batch;
- ``sync_hvp``: the same around Hessian-vector products (``HessianOperator.matvec``)
  over 4 batches;
- ``evaluate``: ``evaluate(preset="standard")`` (AutoAttack's standard version) of
  1,000 points vs pyautoattack's standard version in the same run: time and robust
  accuracy of each (L-inf, eps 8/255);
- ``top5``: ``hessian.top_eigenvalues(num=5)`` on 10,000 images (batch 500,
  at most 40 Lanczos products);
- ``surface``: a 21 x 21 ``loss_surface`` on 1,000 images vs a plain loop over the
  grid (copy ``w + a d1 + b d2`` into the model, evaluate the batches).

Every part prints its time (wall seconds after ``torch.cuda.synchronize``) and its
peak GPU memory (``torch.cuda.max_memory_allocated`` after a reset). Only training
offers bf16 (the Hessian, attacks and surfaces run in the model's dtype).
``--budget`` (seconds, default 450) stops starting new parts past it, so one call
stays under 8 minutes; call again to finish.

``--smoke`` runs every part on CPU in seconds (a ResNet-18 at width 1/16, random
32 x 32 images, tiny budgets; the sync parts are skipped without CUDA; pyautoattack
with its budgets cut, skipped when it is not installed); a test runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path

import _bench
import numpy as np
import torch
from torch import nn

PARTS = (
    "train_fp32",
    "train_bf16",
    "sync_train",
    "sync_attacks",
    "sync_hvp",
    "evaluate",
    "top5",
    "surface",
)
EPS = 8 / 255


class _Sync(Exception):
    """A host sync inside a checked hot loop."""


# ----------------------------------------------------------------- set-up
class _Ctx:
    def __init__(self, args):
        self.smoke = args.smoke
        self.device = torch.device(
            "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
        )
        self.cuda = self.device.type == "cuda"
        self.folder = Path(args.state).parent
        self.width = 1 / 16 if args.smoke else 1.0
        self.n_train = 64 if args.smoke else 10_000
        self.n_eval = 8 if args.smoke else 1_000
        self.n_top = 64 if args.smoke else 10_000
        self.n_surface = 32 if args.smoke else 1_000
        self.grid = 3 if args.smoke else 21
        self.batch = 32 if args.smoke else 128
        self.data_root = args.data_root
        self._data = None
        self.trained = False

    def data(self):
        """``(x, y)`` on the device: CIFAR-10's test split, or random images (smoke)."""
        if self._data is None:
            if self.smoke:
                g = torch.Generator().manual_seed(0)
                x = torch.rand(self.n_train, 3, 32, 32, generator=g)
                y = torch.randint(0, 10, (self.n_train,), generator=g)
            else:
                from landscape import data

                x, y = data.load_dataset(
                    "cifar10-jpeg", self.data_root, split="test", download=False
                )
            self._data = x.to(self.device), y.to(self.device)
        return self._data

    def model(self, trained: bool = True) -> nn.Module:
        from landscape import models

        torch.manual_seed(0)
        m = models.build("resnet18", dataset="cifar10", width=self.width).to(
            self.device
        )
        path = self.folder / "model_fp32.pt"
        self.trained = trained and path.exists()
        if self.trained:
            m.load_state_dict(
                torch.load(path, map_location=self.device, weights_only=True)
            )
        if self.cuda:
            m = m.to(memory_format=torch.channels_last)
        return m.eval()

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def timed(self, fn):
        """``(result, seconds, peak GPU MiB or None)`` of ``fn()``."""
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        dt = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() / 2**20 if self.cuda else None
        return out, dt, peak


def _site(err: BaseException) -> str:
    """The innermost landscape (or benchmark) line of an exception's traceback."""
    frames = traceback.extract_tb(err.__traceback__)
    mine = [f for f in frames if "landscape" in f.filename or "bench_gpu" in f.filename]
    f = (mine or frames)[-1]
    return f"{os.path.relpath(f.filename)}:{f.lineno} ({f.name}: {f.line})"


@contextlib.contextmanager
def no_sync(ctx: _Ctx, where: str):
    """``set_sync_debug_mode("error")`` around the block (CUDA only); a sync raises
    :class:`_Sync` naming the line."""
    if not ctx.cuda:
        yield
        return
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    except RuntimeError as err:
        if "synchroniz" not in str(err):
            raise
        raise _Sync(f"{where}: host sync at {_site(err)}") from err
    finally:
        torch.cuda.set_sync_debug_mode(0)


def _find_sync(err: BaseException) -> _Sync | None:
    while err is not None:
        if isinstance(err, _Sync):
            return err
        err = err.__cause__ or err.__context__
    return None


# ----------------------------------------------------------------- the parts
def _train_cfg(ctx: _Ctx, amp: str, pgd: bool):
    from landscape.attacks import PGD
    from landscape.train import Runtime, TrainConfig

    runtime = Runtime(eval_num=0, co_check_num=0, amp=amp)
    attack = PGD(eps=EPS, steps=2 if ctx.smoke else 10, alpha_rel=0.25) if pgd else None
    return TrainConfig(
        epochs=1, batch_size=ctx.batch, optimizer="sgd", lr=0.05, shuffle=False, seed=0,
        attack=attack, runtime=runtime,
    )  # fmt: skip


def _epoch(ctx: _Ctx, model, data, cfg) -> float:
    from landscape.train import adversarial_train

    with tempfile.TemporaryDirectory() as d:
        _, dt, _ = ctx.timed(lambda: adversarial_train(model, data, cfg, run_dir=d))
    return dt


def part_train(ctx: _Ctx, amp: str) -> dict:
    x, y = ctx.data()
    x, y = x[: ctx.n_train], y[: ctx.n_train]
    model = ctx.model(trained=False).train()
    k = 2 if ctx.smoke else 10
    warm = (x[: 2 * ctx.batch], y[: 2 * ctx.batch])
    _epoch(ctx, model, warm, _train_cfg(ctx, amp, True))  # kernels, autotuning
    plain = _epoch(ctx, model, (x, y), _train_cfg(ctx, amp, False))
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats()
    pgd = _epoch(ctx, model, (x, y), _train_cfg(ctx, amp, True))
    peak = torch.cuda.max_memory_allocated() / 2**20 if ctx.cuda else None
    if amp == "off":
        torch.save(model.state_dict(), ctx.folder / "model_fp32.pt")
    return {
        "images": len(y),
        "pgd_steps": k,
        "pgd_epoch_s": pgd,
        "pgd_img_per_s": len(y) / pgd,
        "plain_epoch_s": plain,
        "plain_img_per_s": len(y) / plain,
        f"ratio_to_{k + 1}_plain": pgd / ((k + 1) * plain),
        "peak_mib": peak,
    }


def part_sync_train(ctx: _Ctx) -> dict:
    if not ctx.cuda:
        return {"skipped": "no CUDA"}
    from landscape.train import _loop

    x, y = ctx.data()
    n = 20 * ctx.batch
    model = ctx.model(trained=False).train()
    cfg = _train_cfg(ctx, "off", True)
    _epoch(ctx, model, (x[: 2 * ctx.batch], y[: 2 * ctx.batch]), cfg)  # warm
    original = _loop._step

    def checked(run, b, batch):
        with no_sync(ctx, f"training step {b}"):
            return original(run, b, batch)

    _loop._step = checked
    try:
        _epoch(ctx, model, (x[:n], y[:n]), cfg)
    finally:
        _loop._step = original
    return {"steps_checked": n // ctx.batch, "syncs": 0}


def _attack_list(ctx: _Ctx):
    from landscape import attacks
    from landscape.evaluate import preset_attacks

    train_pgd = attacks.PGD(eps=EPS, steps=10, alpha_rel=0.25)
    eval_pgd = preset_attacks("quick", EPS, steps=10)[0]
    return [("pgd-train", train_pgd), ("pgd-eval", eval_pgd)] + [
        (a.name, a) for a in preset_attacks("standard", EPS, scale=0.05)
    ]


def part_sync_attacks(ctx: _Ctx) -> dict:
    if not ctx.cuda:
        return {"skipped": "no CUDA"}
    x, y = ctx.data()
    xb, yb = x[: ctx.batch], y[: ctx.batch]
    model = ctx.model()
    for p in model.parameters():
        p.requires_grad_(False)
    out, failed = {}, []
    for name, attack in _attack_list(ctx):
        gen = torch.Generator(ctx.device).manual_seed(0)
        attack(model, xb, yb, gen)  # warm
        try:
            with no_sync(ctx, name):
                attack(model, xb, yb, gen)
            out[name] = "no sync"
        except _Sync as err:
            out[name] = str(err)
            failed.append(name)
    if failed:
        raise _Sync("; ".join(out[n] for n in failed))
    return out


def part_sync_hvp(ctx: _Ctx) -> dict:
    if not ctx.cuda:
        return {"skipped": "no CUDA"}
    from landscape import hessian

    x, y = ctx.data()
    batches = [(x[i : i + 250], y[i : i + 250]) for i in range(0, 1000, 250)]
    model = ctx.model()
    out = {}
    for mode in ("graph", "recompute"):
        op = hessian.HessianOperator(model, nn.CrossEntropyLoss(), batches, mode=mode)
        v = torch.randn(
            op.dim,
            device=ctx.device,
            generator=torch.Generator(ctx.device).manual_seed(0),
        )
        op.matvec(v)  # warm (a graph mode builds its graph here)
        with no_sync(ctx, f"HVP ({mode})"):
            op.matvec(v)
        out[mode] = "no sync"
    return out


def _autoattack(ctx: _Ctx, model, x, y):
    try:
        from pyautoattack import AutoAttack
    except ImportError:
        return None
    aa = AutoAttack(
        model, norm="Linf", eps=EPS, version="standard", seed=0, device=ctx.device
    )
    if ctx.smoke:  # budgets cut: the pipeline, not the numbers
        aa.apgd.n_iter = aa.apgd_targeted.n_iter = aa.fab.n_iter = 2
        aa.apgd_targeted.n_target_classes = aa.fab.n_target_classes = 1
        aa.square.n_queries = 10
    state = torch.random.get_rng_state()
    try:
        x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=500)
    finally:
        torch.random.set_rng_state(state)
    with torch.no_grad():
        return float((model(x_adv).argmax(1) == y).float().mean())


def part_evaluate(ctx: _Ctx) -> dict:
    from landscape.evaluate import evaluate

    x, y = ctx.data()
    x, y = x[: ctx.n_eval], y[: ctx.n_eval]
    model = ctx.model()
    for p in model.parameters():
        p.requires_grad_(False)
    res, ours, peak = ctx.timed(
        lambda: evaluate(
            model, (x, y), eps=EPS, preset="standard", scale=0.02 if ctx.smoke else 1.0,
            batch_size=500, checks=False, adaptive=None,
            generator=torch.Generator().manual_seed(0),
        )
    )  # fmt: skip
    out = {
        "points": len(y),
        "clean_accuracy": float(res.clean_accuracy),
        "ours_robust_accuracy": float(np.asarray(res.robust_accuracy).ravel()[0]),
        "ours_s": ours,
        "ours_peak_mib": peak,
    }
    acc, theirs, peak = ctx.timed(lambda: _autoattack(ctx, model, x, y))
    if acc is None:
        out["autoattack"] = "pyautoattack not installed"
        return out
    out.update(
        autoattack_robust_accuracy=acc, autoattack_s=theirs, autoattack_peak_mib=peak
    )
    out["time_ratio_ours_to_autoattack"] = ours / theirs
    return out


def part_top5(ctx: _Ctx) -> dict:
    from landscape import data, hessian

    x, y = ctx.data()
    n = min(ctx.n_top, len(y))
    loader = data.batches(x[:n], y[:n], batch_size=32 if ctx.smoke else 500)
    model = ctx.model()
    eig, dt, peak = ctx.timed(
        lambda: hessian.top_eigenvalues(
            model, nn.CrossEntropyLoss(), loader, num=5, max_iter=6 if ctx.smoke else 40,
            return_vectors=False, generator=torch.Generator().manual_seed(0),
        )
    )  # fmt: skip
    return {
        "images": n,
        "eigenvalues": [float(v) for v in eig.eigenvalues],
        "products": int(eig.num_matvecs),
        "converged": bool(eig.converged),
        "seconds": dt,
        "peak_mib": peak,
    }


def _plain_loop(model, batches, dirs, grid) -> np.ndarray:
    """The reference loop: weights ``w + a d1 + b d2`` copied in, point by point."""
    net = copy.deepcopy(model).eval()
    base = {k: v.detach().clone() for k, v in net.state_dict().items()}
    params = dict(net.named_parameters())
    ce = nn.CrossEntropyLoss(reduction="sum")
    n = sum(len(b[1]) for b in batches)
    out = np.zeros((len(grid), len(grid)))
    with torch.no_grad():
        for i, b in enumerate(grid):
            for j, a in enumerate(grid):
                for k, p in params.items():
                    p.copy_(base[k] + a * dirs[0][k] + b * dirs[1][k])
                total = sum(ce(net(xb), yb) for xb, yb in batches)
                out[i, j] = float(total) / n
    return out


def part_surface(ctx: _Ctx) -> dict:
    from landscape import directions, surface

    x, y = ctx.data()
    n = ctx.n_surface
    batches = [(x[i : i + 500], y[i : i + 500]) for i in range(0, n, 500)]
    model = ctx.model()
    dirs = directions.random_directions(
        model, generator=torch.Generator().manual_seed(1)
    )
    dirs = [{k: v.to(ctx.device) for k, v in d.items()} for d in dirs]
    grid = np.linspace(-1, 1, ctx.grid)
    surf, ours, peak = ctx.timed(
        lambda: surface.loss_surface(
            model, nn.CrossEntropyLoss(), batches, dirs, xs=grid, ys=grid,
            generator=torch.Generator().manual_seed(2),
        )
    )  # fmt: skip
    ref, loop, loop_peak = ctx.timed(lambda: _plain_loop(model, batches, dirs, grid))
    err = float(
        np.max(np.abs(np.asarray(surf.loss) - ref) / np.maximum(np.abs(ref), 1e-12))
    )
    return {
        "grid": f"{ctx.grid}x{ctx.grid}",
        "images": n,
        "ours_s": ours,
        "loop_s": loop,
        "ratio_ours_to_loop": ours / loop,
        "max_rel_diff_to_loop": err,
        "ours_peak_mib": peak,
        "loop_peak_mib": loop_peak,
    }


RUN = {
    "train_fp32": lambda ctx: part_train(ctx, "off"),
    "train_bf16": lambda ctx: part_train(ctx, "bf16"),
    "sync_train": part_sync_train,
    "sync_attacks": part_sync_attacks,
    "sync_hvp": part_sync_hvp,
    "evaluate": part_evaluate,
    "top5": part_top5,
    "surface": part_surface,
}


# ----------------------------------------------------------------- the driver
def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(u) for u in v) + "]"
    return str(v)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--redo", nargs="+", choices=PARTS, default=[], help="run again")
    p.add_argument(
        "--data-root", default=".devdata", help="folder of cifar10-jpeg.tar.gz"
    )
    p.add_argument("--state", default=None, help="JSON of finished parts")
    p.add_argument("--out", default=None, help="also copy the state file here")
    p.add_argument(
        "--budget", type=float, default=450.0, help="seconds; no new part past it"
    )
    p.add_argument("--smoke", action="store_true", help="every part on CPU in seconds")
    a = p.parse_args(argv)
    a.state = a.state or (
        "runs/bench_gpu/smoke.json" if a.smoke else "runs/bench_gpu/state.json"
    )
    path = Path(a.state)
    state = json.loads(path.read_text()) if path.exists() else {}
    for part in a.redo:
        state.pop(part, None)
    ctx = _Ctx(a)
    ctx.folder.mkdir(parents=True, exist_ok=True)
    if ctx.smoke:
        torch.set_num_threads(1)
    name = torch.cuda.get_device_name() if ctx.cuda else "CPU"
    print(f"device {name}, torch {torch.__version__}, state {path}")
    if not ctx.cuda and not ctx.smoke:
        print("no CUDA device: the GPU numbers need one (use --smoke on CPU)")
        return 1
    t0 = time.perf_counter()
    for part in a.parts:
        if part in state:
            continue
        if time.perf_counter() - t0 > a.budget:
            print(f"{part}: not started (past --budget {a.budget:g} s): call again")
            continue
        t = time.perf_counter()
        try:
            res = {"status": "ok", **RUN[part](ctx)}
        except Exception as err:  # recorded, the next part runs
            sync = _find_sync(err)
            msg = str(sync) if sync else f"{type(err).__name__}: {err} at {_site(err)}"
            res = {"status": "failed (sync)" if sync else "failed", "error": msg}
        if ctx.cuda:
            torch.cuda.set_sync_debug_mode(0)
        res["part_wall_s"] = time.perf_counter() - t
        if part not in ("train_fp32", "train_bf16", "sync_train"):
            res["model"] = "train_fp32's" if ctx.trained else "untrained"
        res["device"] = name
        state[part] = res
        _bench.save_json(path, state)
        print(
            f"{part}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in res.items()),
            flush=True,
        )
    missing = [q for q in a.parts if q not in state]
    failed = [q for q in a.parts if q in state and state[q]["status"] != "ok"]
    print(
        f"finished {len(a.parts) - len(missing)} of {len(a.parts)} parts; failed: {failed}"
    )
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(a.out) / path.name)
    return 0 if not missing else 3


if __name__ == "__main__":
    _bench.run(main)

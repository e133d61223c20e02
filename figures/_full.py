"""The paper-size experiments (``--full``) as resumable chunks for a GPU lent for a
few minutes at a time (``python figures/run_study.py full``).

Experiments (:func:`experiments`), in this order, seed 0 each:

- ``mnist-lenet-cycle_cos`` / ``mnist-lenet-constant``: the paper's MNIST setting
  (``train.preset("mnist-lenet")``: LeNet width 16, 3,274,634 parameters, all 60,000
  images, 100 epochs, Adam 1e-4, batch 128, PGD-50 step 0.01 at eps 0.4, ``cycle_cos``
  0 -> 0.6 capped at 0.4) and the same with eps constant (claim 1 at paper size);
- ``cifar10-{vgg16,resnet18}-{constant,cycle_cos,cycle_linear}``: the paper's
  CIFAR-10 setting (``train.preset("cifar10-vgg16" / "cifar10-resnet18")``: width 8,
  SGD 0.1 momentum 0.9, batch 128, 200 epochs, PGD-10 step 2/255 at 8/255, crop +
  flip) made periodic by ``train.cifar10_periodic`` (three periods [0, 100), [100,
  150), [150, 200), the lr ``cycle_jump`` per period, eps peak 16/255 for cos /
  linear): claim 4's schedules and their end-of-period ensembles.

Each experiment: training (a run folder: exact resume at any step), then the standard
protocol (AutoAttack's, masking checks on) on the first :data:`PROTOCOL_NUM` test
images of the final model and, for the periodic runs, of the softmax ensemble of the
end-of-period models (a state file per evaluation: resumes per batch). Results:
``<state>/<experiment>/result.json`` (clean / robust accuracy, failed checks, wall
seconds per stage, the device).

**Chunks.** One call works for at most ``budget`` seconds (default
:data:`BUDGET`, under the device tool's 9-minute practice): from ``budget - margin``
seconds on it stops at the next training step (``resume.pt`` of that step) or stage
boundary, and a timer sends SIGTERM at ``budget`` (calls of a minute or more), which
cuts an evaluation between batches (its finished batches are kept); the call prints
what is left and exits 0 (3 while work remains, with ``--status-code``). The next call
resumes exactly. A finished experiment keeps only its result and metrics (its checkpoints are
deleted unless ``--keep-weights``), so that the state folder stays small enough to be
carried.

**State.** ``runs/full/`` (git-ignored; ``--state`` to move it), plus the data
copies the experiments read, ``runs/full_data/`` (``mnist/*.gz``: 11 MiB,
``cifar10-jpeg.tar.gz``: 19 MiB, and ``test/<dataset>.pt``: the first
:data:`PROTOCOL_NUM` test images as bytes, what the evaluations read; ``--stage-data``
writes them from ``$LANDSCAPE_DATA``). The device tool carries at most 64 MiB (the
checkout's tracked files included, ~6 MiB) and returns at most 8 files of 16 MiB.

**What travels (the carry plan).** Each call carries only what the next stage of the
first unfinished experiment reads: training needs ``resume.pt`` (model + optimiser:
LeNet w16 with Adam 37.5 MiB, VGG-16 w8 with momentum 28 MiB) and its dataset; the
final evaluation ``final.pt`` and the test images; the ensemble evaluation the
end-of-period checkpoints (VGG-16 w8: 3 x 14 MiB) and the test images. ``init.pt``
(the initial weights, for the distance-from-init metric) never travels: the chunk
rebuilds it from the seed and checks it against the SHA-256 recorded when the run
started (a different torch would stop the chunk with a message). Everything else
waits here in ``runs/full_parked/``. ``--pack OUT`` (on the device) writes the state
folder without ``init.pt`` as ``full_state.tar.partNN`` files of 15 MiB (at most 4);
``--unpack DIR`` (here) restores them, parks what the next call does not need and
prints the next call's ``carry`` list (``--plan`` prints it again). Largest carry:
LeNet w16 training, 37.5 + 11 + 1 MiB beside the checkout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / "runs" / "full"
PARKED = REPO / "runs" / "full_parked"
DATA = REPO / "runs" / "full_data"
#: the file names of a run folder's large files (see the module docstring)
INIT, RESUME, FINAL_PT, CKPTS = "init.pt", "resume.pt", "final.pt", "ckpt_epoch*.pt"
#: what each stage reads from the run folder
NEEDS = {"train": (RESUME,), "final": (FINAL_PT,), "ensemble": (CKPTS,)}
#: seconds one call may work (the device tool allows 10 minutes a command)
BUDGET = 480.0
#: the timer fires this many seconds before the budget (a step and a save fit)
MARGIN = 20.0
#: test images of the standard protocol
PROTOCOL_NUM = 1000
#: MiB the device tool carries beside the checkout's tracked files (64 MiB in all)
CARRY_MIB = 56
PART_BYTES = 15 * 2**20
MAX_PARTS = 4


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One paper-size experiment: its name, dataset and training config, whether
    its end-of-period ensemble is evaluated, the protocol's test images and scale
    (1: full budgets) and whether its masking checks run."""

    name: str
    dataset: str
    config: Any
    ensemble: bool
    num_test: int = PROTOCOL_NUM
    scale: float = 1.0
    checks: bool = True


def experiments(smoke: bool = False) -> list[Experiment]:
    """The ``--full`` experiments (see the module docstring); ``smoke``: the same
    recipe shrunk to seconds on a CPU (2 experiments, synthetic data, the
    protocol at 2 % of its budgets without the checks)."""
    from landscape import train

    out: list[Experiment] = []
    lenet = train.preset("mnist-lenet")
    mnist = [
        ("cycle_cos", lenet),
        (
            "constant",
            dataclasses.replace(lenet, eps_schedule="constant", eps_kwargs={}),
        ),
    ]
    cifar = [
        (arch, sch, train.cifar10_periodic(train.preset(f"cifar10-{arch}"), sch))
        for arch in ("vgg16", "resnet18")
        for sch in ("constant", "cosine", "linear")
    ]
    if not smoke:
        out += [Experiment(f"mnist-lenet-{s}", "mnist", c, False) for s, c in mnist]
        for arch, sch, c in cifar:
            name = {"cosine": "cycle_cos", "linear": "cycle_linear"}.get(sch, sch)
            out.append(Experiment(f"cifar10-{arch}-{name}", "cifar10-jpeg", c, True))
        return out

    def shrink(cfg, width, epochs):
        s = train.smoke(cfg)
        kw = {**s.model_kwargs, "width": width}
        rt = dataclasses.replace(s.runtime, eval_num=16, amp="off", channels_last=False)
        return dataclasses.replace(s, epochs=epochs, model_kwargs=kw, runtime=rt)

    small = dict(num_test=16, scale=0.01, checks=False)
    out.append(
        Experiment(
            "mnist-lenet-cycle_cos", "mnist", shrink(lenet, 1, 2), False, **small
        )
    )
    vgg = shrink(train.preset("cifar10-vgg16"), 0.0625, 4)
    out.append(
        Experiment(
            "cifar10-vgg16-cycle_cos",
            "cifar10-jpeg",
            train.cifar10_periodic(vgg, "cosine"),
            True,
            **small,
        )
    )
    return out


# ------------------------------------------------------------------- the data


def _data(exp: Experiment, smoke: bool, data_root: Path | None, train: bool = True):
    """``(x, y, x_test, y_test)`` of an experiment (smoke: 96 / 16 synthetic images
    of the dataset's shape from a fixed seed); ``train`` False: the evaluations'
    test images only (``x, y`` None), from ``test/<dataset>.pt`` when staged."""
    if smoke:
        shape = (1, 28, 28) if exp.dataset == "mnist" else (3, 32, 32)
        g = torch.Generator().manual_seed(0)
        x = torch.rand(112, *shape, generator=g)
        y = torch.randint(0, 10, (112,), generator=g)
        return x[:96], y[:96], x[96:], y[96:]
    from landscape import data, io

    root = data_root if data_root is not None else DATA
    if not train:
        test = root / "test" / f"{exp.dataset}.pt"
        if test.exists():
            d = io.load_torch(test, kind="state")
            return None, None, d["x"].float().div_(255), d["y"].long()
    x, y = data.load_dataset(exp.dataset, root)
    xt, yt = data.load_dataset(exp.dataset, root, split="test")
    return x, y, xt, yt


def _stage_test(dataset: str, root: Path) -> Path:
    """The first :data:`PROTOCOL_NUM` test images of ``dataset`` as bytes in
    ``root/test/<dataset>.pt`` (exactly the loader's floats: ``k / 255``)."""
    from landscape import data, io

    xt, yt = data.load_dataset(dataset, root, split="test")
    xt, yt = xt[:PROTOCOL_NUM], yt[:PROTOCOL_NUM]
    xb = (xt * 255).round().to(torch.uint8)
    if not torch.equal(xb.float().div_(255), xt):
        raise SystemExit(f"error: {dataset}'s test images are not k / 255 bytes")
    path = root / "test" / f"{dataset}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    io.atomic_save_torch({"x": xb, "y": yt.to(torch.uint8)}, path)
    return path


def stage_data(src: str | os.PathLike | None = None, dst: Path = DATA) -> Path:
    """Copy the files the experiments read (MNIST's four ``.gz``, the CIFAR-10 JPEG
    archive) from ``src`` (default ``$LANDSCAPE_DATA``) into ``dst``, a git-ignored
    folder the device tool can carry."""
    src = Path(src or os.environ.get("LANDSCAPE_DATA", ""))
    if not (src / "mnist").is_dir():
        raise SystemExit(
            f"error: no mnist/ in {src!s} - set LANDSCAPE_DATA to the data folder "
            "(MNIST .gz files and cifar10-jpeg.tar.gz)"
        )
    (dst / "mnist").mkdir(parents=True, exist_ok=True)
    for f in (src / "mnist").glob("*.gz"):
        shutil.copy2(f, dst / "mnist" / f.name)
    tar = src / "cifar10-jpeg.tar.gz"
    if tar.exists():
        shutil.copy2(tar, dst / tar.name)
    for dataset in ("mnist", "cifar10-jpeg"):
        if dataset == "mnist" or tar.exists():
            _stage_test(dataset, dst)
    return dst


# ----------------------------------------------------------------- the chunks


class _Timer:
    """SIGTERM to this process at ``deadline`` (perf_counter seconds)."""

    def __init__(self, deadline: float):
        self.t = threading.Timer(
            max(0.0, deadline - time.perf_counter()),
            os.kill,
            (os.getpid(), signal.SIGTERM),
        )
        self.t.daemon = True

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.t.cancel()


def _status(folder: Path) -> dict:
    path = folder / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save_status(folder: Path, st: dict) -> None:
    from landscape.io import atomic_write

    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "status.json", "w") as f:
        json.dump(st, f, indent=1)


def _add(st: dict, key: str, seconds: float) -> None:
    st.setdefault("seconds", {})
    st["seconds"][key] = round(st["seconds"].get(key, 0.0) + seconds, 2)


def _digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's parameters (names, shapes and bytes, on the CPU)."""
    import hashlib

    h = hashlib.sha256()
    for n, p in model.named_parameters():
        t = p.detach().cpu().contiguous()
        h.update(f"{n}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _train(exp: Experiment, folder: Path, data, device, st: dict, callback=None):
    """Train (or resume) the experiment's run folder. The initial weights are built
    from the seed; their digest is recorded in ``st`` when the run starts, and a
    resumed run whose ``init.pt`` did not travel gets it rebuilt, after checking the
    digest."""
    from landscape import io, models, train

    x, y, xt, yt = data
    cfg = exp.config
    torch.manual_seed(cfg.seed)
    model = models.build(cfg.model, dataset=exp.dataset.split("-")[0],
                         **cfg.model_kwargs)  # fmt: skip
    run_dir = folder / "run"
    digest = _digest(model)
    if not (run_dir / "config.json").exists():
        st["init_sha256"] = digest
        _save_status(folder, st)
    elif not (run_dir / INIT).exists():
        if st.get("init_sha256") != digest:
            raise SystemExit(
                f"error: {run_dir / INIT} did not travel and the weights rebuilt from "
                f"the seed differ from the run's (SHA-256 {digest[:12]} vs "
                f"{str(st.get('init_sha256'))[:12]}: another torch?) - carry "
                f"{run_dir / INIT} with the state"
            )
        io.atomic_save_torch(
            {n: p.detach().cpu() for n, p in model.named_parameters()}, run_dir / INIT
        )
    model = model.to(device)
    n = cfg.runtime.eval_num
    train.adversarial_train(
        model,
        (x.to(device), y.to(device)),
        cfg,
        test_data=(xt[:n].to(device), yt[:n].to(device)),
        run_dir=folder / "run",
        callback=callback,
    )


def _evaluate(exp: Experiment, folder: Path, data, device, ensemble: bool) -> dict:
    from landscape import checkpoints, evaluate, models

    cfg = exp.config
    template = models.build(cfg.model, dataset=exp.dataset.split("-")[0],
                            **cfg.model_kwargs)  # fmt: skip
    model = checkpoints.load_model(
        folder / "run", template, ensemble=ensemble, device=device
    )
    _, _, xt, yt = data
    n = exp.num_test
    res = evaluate.evaluate(
        model,
        (xt[:n].to(device), yt[:n].to(device)),
        eps=cfg.attack.eps,
        preset="standard",
        scale=exp.scale,
        checks=exp.checks,
        state_path=folder / f"{'ensemble' if ensemble else 'final'}.state.pt",
        generator=torch.Generator().manual_seed(0),
    )
    checks = {
        k: {"passed": v.get("passed"), "detail": str(v.get("detail", ""))}
        for k, v in (res.checks or {}).items()
    }
    return {
        "clean_acc": float(res.clean_accuracy),
        "robust_acc": float(torch.as_tensor(res.robust_accuracy).flatten()[0]),
        "attacks": list(res.attacks),
        "num": n,
        "scale": exp.scale,
        "checks": checks,
        "failed_checks": sorted(k for k, v in checks.items() if v["passed"] is False),
    }


def _stages(exp: Experiment) -> list[str]:
    return ["train", "final"] + (["ensemble"] if exp.ensemble else [])


def _missing(exp: Experiment, folder: Path, stage: str) -> str | None:
    """What ``stage`` reads from the run folder and is not there (None: ready)."""
    run_dir = folder / "run"
    if stage == "train":
        started = (run_dir / "config.json").exists()
        return RESUME if started and not (run_dir / RESUME).exists() else None
    if stage == "final":
        return None if (run_dir / FINAL_PT).exists() else FINAL_PT
    want = len(exp.config.period_end_epochs())
    got = len(list(run_dir.glob(CKPTS)))
    return None if got >= want else f"{want - got} of {want} end-of-period checkpoints"


def plan(
    state: Path = STATE, parked: Path = PARKED, data: Path = DATA, smoke: bool = False
) -> list[Path]:
    """Get the state ready for the next call and say what it must carry: the next
    stage of the first unfinished experiment gets the run files it reads (from
    ``parked``), every other large run file goes to ``parked`` (where the weights of
    finished experiments stay, never carried); returns the paths to carry (the state
    folder, and the dataset for training or the staged test images for the
    evaluations; empty when every experiment is done)."""
    import fnmatch

    def move(src: Path, dst: Path, which) -> None:
        for f in sorted((src / "run").glob("*.pt")) if (src / "run").is_dir() else []:
            if which(f.name):
                (dst / "run").mkdir(parents=True, exist_ok=True)
                shutil.move(str(f), str(dst / "run" / f.name))

    state.mkdir(parents=True, exist_ok=True)
    carry: list[Path] = []
    for exp in experiments(smoke):
        folder, pf = state / exp.name, parked / exp.name
        st = _status(folder)
        if carry or st.get("done"):
            move(folder, pf, lambda name: True)  # kept here, never carried
            continue
        stage = next(s for s in _stages(exp) if s not in st.get("finished", []))

        def needed(name: str, stage=stage) -> bool:
            return any(fnmatch.fnmatch(name, pat) for pat in NEEDS[stage])

        move(folder, pf, lambda name: not needed(name))
        move(pf, folder, needed)
        if stage != "train":
            carry = [state, data / "test"]
        else:
            name = "mnist" if exp.dataset == "mnist" else f"{exp.dataset}.tar.gz"
            carry = [state, data / name]
    return carry


def _compact(folder: Path) -> None:
    """A finished experiment keeps its result, status, config and metrics only."""
    for p in folder.rglob("*.pt"):
        p.unlink()


def run(
    *,
    smoke: bool = False,
    budget: float = BUDGET,
    margin: float = MARGIN,
    state: Path = STATE,
    data_root: Path | None = None,
    device: str | None = None,
    keep_weights: bool = False,
    log=print,
) -> bool:
    """Work on the experiments for at most ``budget`` seconds; True when every one
    is finished (results in ``<state>/<name>/result.json``).

    Stops: at the first training step (SIGTERM to itself: ``resume.pt`` of that step)
    or stage boundary after ``budget - margin`` seconds, once the call has made some
    progress (a call always advances by at least one step or stage); and, for calls of
    a minute or more, a SIGTERM at ``budget`` seconds that cuts an evaluation between
    batches (its finished batches are kept)."""
    from landscape import io

    t_start = time.perf_counter()
    soft = t_start + budget - min(margin, 0.25 * budget)
    progress = {"steps": 0, "stages": 0}

    def late() -> bool:
        return (progress["steps"] or progress["stages"]) and time.perf_counter() >= soft

    def on_step(info) -> None:
        progress["steps"] += 1
        if late():
            os.kill(os.getpid(), signal.SIGTERM)  # saved at this step, then stop

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    state.mkdir(parents=True, exist_ok=True)
    exps = experiments(smoke)
    hard = _Timer(t_start + budget) if budget >= 60 else contextlib.nullcontext()
    try:
        with io.stop_signals(), hard:
            for exp in exps:
                folder = state / exp.name
                st = _status(folder)
                if st.get("done"):
                    continue
                data = None
                for stage in _stages(exp):
                    if stage in st.get("finished", []):
                        continue
                    if late():
                        raise io.Interrupted("SIGTERM", f"before {exp.name} {stage}")
                    missing = _missing(exp, folder, stage)
                    if missing:
                        raise io.Interrupted(
                            "SIGTERM",
                            f"before {exp.name} {stage}: {missing} did not travel "
                            "(it is parked: carry the list --unpack / --plan print)",
                        )
                    log(f"[full] {exp.name}: {stage} on {where}")
                    if data is None or (stage == "train" and data[0] is None):
                        data = _data(exp, smoke, data_root, train=stage == "train")
                    st["stage"] = stage
                    t0 = time.perf_counter()
                    try:
                        if stage == "train":
                            _train(exp, folder, data, dev, st, on_step)
                        else:
                            st[stage] = _evaluate(
                                exp, folder, data, dev, stage == "ensemble"
                            )
                    finally:
                        _add(st, stage, time.perf_counter() - t0)
                        st.setdefault("devices", [])
                        if where not in st["devices"]:
                            st["devices"].append(where)
                        _save_status(folder, st)
                    st.setdefault("finished", []).append(stage)
                    progress["stages"] += 1
                    _save_status(folder, st)
                st["done"] = True
                _save_status(folder, st)
                result = {
                    k: st.get(k) for k in ("final", "ensemble", "seconds", "devices")
                }
                result["config"] = exp.config.to_dict()
                (folder / "result.json").write_text(json.dumps(result, indent=1))
                if not keep_weights:
                    _compact(folder)
                log(f"[full] {exp.name}: done ({json.dumps(st['seconds'])} s)")
    except io.Interrupted as err:
        left = [e.name for e in exps if not _status(state / e.name).get("done")]
        log(
            f"[full] chunk ended after {time.perf_counter() - t_start:.0f} s "
            f"({err.where or err.signal}); {len(left)} experiments left: "
            f"{', '.join(left)} - run the same command again to resume"
        )
        return False
    log(f"[full] all {len(exps)} experiments done ({state})")
    return True


def results(state: Path = STATE, smoke: bool = False) -> dict[str, dict]:
    """The finished experiments' ``result.json``."""
    out = {}
    for exp in experiments(smoke):
        p = state / exp.name / "result.json"
        if p.exists():
            out[exp.name] = json.loads(p.read_text())
    return out


# ------------------------------------------------------- carrying the state


def pack(out: Path, state: Path = STATE) -> list[Path]:
    """``state`` (without ``init.pt``, rebuilt from the seed) as
    ``full_state.tar.partNN`` files of at most 15 MiB in ``out`` (the device tool
    returns at most 8 files of 16 MiB); raises SystemExit when more than
    :data:`MAX_PARTS` parts would be needed (the state is too large to come back:
    finish the run on the warm machine)."""
    import io as _io

    buf = _io.BytesIO()

    def drop_init(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if Path(info.name).name == INIT else info  # rebuilt from the seed

    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(state, arcname=".", filter=drop_init)
    data = buf.getvalue()
    parts = -(-len(data) // PART_BYTES)
    if parts > MAX_PARTS:
        raise SystemExit(
            f"error: the state ({len(data) / 2**20:.0f} MiB) needs {parts} parts of 15 "
            f"MiB, more than {MAX_PARTS} come back: finish the running experiment on "
            "the warm machine (or pass --keep-weights only when it fits)"
        )
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(parts):
        p = out / f"full_state.tar.part{i:02d}"
        p.write_bytes(data[i * PART_BYTES : (i + 1) * PART_BYTES])
        paths.append(p)
    return paths


def unpack(src: Path, state: Path = STATE) -> Path:
    """Restore ``state`` from the ``full_state.tar.partNN`` files in ``src``."""
    import io as _io

    parts = sorted(Path(src).glob("full_state.tar.part*"))
    if not parts:
        raise SystemExit(
            f"error: no full_state.tar.part* in {src} - pass --pack's folder"
        )
    data = b"".join(p.read_bytes() for p in parts)
    if state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True)
    with tarfile.open(fileobj=_io.BytesIO(data), mode="r") as tar:
        tar.extractall(state, filter="data")
    return state


def _rel(path: Path) -> Path:
    try:
        return path.resolve().relative_to(REPO)
    except ValueError:
        return path


def _size(paths: list[Path]) -> float:
    """MiB under ``paths`` (files and folders)."""
    total = 0
    for p in paths:
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
        total += sum(f.stat().st_size for f in files)
    return total / 2**20


def main(args) -> int:
    """``run_study.py full``: one chunk (or ``--stage-data`` / ``--unpack`` /
    ``--plan``, each followed by the next call's carry list)."""
    state = Path(args.state) if args.state else STATE
    if args.stage_data:
        print(f"[full] data copied into {stage_data(args.data_root)}")
    if args.unpack:
        print(f"[full] state restored into {unpack(Path(args.unpack), state)}")
    if args.stage_data or args.unpack or args.plan:
        carry = plan(state, smoke=args.smoke)
        if not carry:
            print("[full] every experiment is done: nothing to carry")
            return 0
        rel = [str(_rel(p)) for p in carry]
        size = _size(carry)
        print(f"[full] next call: carry {json.dumps(rel)} ({size:.1f} MiB)")
        if size > CARRY_MIB:
            print(
                f"[full] warning: {size:.0f} MiB is over the {CARRY_MIB} MiB the "
                "device tool carries beside the checkout"
            )
        return 0
    done = run(
        smoke=args.smoke,
        budget=args.budget,
        state=state,
        data_root=Path(args.data_root) if args.data_root else None,
        keep_weights=args.keep_weights,
    )
    for name, r in results(state, args.smoke).items():
        fin, ens = r.get("final") or {}, r.get("ensemble") or {}
        line = f"[full] {name}: final clean {fin.get('clean_acc')}, robust {fin.get('robust_acc')}"
        if ens:
            line += f"; ensemble clean {ens.get('clean_acc')}, robust {ens.get('robust_acc')}"
        print(line, flush=True)
    if args.pack:
        for p in pack(Path(args.pack), state):
            print(f"[full] packed {p} ({p.stat().st_size / 2**20:.1f} MiB)")
    if args.status_code and not done:
        return 3
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: python figures/run_study.py full")

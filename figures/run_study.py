"""Run the CPU study tier's computations in the background, in priority order.

Every figure script's ``--study`` computes what it needs on demand; this driver works
through the shared zoo (``figures/_study.py``: the paper's MNIST recipe scaled down)
in a fixed order, so that a killed process resumes where it stopped (run folders and
cached evaluations) and two processes never train the same model twice (a lock per
run folder). Queues:

- ``cpu``: everything below, in this order: a pilot (cosine and constant at eps 0.4,
  seed 0), claim 3 for seeds 0-2, claim 1 for seeds 0-2, claim 7, claim 5 for seeds
  0-2, claim 3 for seeds 3-7, claim 1 for seeds 3-4.
- ``claim1_core``: constant vs ``cycle_cos`` at eps 0.4, final metrics, seed by seed
  (0-4): the part of claim 1 a short sitting can decide.
- ``claim3``: the ``cycle_cos`` family at eps 0 / 0.1 / 0.2 / 0.3 / 0.4 (final metrics
  and the Hessian), seeds 0-7.
- ``claim1``: constant eps 0.1-0.4, ``cycle_linear`` and periodic at eps 0.4 (with
  claim 3's cosine models), final metrics; the standard protocol (masking checks on)
  of every schedule's final model at eps 0.4 and of the periodic ensemble.
- ``claim5``: constant and periodic at lr 6e-4 and 6e-3 (and claim 1's 2e-3), final
  metrics and the standard protocol at eps 0.4.
- ``sitting3``: one ~2-hour sitting in the order the decisive numbers need: claim 3
  (the ``cycle_cos`` family's Hessian and final metrics) at eps 0.4 / 0 / 0.2 for
  seed 0 and 0.4 / 0 for seed 1 (the least that gives a spread of per-seed slopes);
  the standard protocol with the masking checks on, first
  :data:`CLAIM1_PROTOCOL_NUM` test images, of the finished eps-0.4 constant and
  ``cycle_cos`` models (claim 1); claim 3's seed 1 at 0.2 and seed 2; scattering of the claim-3 models
  (claim 2); then claim 3 at eps 0 / 0.2 / 0.4 for seeds 3-7.
- ``claim7``: Madry's CNN at full width on all of MNIST (PGD-10), final metrics, the
  standard protocol on the first :data:`MADRY_PROTOCOL_NUM` test images.

- ``full``: the paper-size experiments (MNIST LeNet w16 ``cycle_cos`` / constant;
  CIFAR-10 VGG-16 / ResNet-18 w8, constant / ``cycle_cos`` / ``cycle_linear``, 3
  periods, ensembles; the standard protocol with the masking checks) in resumable
  chunks of at most ``--budget`` seconds for a GPU (``figures/_full.py``; state in
  ``runs/full/``, data copies in ``runs/full_data/``; ``--smoke``: the same on a CPU
  in seconds).

Commands (one process; two only when ``uptime`` shows a load below 2)::

    OMP_NUM_THREADS=1 nohup nice -n 5 python figures/run_study.py cpu > runs/study.log 2>&1 &

The GPU chunks (the device tool), each call < 9 minutes, repeated until "all ...
done"; every call carries only what its stage reads (``figures/_full.py``: the
carry plan), which ``--stage-data`` / ``--unpack`` / ``--plan`` print::

    LANDSCAPE_DATA=/path/to/data python figures/run_study.py full --stage-data  # once
    # device call: carry the printed list, command:
    PYTHONPATH=. python figures/run_study.py full --budget 480 --pack $OUT
    # back here: restore, park, print the next carry list
    python figures/run_study.py full --unpack <files_at>

Then ``python figures/figNN_*.py --study`` assembles each figure from the cache, and
``python figures/claims.py`` the README's claim table from the committed tables.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import _full  # noqa: E402
import _study  # noqa: E402

EPS = _study.SIZE["eps"]
LRS = (6e-4, 2e-3, 6e-3)
SCHEDULES = _study.SCHEDULES
CLAIM3_SEEDS = tuple(range(8))
CLAIM1_SEEDS = tuple(range(5))
CLAIM5_SEEDS = (0, 1, 2)
#: claim 7's standard protocol: first 200 test images (a full-width robust CNN costs
#: ~8 CPU s per robust point under the standard protocol on this machine)
MADRY_PROTOCOL_NUM = 200
#: Test images of claim 1's standard protocol in a short sitting (n = 500: a robust
#: accuracy's binomial standard error is at most 2.2 points).
CLAIM1_PROTOCOL_NUM = 500
#: The eps of claim 3 in a short sitting (a trend needs 3 points; 0.4 is claim 1's).
SITTING_EPS = (0.4, 0.0, 0.2)


def pilot(ctx: _common.Context) -> None:
    """The first look: does the cosine schedule train and the constant one stall at
    eps 0.4 with this recipe (seed 0)."""
    for sch in ("cosine", "constant"):
        _study.final_eval(ctx, _study.Spec(eps=0.4, seed=0, schedule=sch))


def claim1_core(ctx: _common.Context, seeds=CLAIM1_SEEDS) -> None:
    """Claim 1's decisive pair, seed by seed (any prefix of seeds is usable): the
    constant and the ``cycle_cos`` schedule at eps 0.4, final metrics only (the
    standard protocol comes in ``claim1``)."""
    for seed in seeds:
        for sch in ("cosine", "constant"):
            _study.final_eval(ctx, _study.Spec(eps=0.4, seed=seed, schedule=sch))


def claim3(ctx: _common.Context, seeds=CLAIM3_SEEDS) -> None:
    """The ``cycle_cos`` family per eps: final metrics and the Hessian."""
    for seed in seeds:
        for spec in _study.zoo(("cosine",), EPS, (seed,)):
            _study.final_eval(ctx, spec)
            _study.hessian_eval(ctx, spec)


def claim1_specs(seed: int) -> list[_study.Spec]:
    """Claim 1's models of a seed (besides claim 3's cosine family)."""
    out = [_study.Spec(eps=e, seed=seed, schedule="constant") for e in EPS if e > 0]
    out += [_study.Spec(eps=0.4, seed=seed, schedule=s) for s in ("linear", "periodic")]
    return out


def claim1(ctx: _common.Context, seeds=CLAIM1_SEEDS) -> None:
    """Claim 1's models and the standard protocol of the eps 0.4 ones."""
    for seed in seeds:
        for spec in claim1_specs(seed):
            _study.final_eval(ctx, spec)
        for sch in SCHEDULES:
            spec = _study.Spec(eps=0.4, seed=seed, schedule=sch)
            _study.final_eval(ctx, spec)
            _study.protocol_eval(ctx, spec, "standard")
        periodic = _study.Spec(eps=0.4, seed=seed, schedule="periodic")
        _study.protocol_eval(ctx, periodic, "standard", ensemble=True)


def claim5(ctx: _common.Context, seeds=CLAIM5_SEEDS) -> None:
    """Constant vs periodic at three learning rates (eps 0.4)."""
    for seed in seeds:
        for lr in LRS:
            for sch in ("constant", "periodic"):
                spec = _study.Spec(eps=0.4, seed=seed, schedule=sch, lr=lr)
                _study.final_eval(ctx, spec)
                _study.protocol_eval(ctx, spec, "standard")


def claim7(ctx: _common.Context) -> None:
    """Madry's CNN: training, final metrics, the standard protocol."""
    spec = _study.madry_spec(0)
    _study.final_eval(ctx, spec)
    _study.protocol_eval(ctx, spec, "standard", num=MADRY_PROTOCOL_NUM)


def claim3_hessian(ctx: _common.Context, seeds, eps=SITTING_EPS) -> None:
    """Claim 3 in a short sitting: per seed and eps, the ``cycle_cos`` model's Hessian
    then its final metrics (training it first if needed)."""
    for seed in seeds:
        for e in eps:
            spec = _study.Spec(eps=e, seed=seed, schedule="cosine")
            _study.hessian_eval(ctx, spec)
            _study.final_eval(ctx, spec)


def sitting3(ctx: _common.Context) -> None:
    """The third sitting's order (see the module docstring)."""
    claim3_hessian(ctx, (0,))
    claim3_hessian(ctx, (1,), (0.4, 0.0))  # two seeds at two eps: a spread
    for seed in (0, 1, 2):
        for sch in ("cosine", "constant"):
            spec = _study.Spec(eps=0.4, seed=seed, schedule=sch)
            if _study.train_run(ctx, spec, compute=seed < 2) is None:
                continue
            _study.final_eval(ctx, spec)
            _study.protocol_eval(ctx, spec, "standard", num=CLAIM1_PROTOCOL_NUM)
    claim3_hessian(ctx, (1, 2))
    for seed in (0, 1, 2):
        for e in SITTING_EPS:
            if e > 0:
                _study.scattering_eval(ctx, _study.Spec(eps=e, seed=seed))
    claim3_hessian(ctx, (3, 4, 5, 6, 7))


def cpu(ctx: _common.Context) -> None:
    """The whole study in priority order (see the module docstring)."""
    pilot(ctx)
    claim3(ctx, (0, 1, 2))
    claim1(ctx, (0, 1, 2))
    claim7(ctx)
    claim5(ctx)
    claim3(ctx)
    claim1(ctx)


QUEUES = {
    "cpu": cpu,
    "pilot": pilot,
    "claim1": claim1,
    "claim1_core": claim1_core,
    "claim3": claim3,
    "claim5": claim5,
    "claim7": claim7,
    "sitting3": sitting3,
}


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__)
    p.add_argument("queue", choices=sorted([*QUEUES, "full"]))
    g = p.add_argument_group("full (the paper-size chunks, figures/_full.py)")
    g.add_argument(
        "--budget",
        type=float,
        default=_full.BUDGET,
        help=f"seconds this call may work ({_full.BUDGET:g})",
    )
    g.add_argument("--state", default=None, help="state folder (runs/full)")
    g.add_argument(
        "--pack",
        default=None,
        metavar="OUT",
        help="afterwards write the state as <= 15 MiB parts into OUT",
    )
    g.add_argument(
        "--unpack",
        default=None,
        metavar="DIR",
        help="restore the state from --pack's parts in DIR, print the carry list, stop",
    )
    g.add_argument(
        "--stage-data",
        action="store_true",
        help="copy the data files into runs/full_data, print the carry list, stop",
    )
    g.add_argument(
        "--plan",
        action="store_true",
        help="park what the next call does not need, print its carry list, stop",
    )
    g.add_argument(
        "--keep-weights",
        action="store_true",
        help="keep a finished experiment's checkpoints",
    )
    g.add_argument(
        "--status-code", action="store_true", help="exit 3 while experiments are left"
    )
    args = p.parse_args(argv)
    if args.queue == "full":
        if not args.budget > 0:
            p.error("--budget must be > 0 seconds")
        return _full.main(args)
    args.study = True
    ctx = _common.setup(args, "run_study")
    print(f"[run_study] {args.queue}: commit {_common.commit()}", flush=True)
    QUEUES[args.queue](ctx)
    print(f"[run_study] {args.queue}: done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

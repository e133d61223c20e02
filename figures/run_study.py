"""Run the CPU study tier's computations in the background, in priority order.

Every figure script's ``--study`` computes what it needs on demand; this driver only
works through the shared zoo (``figures/_study.py``) in a fixed order, so that two
background processes can share the CPU without training the same model twice (a lock
per run folder) and a killed process resumes where it stopped (run folders and cached
evaluations). Queues:

- ``zoo``: claims 1-3. LeNet per eps in {0, 0.1, 0.2, 0.3, 0.4} x seeds {0, 1, 2},
  constant and linear warm-up schedules (final metrics on 2,000 test images), then
  the Hessian of the warm-up family, ReLU scattering, the GELU twin (seeds 0, 1).
- ``schedules``: claims 4, 5 and 7. Cosine warm-up and periodic at eps = 0.4 (seeds
  0-2), constant and periodic at lr 3e-4 / 3e-3 (seeds 0, 1), the quick / standard /
  reviewer protocols (full budgets, 1,000 test images; reviewer first on seed 0), the
  Madry-shape CNN (width 0.5).

Commands::

    python figures/run_study.py zoo        > zoo.log 2>&1 &
    python figures/run_study.py schedules  > schedules.log 2>&1 &

Then ``python figures/figNN_*.py --study`` assembles each figure from the cache.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import _study  # noqa: E402

SEEDS = _study.SIZE["seeds"]
EPS = _study.SIZE["eps"]
LRS = (3e-4, 1e-3, 3e-3)
SCHEDULES = ("constant", "linear", "cosine", "periodic")


def _madry(seed: int) -> _study.Spec:
    return _study.Spec(
        eps=0.3, seed=seed, schedule="linear", arch="madry_cnn", width=0.5, steps=10
    )


def zoo(ctx: _common.Context) -> None:
    for seed in SEEDS:
        for sch in ("constant", "linear"):
            for spec in _study.zoo((sch,), EPS, (seed,)):
                _study.final_eval(ctx, spec)
    warm = _study.zoo(("linear",), EPS, SEEDS)
    for spec in warm:
        _study.hessian_eval(ctx, spec)
    for spec in warm:
        _study.scattering_eval(ctx, spec)
    for spec in _study.zoo(("linear",), EPS, (0, 1), activation="gelu"):
        _study.final_eval(ctx, spec)
        _study.scattering_eval(ctx, spec)
    for spec in _study.zoo(("constant",), EPS, SEEDS):
        _study.hessian_eval(ctx, spec)


def schedules(ctx: _common.Context) -> None:
    for seed in SEEDS:
        for sch in ("cosine", "periodic"):
            _study.final_eval(ctx, _study.Spec(eps=0.4, seed=seed, schedule=sch))
    for lr in (3e-4, 3e-3):
        for seed in (0, 1):
            for sch in ("constant", "periodic"):
                _study.final_eval(
                    ctx, _study.Spec(eps=0.4, seed=seed, schedule=sch, lr=lr)
                )
    grid = [
        _study.Spec(eps=0.4, seed=s, schedule=sch) for s in SEEDS for sch in SCHEDULES
    ]
    plan = [("quick", s) for s in SEEDS] + [("standard", s) for s in SEEDS]
    plan += [("reviewer", 0), ("reviewer", 1), ("reviewer", 2)]
    for protocol, seed in plan[:6]:
        for spec in grid:
            if spec.seed == seed:
                for ens in (False, True):
                    _study.protocol_eval(ctx, spec, protocol, ensemble=ens)
    for seed in (0, 1):
        _study.final_eval(ctx, _madry(seed))
        _study.protocol_eval(ctx, _madry(seed), "quick", num=2000)
        _study.protocol_eval(ctx, _madry(seed), "standard", num=1000)
    for protocol, seed in plan[6:]:
        for spec in grid:
            if spec.seed == seed:
                for ens in (False, True):
                    _study.protocol_eval(ctx, spec, protocol, ensemble=ens)
    _study.protocol_eval(ctx, _madry(0), "reviewer", num=1000)


QUEUES = {"zoo": zoo, "schedules": schedules}


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__)
    p.add_argument("queue", choices=sorted(QUEUES))
    args = p.parse_args(argv)
    args.study = True
    ctx = _common.setup(args, "run_study")
    print(f"[run_study] {args.queue}: commit {_common.commit()}", flush=True)
    QUEUES[args.queue](ctx)
    print(f"[run_study] {args.queue}: done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

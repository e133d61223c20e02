"""Run the CPU study tier's computations in the background, in priority order.

Every figure script's ``--study`` computes what it needs on demand; this driver only
works through the shared zoo (``figures/_study.py``) in a fixed order, so that two
background processes can share the CPU without training the same model twice (a lock
per run folder) and a killed process resumes where it stopped (run folders and cached
evaluations). Queues:

- ``zoo``: claims 1-3, seed by seed (0, 1, 2): LeNet per eps in {0, 0.1, 0.2, 0.3,
  0.4}, constant and linear warm-up schedules (final metrics on 2,000 test images),
  the Hessian and the ReLU scattering of the warm-up family; then the GELU twin
  (seeds 0, 1) and the Hessians of the constant family.
- ``schedules``: claims 4, 5 and 7. The four schedules at eps = 0.4 (seed 0) under
  the quick and standard protocols (full budgets, 1,000 test images, final model and
  ensemble); claim 1's constant vs warm-up models at eps 0 / 0.3 / 0.4 for seeds 1,
  2; the schedules for seeds 1, 2; constant and periodic at lr 6e-4 / 6e-3 (seeds 0, 1); the
  Madry-shape CNN (width 0.5, seed 0); then the reviewer protocol.

- ``zoo_first`` / ``helper``: the same work ordered for two processes when CPU is
  scarce; ``claims_5_7_first``: ``schedules`` with claims 5 and 7 before the costly
  protocols (claim 4's standard protocol for seeds 1, 2 and the reviewer protocol).
- ``long`` / ``long_second`` (with ``LANDSCAPE_STUDY_BUDGET=long``): claims 1-3 on
  the 4x training budget (16,000 images, 16 epochs), seed by seed; ``long_second``
  is a second process for seed 1; ``long_schedules``: linear vs periodic at
  eps 0.4 under that budget (quick protocol); ``long_claim4``: all four schedules
  at eps 0.4 under that budget for 3 seeds (quick protocol), seed 2 of claims 1-3,
  then the standard protocol; ``long_reviewer``: the reviewer protocol there.
- ``protocols_final``: claims 4 and 7 under the reviewer (and remaining standard)
  protocols at the base budget; ``ensembles_reverse``: its ensemble part from the
  other end, as a second process.

The queues share models (e.g. constant eps = 0.4): whichever reaches a model
first trains it, the other waits for it.

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
LRS = (6e-4, 2e-3, 6e-3)
SCHEDULES = ("constant", "linear", "cosine", "periodic")


_madry = _study.madry_spec


def zoo(ctx: _common.Context) -> None:
    for seed in SEEDS:
        for sch in ("constant", "linear"):
            for spec in _study.zoo((sch,), EPS, (seed,)):
                _study.final_eval(ctx, spec)
        for spec in _study.zoo(("linear",), EPS, (seed,)):
            _study.hessian_eval(ctx, spec)
            _study.scattering_eval(ctx, spec)
    for seed in (0, 1):
        for spec in _study.zoo(("linear",), EPS, (seed,), activation="gelu"):
            _study.final_eval(ctx, spec)
            _study.scattering_eval(ctx, spec)
    for spec in _study.zoo(("constant",), EPS, SEEDS):
        _study.hessian_eval(ctx, spec)


def _protocols(ctx, protocol, schedules, seeds, *, ensemble=False, seed_major=False):
    """``protocol`` for the eps = 0.4 models of ``schedules`` x ``seeds``, schedule by
    schedule (``seed_major``: seed by seed)."""
    pairs = [(sch, s) for sch in schedules for s in seeds]
    if seed_major:
        pairs = [(sch, s) for s in seeds for sch in schedules]
    for sch, seed in pairs:
        spec = _study.Spec(eps=0.4, seed=seed, schedule=sch)
        _study.protocol_eval(ctx, spec, protocol, ensemble=ensemble)


def _claim4(ctx: _common.Context, protocols, seeds) -> None:
    for seed in seeds:
        for sch in SCHEDULES:
            spec = _study.Spec(eps=0.4, seed=seed, schedule=sch)
            _study.final_eval(ctx, spec)
            for protocol in protocols:
                for ens in (False, True):
                    _study.protocol_eval(ctx, spec, protocol, ensemble=ens)


def _claims_5_7(ctx: _common.Context) -> None:
    """Claim 5's learning rates (constant vs periodic at eps 0.4, seeds 0, 1) and
    claim 7's Madry-shape CNN under the quick and standard protocols."""
    for lr in (6e-4, 6e-3):
        for seed in (0, 1):
            for sch in ("constant", "periodic"):
                _study.final_eval(
                    ctx, _study.Spec(eps=0.4, seed=seed, schedule=sch, lr=lr)
                )
    _study.final_eval(ctx, _madry(0))
    _study.protocol_eval(ctx, _madry(0), "quick", num=2000)
    _study.protocol_eval(ctx, _madry(0), "standard", num=1000)


def _need_long() -> None:
    if _study.BUDGET != "long":
        raise SystemExit("error: the long queue needs LANDSCAPE_STUDY_BUDGET=long")


def schedules(ctx: _common.Context) -> None:
    _claim4(ctx, ("quick", "standard"), (0,))
    # claim 1's decisive comparison (constant vs warm-up at eps 0.3 / 0.4) on more
    # seeds before the rest of the zoo (shared with the zoo queue through the locks)
    for seed in (1, 2):
        for eps, sch in ((0.0, "constant"), (0.3, "constant"), (0.4, "constant")):
            _study.final_eval(ctx, _study.Spec(eps=eps, seed=seed, schedule=sch))
        for eps in (0.3, 0.4):
            _study.final_eval(ctx, _study.Spec(eps=eps, seed=seed, schedule="linear"))
    _claim4(ctx, ("quick", "standard"), (1, 2))
    _claims_5_7(ctx)
    _claim4(ctx, ("reviewer",), SEEDS)
    _study.protocol_eval(ctx, _madry(0), "reviewer", num=1000)


def zoo_first(ctx: _common.Context) -> None:
    """``zoo`` with claim 1's decisive runs first: seed 0's Hessians and scattering,
    then constant vs warm-up at eps 0.4 / 0.3 (and eps 0) for seeds 1, 2, then the
    rest of ``zoo``."""
    for spec in _study.zoo(("linear",), EPS, (0,)):
        _study.hessian_eval(ctx, spec)
        _study.scattering_eval(ctx, spec)
    for seed in (1, 2):
        for eps, sch in (
            (0.4, "constant"),
            (0.4, "linear"),
            (0.3, "constant"),
            (0.3, "linear"),
            (0.0, "constant"),
        ):
            _study.final_eval(ctx, _study.Spec(eps=eps, seed=seed, schedule=sch))
    zoo(ctx)


def helper(ctx: _common.Context) -> None:
    """The second process's queue when the CPU is scarce: help the zoo with seed 0
    (warm-up models at eps 0.4, 0.3, then the Hessians and scattering from the top
    eps down while ``zoo`` goes up), then the ``schedules`` queue."""
    for eps in (0.4, 0.3):
        _study.final_eval(ctx, _study.Spec(eps=eps, seed=0, schedule="linear"))
    for spec in reversed(_study.zoo(("linear",), EPS, (0,))):
        _study.hessian_eval(ctx, spec)
        _study.scattering_eval(ctx, spec)
    schedules(ctx)


def long(ctx: _common.Context) -> None:
    """Claims 1-3 under the ``long`` budget (run with ``LANDSCAPE_STUDY_BUDGET=long``):
    seed by seed, the warm-up family per eps with its Hessian and ReLU scattering,
    then the constant models at eps 0.3 / 0.4."""
    _need_long()
    for seed in SEEDS:
        for spec in _study.zoo(("linear",), EPS, (seed,)):
            _study.final_eval(ctx, spec)
            _study.hessian_eval(ctx, spec)
            _study.scattering_eval(ctx, spec)
        for eps in (0.4, 0.3):
            _study.final_eval(ctx, _study.Spec(eps=eps, seed=seed, schedule="constant"))


def claims_5_7_first(ctx: _common.Context) -> None:
    """The ``schedules`` queue reordered when CPU is short: claim 4's quick protocol
    for every seed, claim 5's learning rates, claim 7's Madry CNN (quick, standard),
    then claim 4's standard protocol for seeds 1, 2 and the reviewer protocol."""
    _claim4(ctx, ("quick",), SEEDS)
    _claims_5_7(ctx)
    _claim4(ctx, ("standard",), (1, 2))
    _claim4(ctx, ("reviewer",), SEEDS)
    _study.protocol_eval(ctx, _madry(0), "reviewer", num=1000)


def long_second(ctx: _common.Context) -> None:
    """A second process for the ``long`` budget: seed 1's warm-up family (Hessian and
    scattering), from the ends of the eps range inwards."""
    _need_long()
    for eps in (0.4, 0.0, 0.3, 0.1, 0.2):
        spec = _study.Spec(eps=eps, seed=1, schedule="linear")
        _study.final_eval(ctx, spec)
        _study.hessian_eval(ctx, spec)
        _study.scattering_eval(ctx, spec)


def long_schedules(ctx: _common.Context) -> None:
    """Claim 4 under the ``long`` budget, as far as it got: linear warm-up vs periodic
    at eps 0.4 (seeds 0, 1), final model and end-of-period ensemble, quick protocol."""
    _need_long()
    for seed in (0, 1):
        for sch in ("periodic", "linear"):
            spec = _study.Spec(eps=0.4, seed=seed, schedule=sch)
            _study.final_eval(ctx, spec)
            for ens in (False, True):
                _study.protocol_eval(ctx, spec, "quick", ensemble=ens)


def protocols_final(ctx: _common.Context) -> None:
    """Claims 4 and 7 under the costly protocols: claim 4's reviewer protocol for the
    final model of every schedule and seed, claim 7's Madry CNN under the standard and
    reviewer protocols, then claim 4's standard protocol for the ensembles not yet
    done and the reviewer protocol for the ensembles."""
    _protocols(ctx, "reviewer", SCHEDULES, SEEDS, seed_major=True)
    _study.protocol_eval(ctx, _madry(0), "standard", num=1000)
    _study.protocol_eval(ctx, _madry(0), "reviewer", num=1000)
    for protocol in ("standard", "reviewer"):
        _protocols(ctx, protocol, _ENSEMBLE_ORDER, SEEDS, ensemble=True)


# the constant-schedule ensemble is the constant classifier (its 11.8 % cannot be
# broken: every attack runs its whole budget on those points), so it comes last
_ENSEMBLE_ORDER = ("linear", "cosine", "periodic", "constant")


def long_claim4(ctx: _common.Context) -> None:
    """Claim 4 under the ``long`` budget on every schedule (seeds 0, 1, then 2; final
    model and ensemble, quick protocol), then seed 2 of claims 1-3 (the warm-up family
    with its Hessian and scattering) and claim 4's standard protocol (final models;
    linear and periodic first)."""
    _need_long()
    for seed in SEEDS:
        for sch in ("constant", "cosine", "linear", "periodic"):
            spec = _study.Spec(eps=0.4, seed=seed, schedule=sch)
            _study.final_eval(ctx, spec)
            for ens in (False, True):
                _study.protocol_eval(ctx, spec, "quick", ensemble=ens)
    for spec in _study.zoo(("linear",), EPS, (2,)):
        _study.final_eval(ctx, spec)
        _study.hessian_eval(ctx, spec)
        _study.scattering_eval(ctx, spec)
    _protocols(ctx, "standard", ("linear", "periodic", "cosine", "constant"), SEEDS)


def ensembles_reverse(ctx: _common.Context) -> None:
    """A second process for the tail of ``protocols_final``: claim 4's ensembles under
    the standard, then the reviewer protocol, from the other end of the warm-up
    schedules and seeds (the two queues meet in the middle; constant last)."""
    order = (*reversed(_ENSEMBLE_ORDER[:-1]), "constant")
    for protocol in ("standard", "reviewer"):
        _protocols(ctx, protocol, order, SEEDS[::-1], ensemble=True)


def long_reviewer(ctx: _common.Context) -> None:
    """Claim 4's reviewer protocol under the ``long`` budget, as far as it gets: the
    final models, linear and periodic first, seed by seed."""
    _need_long()
    order = ("linear", "periodic", "cosine", "constant")
    _protocols(ctx, "reviewer", order, SEEDS, seed_major=True)


QUEUES = {
    "long_reviewer": long_reviewer,
    "ensembles_reverse": ensembles_reverse,
    "protocols_final": protocols_final,
    "long_claim4": long_claim4,
    "long_schedules": long_schedules,
    "long_second": long_second,
    "claims_5_7_first": claims_5_7_first,
    "long": long,
    "zoo": zoo,
    "zoo_first": zoo_first,
    "schedules": schedules,
    "helper": helper,
}


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

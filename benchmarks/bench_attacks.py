"""Attack cost in forward+backward units per example, against the AutoAttack reference.

Anchors (same model, same batch, measured interleaved, median of repeats):
- ``t_grad``: one input-gradient pass (forward + backward to the input), the unit an
  attack step costs; PGD-k must cost close to k of them (+ a couple of forwards);
- ``t_full``: one full training pass (forward + backward with parameter gradients).

Every attack runs on the same batch of MNIST test images with LeNet (landscape.models)
briefly adversarially trained here; its time is divided by ``t_grad`` to give
"gradient units per example", and compared with pyautoattack's APGD-CE, APGD-T,
FAB-T and Square at the same budgets (ratios ours / reference; < 1 is faster).

    python benchmarks/bench_attacks.py            # 500 images, PGD-20/100, APGD-100
    python benchmarks/bench_attacks.py --quick    # 100 images, smaller budgets
    python benchmarks/bench_attacks.py --only fab  # one attack (names containing 'fab')
    python benchmarks/bench_attacks.py --protocol --num 100   # the protocol row

``--protocol``: "standard protocol vs pyautoattack standard, same model, same points,
CPU time" (issue 29; goal <= 0.5x, robust accuracy equal within 0.4 points) on two
MNIST CNNs (``models.build("madry_cnn", width=0.5)``, 821,706 parameters): a
non-robust one (plain training, trained here in a minute) and a robust one (PGD-5
adversarial training at eps 0.3 with the package's trainer, ~3 min CPU; 97.0 % clean,
69.5 % PGD-20 robust on 200 test points), both cached in the git-ignored
``data/bench``. Runs ours and theirs interleaved (``--repeats``), reports CPU time
(``time.process_time``), per-stage robust accuracy and each stage's CPU time.

Single-threaded CPU (torch.set_num_threads(1)); timings are noisy on a shared machine,
so the ratios (measured in the same run) are what to read.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from landscape import attacks as A
from landscape import data, models


def _root() -> str | None:
    env = os.environ.get("LANDSCAPE_DATA")
    for c in [env, Path(__file__).resolve().parents[1].parent / "shared" / "data"]:
        if c and (Path(c) / "mnist").exists():
            return str(c)
    return None


def _train(model, x, y, epochs: int) -> None:
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for ep in range(epochs):
        for i in range(0, len(y), 100):
            xb, yb = x[i : i + 100], y[i : i + 100]
            if ep:
                xb = A.PGD(eps=0.2, steps=3, alpha=0.1)(
                    model, xb, yb, torch.Generator().manual_seed(i)
                )
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    model.eval()


def _time(fn, repeats: int = 1) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


_BENCH = Path(__file__).resolve().parents[1] / "data" / "bench"


def _madry05_plain(root: str) -> torch.nn.Module:
    """The non-robust CNN: plain training on 20,000 MNIST images (cached)."""
    model = models.build("madry_cnn", width=0.5, dataset="mnist")
    path = _BENCH / "madry05_plain.pt"
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    x, y = data.load_dataset("mnist", root, split="train", num_samples=20000)
    torch.manual_seed(0)
    _train(model, x, y, epochs=1)
    _BENCH.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval()


def _madry05_at03(root: str) -> torch.nn.Module:
    """The robust CNN: PGD-5 adversarial training at eps 0.3 (step 0.25 eps, linear
    warm-up of eps over the first of 4 epochs, 12,000 images, Adam 1e-3) with
    ``python -m landscape.train`` (cached run; ~12 min CPU, resumable)."""
    from landscape import checkpoints
    from landscape.train.__main__ import main as train_main

    run = _BENCH / "madry05_at03"
    argv = ["madry-mnist", "--width", "0.5", "--num-train", "12000"]
    argv += ["--num-test", "500", "--epochs", "4", "--batch-size", "100"]
    argv += ["--optimizer", "adam", "--lr", "1e-3", "--eps", "0.3"]
    argv += ["--eps-schedule", "linear", "--eps-kwargs", '{"warmup": 1}']
    argv += ["--steps", "5", "--alpha-rel", "0.25", "--eval-num", "200"]
    argv += ["--checkpoint-every", "40"]
    argv += ["--device", "cpu", "--no-progress", "--run-dir", str(run)]
    argv += ["--data-root", root]
    if not (run / "final.pt").exists() and train_main(argv) != 0:
        raise SystemExit("training the robust model failed")
    return checkpoints.load_model(run).eval()


def _autoattack_standard(model, x, y, eps: float, log: list) -> torch.Tensor:
    """pyautoattack's standard version; returns its per-point robustness and appends
    (stage, robust accuracy, process time) to ``log``."""
    import logging

    from pyautoattack import AutoAttack

    class Stages(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if msg.startswith("robust accuracy after"):
                stage = msg.split()[3].rstrip(":").lower()
                acc = float(msg.split()[4].rstrip("%")) / 100
                log.append((stage, acc, time.process_time()))

    logger = logging.getLogger("auto-attack")
    handler = Stages()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    state = torch.random.get_rng_state()
    try:
        aa = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=0)
        x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=len(y))
    finally:
        torch.random.set_rng_state(state)
        logger.removeHandler(handler)
    with torch.no_grad():
        return model(x_adv).argmax(1) == y


def protocol(args) -> int:
    """The protocol row: ours (evaluate, preset "standard") vs pyautoattack."""
    from landscape import evaluate as E

    root = _root()
    if root is None:
        print("no MNIST found: set LANDSCAPE_DATA")
        return 1
    n = args.num or 100
    g = torch.Generator().manual_seed(0)  # the same stratified sample every run
    xt, yt = data.load_dataset("mnist", root, split="test", num_samples=n, generator=g)
    print(f"standard protocol vs pyautoattack standard, {n} MNIST test points, "
          "Linf, 1 thread, CPU time; goal <= 0.50x, robust accuracy equal within "
          "0.4 points")  # fmt: skip
    for name, make, eps in (
        ("non-robust", _madry05_plain, args.eps),
        ("robust", _madry05_at03, 0.3),
    ):
        if args.only and args.only != name:  # "robust" is in "non-robust"
            continue
        model = make(root)
        for q in model.parameters():
            q.requires_grad_(False)
        ours_t, theirs_t = [], []
        import landscape.evaluate._protocol as P

        # the stages' times of evaluate in CPU time, as pyautoattack's below
        P.time = SimpleNamespace(perf_counter=time.process_time)
        for _ in range(args.repeats):  # interleaved
            t0 = time.process_time()
            res = E.evaluate(
                model, (xt, yt), eps=eps, preset="standard", batch_size=n,
                checks=False, adaptive=None, generator=torch.Generator().manual_seed(0),
            )  # fmt: skip
            ours_t.append(time.process_time() - t0)
            log: list = []
            t0 = time.process_time()
            aa_robust = _autoattack_standard(model, xt, yt, eps, log)
            theirs_t.append(time.process_time() - t0)
        aa_acc = float(aa_robust.float().mean())
        ours_robust = torch.as_tensor(res.robust_correct[0])
        ours, theirs = statistics.median(ours_t), statistics.median(theirs_t)
        acc = float(res.robust_accuracy[0])
        print(f"\n{name}, eps {eps}: clean {100 * res.clean_accuracy:.1f}%")
        print(
            f"  {'stage':10s} {'ours acc':>9s} {'ours cpu':>8s} {'AA acc':>7s} {'AA cpu':>7s}"
        )
        per = res.per_attack_accuracy()
        prev = t0
        aa_stages = {s: (a, t) for s, a, t in log}
        for attack, a in per.items():
            key = {"apgd-t": "apgd-t", "fab-t": "fab-t"}.get(attack, attack)
            aa_a, aa_t = aa_stages.get(key, (float("nan"), prev))
            print(
                f"  {attack:10s} {100 * a[0]:8.1f}% {res.timings[attack][0]:8.1f} "
                f"{100 * aa_a:6.1f}% {aa_t - prev:7.1f}"
            )
            prev = aa_t
        only_ours = int((ours_robust & ~aa_robust).sum())
        only_theirs = int((aa_robust & ~ours_robust).sum())
        print(
            f"  points robust for ours only: {only_ours}, for pyautoattack only: "
            f"{only_theirs} (of {n})"
        )
        ratio = ours / theirs
        goal = "meets" if ratio <= 0.5 and abs(acc - aa_acc) <= 0.004 else "misses"
        print(
            f"  total: ours {ours:.1f} s CPU ({100 * acc:.1f}%), pyautoattack "
            f"{theirs:.1f} s CPU ({100 * aa_acc:.1f}%): ratio {ratio:.2f} "
            f"(goal <= 0.50; {goal} the goal; runs {ours_t} / {theirs_t})"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100 images, smaller budgets")
    p.add_argument(
        "--protocol",
        action="store_true",
        help="the standard protocol vs pyautoattack standard row (see above)",
    )
    p.add_argument(
        "--repeats", type=int, default=1, help="--protocol: interleaved runs"
    )
    p.add_argument("--num", type=int, default=None, help="number of test images")
    p.add_argument(
        "--eps", type=float, default=0.1, help="(--protocol: of the non-robust model)"
    )
    p.add_argument(
        "--only",
        default=None,
        help="run only attacks whose name contains this (--protocol: the model, 'robust' or 'non-robust')",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.protocol:
        return protocol(args)
    n = args.num or (100 if args.quick else 500)
    steps, queries = (20, 200) if args.quick else (100, 1000)
    root = _root()
    if root is None:
        print("no MNIST found: set LANDSCAPE_DATA")
        return 1
    x, y = data.load_dataset("mnist", root, split="train", num_samples=3000)
    xt, yt = data.load_dataset("mnist", root, split="test", num_samples=n)
    torch.manual_seed(0)
    model = models.build("lenet", hidden_size=1024)
    _train(model, x, y, epochs=2 if args.quick else 3)
    with torch.no_grad():
        ok = model(xt).argmax(1) == yt
    xt, yt = xt[ok], yt[ok]  # clean-correct points only, so every point is attacked
    for q in model.parameters():
        q.requires_grad_(True)

    def grad_pass():
        xi = xt.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(xi), yt, reduction="sum"), xi)

    def full_pass():  # parameter and input gradients
        model.zero_grad()
        xi = xt.clone().requires_grad_(True)
        F.cross_entropy(model(xi), yt).backward()

    def fwd():
        with torch.no_grad():
            model(xt)

    for _ in range(2):
        grad_pass(), full_pass()
    tg, tf, tfw = [], [], []
    for _ in range(5):  # interleaved anchors, each the mean of a loop of 5
        tg.append(_time(lambda: [grad_pass() for _ in range(5)]) / 5)
        tf.append(_time(lambda: [full_pass() for _ in range(5)]) / 5)
        tfw.append(_time(lambda: [fwd() for _ in range(5)]) / 5)
    t_grad, t_full, t_fwd = (statistics.median(v) for v in (tg, tf, tfw))
    print(
        f"LeNet, {len(yt)} clean-correct of {n} MNIST test images (all attacked), "
        f"eps={args.eps} (Linf), 1 thread"
    )
    print(
        f"anchors: input-grad pass {1e3 * t_grad:.1f} ms, full fwd+bwd {1e3 * t_full:.1f} ms "
        f"(ratio {t_full / t_grad:.2f}), forward {1e3 * t_fwd:.1f} ms"
    )

    eps = args.eps
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731

    def acc(xa):
        with torch.no_grad():
            return (model(xa).argmax(1) == yt).float().mean().item()

    rows = []

    def local_anchor() -> float:
        return _time(lambda: [grad_pass() for _ in range(3)]) / 3

    def bench(name, attack, ref=None, expected_units=None):
        if args.only and args.only not in name:
            return
        # the machine is shared: re-measure the unit right before and after each attack
        a0 = local_anchor()
        t0 = time.perf_counter()
        xa = attack(model, xt, yt, g())
        t = time.perf_counter() - t0
        unit = 0.5 * (a0 + local_anchor())
        row = [
            name,
            t,
            t / unit,
            acc(xa),
            expected_units,
        ]
        if ref is not None:
            t0 = time.perf_counter()
            xr = ref()
            tr = time.perf_counter() - t0
            row += [tr, acc(xr)]
        rows.append(row)

    bench("fgsm", A.FGSM(eps=eps), expected_units=1)
    for k in sorted({20, steps}):
        bench(
            f"pgd-{k} (no early stop)",
            A.PGD(eps=eps, steps=k, loss="ce", keep="best", early_stop=False),
            expected_units=k,
        )
        bench(
            f"pgd-{k}",
            A.PGD(eps=eps, steps=k, loss="ce", keep="best"),
        )
    bench(
        f"pgd-{steps} grid3 x 2 restarts",
        A.PGD(
            eps=eps,
            steps=steps,
            restarts=2,
            alpha=[eps / 4, eps / 10, 2.5 * eps / steps],
            loss="ce",
            keep="best",
        ),
    )
    try:
        from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
        from pyautoattack.fab_pt import FABAttack_PT
        from pyautoattack.square import SquareAttack
    except ImportError:  # reference not installed
        APGDAttack = APGDAttack_targeted = SquareAttack = FABAttack_PT = None

    def aa(make):
        if make is None:
            return None
        state = torch.random.get_rng_state()

        def run():
            try:
                return make().perturb(xt, yt)
            finally:
                torch.random.set_rng_state(state)

        return run

    bench(
        f"apgd-ce-{steps}",
        A.APGD(eps=eps, steps=steps),
        aa(APGDAttack and (lambda: APGDAttack(model, n_iter=steps, eps=eps, seed=0))),
    )
    bench(
        f"apgd-t-{steps} (9 targets)",
        A.APGDT(eps=eps, steps=steps),
        aa(
            APGDAttack_targeted
            and (lambda: APGDAttack_targeted(model, n_iter=steps, eps=eps, seed=0))
        ),
    )
    bench(
        f"fab-t-{steps} (9 targets)",
        A.FABT(eps=eps, steps=steps),
        aa(
            FABAttack_PT
            and (
                lambda: FABAttack_PT(
                    model, n_iter=steps, eps=eps, seed=0, targeted=True
                )
            )
        ),
    )
    bench(
        f"square-{queries}",
        A.Square(eps=eps, queries=queries),
        aa(
            SquareAttack
            and (
                lambda: SquareAttack(
                    model,
                    n_queries=queries,
                    eps=eps,
                    seed=0,
                    p_init=0.8,
                    resc_schedule=False,
                )
            )
        ),
    )
    bench(
        f"simba-{queries} (Linf, pixel)",
        A.SimBA(eps=eps, norm="linf", dct=False, queries=queries),
    )

    hdr = (
        f"{'attack':32s} {'time s':>8s} {'units/ex':>9s} {'expect':>7s} {'rob.acc':>8s}"
        f" {'AA time':>8s} {'AA acc':>7s} {'ours/AA':>8s}"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        name, t, u, a, e = r[:5]
        line = f"{name:32s} {t:8.2f} {u:9.1f} {('~' + str(e)) if e else '':>7s} {100 * a:7.1f}%"
        if len(r) > 5:
            line += f" {r[5]:8.2f} {100 * r[6]:6.1f}% {t / r[5]:8.2f}"
        print(line)
    print(
        "units/ex: attack time / one input-gradient pass over the same batch (re-measured"
        " around each attack), i.e. forward+backward units per example; 'expect' = ideal"
        " count (plus ~2 forwards of ~0.2 units)"
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _bench

    _bench.run(main)

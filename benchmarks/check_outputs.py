"""Bitwise check of seeded outputs: the before / after comparison of an architecture
change (issue 23: one attack currency, one training loop).

Runs a fixed set of seeded calls of the public API of attacks, train, evaluate,
connectivity, scattering and surface on tiny LeNets and 64 MNIST test images, and
saves every output into one ``.npz``:

- training, 2 epochs of a width-1 LeNet on 256 images: PGD-3, FGSM-RS (with the
  catastrophic-overfitting check and a batch-wise training-PGD evaluation), a periodic
  eps and lr schedule with a relative step, L2 with an absolute step, the MSE loss
  with train-mode attacks and no random start; standard training (no attack, 4
  epochs of Adam on 1,024 images) of the two models the rest attacks; final weights
  and every per-epoch metric except the times;
- every attack through its value (PGD for training and for evaluation with restarts,
  a step-size grid and patience, FGSM-RS, FGSM, APGD, APGD-T, FAB, FAB-T, Square,
  SimBA; L-inf and L2), ``pgd`` with ``return_info`` and traces,
  ``perturb_batches``;
- ``evaluate`` with each preset at tiny budgets (with the gradient-masking checks for
  the quick one), an explicit list of attack values at two eps, the EOT answer on a
  randomised model, ``robust_accuracy``;
- curve training (1 epoch, PGD-2) and curve scans (training PGD on the line,
  evaluation PGD on the trained curve);
- scattering (vmap and loop; PGD, FGSM-RS, L2), gradient norms and the adversarial
  gradient; re-attacked and fixed-attack loss surfaces; the linear models' PGD
  training (own loop and the trainer).

Usage (one torch thread; ``LANDSCAPE_DATA`` must hold MNIST)::

    python benchmarks/check_outputs.py OUT.npz
    python benchmarks/check_outputs.py --compare BEFORE.npz AFTER.npz

``--compare`` prints the max abs difference of every entry present in both files
(and the entries only one holds) and exits with status 1 when any differs. The
"before" file of issue 23 came from the same calls spelled with the old API (loose
attack keywords, ``AttackSpec``, ``train_curve``) at commit 7678f12. Expected
differences (documented in ``tests/test_connectivity.py``): ``curve/train/*`` and
``curve/scan_eval/*``, as curve training now draws its t, attack starts and dropout
from the trainer's streams.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import numpy as np
import torch
from torch import nn

from landscape import (
    attacks,
    connectivity,
    data,
    directions,
    evaluate,
    linear,
    models,
    scattering,
    surface,
    train,
)

ROOT = os.environ.get("LANDSCAPE_DATA")
OUT: dict[str, np.ndarray] = {}


def put(key: str, v) -> None:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    OUT[key] = np.asarray(v)


def g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return models.build(
        "lenet", in_shape=(1, 28, 28), dataset="mnist", width=1, hidden_size=1024
    )


def put_model(key: str, m: nn.Module) -> None:
    for n, t in m.state_dict().items():
        put(f"{key}/w/{n}", t)


def put_metrics(key: str, res) -> None:
    for k, v in res.metrics.items():
        if k.startswith("time"):
            continue
        put(f"{key}/m/{k}", np.asarray(v, dtype=float))


BASE = dict(epochs=2, batch_size=64, optimizer="sgd", lr=0.05, seed=1)
RUNTIME = train.Runtime(eval_num=32, co_check_num=0, amp="off", channels_last=False)


def _quick(eps: float, steps: int = 2) -> attacks.PGD:
    """The quick preset's PGD (the default per-epoch evaluation) with ``steps``."""
    return evaluate.preset_attacks("quick", eps, steps=steps)[0]


def training(x, y, xt, yt) -> None:
    cfgs = {
        "pgd": train.TrainConfig(
            **BASE,
            attack=attacks.PGD(eps=0.1, steps=3),
            runtime=dataclasses.replace(RUNTIME, eval_attack=_quick(0.1)),
        ),
        "fgsm": train.TrainConfig(
            **BASE,
            attack=attacks.FGSMRS(eps=0.1),
            runtime=dataclasses.replace(
                RUNTIME,
                co_check_num=32,
                eval_attack=attacks.PGD(eps=0.1, steps=2, alpha_rel=0.25),
            ),
        ),
        "periodic": train.TrainConfig(
            **{**BASE, "optimizer": "adam", "lr": 1e-3},
            attack=attacks.PGD(eps=0.1, steps=2, alpha_rel=0.5),
            eps_schedule="periodic",
            lr_schedule="periodic",
            periods=2,
            runtime=dataclasses.replace(RUNTIME, eval_attack=_quick(0.1)),
        ),
        "l2_alpha": train.TrainConfig(
            **BASE,
            attack=attacks.PGD(eps=1.0, norm="l2", steps=2, alpha=0.5),
            runtime=dataclasses.replace(
                RUNTIME,
                eval_attack=evaluate.preset_attacks("quick", 1.0, "l2", steps=2)[0],
            ),
        ),
        "mse_nors_trainmode": train.TrainConfig(
            **BASE,
            attack=attacks.PGD(eps=0.1, steps=2, random_start=False),
            loss_fn="mse",
            attack_train_mode=True,
            runtime=dataclasses.replace(RUNTIME, eval_attack=_quick(0.1)),
        ),
    }
    for name, cfg in cfgs.items():
        m = net(0)
        res = train.adversarial_train(m, (x[:256], y[:256]), cfg, test_data=(xt, yt))
        put_model(f"train/{name}", m)
        put_metrics(f"train/{name}", res)


def clean_model(seed, x, y, xt, yt) -> nn.Module:
    """Standard training (no attack): 4 epochs of Adam on 1024 images."""
    m = net(seed)
    cfg = train.TrainConfig(
        **{**BASE, "epochs": 4, "optimizer": "adam", "lr": 2e-3},
        attack=None,
        runtime=dataclasses.replace(RUNTIME, eval_attack=_quick(0.0)),
    )
    res = train.adversarial_train(m, (x, y), cfg, test_data=(xt, yt))
    put_model(f"train/clean{seed}", m)
    put_metrics(f"train/clean{seed}", res)
    return m.eval()


def attack_values(m, x, y) -> None:
    vals = {
        "PGD": attacks.PGD(eps=0.1, steps=5),
        "PGD_l2": attacks.PGD(eps=1.0, norm="l2", steps=5, alpha=0.5),
        "PGD_cw_norandom": attacks.PGD(eps=0.1, steps=3, loss="cw", random_start=False),
        "FGSMRS": attacks.FGSMRS(eps=0.1),
        "FGSM": attacks.FGSM(eps=0.1),
        "PGD_eval": attacks.PGD(eps=0.1, steps=5, loss="ce", keep="best"),
        "PGD_eval_grid": attacks.PGD(
            eps=0.1, steps=5, restarts=2, alpha=(0.1, 0.05), loss="ce", keep="best"
        ),
        "PGD_eval_l2_cw": attacks.PGD(
            eps=1.0,
            norm="l2",
            steps=5,
            loss="cw",
            restarts=3,
            patience=1,
            random_start=False,
            keep="best",
        ),  # fmt: skip
        "APGD": attacks.APGD(eps=0.1, steps=10),
        "APGD_dlr": attacks.APGD(eps=0.1, steps=10, loss="dlr", restarts=2),
        "APGD_eot": attacks.APGD(eps=0.1, steps=5, eot_iter=2),
        "APGDT": attacks.APGDT(eps=0.1, steps=10, num_targets=3),
        "FAB": attacks.FAB(eps=0.1, steps=10),
        "FAB_l2": attacks.FAB(eps=1.0, norm="l2", steps=10, restarts=2),
        "FABT": attacks.FABT(eps=0.1, steps=10, num_targets=3),
        "Square": attacks.Square(eps=0.1, queries=50),
        "Square_l2": attacks.Square(eps=1.0, norm="l2", queries=50),
        "SimBA": attacks.SimBA(eps=1.0, queries=100),
        "SimBA_linf": attacks.SimBA(eps=0.1, norm="linf", dct=False, queries=100),
    }
    for name, atk in vals.items():
        put(f"attack/{name}", atk(m, x, y, g(3)))
    # with info and traces
    pgd = attacks.PGD(
        eps=0.1, steps=4, alpha=[0.1, 0.05], restarts=3, patience=1, loss="ce",
        keep="best",
    )  # fmt: skip
    xa, info = pgd(m, x, y, g(4), return_info=True, trace=True)
    put("attack/pgd_fn/x", xa)
    put("attack/pgd_fn/success", info["success"])
    put("attack/pgd_fn/restart_curve", info["restart_curve"])
    put("attack/pgd_fn/num_grad", info["num_grad"])
    put("attack/pgd_fn/trace_loss", [t["loss"][-1] for t in info["trace"]])
    put("attack/pgd_train_fn", attacks.PGD(eps=0.1, steps=3)(m, x, y, g(5)))
    put("attack/fgsm_rs_fn", attacks.FGSMRS(eps=0.1)(m, x, y, g(5)))
    batches = [(x[:16], y[:16]), (x[16:], y[16:])]
    adv = attacks.perturb_batches(
        m, batches, attacks.PGD(eps=0.1, steps=3), generator=g(6)
    )
    put("attack/perturb_batches", torch.cat([a for a, _ in adv]))
    adv = attacks.perturb_batches(
        m, batches, attacks.FGSMRS(eps=0.1, alpha=0.2), generator=g(6)
    )
    put("attack/perturb_batches_fgsmrs", torch.cat([a for a, _ in adv]))


def put_eval(key: str, res) -> None:
    put(f"{key}/robust_correct", res.robust_correct)
    put(f"{key}/broken_by", res.broken_by)
    put(f"{key}/attacks", np.array([str(a) for a in res.attacks]))
    for k, v in res.restart_curves.items():
        put(f"{key}/curve/{k}", v)
    for k, c in res.checks.items():
        v = c.get("value")
        if isinstance(v, (int, float, list)) and v is not None:
            put(f"{key}/check/{k}", np.asarray(v, dtype=float))
        put(f"{key}/check/{k}/passed", str(c.get("passed")))


class _Noisy(nn.Module):
    """A randomised model (input noise from torch's global RNG): EOT's case."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m((x + 0.02 * torch.randn_like(x)).clamp(0, 1))


def evaluations(m, x, y) -> None:
    res = evaluate.evaluate(
        m, (x, y), eps=[0.05, 0.1], preset="quick", steps=3, generator=g(0),
        batch_size=16,
    )  # fmt: skip
    put_eval("eval/quick", res)
    res = evaluate.evaluate(
        m, (x, y), eps=0.1, preset="standard", scale=0.02, checks=False, generator=g(0)
    )
    put_eval("eval/standard", res)
    res = evaluate.evaluate(
        m, (x, y), eps=0.1, preset="reviewer", scale=0.04, checks=False, generator=g(0)
    )
    put_eval("eval/reviewer", res)
    res = evaluate.evaluate(
        m, (x, y), eps=1.0, norm="l2", preset="reviewer", scale=0.04, checks=False,
        generator=g(0),
    )  # fmt: skip
    put_eval("eval/reviewer_l2", res)
    sequence = [
        attacks.APGD(eps=0.1, steps=5, loss="ce"),
        attacks.Square(eps=0.1, queries=50),
    ]
    res = evaluate.evaluate(
        m, (x, y), attacks=sequence, eps=[0.05, 0.1], checks=False, generator=g(0)
    )
    put_eval("eval/custom", res)
    torch.manual_seed(0)
    res = evaluate.evaluate(
        _Noisy(m), (x, y), eps=0.1, preset="quick", steps=2, eot_iter=2,
        checks=False, generator=g(0),
    )  # fmt: skip
    put_eval("eval/eot", res)
    put("eval/robust_accuracy", evaluate.robust_accuracy(m, (x, y), eps=0.1, steps=2))


def curves(a, b, x, y, xt, yt) -> None:
    cm = connectivity.CurveModel(a, b)
    cfg = train.TrainConfig(
        epochs=1,
        batch_size=64,
        lr=0.01,
        attack=attacks.PGD(eps=0.1, steps=2),
        seed=0,
        runtime=train.Runtime(eval_num=0, co_check_num=0),
    )
    train.adversarial_train(cm, (x, y), cfg)
    trained = cm.curve()
    for k, v in trained.bends[0].items():
        put(f"curve/train/bend/{k}", v)
    line = connectivity.init_curve(a, b, kind="line")
    ce = nn.CrossEntropyLoss()
    scan = connectivity.scan_curve(
        a, ce, [(xt, yt)], line, num=3,
        attack=attacks.PGD(eps=0.1, steps=2), generator=g(0),
    )  # fmt: skip
    for k in ("clean_loss", "clean_acc", "robust_loss", "robust_acc"):
        put(f"curve/scan/{k}", getattr(scan, k))
    scan = connectivity.scan_curve(
        a, ce, [(xt, yt)], trained, num=3,
        attack=attacks.PGD(eps=0.1, steps=3, loss="ce", keep="best"),
        generator=g(0),
    )  # fmt: skip
    for k in ("clean_loss", "clean_acc", "robust_loss", "robust_acc"):
        put(f"curve/scan_eval/{k}", getattr(scan, k))


def scatterings(m, x, y) -> None:
    data_ = [(x[:16], y[:16])]
    for strategy in ("vmap", "loop"):
        for name, atk in {
            "pgd": attacks.PGD(eps=0.1, steps=3),
            "fgsmrs": attacks.FGSMRS(eps=0.1),
            "l2": attacks.PGD(eps=1.0, norm="l2", steps=2, alpha=0.5),
        }.items():
            res = scattering.scattering(
                m, None, data_, attack=atk,
                eps=[0.05, 0.1] if name != "l2" else None,
                scales=(1e-3, 1e-2), num_directions=2, strategy=strategy,
                generator=g(1),
            )  # fmt: skip
            for k in ("grad_diff", "cosine", "pert_cosine", "sign_cosine", "loss"):
                put(f"scatter/{strategy}/{name}/{k}", getattr(res, k))
    st = scattering.gradient_norms(
        m, None, data_, attack=attacks.PGD(eps=0.3, steps=3), generator=g(2)
    )
    put("scatter/gradnorms/per_example", st.per_example)
    put("scatter/gradnorms/batch", st.batch)
    grads, xa = scattering.adversarial_gradient(
        m, None, x[:16], y[:16], attack=attacks.PGD(eps=0.1, steps=3), generator=g(3)
    )
    put("scatter/adv_grad/x", xa)
    for k, v in grads.items():
        put(f"scatter/adv_grad/g/{k}", v)


def surfaces(m, x, y) -> None:
    d = directions.random_directions(m, num=2, generator=g(0))
    ce = nn.CrossEntropyLoss()
    for adv in ("reattack", "fixed"):
        s = surface.loss_surface(
            m, ce, [(x[:16], y[:16])], d, xs=[-0.5, 0.0, 0.5], ys=[0.0, 0.5],
            attack=attacks.PGD(eps=0.1, steps=2), adversarial=adv,
            strategy="loop", generator=g(1),
        )  # fmt: skip
        put(f"surface/{adv}/loss", s.loss)
        put(f"surface/{adv}/accuracy", s.accuracy)


def linear_models() -> None:
    gg = np.random.default_rng(0)
    xl = gg.normal(size=(64, 5))
    yl = np.sign(xl[:, 0] + 0.1 * gg.normal(size=64))
    for trainer in (False, True):
        fit = linear.robust_train_pgd(
            xl, yl, eps=0.1, steps=3, max_iter=5, lr=0.1, trainer=trainer,
            generator=g(0),
        )  # fmt: skip
        put(f"linear/robust_train_pgd/{trainer}", np.append(fit.w, fit.b))


def run(out: str) -> int:
    torch.set_num_threads(1)
    x, y = data.load_dataset(
        "mnist", ROOT, split="train", num_samples=1024, generator=g(0)
    )
    xt, yt = data.load_dataset(
        "mnist", ROOT, split="test", num_samples=64, generator=g(0)
    )
    training(x, y, xt, yt)
    m = clean_model(0, x, y, xt, yt)
    attack_values(m, xt, yt)
    evaluations(m, xt, yt)
    b = clean_model(1, x, y, xt, yt)
    curves(m, b, x[:256], y[:256], xt, yt)
    scatterings(m, xt, yt)
    surfaces(m, xt, yt)
    linear_models()
    np.savez(out, **OUT)
    print(f"{len(OUT)} entries -> {out}")
    return 0


def compare(a_path: str, b_path: str) -> int:
    """Max abs difference per entry; status 1 when any entry differs."""
    a, b = np.load(a_path), np.load(b_path)
    differ = 0
    for k in sorted(set(a.files) | set(b.files)):
        if k not in a.files or k not in b.files:
            print(f"{k}: only in {a_path if k in a.files else b_path}")
            differ += 1
            continue
        u, v = a[k], b[k]
        if u.shape != v.shape or u.dtype.kind != v.dtype.kind:
            print(f"{k}: {u.dtype}{u.shape} vs {v.dtype}{v.shape}")
            differ += 1
            continue
        if u.dtype.kind in "fc":
            same = np.array_equal(u, v, equal_nan=True)
            diff = float(np.nanmax(np.abs(u - v))) if u.size and not same else 0.0
        else:
            same, diff = np.array_equal(u, v), 0.0
        differ += not same
        print(f"{k}: {'same' if same else 'DIFFERS'} (max abs diff {diff:.3g})")
    print(f"{differ} of {len(set(a.files) | set(b.files))} entries differ")
    return 1 if differ else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", nargs="?", help="write the outputs to this .npz")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two .npz")
    args = p.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    if not args.out:
        p.error("give OUT.npz or --compare A B")
    return run(args.out)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

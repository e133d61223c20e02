"""Training objectives handed to the one trainer (issue 26): TRADES and MART losses
against their reference code's formulas, AWP's perturbation and restore, EMA / SWA
against hand computations, the validation split, the best-by-validation checkpoint,
the run's summary, config.json and exact resume."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _helpers import conv_bn_net, tiny_train_config
from torch import nn

from landscape import attacks, evaluate, models, sharpness
from landscape._utils import derive_seed
from landscape.checkpoints import Ensemble, load_model
from landscape.train import (
    AWP,
    EMA,
    MART,
    SWA,
    TRADES,
    Tracking,
    TrainConfig,
    adversarial_train,
    load_run,
    mart_loss,
    trades_loss,
)
from landscape.train._average import Averager
from landscape.train._data import validation_split
from landscape.train._eval import evaluate_split
from landscape.train._objective import awp_perturbation, awp_tensors
from landscape.train._track import track


def _logits(seed: int = 0, n: int = 7, k: int = 4):
    g = torch.Generator().manual_seed(seed)
    clean = (2 * torch.randn(n, k, generator=g, dtype=torch.float64)).requires_grad_()
    adv = (2 * torch.randn(n, k, generator=g, dtype=torch.float64)).requires_grad_()
    y = torch.randint(0, k, (n,), generator=g)
    return clean, adv, y


# ------------------------------------------------------------------- the losses
def test_trades_loss_is_the_reference_formula():
    clean, adv, y = _logits()
    beta = 6.0
    got = trades_loss(clean, adv, y, beta)
    # yaodongyu/TRADES: CE mean + beta * KLDivLoss(sum)(log_softmax(adv), softmax(nat)) / B
    p = torch.softmax(clean, 1)
    kl = (p * (torch.log(p) - torch.log_softmax(adv, 1))).sum() / len(y)
    ce = -torch.log_softmax(clean, 1)[torch.arange(len(y)), y].mean()
    ref = ce + beta * kl
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=0)
    # the gradient flows through the clean softmax of the KL too (not detached)
    g_got = torch.autograd.grad(got, clean)[0]
    g_ce = torch.autograd.grad(ce, clean, retain_graph=True)[0]
    assert (g_got - g_ce).abs().max() > 1e-3


def test_mart_loss_is_the_reference_formula_with_its_constants():
    clean, adv, y = _logits(1)
    beta = 5.0
    got = mart_loss(clean, adv, y, beta)
    q = torch.softmax(adv, 1)
    p = torch.softmax(clean, 1)
    n = len(y)
    wrong = q.clone()
    wrong[torch.arange(n), y] = -1.0  # the most likely wrong class under p(x')
    k = wrong.argmax(1)
    bce = -torch.log_softmax(adv, 1)[torch.arange(n), y] - torch.log(
        1.0001 - q[torch.arange(n), k] + 1e-12
    )
    kl = (p * (torch.log(p) - torch.log(q + 1e-12))).sum(1)
    ref = bce.mean() + beta * (kl * (1.0000001 - p[torch.arange(n), y])).sum() / n
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=0)
    # the constants matter at this tolerance: without them the value differs
    plain = bce.mean() + beta * (kl * (1 - p[torch.arange(n), y])).mean()
    assert abs(float((plain - got).detach())) > 1e-8


def test_trades_attack_ascends_the_kl_to_the_clean_prediction():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 3)).double()
    x = torch.rand(5, 1, 6, 6, dtype=torch.float64)
    fn = TRADES(beta=1.0).attack_loss(model, x, torch.zeros(5, dtype=torch.long))
    with torch.no_grad():
        assert float(fn(model(x), None)) == pytest.approx(0.0, abs=1e-12)  # KL(p||p)
        assert float(fn(model(x + 0.3), None)) > 0


# ----------------------------------------------------------------- AWP
def test_awp_perturbation_has_the_relative_norm_per_layer():
    model = conv_bn_net()
    names = [n for n, _ in awp_tensors(model)]
    assert names == ["0.weight", "4.weight"]  # conv and linear weights only
    ws = [p.detach() for _, p in awp_tensors(model)]
    gs = [torch.randn_like(w) for w in ws]
    v = awp_perturbation(ws, gs, 0.01)
    for w, t, g in zip(ws, v, gs):
        assert float(t.norm() / w.norm()) == pytest.approx(0.01, rel=1e-12)
        cos = float((t * g).sum() / (t.norm() * g.norm()))
        assert cos == pytest.approx(1.0, rel=1e-12)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(36, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)
    ).double()


def _xy(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = (0.4 + 0.15 * torch.randn(n, 1, 6, 6, generator=g, dtype=torch.float64)).clamp(
        0, 1
    )
    x[y == 0, :, :, :3] += 0.2
    return x.clamp(0, 1), y


def test_awp_step_is_the_optimizer_step_at_the_perturbed_weights():
    """One SGD step (no momentum, no decay) of standard training with AWP against a
    hand computation: v from the gradient at w (BatchNorm statistics untouched by
    it), the step from the gradient at w + v (whose train-mode forward updates the
    statistics once), then v removed: w_after = (w + v - lr g(w + v)) - v, the same
    floating-point operations, so equal to rounding (1e-14)."""
    x, y = _xy()
    model, ref = _mlp(), _mlp()
    cfg = tiny_train_config(
        attack=None, epochs=1, batch_size=16, lr=0.5, momentum=0.0, shuffle=False,
        awp=AWP(gamma=0.05),
    )  # fmt: skip
    adversarial_train(model, (x, y), cfg)
    # by hand
    ws = dict(awp_tensors(ref))
    probe = copy.deepcopy(ref).train()
    loss = F.cross_entropy(probe(x), y)
    names = list(ws)
    gw = torch.autograd.grad(loss, [dict(probe.named_parameters())[n] for n in names])
    v = awp_perturbation([ws[n].detach() for n in names], list(gw), 0.05)
    with torch.no_grad():
        for n, t in zip(names, v):
            ws[n].add_(t)
    ref.train()
    loss = F.cross_entropy(ref(x), y)
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    with torch.no_grad():
        for p, g in zip(ref.parameters(), grads):
            p.sub_(0.5 * g)
        for n, t in zip(names, v):
            ws[n].sub_(t)
    for (n, a), b in zip(model.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-15, msg=n)
    # the step differs from the one without AWP
    plain = _mlp()
    adversarial_train(plain, (x, y), dataclasses.replace(cfg, awp=None))
    assert not torch.allclose(plain[1].weight, model[1].weight, rtol=1e-6)


# ----------------------------------------------------------- weight averaging
def _params_after_each_step(model):
    seen = []

    def cb(state):
        seen.append((state["epoch"], [p.detach().clone() for p in model.parameters()]))

    return seen, cb


def test_ema_and_swa_match_a_hand_computation(tmp_path):
    x, y = _xy(32)
    for spec in (EMA(decay=0.8, warmup=True, bn="copy"), SWA(start=1, bn="copy")):
        model = _mlp()
        init = [p.detach().clone() for p in model.parameters()]
        seen, cb = _params_after_each_step(model)
        cfg = tiny_train_config(
            attack=None, epochs=3, batch_size=16, lr=0.2, averaging=spec
        )
        folder = tmp_path / type(spec).__name__
        adversarial_train(model, (x, y), cfg, run_dir=folder, callback=cb)
        if isinstance(spec, EMA):
            avg = init
            for t, (_, ps) in enumerate(seen):
                d = min(0.8, (1 + t) / (10 + t))
                avg = [d * a + (1 - d) * p for a, p in zip(avg, ps)]
        else:  # the ends of epochs 2 and 3 (start=1)
            assert len(seen) == 6  # two steps per epoch
            ends = [seen[3][1], seen[5][1]]
            avg = [(a + b) / 2 for a, b in zip(*ends)]
        saved = torch.load(folder / "averaged.pt", weights_only=True)
        got = [saved["model"][n] for n, _ in model.named_parameters()]
        for a, b in zip(got, avg):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
        # bn="copy": the online model's statistics
        torch.testing.assert_close(
            saved["model"]["2.running_mean"], model[2].running_mean
        )


def test_averaged_checkpoint_loads_and_evaluates_like_any_checkpoint(tmp_path):
    # averaged.pt (EMA here) is a checkpoint like final.pt: load_model rebuilds it
    # from the run's config.json, and it serves as an evaluation model and as an
    # ensemble member (the end-of-period ensemble's natural control)
    x, y = _xy(32)
    x = x.float()
    kw = {"in_shape": [1, 6, 6], "num_classes": 2, "hidden": [8]}
    torch.manual_seed(0)
    net = models.build("mlp", **kw)
    cfg = tiny_train_config(
        attack=None, epochs=2, lr=0.2, averaging=EMA(decay=0.8), model="mlp",
        model_kwargs=kw,
    )  # fmt: skip
    adversarial_train(net, (x, y), cfg, run_dir=tmp_path)
    avg = load_model(tmp_path / "averaged.pt")
    saved = torch.load(tmp_path / "averaged.pt", weights_only=True)["model"]
    assert avg.state_dict().keys() == saved.keys()
    for k, v in avg.state_dict().items():
        assert torch.equal(v, saved[k]), k
    final = load_model(tmp_path)
    assert not torch.equal(avg(x), final(x))  # the average, not the last weights
    ens = Ensemble([final, avg])
    p = (final(x).softmax(1) + avg(x).softmax(1)) / 2
    torch.testing.assert_close(ens(x).softmax(1), p)
    acc = evaluate.robust_accuracy(avg, (x, y), eps=0.1, steps=2)
    assert 0.0 <= acc <= float((avg(x).argmax(1) == y).float().mean())


def test_averaged_batchnorm_reestimated_on_clean_data():
    x, y = _xy(32)
    model = _mlp()
    avg = Averager(EMA(bn="clean", bn_num=32), model, list(model.parameters()))
    with torch.no_grad():
        for a in avg.avg:
            a.mul_(0.5)
    net = avg.model_for_eval(model, lambda m: [(x[:16], y[:16]), (x[16:], y[16:])])
    assert not net.training
    h = net[1](net[0](x))  # the BN input of the averaged model
    torch.testing.assert_close(net[2].running_mean, h.mean(0))
    # torch's update_bn: the cumulative average of the batches' unbiased variances
    var = (h[:16].var(0, unbiased=True) + h[16:].var(0, unbiased=True)) / 2
    torch.testing.assert_close(net[2].running_var, var)
    assert net[2].momentum == model[2].momentum  # restored


def test_averaged_model_is_evaluated_per_epoch_with_train_bn():
    x, y = _xy(48)
    q = evaluate.preset_attacks("quick", 0.1, "linf", steps=2)[0]
    cfg = tiny_train_config(
        epochs=2, averaging=EMA(decay=0.9, bn="train", bn_num=16),
        runtime={"eval_num": 16, "eval_attack": q},
    )  # fmt: skip
    res = adversarial_train(_mlp(), (x[:32], y[:32]), cfg, test_data=(x[32:], y[32:]))
    for k in ("avg_test_clean_acc", "avg_test_robust_acc", "avg_test_robust_loss"):
        assert len(res.metrics[k]) == 2
    assert (
        res.summary["avg_test_robust_acc_last"]
        == res.metrics["avg_test_robust_acc"][-1]
    )


# ----------------------------------------------- validation split and best.pt
def test_validation_split_is_stratified_seeded_and_disjoint():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    x = torch.arange(100).float()[:, None]
    (xt, yt), (xv, yv) = validation_split((x, y), 10, seed=3)
    assert torch.bincount(yv).tolist() == [5, 3, 2]
    assert len(yt) == 90 and set(xt.flatten().tolist()).isdisjoint(
        xv.flatten().tolist()
    )
    (_, _), (xv2, _) = validation_split((x, y), 10, seed=3)
    assert torch.equal(xv, xv2)
    (_, _), (xv3, _) = validation_split((x, y), 10, seed=4)
    assert not torch.equal(xv, xv3)
    assert bool((xt.flatten().diff() > 0).all())  # dataset order kept
    # 7 of (50, 30, 20): quotas 3.5, 2.1, 1.4 -> 3, 2, 1 plus one for the largest
    _, (_, y7) = validation_split((x, y), 7, seed=0)
    assert torch.bincount(y7).tolist() == [4, 2, 1]
    with pytest.raises(ValueError, match="leaves no training example"):
        validation_split((x, y), 100, seed=0)
    with pytest.raises(TypeError, match="tensors"):
        validation_split([(x, y)], 10, seed=0)


def _overfit_run(tmp_path, **kw):
    x, y = _xy(64)
    q = evaluate.preset_attacks("quick", 0.1, "linf", steps=2)[0]
    kw = {"epochs": 4, **kw}
    cfg = tiny_train_config(
        lr=0.3, val_num=16,
        runtime={"eval_num": 16, "eval_attack": q, "train_eval_num": 16,
                 **kw.pop("runtime", {})},
        **kw,
    )  # fmt: skip
    test = _xy(16, seed=1)
    return cfg, (x, y), test


def test_best_by_validation_checkpoint_is_the_one_the_metrics_say(tmp_path):
    cfg, data, test = _overfit_run(tmp_path)
    model = _mlp()
    res = adversarial_train(model, data, cfg, test_data=test, run_dir=tmp_path)
    val = res.metrics["val_robust_acc"].tolist()
    assert len(val) == 4 and all(0 <= v <= 1 for v in val)
    best = max(range(4), key=lambda i: (val[i], -i))  # the first of the best
    assert res.summary["best_epoch"] == best + 1
    saved = torch.load(tmp_path / "best.pt", weights_only=True)
    assert saved["epoch"] == best + 1
    assert saved["metrics"]["val_robust_acc"] == val[best]
    for k in (
        "train_robust_acc",
        "train_clean_loss",
        "test_robust_loss",
        "val_clean_acc",
    ):
        assert len(res.metrics[k]) == 4
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["best_minus_last"] == pytest.approx(
        res.metrics["test_robust_acc"][best] - res.metrics["test_robust_acc"][-1]
    )
    assert s["robust_gap_last"] == pytest.approx(
        res.metrics["train_robust_acc"][-1] - res.metrics["test_robust_acc"][-1]
    )
    assert s["eval_attack"] and load_run(tmp_path).summary == s
    # best.pt evaluated again (the validation split, its batches and the epoch's
    # evaluation seed) gives the metrics of the best epoch
    best_net = _mlp()
    best_net.load_state_dict(saved["model"])
    _, val_data = validation_split(data, cfg.val_num, seed=cfg.val_seed)
    batches = [(val_data[0][i : i + 16], val_data[1][i : i + 16]) for i in (0, 16)]
    batches = [b for b in batches if len(b[1])]
    again = evaluate_split(
        best_net, batches, "val", cfg.runtime.eval_attack,
        derive_seed(cfg.seed, "eval", best), ctx=contextlib.nullcontext,
        loss=lambda o, t: F.cross_entropy(o, t, reduction="sum"),
    )  # fmt: skip
    for k in ("val_clean_acc", "val_clean_loss", "val_robust_acc", "val_robust_loss"):
        assert again[k] == pytest.approx(saved["metrics"][k], rel=1e-9), k
        assert again[k] == pytest.approx(res.metrics[k][best], rel=1e-9), k


def test_robust_losses_are_the_loss_at_the_evaluation_attacks_points(tmp_path):
    # the per-epoch evaluation attack is the evaluation PGD (keep="best"): its
    # robust losses were NaN; they are the mean loss at the points it returns
    cfg, data, test = _overfit_run(tmp_path, epochs=2)
    assert cfg.runtime.eval_attack.keep == "best"
    res = adversarial_train(_mlp(), data, cfg, test_data=test)
    for split in ("train", "val", "test"):
        v = res.metrics[f"{split}_robust_loss"]
        assert len(v) == 2 and np.isfinite(v).all(), (split, v)
    # by hand on one model and batch: CE at attack(model, x, y); robust = right
    # both clean and at the returned point
    net, (x, y) = _mlp().eval(), _xy(24, seed=2)
    attack = dataclasses.replace(cfg.runtime.eval_attack, eps=0.3)
    xa = attack(net, x, y, torch.Generator().manual_seed(5))
    with torch.no_grad():
        out, clean = net(xa), net(x)
    want_loss = float(F.cross_entropy(out, y))
    want_acc = float(((out.argmax(1) == y) & (clean.argmax(1) == y)).double().mean())
    got = evaluate_split(
        net, [(x, y)], "p", attack, 5, ctx=contextlib.nullcontext,
        loss=lambda o, t: F.cross_entropy(o, t, reduction="sum"),
    )  # fmt: skip
    assert got["p_robust_loss"] == pytest.approx(want_loss, rel=1e-12)
    assert got["p_robust_acc"] == pytest.approx(want_acc, abs=1e-12)
    assert got["p_robust_loss"] > got["p_clean_loss"]  # the attack found worse points
    assert got["p_robust_acc"] <= got["p_clean_acc"]


# ------------------------------------------------ config.json and exact resume
def test_objectives_round_trip_through_config_json():
    cfg = tiny_train_config(
        objective=TRADES(beta=3.0), awp=AWP(gamma=0.005, warmup=1),
        averaging=SWA(start=2, bn="clean", bn_num=64), val_num=8, val_seed=2,
        runtime={"train_eval_num": 8, "track": Tracking(
            every=2, num=8, sharpness=(sharpness.WorstCase(rho=0.01, adaptive="element"),),
            hessian_on=("adv",))},
    )  # fmt: skip
    back = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    bad = cfg.to_dict()
    bad["awp"] = {"kind": "TRADES", "beta": 1.0}
    with pytest.raises(ValueError, match="TRADES is not a AWP"):
        TrainConfig.from_dict(bad)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(objective=TRADES(), attack=None), "attacks.PGD"),
        (dict(objective=MART(), loss_fn="mse"), "cross-entropy"),
        (dict(objective=TRADES(), attack=attacks.PGD(eps=0.1, random_start=False)),
         "random_start"),
        (dict(awp=EMA()), "awp must be a AWP"),
        (dict(val_num=-1), "val_num"),
    ],
)  # fmt: skip
def test_bad_objectives_are_clear(kw, match):
    with pytest.raises((TypeError, ValueError), match=match):
        tiny_train_config(**kw)
    with pytest.raises(ValueError, match="gamma"):
        AWP(gamma=0)
    with pytest.raises(ValueError, match="decay"):
        EMA(decay=1.0)


class _Stop(Exception):
    pass


@pytest.mark.filterwarnings("ignore:top_eigenvalues")  # 3 Lanczos steps
@pytest.mark.parametrize("name", ["trades-awp-ema", "mart-swa"])
def test_exact_resume_with_objectives(tmp_path, name):
    extra = {
        "trades-awp-ema": dict(objective=TRADES(beta=2.0), awp=AWP(gamma=0.01, warmup=1),
                               averaging=EMA(decay=0.9, bn="train", bn_num=16)),
        "mart-swa": dict(objective=MART(beta=5.0), averaging=SWA(start=1, bn="clean",
                                                                  bn_num=16)),
    }[name]  # fmt: skip
    cfg, data, test = _overfit_run(
        tmp_path, epochs=3,
        runtime={"checkpoint_every": 1,
                 "track": Tracking(every=2, num=8, max_iter=3, num_matvecs=4,
                                   sharpness=(sharpness.AverageCase(rho=0.01,
                                                                    num_samples=2),))},
        **extra,
    )  # fmt: skip
    ref = _mlp()
    r_ref = adversarial_train(ref, data, cfg, test_data=test, run_dir=tmp_path / "ref")

    def stop(state):
        if state["iteration"] == 5:  # mid epoch 2 (3 batches of 16 per epoch)
            raise _Stop

    with pytest.raises(_Stop):
        adversarial_train(_mlp(), data, cfg, test_data=test, run_dir=tmp_path / "r",
                          callback=stop)  # fmt: skip
    model = _mlp()
    r = adversarial_train(model, data, cfg, test_data=test, run_dir=tmp_path / "r")
    for a, b in zip(model.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)
    for k, v in r_ref.metrics.items():
        if k.startswith("time") or k == "seconds":
            continue
        np.testing.assert_array_equal(v, r.metrics[k], err_msg=k)
    a = torch.load(tmp_path / "ref" / "averaged.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "r" / "averaged.pt", weights_only=True)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert "lam_max_adv" in r.metrics and "sharp_adv_avg-gaussian-rho0.01" in r.metrics


@pytest.mark.filterwarnings("ignore:top_eigenvalues")
def test_tracking_records_the_landscape_and_leaves_the_run_unchanged(tmp_path):
    cfg, data, test = _overfit_run(tmp_path, epochs=3)
    spec = Tracking(
        every=2, epochs=(1,), num=8, max_iter=4, num_matvecs=4,
        sharpness=(sharpness.WorstCase(rho=0.05, adaptive="element", max_iter=2),),
        sharpness_on=("clean", "adv"),
    )  # fmt: skip
    tracked = dataclasses.replace(
        cfg, runtime=dataclasses.replace(cfg.runtime, track=spec)
    )
    a, b = _mlp(), _mlp()
    ra = adversarial_train(a, data, cfg, test_data=test)
    rb = adversarial_train(b, data, tracked, test_data=test)
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(p, q)  # the tracking draws from its own streams
    np.testing.assert_array_equal(
        ra.metrics["val_robust_acc"], rb.metrics["val_robust_acc"]
    )
    m = rb.metrics
    name = spec.sharpness[0].name
    for k in ("lam_max_clean", "lam_max_adv", "trace_adv", "grad_norm_adv",
              f"sharp_clean_{name}", f"sharp_adv_{name}", "time_track"):  # fmt: skip
        v = m[k]
        assert np.isfinite(v[[0, 1]]).all() and np.isnan(v[2]), k  # epochs 1 and 2
    assert (m["sharp_adv_" + name][:2] >= 0).all()
    assert m["loss_adv"][0] > m["loss_clean"][0]  # the fixed adversarial batch
    assert 0 < rb.summary["track_overhead"] and rb.summary["time_track"] > 0
    with pytest.raises(ValueError, match="held-out batch"):
        adversarial_train(_mlp(), data, dataclasses.replace(tracked, val_num=0))


def test_tracking_hessian_on_the_adversarial_loss_only():
    x, y = _xy(16)
    loss = lambda o, t: F.cross_entropy(o, t)  # noqa: E731
    attack = attacks.PGD(eps=0.1, steps=2)
    both = track(_mlp(), loss, [(x, y)], Tracking(num=16, max_iter=40, num_matvecs=4),
                 attack, 0)  # fmt: skip
    spec = Tracking(num=16, max_iter=40, num_matvecs=4, hessian_on=("adv",))
    adv = track(_mlp(), loss, [(x, y)], spec, attack, 0)
    assert {"lam_max_clean", "trace_clean"} <= set(both)
    assert not {"lam_max_clean", "trace_clean", "lam_max_residual_clean"} & set(adv)
    for k in ("loss_clean", "grad_norm_clean", "loss_adv", "grad_norm_adv"):
        assert adv[k] == both[k], k  # the same fixed adversarial batch
    assert np.isfinite([adv["lam_max_adv"], adv["trace_adv"]]).all()
    assert adv["lam_max_adv"] == pytest.approx(both["lam_max_adv"], rel=1e-6)
    with pytest.raises(ValueError, match="hessian_on"):
        Tracking(hessian_on=("train",))


def test_fixed_training_subset_is_stratified_on_class_sorted_data(monkeypatch):
    """Data sorted by class (as stratified subsets of the loaders come): the first
    examples would all be of class 0; the fixed training subset keeps every class."""
    from landscape.train._data import fixed_subset

    y = torch.arange(4).repeat_interleave(16)  # 0...0 1...1 2...2 3...3
    x = torch.rand(64, 1, 6, 6)
    xs, ys = fixed_subset(None, (x, y), 8, seed=0)
    assert torch.bincount(ys).tolist() == [2, 2, 2, 2]
    cfg = tiny_train_config(attack=None, epochs=1, runtime={"train_eval_num": 8})
    seen = {}
    import landscape.train._loop as loop

    orig = loop._eval_batches

    def spy(run, source, num, name):
        out = orig(run, source, num, name)
        seen[name] = out
        return out

    monkeypatch.setattr(loop, "_eval_batches", spy)
    adversarial_train(nn.Sequential(nn.Flatten(), nn.Linear(36, 4)), (x, y), cfg)
    labels = torch.cat([b[1] for b in seen["data"]])
    assert torch.bincount(labels, minlength=4).tolist() == [2, 2, 2, 2]

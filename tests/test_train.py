"""Tests for landscape.train: attacks during training, exact resume, checkpoints,
ensembles, metrics files, bad input, the CLI."""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _helpers import tiny_train_config
from torch import nn

from landscape import attacks, checkpoints, evaluate, io, train
from landscape.io import NonFiniteError
from landscape.train import Runtime, TrainConfig, adversarial_train

_pgd_mod = sys.modules["landscape.attacks.pgd"]
PGD2 = attacks.PGD(eps=0.1, steps=2)


def _data(n=96, seed=0):
    """Two-class 1x6x6 images in [0, 1]: the label says which half is brighter."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.4 + 0.15 * torch.randn(n, 1, 6, 6, generator=g)
    x[y == 0, :, :, :3] += 0.25
    x[y == 1, :, :, 3:] += 0.25
    return x.clamp(0, 1), y


class TinyNet(nn.Module):
    """Conv + dropout + linear: dropout makes exact resume depend on the global RNG."""

    def __init__(self, seed=0, dropout=0.2):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 4, 3)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x):
        return self.fc(self.drop(F.relu(self.conv(x))).flatten(1))


def _cfg(*, attack=PGD2, runtime=None, **kw):
    """:func:`tiny_train_config` (PGD-2 at eps 0.1) with the per-epoch evaluation on
    32 test images (the quick preset's PGD-2) and the CO check on 16 training images;
    ``runtime``: other Runtime fields, ``kw``: other science fields."""
    norm = getattr(attack, "norm", "linf")
    quick = evaluate.preset_attacks("quick", 0.1, norm, steps=2)[0]
    rt = {"eval_num": 32, "eval_attack": quick, "co_check_num": 16, **(runtime or {})}
    return tiny_train_config(attack=attack, runtime=rt, **{"optimizer": "sgd", **kw})


def _rt(cfg: TrainConfig, **kw) -> TrainConfig:
    """``cfg`` with some runtime settings changed."""
    return dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, **kw))


_OFF = {"eval_num": 0, "co_check_num": 0}


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(
        torch.equal(p, q)
        for p, q in zip(a.state_dict().values(), b.state_dict().values())
    )


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("kind", ["pgd", "fgsm"])
def test_training_attack_stays_in_ball_and_box_without_param_grads(norm, kind):
    x, y = _data(48)
    eps = 0.1 if norm == "linf" else 0.5
    model = TinyNet()
    seen = {"train": 0, "attack": 0}

    def hook(mod, inputs):
        (xin,) = inputs
        if mod.training:  # the training forward: an adversarial batch of the data
            assert xin.min() >= 0 and xin.max() <= 1
            # match each row to its clean image (shuffle=False, so batches are in order)
            b = seen["train"]
            clean = x[b * 16 : b * 16 + len(xin)]
            d = (xin - clean).flatten(1)
            size = d.abs().max(1).values if norm == "linf" else d.norm(dim=1)
            assert (size <= eps + 1e-6).all()
            assert size.max() > 0.5 * eps  # the attack really moved the inputs
            seen["train"] += 1
        elif torch.is_grad_enabled():  # inside the attack: no parameter gradients
            assert all(p.grad is None for p in mod.parameters())
            seen["attack"] += 1

    model.register_forward_pre_hook(hook)
    model.eval()  # the caller's mode is restored after training
    attack = (
        attacks.PGD(eps=eps, norm=norm, steps=2, alpha_rel=0.5)
        if kind == "pgd"
        else attacks.FGSMRS(eps=eps, norm=norm)
    )
    cfg = _cfg(epochs=1, attack=attack, shuffle=False, runtime=_OFF)
    adversarial_train(model, (x, y), cfg)
    assert seen["train"] == 3
    assert seen["attack"] == 3 * (1 if kind == "fgsm" else 2)
    assert not model.training
    assert all(p.grad is None for p in model.parameters())


def test_training_streams_come_from_derive_seed(monkeypatch):
    # Issue 13: the attack's random starts, the global RNG (dropout) and the
    # per-epoch evaluation / CO check are seeded by the one helper, derive_seed
    # (keys "attack" / "dropout" + rank, "eval" / "co-check" + epoch).
    from landscape import _utils
    from landscape.train import _loop

    seen: dict[str, list[int]] = {"attack": [], "dropout": [], "eval": [], "co": []}
    real_attack, real_eval, real_co = _pgd_mod._last, _loop.evaluate, _loop.co_check

    def spy_attack(atk, model, x, y, generator, train):
        seen["attack"].append(generator.initial_seed())
        seen["dropout"].append(torch.initial_seed())
        return real_attack(atk, model, x, y, generator, train)

    def spy_eval(*a, seed, **kw):
        seen["eval"].append(seed)
        return real_eval(*a, seed=seed, **kw)

    def spy_co(*a, seed, **kw):
        seen["co"].append(seed)
        return real_co(*a, seed=seed, **kw)

    monkeypatch.setattr(_pgd_mod, "_last", spy_attack)
    monkeypatch.setattr(_loop, "evaluate", spy_eval)
    monkeypatch.setattr(_loop, "co_check", spy_co)
    x, y = _data(32)
    adversarial_train(TinyNet(), (x, y), _cfg(seed=5), test_data=_data(16, seed=1))
    d = _utils.derive_seed
    assert set(seen["attack"]) == {d(5, "attack", 0)}
    assert set(seen["dropout"]) == {d(5, "dropout", 0)}
    assert seen["eval"] == [d(5, "eval", 0), d(5, "eval", 1)]
    assert seen["co"] == [d(5, "co-check", 0), d(5, "co-check", 1)]


def test_training_pgd_restores_mode_and_leaves_param_grads():
    model = TinyNet()
    model.train()
    x, y = _data(8)
    PGD2(model, x, y, torch.Generator().manual_seed(0))
    assert model.training and model.drop.training
    assert all(p.grad is None for p in model.parameters())


def test_loss_decreases_and_robust_accuracy_is_logged():
    x, y = _data(256)
    model = TinyNet(dropout=0.0)
    # lr 0.05: the loss falls under every seed 0-5 (at lr 0.2 TinyNet's ReLUs died
    # under two of six seeds' attack streams)
    res = adversarial_train(
        model,
        (x, y),
        _cfg(epochs=4, lr=0.05, attack=attacks.PGD(eps=0.05, steps=2)),
        test_data=_data(64, seed=1),
    )
    loss = res.metrics["train_loss"]
    assert loss[-1] < 0.8 * loss[0]
    m = res.metrics
    for key in ("test_clean_acc", "test_robust_acc"):
        assert ((m[key] >= 0) & (m[key] <= 1)).all()
    assert np.isnan(m["co_pgd_acc"]).all()  # no CO check for a multi-step PGD run
    assert (m["test_robust_acc"] <= m["test_clean_acc"] + 1e-9).all()
    assert m["dist_init"][-1] > 0 and (m["grad_norm_max"] >= m["grad_norm_mean"]).all()


def test_eps_zero_and_no_attack_equal_plain_training():
    x, y = _data(64)
    models = [TinyNet(dropout=0.0) for _ in range(3)]
    for model, attack in zip(models[:2], [attacks.PGD(eps=0.0), None]):
        adversarial_train(
            model, (x, y), _cfg(shuffle=False, attack=attack, runtime=_OFF)
        )
    # manual reference loop: SGD with momentum on the same batches
    ref = models[2]
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        for i in range(0, 64, 16):
            opt.zero_grad()
            F.cross_entropy(ref(x[i : i + 16]), y[i : i + 16]).backward()
            opt.step()
    assert _same(models[0], models[1])
    assert _same(models[0], ref)  # bit-identical to plain training


class _Stop(Exception):
    pass


def _stop_at(key: str, k: int):
    """A callback that interrupts the run when ``state[key] == k``."""

    def cb(state):
        if state[key] == k:
            raise _Stop

    return cb


def _stopped_after_epoch_1(run_dir):
    """A 2-epoch run in ``run_dir`` interrupted after its first epoch: its data and
    config."""
    x, y = _data(48)
    cfg = _cfg(epochs=2)
    cb = _stop_at("epoch", 1)
    with pytest.raises(_Stop):
        adversarial_train(TinyNet(), (x, y), cfg, run_dir=run_dir, callback=cb)
    return x, y, cfg


@pytest.mark.filterwarnings("ignore:possible catastrophic overfitting")
@pytest.mark.parametrize("optimizer, loader", [("sgd", False), ("adam", True)])
def test_exact_resume_after_interruption(tmp_path, optimizer, loader):
    train_data = _data(80)
    if loader:  # a shuffling landscape.data.Batches instead of tensors
        from landscape import data

        train_data = data.batches(*train_data, batch_size=16, shuffle=True, seed=5)
    cfg = _cfg(
        epochs=3,
        optimizer=optimizer,
        lr=0.05 if optimizer == "sgd" else 1e-2,
        runtime={"checkpoint_every": 2, "eval_num": 16, "co_check_num": 8},
    )
    test = _data(16, seed=1)
    ref = TinyNet()
    r_ref = adversarial_train(
        ref, train_data, cfg, test_data=test, run_dir=tmp_path / "ref"
    )

    run = tmp_path / "run"
    # stop mid-epoch 2 (5 batches per epoch): iteration 8 is batch 3 of epoch 2;
    # the last resume point is iteration 6 (checkpoint_every=2)
    with pytest.raises(_Stop):
        adversarial_train(
            TinyNet(),
            train_data,
            cfg,
            test_data=test,
            run_dir=run,
            callback=_stop_at("iteration", 8),
        )
    torch.manual_seed(1234)  # the resumed run must not depend on the caller's RNG
    model = TinyNet(seed=99)  # different init: weights come from the checkpoint
    r = adversarial_train(model, train_data, cfg, test_data=test, run_dir=run)
    assert _same(model, ref)
    for key in ("train_loss", "train_acc", "test_robust_acc", "dist_init", "lr", "eps"):
        assert r.metrics[key].tolist() == r_ref.metrics[key].tolist(), key
    assert len(train.load_run(run).metrics["epoch"]) == 3


def test_config_is_plain_nested_dataclasses():
    cfg = TrainConfig(
        epochs=2,
        attack=attacks.PGD(eps=0.3, steps=10),
        dataset=train.DataRecord("fashion-mnist", num_train=500),
        runtime=Runtime(amp="off", checkpoint_every=3),
    )
    # built and read as written: no flat reads, no routing
    assert (cfg.attack.eps, cfg.runtime.amp, cfg.runtime.checkpoint_every) == (
        0.3,
        "off",
        3,
    )
    assert cfg.dataset.name == "fashion-mnist" and cfg.dataset.num_train == 500
    for flat in ("amp", "eps", "steps", "science"):
        assert not hasattr(cfg, flat), flat
    # config.json round-trips the attack value (nested, JSON)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["attack"] == cfg.attack.to_dict() and d["runtime"]["amp"] == "off"
    back = TrainConfig.from_dict(d)
    assert back == cfg and back.to_dict() == cfg.to_dict()
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()
    assert TrainConfig().attack is None  # standard training
    fg = _cfg(attack=attacks.FGSMRS(eps=0.1, alpha=0.05))
    assert TrainConfig.from_dict(fg.to_dict()) == fg
    with pytest.raises(TypeError):
        TrainConfig(epochz=3)
    with pytest.raises(TypeError, match="attack value"):
        TrainConfig(attack="pgd")
    with pytest.raises(TypeError, match="attack value"):
        Runtime(eval_attack="pgd")
    with pytest.raises(ValueError, match="unknown loss_fn"):
        _cfg(loss_fn="hinge")
    with pytest.raises(ValueError, match="norm"):  # one threat model per run
        _cfg(attack=attacks.PGD(eps=0.5, norm="l2"), runtime={"eval_attack": PGD2})
    with pytest.raises(ValueError, match="attack_train_mode"):
        _cfg(attack=attacks.APGD(eps=0.1), attack_train_mode=True)
    with pytest.raises(ValueError, match="migrated"):
        TrainConfig.from_dict({**cfg.to_dict(), "eps": 0.3, "steps": 10})


def test_resume_allows_runtime_changes_and_refuses_old_config_files(tmp_path):
    x, y, cfg = _stopped_after_epoch_1(tmp_path)
    ref = TinyNet()
    adversarial_train(ref, (x, y), cfg)
    model = TinyNet()
    # runtime settings may change on resume; config.json then records them
    adversarial_train(model, (x, y), _rt(cfg, eval_num=8), run_dir=tmp_path)
    assert _same(model, ref)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["runtime"]["eval_num"] == 8
    # a config.json of the old flat format is not read: migrate it
    old = tmp_path / "old"
    old.mkdir()
    flat = {**cfg.to_dict(), **cfg.to_dict()["runtime"], "eps": 0.1, "steps": 2}
    (old / "config.json").write_text(json.dumps(flat))
    with pytest.raises(train.RunFolderError, match="cannot read.*migrated"):
        adversarial_train(TinyNet(), (x, y), cfg, run_dir=old)


def test_loss_fn_is_the_training_loss():
    x, y = _data(64)
    nets = [TinyNet(dropout=0.0) for _ in range(3)]
    base = dict(shuffle=False, attack=None, runtime=_OFF)
    adversarial_train(nets[0], (x, y), _cfg(loss_fn="mse", **base))

    def mse(out, t):
        return (out - F.one_hot(t, 2).float()).pow(2).sum(1).mean()

    res = adversarial_train(nets[1], (x, y), _cfg(loss_fn=mse, **base))
    assert (
        res.config["loss_fn"].startswith("callable:") and "mse" in res.config["loss_fn"]
    )
    ref = nets[2]
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        for i in range(0, 64, 16):
            opt.zero_grad()
            mse(ref(x[i : i + 16]), y[i : i + 16]).backward()
            opt.step()
    for net in nets[:2]:
        for p, q in zip(net.parameters(), ref.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    # a config read back from a file names the callable but cannot run it
    back = TrainConfig.from_dict(res.config)
    with pytest.raises(ValueError, match="custom loss_fn.*pass that callable"):
        adversarial_train(TinyNet(), (x, y), back)
    # a training attack without a loss of its own ascends the configured loss
    seen = []
    real = _pgd_mod._last

    def spy(atk, *a):
        seen.append(atk.loss)
        return real(atk, *a)

    _pgd_mod._last = spy
    try:
        off = {"runtime": _OFF}
        adversarial_train(TinyNet(), (x, y), _cfg(epochs=1, loss_fn="mse", **off))
        adversarial_train(TinyNet(), (x, y), _cfg(epochs=1, **off))
        cw = attacks.PGD(eps=0.1, steps=2, loss="cw")  # its own loss: kept
        adversarial_train(TinyNet(), (x, y), _cfg(epochs=1, loss_fn="mse", attack=cw))
    finally:
        _pgd_mod._last = real
    assert len(seen) == 12  # 4 batches a run
    assert set(map(callable, seen[:4])) == {True}  # the summed training loss
    assert seen[4:8] == [None] * 4  # the default: the summed cross-entropy
    assert seen[8:] == ["cw"] * 4


def test_robust_accuracy_comes_from_the_evaluation_attack_and_failures_raise(
    monkeypatch,
):
    # the per-epoch evaluation attack (its eps replaced by the target) runs batch by
    # batch on the evaluation data; its failures raise (no silent fallback)
    calls = []
    original = attacks.PGD.__call__

    def spy(self, model, x, y, generator=None, **kw):
        if self.keep == "best":
            calls.append((self.eps, self.steps, len(y)))
        return original(self, model, x, y, generator, **kw)

    monkeypatch.setattr(attacks.PGD, "__call__", spy)
    quick3 = evaluate.preset_attacks("quick", 0.3, steps=3)[0]  # its eps is replaced
    cfg = _cfg(epochs=1, runtime={"eval_attack": quick3, "co_check_num": 0})
    res = adversarial_train(TinyNet(), _data(32), cfg, test_data=_data(32, 1))
    assert 0 <= res.metrics["test_robust_acc"][0] <= res.metrics["test_clean_acc"][0]
    # scheduled eps == target: evaluated once, every evaluation example attacked
    assert [c[:2] for c in calls] == [(0.1, 3)] * len(calls)
    assert sum(c[2] for c in calls) == 32  # eval_num

    def broken(self, *a, **kw):
        if self.keep == "best":
            raise RuntimeError("attack failed")
        return original(self, *a, **kw)

    monkeypatch.setattr(attacks.PGD, "__call__", broken)
    with pytest.raises(RuntimeError, match="attack failed"):  # no silent fallback
        adversarial_train(TinyNet(), _data(32), cfg, test_data=_data(32, 1))


def test_run_files_load_with_weights_only(tmp_path, monkeypatch):
    # resume.pt held numpy's RNG state as an ndarray, so it needed the unsafe
    # pickle loader; every file of a run folder now loads with weights_only=True,
    # and a resume through such a loader is still exact.
    x, y = _data(48)
    cfg = _cfg(
        epochs=2, periods=2, eps_schedule="periodic", runtime={"checkpoint_every": 1}
    )
    test = _data(16, 1)
    ref = TinyNet()
    adversarial_train(ref, (x, y), cfg, test_data=test)
    cb = _stop_at("iteration", 4)
    with pytest.raises(_Stop):
        adversarial_train(
            TinyNet(), (x, y), cfg, test_data=test, run_dir=tmp_path, callback=cb
        )
    for path in sorted(tmp_path.glob("*.pt")):
        torch.load(path, weights_only=True)
    real = torch.load

    def safe_load(*a, **kw):
        kw["weights_only"] = True
        return real(*a, **kw)

    monkeypatch.setattr(torch, "load", safe_load)
    model = TinyNet(seed=5)
    adversarial_train(model, (x, y), cfg, test_data=test, run_dir=tmp_path)
    assert _same(model, ref)
    for path in sorted(tmp_path.glob("*.pt")):
        torch.load(path, weights_only=True)


def test_resume_from_end_of_epoch_and_other_config(tmp_path):
    x, y, cfg = _stopped_after_epoch_1(tmp_path)
    with pytest.raises(train.RunFolderError, match="another configuration.*lr"):
        adversarial_train(
            TinyNet(), (x, y), dataclasses.replace(cfg, lr=0.2), run_dir=tmp_path
        )
    with pytest.raises(train.RunFolderError, match="already holds a run"):
        adversarial_train(TinyNet(), (x, y), cfg, run_dir=tmp_path, resume=False)
    ref = TinyNet()
    adversarial_train(ref, (x, y), cfg)
    model = TinyNet()
    adversarial_train(model, (x, y), cfg, run_dir=tmp_path)
    assert _same(model, ref)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    x, y = _data(32)
    cfg = _cfg(epochs=1, runtime=_OFF)
    adversarial_train(TinyNet(), (x, y), cfg, run_dir=tmp_path)
    path = tmp_path / "resume.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(io.CorruptFileError, match="corrupt or truncated"):
        adversarial_train(TinyNet(), (x, y), cfg, run_dir=tmp_path)
    (tmp_path / "final.pt").write_bytes(b"garbage")
    with pytest.raises(io.CorruptFileError):
        checkpoints.load_model(tmp_path, TinyNet())


def test_periodic_run_checkpoints_form_ensemble(tmp_path):
    x, y = _data(48)
    cfg = _cfg(
        epochs=3,
        periods=[0, 1, 2, 3],
        eps_schedule="periodic",
        lr_schedule="periodic",
        runtime={"eval_num": 16},
    )
    model = TinyNet(dropout=0.0)
    res = adversarial_train(model, (x, y), cfg, run_dir=tmp_path)
    assert [p.rsplit("/", 1)[-1] for p in res.checkpoints] == [
        "ckpt_epoch0001.pt",
        "ckpt_epoch0002.pt",
        "ckpt_epoch0003.pt",
    ]
    members = checkpoints.load_members(tmp_path, TinyNet(dropout=0.0))
    assert len(members) == 3 and not any(m.training for m in members)
    assert _same(members[-1], model)
    assert not _same(members[0], model)
    ens = checkpoints.load_model(tmp_path, TinyNet(dropout=0.0), ensemble=True)
    probs = torch.stack([m(x).softmax(1) for m in members]).mean(0)
    torch.testing.assert_close(ens(x).softmax(1), probs)
    assert _same(checkpoints.load_model(tmp_path, TinyNet(dropout=0.0)), model)
    # periodic eps restarts at 0 each period (per-iteration update): mean eps < target
    assert (res.metrics["eps_mean"] < cfg.attack.eps).all()


def test_metrics_files_hold_the_logged_keys(tmp_path):
    x, y = _data(32)
    cfg = _cfg(epochs=2, eps_schedule="linear", schedule_update="epoch")
    eps_seen = []
    adversarial_train(
        TinyNet(),
        (x, y),
        cfg,
        test_data=_data(32, 1),
        run_dir=tmp_path,
        callback=lambda s: eps_seen.append(s["eps"]),
    )
    assert eps_seen == [0.0, 0.0, 0.1, 0.1]  # linear warm-up over 1 epoch, per epoch
    keys = {
        "epoch",
        "iteration",
        "eps",
        "eps_mean",
        "lr",
        "train_loss",
        "train_acc",
        "grad_norm_mean",
        "grad_norm_max",
        "dist_init",
        "test_clean_acc",
        "test_clean_loss",
        "test_robust_acc",
        "test_robust_acc_sched",
        "co_fgsm_acc",
        "co_pgd_acc",
        "co_flag",
        "time",
        "time_total",
    }
    rows = [
        json.loads(line)
        for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 2 and keys <= set(rows[0])
    with open(tmp_path / "metrics.csv") as f:
        assert keys <= set(next(csv.reader(f)))
    assert json.loads((tmp_path / "config.json").read_text()) == cfg.to_dict()
    res = train.load_run(tmp_path)
    assert res.metrics["epoch"].tolist() == [1, 2]
    assert res.metrics["test_robust_acc_sched"][0] == res.metrics["test_clean_acc"][0]
    saved = res.save(tmp_path / "result.npz")
    back = train.TrainResult.load(saved)
    assert back.metrics["train_loss"].tolist() == res.metrics["train_loss"].tolist()


def test_nan_loss_names_epoch_and_batch():
    x, y = _data(32)
    with pytest.raises(
        train.DivergedError, match=r"epoch 1, batch 2/2.*lower the learning rate"
    ):  # a learning rate that overflows the weights at the first step
        cfg = _cfg(shuffle=False, attack=None, runtime={"eval_num": 0}, lr=3e38)
        adversarial_train(TinyNet(), (x, y), cfg)
    x[20] = math.nan  # NaN inputs are refused before training, not blamed on the lr
    with pytest.raises(NonFiniteError, match=r"batch 1 holds inputs that are not fin"):
        cfg = _cfg(shuffle=False, attack=None, runtime={"eval_num": 0})
        adversarial_train(TinyNet(), (x, y), cfg)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: attacks.PGD(eps=-0.1), "eps must be"),
        (lambda: _cfg(attack="pgd"), "attack value"),
        (lambda: _cfg(optimizer="rmsprop"), "unknown optimizer"),
        (
            lambda: attacks.PGD(eps=0.1, alpha_rel=0.0),
            "step size alpha_rel must be a finite number > 0",
        ),
        (
            lambda: _cfg(eps_schedule="warp"),
            "unknown eps schedule 'warp'; choose one of",
        ),
        (
            lambda: _cfg(lr_schedule="periodic", periods=[0, 1]),
            "periods must cover the epochs",
        ),
        (lambda: attacks.PGD(eps=0.1, steps=0), "steps must be an integer >= 1"),
        (lambda: _cfg(epochs=0), "epochs must be >= 1"),
        (lambda: _cfg(runtime={"eval_attack": "pgd"}), "attack value"),
    ],
)
def test_bad_config_is_a_clear_error(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_bad_data_is_a_clear_error():
    with pytest.raises(TypeError, match=r"\(x, y\) pair of tensors"):
        adversarial_train(TinyNet(), 3, _cfg())
    with pytest.raises(ValueError, match="differ in length"):
        adversarial_train(
            TinyNet(), (torch.rand(4, 1, 6, 6), torch.zeros(3).long()), _cfg()
        )


class _Probs(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = TinyNet(dropout=0.0)

    def forward(self, x):
        return self.net(x).softmax(1)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda x, y: ((x * 255).to(torch.uint8), y), r"uint8.*x.float\(\) / 255"),
        (lambda x, y: (x * 255, y), r"not \[0, 1\]: divide the images by 255"),
        (lambda x, y: (x, y.float()), "pass class indices as integers"),
        (lambda x, y: (x, F.one_hot(y, 2)), r"shape \(\d+, 2\).*1-D tensor"),
        (lambda x, y: (x, F.one_hot(y, 2).float()), r"one-hot.*argmax"),
        (lambda x, y: (x, y + 3), r"labels in \[3, 4\] but the model's classes"),
        (lambda x, y: (x.permute(0, 2, 3, 1), y), r"channels-last.*permute"),
    ],
)
def test_bad_training_input_is_a_clear_error(change, match):
    # through the package's one batches owner (landscape._batches)
    x, y = change(*_data(32))
    with pytest.raises(ValueError, match="data: batch 0.*" + match):
        adversarial_train(TinyNet(), (x, y), _cfg(epochs=1, runtime={"eval_num": 0}))
    with pytest.raises(ValueError, match="test_data: batch 0.*" + match):
        adversarial_train(TinyNet(), _data(32), _cfg(epochs=1), test_data=(x, y))


def test_empty_batch_and_probability_model():
    x, y = _data(32)
    loader = [(x[:16], y[:16]), (x[:0], y[:0])]
    with pytest.raises(ValueError, match="batch size 0"):
        adversarial_train(TinyNet(), loader, _cfg(epochs=1, runtime={"eval_num": 0}))
    with pytest.warns(UserWarning, match="looks like probabilities"):
        adversarial_train(_Probs(), (x, y), _cfg(epochs=1, runtime=_OFF))


def test_presets_and_cli_errors(capsys):
    from landscape.train.__main__ import main

    assert all(isinstance(c, TrainConfig) for c in train.PRESETS.values())
    cfg = train.preset("mnist-lenet")
    atk = cfg.attack
    assert (atk.eps, cfg.optimizer, cfg.lr, atk.steps) == (0.4, "adam", 1e-4, 50)
    assert atk.step_sizes() == (pytest.approx(0.01),)  # 0.01 at eps 0.4, follows eps
    assert cfg.runtime.eval_attack.steps == 20 and cfg.dataset.name == "mnist"
    with pytest.warns(UserWarning, match="whole epoch"):  # 200 / 3 epochs a period
        cfg = dataclasses.replace(
            train.preset("cifar10-resnet18"),
            eps_schedule="periodic",
            lr_schedule="periodic",
            lr_kwargs={},
            periods=3,
        )
    assert cfg.attack.step_sizes() == (pytest.approx(2 / 255),)
    assert cfg.model == "resnet18" and cfg.period_end_epochs() == [67, 133, 200]
    s = train.smoke(cfg)
    assert s.epochs <= 2 and s.attack.steps <= 3 and s.period_end_epochs() == [1, 2]
    assert s.runtime.eval_attack.steps <= 3
    with pytest.raises(ValueError, match="unknown preset 'x'; choose one of"):
        train.preset("x")
    assert main(["nope"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["mnist-lenet", "--eps-schedule", "warp"]) == 2
    assert "unknown eps schedule" in capsys.readouterr().err


def test_cli_smoke_run(tmp_path, data_root, monkeypatch):
    pytest.importorskip("landscape.data")
    pytest.importorskip("landscape.models")
    from landscape.train.__main__ import main

    monkeypatch.setenv("LANDSCAPE_DATA", str(data_root))
    rc = main(
        [
            "mnist-lenet",
            "--smoke",
            "--num-train",
            "128",
            "--num-test",
            "32",
            "--run-dir",
            str(tmp_path),
            "--eps-schedule",
            "cosine",
        ]
    )
    assert rc == 0
    res = train.load_run(tmp_path)
    assert len(res.metrics["epoch"]) == res.config["epochs"]
    assert res.config["eps_schedule"] == "cosine"
    members = checkpoints.load_members(tmp_path)
    assert len(members) == 1


def test_train_result_state_is_independent_of_model_copy():
    # the returned metrics do not alias the model; the model is trained in place
    x, y = _data(32)
    model = TinyNet()
    before = copy.deepcopy(model)
    adversarial_train(model, (x, y), _cfg(epochs=1, runtime={"eval_num": 0}))
    assert not _same(model, before)


def test_curve_plots_draw_the_logged_values(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from landscape import plot

    x, y = _data(32)
    cfg = _cfg(epochs=2, eps_schedule="periodic", lr_schedule="periodic", periods=2)
    res = adversarial_train(
        TinyNet(), (x, y), cfg, test_data=_data(16, 1), run_dir=tmp_path
    )
    ax = plot.plot_learning_curves({"a": res, "b": str(tmp_path)})
    assert len(ax.lines) == 6
    assert (
        ax.lines[2].get_ydata().tolist()
        == (100 * res.metrics["test_robust_acc"]).tolist()
    )
    ax = plot.plot_eps_lr(cfg)
    ts, eps = ax.lines[0].get_data()
    assert eps.max() == pytest.approx(cfg.attack.eps) and eps[0] == 0
    assert ax.lr_axis.lines[0].get_ydata()[0] == pytest.approx(cfg.lr)
    ax = plot.plot_distance_from_init(res)
    assert ax.lines[0].get_ydata().tolist() == res.metrics["dist_init"].tolist()
    axes = plot.plot_run(tmp_path)
    assert axes.shape == (2, 2)
    with pytest.raises(KeyError, match="no metric 'nope'"):
        plot.plot_learning_curves(res, keys=["nope"])
    plt.close("all")


@dataclasses.dataclass(frozen=True)
class _Nothing(attacks.Attack):
    """An attack that finds nothing: the clean batch (a gradient-masked FGSM)."""

    def _run(self, model, x, y, gen, bar):
        return x.clone(), {}


def test_catastrophic_overfitting_flag_and_warning(monkeypatch):
    # Simulate a gradient-masked model: FGSM finds nothing (returns the clean batch)
    # while PGD still finds adversarial examples (here: PGD with a 6x budget) ->
    # FGSM acc >> PGD acc -> flag.
    from landscape.train import _eval

    real = _eval.co_attacks

    def masked(cfg, eps):
        return _Nothing(eps=eps), real(cfg, 6 * eps)[1]

    monkeypatch.setattr(_eval, "co_attacks", masked)
    x, y = _data(256)
    # FGSM-RS training at eps=0.05, the check at the trained eps
    cfg = _cfg(
        epochs=2,
        lr=0.2,
        attack=attacks.FGSMRS(eps=0.05),
        runtime={"co_check_num": 64, "eval_num": 0, "co_threshold": 0.1},
    )
    with pytest.warns(UserWarning, match="catastrophic overfitting at epoch") as rec:
        res = adversarial_train(TinyNet(dropout=0.0), (x, y), cfg, progressbar=True)
    msg = str(rec[0].message)
    assert "FGSM-RS training" in msg and "eps warm-up" in msg  # constant eps: advise it
    assert "a step no larger than eps" in msg  # alpha = 1.25 eps
    m = res.metrics
    assert m["co_flag"].any()
    flagged = m["co_flag"].astype(bool)
    assert (m["co_fgsm_acc"][flagged] - m["co_pgd_acc"][flagged] > 0.1).all()
    # without the simulated masking, PGD accuracy never exceeds FGSM accuracy by much
    monkeypatch.undo()
    res = adversarial_train(TinyNet(dropout=0.0), (x, y), cfg)
    assert (res.metrics["co_pgd_acc"] <= res.metrics["co_fgsm_acc"] + 0.1).all()


def test_catastrophic_overfitting_check_only_where_it_means_something(monkeypatch):
    # Issue 16.6: during the eps warm-up of a PGD run the check compared FGSM with
    # PGD at the *target* eps and advised "use PGD training". Catastrophic
    # overfitting is a failure of single-step training: a PGD run is not checked,
    # and a single-step run is checked at the eps it is trained at.
    from landscape.train import _eval

    seen = []
    real = _eval.co_attacks

    def masked(cfg, eps):  # records eps; breaks the model (6x eps)
        seen.append(eps)
        return _Nothing(eps=eps), real(cfg, min(6 * eps, 1.0))[1]

    monkeypatch.setattr(_eval, "co_attacks", masked)
    x, y = _data(128)
    warm = dict(eps_schedule="linear", eps_kwargs={"warmup": 3}, epochs=3)
    rt = {"co_check_num": 64, "eval_num": 0, "co_threshold": 0.0}
    cfg = _cfg(attack=attacks.PGD(eps=0.3, steps=2), runtime=rt, **warm)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = adversarial_train(TinyNet(dropout=0.0), (x, y), cfg)
    assert not res.metrics["co_flag"].any()
    assert np.isnan(res.metrics["co_pgd_acc"]).all() and not seen
    for kw in (
        dict(attack=None),
        dict(attack=attacks.FGSMRS(eps=0.0), eps_schedule="constant", eps_kwargs={}),
    ):
        res = adversarial_train(
            TinyNet(dropout=0.0), (x, y), dataclasses.replace(cfg, **kw)
        )
        assert not res.metrics["co_flag"].any()
    assert not seen
    # FGSM-RS with a warm-up: checked at the scheduled eps of each epoch's end
    fgsm = dataclasses.replace(cfg, attack=attacks.FGSMRS(eps=0.3, alpha_rel=1.0))
    with pytest.warns(UserWarning, match="catastrophic overfitting") as rec:
        res = adversarial_train(TinyNet(dropout=0.0), (x, y), fgsm)
    assert seen == pytest.approx(res.metrics["eps"].tolist())
    assert seen[0] < 0.3  # still warming up after the first epoch
    msg = str(rec[0].message)
    assert "FGSM-RS training" in msg and "multi-step PGD" in msg
    assert "warm-up" not in msg and "a step no larger" not in msg  # it has both


@pytest.mark.gpu
def test_cuda_bf16_channels_last_training():
    x, y = _data(128)
    model = TinyNet(dropout=0.0).cuda()
    cfg = _cfg(
        epochs=3,
        lr=0.2,
        attack=attacks.PGD(eps=0.05, steps=2),
        runtime={"amp": "bf16"},
    )
    res = adversarial_train(model, (x, y), cfg, test_data=_data(64, seed=1))
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.conv.weight.dtype == torch.float32  # autocast leaves weights alone
    loss = res.metrics["train_loss"]
    assert np.isfinite(loss).all() and loss[-1] < loss[0]


@pytest.mark.slow
def test_compile_matches_eager_closely():
    x, y = _data(64)
    a, b = TinyNet(dropout=0.0), TinyNet(dropout=0.0)
    attack = attacks.PGD(eps=0.1, steps=2, random_start=False)
    cfg = _cfg(epochs=1, attack=attack, runtime=_OFF)
    adversarial_train(a, (x, y), cfg)
    adversarial_train(b, (x, y), _rt(cfg, compile=True))
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([t.detach().flatten() for t in model.state_dict().values()])


@pytest.mark.filterwarnings("ignore:possible catastrophic overfitting")
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_seeded_runs_are_bit_identical_whatever_the_caller_state(optimizer):
    # Seeded CPU training is a function of (model init, data, config, thread count):
    # PGD with random starts at eps > 0, dropout (global RNG), per-epoch robust
    # evaluation and the CO check, with the caller's global RNG in another state and
    # oneDNN switched off by the caller before the second run.
    x, y = _data(64)
    test = _data(16, seed=1)
    cfg = _cfg(
        optimizer=optimizer,
        lr=0.05 if optimizer == "sgd" else 1e-2,
        attack=attacks.PGD(eps=0.2, steps=3, random_start=True),
        runtime={"eval_num": 16, "co_check_num": 16},
    )
    runs = []
    prev = torch.backends.mkldnn.enabled
    try:
        for draws, onednn in ((0, True), (7, False)):
            model = TinyNet(seed=3)  # same init; also resets the global RNG
            torch.rand(draws)  # the caller used its global RNG in between
            torch.backends.mkldnn.enabled = onednn
            state = torch.get_rng_state()
            res = adversarial_train(model, (x, y), cfg, test_data=test)
            assert torch.backends.mkldnn.enabled is onednn  # restored
            assert torch.equal(torch.get_rng_state(), state)  # caller's RNG untouched
            runs.append((_flat(model), res.metrics))
    finally:
        torch.backends.mkldnn.enabled = prev
    (w1, m1), (w2, m2) = runs
    assert not torch.equal(w1, _flat(TinyNet(seed=3)))  # it trained
    assert torch.equal(w1, w2)  # bitwise
    keys = [k for k in m1 if not k.startswith("time")]
    assert sorted(keys) == sorted(k for k in m2 if not k.startswith("time"))
    assert "test_robust_acc" in keys and "co_pgd_acc" in keys
    for k in keys:
        np.testing.assert_array_equal(m1[k], m2[k], err_msg=k)


def test_fractional_period_boundaries_warn():
    # 3 periods over 10 epochs end at 3.33 / 6.67: the end-of-period checkpoints
    # (epoch ends 3 and 7) would not be end-of-period models, so say so
    with pytest.warns(UserWarning, match="whole epoch"):
        cfg = _cfg(epochs=10, eps_schedule="periodic", periods=3)
    assert cfg.period_end_epochs() == [3, 7, 10]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _cfg(epochs=9, eps_schedule="periodic", periods=3)


def test_a_locked_run_folder_is_refused_and_the_lock_released(tmp_path):
    """A second ``adversarial_train`` into a run folder that a live process holds
    raises ``io.LockedError`` naming the holder's pid and writes nothing; the lock is
    released after an interrupted run (which then resumes) and after a finished one
    (fails before adversarial_train locked its run folder: only the CLI did)."""
    import os

    x, y = _data(32)
    cfg = _cfg(epochs=1, batch_size=16, runtime={"checkpoint_every": 1})
    run = tmp_path / "run"
    run.mkdir()
    with io.lock(run), pytest.raises(io.LockedError, match=f"process {os.getpid()}@"):
        adversarial_train(TinyNet(), (x, y), cfg, run_dir=run)
    assert not (run / "config.json").exists()

    def stop(state):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        adversarial_train(TinyNet(), (x, y), cfg, run_dir=run, callback=stop)
    assert not (run / ".lock").exists() and (run / "config.json").exists()
    adversarial_train(TinyNet(), (x, y), cfg, run_dir=tmp_path / "new" / "run")
    r = adversarial_train(TinyNet(), (x, y), cfg, run_dir=run)
    assert not (run / ".lock").exists() and len(r.metrics["epoch"]) == 1


_SYNC_CASES = {
    "pgd": {},
    "fgsm-rs": {"attack": attacks.FGSMRS(eps=0.1)},
    "trades": {"objective": train.TRADES(beta=6.0)},
    "mart-awp-ema": {
        "objective": train.MART(beta=5.0),
        "awp": train.AWP(gamma=0.02),
        "averaging": train.EMA(decay=0.9, bn="copy"),
    },
    "swa": {"averaging": train.SWA(start=1, bn="copy")},
    "curve": {},
}


@pytest.mark.parametrize("name", sorted(_SYNC_CASES))
def test_no_host_sync_per_training_step(name, monkeypatch):
    """A training step reads nothing back from the device (issue 24): the loss,
    accuracy and gradient-norm sums and the divergence check stay on the device and
    are read once per epoch, so the host reads of an epoch (its end included) do not
    grow with its number of steps. Counted in the second epoch (the first also
    validates the caller's batches in host memory). Before, every step read its
    loss, correct count and gradient norm with ``.tolist()``. The curve's draw of t
    reads the run's CPU generator (host memory, not a device read): not counted."""
    from _helpers import HostReads

    from landscape import connectivity

    kw = dict(_SYNC_CASES[name])
    counts = []
    for n in (64, 128):  # 4 and 8 steps per epoch
        x, y = _data(n)
        model = TinyNet(dropout=0.0)
        if name == "curve":
            model = connectivity.CurveModel(model, TinyNet(seed=1, dropout=0.0))
        cfg = tiny_train_config(epochs=2, **kw)
        reads = HostReads(monkeypatch)
        if name == "curve":
            real = model.resample

            def resample(gen, real=real, reads=reads):
                assert gen.device.type == "cpu"  # host memory: no device read
                on, reads.on = reads.on, False
                real(gen)
                reads.on = on

            model.resample = resample

        def start(info, n=n, reads=reads):
            if info["epoch"] == 0 and info["batch"] == n // 16 - 1:
                reads.count, reads.on = 0, True

        adversarial_train(model, (x, y), cfg, callback=start)
        counts.append(reads.count)
        monkeypatch.undo()
    assert counts[0] == counts[1] and counts[0] <= 16, counts


def test_divergence_found_at_a_resume_point(tmp_path):
    """The device-side divergence record is read at a resume point too: a run whose
    loss becomes inf at batch 3 of 6 stops at the resume point after batch 4
    (checkpoint_every=4), naming batch 3, and writes no resume.pt."""
    x, y = _data(96)
    seen = []

    cfg = _cfg(
        shuffle=False,
        attack=None,
        epochs=1,
        runtime={"eval_num": 0, "co_check_num": 0, "checkpoint_every": 4},
    )
    model = TinyNet(dropout=0.0)

    class Blows(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model
            self.calls = 0

        def forward(self, x):
            out = self.net(x)
            if self.training:
                self.calls += 1
                if self.calls >= 3:
                    out = out * math.inf
            return out

    with pytest.raises(train.DivergedError, match=r"epoch 1, batch 3/6 \(iteration 3"):
        adversarial_train(
            Blows(), (x, y), cfg, run_dir=tmp_path, callback=lambda i: seen.append(i)
        )
    assert [i["batch"] for i in seen] == [0, 1, 2, 3]  # stopped at the resume point
    assert all(torch.is_tensor(i["loss"]) for i in seen)  # not read per step
    assert not (tmp_path / "resume.pt").exists()


def test_crop_flip_of_shards_is_the_whole_batch():
    """A rank's shard augmented with ``part=(offset, total)`` is its rows of the
    augmented whole batch (the draws are the whole batch's): under DDP each rank
    moves and augments only its shard (issue 24)."""
    x = torch.rand(7, 2, 5, 5, generator=torch.Generator().manual_seed(0))
    whole = train.crop_flip(x, torch.Generator().manual_seed(1), padding=2)
    parts = [
        train.crop_flip(
            x[a:b], torch.Generator().manual_seed(1), padding=2, part=(a, 7)
        )
        for a, b in ((0, 4), (4, 7))
    ]
    assert torch.equal(torch.cat(parts), whole)
    with pytest.raises(ValueError, match="does not hold"):
        train.crop_flip(x, torch.Generator(), part=(3, 7))


def test_bf16_is_explicit_and_measured_in_float32():
    """Precision policy (issue 24): float32 unless ``amp="bf16"`` is asked for (no
    "auto" that turned bf16 on for any CUDA card), and a bf16 run's per-epoch
    accuracy and loss are measured in float32: the logged test loss is the float32
    loss of the trained weights, not the bf16 one (before, the evaluation ran under
    the training autocast)."""
    assert Runtime().amp == "off"
    with pytest.raises(ValueError, match="amp must be 'off'"):
        Runtime(amp="auto")
    x, y = _data(64)
    xt, yt = _data(64, seed=1)
    rt = {"amp": "bf16", "eval_num": 64, "co_check_num": 0}
    model = TinyNet(dropout=0.0)
    res = adversarial_train(
        model, (x, y), _cfg(epochs=1, runtime=rt), test_data=(xt, yt)
    )
    off = adversarial_train(
        TinyNet(dropout=0.0), (x, y), _cfg(epochs=1, runtime={**rt, "amp": "off"})
    )
    assert res.metrics["train_loss"][0] != off.metrics["train_loss"][0]  # bf16 trained
    model.eval()
    with torch.no_grad():
        fp32 = float(F.cross_entropy(model(xt), yt))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = float(F.cross_entropy(model(xt).float(), yt))
    assert abs(bf16 - fp32) > 1e-4 * fp32  # the two precisions are told apart
    assert res.metrics["test_clean_loss"][0] == pytest.approx(fp32, rel=1e-6)

"""Tests for landscape.connectivity: curves, BatchNorm re-estimation, curve training
through the trainer (the curve model, exact resume), scans and barriers, the caller's
models left alone."""

from __future__ import annotations

import copy
import dataclasses
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from landscape import attacks, io, train
from landscape import connectivity as mc
from landscape.train import RunFolderError, Runtime, TrainConfig, adversarial_train

_OFF = Runtime(eval_num=0, co_check_num=0)


def _curve_cfg(**kw) -> TrainConfig:
    """Curve training through the trainer: no per-epoch evaluation or CO check."""
    return TrainConfig(**{"runtime": _OFF, **kw})


def _xor(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x, ((x[:, 0] * x[:, 1]) > 0).long()


def _mlp(hidden=16, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 2)).double()


class BNNet(nn.Module):
    """Linear -> BN -> ReLU -> Dropout -> Linear -> BN -> Linear (float64)."""

    def __init__(self, seed=0, dropout=0.2):
        super().__init__()
        torch.manual_seed(seed)
        self.fc1 = nn.Linear(3, 5)
        self.bn1 = nn.BatchNorm1d(5)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(5, 4)
        self.bn2 = nn.BatchNorm1d(4)
        self.fc3 = nn.Linear(4, 2)
        self.double()

    def forward(self, x):
        h = self.drop(F.relu(self.bn1(self.fc1(x))))
        return self.fc3(self.bn2(self.fc2(h)))


def _bn_pair():
    a, b = BNNet(0), BNNet(1)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in (a, b):
            for bn in (m.bn1, m.bn2):
                bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
                bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
                bn.num_batches_tracked.fill_(
                    int(torch.randint(1, 50, (1,), generator=g))
                )
    return a, b


def _trained_mirror_pair():
    """A small tanh MLP fitted to XOR, and the same network with its hidden units in
    reversed order: two separated minima with the same loss (mirror images under the
    permutation), with a high barrier on the straight line between them."""
    x, y = _xor()
    a = _mlp()
    opt = torch.optim.Adam(a.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(a(x), y).backward()
        opt.step()
    a.zero_grad(set_to_none=True)
    b = _mlp()
    p = torch.arange(16).flip(0)
    with torch.no_grad():
        b[0].weight.copy_(a[0].weight[p])
        b[0].bias.copy_(a[0].bias[p])
        b[2].weight.copy_(a[2].weight[:, p])
        b[2].bias.copy_(a[2].bias)
    return a, b, (x, y)


def _snapshot(*models):
    return [
        (copy.deepcopy(m.state_dict()), [mm.training for mm in m.modules()])
        for m in models
    ]


def _assert_untouched(models, snap):
    for m, (state, modes) in zip(models, snap):
        for k, v in m.state_dict().items():
            assert torch.equal(v, state[k]), f"{k} changed"
        assert [mm.training for mm in m.modules()] == modes
        assert all(p.grad is None for p in m.parameters())


# ----------------------------------------------------------------------- curves


@pytest.mark.parametrize(
    "kind,num_bends",
    [("line", 0), ("bezier", 1), ("bezier", 3), ("polychain", 1), ("polychain", 2)],
)
def test_curve_passes_exactly_through_endpoints(kind, num_bends):
    a, b = _bn_pair()
    curve = mc.init_curve(a, b, kind=kind, num_bends=num_bends)
    g = torch.Generator().manual_seed(0)
    bends = tuple(
        {
            k: v + torch.randn(v.shape, generator=g, dtype=v.dtype)
            for k, v in bend.items()
        }
        for bend in curve.bends
    )
    curve = curve.replace(bends=bends)  # bends off the line: exactness is not luck
    for t, model in ((0.0, a), (1.0, b)):
        state = curve.state(t)
        ref = model.state_dict()
        assert state.keys() == ref.keys()
        for k in ref:
            assert torch.equal(state[k], ref[k]), (t, k)
            assert state[k].data_ptr() != ref[k].data_ptr()  # copies, not aliases


def test_untrained_curves_trace_the_line_and_weights_sum_to_one():
    a, b = _mlp(seed=0), _mlp(seed=1)
    line = mc.init_curve(a, b, kind="line")
    for kind, n in (("bezier", 1), ("bezier", 2), ("polychain", 3)):
        c = mc.init_curve(a, b, kind=kind, num_bends=n)
        for t in (0.1, 0.37, 0.5, 0.9):
            assert sum(mc.curve_weights(kind, t, n)) == pytest.approx(1.0, abs=1e-15)
            for k, v in c.params(t).items():
                torch.testing.assert_close(v, line.params(t)[k], rtol=1e-12, atol=1e-12)
    # the quadratic Bezier closed form
    m = {k: torch.randn_like(v) for k, v in line.start.items()}
    q = mc.curve_point(0.3, line.start, line.end, [m], kind="bezier")
    for k in m:
        ref = 0.49 * line.start[k] + 0.42 * m[k] + 0.09 * line.end[k]
        torch.testing.assert_close(q[k], ref, rtol=1e-12, atol=1e-12)


def test_bezier_bend_gradient_matches_finite_difference():
    a, b = _mlp(hidden=4, seed=0), _mlp(hidden=4, seed=1)
    x, y = _xor(32)
    curve = mc.init_curve(a, b, kind="bezier")
    g = torch.Generator().manual_seed(1)
    bend = {
        k: (v + 0.3 * torch.randn(v.shape, generator=g, dtype=v.dtype)).requires_grad_()
        for k, v in curve.bends[0].items()
    }
    t = 0.3

    def loss(bd):
        p = mc.curve_point(t, curve.start, curve.end, [bd], kind="bezier")
        return F.cross_entropy(functional_call(a, p, (x,)), y)

    grads = torch.autograd.grad(loss(bend), list(bend.values()))
    # directional finite difference along a random direction
    d = {k: torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in bend.items()}
    h = 1e-6
    with torch.no_grad():
        plus = loss({k: v + h * d[k] for k, v in bend.items()})
        minus = loss({k: v - h * d[k] for k, v in bend.items()})
    fd = float((plus - minus) / (2 * h))
    ad = float(sum((gr * d[k]).sum() for gr, k in zip(grads, bend)))
    assert ad == pytest.approx(fd, rel=1e-7)
    # and the chain rule: d loss / d bend = 2 t (1 - t) * d loss / d theta at theta(t)
    p = {
        k: v.detach().requires_grad_()
        for k, v in mc.curve_point(
            t, curve.start, curve.end, [bend], kind="bezier"
        ).items()
    }
    gt = torch.autograd.grad(
        F.cross_entropy(functional_call(a, p, (x,)), y), list(p.values())
    )
    for gb, gth in zip(grads, gt):
        torch.testing.assert_close(gb, 2 * t * (1 - t) * gth, rtol=1e-12, atol=1e-14)


def test_curve_input_errors():
    a, b = _mlp(), _mlp(hidden=8)
    with pytest.raises(ValueError, match="differ"):
        mc.init_curve(a, b)
    with pytest.raises(ValueError, match="unknown curve kind"):
        mc.init_curve(a, _mlp(), kind="spline")
    with pytest.raises(ValueError, match="no bends"):
        mc.init_curve(a, _mlp(), kind="line", num_bends=1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mc.init_curve(a, _mlp()).params(1.5)


def test_curve_save_load_roundtrip(tmp_path):
    a, b = _bn_pair()
    c = mc.init_curve(a, b, kind="polychain", num_bends=2)
    c.save(tmp_path / "c.pt")
    d = mc.Curve.load(tmp_path / "c.pt")
    assert d.kind == "polychain" and d.num_bends == 2
    for k, v in c.state(0.4).items():
        assert torch.equal(v, d.state(0.4)[k])
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(io.CorruptFileError, match=r"bad.pt is corrupt or truncated"):
        mc.Curve.load(tmp_path / "bad.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(io.CorruptFileError, match=r"other.pt is not a saved curve"):
        mc.Curve.load(tmp_path / "other.pt")


# -------------------------------------------------------------------- BatchNorm


def test_bn_statistics_match_recomputed():
    """Re-estimated statistics equal the batch-size-weighted averages of per-batch
    means / unbiased variances of each BN input, recomputed by hand layer by layer
    (the second layer's input depends on the first layer's batch normalisation)."""
    a, b = _bn_pair()
    curve = mc.init_curve(a, b, kind="bezier")
    state = curve.state(0.4)
    g = torch.Generator().manual_seed(3)
    batches = [
        (torch.randn(n, 3, generator=g, dtype=torch.float64), torch.zeros(n))
        for n in (16, 7, 11)
    ]
    snap = _snapshot(a)
    got = mc.bn_statistics(a, state, batches)
    mc.bn_statistics(a, dict(a.named_parameters()), batches)  # the model's own buffers
    _assert_untouched([a], snap)

    def bn_train(h, w, bias):  # BatchNorm with batch statistics (biased variance)
        return (h - h.mean(0)) / torch.sqrt(h.var(0, correction=0) + 1e-5) * w + bias

    s1m, s1v, s2m, s2v, n = 0, 0, 0, 0, 0
    for x, _ in batches:
        h1 = x @ state["fc1.weight"].T + state["fc1.bias"]
        z = F.relu(bn_train(h1, state["bn1.weight"], state["bn1.bias"]))  # no dropout
        h2 = z @ state["fc2.weight"].T + state["fc2.bias"]
        k = len(x)
        s1m, s1v = s1m + k * h1.mean(0), s1v + k * h1.var(0, correction=1)
        s2m, s2v = s2m + k * h2.mean(0), s2v + k * h2.var(0, correction=1)
        n += k
    ref = {
        "bn1.running_mean": s1m / n,
        "bn1.running_var": s1v / n,
        "bn2.running_mean": s2m / n,
        "bn2.running_var": s2v / n,
    }
    for k, v in ref.items():
        torch.testing.assert_close(got[k], v, rtol=1e-12, atol=1e-12)
    assert int(got["bn1.num_batches_tracked"]) == 3
    # one batch: the running mean is the data mean of the first BN input
    allx = torch.cat([x for x, _ in batches])
    one = mc.bn_statistics(a, state, [(allx, torch.zeros(len(allx)))])
    h1 = allx @ state["fc1.weight"].T + state["fc1.bias"]
    torch.testing.assert_close(
        one["bn1.running_mean"], h1.mean(0), rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(
        one["bn1.running_var"], h1.var(0), rtol=1e-12, atol=1e-12
    )
    assert mc.bn_statistics(_mlp(), dict(_mlp().named_parameters()), batches[:1]) == {}


def test_scan_reestimates_bn_at_every_t():
    a, b = _bn_pair()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(40, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (40,), generator=g)
    curve = mc.init_curve(a, b, kind="bezier")
    lf = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="train_data"):
        mc.scan_curve(a, lf, [(x, y)], curve, num=3)
    snap = _snapshot(a, b)
    scan = mc.scan_curve(
        a,
        lf,
        [(x, y)],
        curve,
        num=3,
        train_data=[(x[:20], y[:20]), (x[20:], y[20:])],
    )
    _assert_untouched([a, b], snap)
    # the middle point by hand: re-estimated statistics, eval mode
    state = curve.state(0.5)
    state.update(mc.bn_statistics(a, state, [(x[:20], y[:20]), (x[20:], y[20:])]))
    ref = copy.deepcopy(a).eval()
    ref.load_state_dict(state)
    with torch.no_grad():
        assert scan.clean_loss[1] == pytest.approx(float(lf(ref(x), y)), rel=1e-12)
    interp = mc.scan_curve(a, lf, [(x, y)], curve, num=3, bn="interpolate")
    assert interp.meta["bn"] == "interpolate" and scan.meta["bn"] == "reestimate"


# --------------------------------------------------------------------- training


def test_trained_curve_has_lower_barrier_than_line():
    a, b, (x, y) = _trained_mirror_pair()
    lf = nn.CrossEntropyLoss()
    line = mc.scan_curve(a, lf, [(x, y)], mc.init_curve(a, b, kind="line"), num=11)
    cm = mc.CurveModel(a, b, kind="bezier")
    cfg = _curve_cfg(epochs=30, batch_size=64, lr=0.05, optimizer="adam")
    with pytest.warns(UserWarning, match="attacks clip inputs"):  # XOR is not images
        res = adversarial_train(cm, (x, y), cfg)
    curve = mc.scan_curve(a, lf, [(x, y)], cm.curve(), num=11)
    assert line.clean_barrier > 3.0  # the mirrored minima are separated on the line
    assert curve.clean_barrier < 0.2 * line.clean_barrier
    assert curve.barrier("clean_acc") < line.barrier("clean_acc")
    assert res.metrics["dist_init"][-1] > 0  # the bends moved off the line
    np.testing.assert_allclose(
        curve.clean_loss[[0, -1]], line.clean_loss[[0, -1]], rtol=1e-12
    )


def test_curve_training_is_garipovs_step_on_the_trainers_streams():
    """The trainer trains a CurveModel with the step of Garipov et al. (the former
    ``train_curve``): t ~ U(0, 1) per batch, the attack at theta(t), one optimizer
    step on the bends. A reference loop of that step on the trainer's streams (t:
    ``derive_seed(seed, "model")``; attack starts: ``("attack", rank)``; dropout:
    ``("dropout", rank)``; the batches' order) gives the same bends bitwise. (The
    intended change of issue 23: curve training now draws from the trainer's
    streams, not from its own ``("curve", ...)`` ones, so a seeded curve run differs
    from one of the former ``train_curve``.)"""
    from landscape import _utils, data
    from landscape.connectivity._curves import curve_point

    torch.manual_seed(3)
    a = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.2), nn.Linear(8, 2))
    a = a.double()
    b = copy.deepcopy(a)
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.3 * torch.randn_like(p))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (40,), generator=g)
    attack = attacks.PGD(eps=0.1, steps=2)
    cfg = _curve_cfg(epochs=2, batch_size=16, lr=0.1, attack=attack, seed=7)
    cm = mc.CurveModel(a, b)
    adversarial_train(cm, (x, y), cfg)

    # the reference: the former train_curve's step, on the trainer's streams
    curve = mc.init_curve(a, b)
    bends = [{k: v.clone().requires_grad_(True) for k, v in curve.bends[0].items()}]
    opt = torch.optim.SGD(list(bends[0].values()), lr=0.1, momentum=0.9)
    t_gen = _utils.derived_generator(7, "model")
    atk_gen = _utils.derived_generator(7, "attack", 0)
    loader = data.Batches(x, y, batch_size=16, shuffle=True, seed=7)
    with torch.random.fork_rng():
        torch.manual_seed(_utils.derive_seed(7, "dropout", 0))
        for epoch in range(2):
            loader.set_epoch(epoch)
            for xb, yb in loader:
                t = float(torch.rand((), generator=t_gen, dtype=torch.float64))
                opt.zero_grad(set_to_none=True)
                state = curve_point(t, curve.start, curve.end, bends)
                with _utils.eval_mode(a):
                    at = mc._scan._At(a, {k: v.detach() for k, v in state.items()})
                    xa = attack(at, xb, yb, atk_gen)
                with _utils.train_mode(a):
                    out = functional_call(a, state, (xa,))
                loss = F.cross_entropy(out, yb, reduction="sum") / len(yb)
                loss.backward()
                opt.step()
    for k, v in cm.curve().bends[0].items():
        assert torch.equal(v, bends[0][k].detach()), k


def test_curve_training_streams_come_from_derive_seed(monkeypatch):
    # Issue 13: the t draws, the attack's random starts and the global RNG of curve
    # training are seeded by the one helper: the trainer's streams ("model" for the
    # curve's t, "attack" / "dropout" + rank).
    from landscape import _utils

    keys, real = [], _utils.derived_generator

    def spy(seed, *k, **kw):
        keys.append((seed, *k))
        return real(seed, *k, **kw)

    monkeypatch.setattr(_utils, "derived_generator", spy)
    a, b = _bn_pair()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (16,), generator=g)
    attack = attacks.PGD(eps=0.05, steps=1)
    cfg = _curve_cfg(
        epochs=1, batch_size=16, lr=0.1, attack=attack, attack_train_mode=True, seed=3
    )
    seen: list[int] = []
    cm = mc.CurveModel(a, b)
    ts = []
    real_resample = cm.resample
    cm.resample = lambda gen: real_resample(gen) or ts.append(cm.t)
    adversarial_train(
        cm, (x, y), cfg, callback=lambda i: seen.append(torch.initial_seed())
    )
    assert (3, "model") in keys and (3, "attack", 0) in keys
    assert set(seen) == {_utils.derive_seed(3, "dropout", 0)}
    t0 = float(torch.rand((), generator=real(3, "model"), dtype=torch.float64))
    assert ts == [t0]  # the curve's t of the one batch, from the "model" stream


def test_training_leaves_models_untouched_and_trains_bends_only():
    a, b = _bn_pair()
    a.eval()  # mixed modes must come back as they were
    b.drop.eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(48, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (48,), generator=g)
    snap = _snapshot(a, b)
    cm = mc.CurveModel(a, b)
    trainable = [n for n, p in cm.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("bends.0.") for n in trainable)
    cfg = _curve_cfg(
        epochs=2, batch_size=16, lr=0.1, attack=attacks.PGD(eps=0.05, steps=2),
        attack_train_mode=True,
    )  # fmt: skip
    res = adversarial_train(cm, (x, y), cfg)
    _assert_untouched([a, b], snap)
    trained = cm.curve()
    for k, v in a.named_parameters():
        assert torch.equal(trained.start[k], v) and torch.equal(
            trained.end[k], dict(b.named_parameters())[k]
        )
    assert not torch.equal(
        trained.bends[0]["fc1.weight"], mc.init_curve(a, b).bends[0]["fc1.weight"]
    )
    assert res.metrics["epoch"].tolist() == [1, 2]
    for t, m in ((0.0, a), (1.0, b)):  # the trained curve's ends are still the models
        for k, v in m.state_dict().items():
            assert torch.equal(trained.state(t)[k], v), (t, k)


def _stop_at(n):
    def cb(s):
        if s["iteration"] == n:
            raise KeyboardInterrupt

    return cb


@pytest.mark.parametrize(
    "attack,optimizer",
    [(attacks.PGD(eps=0.1, steps=2), "sgd"), (attacks.FGSMRS(eps=0.1), "adam")],
)
def test_exact_resume_after_interruption(tmp_path, attack, optimizer):
    a, b = _bn_pair()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(56, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (56,), generator=g)
    cfg = _curve_cfg(
        epochs=3,
        batch_size=16,
        attack=attack,
        attack_train_mode=True,
        lr=0.05,
        optimizer=optimizer,
        eps_schedule="linear",
        lr_schedule="cosine",
        runtime=dataclasses.replace(_OFF, checkpoint_every=3),
    )
    full = mc.CurveModel(a, b)
    r_full = adversarial_train(full, (x, y), cfg, run_dir=tmp_path / "full")
    run = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):  # iteration 10 of 12; resume point: 9
        adversarial_train(
            mc.CurveModel(a, b), (x, y), cfg, run_dir=run, callback=_stop_at(10)
        )
    with pytest.raises(KeyboardInterrupt):  # and again, mid-epoch, after resuming
        adversarial_train(
            mc.CurveModel(a, b), (x, y), cfg, run_dir=run, callback=_stop_at(11)
        )
    torch.manual_seed(999)  # the resumed run must not depend on the caller's RNG
    resumed = mc.CurveModel(a, b)
    r = adversarial_train(resumed, (x, y), cfg, run_dir=run)
    for k, v in full.curve().bends[0].items():
        assert torch.equal(resumed.curve().bends[0][k], v), k
    for key in ("train_loss", "train_acc", "eps", "lr", "dist_init"):
        np.testing.assert_array_equal(r.metrics[key], r_full.metrics[key])


def test_resume_refuses_other_config_or_models(tmp_path):
    a, b = _bn_pair()
    x = torch.rand(32, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (32,))
    cfg = _curve_cfg(epochs=1, batch_size=16)
    adversarial_train(mc.CurveModel(a, b), (x, y), cfg, run_dir=tmp_path)
    with pytest.raises(RunFolderError, match="another configuration"):
        adversarial_train(
            mc.CurveModel(a, b), (x, y), dataclasses.replace(cfg, epochs=2),
            run_dir=tmp_path,
        )  # fmt: skip
    with pytest.raises(RunFolderError, match="start model differs"):
        adversarial_train(mc.CurveModel(BNNet(7), b), (x, y), cfg, run_dir=tmp_path)
    with pytest.raises(RunFolderError, match="already holds"):
        adversarial_train(
            mc.CurveModel(a, b), (x, y), cfg, run_dir=tmp_path, resume=False
        )
    (tmp_path / "resume.pt").write_bytes(b"garbage")
    with pytest.raises(io.CorruptFileError):
        adversarial_train(mc.CurveModel(a, b), (x, y), cfg, run_dir=tmp_path)


def test_curve_model_theta_is_rebuilt_after_a_step_or_a_backward_pass():
    """theta(t) is computed once for the forwards of a step (the attack's and the
    optimizer step's), and rebuilt when t or a bend changes or a backward pass freed
    its graph: repeated and second-order backward passes work, copies too."""
    a, b = _mlp(), _mlp(seed=1)
    cm = mc.CurveModel(a, b)
    x = torch.rand(8, 2, dtype=torch.float64)
    y = torch.randint(0, 2, (8,))
    bends = [p for p in cm.parameters() if p.requires_grad]
    grads = []
    for _ in range(2):  # the same t and bends: the second backward needs a new graph
        cm.zero_grad()
        F.cross_entropy(cm(x), y).backward()
        grads.append([p.grad.clone() for p in bends])
    for g1, g2 in zip(*grads):
        assert torch.equal(g1, g2)
    loss = F.cross_entropy(cm(x), y)
    (g,) = torch.autograd.grad(loss, bends[:1], create_graph=True)
    (hv,) = torch.autograd.grad(g.sum(), bends[:1])  # second order through theta
    assert torch.isfinite(hv).all()
    with torch.no_grad():
        bends[0].add_(1.0)  # a changed bend: a new theta(t)
    want = functional_call(a, {**cm.curve().state(cm.t)}, (x,))
    torch.testing.assert_close(cm(x), want, rtol=1e-12, atol=1e-12)
    assert torch.equal(copy.deepcopy(cm)(x), cm(x))


def test_curve_model_errors():
    a, b = _mlp(), _mlp(seed=1)
    with pytest.raises(ValueError, match="nothing to train"):
        mc.CurveModel(a, b, kind="line")
    with pytest.raises(ValueError, match="num_bends"):
        mc.CurveModel(a, b, num_bends=0)
    cm = mc.CurveModel(a, b)
    cm.t = 1.5
    with pytest.raises(ValueError, match="t must lie in"):
        cm(torch.zeros(1, 2, dtype=torch.float64))
    other = mc.CurveModel(_mlp(seed=2), b)
    with pytest.raises(RuntimeError, match="start model differs"):
        cm.load_state_dict(other.state_dict())
    cm.load_state_dict(mc.CurveModel(a, b).state_dict())  # the same endpoints load


# ------------------------------------------------------------------------- scans


def test_scan_endpoints_equal_plain_evaluation_and_robust_below_clean(tmp_path):
    a, b, (x, y) = _trained_mirror_pair()
    a, b = a.float(), b.float()
    x = x.float().clamp(-1, 1) * 0.5 + 0.5  # inputs in [0, 1] for the attack
    lf = nn.CrossEntropyLoss()
    atk = attacks.PGD(eps=0.05, steps=5, loss="ce", keep="best")  # evaluation PGD
    snap = _snapshot(a, b)
    scan = mc.scan_curve(
        a,
        lf,
        [(x[:128], y[:128]), (x[128:], y[128:])],
        mc.init_curve(a, b, kind="line"),
        num=5,
        attack=atk,
        generator=torch.Generator().manual_seed(0),
    )
    _assert_untouched([a, b], snap)
    assert scan.meta["eps"] == 0.05 and scan.meta["attack"] == atk.to_dict()
    with torch.no_grad():
        for i, m in ((0, a), (-1, b)):
            assert scan.clean_loss[i] == pytest.approx(float(lf(m(x), y)), rel=1e-5)
            assert scan.clean_acc[i] == pytest.approx(
                float((m(x).argmax(1) == y).float().mean())
            )
    assert np.all(scan.robust_acc <= scan.clean_acc) and np.all(
        scan.robust_loss >= scan.clean_loss - 1e-6
    )
    assert scan.robust_barrier == pytest.approx(mc.barrier(scan.robust_loss))
    path = scan.save(tmp_path / "scan.npz")
    back = mc.CurveScan.load(path)
    np.testing.assert_array_equal(back.robust_acc, scan.robust_acc)
    assert back.kind == "line" and back.clean_barrier == pytest.approx(
        scan.clean_barrier
    )
    with pytest.raises(ValueError, match="num must be"):
        mc.scan_curve(a, lf, [(x, y)], mc.init_curve(a, b), num=1)
    with pytest.raises(ValueError, match="does not fit"):
        mc.scan_curve(_mlp(hidden=3).float(), lf, [(x, y)], mc.init_curve(a, b), num=2)


# --------------------------------------------------------------------------- CLI


def _fake_run(folder, seed):
    """A run folder as `python -m landscape.train` writes it (config.json, final.pt)."""
    import json

    from landscape import models

    kw = {"in_shape": [1, 28, 28], "num_classes": 10, "dataset": "mnist", "hidden": [8]}
    torch.manual_seed(seed)
    m = models.build("mlp", **kw)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps({"model": "mlp", "model_kwargs": kw, "dataset": {"name": "mnist"}})
    )
    torch.save({"model": m.state_dict(), "epoch": 1, "config": {}}, folder / "final.pt")
    return m


def test_cli_train_and_scan(tmp_path, data_root, monkeypatch, capsys):
    from landscape.connectivity.__main__ import main

    monkeypatch.setenv("LANDSCAPE_DATA", str(data_root))
    a, b = _fake_run(tmp_path / "a", 0), _fake_run(tmp_path / "b", 1)
    assert not torch.equal(
        a.state_dict()["body.1.weight"], b.state_dict()["body.1.weight"]
    )
    run = tmp_path / "curve"
    common = ["--no-progress", "--dataset", "mnist"]
    rc = main(
        ["train", str(tmp_path / "a"), str(tmp_path / "b"), "--run-dir", str(run)]
        + ["--num-train", "64", "--batch-size", "32", "--epochs", "1", "--eps", "0.1"]
        + ["--steps", "1", "--lr", "0.01", *common]
    )
    assert rc == 0 and (run / "curve.pt").exists()
    assert "bezier curve" in capsys.readouterr().out
    curve = mc.Curve.load(run / "curve.pt")
    assert torch.equal(curve.start["body.1.weight"], a.state_dict()["body.1.weight"])
    assert torch.equal(curve.end["body.1.weight"], b.state_dict()["body.1.weight"])
    # a second `train` with other endpoints (a resume refused) or while the folder is
    # locked by a live process leaves endpoints.json (what `scan` reads) alone
    import json

    ends = (run / "endpoints.json").read_text()
    saved = json.loads((run / "config.json").read_text())  # the trainer's run folder
    assert saved["attack"] == attacks.PGD(eps=0.1, steps=1).to_dict()
    assert train.load_run(run).metrics["epoch"].tolist() == [1]
    swapped = ["train", str(tmp_path / "b"), str(tmp_path / "a"), "--run-dir", str(run)]
    swapped += ["--num-train", "64", "--batch-size", "32", "--epochs", "1", "--eps"]
    swapped += ["0.1", "--steps", "1", "--lr", "0.01"]
    assert main([*swapped, *common]) == 2
    assert "start model differs" in capsys.readouterr().err
    with io.lock(run):
        assert main([*swapped, *common]) == 2
    assert "in use by process" in capsys.readouterr().err
    assert (run / "endpoints.json").read_text() == ends
    assert json.loads(ends)["a"]["path"] == str(tmp_path / "a")
    scan_args = [
        "--num-samples",
        "32",
        "--num-points",
        "3",
        "--eps",
        "0.1",
        "--steps",
        "2",
    ]
    rc = main(["scan", str(run), "-o", str(tmp_path / "s"), *scan_args, *common])
    assert rc == 0, capsys.readouterr().err
    s = mc.CurveScan.load(tmp_path / "s" / "scan.npz")
    assert s.kind == "bezier" and s.robust_acc.shape == (3,)
    rc = main(
        ["scan", "--line", str(tmp_path / "a"), str(tmp_path / "b")]
        + ["-o", str(tmp_path / "l"), *scan_args, *common]
    )
    assert rc == 0 and mc.CurveScan.load(tmp_path / "l" / "scan.npz").kind == "line"
    assert "barrier" in capsys.readouterr().out
    # errors: one line on stderr, exit status 2
    for argv in (
        ["scan", str(tmp_path / "nope"), "-o", str(tmp_path / "x")],
        ["scan", str(run), "--line", "a", "b", "-o", str(tmp_path / "x")],
        ["scan", str(run), "-o", str(tmp_path / "x.npz")],
        ["train", str(tmp_path / "a"), str(tmp_path / "nope"), "--run-dir", str(run)],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err


def test_plot_connectivity_overlays_clean_and_robust():
    import matplotlib

    matplotlib.use("Agg")
    from landscape import plot

    ts = np.linspace(0, 1, 5)
    mk = lambda kind, r: mc.CurveScan(  # noqa: E731
        ts, ts, 1 - ts, ts + 1 if r else None, 0.5 - ts / 2 if r else None, kind
    )
    axes = plot.plot_connectivity(
        {"line": mk("line", True), "curve": mk("bezier", False)}
    )
    assert len(axes[0].lines) == 3 and len(axes[1].lines) == 3  # 2 clean + 1 robust
    np.testing.assert_allclose(axes[1].lines[0].get_ydata(), 100 * (1 - ts))
    ax = plot.plot_curve_scan([mk("line", True)], metric="loss", robust=False)
    assert len(ax.lines) == 1
    with pytest.raises(ValueError, match="metric"):
        plot.plot_curve_scan(mk("line", True), metric="error")


def test_attack_values_and_data_contract():
    a, b = _mlp().float(), _mlp(seed=1).float()
    x = torch.rand(8, 2) * 255
    y = torch.randint(0, 2, (8,))
    pgd = attacks.PGD(eps=0.1, steps=1)
    with pytest.raises(ValueError, match="255"):
        mc.scan_curve(a, nn.CrossEntropyLoss(), (x, y), mc.init_curve(a, b), attack=pgd)
    with pytest.raises(ValueError, match="255"):
        cfg = _curve_cfg(epochs=1, batch_size=4, attack=pgd)
        adversarial_train(mc.CurveModel(a, b), (x, y), cfg)
    with pytest.raises(TypeError, match="attack value"):
        mc.scan_curve(
            a, nn.CrossEntropyLoss(), (x / 255, y), mc.init_curve(a, b),
            attack=attacks.PGD,
        )  # fmt: skip
    scan = mc.scan_curve(  # an (x, y) pair is one batch; an attack value works as is
        a,
        nn.CrossEntropyLoss(),
        (x / 255, y),
        mc.init_curve(a, b),
        num=2,
        attack=pgd,
    )
    assert scan.meta["num_samples"] == 8 and scan.meta["attack"]["attack"] == "PGD"


def test_a_locked_run_folder_is_refused_and_the_lock_released(tmp_path):
    """A second curve training into a run folder that a live process is writing
    raises ``io.LockedError`` naming the holder (and writes nothing); the lock is gone
    after a finished and after an interrupted run (the trainer's lock)."""
    a, b = _bn_pair()
    x = torch.rand(32, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (32,))
    rt = dataclasses.replace(_OFF, checkpoint_every=1)
    cfg = _curve_cfg(epochs=1, batch_size=16, runtime=rt)
    tmp_path.mkdir(exist_ok=True)
    with io.lock(tmp_path), pytest.raises(io.LockedError, match=f"{os.getpid()}@"):
        adversarial_train(mc.CurveModel(a, b), (x, y), cfg, run_dir=tmp_path)
    assert not (tmp_path / "config.json").exists()
    with pytest.raises(KeyboardInterrupt):
        adversarial_train(
            mc.CurveModel(a, b), (x, y), cfg, run_dir=tmp_path, callback=_stop_at(1)
        )
    assert not (tmp_path / ".lock").exists()
    adversarial_train(mc.CurveModel(a, b), (x, y), cfg, run_dir=tmp_path)
    assert not (tmp_path / ".lock").exists() and (tmp_path / "final.pt").exists()

"""Evaluation protocol: exact robust accuracy on a linear model, pointwise worst case
and bookkeeping, resumable state, ensembles, gradient-masking checks, CLI, plots."""

from __future__ import annotations

import collections
import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _linear_case import Recorder, _closed_form, _linear_case
from torch import nn

from landscape import attacks as A
from landscape import evaluate as E


def _pgd(eps, steps, **kw):
    """The evaluation PGD (best iterate, CE, random first start for L-inf)."""
    return A.PGD(eps=eps, steps=steps, loss="ce", keep="best", **kw)


def _images(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    with torch.no_grad():
        y = Recorder()(x).argmax(1)
    y[:3] = (y[:3] + 1) % 5
    return x, y


def test_linear_exact_robust_accuracy_sweep():
    model, x, y, w, z = _linear_case(seed=1)
    eps = [0.0, 0.005, 0.01, 0.02]
    res = E.evaluate(
        model, (x, y), eps=eps, preset="quick", steps=10, batch_size=128, checks=False
    )
    for e, ep in enumerate(eps):
        expected, gap = _closed_form(w, z, y, ep, "linf")
        keep = (gap > 1e-6).numpy()
        assert np.array_equal(res.robust_correct[e][keep], expected.numpy()[keep])
    assert res.robust_accuracy[0] == pytest.approx(res.clean_accuracy)
    assert np.all(np.diff(res.robust_accuracy) <= 0)
    acc = E.robust_accuracy(model, (x, y), eps=0.01, steps=10)
    assert isinstance(acc, float) and acc == pytest.approx(res.robust_accuracy[2])


def test_sequence_bookkeeping_and_roundtrip(tmp_path):
    x, y = _images()
    m = Recorder()
    res = E.evaluate(
        m,
        (x, y),
        eps=[0.05, 0.2],
        preset="standard",
        scale=0.05,
        batch_size=10,
        checks=False,
    )
    assert res.attacks == ["apgd-ce", "apgd-t", "fab-t", "square"]
    bb, rc = res.broken_by, res.robust_correct
    assert np.array_equal(bb == -2, np.broadcast_to(~res.clean_correct, bb.shape))
    assert np.array_equal(rc, bb == -1)
    per = res.per_attack_accuracy()
    seq = np.stack([per[a] for a in res.attacks])
    assert np.all(
        np.diff(seq, axis=0) <= 0
    )  # cumulative: never rises along the sequence
    assert np.allclose(seq[-1], res.robust_accuracy)
    assert np.all(res.robust_accuracy <= res.clean_accuracy)
    # pointwise worst case, checked with a deterministic first attack (FGSM): the points
    # credited to it are exactly those FGSM alone breaks; the rest went on to PGD
    specs = [A.FGSM(eps=0.03), _pgd(0.03, steps=5)]
    r2 = E.evaluate(m, (x, y), attacks=specs, batch_size=7, checks=False)
    with torch.no_grad():
        fg = (m(A.FGSM(eps=0.03)(m, x, y)).argmax(1) != y).numpy()
    assert np.array_equal(r2.broken_by[0] == 0, fg & r2.clean_correct)
    assert not np.any(r2.robust_correct[0] & fg)
    assert (r2.broken_by[0] == 1).sum() > 0  # PGD adds points FGSM missed
    p = res.save(tmp_path / "r.npz")
    back = E.EvalResult.load(p)
    assert np.array_equal(back.robust_correct, rc) and back.attacks == res.attacks
    assert back.table() == res.table()
    txt = res.save_table(tmp_path / "r.txt").read_text()
    assert "apgd-t" in txt and "clean accuracy" in txt


def test_adversarial_examples_and_timings(tmp_path):
    x, y = _images(n=30)
    m = Recorder()
    specs = [A.FGSM(eps=0.1), _pgd(0.1, steps=5)]
    eps = [0.02, 0.1]
    res = E.evaluate(
        m, (x, y), eps=eps, attacks=specs, batch_size=7, checks=False,
        return_adversarial=True,
    )  # fmt: skip
    adv = torch.as_tensor(res.adversarial)
    assert adv.shape == (2, *x.shape)
    for e, ep in enumerate(eps):
        d = (adv[e] - x).flatten(1).abs().amax(1)
        assert d.max() <= ep + 1e-6 and adv[e].min() >= 0 and adv[e].max() <= 1
        with torch.no_grad():
            wrong = (m(adv[e]).argmax(1) != y).numpy()
        # exactly the points the protocol counts as broken (or clean errors) are wrong
        assert np.array_equal(wrong, ~res.robust_correct[e])
        robust = torch.as_tensor(res.robust_correct[e])
        assert torch.equal(adv[e][robust], x[robust])  # unbroken: the clean input
    assert list(res.timings) == ["fgsm", "pgd-5"]
    assert all(t.shape == (2,) and (t >= 0).all() for t in res.timings.values())
    assert res.timings["pgd-5"].sum() > 0
    back = E.EvalResult.load(res.save(tmp_path / "r.npz"))
    assert np.array_equal(back.adversarial, res.adversarial)
    assert np.allclose(back.timings["pgd-5"], res.timings["pgd-5"])
    # the attacks are recorded as values: they round-trip through the JSON meta
    assert [A.Attack.from_dict(d) for d in back.meta["attacks"]] == specs
    plain = E.evaluate(m, (x, y), eps=eps, attacks=specs, batch_size=7, checks=False)
    assert plain.adversarial is None
    assert np.array_equal(plain.robust_correct, res.robust_correct)


def test_restart_curves():
    x, y = _images(n=30)
    m = Recorder()
    spec = [_pgd(0.1, steps=2, restarts=6, alpha=0.01)]
    res = E.evaluate(
        m, (x, y), eps=[0.0, 0.03, 0.1], attacks=spec, batch_size=7, checks=False
    )
    c = res.restart_curves["pgd-2"]
    assert c.shape == (3, 6)
    assert np.all(np.diff(c, axis=1) <= 0)  # flattens, never rises
    assert np.allclose(c[:, -1], res.robust_accuracy)  # ends at the result
    assert np.allclose(c[0], res.clean_accuracy)  # eps = 0: nothing to attack
    assert c[2, 0] > c[2, -1]  # the restarts did break more points here


_CALLS: list[int] = []


@dataclasses.dataclass(frozen=True)
class Flaky(A.Attack):
    """A PGD-3 that is interrupted at its 4th call when ``boom`` (a new attack: one
    class, registered by defining it)."""

    boom: bool = False

    def _run(self, model, x, y, gen, bar):
        _CALLS.append(len(y))
        if len(_CALLS) == 4 and self.boom:
            raise KeyboardInterrupt
        pgd = A.PGD(eps=self.eps, norm=self.norm, steps=3)
        return pgd(model, x, y, gen, return_info=True)


def test_resume_skips_finished_work(tmp_path):
    x, y = _images(n=30)
    m = Recorder()
    specs = [Flaky(eps=0.05, boom=True, label="pgd-3"), A.FGSM(eps=0.05)]
    _CALLS.clear()
    ref = E.evaluate(
        m, (x, y), eps=[0.05, 0.1], attacks=[Flaky(eps=0.05), specs[1]],
        batch_size=10, checks=False,
    )  # fmt: skip
    _CALLS.clear()
    state = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        E.evaluate(
            m, (x, y), eps=[0.05, 0.1], attacks=specs, batch_size=10, checks=False,
            state_path=state,
        )  # fmt: skip
    assert state.exists() and len(_CALLS) == 4
    _CALLS.clear()
    res = E.evaluate(  # the same attacks: no crash now (fewer than 4 calls)
        m, (x, y), eps=[0.05, 0.1], attacks=specs, batch_size=10, checks=False,
        state_path=state,
    )  # fmt: skip
    assert len(_CALLS) == 3  # 3 of the 6 pgd batches were done before the crash
    assert np.array_equal(res.robust_correct, ref.robust_correct)
    assert np.array_equal(res.broken_by, ref.broken_by)
    assert res.attacks == ["pgd-3", "fgsm"]
    with pytest.raises(ValueError, match="another evaluation"):
        E.evaluate(
            m, (x, y), eps=[0.3], attacks=specs[:1], batch_size=10, checks=False,
            state_path=state,
        )  # fmt: skip


def test_evaluate_takes_attack_values():
    """``evaluate(model, data, attacks=[APGD(eps), Square(eps)])``: the attacks' eps
    is the budget; a sweep replaces it; one norm per evaluation."""
    x, y = _images(n=20)
    m = Recorder()
    seq = [A.APGD(eps=0.1, steps=3), A.Square(eps=0.1, queries=20)]
    g = torch.Generator
    res = E.evaluate(m, (x, y), attacks=seq, checks=False, generator=g().manual_seed(0))
    assert res.eps.tolist() == [0.1] and res.attacks == ["apgd-ce", "square"]
    assert res.preset == "custom"
    # the preset at eps e is the list with replace(eps=e)
    sweep = E.evaluate(
        m, (x, y), attacks=seq, eps=[0.05, 0.1], checks=False,
        generator=g().manual_seed(0),
    )  # fmt: skip
    np.testing.assert_array_equal(sweep.robust_correct[1], res.robust_correct[0])
    quick = E.evaluate(
        m, (x, y), eps=0.1, preset="quick", checks=False, generator=g().manual_seed(0)
    )
    listed = E.evaluate(
        m, (x, y), attacks=E.preset_attacks("quick", 0.1), checks=False,
        generator=g().manual_seed(0),
    )  # fmt: skip
    np.testing.assert_array_equal(quick.robust_correct, listed.robust_correct)
    with pytest.raises(ValueError, match="different eps"):
        E.evaluate(m, (x, y), attacks=[A.APGD(eps=0.1), A.FGSM(eps=0.2)])
    with pytest.raises(ValueError, match="one threat model"):
        E.evaluate(m, (x, y), attacks=[A.APGD(eps=0.1), A.FGSM(eps=0.1, norm="l2")])
    with pytest.raises(TypeError, match="attack values"):
        E.evaluate(m, (x, y), attacks=[A.FGSM])
    with pytest.raises(TypeError, match="eps"):
        E.evaluate(m, (x, y))


class AvgEnsemble(nn.Module):
    """Log of averaged softmax of members (like checkpoints.Ensemble)."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x):
        p = torch.stack([m(x).softmax(1) for m in self.members]).mean(0)
        return p.log()


def test_ensemble_and_checks_pass_on_healthy_model():
    x, y = _images()
    ens = AvgEnsemble([Recorder(), Recorder()])
    res = E.evaluate(
        ens, (x, y), eps=[0.02, 0.1], preset="quick", steps=5, check_samples=24
    )
    c = res.checks
    assert c["logits"]["value"] == "log-probabilities" and c["logits"]["passed"]
    for k in (
        "eval_mode",
        "deterministic",
        "zero_gradients",
        "large_eps",
        "more_restarts",
    ):
        assert c[k]["passed"], (k, c[k])
    assert c["large_eps"]["value"] <= 0.05
    assert "PASS" in res.table()


class Softmaxed(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Recorder()

    def forward(self, x):
        return self.inner(x).softmax(1)


class Noisy(Recorder):
    def forward(self, x):
        return super().forward(F.dropout(x, 0.3, training=True))


class Quantised(Recorder):
    """Rounds inputs (zero input gradients: classic gradient masking)."""

    def forward(self, x):
        return super().forward(torch.round(x * 4) / 4)


def test_checks_flag_masking():
    x, y = _images()
    g = torch.Generator().manual_seed(0)  # each check starts from its seed
    with pytest.warns(UserWarning, match="probabilities"):
        c = E.masking_checks(
            Softmaxed(), [(x, y)], eps=[0.1], norm="linf", num_samples=24, generator=g
        )
    assert c["logits"]["passed"] is False
    c = E.masking_checks(
        Noisy(), [(x, y)], eps=[0.1], norm="linf", num_samples=24, generator=g
    )
    assert c["deterministic"]["passed"] is False
    m = Quantised()
    with torch.no_grad():
        yq = m(x).argmax(1)
    c = E.masking_checks(
        m, [(x, yq)], eps=[0.1], norm="linf", num_samples=24, generator=g
    )
    assert (
        c["zero_gradients"]["passed"] is False and c["zero_gradients"]["value"] == 1.0
    )
    # black-box beats white-box on the gradient-masked model
    assert c["black_box"]["passed"] is False
    dropped = nn.Sequential(nn.Dropout(0.0), Recorder()).train()
    c = E.masking_checks(
        dropped, [(x, y)], eps=[0.1], norm="l2", num_samples=24, generator=g
    )
    assert c["eval_mode"]["passed"] is False
    res = E.evaluate(
        m, (x, yq), eps=[0.05, 0.02], steps=3, checks=True, check_samples=24
    )
    assert res.checks["eps_monotone"]["passed"] is True


class Rippled(nn.Module):
    """Not masked: deterministic logits of a linear margin plus a smooth ripple of
    period 0.12 eps along the input. Small steps settle in a ripple that large steps
    jump over: PGD-50 at 2.5 eps / 50 is weaker than PGD-10 (71 % vs 39 % robust)."""

    def __init__(self, eps: float):
        super().__init__()
        self.k = 2 * np.pi / (0.12 * eps)

    def forward(self, x):
        x = x.flatten(1)
        m = 0.5 + (-x + 1.5 / self.k * torch.sin(self.k * x)).sum(1)
        return torch.stack([m, -m], 1)


def test_more_steps_no_false_alarm_on_unmasked_model():
    """A longer PGD run is compared at equal step sizes: a rippled (unmasked) model
    passes, while PGD-50 at its own step alone is weaker by 30 points (the old check
    failed here)."""
    eps = 0.1
    m = Rippled(eps)
    x = 0.2 + 0.6 * torch.rand(2000, 1, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        margin = m(x)[:, 0]
    x = x[(margin > 0) & (margin < 0.09)][:100]
    y = torch.zeros(len(x), dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    # the old comparison: PGD-50 at 2.5 eps / 50 alone is much weaker
    acc = {}
    for steps in (10, 50):
        xa = _pgd(eps, steps)(m, x, y, torch.Generator().manual_seed(0))
        acc[steps] = float((m(xa).argmax(1) == y).float().mean())
    assert acc[50] > acc[10] + 0.2
    c = E.masking_checks(
        m, [(x, y)], eps=[eps], norm="linf", num_samples=100, generator=g
    )
    assert c["more_steps"]["passed"] is True, c["more_steps"]
    base, more = c["more_steps"]["value"]
    assert base == pytest.approx(acc[10]) and more <= base
    assert c["more_restarts"]["passed"] is True


def test_standard_preset_is_autoattack_standard():
    """The "standard" preset is AutoAttack's standard version: same sequence, same
    budgets (read off pyautoattack's own configuration)."""
    pytest.importorskip("pyautoattack")
    from pyautoattack import AutoAttack

    for norm, aa_norm in (("linf", "Linf"), ("l2", "L2")):
        aa = AutoAttack(nn.Linear(2, 10), norm=aa_norm, eps=0.1, version="standard")
        specs = E.preset_attacks("standard", 0.1, norm)
        assert [s.name for s in specs] == aa.attacks_to_run
        ce, t, fab, sq = specs
        assert (type(ce), ce.steps, ce.restarts, ce.loss) == (
            A.APGD,
            aa.apgd.n_iter,
            aa.apgd.n_restarts,
            "ce",
        )
        assert (type(t), t.steps, t.restarts, t.num_targets) == (
            A.APGDT,
            aa.apgd_targeted.n_iter,
            aa.apgd_targeted.n_restarts,
            aa.apgd_targeted.n_target_classes,
        )
        assert (type(fab), fab.steps, fab.restarts, fab.num_targets) == (
            A.FABT,
            aa.fab.n_iter,
            aa.fab.n_restarts,
            aa.fab.n_target_classes,
        )
        assert (sq.queries, sq.p_init) == (aa.square.n_queries, aa.square.p_init)
        assert sq.rescale_schedule is aa.square.rescale_schedule is False
        for k in ("alpha_max", "eta", "beta"):
            assert getattr(fab, k) == getattr(aa.fab, k)
        assert ce.rho == aa.apgd.thr_decr


def test_presets_and_scaling():
    names = [a.name for a in E.preset_attacks("reviewer", 0.5, "l2", scale=0.1)]
    assert names == ["pgd-10-ce", "pgd-10-cw", "simba-dct", "square"]
    r = E.preset_attacks("reviewer", 0.1, "linf")
    assert (r[0].steps, r[0].restarts, r[0].loss, r[0].patience) == (100, 25, "ce", 5)
    assert len(r[0].alpha_rel) == 4 and r[0].keep == "best"
    assert r[0].step_sizes()[-1] == pytest.approx(2.5 * 0.1 / 100)
    # the preset at another budget: replace(eps=...), the relative steps follow
    r2 = dataclasses.replace(r[0], eps=0.2)
    assert r2.step_sizes()[-1] == pytest.approx(2.5 * 0.2 / 100)
    assert E.preset_attacks("standard", 0.1, num_classes=3)[1].name == "apgd-cw"
    assert E.preset_attacks("standard", 0.1, queries=7)[-1].queries == 7
    with pytest.raises(ValueError, match="preset"):
        E.preset_attacks("strong", 0.1)
    x, y = _images(n=12)
    res = E.evaluate(
        Recorder(),
        (x, y),
        eps=0.1,
        norm="l2",
        preset="reviewer",
        scale=0.02,
        checks=False,
    )
    assert len(res.attacks) == 4 and res.robust_accuracy.shape == (1,)
    flat = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    with pytest.warns(UserWarning, match="skipping"):
        res = E.evaluate(
            flat,
            (x.flatten(1), y),
            eps=0.1,
            preset="standard",
            scale=0.02,
            checks=False,
        )
    assert res.attacks == ["apgd-ce", "apgd-t", "fab-t"]  # Square needs images


def test_cli_and_plots(tmp_path, data_root):
    import matplotlib

    matplotlib.use("Agg")
    from landscape import plot
    from landscape.evaluate.__main__ import main

    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(1, 4, 5, stride=3), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10)
    )
    torch.save(m, tmp_path / "m.pt")
    out = tmp_path / "ev"
    rc = main(
        [
            str(tmp_path / "m.pt"),
            "--trust-checkpoint",  # a whole pickled module: refused without it
            "--data-root",
            str(data_root),
            "--num-samples",
            "40",
            "--eps",
            "0.05",
            "0.1",
            "--eps-l2",
            "0.5",
            "--preset",
            "reviewer",
            "--scale",
            "0.02",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    for norm in ("linf", "l2"):
        res = E.EvalResult.load(out / f"eval_{norm}.npz")
        assert res.norm == norm and res.checks
        assert (out / f"eval_{norm}.txt").exists()
        assert not (out / f"eval_{norm}.state.pt").exists()
    res = E.EvalResult.load(out / "eval_linf.npz")
    ax = plot.plot_robust_accuracy(res)
    assert len(ax.lines) == len(res.attacks) + 2  # per attack, overall, clean
    ax = plot.plot_attack_bars(res)
    assert len(ax.patches) == len(res.attacks) * len(res.eps)
    fig = plot.evaluation_figure([res, E.EvalResult.load(out / "eval_l2.npz")])
    assert len(fig.axes) >= 2


def test_bad_data_shapes_raise_clear_errors():
    x, y = _images(n=6)
    with pytest.raises(ValueError, match="does not match 4 labels"):
        E.evaluate(Recorder(), (x, y[:4]), eps=0.1, preset="quick")
    with pytest.raises(ValueError, match="leading batch dimension"):
        E.evaluate(Recorder(), [(x[0, 0, 0], y[:1])], eps=0.1, preset="quick")
    with pytest.raises(ValueError, match="1-D tensor of class indices"):
        E.evaluate(Recorder(), (x, y[:, None]), eps=0.1, preset="quick")
    with pytest.raises(ValueError, match="eps must be"):
        E.evaluate(Recorder(), (x, y), eps=-0.1, preset="quick")


# ------------------------------------------------------------- adaptive attacks


class _Noise(nn.Module):
    def forward(self, x):
        return x + 0.2 * torch.randn_like(x)


class _Quantise(nn.Module):
    def forward(self, x):
        return torch.round(x * 32) / 32


class _Softmax100(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return (100 * self.inner(x)).softmax(1)


def test_apgd_keeps_the_latest_adversarial_iterate():
    """Decision (issue 16.3): APGD keeps the *latest* misclassified iterate, as
    AutoAttack does (on a randomised model later iterates lie deeper: on a noisy MNIST
    CNN the first iterate left 67.6 % robust under fresh noise, the latest 64.4 %)."""
    seen = []

    class Tracing(Recorder):
        def forward(self, x):
            out = super().forward(x)
            if x.requires_grad:
                seen.append((x.detach().clone(), out.detach().argmax(1)))
            return out

    x, y = _images(n=24, seed=1)
    m = Tracing()
    with torch.no_grad():
        y = m(x).argmax(1)
    xa, info = A.APGD(eps=0.3, steps=12)(m, x, y, return_info=True)
    assert len(seen) == 13 and info["success"].sum() >= 5
    wrong = torch.stack([p != y for _, p in seen])  # (iterates, N)
    for i in info["success"].nonzero().squeeze(1):
        last = int(wrong[:, i].nonzero().max())
        assert torch.equal(xa[i], seen[last][0][i])
    assert any(
        int(wrong[:, i].nonzero().max()) != int(wrong[:, i].nonzero().min())
        for i in info["success"].nonzero().squeeze(1)
    )  # the case is not trivial: first and last differ


def test_adaptive_answers_on_masked_models(data_root):
    """Noise (sigma 0.2), quantised inputs and softmax(100 z): the adaptive evaluation
    (chosen automatically, BPDA by name) lands within a few points of the unmasked
    model, while the plain attack is fooled by the quantised and softmax models.
    (softmax(100 z): log p recovers gradients only where p does not underflow, even in
    float64; APGD-CE alone measured 70.0 % plain, 66.7 % with log p, 61.3 % unmasked;
    with Square after it 69.3 / 64.0 / 60.7 %.)"""
    from test_attacks import _mnist_model

    base, xt, yt = _mnist_model(data_root, 1500, 150, seconds_epochs=3)
    spec = [A.APGD(eps=0.1, steps=30), A.Square(eps=0.1, queries=300)]

    def ra(model, **kw):
        res = E.evaluate(model, (xt, yt), attacks=spec, checks=False, **kw)
        return float(res.robust_accuracy[0]), res.meta["adaptive"]

    ref, applied = ra(base)
    assert applied == [] and ref < 0.8
    quant = nn.Sequential()
    quant.add_module("quantise", _Quantise())
    quant.add_module("net", base)
    plain, _ = ra(quant, adaptive=None)
    got, applied = ra(quant, bpda=["quantise"])
    assert applied == ["bpda"] and abs(got - ref) <= 0.04 and plain > ref + 0.05
    soft = _Softmax100(base)
    with pytest.warns(UserWarning, match="probabilities"):
        plain, _ = ra(soft, adaptive=None)
    got, applied = ra(soft)
    assert applied == ["logits"] and abs(got - ref) <= 0.05 and plain > ref + 0.05
    torch.manual_seed(0)
    noisy = nn.Sequential(_Noise(), base)
    got, applied = ra(noisy, eot_iter=10)
    assert applied == ["eot"] and abs(got - ref) <= 0.06
    with pytest.raises(ValueError, match="bpda"):
        ra(base, adaptive=["bpda"])
    with pytest.raises(ValueError, match="no submodule"):
        ra(quant, bpda=["quantize"])


class _QuarterSteps(nn.Module):
    """A non-differentiable input transform (zero gradient almost everywhere)."""

    def forward(self, x):
        return torch.round(x * 4) / 4


class _SoftmaxOut(nn.Module):
    def forward(self, z):
        return torch.softmax(z, dim=1)


def test_cli_certify_and_adaptive_flags(tmp_path, data_root, capsys):
    """``--certify`` brackets robust accuracy with the CROWN certificate (the same
    certified points as ``certify.certify``); ``--adaptive`` / ``--bpda`` /
    ``--eot-iter`` reach ``evaluate`` (applied answers and attack settings in the
    metadata); bad combinations are one-line errors raised before any loading (fail
    before the CLI had these flags)."""
    from landscape import certify, data
    from landscape.evaluate.__main__ import main

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 5, stride=3), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10)
    )
    paths = {}
    for name, m in {
        "relu": net,
        "softmax": nn.Sequential(net, _SoftmaxOut()),
        "quantised": nn.Sequential(
            collections.OrderedDict(quantise=_QuarterSteps(), net=net)
        ),
    }.items():
        paths[name] = str(tmp_path / f"{name}.pt")
        torch.save(m, paths[name])
    common = ["--trust-checkpoint", "--data-root", str(data_root), "--num-samples"]
    common += ["30", "--eps", "0.01", "--preset", "quick", "--no-checks"]
    out = tmp_path / "ev"

    def run(model: str, *flags: str) -> E.EvalResult:
        assert main([paths[model], *common, *flags, "--out", str(out)]) == 0
        return E.EvalResult.load(out / "eval_linf.npz")

    res = run("relu", "--certify")
    cert, attacked = res.bracket
    x, y = data.load_dataset(
        "mnist",
        data_root,
        split="test",
        num_samples=30,
        generator=torch.Generator().manual_seed(0),
    )
    ref = certify.certify(net, (x, y), eps=0.01)
    np.testing.assert_array_equal(np.asarray(res.certified)[0], ref.certified[0])
    assert 0 < cert[0] <= attacked[0]
    assert "certified" in capsys.readouterr().out
    assert run("softmax").meta["adaptive"] == ["logits"]  # auto: logits recovery
    assert run("softmax", "--adaptive", "none").meta["adaptive"] == []
    assert run("quantised", "--bpda", "quantise").meta["adaptive"] == ["bpda"]
    res = run("relu", "--adaptive", "eot", "eot", "--eot-iter", "3")
    assert res.meta["adaptive"] == ["eot"] and res.meta["attacks"][0]["eot_iter"] == 3
    (out / "eval_linf.state.pt").write_bytes(b"kept")
    capsys.readouterr()  # the progress lines of the runs above (stderr is a log here)
    for bad, msg in (
        (["--adaptive", "bpda"], "needs the transforms"),
        (["--adaptive", "auto", "eot"], "stand alone"),
        (["--bpda", "quantise", "--adaptive", "eot"], "is not used"),
        (["--eot-iter", "0"], "eot-iter"),
    ):
        argv = [paths["relu"], *common, *bad, "--no-resume", "--out", str(out)]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1, err
    # the usage errors came before --no-resume could delete the state file
    assert (out / "eval_linf.state.pt").read_bytes() == b"kept"


def test_cli_attack_list_and_certify_method(tmp_path, data_root, capsys):
    """``--attacks NAME:key=value,...`` runs that sequence (the same result as
    ``evaluate(attacks=[...])``); ``--certify crown-ibp`` / ``evaluate(certify=
    "ibp")`` choose the certificate's method (recorded in the metadata); bad lists
    are one-line errors (fail before the CLI had these flags)."""
    from landscape import certify, data
    from landscape.certify._bounds import METHODS
    from landscape.evaluate.__main__ import main

    assert E._protocol.CERTIFY_METHODS == METHODS
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 5, stride=3), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10)
    )
    path = str(tmp_path / "net.pt")
    torch.save(net, path)
    common = ["--trust-checkpoint", "--data-root", str(data_root), "--num-samples"]
    common += ["30", "--eps", "0.05", "--no-checks", "--out", str(tmp_path / "ev")]
    x, y = data.load_dataset(
        "mnist", data_root, split="test", num_samples=30,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    specs = ["apgd:loss=dlr,steps=5", "pgd:steps=4,alpha_rel=(0.5,0.25)"]
    specs += ["Square:queries=20"]
    assert main([path, *common, "--attacks", *specs, "--certify", "crown-ibp"]) == 0
    res = E.EvalResult.load(tmp_path / "ev" / "eval_linf.npz")
    attacks = [
        A.APGD(eps=0.05, loss="dlr", steps=5),
        A.PGD(eps=0.05, steps=4, alpha_rel=(0.5, 0.25), loss="ce", keep="best"),
        A.Square(eps=0.05, queries=20),
    ]
    assert res.meta["attacks"] == [a.to_dict() for a in attacks]
    ref = E.evaluate(
        net, (x, y), attacks=attacks, generator=torch.Generator().manual_seed(0),
        checks=False, certify="ibp",
    )  # fmt: skip
    np.testing.assert_array_equal(res.robust_correct, ref.robust_correct)
    assert res.meta["certify"] == "crown-ibp" and ref.meta["certify"] == "ibp"
    for method, ev in (("crown-ibp", res), ("ibp", ref)):
        cert = certify.certify(net, (x, y), eps=0.05, method=method).certified
        np.testing.assert_array_equal(np.asarray(ev.certified), cert)
    with pytest.raises(ValueError, match="certify must be"):
        E.evaluate(net, (x, y), eps=0.05, certify="crown-ibd")
    capsys.readouterr()
    for bad, msg in (
        (["--attacks", "nope"], "unknown attack 'nope'"),
        (["--attacks", "pgd", "--steps", "5"], "--steps would be ignored"),
        (["--attacks", "pgd", "--preset", "quick"], "--preset quick would be"),
        (["--attacks", "pgd:eps=0.1"], "give eps with"),
        (["--attacks", "pgd:stepz=3"], "does not make a PGD"),
        (["--attacks", "square:queries"], "is not key=value"),
    ):
        assert main([path, *common, *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1, err
    assert main([path, *common, "--certify", "crown-ibd"]) == 2


def test_attacks_query_a_channels_last_copy_on_cpu(monkeypatch):
    """On CPU the attacks of ``evaluate`` query a channels-last copy of a
    convolutional model (faster CPU convolutions, issue 29) while the verdicts stay
    the model's own: the same robust points as attacking the model itself (fails
    without the copy: the attacks would see the model, in its default layout)."""
    import landscape.evaluate._protocol as P

    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 5),
    ).eval()  # fmt: skip
    x, _ = _images(40)
    with torch.no_grad():
        model[5].bias.zero_()
        model[5].weight.mul_(10)  # predictions spread over the 5 classes
        y = model(x).argmax(1)
    seen = []
    alive = P._attack_alive

    def spy(models, *args, **kwargs):
        seen.append(models)
        return alive(models, *args, **kwargs)

    monkeypatch.setattr(P, "_attack_alive", spy)
    kw = dict(eps=0.05, preset="standard", scale=0.1, checks=False, adaptive=None)
    res = E.evaluate(model, (x, y), generator=torch.Generator().manual_seed(0), **kw)
    attacked, judge = seen[0]
    assert judge is model and attacked is not model
    w = getattr(attacked, "fast", attacked)[2].weight
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    assert model[2].weight.is_contiguous()  # the caller's model is untouched
    monkeypatch.setattr(P, "_fast_layout", lambda m, first: m)
    ref = E.evaluate(model, (x, y), generator=torch.Generator().manual_seed(0), **kw)
    assert 0 < ref.robust_accuracy[0] < 1
    np.testing.assert_array_equal(res.robust_correct, ref.robust_correct)


def test_attack_copy_pools_before_relu_bitwise():
    """The attacks' copy runs ``ReLU -> MaxPool2d`` as ``MaxPool2d -> ReLU`` (issue
    29: the ReLU on a 4x smaller tensor): the same logits and input gradients,
    bitwise, windows with no positive value included, and the same verdicts of
    ``evaluate`` as attacking a copy without the swap (fails without the swap: the
    copy keeps the caller's order)."""
    import landscape.evaluate._protocol as P

    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        nn.Flatten(), nn.Linear(4 * 4, 5),
    ).eval()  # fmt: skip
    with torch.no_grad():
        model[0].bias.sub_(0.1)  # many windows without a positive value
    x, _ = _images(40)
    fast = P._fast_layout(model, x).fast  # (inside the frozen-inference wrapper)
    assert [type(m) for m in fast[:6]] == [
        P._SmallInputConv, nn.MaxPool2d, nn.ReLU, nn.Conv2d, nn.MaxPool2d, nn.ReLU
    ]  # fmt: skip
    assert type(model[1]) is nn.ReLU  # the caller's model is untouched
    plain = P.copy.deepcopy(model)
    P._input_convs(plain)
    plain = plain.to(memory_format=torch.channels_last)
    for m in (fast, plain):
        for q in m.parameters():
            q.requires_grad_(False)
    grads = []
    for m in (fast, plain):
        xi = x.clone().requires_grad_(True)
        out = m(xi)
        (g,) = torch.autograd.grad(out[:, 2].sum() - out[:, 0].sum(), xi)
        grads.append((out, g))
    assert torch.equal(grads[0][0], grads[1][0])
    assert torch.equal(grads[0][1], grads[1][1]) and grads[0][1].abs().sum() > 0
    with torch.no_grad():
        model[7].weight.mul_(10)
        model[7].bias.zero_()
        model[7].bias.sub_(model(x).mean(0))  # predictions spread over the classes
        y = model(x).argmax(1)
    kw = dict(eps=0.02, preset="standard", scale=0.1, checks=False, adaptive=None)
    res = E.evaluate(model, (x, y), generator=torch.Generator().manual_seed(0), **kw)
    swap = P._pool_before_relu
    try:
        P._pool_before_relu = lambda m: 0
        ref = E.evaluate(
            model, (x, y), generator=torch.Generator().manual_seed(0), **kw
        )
    finally:
        P._pool_before_relu = swap
    assert 0 < ref.robust_accuracy[0] < 1
    np.testing.assert_array_equal(res.robust_correct, ref.robust_correct)
    np.testing.assert_array_equal(res.broken_by, ref.broken_by)


@pytest.mark.parametrize(
    "conf", [dict(padding=2), dict(stride=2, padding=(1, 2), dilation=2, bias=False)]
)
def test_small_input_conv_gradients(conf):
    """The attacks' copy computes the input gradient of a convolution of few input
    channels by a matrix product and shifted sums (issue 29: oneDNN's backward-data
    kernel is slow there): the same forward (bitwise) and input, weight and bias
    gradients as PyTorch's to float rounding (fails with a misplaced shift)."""
    import landscape.evaluate._protocol as P

    torch.manual_seed(4)
    conv = nn.Conv2d(3, 6, 5, **conf)
    wrapped = nn.Sequential(copy.deepcopy(conv))
    assert P._input_convs(wrapped) == 1 and isinstance(wrapped[0], P._SmallInputConv)
    x = torch.rand(7, 3, 13, 11)
    w = torch.randn(7, 6, *conv(x).shape[2:])
    grads = []
    for m in (conv, wrapped):
        xi = x.clone().requires_grad_(True)
        out = m(xi)
        params = [p for p in m.parameters()]
        gs = torch.autograd.grad((out * w).sum(), [xi, *params])
        grads.append((out, gs))
    assert torch.equal(grads[0][0], grads[1][0])
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        assert torch.equal(wrapped(x), conv(x))


class _BranchOnBatch(nn.Module):
    """A model whose Python control flow depends on the batch size (a trace
    records one branch)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 36, 5)

    def forward(self, x):
        z = self.fc(self.conv(x).flatten(1))
        return z if x.shape[0] > 1 else -z


class _Noisy(_BranchOnBatch):
    def forward(self, x):
        return self.fc(self.conv(x + 0.01 * torch.randn_like(x)).flatten(1))


def test_attack_copy_frozen_inference(monkeypatch):
    """Forward passes without autograd (Square's queries, FAB's checks) run a
    frozen TorchScript trace of the attacks' copy (issue 29): the same verdicts
    as the eager copy, no eager forward left in Square (fails without the
    wrapper); models a trace would get wrong (control flow on the batch size,
    randomness) keep the eager copy, and probing them leaves torch's global RNG
    as it was."""
    import landscape.evaluate._protocol as P

    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 16, 5),
    ).eval()  # fmt: skip
    x, _ = _images(40)
    with torch.no_grad():
        model[4].weight.mul_(10)
        model[4].bias.zero_()
        model[4].bias.sub_(model(x).mean(0))
        y = model(x).argmax(1)
    fast = P._fast_layout(model, x)
    assert isinstance(fast, P._NoGradFrozen)
    eager = []
    fast.fast.register_forward_hook(lambda m, a, out: eager.append(out.shape[0]))
    A.Square(eps=0.05, queries=20)(fast, x, y, torch.Generator().manual_seed(0))
    assert eager == []  # every query ran the frozen trace
    kw = dict(eps=0.03, preset="standard", scale=0.1, checks=False, adaptive=None)
    res = E.evaluate(model, (x, y), generator=torch.Generator().manual_seed(0), **kw)
    monkeypatch.setattr(P, "_frozen_inference", lambda fast, first: None)
    ref = E.evaluate(model, (x, y), generator=torch.Generator().manual_seed(0), **kw)
    assert 0 < ref.robust_accuracy[0] < 1
    np.testing.assert_array_equal(res.robust_correct, ref.robust_correct)
    np.testing.assert_array_equal(res.broken_by, ref.broken_by)
    monkeypatch.undo()
    for bad in (_BranchOnBatch().eval(), _Noisy().eval()):
        state = torch.random.get_rng_state()
        assert P._frozen_inference(bad, x) is None
        # the probes of a randomised model leave torch's global RNG as it was
        assert torch.equal(torch.random.get_rng_state(), state)
        assert not isinstance(P._fast_layout(bad, x), P._NoGradFrozen)

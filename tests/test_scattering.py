"""Tests for landscape.scattering: closed forms on a linear model, the smooth eps = 0
limit against a double-backward HVP, scattering on a trained ReLU toy model, and the
housekeeping (model untouched, bad input, save/load, training logs, plots)."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _helpers import tiny_train_config
from torch.func import functional_call

from landscape import _utils, attacks
from landscape import scattering as sc

matplotlib.use("Agg")

DT = torch.float64


def _logistic(out, y):
    """Binary logistic loss with +-1 labels on a one-logit model."""
    return F.softplus(-y * out.squeeze(-1)).mean()


def _linear_case(seed=0, n=16, d=6, eps=0.1):
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(d, 1).to(DT)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, d, generator=g, dtype=DT))
        model.bias.copy_(torch.randn(1, generator=g, dtype=DT) * 0.1)
    # data strictly inside [eps, 1 - eps]: the [0, 1] clamp never binds
    x = (
        eps
        + (1 - 2 * eps) * torch.rand(n, d, generator=g, dtype=DT) * 0.98
        + 0.01 * eps
    )
    y = torch.randint(0, 2, (n,), generator=g).to(DT) * 2 - 1
    return model, x, y


def _analytic_grad(w, b, x, y, eps):
    """Gradient of mean softplus(-y (w.x + b) + eps ||w||_1) (worst case x - y eps sign w)."""
    m = y * (x @ w + b) - eps * w.abs().sum()
    c = torch.sigmoid(-m)  # -dloss/dm per example
    gw = -(c[:, None] * (y[:, None] * x - eps * torch.sign(w)[None, :])).mean(0)
    gb = -(c * y).mean()
    return torch.cat([gw, gb.view(1)])


@pytest.mark.parametrize("random_start", [True, False])
def test_linear_adversarial_gradient_matches_closed_form(random_start):
    eps = 0.1
    model, x, y = _linear_case(eps=eps)
    grads, xa = sc.adversarial_gradient(
        model,
        _logistic,
        x,
        y,
        attack=attacks.PGD(eps=eps, steps=10, random_start=random_start),
        generator=torch.Generator().manual_seed(3),
    )
    w, b = model.weight.detach()[0], model.bias.detach()[0]
    assert torch.allclose(xa, x - y[:, None] * eps * torch.sign(w), atol=1e-12)
    got = _utils.flatten(grads)
    assert torch.allclose(got, _analytic_grad(w, b, x, y, eps), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("strategy", ["vmap", "loop"])
def test_linear_scattering_matches_closed_form(strategy):
    eps = 0.1
    model, x, y = _linear_case(seed=1, eps=eps)
    g = torch.Generator().manual_seed(5)
    names = [n for n, _ in model.named_parameters()]
    dirs = []
    for _ in range(3):
        v = torch.randn(7, generator=g, dtype=DT)
        dirs.append(_utils.unflatten(v / v.norm(), dict(model.named_parameters())))
    dirs = [{n: t.detach() for n, t in d.items()} for d in dirs]
    scales = np.array([1e-3, 0.05, 0.3, 1.0])  # large scales flip signs of w
    res = sc.scattering(
        model,
        _logistic,
        [(x, y), (x[:8], y[:8])],
        attack=attacks.PGD(eps=eps, steps=10),
        eps=[0.0, eps],
        scales=scales,
        directions=dirs,
        strategy=strategy,
        generator=g,
    )
    w0, b0 = model.weight.detach()[0], model.bias.detach()[0]
    flipped = False
    for e, ep in enumerate([0.0, eps]):
        for bi, (xb, yb) in enumerate([(x, y), (x[:8], y[:8])]):
            g0 = _analytic_grad(w0, b0, xb, yb, ep)
            assert res.grad_norm[e, bi] == pytest.approx(float(g0.norm()), rel=1e-9)
            for di, d in enumerate(dirs):
                for si, s in enumerate(scales):
                    w1, b1 = w0 + s * d[names[0]][0], b0 + s * d[names[1]][0]
                    g1 = _analytic_grad(w1, b1, xb, yb, ep)
                    want = float((g1 - g0).norm())
                    assert res.grad_diff[e, di, si, bi] == pytest.approx(want, rel=1e-6)
                    assert res.ratio[e, di, si, bi] == pytest.approx(want / s, rel=1e-6)
                    cos = float(g1 @ g0 / (g1.norm() * g0.norm()))
                    assert res.cosine[e, di, si, bi] == pytest.approx(cos, abs=1e-9)
                    if ep > 0:  # x_adv - x = -y eps sign(w): cosine of sign vectors
                        sg0, sg1 = torch.sign(w0), torch.sign(w1)
                        pc = float((sg0 * sg1).sum() / len(sg0))
                        flipped |= pc < 1
                        assert res.pert_cosine[e, di, si, bi] == pytest.approx(
                            pc, abs=1e-9
                        )
                        assert res.sign_cosine[e, di, si, bi] == pytest.approx(
                            pc, abs=1e-9
                        )
                    else:
                        assert res.pert_cosine[e, di, si, bi] == 1.0
    assert flipped, "test setup: some scale should flip a weight sign"
    assert np.allclose(res.step_norm, scales[None, :])


def _tanh_mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).to(DT)


def _hvp(model, x, y, v):
    p = {
        n: t.detach().clone().requires_grad_(True) for n, t in model.named_parameters()
    }
    loss = F.cross_entropy(functional_call(model, p, (x,)), y)
    g = torch.autograd.grad(loss, list(p.values()), create_graph=True)
    gv = sum((gi * v[n]).sum() for gi, n in zip(g, p))
    return _utils.flatten(list(torch.autograd.grad(gv, list(p.values()))))


def test_smooth_eps0_ratio_bounded_and_equals_hvp():
    model = _tanh_mlp()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 5, generator=g, dtype=DT)
    y = torch.randint(0, 3, (32,), generator=g)
    scales = [1e-5, 1e-4, 1e-3, 1e-2]
    res = sc.scattering(
        model,
        None,
        [(x, y)],
        attack=attacks.PGD(eps=0.0),
        scales=scales,
        directions="unit",
        num_directions=3,
        generator=g,
    )
    dirs = sc.scatter_directions(
        model, kind="unit", num=3, generator=torch.Generator().manual_seed(1)
    )
    for d in dirs:
        assert float(_utils.flatten(d).norm()) == pytest.approx(1.0, rel=1e-12)
    # recompute the directions the call drew to compare with an exact HVP
    res2 = sc.scattering(
        model,
        None,
        [(x, y)],
        attack=attacks.PGD(eps=0.0),
        scales=[1e-5, 1e-4],
        directions=dirs,
        generator=g,
    )
    for di, d in enumerate(dirs):
        hv = float(_hvp(model, x, y, d).norm())
        assert res2.ratio[0, di, 1, 0] == pytest.approx(hv, rel=1e-3)
    r = res.ratio[0]
    assert np.all(r[:, 1] <= 2 * r[:, 3]) and np.all(r[:, 3] <= 2 * r[:, 1])
    exc = res.excess()
    assert np.all(np.abs(exc) < 1e-3 * res.grad_diff[:, :, -1, :])  # intercept ~ 0
    assert np.all(res.cosine > 0.99)


def _trained_toy(seed=0, act=torch.nn.ReLU):
    g = torch.Generator().manual_seed(seed)
    d = 40
    mu = torch.rand(3, d, generator=g, dtype=DT)
    y = torch.randint(0, 3, (256,), generator=g)
    x = (mu[y] + 0.5 * torch.randn(256, d, generator=g, dtype=DT)).clamp(0, 1)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(d, 32), act(), torch.nn.Linear(32, 3))
    model = model.to(DT)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(60):
        i = torch.randint(0, 256, (64,), generator=g)
        xa = attacks.PGD(eps=0.1, steps=3)(model, x[i], y[i], g)
        loss = F.cross_entropy(model(xa), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, [(x[:128], y[:128]), (x[128:], y[128:])]


def test_relu_excess_positive_and_grows_with_eps():
    model, data = _trained_toy()
    res = sc.scattering(
        model,
        None,
        data,
        attack=attacks.PGD(eps=0.3, steps=5),
        eps=[0.0, 0.1, 0.2, 0.3],
        scales=[1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
        num_directions=4,
        generator=torch.Generator().manual_seed(1),
    )
    exc = res.excess().mean(axis=(1, 2))
    assert exc[1] > 0
    assert np.all(np.diff(exc[1:]) > 0), exc
    assert exc[3] > 10 * abs(exc[0]), exc
    # the gradient-Lipschitz ratio at the smallest scale grows with eps too
    r0 = res.ratio[:, :, 0].mean(axis=(1, 2))
    assert r0[3] > 10 * r0[0], r0


def test_perturbation_cosine_is_one_as_s_to_0():
    model = _tanh_mlp(1)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 5, generator=g, dtype=DT)
    y = torch.randint(0, 3, (16,), generator=g)
    for rs in (True, False):
        res = sc.scattering(
            model,
            None,
            [(x, y)],
            attack=attacks.PGD(eps=0.2, random_start=rs),
            eps=[0.05, 0.2],
            scales=[1e-10],
            num_directions=2,
            generator=g,
        )
        assert np.all(res.pert_cosine == pytest.approx(1.0, abs=1e-12))
        assert np.all(res.sign_cosine == pytest.approx(1.0, abs=1e-12))
    # the attack at w is reproducible: same seed gives the same x_adv (s = 0)
    pgd = attacks.PGD(eps=0.1)
    a = sc.adversarial_gradient(
        model, None, x, y, attack=pgd, generator=torch.Generator().manual_seed(7)
    )
    b = sc.adversarial_gradient(
        model, None, x, y, attack=pgd, generator=torch.Generator().manual_seed(7)
    )
    assert torch.equal(a[1], b[1])


@pytest.mark.parametrize(
    "attack",
    [
        attacks.PGD(eps=0.1, steps=4),
        attacks.PGD(eps=0.1, norm="l2", steps=3, alpha_rel=0.5),
        attacks.FGSMRS(eps=0.1),
        attacks.PGD(eps=0.1, steps=2, random_start=False),
    ],
)
def test_batched_equals_the_attack_point_by_point_and_chunks(attack):
    # the vmap path replays the attack with its init and step: the same numbers as
    # calling the attack at every weight point (the loop)
    model, data = _trained_toy(seed=2)
    kw = dict(
        attack=attack, eps=[0.0, 0.1], scales=[1e-2, 1e-1], num_directions=2,
        num_batches=1,
    )  # fmt: skip

    def run(**how):
        g = torch.Generator().manual_seed(0)
        return sc.scattering(model, None, data, generator=g, **kw, **how)

    ref = run(strategy="loop")
    for chunk in (None, 2):
        got = run(chunk_size=chunk)
        for f in ("grad_diff", "cosine", "pert_cosine", "sign_cosine", "loss"):
            assert np.allclose(getattr(got, f), getattr(ref, f), rtol=1e-9, atol=1e-12)


def test_model_unchanged_and_mode_restored():
    model, data = _trained_toy(seed=1)
    model.train()
    model.zero_grad(set_to_none=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sc.scattering(
        model,
        None,
        data,
        attack=attacks.PGD(eps=0.1),
        scales=[1e-2],
        num_directions=1,
        num_batches=1,
        generator=torch.Generator().manual_seed(0),
    )
    sc.gradient_norms(model, None, data[:1], attack=attacks.PGD(eps=0.1))
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in model.parameters())


def test_bad_input():
    model = _tanh_mlp()
    data = [(torch.rand(4, 5, dtype=DT), torch.tensor([0, 1, 2, 0]))]
    pgd = attacks.PGD(eps=0.1)
    with pytest.raises(ValueError, match="eps"):
        sc.scattering(model, None, data, attack=pgd, eps=[-0.1], scales=[1e-2])
    with pytest.raises(ValueError, match="empty"):
        sc.scattering(model, None, data, attack=pgd, scales=[])
    for bad in ([0.0], [-1e-3], [float("nan")]):
        with pytest.raises(ValueError, match="> 0"):
            sc.scattering(model, None, data, attack=pgd, scales=bad)
    with pytest.raises(ValueError, match="no batches"):
        sc.scattering(model, None, [], attack=pgd, scales=[1e-2])
    with pytest.raises(ValueError, match="names"):
        sc.scattering(
            model,
            None,
            data,
            attack=pgd,
            scales=[1e-2],
            directions=[{"nope": torch.ones(3)}],
        )
    with pytest.raises(ValueError, match="kind"):
        sc.scattering(model, None, data, attack=pgd, scales=[1e-2], directions="bogus")
    with pytest.raises(ValueError, match="eps"):
        sc.gradient_norms(model, None, data, attack=pgd, eps=-1.0)
    with pytest.raises(TypeError, match="attack"):  # the attack is required
        sc.scattering(model, None, data, eps=0.1, scales=[1e-2])


def test_filter_and_hessian_directions():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)
    ).to(DT)
    g = torch.Generator().manual_seed(0)
    (d,) = sc.scatter_directions(model, kind="filter", num=1, generator=g)
    for n, w in model.named_parameters():
        if w.ndim == 1:
            assert torch.count_nonzero(d[n]) == 0
        else:
            assert torch.allclose(d[n].norm(dim=1), w.detach().norm(dim=1))
    x = torch.rand(16, 4, generator=g, dtype=DT)
    y = torch.randint(0, 2, (16,), generator=g)
    dirs = sc.scatter_directions(
        model, F.cross_entropy, [(x, y)], kind="hessian", num=1, generator=g
    )
    params = dict(model.named_parameters())
    flat = _utils.flatten({n: p.detach() for n, p in params.items()})

    def loss_of(v):
        p = _utils.unflatten(v, {n: t.detach() for n, t in params.items()})
        return F.cross_entropy(functional_call(model, p, (x,)), y)

    H = torch.autograd.functional.hessian(loss_of, flat)
    top = torch.linalg.eigvalsh(H)[-1]
    v = _utils.flatten(dirs[0])
    assert float(v.norm()) == pytest.approx(1.0, rel=1e-6)
    assert float(v @ H @ v) == pytest.approx(float(top), rel=1e-2)


def test_gradient_norms_linear_closed_form_and_vmap_vs_loop():
    eps = 0.1
    model, x, y = _linear_case(seed=2, eps=eps)
    st = sc.gradient_norms(
        model,
        _logistic,
        [(x[:10], y[:10]), (x[10:], y[10:])],
        attack=attacks.PGD(eps=eps, steps=10),
        eps=[0.0, eps],
        generator=torch.Generator(),
    )
    w, b = model.weight.detach()[0], model.bias.detach()[0]
    for e, ep in enumerate([0.0, eps]):
        m = y * (x @ w + b) - ep * w.abs().sum()
        v = y[:, None] * x - ep * torch.sign(w)[None, :]
        want = torch.sigmoid(-m) * torch.sqrt((v**2).sum(1) + 1)
        assert np.allclose(st.per_example[e], want.numpy(), rtol=1e-9)
        bn = float(_analytic_grad(w, b, x[:10], y[:10], ep).norm())
        assert st.batch[e, 0] == pytest.approx(bn, rel=1e-9)
    s = st.summary()
    assert s["median"].shape == (2,) and np.all(s["q05"] <= s["q95"])
    mlp = _tanh_mlp()
    xx, yy = torch.rand(7, 5, dtype=DT), torch.randint(0, 3, (7,))
    a = sc.per_example_grad_norms(mlp, None, xx, yy, method="vmap")
    b2 = sc.per_example_grad_norms(mlp, None, xx, yy, method="loop")
    assert torch.allclose(a, b2, rtol=1e-10)


def _pgd_scattering(model, data, scales, **kw) -> sc.ScatteringResult:
    """Scattering of ``model`` (its own loss) under PGD at 0.1 along two directions,
    seeded."""
    return sc.scattering(
        model,
        None,
        data,
        attack=attacks.PGD(eps=0.1),
        scales=scales,
        num_directions=2,
        generator=torch.Generator().manual_seed(0),
        **kw,
    )


def test_result_roundtrip(tmp_path):
    model = _tanh_mlp()
    data = [(torch.rand(8, 5, dtype=DT), torch.randint(0, 3, (8,)))]
    res = _pgd_scattering(model, data, [1e-3, 1e-2], eps=[0.0, 0.1])
    assert res.ratio.shape == (2, 2, 2, 1)
    back = sc.ScatteringResult.load(res.save(tmp_path / "s.npz"))
    assert np.array_equal(back.grad_diff, res.grad_diff)
    assert back.meta["attack_seeds"] == res.meta["attack_seeds"]
    assert np.allclose(back.excess(), res.excess())
    both = sc.concat_eps([res, back])
    assert both.ratio.shape == (4, 2, 2, 1)
    assert np.array_equal(both.eps, [0.0, 0.1, 0.0, 0.1])
    assert np.allclose(both.excess()[2:], res.excess())
    other = _pgd_scattering(model, data, [1e-3, 1e-1])
    with pytest.raises(ValueError, match="scales"):
        sc.concat_eps([res, other])


def test_summarize_training_gradnorms(tmp_path):
    recs = [
        {"epoch": i, "eps": 0.1 * i / 3, "grad_norm": 1.0 + i, "loss": 0.5}
        for i in range(4)
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in recs))
    # the trainer's config.json: the target eps is the training attack's
    cfg = {"attack": attacks.PGD(eps=0.1).to_dict()}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    t = sc.summarize_training_gradnorms(tmp_path)
    assert np.array_equal(t.epoch, [0, 1, 2, 3])
    assert np.array_equal(t.values["grad_norm"], [1.0, 2.0, 3.0, 4.0])
    assert t.target_eps == pytest.approx(0.1)
    assert np.allclose(t.eps, [0, 0.1 / 3, 0.2 / 3, 0.1])
    t2 = sc.summarize_training_gradnorms(recs)
    assert np.array_equal(t2.values["grad_norm"], t.values["grad_norm"])
    csv = tmp_path / "c"
    csv.mkdir()
    (csv / "metrics.csv").write_text("epoch,train_grad_norm\n0,2.5\n1,3.5\n")
    t3 = sc.summarize_training_gradnorms(csv)
    assert np.array_equal(t3.values["train_grad_norm"], [2.5, 3.5])
    with pytest.raises(ValueError, match="grad"):
        sc.summarize_training_gradnorms([{"epoch": 0, "loss": 1.0}])
    with pytest.raises(FileNotFoundError):
        sc.summarize_training_gradnorms(tmp_path / "missing")


def test_plots(tmp_path):
    import matplotlib.pyplot as plt

    from landscape import plot

    model = _tanh_mlp()
    data = [(torch.rand(8, 5, dtype=DT), torch.randint(0, 3, (8,)))] * 2
    res = _pgd_scattering(model, data, [1e-3, 1e-2, 1e-1], eps=[0.0, 0.1])
    st = sc.gradient_norms(model, None, data, attack=attacks.PGD(eps=0.1), eps=[0, 0.1])
    tg = sc.summarize_training_gradnorms(
        [{"epoch": i, "grad_norm": i} for i in range(3)]
    )
    for stat in ("ratio", "cosine"):
        for kind in ("violin", "hist"):
            assert (
                plot.plot_scattering_distribution(res, stat=stat, kind=kind) is not None
            )
    axes = [
        plot.plot_excess_vs_eps({"tanh": res}),
        plot.plot_ratio_vs_scale(res),
        plot.plot_perturbation_cosine(res),
        plot.plot_gradient_scatter(res),
        plot.plot_cosine_map(res),
        plot.plot_gradnorm_distribution(st),
        plot.plot_training_gradnorms({0.1: tg}),
    ]
    for ax in axes:
        assert ax is not None
    plot.savefig(axes[0].figure, tmp_path / "x.png")
    assert (tmp_path / "x.png").stat().st_size > 0
    plt.close("all")


@pytest.mark.data
def test_cli_on_mnist(tmp_path, data_root, capsys):
    from landscape import models

    torch.manual_seed(0)
    model = models.build("mlp", hidden=(16,))
    torch.save(model, tmp_path / "m.pt")
    out = tmp_path / "r"
    from landscape.scattering.__main__ import main

    rc = main(
        [
            str(tmp_path / "m.pt"),
            "--trust-checkpoint",
            "--data-root",
            str(data_root),
            "--num-samples",
            "20",
            "--batch-size",
            "10",
            "--eps",
            "0",
            "0.1",
            "--scales",
            "1e-2",
            "1e-1",
            "--num-directions",
            "1",
            "--steps",
            "2",
            "--smooth-twin",
            "softplus",
            "--device",
            "cpu",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    res = sc.ScatteringResult.load(out / "scattering.npz")
    assert res.ratio.shape == (2, 1, 2, 2)
    twin = sc.ScatteringResult.load(out / "scattering_twin.npz")
    assert twin.meta["model_label"] == "twin"
    assert "excess" in capsys.readouterr().out


def test_summarize_real_trainer_run(tmp_path):
    from landscape.train import adversarial_train

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 2))
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(32, 8, generator=g), torch.randint(0, 2, (32,), generator=g)
    cfg = tiny_train_config(runtime={"amp": "off", "channels_last": False})
    run = adversarial_train(
        model, [(x[:16], y[:16]), (x[16:], y[16:])], cfg, run_dir=tmp_path / "run"
    )
    t = sc.summarize_training_gradnorms(tmp_path / "run")
    assert np.array_equal(t.epoch, np.asarray(run.metrics["epoch"], dtype=float))
    assert np.allclose(t.values["grad_norm_mean"], run.metrics["grad_norm_mean"])
    assert np.all(t.values["grad_norm_max"] >= t.values["grad_norm_mean"])
    assert t.target_eps == pytest.approx(0.1)


def test_relative_excess_is_the_excess_over_the_gradient_norm():
    """``relative_excess`` = intercept of ``||delta g||`` vs ``||s v||`` divided by
    ``||g(w)||`` of the same eps and batch (a hand computation on exact lines; NaN
    where the gradient is 0)."""
    from landscape.scattering import ScatteringResult

    rng = np.random.default_rng(0)
    E, D, S, B = 2, 3, 4, 2
    sn = rng.uniform(1e-3, 1e-1, size=(D, S))
    a = rng.uniform(0.1, 1.0, size=(E, D, B))  # the excess of each curve
    b = rng.uniform(1.0, 5.0, size=(E, D, B))
    gd = a[:, :, None, :] + b[:, :, None, :] * sn[None, :, :, None]
    gn = np.array([[2.0, 4.0], [0.5, 0.0]])
    z = np.zeros_like(gd)
    r = ScatteringResult(
        eps=np.array([0.1, 0.3]), scales=np.geomspace(1e-3, 1e-1, S), step_norm=sn,
        grad_diff=gd, ratio=gd / sn[None, :, :, None], cosine=z, grad_norm_pert=z,
        pert_cosine=z, sign_cosine=z, grad_norm=gn, loss=np.ones((E, B)),
    )  # fmt: skip
    rel = r.relative_excess()
    assert rel.shape == (E, D, B)
    for e in range(E):
        for d in range(D):
            for k in range(B):
                if gn[e, k] == 0:
                    assert np.isnan(rel[e, d, k])
                else:
                    assert rel[e, d, k] == pytest.approx(a[e, d, k] / gn[e, k])

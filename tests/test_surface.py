"""Loss surfaces: origin = plain loss, analytic quadratic, vmap = loop, adversarial
modes, resume, model untouched, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import conv_bn_net
from torch import nn

from landscape import attacks
from landscape import directions as D
from landscape import surface as S
from landscape.attacks import perturb_batches


def _plain_loss(model, loss_fn, data):
    model.eval()
    with torch.no_grad():
        n = sum(len(x) for x, _ in data)
        return sum(float(loss_fn(model(x), y)) * len(x) for x, y in data) / n


def test_origin_equals_plain_loss(tiny_case):
    model, loss_fn, data = tiny_case
    dirs = D.random_directions(model, generator=torch.Generator().manual_seed(0))
    s = S.loss_surface(model, loss_fn, data, dirs, xs=[-0.5, 0.0, 0.5], ys=[0.0, 1.0])
    assert s.loss.shape == (2, 3)
    np.testing.assert_allclose(
        s.loss[0, 1], _plain_loss(model, loss_fn, data), rtol=1e-12
    )
    assert s.center_loss == s.loss[0, 1]
    assert (s.accuracy is None) == isinstance(loss_fn, nn.MSELoss)
    line = S.loss_surface(model, loss_fn, data, [dirs[0]], xs=[0.0, 0.3])
    np.testing.assert_allclose(
        line.loss[0], _plain_loss(model, loss_fn, data), rtol=1e-12
    )


def test_quadratic_model_gives_analytic_surface():
    # Linear regression with MSE: L(w) = mean((X w - t)^2) is an exact quadratic in
    # (a, b) for w = c + a d1 + b d2.
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 5, generator=g, dtype=torch.float64)
    t = torch.randn(40, 1, generator=g, dtype=torch.float64)
    model = nn.Linear(5, 1, bias=False).double()
    d1 = {"weight": torch.randn(1, 5, generator=g, dtype=torch.float64)}
    d2 = {"weight": torch.randn(1, 5, generator=g, dtype=torch.float64)}
    xs, ys = np.linspace(-2, 2, 5), np.linspace(-1, 1.5, 4)
    data = [(X[:16], t[:16]), (X[16:], t[16:])]
    s = S.loss_surface(model, nn.MSELoss(), data, [d1, d2], xs=xs, ys=ys)
    Xn, tn, c = X.numpy(), t.numpy()[:, 0], model.weight.detach().numpy()[0]
    r0, u, v = Xn @ c - tn, Xn @ d1["weight"].numpy()[0], Xn @ d2["weight"].numpy()[0]
    A, B = np.meshgrid(xs, ys)
    expect = (
        np.mean(r0**2)
        + 2 * A * np.mean(r0 * u)
        + 2 * B * np.mean(r0 * v)
        + A**2 * np.mean(u**2)
        + B**2 * np.mean(v**2)
        + 2 * A * B * np.mean(u * v)
    )
    np.testing.assert_allclose(s.loss, expect, rtol=1e-10)


_bn_net = conv_bn_net


def _bn_data(n_batches=2, bs=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [
        (
            torch.rand(bs, 1, 6, 6, generator=g, dtype=torch.float64),
            torch.randint(0, 4, (bs,), generator=g),
        )
        for _ in range(n_batches)
    ]


def test_vmap_equals_loop_and_auto_batching():
    m, data = _bn_net(), _bn_data()
    dirs = D.random_directions(m, generator=torch.Generator().manual_seed(0))
    xs = np.linspace(-1, 1, 3)
    kw = dict(xs=xs, ys=xs[:2], batch_size=None)
    loop = S.loss_surface(m, nn.CrossEntropyLoss(), data, dirs, strategy="loop", **kw)
    vm = S.loss_surface(
        m, nn.CrossEntropyLoss(), data, dirs, strategy="vmap", chunk_size=4, **kw
    )
    assert loop.meta["strategy"] == "loop" and vm.meta["strategy"] == "vmap"
    np.testing.assert_allclose(vm.loss, loop.loss, rtol=1e-12)
    np.testing.assert_array_equal(vm.accuracy, loop.accuracy)
    assert np.ptp(loop.loss) > 0.1  # the directions matter
    rebatched = S.loss_surface(
        m, nn.CrossEntropyLoss(), data, dirs, xs=xs, ys=xs[:2], batch_size=7
    )
    np.testing.assert_allclose(rebatched.loss, loop.loss, rtol=1e-12)
    # auto: grid >= 32 points measures batch sizes and picks one of the candidates
    big = S.loss_surface(
        m, nn.CrossEntropyLoss(), data, dirs, xs=np.linspace(-1, 1, 6), ys=[0.0, 0.5]
    )
    assert big.meta["strategy"] == "loop" and big.meta["batch_size"] in (20,)


def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}, [
        mod.training for mod in m.modules()
    ]


def test_model_unchanged_and_bn_in_eval_mode():
    m, data = _bn_net(), _bn_data()
    m.train()
    before, modes = _state(m)
    dirs = D.random_directions(m, generator=torch.Generator().manual_seed(0))
    for adv in (None, "fixed", "reattack"):
        S.loss_surface(
            m, nn.CrossEntropyLoss(), data, dirs, xs=[0.0, 1.0], ys=[0.0],
            adversarial=adv, attack=attacks.PGD(eps=0.1, steps=2) if adv else None,
        )  # fmt: skip
    after, modes_after = _state(m)
    assert modes_after == modes
    for k in before:
        assert torch.equal(before[k], after[k]), k
    # evaluated in eval mode: the origin equals the eval-mode loss, not train-mode
    s = S.loss_surface(m, nn.CrossEntropyLoss(), data, dirs, xs=[0.0], ys=[0.0])
    np.testing.assert_allclose(
        s.loss[0, 0], _plain_loss(_bn_net().eval(), nn.CrossEntropyLoss(), data)
    )


def test_fixed_adversarial_equals_attacked_data_and_reattack_modes():
    m, data = _bn_net(), _bn_data()
    lf = nn.CrossEntropyLoss()
    dirs = D.random_directions(m, generator=torch.Generator().manual_seed(0))
    pgd = attacks.PGD(eps=0.1, steps=3)
    kw = dict(xs=[-0.5, 0.0, 0.5], ys=[0.0, 0.5], attack=pgd)
    fixed = S.loss_surface(
        m, lf, data, dirs, adversarial="fixed", generator=torch.Generator().manual_seed(5),
        **kw,
    )  # fmt: skip
    adv = perturb_batches(m, data, pgd, generator=torch.Generator().manual_seed(5))
    manual = S.loss_surface(m, lf, adv, dirs, xs=kw["xs"], ys=kw["ys"])
    np.testing.assert_allclose(fixed.loss, manual.loss, rtol=1e-12)
    assert (
        fixed.meta["adversarial"] == "fixed" and manual.meta["adversarial"] == "clean"
    )
    clean = S.loss_surface(m, lf, data, dirs, xs=kw["xs"], ys=kw["ys"])
    assert (fixed.loss > clean.loss).all()
    re1 = S.loss_surface(
        m, lf, data, dirs, adversarial="reattack", generator=torch.Generator().manual_seed(5),
        **kw,
    )  # fmt: skip
    re2 = S.loss_surface(
        m, lf, data, dirs, adversarial="reattack", generator=torch.Generator().manual_seed(5),
        **kw,
    )  # fmt: skip
    np.testing.assert_array_equal(re1.loss, re2.loss)  # reproducible under a seed
    assert (re1.loss > clean.loss).all()
    # away from the origin the re-attacked loss beats the examples fixed at the centre
    assert (re1.loss[:, [0, 2]] > fixed.loss[:, [0, 2]]).all()
    zero = S.loss_surface(
        m, lf, data, dirs, adversarial="reattack", xs=kw["xs"], ys=kw["ys"],
        attack=attacks.PGD(eps=0.0),
    )  # fmt: skip
    np.testing.assert_allclose(zero.loss, clean.loss, rtol=1e-12)
    with pytest.raises(ValueError, match="needs an attack"):
        S.loss_surface(m, lf, data, dirs, xs=[0.0], adversarial="reattack")


def test_partial_results_resume(tmp_path):
    m, data = _bn_net(), _bn_data(n_batches=1)
    dirs = D.random_directions(m, generator=torch.Generator().manual_seed(0))
    xs = np.linspace(-1, 1, 4)
    full = S.loss_surface(m, nn.CrossEntropyLoss(), data, dirs, xs=xs, batch_size=None)
    calls = {"n": 0, "limit": 8}

    def flaky(out, y):
        calls["n"] += 1
        if calls["n"] > calls["limit"]:
            raise KeyboardInterrupt
        return nn.functional.cross_entropy(out, y)

    path = tmp_path / "part.npz"
    kw = dict(xs=xs, batch_size=None, partial_path=path, save_interval=0.0)
    with pytest.raises(KeyboardInterrupt):
        S.loss_surface(m, flaky, data, dirs, **kw)
    # 8 calls = 2 determinism checks (kept as the point nearest the origin) + 6 points
    assert path.exists()
    calls.update(n=0, limit=10**9)
    resumed = S.loss_surface(m, flaky, data, dirs, **kw)
    assert calls["n"] == 2 + 16 - 7
    np.testing.assert_allclose(resumed.loss, full.loss, rtol=1e-12)
    other = D.random_directions(m, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="different grid"):
        S.loss_surface(m, flaky, data, other, **kw)


def test_partial_resume_rejects_different_data(tmp_path):
    # a partial file written on one data set must not be completed on another
    m = _bn_net()
    data, data2 = _bn_data(n_batches=1), _bn_data(n_batches=2)
    dirs = D.random_directions(m, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "part.npz"
    kw = dict(xs=np.linspace(-1, 1, 3), batch_size=None, partial_path=path)
    calls = {"n": 0}

    def lf(out, y):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return nn.functional.cross_entropy(out, y)

    kw["save_interval"] = 0.0
    with pytest.raises(KeyboardInterrupt):
        S.loss_surface(m, lf, data, dirs, **kw)
    assert path.exists()
    with pytest.raises(ValueError, match="different grid"):
        S.loss_surface(m, nn.CrossEntropyLoss(), data2, dirs, **kw)


def test_determinism_checks():
    m, data = _bn_net(), _bn_data()
    dirs = D.random_directions(m, generator=torch.Generator().manual_seed(0))

    def noisy(out, y):
        return nn.functional.cross_entropy(out, y) + 1e-3 * torch.rand(())

    with pytest.raises(RuntimeError, match="not deterministic"):
        S.loss_surface(m, noisy, data, dirs, xs=[0.0, 1.0])
    S.loss_surface(m, noisy, data, dirs, xs=[0.0, 1.0], check_deterministic=False)

    class Shuffled:
        def __iter__(self):
            perm = torch.randperm(10)
            return iter([(x[perm], y[perm]) for x, y in data])

    with pytest.raises(RuntimeError, match="different batches"):
        S.loss_surface(m, nn.CrossEntropyLoss(), Shuffled(), dirs, xs=[0.0])


def test_interpolation_line_hits_both_checkpoints():
    m1, m2, data = _bn_net(), _bn_net(), _bn_data()
    with torch.no_grad():
        for p in m2.parameters():
            p.add_(0.3 * torch.randn_like(p))
    lf = nn.CrossEntropyLoss()
    d = D.interpolation_direction(m1, m2)
    line = S.loss_surface(m1, lf, data, [d], xs=[0.0, 0.5, 1.0])
    np.testing.assert_allclose(line.loss[0], _plain_loss(m1, lf, data), rtol=1e-12)
    np.testing.assert_allclose(line.loss[2], _plain_loss(m2, lf, data), rtol=1e-10)
    # center= moves the origin: evaluate m2's line with m1's architecture object
    line2 = S.loss_surface(m1, lf, data, [d], xs=[-1.0, 0.0], center=m2)
    np.testing.assert_allclose(line2.loss, line.loss[[0, 2]], rtol=1e-10)


def test_save_load_round_trip(tmp_path):
    m, data = _bn_net(), _bn_data()
    dirs = D.random_directions(m, generator=torch.Generator().manual_seed(0))
    s = S.loss_surface(m, nn.CrossEntropyLoss(), data, dirs, xs=[-1.0, 0.0], ys=[0.0])
    p = s.save(tmp_path / "s.npz")
    r = S.Surface.load(p)
    np.testing.assert_array_equal(r.loss, s.loss)
    np.testing.assert_array_equal(r.accuracy, s.accuracy)
    np.testing.assert_array_equal(r.ys, s.ys)
    assert r.meta["strategy"] == s.meta["strategy"] and "provenance" in r.meta
    ln = S.loss_surface(m, nn.CrossEntropyLoss(), data, [dirs[0]], xs=[0.0, 1.0])
    r2 = S.Surface.load(ln.save(tmp_path / "line.npz"))
    assert r2.is_line and r2.ys is None and r2.loss.shape == (2,)


def test_bad_inputs():
    m, data = _bn_net(), _bn_data()
    dirs = D.random_directions(m, generator=torch.Generator().manual_seed(0))
    lf = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="two directions .* or one"):
        S.loss_surface(m, lf, data, [*dirs, dirs[0]], xs=[0.0])
    with pytest.raises(ValueError, match="got one dict"):
        S.loss_surface(m, lf, data, dirs[0], xs=[0.0])
    with pytest.raises(ValueError, match="a line .* takes no ys"):
        S.loss_surface(m, lf, data, dirs[:1], xs=[0.0], ys=[0.0])
    with pytest.raises(KeyError, match="named_parameters"):
        S.loss_surface(m, lf, data, [{"x": torch.zeros(1)}, dirs[1]], xs=[0.0])
    with pytest.raises(ValueError, match="strategy"):
        S.loss_surface(m, lf, data, dirs, xs=[0.0], strategy="fast")
    with pytest.raises(ValueError, match="empty"):
        S.loss_surface(m, lf, [], dirs, xs=[0.0])
    with pytest.raises(ValueError, match="finite"):
        S.loss_surface(m, lf, data, dirs, xs=[0.0, float("nan")])
    with pytest.raises(ValueError, match="finite"):
        S.loss_surface(m, lf, data, [dirs[0]], xs=[float("inf")])


def test_hessian_eigenvector_line_is_the_taylor_parabola():
    # MSE linear regression: the loss along a Hessian eigenvector v (eigenvalue lam) is
    # exactly L0 + a <g, v> + lam a^2 / 2.
    from landscape import hessian

    g = torch.Generator().manual_seed(0)
    X = torch.randn(30, 4, generator=g, dtype=torch.float64)
    t = torch.randn(30, 1, generator=g, dtype=torch.float64)
    model = nn.Linear(4, 1).double()
    data = [(X, t)]
    eig = hessian.top_eigenvalues(
        model, nn.MSELoss(), data, num=2, tol=1e-10, generator=g
    )
    (v,) = D.eigen_directions(eig, num=1, like=model)
    lam = float(eig.eigenvalues[0])
    model.zero_grad()
    nn.MSELoss()(model(X), t).backward()
    gv = sum(float((p.grad * v[n]).sum()) for n, p in model.named_parameters())
    xs = np.linspace(-2, 2, 5)
    line = S.loss_surface(model, nn.MSELoss(), data, [v], xs=xs)
    l0 = _plain_loss(model, nn.MSELoss(), data)
    np.testing.assert_allclose(line.loss, l0 + xs * gv + 0.5 * lam * xs**2, rtol=1e-8)


def _fake_tuning_clock(monkeypatch, seconds: dict[int, float]) -> list[int]:
    """Make the batch-size tuning see ``seconds[batch size]`` per grid point; returns
    the list of batch sizes timed."""
    from landscape.surface import _evaluate as EV

    timed, size = [], []
    real_resized = EV._Data.resized

    def resized(raw, b):
        size[:] = [b]
        return real_resized(raw, b)

    def timeit(fn, dev):
        fn()
        timed.append(size[0])
        return seconds[size[0]]

    monkeypatch.setattr(EV._Data, "resized", resized)
    monkeypatch.setattr(EV, "_timeit", timeit)
    EV._TUNED.clear()
    return timed


def test_batch_size_tuning_is_paid_once_per_model_and_data(monkeypatch):
    m, data = _bn_net(), _bn_data(n_batches=3, bs=100)  # 300: three batch sizes
    dirs = D.random_directions(m, generator=torch.Generator().manual_seed(0))
    xs = np.linspace(-1, 1, 6)  # 36 points: tuned
    timed = _fake_tuning_clock(monkeypatch, {128: 1.0, 256: 0.9, 300: 1.0})
    first = S.loss_surface(m, nn.CrossEntropyLoss(), data, dirs, xs=xs)
    assert timed == [128, 128, 256, 256, 300, 300]  # two grid points each
    assert first.meta["batch_size"] == 256
    timed.clear()
    second = S.loss_surface(m, nn.CrossEntropyLoss(), data, dirs, xs=xs)
    assert timed == [] and second.meta["batch_size"] == first.meta["batch_size"]
    np.testing.assert_allclose(second.loss, first.loss, rtol=1e-12)


def test_batch_size_tuning_stops_at_a_clearly_slower_candidate(monkeypatch):
    # On a float64 BN+residual CNN batch 256 costs 2.3x batch 128 per point: the
    # tuning spends one point on 256 and tries nothing larger; every timed point is
    # a grid point (the surface equals an untuned one at the chosen batch size).
    m, data = _bn_net(), _bn_data(n_batches=3, bs=100)
    dirs = D.random_directions(m, generator=torch.Generator().manual_seed(0))
    xs = np.linspace(-1, 1, 6)
    timed = _fake_tuning_clock(monkeypatch, {128: 1.0, 256: 2.3, 300: 0.5})
    surf = S.loss_surface(m, nn.CrossEntropyLoss(), data, dirs, xs=xs)
    assert timed == [128, 128, 256]
    assert surf.meta["batch_size"] == 128
    ref = S.loss_surface(m, nn.CrossEntropyLoss(), data, dirs, xs=xs, batch_size=128)
    np.testing.assert_allclose(surf.loss, ref.loss, rtol=1e-12)
    np.testing.assert_array_equal(surf.accuracy, ref.accuracy)


def test_surface_of_a_pooling_model_uses_the_fast_pool_bitwise(monkeypatch):
    # A LeNet-like model: the grid's 2x2 max-pooling goes through the strided-view
    # kernel (landscape._pool) and the surface is bitwise the one of PyTorch's kernel.
    from landscape import _pool

    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(4 * 8 * 8, 3),
    )  # fmt: skip
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1100, 1, 16, 16, generator=g)  # 4 x 16 x 16 x 1100 >= 65536
    x[:, :, :5] = 0  # ReLU zeros: ties
    data = [(x, torch.randint(0, 3, (1100,), generator=g))]
    dirs = D.random_directions(m, generator=torch.Generator().manual_seed(0))
    xs = np.linspace(-1, 1, 3)
    calls = []
    real = _pool._views_max
    monkeypatch.setattr(_pool, "_views_max", lambda t: calls.append(1) or real(t))
    fast = S.loss_surface(m, nn.CrossEntropyLoss(), data, dirs, xs=xs, batch_size=550)
    assert calls
    monkeypatch.setattr(_pool, "_POOL_MIN_NUMEL", 1 << 62)
    ref = S.loss_surface(m, nn.CrossEntropyLoss(), data, dirs, xs=xs, batch_size=550)
    np.testing.assert_array_equal(fast.loss, ref.loss)
    np.testing.assert_array_equal(fast.accuracy, ref.accuracy)


def test_determinism_check_runs_at_the_grid_batch_size(monkeypatch):
    # One caller batch of 300 images: the determinism check's two evaluations of the
    # origin run in batches of the smallest tuning candidate (128), not as one batch
    # of 300 (2.4x the cost per point on a float64 BN CNN); the kept origin value
    # agrees with an evaluation at the caller's batch.
    from landscape.surface import _evaluate as EV

    m, data = _bn_net(), _bn_data(n_batches=3, bs=100)
    one = [(torch.cat([x for x, _ in data]), torch.cat([y for _, y in data]))]
    dirs = D.random_directions(m, generator=torch.Generator().manual_seed(0))
    xs = np.linspace(-1, 1, 6)  # 36 points: tuned
    EV._TUNED.clear()
    sizes = []
    hook = m.register_forward_pre_hook(lambda mod, inp: sizes.append(len(inp[0])))
    surf = S.loss_surface(m, nn.CrossEntropyLoss(), one, dirs, xs=xs)
    hook.remove()
    evaluated = [n for n in sizes if n > 1]  # (a one-image probe reads the classes)
    assert evaluated[:6] == [128, 128, 44] * 2  # the two check evaluations
    ref = S.loss_surface(m, nn.CrossEntropyLoss(), one, dirs, xs=xs, batch_size=None)
    np.testing.assert_allclose(surf.loss, ref.loss, rtol=1e-10)

"""Attacks: closed-form robust accuracy of a linear classifier, common properties of
every attack (eps-ball, [0, 1], mode restored, determinism, errors), monotonicity on a
trained MLP, black-box budgets, and a cross-check against the AutoAttack reference."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from _helpers import gaussian_mlp
from _linear_case import Recorder, _closed_form, _linear_case
from torch import nn

from landscape import attacks as A

# ------------------------------------------------------------------ linear model


def _eval_pgd(
    model, x, y, *, eps, norm="linf", steps=20, loss="ce", generator=None,
    return_info=False, trace=False, **settings,
):  # fmt: skip
    """The evaluation PGD (``keep="best"``) at the evaluation presets' settings: 20
    steps, cross-entropy, a random first start for L-inf and ``x`` for L2."""
    settings.setdefault("random_start", norm == "linf")
    atk = A.PGD(eps=eps, norm=norm, steps=steps, loss=loss, keep="best", **settings)
    return atk(model, x, y, generator, return_info=return_info, trace=trace)


def _value(kind, **fixed):
    """``run(model, x, y, eps=, norm=, generator=)``: the value ``kind(**fixed, eps=,
    norm=)`` run on the batch."""
    return lambda m, x, y, generator=None, **k: kind(**fixed, **k)(m, x, y, generator)


def _robust(model, xa, y):
    with torch.no_grad():
        return model(xa).argmax(1) == y


@pytest.mark.parametrize("k", [0, 1, 2])
@pytest.mark.parametrize(
    "norm,kw",
    [
        ("linf", {}),
        ("linf", {"loss": "cw", "steps": 5}),
        ("l2", {"random_start": False}),
        ("l2", {"alpha": [4.0], "steps": 10}),  # alpha scaled by eps below
    ],
)
def test_pgd_matches_linear_closed_form(k, norm, kw):
    model, x, y, w, z = _linear_case()
    # L2: the per-coordinate change eps * |w_i| / ||w|| stays < 0.2
    eps = (0.005, 0.01, 0.02)[k] if norm == "linf" else (0.05, 0.1, 0.2)[k]
    kw = dict(kw)
    if "alpha" in kw:
        kw["alpha"] = [a * eps for a in kw["alpha"]]
    expected, gap = _closed_form(w, z, y, eps, norm)
    keep = gap > 1e-6  # points exactly on the boundary are measure zero
    xa = _eval_pgd(
        model,
        x,
        y,
        eps=eps,
        norm=norm,
        generator=torch.Generator().manual_seed(1),
        **kw,
    )
    got = _robust(model, xa, y)
    assert keep.float().mean() > 0.95
    assert torch.equal(got[keep], expected[keep])
    assert 0.05 < expected.float().mean() < 0.95  # the case is not trivial


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_pgd_l2_default_settings_match_closed_form(seed):
    """L2 PGD at its defaults (20 steps of 2.5 eps / steps) is exact on a linear model:
    from a random start in the L2 ball it slid along the sphere too slowly (2-5 of 400
    points per eps left unbroken that the closed form breaks)."""
    model, x, y, w, z = _linear_case(seed=seed)
    for eps in (0.05, 0.1, 0.2):
        expected, gap = _closed_form(w, z, y, eps, "l2")
        keep = gap > 1e-6
        for steps in (20, 50):
            g = torch.Generator().manual_seed(0)
            xa = _eval_pgd(model, x, y, eps=eps, norm="l2", steps=steps, generator=g)
            assert torch.equal(_robust(model, xa, y)[keep], expected[keep]), (
                eps,
                steps,
            )


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgsm_and_apgd_exact_on_linear(norm):
    model, x, y, w, z = _linear_case(seed=3)
    eps = 0.01 if norm == "linf" else 0.1
    expected, gap = _closed_form(w, z, y, eps, norm)
    keep = gap > 1e-6
    xf = A.FGSM(eps=eps, norm=norm)(model, x, y)
    assert torch.equal(_robust(model, xf, y)[keep], expected[keep])
    apgd = A.APGD(eps=eps, norm=norm, steps=20, loss="cw")
    xa = apgd(model, x, y, torch.Generator().manual_seed(0))
    assert torch.equal(_robust(model, xa, y)[keep], expected[keep])


def _project_bisection(t, w, b, norm, iters=200):
    """Independent reference for the box-constrained hyperplane projection: bisection
    on the multiplier of the KKT solution d_i = clip(-lam v_i s_i, box)."""
    tau = b.unsqueeze(1) - (w * t).sum(1, keepdim=True)
    s = torch.sign(w) * torch.sign(tau)
    lo_box, hi_box = -t, 1 - t
    v = w.abs() if norm == "l2" else (w != 0).double()

    def step(lam):
        return (s * lam * v).clamp(lo_box, hi_box)

    lo = torch.zeros_like(tau)
    hi = torch.full_like(tau, 1e6)
    for _ in range(iters):
        mid = (lo + hi) / 2
        short = (w * step(mid)).sum(1, keepdim=True).abs() < tau.abs()
        lo, hi = torch.where(short, mid, lo), torch.where(short, hi, mid)
    return step(hi)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_projection_is_exact(norm):
    from landscape.attacks.fab import project_hyperplane

    g = torch.Generator().manual_seed(0)
    for dim in (1, 3, 40):
        t = torch.rand(300, dim, generator=g, dtype=torch.float64)
        w = torch.randn(300, dim, generator=g, dtype=torch.float64)
        w[:50, 0] = 0  # zero weights never move
        u = torch.rand(300, dim, generator=g, dtype=torch.float64)
        b = (w * u).sum(1)
        b[200:] = w[200:].clamp_min(0).sum(1) + 0.1  # out of the box's reach
        d = project_hyperplane(t, w, b, norm)
        ref = _project_bisection(t, w, b, norm)
        assert torch.allclose(d, ref, atol=1e-9), (dim, (d - ref).abs().max())
        assert ((t + d) >= -1e-12).all() and ((t + d) <= 1 + 1e-12).all()
        assert (d[:50, 0] == 0).all()
        reach = ((w * (t + d)).sum(1) - b).abs() < 1e-9
        assert reach[:200].all() and not reach[200:].any()
    aa = pytest.importorskip("pyautoattack.fab_projections")
    ref_fn = aa.projection_linf if norm == "linf" else aa.projection_l2
    t, w = torch.rand(64, 784, generator=g), torch.randn(64, 784, generator=g)
    b = (w * torch.rand(64, 784, generator=g)).sum(1)
    assert torch.allclose(project_hyperplane(t, w, b, norm), ref_fn(t, w, b), atol=1e-5)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_exact_on_linear(norm):
    """On a linear classifier FAB's linearisation is exact: it breaks exactly the
    points within eps of the boundary and its distances converge to the closed form."""
    model, x, y, w, z = _linear_case(seed=2)
    eps = 0.01 if norm == "linf" else 0.1
    expected, gap = _closed_form(w, z, y, eps, norm)
    dual = w.abs().sum() if norm == "linf" else w.norm()
    keep = gap > 1e-3 * dual
    for kind in (A.FAB, A.FABT):
        attack = kind(eps=eps, norm=norm, steps=30)
        xa, info = attack(model, x, y, return_info=True)
        assert torch.equal(_robust(model, xa, y)[keep], expected[keep])
        far = torch.isfinite(info["norm"]) & ~info["success"]
        exact = (z.abs() / dual)[far]
        assert far.sum() > 50
        assert (info["norm"][far] >= exact * (1 - 1e-9)).all()  # never below exact
        assert (info["norm"][far] <= exact * 1.01).all()


# ------------------------------------------------------------- common properties


def _images(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    m = Recorder()
    with torch.no_grad():
        y = m(x).argmax(1)  # all clean-correct
    y[:2] = (y[:2] + 1) % 5  # two clean errors
    return x, y


ATTACKS = {
    "fgsm": _value(A.FGSM),
    "pgd": lambda m, x, y, **k: _eval_pgd(
        m, x, y, steps=4, restarts=2, alpha_rel=[0.3, 0.1], **k
    ),
    "pgd-dlr": lambda m, x, y, **k: _eval_pgd(m, x, y, steps=3, loss="dlr", **k),
    "apgd-ce": _value(A.APGD, steps=6, restarts=2),
    "apgd-dlr": _value(A.APGD, steps=6, loss="dlr"),
    "apgd-t": _value(A.APGDT, steps=5, num_targets=3),
    "fab": _value(A.FAB, steps=4, restarts=2),
    "fab-t": _value(A.FABT, steps=4, num_targets=2),
    "square": _value(A.Square, queries=30),
    "simba": _value(A.SimBA, queries=40, dct=False),
    "simba-dct": _value(A.SimBA, queries=40),
}


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_properties(name, norm):
    x, y = _images()
    eps = 0.1 if norm == "linf" else 0.8
    m = Recorder().train()
    run = ATTACKS[name]
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    xa = run(m, x, y, eps=eps, norm=norm, generator=g())
    assert m.training and len(m.modes) > 0 and not any(m.modes)  # eval inside, restored
    d = (xa - x).flatten(1)
    dist = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert dist.max() <= eps + 1e-5 and xa.min() >= 0 and xa.max() <= 1
    assert torch.equal(run(m, x, y, eps=eps, norm=norm, generator=g()), xa)  # seeded
    # int32 labels pass the input check, so they must work (and give the same result)
    assert torch.equal(run(m, x, y.int(), eps=eps, norm=norm, generator=g()), xa)
    assert torch.equal(run(m, x, y, eps=0.0, norm=norm, generator=g()), x)
    with torch.no_grad():  # clean errors stay errors (never "repaired")
        assert (m.eval()(xa).argmax(1) != y)[:2].all()
    with pytest.raises(ValueError, match="eps"):
        run(m, x, y, eps=-0.1, norm=norm, generator=g())
    with pytest.raises(ValueError, match="norm"):
        run(m, x, y, eps=eps, norm="l1", generator=g())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        run(m, x * 3, y, eps=eps, norm=norm, generator=g())
    with pytest.raises(ValueError, match=r"class indices in \[0, 4\]"):
        run(m, x, y + 5, eps=eps, norm=norm, generator=g())
    with pytest.warns(UserWarning, match="probabilities"):
        run(Recorder(softmax=True), x, y, eps=eps, norm=norm, generator=g())


def test_losses_values():
    z = torch.tensor([[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 1.0, -1.0]])
    y = torch.tensor([0, 0])
    assert A.cw_loss(z, y).tolist() == [-2.0, 2.0]
    assert torch.allclose(A.dlr_loss(z, y), torch.tensor([-2.0 / 3.0, 2.0 / 2.0]))
    # invariant to shift and positive scale
    assert torch.allclose(A.dlr_loss(3 * z + 5, y), A.dlr_loss(z, y))
    t = torch.tensor([2, 1])
    assert torch.allclose(
        A.dlr_targeted_loss(z, y, t),
        torch.tensor([-3.0 / (3 - (0 - 1) / 2), 2.0 / (2 - 0.5 * (0 - 1))]),
    )
    with pytest.raises(ValueError, match="loss"):
        A.PGD(eps=0.1, loss="hinge")


def test_black_box_option_ranges():
    with pytest.raises(ValueError, match="p_init"):
        A.Square(eps=0.1, queries=5, p_init=2.0)
    with pytest.raises(ValueError, match="freq_frac"):
        A.SimBA(eps=0.5, queries=5, freq_frac=1.5)


def test_square_schedule_matches_autoattack():
    """The schedule of p is AutoAttack's (standard version: not rescaled to the
    budget; rescaled on request), checked against pyautoattack's ``p_selection``."""
    pytest.importorskip("pyautoattack")
    from pyautoattack.square import SquareAttack

    from landscape.attacks.square import p_schedule

    for rescale in (False, True):
        for q in (1000, 5000):
            ref = SquareAttack(
                lambda v: v, p_init=0.8, n_queries=q, resc_schedule=rescale
            )
            for i in [*range(0, 60), *range(60, q + 1, 7)]:
                assert p_schedule(i, q, 0.8, rescale) == ref.p_selection(i), (q, i)


def test_simba_uses_its_query_budget():
    """Pixel SimBA in L-inf stopped after one pass over the d directions (2 d + 1
    queries); further passes use the budget and only add broken points."""
    x, y = _images(n=16, seed=2)
    m = Recorder().eval()
    d = x[0].numel()

    def run(q):
        atk = A.SimBA(eps=0.01, norm="linf", dct=False, queries=q)
        return atk(m, x, y, torch.Generator().manual_seed(0), return_info=True)

    x1, one = run(2 * d + 1)
    xm, more = run(1000)
    assert (one["success"] <= more["success"]).all()
    assert more["queries"][~more["success"]].max() > 2 * d + 1
    assert more["queries"].max() <= 1000
    assert (xm - x).abs().max() <= 0.01 + 1e-6


def test_bad_model_output_shape():
    m = nn.Sequential(nn.Flatten(), nn.Linear(64, 1))
    x, y = _images()
    with pytest.raises(ValueError, match="logits"):
        _eval_pgd(m, x, y, eps=0.1)


# ------------------------------------------------------------------ monotonicity


@pytest.fixture(scope="module")
def mlp_case():
    return gaussian_mlp(600, 10, margin=1.5, num_train=400, steps=150)


def _acc(m, xa, y):
    with torch.no_grad():
        return (m(xa).argmax(1) == y).float().mean().item()


def test_monotone_in_steps_restarts_eps(mlp_case):
    m, x, y = mlp_case
    eps = 0.05
    assert _acc(m, x, y) > 0.7

    def succ(**kw):
        g = torch.Generator().manual_seed(0)
        return _eval_pgd(
            m, x, y, eps=eps, alpha=eps / 8, generator=g, return_info=True, **kw
        )[1]["success"]

    s5, s20, s60 = succ(steps=5), succ(steps=20), succ(steps=60)
    r1, r4 = succ(steps=5, restarts=1), succ(steps=5, restarts=4)
    # same start and step: the longer run contains the shorter: per-example inclusion
    assert (s5 <= s20).all() and (s20 <= s60).all() and (r1 <= r4).all()
    assert s60.sum() > s5.sum() or r4.sum() > r1.sum()  # budgets matter here
    accs = [
        _acc(
            m,
            _eval_pgd(
                m, x, y, eps=e, steps=20, generator=torch.Generator().manual_seed(0)
            ),
            y,
        )
        for e in (0.0, 0.02, 0.05, 0.1, 0.3, 1.0)
    ]
    assert all(b <= a + 1e-9 for a, b in zip(accs, accs[1:]))
    assert accs[-1] == 0.0  # the whole box: nothing is robust


def test_pgd_trace_and_step_grid(mlp_case):
    m, x, y = mlp_case
    g = torch.Generator().manual_seed(0)
    xa, info = _eval_pgd(
        m,
        x,
        y,
        eps=0.05,
        steps=7,
        alpha=[0.02, 0.005],
        restarts=2,
        trace=True,
        generator=g,
        return_info=True,
    )
    tr = info["trace"]
    assert len(tr) == 4 and {t["alpha"] for t in tr} == {0.02, 0.005}
    for t in tr:
        ra = t["robust_accuracy"]
        assert all(b <= a + 1e-12 for a, b in zip(ra, ra[1:]))  # non-increasing
    with torch.no_grad():
        assert torch.equal(info["success"], m(xa).argmax(1) != y)
    # grid combined per example: at least as strong as each step size alone
    for a in (0.02, 0.005):
        s = _eval_pgd(
            m,
            x,
            y,
            eps=0.05,
            steps=7,
            alpha=a,
            restarts=2,
            generator=torch.Generator().manual_seed(5),
            return_info=True,
        )[1]["success"]
        assert info["success"].sum() >= s.sum() - 2


def test_pgd_cost_is_k_gradients(mlp_case):
    m, x, y = mlp_case
    _, info = _eval_pgd(
        m,
        x,
        y,
        eps=0.05,
        steps=10,
        early_stop=False,
        return_info=True,
        generator=torch.Generator().manual_seed(0),
    )
    assert info["num_grad"] == 10 * (info["success"].numel() - (_clean_wrong(m, x, y)))


def _clean_wrong(m, x, y):
    with torch.no_grad():
        return int((m(x).argmax(1) != y).sum())


# ------------------------------------------------------------------ black box


def test_black_box_budgets_and_success():
    x, y = _images(n=16, seed=2)
    m = Recorder().eval()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    xs, info = A.Square(eps=0.3, queries=50)(m, x, y, g(), return_info=True)
    assert info["queries"].max() <= 50 and info["success"][2:].float().mean() > 0.5
    for dct in (False, True):
        atk = A.SimBA(eps=2.0, norm="l2", queries=60, dct=dct)
        xb, info = atk(m, x, y, g(), return_info=True)
        assert info["queries"].max() <= 60
        assert info["success"][2:].float().mean() > 0.3
        assert torch.equal(info["success"], m(xb).argmax(1) != y)
    # a step larger than the budget is never taken: over-budget counts as failure
    atk = A.SimBA(eps=0.05, norm="l2", alpha=0.5, queries=60, dct=False)
    xb, info = atk(m, x, y, g(), return_info=True)
    assert torch.equal(xb, x) and not info["success"][2:].any()
    # optional extra L-inf budget on top of L2
    xb = A.SimBA(eps=2.0, norm="l2", eps_linf=0.05, queries=60)(m, x, y, g())
    assert (xb - x).abs().max() <= 0.05 + 1e-6


# ------------------------------------------------------- AutoAttack cross-check


def _mnist_model(data_root, n_train, n_test, seconds_epochs=3):
    from landscape import data

    def sample(split: str, n: int):
        """The stratified sample of seed 0 in file order (the thresholds of the tests
        using this model were measured on it)."""
        x, y = data.load_dataset("mnist", data_root, split=split)
        g = torch.Generator().manual_seed(0)
        idx = data.subset_indices(y, n, generator=g).sort().values
        return x[idx], y[idx]

    x, y = sample("train", n_train)
    xt, yt = sample("test", n_test)
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(1, 8, 5, stride=2),
        nn.ReLU(),
        nn.Conv2d(8, 16, 5, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(256, 10),
    )
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    for ep in range(seconds_epochs):
        for i in range(0, n_train, 100):
            xb, yb = x[i : i + 100], y[i : i + 100]
            if ep:
                pgd = A.PGD(eps=0.1, steps=3, alpha=0.05)
                xb = pgd(m, xb, yb, torch.Generator().manual_seed(i))
            opt.zero_grad()
            F.cross_entropy(m(xb), yb).backward()
            opt.step()
    return m.eval(), xt, yt


def _compare_autoattack(m, xt, yt, *, steps, queries, tol, full=False):
    aa = pytest.importorskip("pyautoattack")
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
    from pyautoattack.fab_pt import FABAttack_PT
    from pyautoattack.square import SquareAttack

    del aa
    eps = 0.1
    state = torch.random.get_rng_state()
    try:
        ref = {
            "apgd-ce": APGDAttack(
                m, n_iter=steps, eps=eps, norm="Linf", seed=0
            ).perturb(xt, yt),
            "apgd-t": APGDAttack_targeted(
                m, n_iter=steps, eps=eps, norm="Linf", seed=0, n_target_classes=3
            ).perturb(xt, yt),
            "square": SquareAttack(
                m,
                n_queries=queries,
                eps=eps,
                norm="Linf",
                seed=0,
                p_init=0.8,
                resc_schedule=False,
            ).perturb(xt, yt),
            "apgd-l2": APGDAttack(m, n_iter=steps, eps=1.5, norm="L2", seed=0).perturb(
                xt, yt
            ),
            "fab-t": FABAttack_PT(
                m, n_iter=steps, eps=eps, norm="Linf", targeted=True, n_target_classes=3
            ).perturb(xt, yt),
        }
        if full:
            ref["fab-t-l2"] = FABAttack_PT(
                m, n_iter=steps, eps=1.5, norm="L2", targeted=True, n_target_classes=3
            ).perturb(xt, yt)
    finally:
        torch.random.set_rng_state(state)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    ours = {
        "apgd-ce": A.APGD(eps=eps, steps=steps)(m, xt, yt, g()),
        "apgd-t": A.APGDT(eps=eps, steps=steps, num_targets=3)(m, xt, yt, g()),
        "square": A.Square(eps=eps, queries=queries)(m, xt, yt, g()),
        "apgd-l2": A.APGD(eps=1.5, norm="l2", steps=steps)(m, xt, yt, g()),
        "fab-t": A.FABT(eps=eps, steps=steps, num_targets=3)(m, xt, yt),
    }
    if full:
        fab_t_l2 = A.FABT(eps=1.5, norm="l2", steps=steps, num_targets=3)
        ours["fab-t-l2"] = fab_t_l2(m, xt, yt)
    clean = _acc(m, xt, yt)
    for k in ref:
        a, b = _acc(m, ours[k], yt), _acc(m, ref[k], yt)
        assert abs(a - b) <= tol, (k, a, b)
        assert a < clean - 0.03, (k, a, clean)  # the attacks do something


def test_cross_check_autoattack_fast(data_root):
    m, xt, yt = _mnist_model(data_root, 1500, 100, seconds_epochs=3)
    _compare_autoattack(
        m, xt, yt, steps=20, queries=300, tol=0.05
    )  # 100 points: noisier


@pytest.mark.slow
def test_cross_check_autoattack_full(data_root):
    m, xt, yt = _mnist_model(data_root, 5000, 500, seconds_epochs=4)
    _compare_autoattack(m, xt, yt, steps=100, queries=1000, tol=0.02, full=True)


def test_apgd_restarts_keep_highest_loss_point():
    """Unbroken points: APGD returns the highest-loss point over all restarts, so more
    restarts (same seed: the first run is identical) never return a lower loss."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(12, 64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, 5),
    ).double()
    x = torch.rand(64, 3, 2, 2, dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    res = {}
    for r in (1, 3):
        apgd = A.APGD(eps=0.05, steps=2, restarts=r)
        xa, info = apgd(model, x, y, torch.Generator().manual_seed(1), return_info=True)
        with torch.no_grad():
            res[r] = (F.cross_entropy(model(xa), y, reduction="none"), info["success"])
    (l1, s1), (l3, s3) = res[1], res[3]
    assert (s1 <= s3).all()
    keep = ~s3
    assert keep.sum() > 40
    assert (l3[keep] >= l1[keep] - 1e-12).all()
    assert (l3[keep] > l1[keep] + 1e-9).any()  # the restarts did find higher losses


def test_pgd_early_exit_and_restart_curve(mlp_case):
    """``patience``: restarts stop once that many in a row broke no point; the runs
    before the exit are the same as without it, and the curve of unbroken points vs
    restarts is reported (non-increasing)."""
    m, x, y = mlp_case

    def run(**kw):
        g = torch.Generator().manual_seed(0)
        return _eval_pgd(
            m, x, y, eps=0.05, steps=3, alpha=0.01, restarts=30, generator=g,
            return_info=True, **kw,
        )[1]  # fmt: skip

    full, early = run(), run(patience=3)
    cf, ce = full["restart_curve"], early["restart_curve"]
    assert len(cf) == 30 and 3 < len(ce) < 30
    assert cf[: len(ce)] == ce and all(b <= a for a, b in zip(ce, ce[1:]))
    assert ce[-1] == ce[-4]  # stable for 3 restarts at the exit
    assert (early["success"] <= full["success"]).all()
    assert early["num_grad"] < full["num_grad"]
    with pytest.raises(ValueError, match="patience"):
        run(patience=0)


def test_fab_attack_values():
    for value in (A.FAB(eps=0.1, steps=3), A.FABT(eps=0.5, norm="l2", num_targets=2)):
        assert value.to_dict()["attack"] == type(value).__name__
        assert A.Attack.from_dict(value.to_dict()) == value
    with pytest.raises(ValueError, match="eta"):
        A.FAB(eps=0.1, eta=0)
    assert A.APGD(eps=0.1, eot_iter=3).eot_iter == 3
    assert A.PGD(eps=0.1, patience=2, keep="best").patience == 2


class _SyncCounter:
    """Counts the calls that read a tensor on the host (a device-to-host sync on an
    accelerator): ``item``, ``tolist``, ``bool`` / ``int`` / ``float``, ``nonzero``,
    ``cpu`` / ``numpy`` and indexing with a boolean mask (an implicit ``nonzero``)."""

    NAMES = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__")
    NAMES += ("nonzero", "cpu", "numpy")

    def __init__(self, monkeypatch):
        self.count = 0
        for name in self.NAMES:
            monkeypatch.setattr(
                torch.Tensor, name, self._wrap(getattr(torch.Tensor, name))
            )
        monkeypatch.setattr(torch, "nonzero", self._wrap(torch.nonzero))
        for name in ("__getitem__", "__setitem__"):
            orig = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._wrap_index(orig))

    def _wrap(self, fn):
        def counted(*args, **kwargs):
            self.count += 1
            return fn(*args, **kwargs)

        return counted

    def _wrap_index(self, fn):
        def indexed(t, index, *rest):
            parts = index if isinstance(index, tuple) else (index,)
            if any(
                isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts
            ):
                self.count += 1
            return fn(t, index, *rest)

        return indexed


def _conv_net_and_points(n: int):
    """A seeded tiny conv net (eval mode) and ``n`` random 16x16 images labelled with
    its own predictions."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 7 * 7, 5)
    ).eval()
    x = torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = net(x).argmax(1)
    return net, x, y


@pytest.mark.parametrize(
    "make",
    [
        lambda T: A.PGD(eps=1e-3, steps=T, keep="best", loss="ce"),
        lambda T: A.PGD(eps=0.03, norm="l2", steps=T, keep="best", restarts=2),
        lambda T: A.APGD(eps=1e-3, steps=T),
        lambda T: A.APGDT(eps=1e-3, steps=T, num_targets=2),
        lambda T: A.FAB(eps=1e-3, steps=T),
        lambda T: A.FABT(eps=1e-3, steps=T, num_targets=2),
        lambda T: A.Square(eps=1e-3, queries=T),
        lambda T: A.Square(eps=0.03, norm="l2", queries=T),
    ],
    ids=["pgd", "pgd-l2", "apgd", "apgd-t", "fab", "fab-t", "square", "square-l2"],
)
def test_no_host_sync_per_iteration(make, monkeypatch):
    """The attacks' hot loops do not read the device per iteration (issue 24): from
    T to 2T iterations the host reads grow by at most T / 16 + 1 per run (the
    compactions of the active set); before, every PGD / APGD / FAB iteration indexed
    with a boolean mask and every Square query read its window with ``.item()``.
    Small budgets (1e-3) leave most points unbroken, so the loops run to the end."""
    import sys

    net, x, y = _conv_net_and_points(12)
    counts = {}
    for T in (32, 64):
        atk = make(T)
        # as on an accelerator: Square reads the host per query only where that is
        # free (CPU), to skip candidates equal to the current point, and FAB to
        # sort its projection's breakpoints with NumPy
        for mod in ("square", "fab"):
            mod = sys.modules[f"landscape.attacks.{mod}"]
            monkeypatch.setattr(mod, "host_reads_free", lambda device: False)
        counter = _SyncCounter(monkeypatch)
        atk(net, x, y, torch.Generator().manual_seed(0))
        counts[T] = counter.count
        monkeypatch.undo()
    runs = getattr(atk, "restarts", 1) * getattr(atk, "num_targets", 1)
    assert counts[64] - counts[32] <= runs * (32 // 16 + 1), counts


@pytest.mark.parametrize("name", ["pgd", "apgd", "fab", "square"])
def test_compaction_schedule_does_not_change_results(name, monkeypatch):
    """Shrinking the active set only now and then (masking the points broken in
    between) gives bitwise the result of shrinking it every iteration. Intended
    changes (issues 24, 29): Square draws its random signs for the whole batch each
    query (so that a point's draws do not depend on which points are still
    attacked), so its seeded outputs differ from the version before; APGD with
    ``early_stop=True`` (the evaluation presets') stops a point at its first
    misclassified iterate (the verdict and the unbroken points' results are bitwise
    those of ``early_stop=False``, the default and former behaviour); PGD, APGD and
    FAB kept their seeded outputs bitwise."""
    import sys

    mod = sys.modules[f"landscape.attacks.{name}"]  # (the package's pgd is a function)
    atk = {
        "pgd": A.PGD(eps=0.05, steps=40, keep="best", loss="ce", restarts=2),
        "apgd": A.APGDT(eps=0.05, steps=40, num_targets=2, early_stop=True),
        "fab": A.FABT(eps=0.05, steps=40, num_targets=2),
        "square": A.Square(eps=0.05, queries=120),
    }[name]
    net, x, y = _conv_net_and_points(40)
    xa, info = atk(net, x, y, torch.Generator().manual_seed(0), return_info=True)
    assert 0 < int(info["success"].sum()) < 40  # some points break on the way
    monkeypatch.setattr(mod, "compact_now", lambda t: True)
    xb, info_b = atk(net, x, y, torch.Generator().manual_seed(0), return_info=True)
    assert torch.equal(xa, xb) and torch.equal(info["success"], info_b["success"])
    if name == "square":
        assert torch.equal(info["queries"], info_b["queries"])
        assert int(info["queries"].max()) == atk.queries  # unbroken: the whole budget
    if name == "apgd":  # without early stop: the same verdicts, unbroken points
        # (from the same starts: with early_stop the targets run as one batch, which
        # draws its random starts for all (point, target) pairs at once)
        monkeypatch.setattr(mod, "random_init", _fixed_start)
        xa, info = atk(net, x, y, torch.Generator().manual_seed(0), return_info=True)
        xc, info_c = dataclasses.replace(atk, early_stop=False)(
            net, x, y, torch.Generator().manual_seed(0), return_info=True
        )
        assert torch.equal(info["success"], info_c["success"])
        unbroken = ~info["success"]
        assert torch.equal(xa[unbroken], xc[unbroken]) and not torch.equal(xa, xc)
        assert info["num_grad"] < info_c["num_grad"]


def _fixed_start(x, eps, norm, generator):
    """A start in the L-inf eps-ball that depends on the point only (not on the
    generator's state), so that batched and per-target runs start alike."""
    from landscape.attacks._ball import project

    return project(eps * torch.sign(torch.sin(1e3 * x + 0.5)), x, eps, norm)


class _Calls:
    """Counts the forward calls of a module and the rows they saw."""

    def __init__(self, net):
        self.calls, self.rows = 0, 0
        net.register_forward_hook(self)

    def __call__(self, module, args, out):
        self.calls += 1
        self.rows += out.shape[0]


@pytest.mark.parametrize("name", ["apgd-t", "fab-t"])
def test_batched_targets_equal_per_target_loop(name, monkeypatch):
    """APGD-T (with early_stop, as the evaluation presets run it) and FAB-T run all
    targets as one batch of (point, target) pairs (issue 29): from the same starts a
    point is broken exactly when the target-by-target loop breaks it (the reference:
    one ``_one_run`` per target on every point, no skipping), the unbroken points
    keep the first target's run, and one batch costs ~``steps`` forward calls,
    not ``num_targets * steps`` (the loop's count; fails on the per-target loop).
    Intended change of seeded outputs (benchmarks/check_outputs.py, issue 29):
    ``attack/FABT`` differs, as a broken point's result may come from a later
    target that broke it first (its pairs of earlier targets then stop); the
    verdicts are the loop's. APGD-T with early_stop draws its starts for all pairs
    at once (check_outputs runs APGD-T without early_stop: unchanged)."""
    import sys

    net, x, y = _conv_net_and_points(40)
    steps, num_t = 30, 3
    with torch.no_grad():
        order = net(x).argsort(1, descending=True)

    def per_target(mod, **settings):  # the reference: one run per target, in order
        return [
            mod._one_run(
                net, x, y, order[:, t], eps=0.02, norm="linf", steps=steps, **settings
            )  # fmt: skip
            for t in range(1, num_t + 1)
        ]

    if name == "apgd-t":
        mod = sys.modules["landscape.attacks.apgd"]
        monkeypatch.setattr(mod, "random_init", _fixed_start)
        atk = A.APGDT(eps=0.02, steps=steps, num_targets=num_t, early_stop=True)
        ref = per_target(mod, loss="dlr", rho=0.75, gen=None, early_stop=True)
        ref_broken = torch.stack([r[1] for r in ref]).any(0)
        first_run = ref[0][0]
    else:
        mod = sys.modules["landscape.attacks.fab"]
        atk = A.FABT(eps=0.02, steps=steps, num_targets=num_t)
        ref = per_target(mod, alpha_max=0.1, eta=1.05, beta=0.9, start=None)
        ref_broken = torch.stack([r[1] <= 0.02 for r in ref]).any(0)
        first_run = x
    calls = _Calls(net)
    xa, info = atk(net, x, y, torch.Generator().manual_seed(0), return_info=True)
    assert 5 < int(ref_broken.sum()) < 35  # some points break, some do not
    assert torch.equal(info["success"], ref_broken)
    with torch.no_grad():
        assert not (net(xa[ref_broken]).argmax(1) == y[ref_broken]).any()
    torch.testing.assert_close(xa[~ref_broken], first_run[~ref_broken])
    per_target_calls = num_t * steps  # the loop's calls (at least one per step)
    assert calls.calls <= 2 * steps + 4 < per_target_calls, calls.calls


def test_square_skips_repeated_candidates(monkeypatch):
    """On CPU Square does not send a candidate equal to the current point through
    the model (its margin is known; issue 29): bitwise the same points, verdicts and
    query counts as sending every candidate (the accelerator path), with fewer rows
    through the model (fails without the skip: equal row counts)."""
    import sys

    net, x, y = _conv_net_and_points(40)
    rows = []
    net.register_forward_hook(lambda m, a, out: rows.append(out.shape[0]))
    atk = A.Square(eps=0.03, queries=300)
    xa, info = atk(net, x, y, torch.Generator().manual_seed(0), return_info=True)
    skipped = sum(rows)
    rows.clear()
    square = sys.modules["landscape.attacks.square"]
    monkeypatch.setattr(square, "host_reads_free", lambda device: False)
    xb, info_b = atk(net, x, y, torch.Generator().manual_seed(0), return_info=True)
    assert 5 < int(info["success"].sum()) < 35
    assert torch.equal(xa, xb) and torch.equal(info["success"], info_b["success"])
    assert torch.equal(info["queries"], info_b["queries"])
    assert skipped < 0.95 * sum(rows), (skipped, sum(rows))


def test_fab_numpy_sort_equals_torch_stable_sort(monkeypatch):
    """FAB's projection sorts its breakpoints with NumPy on CPU (int64 keys: the
    value's bits, then the column; issue 29: 2-4x faster than torch's sort): the
    order of ``torch.sort(stable=True)`` on rows full of ties, -0.0 and the
    sentinel, and bitwise the projection of the torch path (fails if the keys
    lose the column order or mis-sort -0.0)."""
    import sys

    from landscape.attacks.fab import _sort_rows, project_hyperplane

    fab = sys.modules["landscape.attacks.fab"]
    g = torch.Generator().manual_seed(5)
    r = torch.randint(0, 4, (50, 97), generator=g).float() / 4  # many ties
    r[:, ::7] = torch.finfo(torch.float32).max
    r[:, 3] = -0.0
    rs, perm = _sort_rows(r)
    ref_s, ref_p = r.sort(dim=1, stable=True)
    assert torch.equal(perm, ref_p) and torch.equal(rs, ref_s)
    t = torch.randint(0, 3, (50, 97), generator=g).float() / 2  # pixels at 0, 1
    w = torch.randn(50, 97, generator=g) * (torch.rand(50, 97, generator=g) > 0.2)
    b = torch.randn(50, generator=g) * 3
    for norm in ("linf", "l2"):
        d = project_hyperplane(t, w, b, norm)
        monkeypatch.setattr(fab, "host_reads_free", lambda device: False)
        assert torch.equal(d, project_hyperplane(t, w, b, norm))
        monkeypatch.undo()


@pytest.mark.parametrize("name", ["apgd-t", "fab-t"])
def test_cpu_chunks_do_not_change_results(name, monkeypatch):
    """On CPU the model passes of APGD and FAB run in slices of at most
    ``CPU_CHUNK`` rows (issue 29: a batch of thousands of (point, target) pairs
    leaves the caches): the same points, verdicts and result as one pass over
    the whole batch (fails if a slice's rows are mismatched)."""
    import sys

    runs_mod = sys.modules["landscape.attacks._runs"]
    atk = {
        "apgd-t": A.APGDT(eps=0.05, steps=12, num_targets=3, early_stop=True),
        "fab-t": A.FABT(eps=0.05, steps=12, num_targets=3),
    }[name]
    net, x, y = _conv_net_and_points(40)
    xa, info = atk(net, x, y, torch.Generator().manual_seed(0), return_info=True)
    assert 0 < int(info["success"].sum()) < 40
    monkeypatch.setattr(runs_mod, "CPU_CHUNK", 7)
    xb, info_b = atk(net, x, y, torch.Generator().manual_seed(0), return_info=True)
    assert torch.equal(info["success"], info_b["success"])
    torch.testing.assert_close(xb, xa, rtol=0, atol=1e-6)

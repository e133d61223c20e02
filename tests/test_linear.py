"""Linear-classifier theory: closed forms against brute force and PGD, version space,
robust max-margin, the constant-classifier threshold eps*, and robust training two ways.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize

from landscape import attacks, linear

LOG2 = float(np.log(2.0))
HYP = settings(max_examples=25, deadline=None)


def _data(n=60, d=3, shift=1.0, seed=0, balance=0.5):
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < balance, 1.0, -1.0)
    y[0], y[1] = 1.0, -1.0
    mu = np.zeros(d)
    mu[0] = shift
    if d > 1:
        mu[1] = 0.5 * shift
    x = y[:, None] * mu + rng.normal(size=(n, d))
    return x, y


def _loss(m, loss):
    return np.logaddexp(0, -m) if loss == "logistic" else np.maximum(0, 1 - m)


def _vertices(d, eps):
    return eps * np.array(list(itertools.product((-1.0, 1.0), repeat=d)))


def _sphere(d, num, seed=0):
    if d == 2:
        t = np.linspace(0, 2 * np.pi, num, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], 1)
    g = np.random.default_rng(seed).normal(size=(num, d))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


class _Score(torch.nn.Module):
    """``w.(lo + scale u) + b`` on unit-box inputs; with ``two=True`` the logits
    ``[0, score]`` (so cross-entropy is the logistic loss of the score)."""

    def __init__(self, w, b, lo, scale, two=False):
        super().__init__()
        self.w = torch.nn.Parameter(torch.as_tensor(w, dtype=torch.float64))
        self.b = float(b)
        self.lo, self.scale, self.two = lo, scale, two

    def forward(self, u):
        s = (self.lo + self.scale * u.flatten(1)) @ self.w + self.b
        return torch.stack([torch.zeros_like(s), s], 1) if self.two else s


# ----------------------------------------------------------------------- bad input


def test_bad_input_fails_clearly():
    x, y = _data(10, 2)
    w = np.ones(2)
    with pytest.raises(ValueError, match="eps"):
        linear.robust_loss(w, 0.0, x, y, eps=-0.1)
    with pytest.raises(ValueError, match="norm"):
        linear.robust_loss(w, 0.0, x, y, eps=0.1, norm="l1")
    with pytest.raises(ValueError, match="norm"):
        linear.robust_margin(x, y, norm=1)
    with pytest.raises(ValueError, match=r"\+-1"):
        linear.robust_loss(w, 0.0, x, (y > 0).astype(float), eps=0.1)
    with pytest.raises(ValueError, match=r"\+-1"):
        linear.constant_threshold(x, np.where(y > 0, 1, 2))
    with pytest.raises(ValueError, match="loss"):
        linear.robust_loss(w, 0.0, x, y, eps=0.1, loss="square")
    with pytest.raises(ValueError, match="rows"):
        linear.robust_margins(w, 0.0, x, y[:-1], eps=0.1)
    with pytest.raises(ValueError, match="rows"):
        linear.robust_margins(torch.ones(2), 0.0, x, y[:-1], eps=0.1)
    with pytest.raises(ValueError, match="3 weights but x has 2 features"):
        linear.robust_loss(np.ones(3), 0.0, x, y, eps=0.1)
    with pytest.raises(ValueError, match="3 weights but x has 2 features"):
        linear.robust_loss(torch.ones(3, dtype=torch.float64), 0.0, x, y, eps=0.1)
    with pytest.raises(ValueError, match="eps"):
        linear.robust_train_closed_form(x, y, eps=-1.0)
    with pytest.raises(ValueError, match="both classes"):
        linear.robust_margin(x, np.ones(len(y)), bias=True)
    # float('inf') and 2 are accepted spellings of the norms
    a = linear.robust_loss(w, 0.0, x, y, eps=0.1, norm=float("inf"))
    assert a == linear.robust_loss(w, 0.0, x, y, eps=0.1, norm="linf")
    assert linear.robust_loss(w, 0.0, x, y, eps=0.1, norm=2) == linear.robust_loss(
        w, 0.0, x, y, eps=0.1, norm="l2"
    )


# ----------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("d", [1, 3, 8])
@pytest.mark.parametrize("loss", ["logistic", "hinge"])
def test_linf_closed_form_equals_vertex_enumeration(d, loss):
    x, y = _data(12, d, seed=d)
    rng = np.random.default_rng(10 + d)
    w, b, eps = rng.normal(size=d), 0.3, 0.37
    got = linear.robust_loss(
        w, b, x, y, eps=eps, norm="linf", loss=loss, reduction="none"
    )
    verts = _vertices(d, eps)  # the loss is convex in delta: its max is at a vertex
    margins = y[:, None] * ((x[:, None, :] + verts[None]) @ w + b)
    brute = _loss(margins, loss).max(1)
    np.testing.assert_allclose(got, brute, rtol=1e-12, atol=1e-12)
    delta = linear.worst_case_perturbation(w, x, y, eps=eps, norm="linf")
    assert np.abs(delta).max() <= eps + 1e-15
    np.testing.assert_allclose(
        _loss(y * ((x + delta) @ w + b), loss), brute, rtol=1e-12
    )


@pytest.mark.parametrize("d", [2, 3])
def test_l2_closed_form_equals_dense_sphere(d):
    x, y = _data(10, d, seed=3)
    rng = np.random.default_rng(4)
    w, b, eps = rng.normal(size=d), -0.2, 0.5
    got = linear.robust_loss(w, b, x, y, eps=eps, norm="l2", reduction="none")
    dirs = eps * _sphere(d, 20000 if d == 2 else 100000)
    brute = _loss(y[:, None] * ((x[:, None, :] + dirs[None]) @ w + b), "logistic").max(
        1
    )
    assert np.all(brute <= got + 1e-12)
    np.testing.assert_allclose(got, brute, rtol=1e-3 if d == 3 else 1e-6)
    delta = linear.worst_case_perturbation(w, x, y, eps=eps, norm="l2")
    np.testing.assert_allclose(np.linalg.norm(delta, axis=1), eps, rtol=1e-12)
    np.testing.assert_allclose(
        _loss(y * ((x + delta) @ w + b), "logistic"), got, rtol=1e-12
    )


def test_torch_and_numpy_agree_and_gradient():
    x, y = _data(20, 4)
    w = np.array([0.5, -1.0, 0.0, 2.0])
    for norm in ("linf", "l2"):
        wt = torch.tensor(w, requires_grad=True)
        lt = linear.robust_loss(
            wt, 0.1, torch.tensor(x), torch.tensor(y), eps=0.2, norm=norm
        )
        ln = linear.robust_loss(w, 0.1, x, y, eps=0.2, norm=norm)
        assert abs(float(lt.detach()) - float(ln)) < 1e-12
        lt.backward()
        # finite differences in the coordinates where w != 0 (the norm is smooth there)
        for j in (0, 1, 3):
            e = np.zeros(4)
            e[j] = 1e-6
            fd = (
                linear.robust_loss(w + e, 0.1, x, y, eps=0.2, norm=norm)
                - linear.robust_loss(w - e, 0.1, x, y, eps=0.2, norm=norm)
            ) / 2e-6
            assert abs(float(wt.grad[j]) - fd) < 1e-7


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_reaches_closed_form(norm):
    """PGD (landscape.attacks.PGD) on a linear model finds the closed-form loss."""
    x, y = _data(30, 5, seed=1)
    w, b, eps = np.array([1.0, -0.5, 0.25, 0.0, 2.0]), 0.1, 0.3
    u, lo, scale = linear.embed_unit_box(x, eps)
    model = _Score(w, b, lo, scale)
    yt = torch.tensor(y)
    pgd = attacks.PGD(
        eps=eps / scale,
        norm=norm,
        steps=20,
        alpha=eps / scale,  # a step of eps: the L2 iterates align within 20 steps
        loss=lambda out, t: F.softplus(-t * out).sum(),
    )
    ua = pgd(model, torch.tensor(u), yt, torch.Generator().manual_seed(0))
    with torch.no_grad():
        pgd = F.softplus(-yt * model(ua)).numpy()
    exact = linear.robust_loss(w, b, x, y, eps=eps, norm=norm, reduction="none")
    assert np.all(pgd <= exact + 1e-9)
    np.testing.assert_allclose(pgd, exact, rtol=1e-6)


# ----------------------------------------------------------------------- multi-class


def _ce(z, y):
    return torch.logsumexp(z, 1) - z.gather(1, y[:, None])[:, 0]


@pytest.mark.parametrize("k", [2, 4])
def test_multiclass_bound_vs_exact_and_pgd(k):
    d, eps = 3, 0.4
    rng = np.random.default_rng(k)
    x = rng.normal(size=(15, d))
    y = rng.integers(0, k, 15)
    W, b = rng.normal(size=(k, d)), rng.normal(size=k)
    bound = linear.multiclass_robust_bound(
        W, b, x, y, eps=eps, norm="linf", reduction="none"
    )
    # exact robust CE: CE is convex in delta, so its max over the L-inf ball is at a vertex
    verts = _vertices(d, eps)
    z = (x[:, None, :] + verts[None]) @ W.T + b  # (n, V, K)
    zt = torch.tensor(z.reshape(-1, k))
    exact = (
        _ce(zt, torch.tensor(np.repeat(y, len(verts)))).numpy().reshape(15, -1).max(1)
    )
    assert np.all(bound >= exact - 1e-12)
    if k == 2:
        np.testing.assert_allclose(bound, exact, rtol=1e-12)
        w2 = W[1] - W[0]
        pm = np.where(y == 1, 1.0, -1.0)
        binary = linear.robust_loss(w2, b[1] - b[0], x, pm, eps=eps, reduction="none")
        np.testing.assert_allclose(bound, binary, rtol=1e-12)
    else:
        assert np.any(bound > exact + 1e-6)  # a real (strict) upper bound
    # PGD is a lower bound: PGD <= exact <= bound
    u, lo, scale = linear.embed_unit_box(x, eps)
    lin = torch.nn.Linear(d, k).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(W * scale))
        lin.bias.copy_(torch.tensor(b + W @ np.full(d, lo)))
    ua = attacks.PGD(eps=eps / scale, steps=30)(
        lin, torch.tensor(u), torch.tensor(y), torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        pgd = _ce(lin(ua), torch.tensor(y)).numpy()
    assert np.all(pgd <= exact + 1e-9)
    if k == 2:  # the loss is monotone in one linear score: PGD finds the max
        np.testing.assert_allclose(pgd, exact, rtol=1e-6)
    else:  # a convex function maximised: PGD may stop at a worse vertex, never above
        assert np.mean(np.isclose(pgd, exact, rtol=1e-6)) > 0.5
    bt = linear.multiclass_robust_bound(
        torch.tensor(W), torch.tensor(b), x, y, eps=eps, reduction="none"
    )
    np.testing.assert_allclose(bt.numpy(), bound, rtol=1e-12)


# ----------------------------------------------------------------------- gamma, version space


def _brute_gamma_2d(x, y, norm, bias, num=200001):
    t = np.linspace(0, 2 * np.pi, num, endpoint=False)
    w = np.stack([np.cos(t), np.sin(t)], 1)
    w = w / linear.dual_norm(w, norm)[:, None]  # on the unit sphere of the dual norm
    s = x @ w.T  # (n, num)
    if bias:
        best = 0.5 * (s[y > 0].min(0) - s[y < 0].max(0))
    else:
        best = (y[:, None] * s).min(0)
    return max(best.max(), 0.0)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("bias", [False, True])
def test_robust_margin_matches_2d_search(norm, bias):
    rng = np.random.default_rng(7)
    y = np.where(np.arange(20) % 2 == 0, 1.0, -1.0)
    x = (
        y[:, None] * np.array([1.5, 0.8])
        + rng.normal(size=(20, 2)) * 0.4
        + np.array([0.7, 0.0])
    )
    res = linear.robust_margin(x, y, norm=norm, bias=bias)
    brute = _brute_gamma_2d(x, y, norm, bias)
    assert res.gamma > 0.1
    assert abs(res.gamma - brute) < 1e-5 * max(1.0, brute)
    assert res.gamma >= brute - 1e-9  # the solver is not beaten by the grid
    # the maximiser attains gamma with unit dual norm
    assert abs(linear.dual_norm(res.w, norm) - 1) < 1e-6
    np.testing.assert_allclose((y * (x @ res.w + res.b)).min(), res.gamma, rtol=1e-6)


def test_robust_margin_nonseparable_and_high_dim():
    x, y = _data(50, 2, shift=0.2)
    for norm in ("linf", "l2"):
        assert linear.robust_margin(x, y, norm=norm).gamma == 0.0
        assert linear.robust_margin(x, y, norm=norm, bias=True).gamma == 0.0
    # d > n: separable; the L2 margin (exact NNLS) agrees with an SLSQP hard-margin SVM
    x, y = _data(10, 20, seed=2)
    res = linear.robust_margin(x, y, norm="l2")
    z = y[:, None] * x
    svm = optimize.minimize(
        lambda w: w @ w,
        z[0] / (z[0] @ z[0]) * 10,
        jac=lambda w: 2 * w,
        constraints=[{"type": "ineq", "fun": lambda w: z @ w - 1}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert abs(res.gamma - 1 / np.linalg.norm(svm.x)) < 1e-6
    # gamma <= eps* always (min <= mean)
    for norm in ("linf", "l2"):
        assert (
            linear.robust_margin(x, y, norm=norm).gamma
            <= linear.constant_threshold(x, y, norm=norm) + 1e-12
        )


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_version_space_nonempty_below_gamma_empty_above(norm):
    rng = np.random.default_rng(3)
    y = np.where(np.arange(16) % 2 == 0, 1.0, -1.0)
    x = y[:, None] * np.array([1.0, 0.6]) + rng.normal(size=(16, 2)) * 0.3
    res = linear.robust_margin(x, y, norm=norm)
    g = res.gamma
    assert g > 0
    assert linear.in_version_space(res.w, 0.0, x, y, 0.99 * g, norm)
    assert not linear.in_version_space(res.w, 0.0, x, y, 1.01 * g, norm)
    # dense check of the 2-D cone of weights: members exist below gamma, none above
    t = np.linspace(0, 2 * np.pi, 20000, endpoint=False)
    ws = np.stack([np.cos(t), np.sin(t)], 1)

    def count(eps):
        return sum(linear.in_version_space(w, 0.0, x, y, eps, norm) for w in ws[::4])

    counts = [count(r * g) for r in (0.0, 0.5, 0.95, 1.01, 1.5)]
    assert counts[0] >= counts[1] >= counts[2] > 0
    assert counts[3] == counts[4] == 0


@HYP
@given(
    seed=st.integers(0, 10_000),
    eps=st.lists(st.floats(0.0, 2.0), min_size=2, max_size=2),
    norm=st.sampled_from(["linf", "l2"]),
    scale=st.floats(0.1, 10.0),
)
def test_version_space_nested_and_a_cone(seed, eps, norm, scale):
    eps1, eps2 = sorted(eps)
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(8) < 0.5, 1.0, -1.0)
    x = y[:, None] * np.array([1.0, 0.5, 0.0]) + 0.3 * rng.normal(size=(8, 3))
    for _ in range(20):
        w, b = rng.normal(size=3), 0.3 * rng.normal()
        in2 = linear.in_version_space(w, b, x, y, eps2, norm)
        in1 = linear.in_version_space(w, b, x, y, eps1, norm)
        assert in1 or not in2  # V_eps2 subset of V_eps1
        assert linear.in_version_space(scale * w, scale * b, x, y, eps1, norm) == in1
    g = linear.robust_margin(x, y, norm=norm).gamma
    if eps2 > g:  # past gamma the version space is empty, even for the best direction
        res = linear.robust_margin(x, y, norm=norm)
        assert not linear.in_version_space(res.w, 0.0, x, y, eps2, norm)


# ----------------------------------------------------------------------- eps*


def _best_direction(g, norm):
    """Direction maximising ``g.v / ||v||_*`` (the steepest descent at w = 0)."""
    if norm == "linf":
        v = np.zeros_like(g)
        k = int(np.argmax(np.abs(g)))
        v[k] = np.sign(g[k])
        return v
    return g / np.linalg.norm(g)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("balance", [0.5, 0.75])
def test_constant_threshold_below_and_above(norm, bias, balance):
    x, y = _data(80, 3, shift=0.8, seed=5, balance=balance)
    es = linear.constant_threshold(x, y, norm=norm, bias=bias)
    p = (y > 0).mean()
    zero_loss = LOG2 if not bias else float(-p * np.log(p) - (1 - p) * np.log(1 - p))
    above = linear.robust_train_closed_form(
        x, y, eps=1.01 * es, norm=norm, bias=bias, exact_zero=False
    )
    assert np.abs(above.w).max() < 1e-6
    assert abs(above.robust_loss - zero_loss) < 1e-10
    exact = linear.robust_train_closed_form(x, y, eps=1.01 * es, norm=norm, bias=bias)
    assert np.all(exact.w == 0) and abs(exact.robust_loss - zero_loss) < 1e-12
    if bias:
        assert abs(exact.b - np.log(p / (1 - p))) < 1e-12
    below = linear.robust_train_closed_form(x, y, eps=0.99 * es, norm=norm, bias=bias)
    assert np.linalg.norm(below.w) > 1e-3
    assert below.robust_loss < zero_loss - 1e-7
    # an L2 penalty does not move the threshold
    reg_above = linear.robust_train_closed_form(
        x, y, eps=1.01 * es, norm=norm, bias=bias, l2=0.1, exact_zero=False
    )
    reg_below = linear.robust_train_closed_form(
        x, y, eps=0.97 * es, norm=norm, bias=bias, l2=0.1
    )
    assert np.abs(reg_above.w).max() < 1e-6 and np.linalg.norm(reg_below.w) > 1e-4


@HYP
@given(
    seed=st.integers(0, 10_000),
    norm=st.sampled_from(["linf", "l2"]),
    bias=st.booleans(),
    loss=st.sampled_from(["logistic", "hinge"]),
    n=st.integers(4, 12),
    d=st.integers(1, 4),
)
def test_threshold_is_where_zero_stops_being_optimal(seed, norm, bias, loss, n, d):
    """Directional test at w = 0: above eps* every direction raises the robust loss,
    below it the steepest direction lowers it."""
    if bias and loss == "hinge":
        return
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    y[0], y[1] = 1.0, -1.0
    x = rng.normal(size=(n, d)) + y[:, None] * rng.normal(size=d)
    es = linear.constant_threshold(x, y, norm=norm, bias=bias, loss=loss)
    if es < 1e-3:
        return
    p = (y > 0).mean()
    b0 = float(np.log(p / (1 - p))) if bias else 0.0
    g = (
        0.5 * (x[y > 0].mean(0) - x[y < 0].mean(0))
        if bias
        else (y[:, None] * x).mean(0)
    )
    t = 1e-5

    def f(w, eps):
        return float(linear.robust_loss(w, b0, x, y, eps=eps, norm=norm, loss=loss))

    above, below = 1.02 * es, 0.98 * es
    for v in [_best_direction(g, norm), *rng.normal(size=(10, d))]:
        assert f(t * v, above) > f(0 * v, above)
    assert f(t * _best_direction(g, norm), below) < f(np.zeros(d), below)


def test_multiclass_threshold():
    # K = 2 reduces to the binary formula (no bias)
    x, y = _data(40, 3, seed=9, balance=0.7)
    idx = (y > 0).astype(int)
    for norm in ("linf", "l2"):
        got = linear.constant_threshold_multiclass(x, idx, norm=norm)
        assert abs(got - linear.constant_threshold(x, y, norm=norm)) < 1e-7
    # K = 3, d = 2: the exact robust CE (vertex enumeration) stays at log 3 around W = 0
    # above eps*_K and drops below it along the primal LP's direction
    rng = np.random.default_rng(1)
    k, d = 3, 2
    yk = np.arange(30) % k
    yk[:5] = 0  # imbalanced
    centers = np.array([[1.0, 0.0], [-0.5, 0.8], [-0.3, -0.9]])
    x = centers[yk] + 0.5 * rng.normal(size=(30, d))
    es = linear.constant_threshold_multiclass(x, yk, norm="linf")
    pi = np.array([(yk == j).mean() for j in range(k)])
    mu = np.stack([x[yk == j].mean(0) for j in range(k)])
    # primal LP: max sum_k pi_k U_k.mu_k s.t. sum_k pi_k ||U_k||_1 <= 1, sum_k U_k = 0
    c = -np.concatenate([(pi[:, None] * mu).ravel(), -(pi[:, None] * mu).ravel()])
    a_ub = np.concatenate([np.repeat(pi, d), np.repeat(pi, d)])[None]
    eye = np.tile(np.eye(d), k)
    res = optimize.linprog(
        c,
        A_ub=a_ub,
        b_ub=[1.0],
        A_eq=np.hstack([eye, -eye]),
        b_eq=np.zeros(d),
        bounds=[(0, None)] * (2 * k * d),
        method="highs",
    )
    assert abs(-res.fun - es) < 1e-8  # primal and dual agree
    u = (res.x[: k * d] - res.x[k * d :]).reshape(k, d)
    verts = _vertices(d, 1.0)
    yt = torch.tensor(np.repeat(yk, len(verts)))

    def robust_ce(W, eps):
        z = (x[:, None, :] + eps * verts[None]) @ W.T
        return float(
            _ce(torch.tensor(z.reshape(-1, k)), yt).reshape(30, -1).max(1)[0].mean()
        )

    t = 1e-4
    assert robust_ce(t * u, 0.95 * es) < np.log(k) - 1e-8
    for _ in range(50):
        v = rng.normal(size=(k, d))
        assert robust_ce(t * v, 1.05 * es) > np.log(k)
    assert robust_ce(t * u, 1.05 * es) > np.log(k)
    # L2: agrees with a dense grid search over the centre c
    es2 = linear.constant_threshold_multiclass(x, yk, norm="l2")
    g = np.linspace(-1, 1, 401)
    cc = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    grid = np.max(
        [np.linalg.norm(mu[j] - cc / pi[j], axis=1) for j in range(k)], axis=0
    ).min()
    assert es2 <= grid + 1e-9 and grid - es2 < 1e-2


# ----------------------------------------------------------------------- training


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("bias", [False, True])
def test_closed_form_training_agrees_with_pgd_training(norm, bias):
    """Minimal full-batch PGD adversarial training (attacks.PGD + SGD) vs the convex
    closed form, on the same data (the trainer-based check lives in the figure)."""
    x, y = _data(100, 3, seed=11)
    es = linear.constant_threshold(x, y, norm=norm, bias=bias)
    eps = 0.5 * es
    cf = linear.robust_train_closed_form(x, y, eps=eps, norm=norm, bias=bias)
    assert cf.converged
    pgd = linear.robust_train_pgd(
        x,
        y,
        eps=eps,
        norm=norm,
        bias=bias,
        max_iter=200,
        steps=5,
        generator=torch.Generator().manual_seed(0),
    )
    cos = cf.w @ pgd.w / (np.linalg.norm(cf.w) * np.linalg.norm(pgd.w))
    assert cos > 0.99
    assert pgd.robust_loss >= cf.robust_loss - 1e-9  # the closed form is the optimum
    assert pgd.robust_loss - cf.robust_loss < 2e-3
    # first-order optimality of the closed form: no coordinate step improves it
    for j in range(3):
        for s in (-1e-4, 1e-4):
            w = cf.w.copy()
            w[j] += s
            assert (
                linear.robust_loss(w, cf.b, x, y, eps=eps, norm=norm)
                >= cf.robust_loss - 1e-12
            )


def test_closed_form_warns_when_robustly_separable():
    x, y = _data(10, 20, seed=2)
    g = linear.robust_margin(x, y, norm="linf").gamma
    with pytest.warns(UserWarning, match="separable"):
        linear.robust_train_closed_form(x, y, eps=0.5 * g, norm="linf", max_iter=300)
    fit = linear.robust_train_closed_form(x, y, eps=0.5 * g, norm="linf", l2=1e-2)
    assert np.isfinite(fit.w).all() and fit.converged


def test_linear_sweep_small(tmp_path):
    x, y = _data(60, 2, seed=4)
    xt, yt = _data(60, 2, seed=5)
    sw = linear.linear_sweep(
        x,
        y,
        norm="linf",
        eps_rel=np.linspace(0, 1.5, 7),
        x_test=xt,
        y_test=yt,
        pgd_eps_rel=[0.5],
        pgd_kw={"max_iter": 60},
        generator=torch.Generator().manual_seed(0),
        bias=False,
    )
    assert sw.eps_star == pytest.approx(linear.constant_threshold(x, y, norm="linf"))
    above = sw.eps >= sw.eps_star
    assert np.all(sw.w_norm[above] == 0) and np.all(sw.w_norm[~above] > 0)
    # the constant classifier without bias is a coin flip: error 1/2
    assert np.all(sw.robust_error[above] == 0.5) and np.all(
        sw.clean_error[above] == 0.5
    )
    np.testing.assert_allclose(sw.dist_init[above], np.linalg.norm(sw.w_init))
    assert np.all(
        np.diff(sw.robust_loss) >= -1e-12
    )  # the optimal robust loss grows with eps
    assert sw.pgd_cosine[0] > 0.99
    sw.save(tmp_path / "s.npz")
    back = linear.LinearSweep.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.w_norm, sw.w_norm)
    assert back.eps_star == sw.eps_star and back.norm == "linf"


@pytest.mark.slow
def test_closed_form_agrees_with_the_trainer(norm="linf"):
    """PGD adversarial training through landscape.train.adversarial_train (full batch,
    models.build("linear", num_classes=2)) lands on the closed-form optimum (slow:
    the trainer's per-epoch bookkeeping dominates on this tiny problem)."""
    x, y = _data(100, 3, seed=11)
    eps = 0.5 * linear.constant_threshold(x, y, norm=norm)
    cf = linear.robust_train_closed_form(x, y, eps=eps, norm=norm, l2=0.01)
    tr = linear.robust_train_pgd(
        x,
        y,
        eps=eps,
        norm=norm,
        l2=0.01,
        max_iter=150,
        steps=5,
        trainer=True,
        generator=torch.Generator().manual_seed(0),
    )
    assert tr.method == "pgd-trainer"
    cos = cf.w @ tr.w / (np.linalg.norm(cf.w) * np.linalg.norm(tr.w))
    assert cos > 0.99
    assert -1e-6 <= tr.objective - cf.objective < 3e-3

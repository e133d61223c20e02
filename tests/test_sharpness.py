"""landscape.sharpness against closed forms (notes: quadratic and linear models) and
its contracts: invariance of the adaptive measures under a ReLU network's rescaling,
the model left untouched, results that save and load, the same answer under two gloo
processes, the command line."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
from _helpers import run_gloo
from torch import nn

from landscape import attacks, sharpness


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _least_squares(n: int = 24, d: int = 5, seed: int = 0, scale: float = 1.0):
    """A linear model at its least-squares solution (zero gradient) of the mean
    squared error: the loss is exactly quadratic with H = 2 X^T X / n."""
    g = _gen(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = scale * torch.randn(1, d, generator=g, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w)
    y = X @ w.T  # zero residuals: zero gradient
    H = 2 * X.T @ X / n
    return model, [(X, y)], H


def test_worst_case_l2_at_a_minimum_is_half_rho_squared_lambda_max():
    model, data, H = _least_squares()
    rho = 0.05
    s = sharpness.WorstCase(rho=rho, max_iter=100)(model, nn.MSELoss(), data, _gen(1))
    exact = 0.5 * rho**2 * float(torch.linalg.eigvalsh(H)[-1])
    assert s.value == pytest.approx(exact, rel=1e-4)
    assert s.value <= exact * (1 + 1e-10)  # a point of the ball: never above the max
    assert s.num_grad == 100 and s.std_error is None


def test_worst_case_linf_diagonal_quadratic_is_half_rho_squared_trace():
    """L-inf ball, g = 0, diagonal H: the maximum 1/2 rho^2 tr(H) at any vertex."""
    d = 4
    X = torch.diag(torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64))
    model = nn.Linear(d, 1, bias=False).double()
    nn.init.zeros_(model.weight)
    data = [(X, torch.zeros(d, 1, dtype=torch.float64))]
    H = 2 * X.T @ X / d
    rho = 0.1
    measure = sharpness.WorstCase(rho=rho, norm="linf", max_iter=10)
    s = measure(model, nn.MSELoss(), data, _gen())
    assert s.value == pytest.approx(0.5 * rho**2 * float(H.trace()), rel=1e-12)


@pytest.mark.parametrize(("noise", "factor"), [("gaussian", 1 / 2), ("uniform", 1 / 6)])
def test_average_case_is_rho_squared_trace_over_2_or_6(noise, factor):
    model, data, H = _least_squares(seed=3)  # at the minimum: a small spread
    rho = 0.05
    measure = sharpness.AverageCase(rho=rho, noise=noise, num_samples=4000)
    s = measure(model, nn.MSELoss(), data, _gen(2))
    exact = factor * rho**2 * float(H.trace())
    assert s.std_error is not None and 0 < s.std_error < 0.05 * exact
    assert abs(s.value - exact) < 4 * s.std_error


def test_adaptive_average_case_is_the_trace_of_dhd():
    model, data, H = _least_squares(seed=4, scale=3.0)
    D = torch.diag(model.weight.detach().abs().flatten())
    rho = 0.1
    measure = sharpness.AverageCase(rho=rho, adaptive="element", num_samples=4000)
    s = measure(model, nn.MSELoss(), data, _gen(5))
    exact = 0.5 * rho**2 * float((D @ H @ D).trace())
    assert abs(s.value - exact) < 4 * s.std_error
    plain = 0.5 * rho**2 * float(H.trace())
    assert abs(exact - plain) > 10 * s.std_error  # the test tells them apart


def _linear_per_example(norm: str, adaptive: str | None):
    """m = 1 on a linear model with a bias, squared error of one example
    L = (r + delta . x~)^2: the maximum over the ball is (|r| + rho ||c x~||_q)^2 - r^2
    (q the dual norm, c = |w| adaptive, 1 plain)."""
    g = _gen(7)
    n, d = 6, 3
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, 1, generator=g, dtype=torch.float64)
    model = nn.Linear(d, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, d, generator=g, dtype=torch.float64))
        model.bias.fill_(0.4)
    rho = 0.03
    measure = sharpness.WorstCase(
        rho=rho, norm=norm, adaptive=adaptive, m=1, max_iter=40
    )
    s = measure(model, nn.MSELoss(), [(X, y)], _gen(8))
    with torch.no_grad():
        r = (model(X) - y).flatten()
    xt = torch.cat([X, torch.ones(n, 1, dtype=X.dtype)], 1)
    if adaptive == "element":
        w = torch.cat([model.weight.detach().flatten(), model.bias.detach()])
        xt = xt * w.abs()
    q = 1 if norm == "linf" else 2
    reach = rho * torch.linalg.vector_norm(xt, ord=q, dim=1)
    exact = (r.abs() + reach) ** 2 - r**2
    return s, exact.numpy()


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("adaptive", [None, "element"])
def test_m1_worst_case_of_a_linear_model_is_exact(norm, adaptive):
    s, exact = _linear_per_example(norm, adaptive)
    assert s.sizes.tolist() == [1] * 6  # m-sharpness: one example per batch
    np.testing.assert_allclose(s.per_batch, exact, rtol=1e-6)
    assert s.value == pytest.approx(float(exact.mean()), rel=1e-6)


def test_m_sharpness_splits_each_batch():
    model, data, _ = _least_squares(n=10)
    measure = sharpness.AverageCase(rho=0.1, m=4, num_samples=3)
    s = measure(model, nn.MSELoss(), data, _gen())
    assert s.sizes.tolist() == [4, 4, 2]
    assert s.value == pytest.approx(float((s.sizes * s.per_batch).sum() / 10))


def _relu_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).double()


def _rescaled(model: nn.Module, alpha: float, per_neuron: bool) -> nn.Module:
    """The same function: layer 1 (weights and bias) times alpha (per neuron: a
    different factor per row), layer 2's columns divided by it."""
    import copy

    twin = copy.deepcopy(model)
    a = torch.full((8,), alpha, dtype=torch.float64)
    if per_neuron:
        a = torch.linspace(0.1, alpha, 8, dtype=torch.float64)
    with torch.no_grad():
        twin[0].weight.mul_(a[:, None])
        twin[0].bias.mul_(a)
        twin[2].weight.div_(a[None, :])
    return twin


def _cls_data():
    g = _gen(11)
    return [(torch.rand(16, 4, generator=g, dtype=torch.float64),
             torch.randint(0, 3, (16,), generator=g))]  # fmt: skip


@pytest.mark.parametrize("per_neuron", [False, True])
def test_adaptive_is_invariant_under_relu_rescaling_and_plain_is_not(per_neuron):
    model, data, ce = _relu_net(), _cls_data(), nn.CrossEntropyLoss()
    twin = _rescaled(model, 10.0, per_neuron)
    with torch.no_grad():  # the same function
        torch.testing.assert_close(twin(data[0][0]), model(data[0][0]))

    def worst(net, adaptive, norm="linf"):
        measure = sharpness.WorstCase(
            rho=0.05, norm=norm, adaptive=adaptive, max_iter=10
        )
        return measure(net, ce, data, _gen(3)).value

    def average(net, adaptive):
        measure = sharpness.AverageCase(rho=0.05, adaptive=adaptive, num_samples=20)
        return measure(net, ce, data, _gen(4)).value

    for fn in (worst, average):
        a, b = fn(model, "element"), fn(twin, "element")
        assert a > 0 and b == pytest.approx(a, rel=1e-9)
        p, q = fn(model, None), fn(twin, None)
        assert abs(p - q) > 0.1 * max(p, q)  # plain sharpness changes
    # the ascent runs in scaled coordinates: the L2 estimate is invariant too
    assert worst(twin, "element", "l2") == pytest.approx(
        worst(model, "element", "l2"), rel=1e-9
    )
    # filter-wise: invariant under a whole layer's scale, not per neuron
    f, g = worst(model, "filter"), worst(twin, "filter")
    if per_neuron:
        assert abs(f - g) > 1e-3 * f
    else:
        assert g == pytest.approx(f, rel=1e-9)


def test_model_untouched_result_saves_and_loads(tmp_path):
    model, data = _relu_net(), _cls_data()
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    measure = sharpness.WorstCase(rho=0.1, max_iter=3)
    s = measure(model, nn.CrossEntropyLoss(), data, _gen(), progressbar=True)
    assert model.training
    for p, q in zip(model.parameters(), before):
        assert torch.equal(p, q)
    path = s.save(tmp_path / "s.npz")
    back = sharpness.Sharpness.load(path)
    assert back.value == s.value and back.name == s.name == "worst-l2-rho0.1"
    np.testing.assert_array_equal(back.per_batch, s.per_batch)
    m = sharpness.Measure.from_dict(back.measure)
    assert m == sharpness.WorstCase(rho=0.1, max_iter=3)
    again = m(model, nn.CrossEntropyLoss(), data, _gen())
    assert again.value == s.value  # seeded: the same answer


def test_ignore_bn_keeps_the_normalisation_fixed():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(),
                          nn.Linear(6, 3)).double().eval()  # fmt: skip
    ce, data = nn.CrossEntropyLoss(), _cls_data()
    s_all, s_bn, s_1d = (
        sharpness.WorstCase(rho=0.1, max_iter=2, ignore=ignore)(model, ce, data, _gen())
        for ignore in (None, "bn", "biasbn")
    )
    n = sum(p.numel() for p in model.parameters())
    assert s_all.meta["num_params"] == n
    assert s_bn.meta["num_params"] == n - 12
    assert s_1d.meta["num_params"] == 4 * 6 + 6 * 3


def test_adversarial_loss_fixed_and_reattacked():
    model, data, ce = _relu_net(), _cls_data(), nn.CrossEntropyLoss()
    atk = attacks.PGD(eps=0.3, steps=3)
    clean, fixed, re = (
        sharpness.AverageCase(rho=0.02, num_samples=4, **kw)(model, ce, data, _gen())
        for kw in ({}, {"attack": atk, "adversarial": "fixed"}, {"attack": atk})
    )
    assert re.measure["adversarial"] == "reattack"
    assert fixed.loss[0] > clean.loss[0] + 0.05  # the robust loss
    assert re.loss[0] == pytest.approx(fixed.loss[0], rel=1e-12)  # same first attack
    assert re.num_grad > fixed.num_grad > 0  # an attack per sample


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(rho=0.0), "rho must be"),
        (dict(rho=0.1, adaptive="layer"), "adaptive must be"),
        (dict(rho=0.1, adversarial="fixed"), "needs an attack"),
        (dict(rho=0.1, m=0), "m must be"),
        (dict(rho=0.1, norm="l3"), "norm"),
    ],
)
def test_bad_settings_are_clear(kw, match):
    with pytest.raises(ValueError, match=match):
        sharpness.WorstCase(**kw)


def _ddp_case():
    model = _relu_net()
    g = _gen(5)
    data = [(torch.randn(6, 4, generator=g, dtype=torch.float64),
             torch.randint(0, 3, (6,), generator=g)) for _ in range(3)]  # fmt: skip
    measures = [
        sharpness.WorstCase(rho=0.05, max_iter=4, m=4),
        sharpness.AverageCase(rho=0.05, num_samples=5, adaptive="filter"),
    ]
    return model, data, measures


def _ddp_work(rank: int, out_dir: str) -> None:
    model, data, measures = _ddp_case()
    for i, m in enumerate(measures):
        r = m(model, nn.CrossEntropyLoss(), data, _gen(9))
        r.save(os.path.join(out_dir, f"m{i}_{rank}.npz"))


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_two_gloo_processes_equal_one(tmp_path):
    run_gloo(_ddp_work, tmp_path)
    model, data, measures = _ddp_case()
    for i, m in enumerate(measures):
        one = m(model, nn.CrossEntropyLoss(), data, _gen(9))
        assert one.meta["world_size"] == 1
        for rank in range(2):
            got = sharpness.Sharpness.load(tmp_path / f"m{i}_{rank}.npz")
            assert got.meta["world_size"] == 2
            np.testing.assert_allclose(got.per_batch, one.per_batch, rtol=1e-12)
            assert got.value == pytest.approx(one.value, rel=1e-12)
            assert got.num_grad == one.num_grad


def test_cli_writes_results_and_one_line_errors(
    tmp_path, data_root, capsys, lenet_checkpoint
):
    from landscape.sharpness._cli import main

    out = tmp_path / "out"
    common = ["--data-root", str(data_root), "--num-samples", "32", "--batch-size",
              "16", "--out", str(out), "--no-progress"]  # fmt: skip
    argv = [str(tmp_path / "ck.pt"), *common, "--kind", "worst", "average",
            "--rho", "0.01", "--adaptive", "element", "--max-iter", "3",
            "--num-samples-noise", "2", "--eps", "0.1", "--steps", "2", "--m", "8"]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert [r["measure"] for r in rows] == [
        "worst-l2-element-rho0.01-m8-fixed-pgd-2",
        "avg-gaussian-element-rho0.01-m8-fixed-pgd-2",
    ]
    for r in rows:
        res = sharpness.Sharpness.load(r["file"])
        assert res.value == r["value"] and math.isfinite(res.value)
        assert res.sizes.tolist() == [8, 8, 8, 8]
    capsys.readouterr()
    assert main([str(tmp_path / "ck.pt"), *common, "--rho", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "rho" in err and "\n" not in err and "Traceback" not in err

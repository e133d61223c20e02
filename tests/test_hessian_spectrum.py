"""landscape.hessian SLQ (lanczos_density, slq): planted spectra and tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_hessian import planted

from landscape import hessian


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_planted_density_properties(distribution):
    lam = np.concatenate([[25.0, 12.0], np.linspace(-0.5, 2.0, 198)])
    model, loss_fn, data, _ = planted(lam, seed=1)
    d = hessian.lanczos_density(
        model,
        loss_fn,
        data,
        max_iter=40,
        num_runs=4,
        distribution=distribution,
        generator=_gen(),
    )
    assert np.trapezoid(d.density, d.grid) == pytest.approx(1.0, abs=1e-9)
    assert (d.density >= 0).all()
    nodes = d.nodes[~np.isnan(d.nodes)]
    assert nodes.min() >= lam.min() - 1e-9 and nodes.max() <= lam.max() + 1e-9
    np.testing.assert_allclose(np.nanmax(d.nodes, axis=1), 25.0, rtol=1e-8)  # top Ritz
    np.testing.assert_allclose(np.nansum(d.weights, axis=1), 1.0, rtol=1e-10)
    assert d.num_matvecs == 160
    # the mass of the two outliers is 2/200 per run on average (Gaussian weights)
    top_mass = np.where(d.nodes > 10, d.weights, 0).sum(1).mean()
    assert top_mass == pytest.approx(2 / 200, rel=0.8)


def test_slq_moments_match_exact_trace():
    lam = np.linspace(0.0, 4.0, 120) ** 1.5
    model, loss_fn, data, _ = planted(lam, seed=2)
    q = hessian.lanczos_quadrature(
        model, loss_fn, data, max_iter=30, num_runs=40, generator=_gen(1)
    )
    mean = q.moment(lambda t: t)
    second = q.moment(lambda t: t**2)
    # Hutchinson-type estimates: within 4 standard errors of the exact normalised trace
    assert abs(mean - lam.mean()) < 4 * lam.std() * np.sqrt(2 / 120 / 40)
    assert second == pytest.approx((lam**2).mean(), rel=0.1)


def test_exact_when_iterations_reach_dimension():
    lam = np.array([3.0, 1.0, -2.0, 0.5, 7.0])
    model, loss_fn, data, _ = planted(lam)
    d = hessian.lanczos_density(
        model, loss_fn, data, max_iter=5, num_runs=1, sigma=0.01
    )
    np.testing.assert_allclose(np.sort(d.nodes[0]), np.sort(lam), atol=1e-10)
    # a sharp density peaks at each eigenvalue
    for v in lam:
        i = np.argmin(np.abs(d.grid - v))
        assert (
            d.density[i]
            > 0.5 * d.density.max() * d.weights[0].min() / d.weights[0].max()
        )


def test_density_matches_dense_on_tiny_model(tiny_case):
    model, loss_fn, data = tiny_case
    ev = (
        torch.linalg.eigvalsh(hessian.dense_hessian(model, loss_fn, data)).cpu().numpy()
    )
    d = hessian.lanczos_density(
        model, loss_fn, data, max_iter=25, num_runs=3, generator=_gen()
    )
    nodes = d.nodes[~np.isnan(d.nodes)]
    assert nodes.min() >= ev.min() - 1e-8 and nodes.max() <= ev.max() + 1e-8
    np.testing.assert_allclose(np.nanmax(d.nodes), ev.max(), rtol=1e-4)


def test_rebroaden_uses_cached_runs_and_normalises():
    model, loss_fn, data, _ = planted(np.linspace(1.0, 5.0, 50))
    q = hessian.lanczos_quadrature(
        model, loss_fn, data, max_iter=20, num_runs=2, generator=_gen()
    )
    hvps = model_hvps = q.num_matvecs
    d1, d2 = q.density(sigma=0.05), q.density(sigma=0.5)
    assert d1.num_matvecs == d2.num_matvecs == hvps == model_hvps == 40
    assert d2.density.max() < d1.density.max()  # wider kernel, lower peaks
    for d in (d1, d2, d1.rebroaden(0.2)):
        assert np.trapezoid(d.density, d.grid) == pytest.approx(1.0, abs=1e-9)
    grid = np.linspace(0, 6, 300)
    d3 = q.density(sigma=0.1, grid=grid)
    np.testing.assert_array_equal(d3.grid, grid)


def test_save_load_round_trip(tmp_path):
    model, loss_fn, data, _ = planted(np.linspace(1.0, 5.0, 30))
    d = hessian.lanczos_density(model, loss_fn, data, max_iter=8, num_runs=2)
    back = hessian.Density.load(d.save(tmp_path / "dens.npz"))
    np.testing.assert_array_equal(back.density, d.density)
    np.testing.assert_array_equal(back.nodes, d.nodes)
    assert back.sigma == d.sigma and back.num_matvecs == d.num_matvecs


def test_pyhessian_backend_explains_why_not():
    model, loss_fn, data, _ = planted(np.ones(3))
    with pytest.raises(NotImplementedError, match="torch.eig"):
        hessian.lanczos_density(model, loss_fn, data, backend="pyhessian")


def test_bad_arguments():
    model, loss_fn, data, _ = planted(np.ones(3))
    with pytest.raises(ValueError, match="max_iter"):
        hessian.lanczos_density(model, loss_fn, data, max_iter=0)
    with pytest.raises(ValueError, match="sigma"):
        hessian.lanczos_density(model, loss_fn, data, max_iter=2, sigma=-1.0)


# -- bandwidth from the Ritz values, tail masses, operator-level SLQ ---------------


def _spike_model():
    """A tiny tanh MLP (292 params) trained near a minimum of 32 points: its Hessian
    has a near-zero spike (~75% of the eigenvalues) and ~1% mass below -1% lambda_max."""
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 12),
        torch.nn.Tanh(),
        torch.nn.Linear(12, 12),
        torch.nn.Tanh(),
        torch.nn.Linear(12, 4),
    ).double()
    for p in model.parameters():
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    x = torch.randn(32, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (32,), generator=g)
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(400):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model, loss_fn, [(x, y)]


def test_default_bandwidth_matches_dense_tail_mass():
    model, loss_fn, data = _spike_model()
    ev = torch.linalg.eigvalsh(hessian.dense_hessian(model, loss_fn, data)).numpy()
    t = -0.01 * ev.max()
    exact = float((ev < t).mean())
    assert 0.005 < exact < 0.02  # the setting: a small negative tail
    assert (np.abs(ev) < 0.01 * ev.max()).mean() > 0.7  # ... next to a big spike
    q = hessian.lanczos_quadrature(
        model, loss_fn, data, max_iter=100, num_runs=4, generator=_gen()
    )
    d = q.density()
    lo, hi = q.range
    assert d.sigma == pytest.approx(hessian.papyan_bandwidth(lo, hi, 100), rel=1e-12)
    assert d.mass_below(t) == pytest.approx(exact, rel=0.25)
    # the former default (1% of the Ritz range) spreads the spike over the tail
    assert q.density(sigma=0.01 * (hi - lo)).mass_below(t) > 5 * exact
    # the unbroadened quadrature is within a node's weight of the exact fraction
    assert abs(q.mass_below(t) - exact) <= np.nanmax(q.weights)
    assert d.mass_below(np.inf) == pytest.approx(1.0, abs=1e-9)


def test_papyan_bandwidth_formula():
    # neighbouring bumps of evenly spaced nodes cross at 1/kappa of their peaks
    lo, hi, m = -1.0, 3.0, 41
    sigma = hessian.papyan_bandwidth(lo, hi, m, kappa=3.0)
    h = (hi - lo) * 1.1 / (m - 1)
    assert np.exp(-0.5 * (h / 2 / sigma) ** 2) == pytest.approx(1 / 3, rel=1e-12)
    with pytest.raises(ValueError, match="kappa"):
        hessian.papyan_bandwidth(0.0, 1.0, 10, kappa=1.0)


def test_density_exposes_quadrature():
    lam = np.linspace(-1.0, 4.0, 60)
    model, loss_fn, data, _ = planted(lam, seed=3)
    d = hessian.lanczos_density(
        model, loss_fn, data, max_iter=12, num_runs=3, generator=_gen()
    )
    q = d.quadrature
    np.testing.assert_array_equal(q.nodes, d.nodes)
    np.testing.assert_array_equal(q.weights, d.weights)
    assert q.num_nodes == 12
    # the quadrature integrates t exactly in expectation: mean eigenvalue
    assert q.moment(lambda t: t) == pytest.approx(lam.mean(), abs=4 * lam.std() / 6)


@pytest.mark.parametrize("kind", ["tensor", "numpy", "scipy", "matvec"])
def test_slq_on_any_operator(kind):
    import scipy.sparse.linalg as sla

    lam = np.array([5.0, 3.0, 1.0, 0.5, -2.0, 0.0])
    _, _, _, A = planted(lam, seed=4)

    class MatvecOnly:
        shape = A.shape
        dtype = A.dtype

        def matvec(self, v):
            return A @ v

    op = {
        "tensor": A,
        "numpy": A.numpy(),
        "scipy": sla.aslinearoperator(A.numpy()),
        "matvec": MatvecOnly(),
    }[kind]
    q = hessian.slq(op, max_iter=6, num_runs=2, generator=_gen())
    for c in range(2):
        np.testing.assert_allclose(np.sort(q.nodes[c]), np.sort(lam), atol=1e-10)
    assert q.num_matvecs == 12

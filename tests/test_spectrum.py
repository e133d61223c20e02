"""landscape.spectrum: SLQ density on planted spectra and tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_hessian import planted

from landscape import hessian, spectrum


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_planted_density_properties(distribution):
    lam = np.concatenate([[25.0, 12.0], np.linspace(-0.5, 2.0, 198)])
    model, loss_fn, data, _ = planted(lam, seed=1)
    d = spectrum.lanczos_density(
        model,
        loss_fn,
        data,
        num_iters=40,
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
    assert d.num_hvps == 160
    # the mass of the two outliers is 2/200 per run on average (Gaussian weights)
    top_mass = np.where(d.nodes > 10, d.weights, 0).sum(1).mean()
    assert top_mass == pytest.approx(2 / 200, rel=0.8)


def test_slq_moments_match_exact_trace():
    lam = np.linspace(0.0, 4.0, 120) ** 1.5
    model, loss_fn, data, _ = planted(lam, seed=2)
    q = spectrum.lanczos_quadrature(
        model, loss_fn, data, num_iters=30, num_runs=40, generator=_gen(1)
    )
    mean = q.moment(lambda t: t)
    second = q.moment(lambda t: t**2)
    # Hutchinson-type estimates: within 4 standard errors of the exact normalised trace
    assert abs(mean - lam.mean()) < 4 * lam.std() * np.sqrt(2 / 120 / 40)
    assert second == pytest.approx((lam**2).mean(), rel=0.1)


def test_exact_when_iterations_reach_dimension():
    lam = np.array([3.0, 1.0, -2.0, 0.5, 7.0])
    model, loss_fn, data, _ = planted(lam)
    d = spectrum.lanczos_density(
        model, loss_fn, data, num_iters=5, num_runs=1, sigma=0.01
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
    d = spectrum.lanczos_density(
        model, loss_fn, data, num_iters=25, num_runs=3, generator=_gen()
    )
    nodes = d.nodes[~np.isnan(d.nodes)]
    assert nodes.min() >= ev.min() - 1e-8 and nodes.max() <= ev.max() + 1e-8
    np.testing.assert_allclose(np.nanmax(d.nodes), ev.max(), rtol=1e-4)


def test_rebroaden_uses_cached_runs_and_normalises():
    model, loss_fn, data, _ = planted(np.linspace(1.0, 5.0, 50))
    q = spectrum.lanczos_quadrature(
        model, loss_fn, data, num_iters=20, num_runs=2, generator=_gen()
    )
    hvps = model_hvps = q.num_hvps
    d1, d2 = q.density(sigma=0.05), q.density(sigma=0.5)
    assert d1.num_hvps == d2.num_hvps == hvps == model_hvps == 40
    assert d2.density.max() < d1.density.max()  # wider kernel, lower peaks
    for d in (d1, d2, d1.rebroaden(0.2)):
        assert np.trapezoid(d.density, d.grid) == pytest.approx(1.0, abs=1e-9)
    grid = np.linspace(0, 6, 300)
    d3 = q.density(sigma=0.1, grid=grid)
    np.testing.assert_array_equal(d3.grid, grid)


def test_save_load_round_trip(tmp_path):
    model, loss_fn, data, _ = planted(np.linspace(1.0, 5.0, 30))
    d = spectrum.lanczos_density(model, loss_fn, data, num_iters=8, num_runs=2)
    back = spectrum.Density.load(d.save(tmp_path / "dens.npz"))
    np.testing.assert_array_equal(back.density, d.density)
    np.testing.assert_array_equal(back.nodes, d.nodes)
    assert back.sigma == d.sigma and back.num_hvps == d.num_hvps


def test_pyhessian_backend_explains_why_not():
    model, loss_fn, data, _ = planted(np.ones(3))
    with pytest.raises(NotImplementedError, match="torch.eig"):
        spectrum.lanczos_density(model, loss_fn, data, backend="pyhessian")


def test_bad_arguments():
    model, loss_fn, data, _ = planted(np.ones(3))
    with pytest.raises(ValueError, match="num_iters"):
        spectrum.lanczos_density(model, loss_fn, data, num_iters=0)
    with pytest.raises(ValueError, match="sigma"):
        spectrum.lanczos_density(model, loss_fn, data, num_iters=2, sigma=-1.0)

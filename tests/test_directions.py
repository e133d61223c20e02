"""Directions: filter/layer normalisation, biasbn, orthogonality, eigen, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from landscape import directions as D


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    m = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
        nn.Tanh(),
        nn.Linear(5, 3, bias=False),
    ).double()
    with torch.no_grad():  # BN weights away from 1 so "copy the weights" is visible
        m[1].weight.uniform_(0.5, 2.0)
        m[1].bias.uniform_(-1.0, 1.0)
    return m


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_filter_norms_match_weights_filter_by_filter():
    m = _net()
    dirs = D.random_directions(m, num=2, norm="filter", generator=_gen())
    for d in dirs:
        for name, p in m.named_parameters():
            if p.dim() <= 1:
                continue
            dn = d[name].reshape(p.shape[0], -1).norm(dim=1)
            wn = p.detach().reshape(p.shape[0], -1).norm(dim=1)
            torch.testing.assert_close(dn, wn, rtol=1e-8, atol=0)


def test_layer_norms_match_weights():
    m = _net()
    (d,) = D.random_directions(m, num=1, norm="layer", generator=_gen())
    for name, p in m.named_parameters():
        if p.dim() > 1:
            torch.testing.assert_close(
                d[name].norm(), p.detach().norm(), rtol=1e-8, atol=0
            )
            # per-filter norms are NOT matched by layer normalisation
            dn = d[name].reshape(p.shape[0], -1).norm(dim=1)
            wn = p.detach().reshape(p.shape[0], -1).norm(dim=1)
            assert not torch.allclose(dn, wn, rtol=1e-3)


def test_biasbn_zero_including_batchnorm_weights():
    m = _net()
    (d,) = D.random_directions(m, num=1, ignore="biasbn", generator=_gen())
    one_d = [n for n, p in m.named_parameters() if p.dim() <= 1]
    assert "1.weight" in one_d and "1.bias" in one_d and "0.bias" in one_d
    for n in one_d:
        assert torch.count_nonzero(d[n]) == 0
    assert all(torch.count_nonzero(d[n]) > 0 for n in d if n not in one_d)


def test_biasbn_not_ignored_copies_weights_as_reference_code():
    m = _net()
    (d,) = D.random_directions(m, num=1, ignore=None, generator=_gen())
    for n, p in m.named_parameters():
        if p.dim() <= 1:
            assert torch.equal(d[n], p.detach())


def test_norm_none_is_raw_gaussian_and_reproducible():
    m = _net()
    a = D.random_directions(m, num=2, norm=None, ignore=None, generator=_gen(3))
    b = D.random_directions(m, num=2, norm=None, ignore=None, generator=_gen(3))
    c = D.random_directions(m, num=2, norm=None, ignore=None, generator=_gen(4))
    for k in a[0]:
        assert torch.equal(a[0][k], b[0][k]) and torch.equal(a[1][k], b[1][k])
    assert not torch.equal(a[0]["0.weight"], c[0]["0.weight"])
    assert not torch.equal(a[0]["0.weight"], a[1]["0.weight"])
    # raw N(0, 1) entries: the big linear layer has mean ~0 and variance ~1
    w = a[0]["4.weight"]
    assert abs(float(w.mean())) < 0.2 and 0.7 < float(w.var()) < 1.3
    assert set(a[0]) == {n for n, _ in m.named_parameters()}
    assert all(a[0][n].dtype == p.dtype for n, p in m.named_parameters())


def test_orthogonal_directions():
    m = _net()
    d1, d2 = D.random_directions(m, num=2, orthogonal=True, generator=_gen())
    d1r, d2r = D.random_directions(m, num=2, orthogonal=False, generator=_gen())
    assert abs(float(D.dot(d1, d2))) < 1e-10 * float(D.norm(d1) * D.norm(d2))
    assert abs(float(D.dot(d1r, d2r))) > 1e-6  # they were not orthogonal before
    torch.testing.assert_close(D.norm(d2), D.norm(d2r))  # keep_norm
    for k in d1:
        assert torch.equal(d1[k], d1r[k])  # the first is untouched


def test_normalize_direction_closed_form():
    w = {"w": torch.tensor([[3.0, 4.0], [0.0, 2.0]]), "b": torch.tensor([1.0, 2.0])}
    d = {"w": torch.tensor([[0.0, 1.0], [1.0, 1.0]]), "b": torch.tensor([5.0, 5.0])}
    f = D.normalize_direction(d, w, norm="filter", ignore=None)
    torch.testing.assert_close(f["w"], torch.tensor([[0.0, 5.0], [2**0.5, 2**0.5]]))
    assert torch.equal(f["b"], w["b"])
    lay = D.normalize_direction(d, w, norm="layer")
    torch.testing.assert_close(lay["w"].norm(), w["w"].norm())
    assert torch.equal(d["w"], torch.tensor([[0.0, 1.0], [1.0, 1.0]]))  # not in place


def test_bad_arguments():
    m = _net()
    with pytest.raises(ValueError, match="norm must be"):
        D.random_directions(m, norm="weight")
    with pytest.raises(ValueError, match="ignore must be"):
        D.random_directions(m, ignore="bn")
    with pytest.raises(KeyError, match="named_parameters"):
        D.normalize_direction({"nope": torch.zeros(2, 2)}, m)


class _Eig:
    def __init__(self, vecs):
        self.eigenvalues = np.arange(len(vecs), dtype=float)
        self.eigenvectors = vecs


def test_eigen_directions_accepts_eigenpairs_lists_dicts_and_flat():
    m = _net()
    names = {n: p for n, p in m.named_parameters()}
    v1 = {n: torch.randn(p.shape, dtype=p.dtype) for n, p in names.items()}
    v2 = {n: torch.randn(p.shape, dtype=p.dtype) for n, p in names.items()}
    got = D.eigen_directions(_Eig([v1, v2]), num=1)
    assert len(got) == 1 and all(torch.equal(got[0][k], v1[k]) for k in v1)
    got = D.eigen_directions([v1, v2], like=m)
    assert len(got) == 2 and torch.equal(got[1]["4.weight"], v2["4.weight"])
    got = D.eigen_directions(v1)
    assert len(got) == 1
    flat = torch.cat([v.reshape(-1) for v in v1.values()])
    got = D.eigen_directions([flat], like=m)
    assert all(torch.equal(got[0][k], v1[k]) for k in v1)
    with pytest.raises(ValueError, match="like=model"):
        D.eigen_directions([flat])
    with pytest.raises(ValueError, match="does not match"):
        D.eigen_directions([{"0.weight": torch.zeros(1)}], like=m)


def test_interpolation_and_plane_reproduce_checkpoints():
    m1, m2, m3 = _net(0), _net(1), _net(2)
    w1, w2, w3 = (dict(m.named_parameters()) for m in (m1, m2, m3))
    d = D.interpolation_direction(m1, m2)
    for k in d:
        torch.testing.assert_close(w1[k] + d[k], w2[k].detach())
    for orth in (True, False):
        plane = D.plane_directions(m1, m2, m3, orthogonal=orth)
        d1, d2 = plane.directions
        if orth:
            assert abs(float(D.dot(d1, d2))) < 1e-9 * float(D.norm(d1) * D.norm(d2))
        for (a, b), w in zip(plane.coords, (w1, w2, w3)):
            for k in d1:
                got = plane.origin[k] + a * d1[k] + b * d2[k]
                torch.testing.assert_close(got, w[k].detach(), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="identical"):
        D.plane_directions(m1, m1, m3)
    with pytest.raises(ValueError, match="collinear"):
        D.plane_directions(m1, m2, m2)

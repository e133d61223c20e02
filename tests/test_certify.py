"""Certified bounds: exact on a linear model, containing brute-force extremes over a
dense grid of the eps-ball on tiny ReLU nets (incl. conv + BatchNorm), sound against
attacks, clear errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from _helpers import conv_bn_net, gaussian_mlp
from _linear_case import _closed_form, _linear_case
from torch import nn

from landscape import attacks as A
from landscape import certify as C
from landscape import evaluate as E


def _two_logit_seq(w, b):
    lin = nn.Linear(w.numel(), 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.stack([torch.zeros_like(w), w]))
        lin.bias.copy_(torch.tensor([0.0, b], dtype=torch.float64))
    return nn.Sequential(nn.Flatten(), lin)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_crown_is_exact_on_a_linear_model(norm):
    model, x, y, w, z = _linear_case(seed=4)
    seq = _two_logit_seq(w, float(model.lin.bias))
    eps = 0.01 if norm == "linf" else 0.1
    m = C.margin_bounds(seq, x, y, eps=eps, norm=norm)
    s = 2.0 * y.double() - 1
    dual = w.abs().sum() if norm == "linf" else w.norm()
    exact = s * z - eps * dual  # box never binds in this case
    other = m.masked_fill(torch.isinf(m), 0).sum(1)
    torch.testing.assert_close(other, exact, rtol=1e-9, atol=1e-12)
    expected, _ = _closed_form(w, z, y, eps, norm)
    got = C.certified(seq, x, y, eps=eps, norm=norm)
    assert torch.equal(got, expected)
    # IBP loses the correlation between the two logits: weaker, never stronger
    ibp = C.margin_bounds(seq, x, y, eps=eps, norm=norm, method="ibp")
    assert (ibp.masked_fill(torch.isinf(ibp), 0).sum(1) <= other + 1e-12).all()


def _tiny_relu(seed=0, d=2, k=3):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(d, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, k)
    ).double()


def _grid(x0, eps, norm, num=61):
    t = torch.linspace(-eps, eps, num, dtype=torch.float64)
    pts = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    if norm == "l2":
        pts = pts[pts.norm(dim=1) <= eps]
        ang = torch.linspace(0, 2 * math.pi, 721, dtype=torch.float64)
        pts = torch.cat([pts, eps * torch.stack([ang.cos(), ang.sin()], 1)])
    p = x0 + pts
    return p[((p >= 0) & (p <= 1)).all(1)] if norm == "linf" else p


@pytest.mark.parametrize("method", ["crown", "ibp"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_bounds_contain_brute_force_extremes(method, norm):
    net = _tiny_relu()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 2, generator=g, dtype=torch.float64)
    x[0] = torch.tensor([0.02, 0.97])  # the L-inf ball meets the box here
    eps = 0.15
    lo, hi = C.logit_bounds(net, x, eps=eps, norm=norm, method=method)
    with torch.no_grad():
        y = net(x).argmax(1)
    mb = C.margin_bounds(net, x, y, eps=eps, norm=norm, method=method)
    for i in range(len(x)):
        with torch.no_grad():
            out = net(_grid(x[i], eps, norm))
        assert (lo[i] <= out.min(0).values + 1e-12).all()
        assert (hi[i] >= out.max(0).values - 1e-12).all()
        margins = out[:, y[i]].unsqueeze(1) - out
        fin = torch.isfinite(mb[i])
        assert (mb[i][fin] <= margins.min(0).values[fin] + 1e-12).all()
    if method == "crown":  # CROWN's bounds are not loose by orders of magnitude
        assert (hi - lo).max() < 50 * eps


def test_conv_batchnorm_net_bounds_are_sound():
    net = conv_bn_net(kernel=2, side=3, dropout=True)  # Linear(12, 4)
    net.train()  # bounded (and evaluated) in eval mode; mode restored
    x = torch.rand(4, 1, 3, 3, dtype=torch.float64)
    aff = C.as_affine_relu(net, x)
    assert net.training and len(aff.weights) == 2
    with torch.no_grad():
        torch.testing.assert_close(aff.forward(x), net.eval()(x))
    net.train()
    for norm, eps in (("linf", 0.1), ("l2", 0.3)):
        lo, hi = C.logit_bounds(net, x, eps=eps, norm=norm)
        g = torch.Generator().manual_seed(0)
        for i in range(len(x)):  # random points and the corners of the ball
            u = torch.rand(4000, 9, generator=g, dtype=torch.float64) * 2 - 1
            if norm == "linf":
                corners = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=9)))
                pts = torch.cat([u, corners.double()]) * eps
                p = (x[i].flatten() + pts).clamp(0, 1)
            else:
                p = x[i].flatten() + eps * u / u.norm(dim=1, keepdim=True)
            with torch.no_grad():
                out = net.eval()(p.view(-1, 1, 3, 3))
            assert (lo[i] <= out.min(0).values + 1e-12).all()
            assert (hi[i] >= out.max(0).values - 1e-12).all()


def test_unsupported_layers_raise():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.Flatten())
    with pytest.raises(ValueError, match="MaxPool2d"):
        C.certify(net, (torch.rand(2, 1, 6, 6), torch.tensor([0, 1])), eps=0.1)
    with pytest.raises(ValueError, match="method"):
        C.margin_bounds(_tiny_relu(), torch.rand(2, 2), torch.tensor([0, 1]), eps=0.1,
                        method="lp")  # fmt: skip


def _trained_mlp():
    return gaussian_mlp(500, 6, margin=1.0, num_train=300, steps=200)


def test_certified_never_exceeds_attacked_and_bracket():
    net, x, y = _trained_mlp()
    eps = [0.0, 0.03, 0.08]
    res = C.certify(net, (x, y), eps=eps)
    assert res.certified_accuracy[0] == pytest.approx(res.clean_correct.mean())
    assert np.all(np.diff(res.certified_accuracy) <= 0)
    ibp = C.certify(net, (x, y), eps=eps, method="ibp")
    assert np.all(ibp.certified <= res.certified)  # CROWN is tighter here
    ev = E.evaluate(net, (x, y), eps=eps, preset="quick", certify=True, checks=False)
    assert np.array_equal(ev.certified, res.certified)
    cert, att = ev.bracket
    assert np.all(cert <= att + 1e-12) and np.any(cert < att)
    assert not np.any(ev.certified & ~ev.robust_correct)  # never certified yet broken
    assert ev.checks["certified_attacked"]["passed"] is True
    assert "certified" in ev.table()
    for e, ep in enumerate(eps[1:], 1):  # a strong attack breaks no certified point
        xa = A.pgd(net, x, y, eps=ep, steps=50, restarts=3)
        with torch.no_grad():
            broken = (net(xa).argmax(1) != y).numpy()
        assert not np.any(broken & res.certified[e])


def test_plot_certified():
    from landscape import plot

    net, x, y = _trained_mlp()
    ev = E.evaluate(net, (x, y), eps=[0.0, 0.05], steps=3, certify=True, checks=False)
    ax = plot.plot_certified(ev, others={"IBP": C.certify(net, (x, y), eps=[0, 0.05])})
    assert len(ax.lines) >= 3
    with pytest.raises(ValueError, match="certify=True"):
        plot.plot_certified(E.evaluate(net, (x, y), eps=0.05, steps=3, checks=False))

"""Certified bounds: equal to hand-written float64 IBP and CROWN (to 1e-12) on float32
MLPs and CNNs, exact on a linear model, containing brute-force extremes and sampled
outputs (incl. conv + BatchNorm, pooling, transposed convolutions, ResNets), the
margin folded into IBP, patches equal to dense coefficients, clear errors."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _helpers import conv_bn_net, dense_backsub, gaussian_mlp
from _linear_case import _closed_form, _linear_case
from torch import nn

from landscape import attacks as A
from landscape import certify as C
from landscape import evaluate as E
from landscape import models
from landscape.certify import _bounds

TOL = dict(rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------ hand-written references
def _ref_ibp(seq: nn.Sequential, x: torch.Tensor, eps: float, spec=None):
    """Float64 IBP with ``lo W+ + hi W-`` through Flatten / Linear / Conv2d / ReLU,
    the parameters cast to float64; with ``spec`` (N, m, K) folded into the last
    Linear layer: the lower bounds of ``spec . z``, else the logit intervals."""
    lo, hi = (x.double() - eps).clamp(0, 1), (x.double() + eps).clamp(0, 1)
    layers = list(seq)
    for i, m in enumerate(layers):
        if isinstance(m, nn.ReLU):
            lo, hi = lo.relu(), hi.relu()
        elif isinstance(m, nn.Flatten):
            lo, hi = lo.flatten(1), hi.flatten(1)
        else:
            w, b = m.weight.detach().double(), m.bias.detach().double()
            if i == len(layers) - 1 and spec is not None:  # margin folded in
                wc, bc = spec @ w, spec @ b  # (N, m, d), (N, m)
                pos, neg = wc.clamp_min(0), wc.clamp_max(0)
                return (
                    torch.einsum("nmd,nd->nm", pos, lo)
                    + torch.einsum("nmd,nd->nm", neg, hi)
                    + bc
                )
            pos, neg = w.clamp_min(0), w.clamp_max(0)
            if isinstance(m, nn.Linear):
                lo, hi = lo @ pos.T + hi @ neg.T + b, hi @ pos.T + lo @ neg.T + b
            else:
                kw = dict(stride=m.stride, padding=m.padding)
                lo, hi = (
                    F.conv2d(lo, pos, b, **kw) + F.conv2d(hi, neg, **kw),
                    F.conv2d(hi, pos, b, **kw) + F.conv2d(lo, neg, **kw),
                )
    return lo, hi


def _dense(seq: nn.Sequential, in_shape):
    """The float64 dense maps (W, b) between the ReLUs of a Sequential of Flatten /
    Linear / Conv2d / ReLU: unit vectors through each layer without its bias."""
    out, w_acc, b_acc, shape = [], None, None, tuple(in_shape)
    for m in [*seq, nn.ReLU()]:
        if isinstance(m, nn.ReLU):
            out.append((w_acc, b_acc))
            w_acc = b_acc = None
            continue
        d = math.prod(shape)
        eye = torch.eye(d, dtype=torch.float64).view(d, *shape)
        if isinstance(m, nn.Flatten):
            h, b = eye.flatten(1), torch.zeros(d, dtype=torch.float64)
        elif isinstance(m, nn.Linear):
            h, b = eye @ m.weight.detach().double().T, m.bias.detach().double()
        else:
            w = m.weight.detach().double()
            h = F.conv2d(eye, w, None, m.stride, m.padding)
            b = m.bias.detach().double().repeat_interleave(h[0, 0].numel())
        shape = tuple(h.shape[1:])
        wm = h.flatten(1).T  # (out, in)
        if w_acc is None:
            w_acc, b_acc = wm, b
        else:
            w_acc, b_acc = wm @ w_acc, wm @ b_acc + b
    return out


def _ref_crown(seq, x, eps, spec):
    """Float64 CROWN on dense maps: every ReLU input bounded by backsubstitution and
    intersected with the interval one IBP step gives (neurons that interval leaves
    stable keep it), the specification's bound intersected with folded IBP."""
    layers = _dense(seq, x.shape[1:])
    xf = x.double().flatten(1)
    lo_in, hi_in = (xf - eps).clamp(0, 1), (xf + eps).clamp(0, 1)
    n = len(x)

    def backsub(k, lam, relax):  # lower bound of lam . z_k, lam (N, m, n_k)
        return dense_backsub(layers, k, lam, relax, lo_in, hi_in)

    def step(w, b, lo, hi):  # IBP through one dense map
        pos, neg = w.clamp_min(0), w.clamp_max(0)
        return lo @ pos.T + hi @ neg.T + b, hi @ pos.T + lo @ neg.T + b

    relax, bounds = [], []
    for k in range(len(layers) - 1):
        w, b = layers[k]
        if k == 0:
            lo, hi = step(w, b, lo_in, hi_in)
        else:
            lo, hi = step(w, b, bounds[-1][0].relu(), bounds[-1][1].relu())
            eye = torch.eye(w.shape[0], dtype=torch.float64).expand(n, -1, -1)
            unstable = (lo < 0) & (hi > 0)
            lo = torch.where(unstable, torch.maximum(lo, backsub(k, eye, relax)), lo)
            hi = torch.where(unstable, torch.minimum(hi, -backsub(k, -eye, relax)), hi)
        bounds.append((lo, hi))
        unst = (lo < 0) & (hi > 0)
        up = torch.where(unst, hi / torch.where(unst, hi - lo, 1.0), (lo >= 0).double())
        low = torch.where(unst, (hi > -lo).double(), (lo >= 0).double())
        relax.append((low, up, torch.where(unst, -up * lo, 0.0)))
    w, b = layers[-1]
    wc = spec @ w
    lo, hi = bounds[-1][0].relu(), bounds[-1][1].relu()
    ibp = (
        torch.einsum("nmd,nd->nm", wc.clamp_min(0), lo)
        + torch.einsum("nmd,nd->nm", wc.clamp_max(0), hi)
        + spec @ b
    )
    return torch.maximum(ibp, backsub(len(layers) - 1, spec, relax))


def _mlp():
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 16), nn.ReLU(),
        nn.Linear(16, 5),
    ).eval()  # fmt: skip


def _cnn():
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, 1, 1), nn.ReLU(), nn.Conv2d(4, 4, 4, 2, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 5),
    ).eval()  # fmt: skip


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_bounds_equal_float64_references(arch):
    """Float32 models: every bound equals the hand-written float64 IBP / CROWN on the
    float32 weights cast to float64, to 1e-12 (the weights used to be read by probing
    the float32 model, 1e-7 off)."""
    net = _mlp() if arch == "mlp" else _cnn()
    shape = (1, 3, 4) if arch == "mlp" else (1, 8, 8)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, *shape, generator=g)
    x[0, 0, 0, :2] = torch.tensor([0.001, 0.999])  # the eps-box meets [0, 1]
    eps = 0.08
    with torch.no_grad():
        y = net(x).argmax(1)
    k = 5
    eye = torch.eye(k, dtype=torch.float64)
    margins = C.margin_spec(y, k, torch.float64)
    lo, hi = C.logit_bounds(net, x, eps=eps, method="ibp")
    rlo, rhi = _ref_ibp(net, x, eps)
    torch.testing.assert_close(lo, rlo, **TOL)
    torch.testing.assert_close(hi, rhi, **TOL)
    got = C.margin_bounds(net, x, y, eps=eps, method="ibp")
    ref = _ref_ibp(net, x, eps, margins).scatter(1, y.view(-1, 1), float("inf"))
    torch.testing.assert_close(got, ref, **TOL)
    got = C.margin_bounds(net, x, y, eps=eps)
    ref = _ref_crown(net, x, eps, margins).scatter(1, y.view(-1, 1), float("inf"))
    torch.testing.assert_close(got, ref, **TOL)
    lo, hi = C.logit_bounds(net, x, eps=eps)
    both = _ref_crown(net, x, eps, torch.cat([eye, -eye]).expand(len(x), -1, -1))
    torch.testing.assert_close(lo, both[:, :k], **TOL)
    torch.testing.assert_close(hi, -both[:, k:], **TOL)
    assert ((hi - lo) > 1e-3).all()  # not a vacuous comparison
    # the graph evaluates the float32 weights in float64
    with torch.no_grad():
        ref = copy.deepcopy(net).double()(x.double())
    torch.testing.assert_close(C.as_graph(net, x).forward(x), ref, rtol=0, atol=1e-13)


def _two_logit_seq(w, b):
    lin = nn.Linear(w.numel(), 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.stack([torch.zeros_like(w), w]))
        lin.bias.copy_(torch.tensor([0.0, b], dtype=torch.float64))
    return nn.Sequential(nn.Flatten(), lin)


@pytest.mark.parametrize("method", ["crown", "ibp"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_exact_on_a_linear_model(norm, method):
    """Both methods bound the margin of a linear model as one linear function:
    exact (subtracting logit intervals is not)."""
    model, x, y, w, z = _linear_case(seed=4)
    seq = _two_logit_seq(w, float(model.lin.bias.detach()))
    eps = 0.01 if norm == "linf" else 0.1
    m = C.margin_bounds(seq, x, y, eps=eps, norm=norm, method=method)
    s = 2.0 * y.double() - 1
    dual = w.abs().sum() if norm == "linf" else w.norm()
    exact = s * z - eps * dual  # box never binds in this case
    other = m.masked_fill(torch.isinf(m), 0).sum(1)
    torch.testing.assert_close(other, exact, rtol=1e-9, atol=1e-12)
    expected, _ = _closed_form(w, z, y, eps, norm)
    assert torch.equal(
        C.certified(seq, x, y, eps=eps, norm=norm, method=method), expected
    )
    lo, hi = C.logit_bounds(seq, x, eps=eps, norm=norm, method="ibp")
    sub = lo.gather(1, y.view(-1, 1)) - hi
    sub = sub.masked_fill(torch.isinf(m), 0).sum(1)
    assert (sub <= other + 1e-12).all()


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


def _samples(x, eps, norm, num, g):
    """Random points of the eps-ball around each x (L-inf: corners and inside, clipped
    to [0, 1]; L2: on the sphere): (N, num, *shape)."""
    shape = (len(x), num, *x.shape[1:])
    if norm == "linf":
        u = torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
        u[:, : num // 2] = u[:, : num // 2].sign()  # corners
        return (x.unsqueeze(1) + eps * u).clamp(0, 1)
    u = torch.randn(shape, generator=g, dtype=torch.float64)
    u = u / u.flatten(2).norm(dim=2).view(*shape[:2], *[1] * (len(shape) - 2))
    return x.unsqueeze(1) + eps * u


def _check_sound(net, x, eps, norm, *, num=300):
    """Logit bounds (CROWN, CROWN-IBP) contain every sampled output and lie within
    IBP's; exact at eps = 0; the margins' lower bounds below every sampled margin."""
    lo, hi = C.logit_bounds(net, x, eps=eps, norm=norm)
    ilo, ihi = C.logit_bounds(net, x, eps=eps, norm=norm, method="ibp")
    g = torch.Generator().manual_seed(0)
    pts = _samples(x.double(), eps, norm, num, g)
    graph = C.as_graph(net, x)
    with torch.no_grad():
        out = graph.forward(pts.flatten(0, 1)).view(len(x), num, -1)
        y = graph.forward(x).argmax(1)
    assert (lo.unsqueeze(1) <= out + 1e-10).all()
    assert (hi.unsqueeze(1) >= out - 1e-10).all()
    assert (lo >= ilo - 1e-12).all() and (hi <= ihi + 1e-12).all()
    clo, chi = C.logit_bounds(net, x, eps=eps, norm=norm, method="crown-ibp")
    assert (clo.unsqueeze(1) <= out + 1e-10).all()
    assert (chi.unsqueeze(1) >= out - 1e-10).all()
    assert (clo >= ilo - 1e-12).all() and (chi <= ihi + 1e-12).all()
    mb = C.margin_bounds(net, x, y, eps=eps, norm=norm).nan_to_num(posinf=0.0)
    sampled = out.gather(2, y.view(-1, 1, 1).expand(-1, num, 1)) - out
    assert (mb.unsqueeze(1) <= sampled + 1e-10).all()
    z0 = graph.forward(x)
    for method in ("crown", "crown-ibp", "ibp"):
        lo0, hi0 = C.logit_bounds(net, x, eps=0.0, norm=norm, method=method)
        torch.testing.assert_close(lo0, z0, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(hi0, z0, rtol=1e-10, atol=1e-10)
    return lo, hi


def test_conv_batchnorm_net_bounds_are_sound():
    net = conv_bn_net(kernel=2, side=3, dropout=True)  # Linear(12, 4)
    net.train()  # bounded (and evaluated) in eval mode; mode restored
    x = torch.rand(4, 1, 3, 3, dtype=torch.float64)
    graph = C.as_graph(net, x)
    assert net.training and len(graph.nodes) == 6  # input, conv, bn, relu, flatten, fc
    with torch.no_grad():
        torch.testing.assert_close(graph.forward(x), net.eval()(x))
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


def _zoo_cnn():
    """Every operation the bounds support: Normalize, padded / strided / dilated /
    grouped convolutions, BatchNorm, overlapping max pooling with padding and
    ceil_mode, average pooling, a transposed convolution, a residual addition."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = models.Normalize((0.4, 0.5), (0.3, 0.2))
            self.c1 = nn.Conv2d(2, 4, 3, 1, 1)
            self.bn = nn.BatchNorm2d(4)
            self.c2 = nn.Conv2d(4, 4, 3, 1, 2, dilation=2, groups=2)
            self.pool = nn.MaxPool2d(3, 2, 1, ceil_mode=True)
            self.up = nn.ConvTranspose2d(4, 3, 2, 2)
            self.c3 = nn.Conv2d(3, 3, 3, 2, 1)
            self.avg = nn.AvgPool2d(2)
            self.fc = nn.Linear(3 * 2 * 2, 4)

        def forward(self, x):
            h = torch.relu(self.bn(self.c1(self.norm(x))))
            h = F.relu(self.c2(h) + h)  # residual
            h = self.pool(h)  # 9x9 -> 5x5
            h = self.up(h).relu()  # 10x10
            h = self.avg(self.c3(h)).relu()  # 5x5 -> 2x2
            return self.fc(h.view(h.size(0), -1))

    torch.manual_seed(1)
    net = Net()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.3, 0.3)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _tiny_resnet(name):
    torch.manual_seed(2)
    net = models.build(name, num_classes=3, in_shape=(3, 8, 8), width=1 / 16,
                       num_blocks=(1, 1))  # fmt: skip
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.mark.parametrize("name", ["zoo_cnn", "resnet18", "preact_resnet18"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_graph_nets_are_sound(name, norm):
    """Residual networks with BatchNorm (eval), pooling, transposed convolutions:
    sampled outputs inside the bounds, CROWN within IBP, exact at eps = 0."""
    net = _zoo_cnn() if name == "zoo_cnn" else _tiny_resnet(name)
    shape = (2, 9, 9) if name == "zoo_cnn" else (3, 8, 8)
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(0))
    eps = 0.01 if norm == "linf" else 0.05
    lo, hi = _check_sound(net, x, eps, norm)
    assert ((hi - lo) > 1e-4).all()


@pytest.mark.parametrize("name", ["zoo_cnn", "resnet18", "lenet"])
def test_patches_equal_dense_coefficients(name):
    """CROWN with local windows gives the bounds of CROWN with whole maps."""
    if name == "lenet":
        torch.manual_seed(0)
        net = models.build("lenet", in_shape=(1, 12, 12), hidden_size=8).eval()
        shape = (1, 12, 12)
    else:
        net = _zoo_cnn() if name == "zoo_cnn" else _tiny_resnet(name)
        shape = (2, 9, 9) if name == "zoo_cnn" else (3, 8, 8)
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(1)).double()
    graph = C.as_graph(net, x)
    k = graph.nodes[-1].shape[0]
    eye = torch.eye(k, dtype=torch.float64).expand(len(x), -1, -1)
    out = []
    for patches in (True, False):
        b = _bounds._Bounder(graph, x, 0.02, "linf", "crown", patches=patches)
        out.append(b.backward(len(graph.nodes) - 1, eye, crown=True))
    torch.testing.assert_close(out[0], out[1], **TOL)


def test_ibp_margin_folded_is_tighter_and_sound():
    """Folded IBP margins are never below the subtracted logit intervals, certify
    more points, and neither sampled points nor PGD get below them."""
    net, x, y = gaussian_mlp(500, 6, margin=1.0, num_train=300, steps=200)
    for eps in (0.02, 0.05):
        raw = C.margin_bounds(net, x, y, eps=eps, method="ibp")
        m = raw.nan_to_num(posinf=0.0)
        lo, hi = C.logit_bounds(net, x, eps=eps, method="ibp")
        sub = lo.gather(1, y.view(-1, 1)) - hi  # 0 at y, as m
        assert (m >= sub - 1e-12).all()
        assert (m - sub).mean() > 1e-3
        other = torch.isinf(raw).logical_not()
        cert, cert_sub = ((m > 0) | ~other).all(1), ((sub > 0) | ~other).all(1)
        assert (cert >= cert_sub).all() and cert.sum() > cert_sub.sum()
        g = torch.Generator().manual_seed(0)
        pts = _samples(x.double(), eps, "linf", 200, g)
        with torch.no_grad():
            out = net.double()(pts.flatten(0, 1)).view(len(x), 200, -1)
            net.float()
        sampled = out.gather(2, y.view(-1, 1, 1).expand(-1, 200, 1)) - out
        assert (m.unsqueeze(1) <= sampled + 1e-10).all()
        xa = A.PGD(eps=eps, steps=20)(net, x, y)
        with torch.no_grad():
            za = net.double()(xa.double())
            net.float()
        assert (m <= za.gather(1, y.view(-1, 1)) - za + 1e-10).all()


def test_unsupported_layers_raise():
    net = models.build("mlp", in_shape=(4,), activation="softplus", num_classes=2)
    with pytest.raises(ValueError, match=r"Softplus at 'body\.2'"):
        C.certify(net, (torch.rand(2, 4), torch.tensor([0, 1])), eps=0.1)
    with pytest.raises(ValueError, match="method"):
        C.margin_bounds(_tiny_relu(), torch.rand(2, 2), torch.tensor([0, 1]), eps=0.1,
                        method="lp")  # fmt: skip

    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ValueError, match="torch.fx cannot trace"):
        C.logit_bounds(Branchy(), torch.rand(2, 3), eps=0.1)


def _trained_mlp():
    return gaussian_mlp(500, 6, margin=1.0, num_train=300, steps=200)


def test_certified_never_exceeds_attacked_and_bracket():
    net, x, y = _trained_mlp()
    eps = [0.0, 0.03, 0.08]
    res = C.certify(net, (x, y), eps=eps)
    assert res.certified_accuracy[0] == pytest.approx(res.clean_correct.mean())
    assert np.all(np.diff(res.certified_accuracy) <= 0)
    ibp = C.certify(net, (x, y), eps=eps, method="ibp")
    assert np.all(ibp.certified <= res.certified)  # CROWN is never looser
    ev = E.evaluate(net, (x, y), eps=eps, preset="quick", certify=True, checks=False)
    assert np.array_equal(ev.certified, res.certified)
    cert, att = ev.bracket
    assert np.all(cert <= att + 1e-12) and np.any(cert < att)
    assert not np.any(ev.certified & ~ev.robust_correct)  # never certified yet broken
    assert ev.checks["certified_attacked"]["passed"] is True
    assert "certified" in ev.table()
    for e, ep in enumerate(eps[1:], 1):  # a strong attack breaks no certified point
        xa = A.PGD(eps=ep, steps=50, restarts=3, loss="ce", keep="best")(net, x, y)
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

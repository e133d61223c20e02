"""The training attack kernel (attacks.PGD / FGSMRS, ``keep="last"``) against a
reference implementation: the in-place loop is bitwise the plain one, and the
input-gradient mode (flipped-kernel convolutions, detached weights) gives the same
gradients up to rounding and the same adversarial batches and trained weights within
tolerance."""

from __future__ import annotations

import contextlib
import sys

import pytest
import torch
import torch.nn.functional as F
from _helpers import tiny_train_config
from torch import nn

from landscape import _utils, attacks, models
from landscape.attacks._ball import project, random_init
from landscape.attacks._input_grad import input_grad_mode
from landscape.train import adversarial_train

_pgd_mod = sys.modules["landscape.attacks.pgd"]


def _reference(model, x, y, *, eps, norm="linf", alpha=None, steps=10, generator=None):
    """The plain PGD loop (the kernel before the speed-up), random start."""
    alpha = 2.5 * eps / steps if alpha is None else alpha
    x = x.detach()
    delta = random_init(x, eps, norm, generator)
    was = model.training
    model.eval()
    with torch.enable_grad(), _utils.thin_conv_backend(model):
        for _ in range(steps):
            delta.requires_grad_(True)
            loss = F.cross_entropy(model(x + delta), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, delta)
            delta = delta.detach()
            if norm == "linf":
                delta = delta + alpha * grad.sign()
            else:
                n = grad.flatten(1).norm(dim=1).view(-1, *([1] * (x.ndim - 1)))
                delta = delta + alpha * grad / (n + 1e-12)
            delta = project(delta, x, eps, norm)
    model.train(was)
    return (x + delta).detach()


def _lenet():
    torch.manual_seed(0)
    return models.build("lenet", in_shape=(1, 12, 12), num_classes=4, width=1)


def _batch(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 12, 12, generator=g)
    x[:, :, :3] = 0  # a black border: windows with exactly zero input gradient
    return x, torch.randint(0, 4, (n,), generator=g)


def _plain_and_fast(norm: str, eps: float):
    """``(model, x, y, ref, got)``: PGD-5 of the plain reference loop (``ref``) and of
    the training PGD (``got``) from the same random start."""
    model, (x, y) = _lenet(), _batch()
    kw = dict(eps=eps, norm=norm, steps=5)
    ref = _reference(model, x, y, **kw, generator=torch.Generator().manual_seed(1))
    got = attacks.PGD(**kw)(model, x, y, torch.Generator().manual_seed(1))
    return model, x, y, ref, got


@pytest.fixture
def no_mode(monkeypatch):
    monkeypatch.setattr(
        _pgd_mod, "input_grad_mode", lambda *a: contextlib.nullcontext()
    )


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 1.0)])
def test_in_place_loop_is_bitwise_the_plain_loop(norm, eps, no_mode):
    model, x, y, ref, got = _plain_and_fast(norm, eps)
    assert torch.equal(got, ref)


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 1.0)])
def test_fast_input_gradients_give_the_same_adversarial_batch(norm, eps):
    model, x, y, ref, got = _plain_and_fast(norm, eps)
    # sign(grad) may differ only where the gradient is within rounding of zero
    assert (got - ref).abs().gt(1e-5).float().mean() < 1e-3
    torch.testing.assert_close(got, ref, rtol=0, atol=2.5 * eps / 5 * 2 + 1e-6)
    fgsm = attacks.FGSMRS(eps=eps, norm=norm)(model, x, y, torch.Generator())
    assert fgsm.shape == x.shape


@pytest.mark.parametrize(
    "conv",
    [
        dict(kernel_size=5, padding=2),
        dict(kernel_size=3, padding=0),
        dict(kernel_size=3, padding="same", bias=False),
        dict(kernel_size=(3, 5), padding=(1, 0)),
        dict(kernel_size=3, stride=2, padding=1),  # not stride 1: PyTorch's backward
        dict(kernel_size=3, groups=2, padding=1),
        dict(kernel_size=3, dilation=2, padding=2),
    ],
)
def test_input_grad_mode_matches_autograd(conv):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, **conv), nn.ReLU(), nn.Flatten()).double()
    x = torch.rand(3, 2, 9, 9, dtype=torch.float64)
    x[:, :, :4] = 0
    net(x)  # shapes
    head = nn.Linear(net(x).shape[1], 3).double()
    model = nn.Sequential(net, head)
    y = torch.tensor([0, 1, 2])

    def grad(mode: bool):
        xa = x.clone().requires_grad_(True)
        ctx = input_grad_mode(model, xa) if mode else contextlib.nullcontext()
        with ctx:
            loss = F.cross_entropy(model(xa), y, reduction="sum")
        return torch.autograd.grad(loss, xa)[0]

    ref, got = grad(False), grad(True)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    assert torch.equal(got == 0, ref == 0)  # exact zeros stay exact (sign steps)
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    # the weights are outside the graph inside the mode: no path to them
    xa = x.clone().requires_grad_(True)
    with input_grad_mode(model, xa):
        out = net[0](xa)
    if (
        conv.get("stride", 1) == 1
        and conv.get("groups", 1) == 1
        and "dilation" not in conv
    ):
        leaves = [
            n.variable
            for n, _ in out.grad_fn.next_functions
            if n is not None and hasattr(n, "variable")
        ]
        assert leaves == [xa]


def _train(model, x, y, attack):
    cfg = tiny_train_config(lr=0.05, attack=attack)
    adversarial_train(model, (x, y), cfg)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize(
    "attack", [attacks.PGD(eps=0.1, steps=3), attacks.FGSMRS(eps=0.1)]
)
def test_seeded_training_matches_the_reference_kernel(attack, monkeypatch):
    x, y = _batch(64)
    fast = _train(_lenet(), x, y, attack)

    def ref_kernel(atk, model, x, y, generator, train):
        (alpha,) = atk.step_sizes()
        x_adv = _reference(
            model,
            x,
            y,
            eps=atk.eps,
            norm=atk.norm,
            alpha=alpha,
            steps=atk.steps,
            generator=generator,
        )
        return x_adv, {}

    monkeypatch.setattr(_pgd_mod, "_last", ref_kernel)
    ref = _train(_lenet(), x, y, attack)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)
    monkeypatch.undo()
    monkeypatch.setattr(
        _pgd_mod, "input_grad_mode", lambda *a: contextlib.nullcontext()
    )
    assert torch.equal(_train(_lenet(), x, y, attack), ref)  # same maths


def _pool_model(channels: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.LazyLinear(3),
    )


@pytest.mark.parametrize("size", [32, 33])  # even and odd (floor) planes
def test_input_grad_mode_max_pool_is_bitwise_pytorchs(size, monkeypatch):
    # 2x2 max-pooling from four strided views: the same values and gradients as
    # PyTorch's kernel, bitwise, ties included (the first maximum in row-major
    # order of the window takes the gradient), and the fast path is taken.
    from landscape import _pool

    model = _pool_model()
    x = torch.rand(16, 1, size, size)
    x[:, :, : size // 2] = 0  # ReLU zeros: ties in most windows of that half
    x[:, :, -4:, -4:] = 0.5  # a constant patch: ties at positive values
    y = torch.arange(16) % 3
    model(x)  # materialise the lazy layer

    def grad(fast: bool):
        monkeypatch.setattr(_pool, "_POOL_MIN_NUMEL", 1 if fast else 1 << 62)
        xa = x.clone().requires_grad_(True)
        with input_grad_mode(model, xa):
            pooled = model[2](model[1](model[0](xa)))
            loss = F.cross_entropy(model[4](model[3](pooled)), y, reduction="sum")
        return pooled, torch.autograd.grad(loss, xa)[0]

    (p_ref, g_ref), (p_got, g_got) = grad(False), grad(True)
    assert type(p_got.grad_fn).__name__ == "_MaxPool2x2Backward"
    assert type(p_ref.grad_fn).__name__ != "_MaxPool2x2Backward"
    assert torch.equal(p_got, p_ref)
    assert torch.equal(p_got, F.max_pool2d(model[1](model[0](x)), 2))
    assert torch.equal(g_got, g_ref)


def test_seeded_training_with_the_fast_max_pool_is_bitwise(monkeypatch):
    # LeNet at 28x28, batch 64: its first pooling takes the fast path; switching the
    # path off gives the same weights bitwise.
    from landscape import _pool

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(128, 1, 28, 28, generator=g), torch.randint(0, 4, (128,))
    x[:, :, :6] = 0

    def run():
        torch.manual_seed(0)
        model = models.build("lenet", in_shape=(1, 28, 28), num_classes=4, width=1)
        cfg = tiny_train_config(
            epochs=1, batch_size=64, lr=0.05, attack=attacks.PGD(eps=0.1, steps=3)
        )
        adversarial_train(model, (x, y), cfg)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    calls = []
    real = _pool._MaxPool2x2.apply
    monkeypatch.setattr(
        _pool._MaxPool2x2, "apply", lambda t: calls.append(1) or real(t)
    )
    fast = run()
    assert calls  # the fast pooling ran
    monkeypatch.setattr(_pool, "_POOL_MIN_NUMEL", 1 << 62)
    assert torch.equal(run(), fast)

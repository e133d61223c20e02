"""Tests for landscape.models: shapes, exact parameter counts, training steps,
normalisation inside the model, registry, smooth twins."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape import models

MNIST = (1, 28, 28)
CIFAR = (3, 32, 32)

# Parameter counts for 10 classes at width 1, computed layer by layer in the comments
# and cross-checked against published figures.
PARAM_COUNTS = {
    # 784*10 + 10
    ("linear", MNIST): 7_850,
    # 784*100 + 100 + 100*10 + 10
    ("mlp", MNIST): 79_510,
    # the paper's LeNet at width 1 (fc 64 x width): conv 1->2 (52) + conv 2->4 (204)
    # + fc 196->64 (12,608) + fc 64->10 (650)
    ("lenet", MNIST): 13_514,
    # Madry et al. (2018) MNIST challenge model: 832 + 51,264 + 3,212,288 + 10,250
    ("madry_cnn", MNIST): 3_274_634,
    # VGG-16-BN for CIFAR with one 512->10 classifier (kuangliu/pytorch-cifar): 14.73 M
    ("vgg16", CIFAR): 14_728_266,
    # CIFAR ResNet-18 (3x3 stem): 11,173,962, the figure quoted for kuangliu/pytorch-cifar
    ("resnet18", CIFAR): 11_173_962,
    # PreAct ResNet-18 with the final BN-ReLU of He et al. (2016b), as in the
    # adversarial-training code of Wong et al. / Rice et al. (2020): 11,171,146
    # (kuangliu's variant without the final BN) + 2*512 for the final BN's affine.
    ("preact_resnet18", CIFAR): 11_171_146 + 1_024,
}


def _n(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_all_models():
    assert models.available() == sorted(
        ["linear", "mlp", "lenet", "madry_cnn", "vgg16", "resnet18", "preact_resnet18",
         "wide_resnet", "dm_wide_resnet", "dm_preact_resnet", "cifar_resnet",
         "cifar_preact_resnet", "resnet50"]
    )  # fmt: skip


@pytest.mark.parametrize(
    "dataset, shape, classes",
    [
        ("mnist", MNIST, 10),
        ("cifar10", CIFAR, 10),
        ("cifar10-jpeg", CIFAR, 10),
        ("cifar100", CIFAR, 100),
        ("svhn", CIFAR, 10),
        ("tiny-imagenet", (3, 64, 64), 200),
    ],
)
def test_dataset_sets_shape_classes_and_statistics(dataset, shape, classes):
    """Issue 28: ``build("resnet18", dataset="cifar10")`` built a 1-channel 28 x 28
    network with CIFAR-10's statistics, which failed later with a shape error."""
    m = models.build("resnet18", dataset=dataset)
    assert m.build_config["in_shape"] == shape and m(torch.rand(2, *shape)).shape == (
        2,
        classes,
    )
    assert m.normalize.mean.tolist() == pytest.approx(models.DATASET_STATS[dataset][0])
    assert (
        models.build("resnet18", dataset=dataset, in_shape=shape).build_config[
            "in_shape"
        ]
        == shape
    )  # agreeing values are fine


def test_conflicting_shape_or_classes_is_an_error():
    with pytest.raises(ValueError, match=r"in_shape=\(1, 28, 28\) contradicts dataset"):
        models.build("resnet18", dataset="cifar10", in_shape=(1, 28, 28))
    with pytest.raises(ValueError, match="num_classes=10 contradicts .*cifar100"):
        models.build("resnet18", dataset="cifar100", num_classes=10)
    # without a dataset the old defaults hold: MNIST's shape, 10 classes
    assert models.build("lenet").build_config["in_shape"] == MNIST
    imagenet = models.build("resnet50", dataset="imagenet")
    assert imagenet.fc.out_features == 1000
    assert imagenet.normalize.std.tolist() == pytest.approx([0.229, 0.224, 0.225])


def test_zoo_architectures_reject_what_they_cannot_run():
    with pytest.raises(ValueError, match="32x32"):
        models.build("wide_resnet", dataset="tiny-imagenet")
    with pytest.raises(ValueError, match="published widths"):
        models.build("wide_resnet", dataset="cifar10", width=0.5)
    with pytest.raises(ValueError, match="6n \\+ 4"):
        models.build("dm_wide_resnet", dataset="cifar10", depth=27)
    m = models.build("dm_wide_resnet", dataset="cifar10", depth=10, widen_factor=1)
    assert isinstance(m.relu, nn.SiLU)  # the published activation by default
    twin = models.smooth_twin(models.build("wide_resnet", dataset="cifar10", depth=10,
                                           widen_factor=1))  # fmt: skip
    assert not any(isinstance(x, nn.ReLU) for x in twin.modules())


@pytest.mark.parametrize("name, shape", list(PARAM_COUNTS), ids=lambda v: str(v))
def test_forward_shape_and_exact_param_count(name, shape):
    torch.manual_seed(0)
    model = models.build(name, in_shape=shape)
    assert _n(model) == PARAM_COUNTS[(name, shape)]
    out = model(torch.rand(2, *shape))
    assert out.shape == (2, 10) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    model3 = models.build(name, in_shape=shape, num_classes=3)
    assert model3(torch.rand(2, *shape)).shape == (2, 3)


def test_lenet_width_16_is_madry_cnn():
    assert _n(models.build("lenet", width=16)) == PARAM_COUNTS[("madry_cnn", MNIST)]


# MNIST_LeNet of Liu et al.'s released code (util/models.py l.28-57): conv 2w, conv
# 4w, fc 64w; counts computed from its layer definitions (conv 5x5 with bias)
def _paper_lenet_count(w: int) -> int:
    conv1 = 1 * 2 * w * 25 + 2 * w
    conv2 = 2 * w * 4 * w * 25 + 4 * w
    fc1 = 7 * 7 * 4 * w * 64 * w + 64 * w
    return conv1 + conv2 + fc1 + 64 * w * 10 + 10


@pytest.mark.parametrize("width, count", [(1, 13_514), (2, 52_506), (4, 206_954),
                                          (16, 3_274_634)])  # fmt: skip
def test_lenet_is_the_papers_at_every_width(width, count):
    """The fc layer is 64 x width wide at every width (it was fixed at 1,024, which
    matches the paper only at width 16: width 1 had 212,234 parameters)."""
    model = models.build("lenet", width=width)
    assert _n(model) == count == _paper_lenet_count(width)
    fc = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [f.out_features for f in fc] == [64 * width, 10]


@pytest.mark.parametrize("name, count", [("vgg16", 3_686_954), ("resnet18", 2_797_610)])
def test_cifar_networks_at_the_papers_width_8(name, count):
    """The paper's width 8 (channels 4, 8, 16, 32 x w) is our width 0.5."""
    model = models.build(name, in_shape=CIFAR, width=0.5)
    assert _n(model) == count
    convs = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0] == 32 and max(convs) == 256


def test_width_factor_and_other_input_shapes():
    r = models.build("resnet18", in_shape=CIFAR, width=0.5)
    assert r.body[0].out_channels == 32
    assert r(torch.rand(2, *CIFAR)).shape == (2, 10)
    v = models.build("vgg16", in_shape=MNIST, width=0.125)  # 28x28 works too
    assert v(torch.rand(2, *MNIST)).shape == (2, 10)
    lenet = models.build("lenet", in_shape=CIFAR, width=2)
    assert lenet(torch.rand(2, *CIFAR)).shape == (2, 10)
    mlp = models.build("mlp", in_shape=(5,), hidden=(7, 3), num_classes=2)
    assert [m.out_features for m in mlp.modules() if isinstance(m, nn.Linear)] == [
        7,
        3,
        2,
    ]
    assert (
        models.build("mlp", in_shape=(5,), hidden=(10,), width=2).body[1].out_features
        == 20
    )
    with pytest.raises(ValueError, match="in_shape"):
        models.build("resnet18", in_shape=(10,))


@pytest.mark.parametrize("name, shape", list(PARAM_COUNTS), ids=lambda v: str(v))
def test_adam_steps_reduce_loss_on_fixed_batch(name, shape):
    torch.manual_seed(0)
    model = models.build(name, in_shape=shape)
    x = torch.rand(4, *shape)
    y = torch.tensor([0, 1, 2, 3])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(4):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = float(nn.functional.cross_entropy(model(x), y))
    assert final < losses[0] - 1e-3, (losses, final)


def test_normalize_is_inside_the_model():
    model = models.build("lenet")
    first = next(iter(model.children()))
    assert isinstance(first, models.Normalize)
    assert first.mean.tolist() == pytest.approx([0.1307]) and "normalize.mean" in (
        model.state_dict()
    )
    x = torch.rand(3, *MNIST)
    assert torch.equal(model(x), model.body((x - 0.1307) / 0.3081))
    c = models.build("resnet18", in_shape=CIFAR).normalize
    assert c.mean.tolist() == pytest.approx(list(models.DATASET_STATS["cifar10"][0]))
    f = models.build("lenet", dataset="fashion-mnist").normalize
    assert f.std.tolist() == pytest.approx([0.3530])
    e = models.build("linear", in_shape=(3,), mean=(1.0, 2.0, 3.0), std=(2.0, 2.0, 2.0))
    assert torch.allclose(
        e.normalize(torch.tensor([[3.0, 2.0, 1.0]])), torch.tensor([[1.0, 0.0, -1.0]])
    )
    assert models.build("linear", in_shape=(7,)).normalize.std.tolist() == [1.0]
    with pytest.raises(ValueError, match="both"):
        models.build("linear", mean=0.5)
    with pytest.raises(ValueError, match="positive"):
        models.Normalize(0.0, 0.0)


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="available: .*lenet.*resnet18"):
        models.build("alexnet")
    with pytest.raises(ValueError, match="relu, softplus, gelu, tanh"):
        models.build("mlp", activation="swishy")
    with pytest.raises(ValueError, match="hidden_size"):
        models.build("mlp", hidden_size=3)
    with pytest.raises(ValueError, match="num_classes must be a whole number >= 1"):
        models.build("mlp", num_classes=0)
    with pytest.raises(ValueError, match="width must be > 0"):
        models.build("lenet", width=0)
    # --arch-kwargs '{"width": "x"}' (was a comparison TypeError), NaN, a bad shape
    for kw, needle in [
        ({"width": "x"}, "width .* must be a number, got 'x'"),
        ({"width": float("inf")}, "must be finite"),
        ({"in_shape": "ab"}, "in_shape must be a list of sizes"),
        ({"hidden": ["a"]}, "bad options .*hidden"),
    ]:
        with pytest.raises(ValueError, match=needle):
            models.build("mlp", **kw)


@pytest.mark.parametrize("act, cls", [("tanh", nn.Tanh), ("gelu", nn.GELU)])
def test_activation_option(act, cls):
    model = models.build("madry_cnn", activation=act)
    kinds = {type(m) for m in model.modules()}
    assert cls in kinds and nn.ReLU not in kinds


@pytest.mark.parametrize("name, shape", [("lenet", MNIST), ("preact_resnet18", CIFAR)])
def test_smooth_twin_replaces_relu_keeps_params(name, shape):
    torch.manual_seed(0)
    model = models.build(name, in_shape=shape)
    twin = models.smooth_twin(model, "softplus")
    assert not any(isinstance(m, nn.ReLU) for m in twin.modules())
    assert any(isinstance(m, nn.Softplus) for m in twin.modules())
    assert any(isinstance(m, nn.ReLU) for m in model.modules())  # original untouched
    a, b = model.state_dict(), twin.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert twin.build_config["activation"] == "softplus"
    model.eval()
    twin.eval()
    x = torch.rand(2, *shape)
    assert not torch.equal(model(x), twin(x))


def test_build_config_rebuilds_same_model():
    m = models.build("mlp", in_shape=(6,), hidden=(4, 4), num_classes=3, dataset="none")
    r = models.build(**m.build_config)
    assert [p.shape for p in m.parameters()] == [p.shape for p in r.parameters()]
    assert torch.equal(m.normalize.mean, r.normalize.mean)


def test_register_decorator(monkeypatch):
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))

    @models.register("tiny")
    def _tiny(num_classes, in_shape, norm, width=1, activation="relu"):
        return nn.Sequential(norm, nn.Flatten(), nn.Linear(in_shape[0], num_classes))

    assert "tiny" in models.available()
    assert models.build("tiny", in_shape=(3,), num_classes=2)(
        torch.rand(5, 3)
    ).shape == (5, 2)
    with pytest.raises(ValueError, match="already"):
        models.register("tiny")(_tiny)


def test_hessian_vector_products_flow_through_models():
    torch.manual_seed(0)
    model = models.smooth_twin(models.build("lenet", width=1), "softplus").double()
    x, y = torch.rand(3, *MNIST, dtype=torch.float64), torch.tensor([1, 2, 3])
    params = [p for p in model.parameters()]
    loss = nn.functional.cross_entropy(model(x), y)
    g = torch.autograd.grad(loss, params, create_graph=True)
    v = [torch.randn_like(p) for p in params]
    hv = torch.autograd.grad(sum((gi * vi).sum() for gi, vi in zip(g, v)), params)
    assert all(h.shape == p.shape for h, p in zip(hv, params))
    assert sum(float(h.abs().sum()) for h in hv) > 0
    # against central differences of the gradient: (g(p + h v) - g(p - h v)) / 2h
    h = 1e-5

    def grad_at(sign: float) -> list[torch.Tensor]:
        with torch.no_grad():
            for p, vi in zip(params, v):
                p.add_(sign * h * vi)
        gs = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), params)
        with torch.no_grad():
            for p, vi in zip(params, v):
                p.sub_(sign * h * vi)
        return gs

    fd = [(a - b) / (2 * h) for a, b in zip(grad_at(1.0), grad_at(-1.0))]
    hv_flat, fd_flat = (
        torch.cat([t.reshape(-1) for t in hv]),
        torch.cat([t.reshape(-1) for t in fd]),
    )
    torch.testing.assert_close(hv_flat, fd_flat, rtol=1e-4, atol=1e-6)

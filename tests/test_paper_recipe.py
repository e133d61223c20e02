"""The paper's recipe (Liu et al., NeurIPS 2020, released code
``liuchen11/AdversaryLossLandscape`` at 7345678): its schedules against formulas
transcribed from ``util/seq_parser.py``, its PGD start (``util/attack.py``), the CIFAR-10
crop + flip augmentation, and the presets against a table transcribed from its README
and defaults."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from landscape import attacks, models, train
from landscape.schedules import make_schedule
from landscape.train import TrainConfig, adversarial_train, crop_flip

# -- the released code's schedules, transcribed (util/seq_parser.py) ----------------


def _ratio(ckpt, x):
    ckpt = sorted(ckpt)
    if ckpt[0] > 0:
        ckpt = [0] + ckpt
    for a, b in zip(ckpt[:-1], ckpt[1:]):
        if a <= x < b:
            return (x - a) / (b - a)
    raise AssertionError("x on or past the last boundary: the paper's code crashes")


def _paper_cycle_cos(x, eps_min, eps_max, ckpt, cap):
    r = _ratio(ckpt, x)
    v = eps_min + 0.5 * (eps_max - eps_min) * (1 - np.cos(r * np.pi))
    return float(np.clip(v, -np.inf, cap))


def _paper_cycle_linear(x, start_v, slope, ckpt, cap):
    return float(np.clip(start_v + _ratio(ckpt, x) * slope, -np.inf, cap))


def _paper_cycle_jump(x, start_v, power, drops, ckpt):
    r, value = _ratio(ckpt, x), start_v
    for d in drops:
        if r >= d:
            value *= power
    return value


def _paper_cos_cycle_jump(x, low_v, up_v, cycle_freq, min_jump_pt):
    u = (max(x - min_jump_pt, 0) % cycle_freq) / cycle_freq
    return (np.cos(u * np.pi) + 1) * (up_v - low_v) / 2.0 + low_v


EPOCHS_100 = [0, 1, 10, 25, 49, 50, 60, 61, 75, 99]
EPOCHS_200 = [0, 1, 49, 50, 74, 75, 99, 100, 112, 124, 125, 137, 149, 150, 175, 199]


def test_cycle_cos_is_the_papers_mnist_schedule():
    s = make_schedule("cycle_cos", eps=0.4, peak=0.6, periods=(0, 100))
    for e in EPOCHS_100:
        assert s(e) == pytest.approx(
            _paper_cycle_cos(e, 0, 0.6, [0, 100], 0.4), abs=1e-15
        )
    # the values the paper's code prints (paper_recipe.md 2.1)
    quoted = {0: 0.0, 1: 1e-4, 10: 0.0147, 25: 0.0879, 50: 0.300, 60: 0.3927, 61: 0.4}
    for e, v in quoted.items():
        assert round(s(e), 4) == pytest.approx(v, abs=1e-12), e
    assert s(60) < 0.4 == s(61)  # the cap is reached at epoch 61, not 50


@pytest.mark.parametrize("shape", ["cycle_cos", "cycle_linear"])
def test_periodic_eps_schedules_follow_unequal_periods(shape):
    eps, ckpt = 8 / 255, [0, 100, 150, 200]
    if shape == "cycle_cos":
        s = make_schedule(shape, eps=eps, peak=16 / 255, periods=ckpt)
        ref = [_paper_cycle_cos(e, 0, 16 / 255, ckpt, eps) for e in EPOCHS_200]
    else:
        s = make_schedule(shape, eps=eps, slope=16 / 255, periods=ckpt)
        ref = [_paper_cycle_linear(e, 0, 16 / 255, ckpt, eps) for e in EPOCHS_200]
    assert [s(e) for e in EPOCHS_200] == pytest.approx(ref, abs=1e-15)
    assert s(100) == s(150) == 0.0 and s(199) == pytest.approx(eps)  # restarts


def test_cycle_linear_mnist_and_slope_or_peak():
    s = make_schedule("cycle_linear", eps=0.4, slope=0.8, periods=(0, 100))
    for e in EPOCHS_100:
        assert s(e) == pytest.approx(_paper_cycle_linear(e, 0, 0.8, [0, 100], 0.4))
    assert s(49) == pytest.approx(0.392) and s(50) == pytest.approx(0.4)
    assert make_schedule("cycle_linear", eps=0.4, peak=0.8, periods=(0, 100))(25) == (
        pytest.approx(0.2)
    )
    with pytest.raises(TypeError, match="slope= or peak="):
        make_schedule("cycle_linear", eps=0.4, peak=0.8, slope=0.8, periods=(0, 100))


def test_cycle_jump_and_cos_cycle_jump_are_the_papers():
    ckpt = [0, 100, 150, 200]
    s = make_schedule("cycle_jump", kind="lr", lr=0.1, periods=ckpt, drops=(0.5, 0.75))
    for e in EPOCHS_200:
        ref = _paper_cycle_jump(e, 0.1, 0.1, [0.5, 0.75], ckpt)
        assert s(e) == pytest.approx(ref, rel=1e-12), e
    # the values of the paper's code (paper_recipe.md 1.4)
    quoted = {0: 0.1, 49: 0.1, 50: 0.01, 75: 0.001, 100: 0.1, 125: 0.01, 140: 0.001}
    for e, v in quoted.items():
        assert s(e) == pytest.approx(v, rel=1e-12), e
    c = make_schedule("cos_cycle_jump", kind="lr", lr=0.1, cycle=50, start_epoch=100)
    for e in [0, 50, 100, 110, 125, 149, 150, 175, 199]:
        assert c(e) == pytest.approx(_paper_cos_cycle_jump(e, 0, 0.1, 50, 100)), e
    assert c(125) == pytest.approx(0.05) and c(149) == pytest.approx(1e-4, rel=0.02)


# -- PGD: the paper's start and step under an eps schedule ---------------------------


def test_pgd_step_start_is_uniform_in_the_step_ball_and_follows_eps():
    """``random_start="step"``: the start is uniform in [-alpha, alpha] (the paper's
    ``(rand * 2 - 1) * step_size``), where alpha follows eps through ``alpha_rel``;
    ``True`` starts anywhere in the eps-ball."""
    x = torch.full((4000, 1, 2, 2), 0.5)
    atk = attacks.PGD(eps=0.4, steps=50, alpha_rel=0.025, random_start="step")
    for eps_t in (0.4, 0.1):
        a = dataclasses.replace(atk, eps=eps_t)
        (alpha,) = a.step_sizes()
        assert alpha == pytest.approx(0.01 * eps_t / 0.4)
        d = a.init(x, torch.Generator().manual_seed(0))
        assert d.abs().max() <= alpha + 1e-7 and d.abs().max() > 0.95 * alpha
        assert d.mean().abs() < 0.05 * alpha  # uniform, centred
    wide = dataclasses.replace(atk, random_start=True).init(
        x, torch.Generator().manual_seed(0)
    )
    assert wide.abs().max() > 0.9 * 0.4
    with pytest.raises(TypeError, match="'step'"):
        attacks.PGD(eps=0.1, random_start="eps")
    assert attacks.PGD.from_dict(atk.to_dict()) == atk


def test_pgd_step_start_run_is_seeded_and_within_budget():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    atk = attacks.PGD(eps=0.1, steps=3, alpha_rel=0.25, random_start="step")
    a = atk(net, x, y, torch.Generator().manual_seed(1))
    b = atk(net, x, y, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and (a - x).abs().max() <= 0.1 + 1e-6
    assert a.min() >= 0 and a.max() <= 1


# -- crop + flip augmentation -------------------------------------------------------


def _crop_flip_reference(x, i, j, flip, p):
    """torchvision's RandomCrop(pad p, fill 0) + RandomHorizontalFlip, image by image,
    at given offsets and flips."""
    out = torch.empty_like(x)
    h, w = x.shape[-2:]
    for n in range(len(x)):
        padded = torch.zeros(x.shape[1], h + 2 * p, w + 2 * p)
        padded[:, p : p + h, p : p + w] = x[n]
        img = padded[:, i[n] : i[n] + h, j[n] : j[n] + w]
        out[n] = img.flip(-1) if flip[n] else img
    return out


def test_crop_flip_matches_a_per_image_reference():
    x = torch.rand(64, 3, 8, 8)
    g = torch.Generator().manual_seed(3)
    out = crop_flip(x, g, padding=4)
    g = torch.Generator().manual_seed(3)  # the same draws, in crop_flip's order
    i = torch.randint(0, 9, (64,), generator=g)
    j = torch.randint(0, 9, (64,), generator=g)
    flip = torch.rand(64, generator=g) < 0.5
    assert torch.equal(out, _crop_flip_reference(x, i.tolist(), j.tolist(), flip, 4))
    assert 0 < int(flip.sum()) < 64 and len(set(i.tolist())) == 9
    same = crop_flip(x, torch.Generator().manual_seed(3), padding=4)
    assert torch.equal(out, same)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        crop_flip(x[0], g)
    with pytest.raises(ValueError, match="unknown augment"):
        TrainConfig(augment="mixup")


class _Conv(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


class _Stop(Exception):
    pass


def test_augmented_training_is_seeded_and_resumes_exactly(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(48, 3, 8, 8, generator=g), torch.randint(0, 2, (48,), generator=g)
    cfg = TrainConfig(
        epochs=2,
        batch_size=16,
        lr=0.05,
        attack=attacks.PGD(eps=0.03, steps=2, alpha_rel=0.25, random_start="step"),
        augment="crop_flip",
        schedule_update="epoch",
        runtime=train.Runtime(eval_num=0, co_check_num=0, checkpoint_every=1),
    )
    ref = _Conv()
    adversarial_train(ref, (x, y), cfg, run_dir=tmp_path / "ref")
    plain = _Conv()
    adversarial_train(plain, (x, y), dataclasses.replace(cfg, augment=None))
    assert not torch.equal(ref.fc.weight, plain.fc.weight)  # augmentation is used

    def stop(state):
        if state["iteration"] == 4:  # batch 1 of epoch 1
            raise _Stop

    with pytest.raises(_Stop):
        adversarial_train(_Conv(), (x, y), cfg, run_dir=tmp_path / "run", callback=stop)
    torch.manual_seed(1234)
    resumed = _Conv()
    adversarial_train(resumed, (x, y), cfg, run_dir=tmp_path / "run")
    for p, q in zip(ref.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(p, q)


# -- the presets against the paper's table -------------------------------------------

# transcribed from the released code: README example 2 (MNIST), train_normal.py
# defaults, the checkpoint names (CIFAR-10: wd1e-3, max16, epochs 100 / 150 / 200) and
# util/models.py (widths, no normalisation); see docs in landscape/train/_config.py
PAPER = {
    "mnist-lenet": dict(
        model="lenet", params=3_274_634, dataset="mnist", epochs=100, batch_size=128,
        optimizer="adam", lr=1e-4, momentum=None, weight_decay=0.0, eps=0.4, steps=50,
        alpha=0.01, augment=None, lr_at={0: 1e-4, 99: 1e-4},
        eps_at={0: 0.0, 10: 0.0147, 50: 0.3, 60: 0.3927, 61: 0.4, 99: 0.4},
    ),
    "cifar10-vgg16": dict(
        model="vgg16", params=3_686_954, dataset="cifar10", epochs=200,
        batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-3,
        eps=8 / 255, steps=10, alpha=2 / 255, augment="crop_flip",
        lr_at={0: 0.1, 99: 0.1, 100: 0.01, 149: 0.01, 150: 0.001, 199: 0.001},
        eps_at={0: 8 / 255, 199: 8 / 255},
    ),
    "cifar10-resnet18": dict(
        model="resnet18", params=2_797_610, dataset="cifar10", epochs=200,
        batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-3,
        eps=8 / 255, steps=10, alpha=2 / 255, augment="crop_flip",
        lr_at={0: 0.1, 100: 0.01, 150: 0.001},
        eps_at={0: 8 / 255, 150: 8 / 255},
    ),
}  # fmt: skip
_SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def _built(cfg: TrainConfig) -> nn.Module:
    shape = _SHAPES[cfg.dataset.name]
    return models.build(cfg.model, in_shape=shape, **cfg.model_kwargs)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_presets_are_the_papers_configs(name):
    p, cfg = PAPER[name], train.preset(name)
    atk = cfg.attack
    assert (cfg.model, cfg.dataset.name, cfg.epochs, cfg.batch_size) == (
        p["model"], p["dataset"], p["epochs"], p["batch_size"]
    )  # fmt: skip
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay) == (
        p["optimizer"], p["lr"], p["weight_decay"]
    )  # fmt: skip
    if p["momentum"] is not None:
        assert cfg.momentum == p["momentum"]
    assert (atk.eps, atk.steps, atk.random_start, atk.keep) == (
        pytest.approx(p["eps"]), p["steps"], "step", "last"
    )  # fmt: skip
    assert atk.step_sizes() == (pytest.approx(p["alpha"]),)
    # the step follows eps(t) (the paper: alpha0 * eps(t) / eps0)
    half = dataclasses.replace(atk, eps=atk.eps / 2).step_sizes()
    assert half == (pytest.approx(p["alpha"] / 2),)
    assert cfg.augment == p["augment"] and cfg.schedule_update == "epoch"
    model = _built(cfg)
    assert sum(q.numel() for q in model.parameters()) == p["params"]
    x = torch.rand(2, *_SHAPES[cfg.dataset.name])
    # no input normalisation: the network sees [0, 1] images as they are
    norm = model.normalize
    assert norm is None or torch.equal(norm(x), x)
    eps_fn, lr_fn = cfg.eps_fn(), cfg.lr_fn()
    for e, v in p["eps_at"].items():
        assert round(eps_fn(e), 4) == pytest.approx(round(v, 4), abs=1e-12), e
    for e, v in p["lr_at"].items():
        assert lr_fn(e) == pytest.approx(v), e


@pytest.mark.parametrize("family", ["constant", "cosine", "linear"])
def test_cifar10_periodic_is_three_periods_with_cycle_jump(family):
    cfg = train.cifar10_periodic(train.preset("cifar10-vgg16"), family)
    ckpt, eps = [0, 100, 150, 200], 8 / 255
    assert list(cfg.boundaries()) == ckpt and cfg.period_end_epochs() == [100, 150, 200]
    eps_fn, lr_fn = cfg.eps_fn(), cfg.lr_fn()
    for e in EPOCHS_200:
        assert lr_fn(e) == pytest.approx(
            _paper_cycle_jump(e, 0.1, 0.1, [0.5, 0.75], ckpt)
        )
        ref = {
            "constant": eps,
            "cosine": _paper_cycle_cos(e, 0, 16 / 255, ckpt, eps),
            "linear": _paper_cycle_linear(e, 0, 16 / 255, ckpt, eps),
        }[family]
        assert eps_fn(e) == pytest.approx(ref, abs=1e-15), (family, e)
    assert max(eps_fn(e) for e in range(200)) <= eps + 1e-15  # never the /255 hazard


def test_periodic_ensemble_is_the_softmax_average_attacked_through_its_log():
    """The paper's ensemble (util/train.py l.178-190, util/attack.py l.148-154): the
    prediction is the mean softmax, the attack loss -log of it."""
    from landscape.checkpoints import Ensemble

    torch.manual_seed(0)
    members = [nn.Linear(5, 3) for _ in range(3)]
    ens = Ensemble(members)
    x, y = torch.randn(7, 5), torch.randint(0, 3, (7,))
    prob = sum(torch.softmax(m(x), 1) for m in members) / 3
    assert torch.allclose(torch.softmax(ens(x), 1), prob, atol=1e-6)
    loss = -torch.log(prob).gather(1, y[:, None]).mean()
    assert torch.allclose(nn.functional.cross_entropy(ens(x), y), loss, atol=1e-6)


def test_mnist_width_16_lenet_is_the_papers_size():
    m = models.build("lenet", dataset="mnist", width=16, mean=0.0, std=1.0)
    assert sum(q.numel() for q in m.parameters()) == 3_274_634
    assert math.isclose(train.preset("mnist-lenet").attack.alpha_rel, 0.025)

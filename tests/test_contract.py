"""One input contract: what ``data`` may be, checked once, for every public analysis.

Each test here failed before the batches owner (``landscape._batches``) existed: a
bare ``(x, y)`` pair was read as two batches, [0, 255] images were analysed silently,
bad labels and empty batches gave raw torch errors.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from _helpers import conv_bn_net
from torch import nn
from torch.utils.data import DataLoader, Dataset

from landscape import attacks, directions, evaluate, hessian, scattering
from landscape import surface as S
from landscape._batches import as_batches

CE = nn.CrossEntropyLoss()


def _bn_net() -> nn.Module:
    return conv_bn_net().eval()


def _pair(n: int = 12, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 6, 6, generator=g, dtype=torch.float64)
    return x, torch.randint(0, 4, (n,), generator=g)


class _Images(Dataset):
    """A user-style map-style dataset: one (image, label) example per index."""

    def __init__(self, n: int = 12):
        self.x, self.y = _pair(n)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


def _loader(batch_size: int = 5) -> DataLoader:
    return DataLoader(_Images(), batch_size=batch_size, shuffle=False)


def _dirs(m):
    return directions.random_directions(m, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------ the owner itself
def test_pair_is_one_batch_and_loader_is_lazy():
    x, y = _pair()
    assert [len(b[0]) for b in as_batches((x, y))] == [12]
    assert [len(b[0]) for b in as_batches([x, y])] == [12]
    assert [len(b[0]) for b in as_batches([(x, y), (x, y)])] == [12, 12]
    assert [len(b[0]) for b in as_batches(_loader())] == [5, 5, 2]
    seen = []

    class Counting(DataLoader):
        def __iter__(self):
            for b in super().__iter__():
                seen.append(len(b[0]))
                yield b

    it = iter(as_batches(Counting(_Images(), batch_size=4)))
    next(it)
    assert seen == [4]  # one batch read and moved at a time, not the whole loader


def test_generator_is_read_once_and_reiterable():
    x, y = _pair()
    b = as_batches(t for t in [(x, y), (x, y)])
    assert len(list(b)) == 2 and len(list(b)) == 2


@pytest.mark.parametrize(
    "bad, match",
    [
        ("uint8", "uint8 images"),
        ("255", "divide the images by 255"),
        ("float_labels", "class indices as integers"),
        ("onehot", "one-hot"),
        ("range", r"labels in \[4, 7\] but the model's classes are \[0, 3\]"),
        ("negative", "labels in"),
        ("empty_batch", "batch size 0"),
        ("length", "does not match"),
        ("nhwc", "channels-last"),
    ],
)
def test_bad_input_gets_a_clear_error(bad, match):
    m = _bn_net()
    x, y = _pair()
    if bad == "uint8":
        x = (x * 255).to(torch.uint8)
    elif bad == "255":
        x = x * 255
    elif bad == "float_labels":
        y = y.double()
    elif bad == "onehot":
        y = nn.functional.one_hot(y, 4).double()
    elif bad == "range":
        y = y + 4
    elif bad == "negative":
        y = y - 1
    elif bad == "empty_batch":
        x, y = x[:0], y[:0]
    elif bad == "length":
        y = y[:-1]
    elif bad == "nhwc":
        x = x.permute(0, 2, 3, 1)
    with pytest.raises(ValueError, match=match):
        list(as_batches((x, y), model=m, labels="class"))


def test_empty_data_and_dataset_without_loader():
    with pytest.raises(ValueError, match="yields no batches"):
        list(as_batches([]))
    with pytest.raises(TypeError, match="DataLoader"):
        as_batches(_Images())
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        as_batches(_pair(), batch_size=0)


# ----------------------------------------------- a bare pair is one batch everywhere
def test_pair_is_one_batch_in_surface_scattering_perturb_batches():
    m = _bn_net()
    x, y = _pair()
    d = _dirs(m)
    kw = dict(xs=[0.0, 0.5], ys=[0.0], batch_size=None)
    pair = S.loss_surface(m, CE, (x, y), d, **kw)
    listed = S.loss_surface(m, CE, [(x, y)], d, **kw)
    np.testing.assert_allclose(pair.loss, listed.loss, rtol=1e-12)
    assert pair.meta["num_samples"] == 12

    adv = attacks.perturb_batches(
        m, (x, y), attacks.PGD(eps=0.1, steps=2), generator=torch.Generator()
    )
    assert len(adv) == 1 and adv[0][0].shape == x.shape

    pgd = attacks.PGD(eps=0.1, steps=2, alpha=0.05)
    sk = dict(attack=pgd, eps=[0.0], scales=[1e-2], num_directions=1)
    g = torch.Generator
    r1 = scattering.scattering(m, CE, (x, y), generator=g().manual_seed(0), **sk)
    r2 = scattering.scattering(m, CE, [(x, y)], generator=g().manual_seed(0), **sk)
    assert r1.meta["batch_sizes"] == [12]
    np.testing.assert_allclose(r1.ratio, r2.ratio, rtol=1e-12)


# --------------------------------------------- [0, 255] images rejected everywhere
@pytest.mark.parametrize("kind", ["uint8", "255"])
def test_unscaled_images_rejected_by_every_analysis(kind):
    m = _bn_net()
    x, y = _pair()
    x = (x * 255).to(torch.uint8) if kind == "uint8" else x * 255
    data = [(x, y)]
    match = "uint8" if kind == "uint8" else "divide the images by 255"
    with pytest.raises(ValueError, match=match):
        S.loss_surface(m, CE, data, _dirs(m), xs=[0.0], ys=[0.0])
    with pytest.raises(ValueError, match=match):
        hessian.top_eigenvalues(m, CE, data, num=1)
    with pytest.raises(ValueError, match=match):
        scattering.scattering(
            m, CE, data, attack=attacks.PGD(eps=0.1), scales=[1e-2], num_directions=1
        )
    with pytest.raises(ValueError, match=match):
        attacks.perturb_batches(m, data, attacks.PGD(eps=0.1))


def test_bad_labels_rejected_by_analyses():
    m = _bn_net()
    x, y = _pair()
    with pytest.raises(ValueError, match="model's classes"):
        hessian.top_eigenvalues(m, CE, [(x, y + 10)], num=1)
    with pytest.raises(ValueError, match="model's classes"):
        scattering.scattering(
            m, CE, [(x, y + 10)], attack=attacks.PGD(eps=0.1), scales=[1e-2],
            num_directions=1,
        )  # fmt: skip
    with pytest.raises(ValueError, match="integers"):
        S.loss_surface(m, CE, [(x, y.double())], _dirs(m), xs=[0.0], ys=[0.0])
    with pytest.raises(ValueError, match="batch size 0"):
        S.loss_surface(m, CE, [(x, y), (x[:0], y[:0])], _dirs(m), xs=[0.0], ys=[0.0])


# ------------------------- issue 13: every analysis on a user-style DataLoader + BN
def test_every_analysis_runs_on_a_dataloader_with_batchnorm():
    m = _bn_net()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    loader = _loader()
    listed = [(x, y) for x, y in loader]
    g = torch.Generator

    surf = S.loss_surface(m, CE, loader, _dirs(m), xs=[0.0, 0.5], ys=[0.0])
    ref = S.loss_surface(m, CE, listed, _dirs(m), xs=[0.0, 0.5], ys=[0.0])
    np.testing.assert_allclose(surf.loss, ref.loss, rtol=1e-12)
    assert surf.meta["num_samples"] == 12

    line = S.loss_surface(m, CE, loader, [_dirs(m)[0]], xs=[0.0, 1.0])
    assert line.loss.shape == (2,)

    sc = scattering.scattering(
        m, CE, loader, attack=attacks.PGD(eps=0.1, steps=2), eps=[0.0, 0.1],
        scales=[1e-2], num_directions=1, generator=g().manual_seed(0),
    )  # fmt: skip
    assert sc.meta["batch_sizes"] == [5, 5, 2]

    eig = hessian.top_eigenvalues(m, CE, loader, num=1, generator=g().manual_seed(0))
    eig_ref = hessian.top_eigenvalues(
        m, CE, listed, num=1, generator=g().manual_seed(0)
    )
    np.testing.assert_allclose(eig.eigenvalues, eig_ref.eigenvalues, rtol=1e-6)
    tr = hessian.trace(m, CE, loader, num_matvecs=4, generator=g().manual_seed(0))
    assert np.isfinite(tr.estimate)
    dens = hessian.lanczos_density(
        m, CE, loader, max_iter=4, num_runs=1, generator=g().manual_seed(0)
    )
    assert dens.meta["num_params"] > 0 if "num_params" in dens.meta else True

    adv = attacks.perturb_batches(
        m, loader, attacks.PGD(eps=0.1, steps=2), generator=g().manual_seed(0)
    )
    assert [len(a[1]) for a in adv] == [5, 5, 2]

    res = evaluate.evaluate(
        m, loader, eps=0.05, preset="quick", scale=0.1, checks=False
    )
    assert res.meta["num_samples"] == 12 if "num_samples" in res.meta else True

    for k, v in m.state_dict().items():  # the caller's model is left alone
        assert torch.equal(v, before[k]), k
    assert not m.training


# ------------------------------------------------------------------ attack values
def test_attack_values_validate_once():
    import dataclasses

    with pytest.raises(ValueError, match="eps"):
        attacks.PGD(eps=-0.1)
    for bad in (float("nan"), float("inf")):  # non-finite budgets are refused
        with pytest.raises(ValueError, match="finite"):
            attacks.PGD(eps=bad)
    # PGD(steps=0) was accepted when built (perturb_batches then returned noise)
    for bad in ({"steps": 0}, {"steps": -1}, {"restarts": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            attacks.PGD(eps=0.1, **bad)
    with pytest.raises(ValueError, match="alpha"):
        attacks.FGSMRS(eps=0.1, alpha=0.0)
    with pytest.raises(ValueError, match="not both"):
        attacks.PGD(eps=0.1, alpha=0.01, alpha_rel=0.25)
    with pytest.raises(ValueError, match="keep='best'"):
        attacks.PGD(eps=0.1, restarts=3)  # restarts keep the per-example worst case
    with pytest.raises(ValueError, match="norm"):
        attacks.APGD(eps=0.1, norm="l3")
    with pytest.raises(ValueError, match="unknown loss"):
        attacks.PGD(eps=0.1, loss="hinge")
    with pytest.raises(ValueError, match="one step"):
        attacks.FGSMRS(eps=0.1, steps=3)
    a = attacks.PGD(eps=0.1, norm="inf", steps=3)
    assert a.norm == "linf" and a == attacks.PGD(eps=0.1, steps=3.0)
    assert hash(a) == hash(attacks.PGD(eps=0.1, steps=3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.eps = 0.2  # frozen
    m = _bn_net()
    x, y = _pair()
    for atk in (
        attacks.FGSM(eps=0.1),
        attacks.FGSMRS(eps=0.1),
        attacks.PGD(eps=0.1, steps=2, alpha=(0.05, 0.02), restarts=2, keep="best"),
        attacks.APGD(eps=0.1, steps=3),
        attacks.APGDT(eps=0.1, steps=3, num_targets=2),
        attacks.Square(eps=0.1, queries=3),
    ):
        xa = atk(m, x, y, torch.Generator().manual_seed(0))
        assert (xa - x).abs().max() <= 0.1 + 1e-9 and xa.min() >= 0, atk
        back = attacks.Attack.from_dict(json.loads(json.dumps(atk.to_dict())))
        assert back == atk and type(back) is type(atk)  # JSON round trip
        assert atk.name and atk.kind in ("white", "black")
    assert (
        attacks.Square(eps=0.1).kind == "black" and attacks.PGD(eps=0.1).kind == "white"
    )


def test_attack_names_kinds_and_recorded_callables():
    names = {
        "pgd-20": attacks.PGD(eps=0.1, steps=20, loss="ce", keep="best"),
        "pgd-10-cw": attacks.PGD(eps=0.1, loss="cw"),
        "fgsm-rs": attacks.FGSMRS(eps=0.1),
        "apgd-ce": attacks.APGD(eps=0.1),
        "apgd-t": attacks.APGDT(eps=0.1),
        "fab-t": attacks.FABT(eps=0.1),
        "simba-dct": attacks.SimBA(eps=1.0),
        "my-label": attacks.Square(eps=0.1, label="my-label"),
    }
    for name, atk in names.items():
        assert atk.name == name

    def my_loss(out, t):
        return torch.nn.functional.cross_entropy(out, t, reduction="sum")

    atk = attacks.PGD(eps=0.1, steps=2, loss=my_loss)
    d = atk.to_dict()
    assert d["loss"].startswith("callable:") and d["loss"].endswith("my_loss")
    back = attacks.Attack.from_dict(d)  # recorded by name: pass it again to run it
    m, (x, y) = _bn_net(), _pair()
    with pytest.raises(ValueError, match="pass that callable again"):
        back(m, x, y, torch.Generator())
    again = attacks.Attack.from_dict(d, loss=my_loss)
    assert again == atk
    with pytest.raises(ValueError, match="unknown attack"):
        attacks.Attack.from_dict({"attack": "Nope", "eps": 0.1})
    with pytest.raises(ValueError, match="no settings"):
        attacks.Attack.from_dict({"attack": "PGD", "eps": 0.1, "stepz": 3})


@dataclasses.dataclass(frozen=True)
class _Flip(attacks.Attack):
    """A new attack in one class: the sign-flipped input, clipped into the ball (a
    test of 'adding an attack is one file and one export')."""

    strength: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._positive("strength", high=1.0)

    def _run(self, model, x, y, gen, bar):
        delta = (self.strength * (1 - 2 * x)).clamp(-self.eps, self.eps)
        return (x + delta).clamp(0, 1), {}


def test_a_new_attack_is_one_class():
    """Defining the class registers it: it round-trips through JSON, runs in the
    evaluation protocol, the trainer (config.json included) and perturb_batches."""
    from landscape import train

    atk = _Flip(eps=0.05, strength=0.5)
    assert atk.name == "_flip" and atk.kind == "white"
    assert attacks.Attack.from_dict(json.loads(json.dumps(atk.to_dict()))) == atk
    with pytest.raises(ValueError, match="strength"):
        _Flip(eps=0.1, strength=2.0)
    m, (x, y) = _bn_net(), _pair()
    res = evaluate.evaluate(m, (x, y), attacks=[atk], checks=False)
    assert res.attacks == ["_flip"] and res.meta["attacks"] == [atk.to_dict()]
    adv = attacks.perturb_batches(m, (x, y), atk)
    assert (adv[0][0] - x).abs().max() <= 0.05 + 1e-7
    cfg = train.TrainConfig(
        epochs=1, batch_size=6, attack=atk,
        runtime=train.Runtime(eval_num=0, co_check_num=0),
    )  # fmt: skip
    assert train.TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    train.adversarial_train(_bn_net(), (x, y), cfg)
    xa, info = atk(m, x, y, return_info=True)  # the call and its info come from Attack
    with torch.no_grad():
        assert torch.equal(info["success"], m.eval()(xa).argmax(1) != y)
    with pytest.raises(TypeError, match=r"_Flip takes no options \['train'\]"):
        atk(m, x, y, train=True)
    with pytest.raises(TypeError, match="its options: \\['train', 'trace'\\]"):
        attacks.PGD(eps=0.1)(m, x, y, trian=True)


def test_relative_step_sizes_follow_the_budget():
    import dataclasses

    rel = attacks.PGD(eps=0.4, steps=10, alpha_rel=0.25)
    assert dataclasses.replace(rel, eps=0.2).step_sizes() == (0.25 * 0.2,)
    absolute = attacks.PGD(eps=0.4, steps=10, alpha=0.01)
    assert dataclasses.replace(absolute, eps=0.2).step_sizes() == (0.01,)
    default = attacks.PGD(eps=0.4, steps=10)
    assert dataclasses.replace(default, eps=0.2).step_sizes() == (2.5 * 0.2 / 10,)
    grid = attacks.PGD(eps=0.4, alpha_rel=(1.0, 0.5), keep="best")
    assert dataclasses.replace(grid, eps=0.2).step_sizes() == (0.2, 0.1)
    assert attacks.FGSMRS(eps=0.2).step_sizes() == (1.25 * 0.2,)


def test_loose_attack_keywords_are_gone():
    m = _bn_net()
    x, y = _pair()
    with pytest.raises(TypeError):
        attacks.perturb_batches(m, (x, y), eps=0.1, steps=2)
    with pytest.raises(TypeError, match="unexpected keyword"):
        S.loss_surface(m, CE, (x, y), _dirs(m), xs=[0.0], ys=[0.0], eps=0.1)
    with pytest.raises(TypeError):
        scattering.scattering(m, CE, (x, y), attack=attacks.PGD(eps=0.1), steps=3)
    for name in ("as_attack", "perturb", "fgsm_rs", "PGDRestarts"):
        assert not hasattr(attacks, name), name
    d = _dirs(m)
    s = S.loss_surface(
        m, CE, (x, y), d, xs=[0.0, 0.3], ys=[0.0],
        attack=attacks.PGD(eps=0.1, steps=2), generator=torch.Generator().manual_seed(2),
    )  # fmt: skip
    assert s.meta["adversarial"] == "reattack" and s.meta["attack"]["attack"] == "PGD"


# ---------------------------------------------------------------- scattering seams
def test_scattering_takes_an_attack_value():
    m = _bn_net()
    x, y = _pair()
    g = torch.Generator
    kw = dict(scales=[1e-2], num_directions=1, directions="unit")
    pgd = attacks.PGD(eps=0.3, steps=2, alpha=0.05)
    loop = scattering.scattering(
        m, CE, (x, y), eps=[0.1], attack=pgd, strategy="loop",
        generator=g().manual_seed(0), **kw,
    )  # fmt: skip
    assert loop.meta["attack"] == pgd.to_dict() and loop.meta["strategy"] == "loop"
    vm = scattering.scattering(
        m, CE, (x, y), attack=dataclasses.replace(pgd, eps=0.1),
        generator=g().manual_seed(0), **kw,
    )  # fmt: skip
    assert vm.eps.tolist() == [0.1]  # the attack's budget when eps is not given
    np.testing.assert_allclose(vm.ratio, loop.ratio, rtol=1e-8)
    fr = scattering.scattering(
        m, CE, (x, y), attack=attacks.FGSMRS(eps=0.1), generator=g().manual_seed(0),
        **kw,
    )  # fmt: skip
    assert fr.meta["attack"]["attack"] == "FGSMRS" and fr.meta["attack"]["steps"] == 1
    with pytest.raises(TypeError, match="PGD"):
        scattering.scattering(m, CE, (x, y), attack=attacks.Square(eps=0.1), **kw)
    with pytest.raises(TypeError, match="keep='last'"):
        best = attacks.PGD(eps=0.1, keep="best")
        scattering.scattering(m, CE, (x, y), attack=best, **kw)
    with pytest.raises(ValueError, match="loss"):
        scattering.scattering(
            m, CE, (x, y), attack=attacks.PGD(eps=0.1, loss="cw"), **kw
        )


# ------------------------------------------------- one loader, one seed convention
def test_one_loader_class():
    from _helpers import tiny_train_config

    from landscape import data, train
    from landscape.train._data import as_loader

    assert not hasattr(train, "TensorBatches")
    x, y = torch.rand(10, 2), torch.arange(10)
    a = data.Batches(x, y, batch_size=3, shuffle=True, seed=4)
    b = as_loader((x, y), tiny_train_config(batch_size=3, seed=4))
    assert type(b) is data.Batches  # the trainer batches tensors with data.Batches
    assert [yb.tolist() for _, yb in a] == [yb.tolist() for _, yb in b]  # same orders
    with pytest.raises(ValueError, match="empty"):
        data.Batches(torch.zeros(0, 2), torch.zeros(0), batch_size=2)


def test_evaluate_generator_none_is_the_global_rng(tmp_path):
    from landscape import seed_everything

    m = _bn_net()
    x, y = _pair()
    kw = dict(eps=0.05, preset="quick", scale=0.1, checks=False)
    seed_everything(3)
    a = evaluate.evaluate(m, (x, y), **kw)
    seed_everything(3)
    b = evaluate.evaluate(m, (x, y), **kw)
    seed_everything(4)
    c = evaluate.evaluate(m, (x, y), **kw)
    assert a.meta["seed"] == b.meta["seed"] != c.meta["seed"]
    state = tmp_path / "state.pt"
    first = evaluate.evaluate(m, (x, y), state_path=state, **kw)
    again = evaluate.evaluate(m, (x, y), state_path=state, **kw)  # resumes its seed
    assert first.meta["seed"] == again.meta["seed"]

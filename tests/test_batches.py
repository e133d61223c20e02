"""landscape._batches: the class-coverage warning every analysis gets (issue 28: a
Hessian and a surface computed on ``x[:256]`` of a class-sorted data set covered
classes 0-2 and said nothing)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from landscape import attacks, data, directions, hessian, scattering
from landscape import surface as S
from landscape._batches import as_batches

CE = nn.CrossEntropyLoss()


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 10)).double().eval()


def _sorted_data(n: int = 1000):
    """A data set stored sorted by class (an image folder's order)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 4, 4, generator=g, dtype=torch.float64)
    return x, torch.arange(10).repeat_interleave(n // 10)


def _coverage_warnings(fn) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in caught if "covers only" in str(w.message)]


def test_a_class_sorted_slice_warns_in_every_analysis():
    m = _model()
    x, y = _sorted_data()
    head = [(x[:256], y[:256])]  # classes 0, 1 and 2 only
    calls = {
        "hessian": lambda d: hessian.top_eigenvalues(m, CE, d, num=1, max_iter=3),
        "surface": lambda d: S.loss_surface(
            m, CE, d, directions.random_directions(m, generator=torch.Generator()),
            xs=[0.0], ys=[0.0],
        ),
        "scattering": lambda d: scattering.scattering(
            m, CE, d, attack=attacks.PGD(eps=0.1, steps=1), scales=[1e-2],
            num_directions=1,
        ),
        "perturb": lambda d: attacks.perturb_batches(m, d, attacks.FGSM(eps=0.1)),
    }  # fmt: skip
    for name, call in calls.items():
        msgs = _coverage_warnings(lambda c=call: c(head))
        assert len(msgs) == 1, (name, msgs)  # once per call
        assert "covers only 3 of the model's 10 classes" in msgs[0], name
        assert "num_samples" in msgs[0] and "labels 0, 1, 2" in msgs[0]
    g = torch.Generator().manual_seed(0)
    idx = data.subset_indices(y, 256, generator=g)  # the fix: a stratified sample
    for name, call in calls.items():
        assert _coverage_warnings(lambda c=call: c([(x[idx], y[idx])])) == [], name


@pytest.mark.parametrize(
    "labels, warns",
    [
        (torch.zeros(8, dtype=torch.long), True),  # one class of ten in 8 examples
        (torch.arange(8) % 4, False),  # 4 classes in 8: a random sample gets ~5.7
        (torch.arange(3), False),  # 3 examples cannot cover more than 3 classes
        (torch.arange(200) % 4, True),  # 4 of 10 classes in 200 examples
    ],
)
def test_threshold_follows_a_random_samples_coverage(labels, warns):
    m = _model()
    x = torch.rand(len(labels), 1, 4, 4, dtype=torch.float64)
    got = _coverage_warnings(lambda: list(as_batches((x, labels), model=m)))
    assert bool(got) == warns, got


def test_no_warning_for_binary_regression_or_second_passes():
    m = nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).double()
    x = torch.rand(50, 1, 4, 4, dtype=torch.float64)
    assert _coverage_warnings(lambda: list(as_batches((x, torch.zeros(50).long()),
                                                      model=m))) == []  # fmt: skip
    reg = nn.Sequential(nn.Flatten(), nn.Linear(16, 1)).double()
    assert _coverage_warnings(lambda: list(as_batches((x, torch.zeros(50, 1)),
                                                      model=reg))) == []  # fmt: skip
    b = as_batches((x, torch.zeros(50).long()), model=_model())
    assert len(_coverage_warnings(lambda: list(b))) == 1
    assert _coverage_warnings(lambda: list(b)) == []  # checked once

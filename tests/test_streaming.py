"""Memory bounded by the batch, not the data set: every analysis reads the caller's
loader batch by batch and lets a batch go before it holds many others (nothing
copies the data set to the device or keeps the list of its batches)."""

from __future__ import annotations

import weakref

import numpy as np
import pytest
import torch
from torch import nn

from landscape import attacks, certify, connectivity, hessian, scattering, sharpness
from landscape import directions as D
from landscape import surface as S
from landscape.evaluate import evaluate

NUM_BATCHES = 8


class _Loader:
    """A loader that makes fresh batches on every pass and records, at each yield,
    how many of the batches it made are still alive (referenced by the caller)."""

    def __init__(self):
        g = torch.Generator().manual_seed(1)
        self.x = torch.rand(NUM_BATCHES, 5, 4, generator=g, dtype=torch.float64)
        self.y = torch.randint(0, 3, (NUM_BATCHES, 5), generator=g)
        self.refs: list = []
        self.most_alive = 0

    def __len__(self) -> int:
        return NUM_BATCHES

    def __iter__(self):
        for i in range(NUM_BATCHES):
            alive = sum(r() is not None for r in self.refs)
            self.most_alive = max(self.most_alive, alive)
            x, y = self.x[i].clone(), self.y[i].clone()
            self.refs.append(weakref.ref(x))
            yield x, y


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def _surface(model, data):
    dirs = D.random_directions(model, generator=torch.Generator().manual_seed(2))
    S.loss_surface(
        model, nn.CrossEntropyLoss(), data, dirs[:1], xs=np.linspace(-1, 1, 3),
        batch_size=None, strategy="loop",
    )  # fmt: skip


def _scattering(model, data):
    scattering.scattering(
        model, nn.CrossEntropyLoss(), data, attack=attacks.PGD(eps=0.1, steps=2),
        scales=(1e-2,), num_directions=1, generator=torch.Generator().manual_seed(3),
    )  # fmt: skip


def _evaluate(model, data):
    evaluate(
        model, data, attacks=[attacks.PGD(eps=0.1, steps=2)], checks=False,
        generator=torch.Generator().manual_seed(4),
    )  # fmt: skip


def _top_eigenvalues(model, data):
    hessian.top_eigenvalues(
        model, nn.CrossEntropyLoss(), data, max_iter=5, tol=1e-1, mode="recompute",
        generator=torch.Generator().manual_seed(5),
    )  # fmt: skip


def _trace(model, data):
    hessian.trace(
        model, nn.CrossEntropyLoss(), data, num_matvecs=4, mode="recompute",
        generator=torch.Generator().manual_seed(6),
    )  # fmt: skip


def _relu_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()


def _scan_curve(model, data):
    curve = connectivity.init_curve(model, _relu_model(), num_bends=1)
    connectivity.scan_curve(
        model, nn.CrossEntropyLoss(), data, curve, num=3,
        attack=attacks.PGD(eps=0.1, steps=2), generator=torch.Generator().manual_seed(7),
    )  # fmt: skip


def _certify(model, data):
    certify.certify(_relu_model(), data, eps=0.01)


def _worst_case(model, data):
    measure = sharpness.WorstCase(rho=0.05, max_iter=2)
    measure(model, nn.CrossEntropyLoss(), data, torch.Generator().manual_seed(8))


def _average_case(model, data):
    measure = sharpness.AverageCase(rho=0.05, num_samples=2)
    measure(model, nn.CrossEntropyLoss(), data, torch.Generator().manual_seed(9))


def _sharpness_attacked(model, data):
    measure = sharpness.WorstCase(
        rho=0.05, max_iter=2, attack=attacks.PGD(eps=0.1, steps=2), adversarial="fixed"
    )
    measure(model, nn.CrossEntropyLoss(), data, torch.Generator().manual_seed(10))


def _perturb_batches(model, data):
    for _ in attacks.perturb_batches(model, data, attacks.PGD(eps=0.1, steps=2)):
        pass


@pytest.mark.parametrize(
    "analysis",
    [
        _surface, _scattering, _evaluate, _top_eigenvalues, _trace, _scan_curve,
        _certify, _worst_case, _average_case, _sharpness_attacked, _perturb_batches,
    ],
)  # fmt: skip
def test_analyses_hold_a_batch_at_a_time(analysis):
    loader = _Loader()
    analysis(_model(), loader)
    assert len(loader.refs) >= NUM_BATCHES
    assert loader.most_alive <= 2, loader.most_alive

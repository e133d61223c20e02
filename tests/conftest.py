"""Shared fixtures: the real-data folder, tiny float64 cases, device list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# Two pytest-xdist workers on two cores: one torch thread each.
torch.set_num_threads(1)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _seeded_global_rng():
    """Seed torch's global RNG before every test: ``generator=None`` draws from it
    (everywhere, evaluate included), so a test's randomness must not depend on which
    tests ran before it in the same worker."""
    torch.manual_seed(0)


def _find_data_root() -> Path | None:
    env = os.environ.get("LANDSCAPE_DATA")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "data", REPO / "data"]
    for c in candidates:
        if (c / "mnist" / "train-images-idx3-ubyte.gz").exists():
            return c
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Folder with the real datasets (LANDSCAPE_DATA, else ../shared/data, else ./data).

    On a user's machine without the files the test is skipped with the reason; in CI
    (CI=true) a missing data folder is a failure, never a silent skip.
    """
    root = _find_data_root()
    if root is None:
        msg = (
            "no real-data folder found: set LANDSCAPE_DATA to a folder holding "
            "mnist/*.gz (e.g. ../shared/data) or run `python -m landscape.data download`"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture
def lenet_checkpoint(tmp_path) -> torch.nn.Module:
    """A half-width LeNet (fc 16) saved as a training checkpoint ``tmp_path / "ck.pt"``
    with the config the command lines read; returns the model."""
    from landscape import models

    kw = {"width": 0.5, "hidden_size": 16}
    net = models.build("lenet", **kw)
    torch.save(
        {"model": net.state_dict(), "config": {"model": "lenet", "model_kwargs": kw}},
        tmp_path / "ck.pt",
    )
    return net


def _tiny_models(seed: int):
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(4, 3).double()
    mlp = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)
    ).double()
    for m in (lin, mlp):
        for p in m.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return {"linear": lin, "mlp": mlp}


CASES = [
    (m, loss, dev)
    for m in ("linear", "mlp")
    for loss in ("mse", "ce")
    for dev in DEVICES
]


@pytest.fixture(params=CASES, ids=lambda c: "-".join(c))
def tiny_case(request):
    """(model, loss_fn, data): a linear model or a two-layer tanh MLP (< 200 params),
    MSE or cross-entropy, float64, two batches of 8, seeded per case."""
    name, loss, dev = request.param
    seed = CASES.index(request.param)
    g = torch.Generator().manual_seed(seed)
    model = _tiny_models(seed)[name].to(dev)
    data = []
    for _ in range(2):
        x = torch.randn(8, 4, generator=g, dtype=torch.float64)
        if loss == "mse":
            y = torch.randn(8, 3, generator=g, dtype=torch.float64)
        else:
            y = torch.randint(0, 3, (8,), generator=g)
        data.append((x.to(dev), y.to(dev)))
    loss_fn = torch.nn.MSELoss() if loss == "mse" else torch.nn.CrossEntropyLoss()
    return model, loss_fn, data


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)

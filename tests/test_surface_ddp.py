"""Sharding: two gloo processes give the same surface as one process."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
from _helpers import run_gloo, tanh_mlp_batches
from torch import nn

from landscape import attacks
from landscape import directions as D
from landscape import surface as S


def _case():
    model, data = tanh_mlp_batches(
        hidden=6, batch_size=12, num_batches=2, draw=torch.randn
    )
    dirs = D.random_directions(model, generator=torch.Generator().manual_seed(2))
    return model, data, dirs


_GRID = dict(xs=np.linspace(-1, 1, 5), ys=np.linspace(-1, 1, 3), batch_size=None)


def _reattack_line(model, data, dirs) -> S.Surface:
    """The re-attacked loss along the first direction (PGD-2 at eps 0.2, seeded)."""
    return S.loss_surface(model, nn.CrossEntropyLoss(), data, [dirs[0]], xs=_GRID["xs"],
        adversarial="reattack", attack=attacks.PGD(eps=0.2, steps=2),
        generator=torch.Generator().manual_seed(3), batch_size=None,
    )  # fmt: skip


def _work(rank: int, out_dir: str) -> None:
    model, data, dirs = _case()
    s = S.loss_surface(model, nn.CrossEntropyLoss(), data, dirs, **_GRID)
    reattack = _reattack_line(model, data, dirs)
    s.save(os.path.join(out_dir, f"clean{rank}.npz"))
    reattack.save(os.path.join(out_dir, f"reattack{rank}.npz"))


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_two_gloo_processes_equal_one(tmp_path):
    run_gloo(_work, tmp_path)
    model, data, dirs = _case()
    single = S.loss_surface(model, nn.CrossEntropyLoss(), data, dirs, **_GRID)
    line = _reattack_line(model, data, dirs)
    assert single.meta["world_size"] == 1
    for rank in range(2):
        got = S.Surface.load(tmp_path / f"clean{rank}.npz")
        assert got.meta["world_size"] == 2 and got.meta["rank"] == rank
        assert got.meta["points_evaluated"] == (8 if rank == 0 else 7)  # 15 points
        np.testing.assert_allclose(got.loss, single.loss, rtol=1e-12)
        np.testing.assert_array_equal(got.accuracy, single.accuracy)
        re = S.Surface.load(tmp_path / f"reattack{rank}.npz")
        np.testing.assert_allclose(re.loss, line.loss, rtol=1e-12)

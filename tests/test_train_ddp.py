"""Data-parallel training: 2 CPU processes with the gloo backend reach the weights of a
single-process run with the same global batch (plain PGD, objectives with AWP and a
weight average, augmentation, and curve training: a CurveModel through the trainer)."""

from __future__ import annotations

import dataclasses
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _helpers import tiny_train_config
from torch import nn

from landscape import attacks, evaluate, train
from landscape.train import adversarial_train

CFG = tiny_train_config(
    attack=attacks.PGD(eps=0.1, steps=2, alpha_rel=0.5, random_start=False),
    runtime={
        "eval_num": 16,
        "eval_attack": evaluate.preset_attacks("quick", 0.1, steps=2)[0],
        "co_check_num": 8,
    },
    seed=3,
)
# issue 26: an objective, AWP, a weight average and a validation split under DDP
CFGS = {
    "pgd": CFG,
    "mart-awp-ema": dataclasses.replace(
        CFG,
        objective=train.MART(beta=5.0),
        awp=train.AWP(gamma=0.02),
        averaging=train.EMA(decay=0.9, bn="copy"),
        val_num=16,
    ),
    # issue 24: each rank moves only its shard and augments it with the draws of the
    # whole global batch
    "pgd-augment": dataclasses.replace(CFG, augment="crop_flip"),
    # curve training (a CurveModel through the trainer) under DDP
    "curve": CFG,
}


def _setup(name: str = "pgd"):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 4, 4, generator=g, dtype=torch.float64)
    y = (x[..., :2].mean((1, 2, 3)) > x[..., 2:].mean((1, 2, 3))).long()
    torch.manual_seed(0)

    def net():
        return nn.Sequential(
            nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 2)
        ).double()

    model = net()
    if name == "curve":
        from landscape.connectivity import CurveModel

        model = CurveModel(model, net())
    return model, x, y


def _worker(rank: int, world: int, port: int, out: str, name: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model, x, y = _setup(name)
        res = adversarial_train(
            model,
            (x, y),
            CFGS[name],
            test_data=(x, y),
            run_dir=os.path.join(out, "run"),
        )
        assert res.meta["world_size"] == world and res.meta["rank"] == rank
        torch.save(model.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(),
    reason="needs torch.distributed with gloo",
)
@pytest.mark.parametrize("name", sorted(CFGS))
def test_ddp_two_processes_match_single_process(tmp_path, name):
    cfg = CFGS[name]
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), name), nprocs=2, join=True)
    w0 = torch.load(tmp_path / "rank0.pt")
    w1 = torch.load(tmp_path / "rank1.pt")
    for k in w0:  # ranks agree exactly (DDP all-reduces the gradients)
        assert torch.equal(w0[k], w1[k]), k
    model, x, y = _setup(name)
    ref = adversarial_train(model, (x, y), cfg, test_data=(x, y))
    for k, v in model.state_dict().items():  # same global batch -> same weights
        torch.testing.assert_close(w0[k], v, rtol=1e-10, atol=1e-12)
    run = train.load_run(tmp_path / "run")  # only rank 0 wrote, and wrote once
    assert run.metrics["epoch"].tolist() == [1, 2]
    torch.testing.assert_close(
        run.metrics["train_loss"], ref.metrics["train_loss"], rtol=1e-10, atol=0
    )
    if name != "curve":  # (a curve's loss is at a fresh random t every batch)
        assert run.metrics["train_loss"][-1] < run.metrics["train_loss"][0]
    if cfg.averaging is not None:
        for k in ("val_robust_acc", "avg_test_robust_acc"):
            torch.testing.assert_close(
                run.metrics[k], ref.metrics[k], rtol=1e-10, atol=0
            )
        avg = torch.load(tmp_path / "run" / "averaged.pt", weights_only=True)["model"]
        assert avg.keys() == w0.keys()

"""Small models and settings shared by several test files (tests/ is on sys.path under
pytest): one definition each, so that the test files do not repeat them."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "HostReads",
    "conv_bn_net",
    "dense_backsub",
    "gaussian_mlp",
    "run_gloo",
    "tanh_mlp_batches",
    "tiny_train_config",
]


def conv_bn_net(kernel: int = 3, side: int = 6, *, dropout: bool = False) -> nn.Module:
    """A float64 ``Conv2d(1, 3, kernel)`` -> ``BatchNorm2d`` -> ReLU -> Flatten ->
    [``Dropout(0.5)``] -> ``Linear(., 4)`` net for ``side x side`` one-channel images,
    initialised under ``torch.manual_seed(0)``, with BatchNorm running statistics
    drawn away from 0 / 1 (so that eval and train mode differ). In train mode."""
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 3, kernel), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(0.5))
    m = nn.Sequential(*layers, nn.Linear(3 * (side - kernel + 1) ** 2, 4)).double()
    with torch.no_grad():
        m[1].running_mean.uniform_(-0.5, 0.5)
        m[1].running_var.uniform_(0.5, 2.0)
    return m


def dense_backsub(
    layers: list, k: int, lam: torch.Tensor, relax: list, lo_in, hi_in
) -> torch.Tensor:
    """CROWN's lower bound of ``lam . z_k`` over the input box ``[lo_in, hi_in]``
    (N, d), on dense float64 maps: back-substitution of ``lam`` (N, m, n_k) through
    ``z_i = W_i relu(z_{i-1}) + b_i`` (``layers[i] = (W_i, b_i)``, ``z_{-1}`` the
    flattened input) and the ReLU relaxations ``relax[i - 1] = (lower slope, upper
    slope, upper intercept)`` (N, n_{i-1}) of the layers below ``k``. The dense
    references of ``test_certify.py`` and ``benchmarks/bench_certify.py``."""
    c = lam.new_zeros(lam.shape[:2])
    for i in range(k, -1, -1):
        w, b = layers[i]
        c = c + lam @ b
        lam = lam @ w
        if i == 0:
            pos, neg = lam.clamp_min(0), lam.clamp_max(0)
            return (
                c
                + torch.einsum("nmd,nd->nm", pos, lo_in)
                + torch.einsum("nmd,nd->nm", neg, hi_in)
            )
        low, up, icpt = relax[i - 1]
        pos, neg = lam.clamp_min(0), lam.clamp_max(0)
        c = c + torch.einsum("nmj,nj->nm", neg, icpt)
        lam = pos * low.unsqueeze(1) + neg * up.unsqueeze(1)
    raise ValueError(f"k = {k} < 0: no layer to bound")


def tanh_mlp_batches(
    hidden: int, batch_size: int, num_batches: int, draw: Any = torch.rand
) -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    """A float64 ``Linear(4, hidden)`` -> Tanh -> ``Linear(hidden, 3)`` (initialised
    under ``torch.manual_seed(0)``) and ``num_batches`` batches of ``batch_size``
    float64 inputs drawn by ``draw`` (``torch.rand`` or ``torch.randn``) with labels
    in {0, 1, 2}, from one generator seeded 1."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, 3))
    g = torch.Generator().manual_seed(1)
    data = [
        (
            draw(batch_size, 4, generator=g, dtype=torch.float64),
            torch.randint(0, 3, (batch_size,), generator=g),
        )
        for _ in range(num_batches)
    ]
    return model.double(), data


def gaussian_mlp(
    n: int, dim: int, *, margin: float, num_train: int, steps: int
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A ReLU MLP (``dim`` -> 32 -> 3) fitted with Adam (lr 1e-2, ``steps`` full-batch
    steps) to the first ``num_train`` points of a 3-class Gaussian mixture of ``n``
    points scaled into [0, 1]; returns ``(model in eval mode, x_rest, y_rest)``."""
    from landscape import data

    x, y = data.gaussian_mixture(
        n,
        dim,
        num_classes=3,
        margin=margin,
        noise=1.0,
        generator=torch.Generator().manual_seed(0),
    )
    x = (x - x.min()) / (x.max() - x.min())  # into [0, 1]
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(m(x[:num_train]), y[:num_train]).backward()
        opt.step()
    return m.eval(), x[num_train:], y[num_train:]


def tiny_train_config(*, attack: Any = ..., runtime: dict | None = None, **kw: Any):
    """A seconds-long :class:`landscape.train.TrainConfig`: 2 epochs of batch 16 at lr
    0.1 with PGD-2 at eps 0.1 (``attack``: another attack value, or None for standard
    training), no per-epoch evaluation and no constant-classifier check, seed 0;
    ``kw`` sets more science fields (or other values of these), ``runtime`` more
    :class:`landscape.train.Runtime` fields."""
    from landscape import attacks
    from landscape.train import Runtime, TrainConfig

    if attack is ...:
        attack = attacks.PGD(eps=0.1, steps=2)
    rt = {"eval_num": 0, "co_check_num": 0, **(runtime or {})}
    base = {"epochs": 2, "batch_size": 16, "lr": 0.1, "seed": 0, **kw}
    return TrainConfig(**base, attack=attack, runtime=Runtime(**rt))


class HostReads:
    """Counts the calls that read a tensor back to the host (a device sync on a
    GPU): ``item``, ``tolist``, ``cpu``, ``nonzero`` and ``bool`` / ``float`` /
    ``int`` of a tensor. On CPU nothing syncs, so the count stands in for the
    syncs the same code would do on a GPU. Use as ``with HostReads(monkeypatch) as
    reads: ...; reads.count``."""

    NAMES = ("item", "tolist", "cpu", "nonzero", "__bool__", "__float__", "__int__")

    def __init__(self, monkeypatch):
        self.monkeypatch, self.count, self.on = monkeypatch, 0, False
        for name in self.NAMES:
            real = getattr(torch.Tensor, name)

            def counted(t, *a, _real=real, **k):
                if self.on:
                    self.count += 1
                return _real(t, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, counted)

    def __enter__(self) -> HostReads:
        self.count, self.on = 0, True
        return self

    def __exit__(self, *exc) -> None:
        self.on = False


def run_gloo(work: Any, out_dir: Any, world: int = 2) -> None:
    """Run ``work(rank, out_dir)`` in ``world`` spawned processes joined in one gloo
    process group (a file rendezvous in ``out_dir``), one torch thread each; ``work``
    is a module-level function of the test file (the children import it)."""
    import os

    import torch.multiprocessing as mp

    init = os.path.join(str(out_dir), "init")
    mp.spawn(_gloo_worker, args=(world, init, str(out_dir), work), nprocs=world)


def _gloo_worker(rank: int, world: int, init_file: str, out_dir: str, work) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        work(rank, out_dir)
    finally:
        dist.destroy_process_group()

"""Every long analysis under ``torch.distributed``: two gloo processes on CPU give
the single-process answer (bitwise where the order of the work allows, else to
1e-6 relative), every rank returns the whole result."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
import torch.distributed as dist
from _helpers import run_gloo, tanh_mlp_batches
from torch import nn

from landscape import attacks, hessian, scattering
from landscape.evaluate import evaluate


def _case():
    # an odd number of batches: the ranks take 3 and 2
    return tanh_mlp_batches(hidden=8, batch_size=6, num_batches=5)


def _analyses(state_dir: str | None = None) -> dict:
    """The answers of every analysis on the case (as plain arrays)."""
    model, data = _case()
    ce = nn.CrossEntropyLoss()
    out: dict = {}
    ev = evaluate(
        model,
        data,
        attacks=[attacks.PGD(eps=0.2, steps=3, restarts=2, keep="best")],
        checks=False,
        return_adversarial=True,
        generator=torch.Generator().manual_seed(2),
        state_path=None if state_dir is None else os.path.join(state_dir, "ev.pt"),
    )
    out["clean"] = ev.clean_correct
    out["robust"] = ev.robust_correct
    out["broken_by"] = ev.broken_by
    out["adversarial"] = ev.adversarial
    out["ev_world"] = ev.meta["world_size"]
    eig = hessian.top_eigenvalues(
        model, ce, data, num=2, max_iter=30, mode="recompute",
        generator=torch.Generator().manual_seed(3),
    )  # fmt: skip
    out["eigenvalues"] = eig.eigenvalues
    out["eig_world"] = eig.meta["world_size"]
    tr = hessian.trace(
        model, ce, data, num_matvecs=8, mode="recompute",
        generator=torch.Generator().manual_seed(4),
    )  # fmt: skip
    out["trace"] = np.asarray(tr.samples)
    q = hessian.lanczos_quadrature(
        model, ce, data, max_iter=8, num_runs=2, mode="recompute",
        generator=torch.Generator().manual_seed(5),
    )  # fmt: skip
    out["slq_nodes"], out["slq_weights"] = q.nodes, q.weights
    sc = scattering.scattering(
        model, ce, data, attack=attacks.PGD(eps=0.1, steps=2), eps=[0.05, 0.1],
        scales=(1e-2,), num_directions=2, generator=torch.Generator().manual_seed(6),
    )  # fmt: skip
    out["sc_grad_diff"], out["sc_grad_norm"] = sc.grad_diff, sc.grad_norm
    out["sc_cosine"], out["sc_sizes"] = sc.cosine, sc.meta["batch_sizes"]
    return out


def _work(rank: int, out_dir: str) -> None:
    res = _analyses(out_dir)
    with open(os.path.join(out_dir, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump(res, f)


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_two_gloo_processes_give_the_single_process_answers(tmp_path):
    run_gloo(_work, tmp_path)
    single = _analyses()
    assert single["ev_world"] == 1 and single["eig_world"] == 1
    # each rank wrote its own evaluation state file
    assert {p.name for p in tmp_path.glob("ev.rank*")} == {
        "ev.rank0of2.pt",
        "ev.rank1of2.pt",
    }
    for rank in range(2):
        with open(tmp_path / f"rank{rank}.pkl", "rb") as f:
            got = pickle.load(f)
        assert got["ev_world"] == 2 and got["eig_world"] == 2
        # evaluation: the generator of (eps, attack, batch) is independent of the
        # rank, so the merged result is bitwise the single-process one
        for k in ("clean", "robust", "broken_by", "adversarial"):
            np.testing.assert_array_equal(got[k], single[k], err_msg=k)
        # scattering: (eps, batch) pairs computed whole on one rank
        for k in ("sc_grad_diff", "sc_grad_norm", "sc_cosine", "sc_sizes"):
            np.testing.assert_array_equal(got[k], single[k], err_msg=k)
        # Hessian: the products are sums of the ranks' shares (another order)
        for k in ("eigenvalues", "trace", "slq_nodes", "slq_weights"):
            np.testing.assert_allclose(got[k], single[k], rtol=1e-6, err_msg=k)

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


# -- the command lines under torchrun ---------------------------------------------
_MLP = {"in_shape": [1, 28, 28], "hidden": [8]}


def _cli_argvs(ckpt: str, root: str, out: str) -> dict[str, list[str]]:
    """The surface and Hessian command lines on 16 MNIST images (tiny MLP)."""
    common = ["--data-root", root, "--num-samples", "16", "--no-progress"]
    common += ["--device", "cpu", "--threads", "1"]
    return {
        "surface": ["compute", ckpt, *common, "--grid", "-1", "1", "5",
                    "--batch-size", "4", "-o", os.path.join(out, "surface")],
        "hessian": [ckpt, *common, "--num-eigenvalues", "2", "--max-iter", "40",
                    "--batch-size", "4", "-o", os.path.join(out, "hessian")],
    }  # fmt: skip


def _cli_main(tool: str):
    from landscape.hessian._cli import main as hessian_main
    from landscape.surface._cli import main as surface_main

    return {"surface": surface_main, "hessian": hessian_main}[tool]


def _torchrun_worker(rank: int, world: int, ports: list, ckpt, root, out) -> None:
    """One process as ``torchrun`` starts it: the environment only, no group; each
    tool sets its group up and destroys it."""
    import contextlib
    import io

    os.environ.update(MASTER_ADDR="127.0.0.1", RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))  # fmt: skip
    for (tool, argv), port in zip(_cli_argvs(ckpt, root, out).items(), ports):
        os.environ["MASTER_PORT"] = str(port)
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            assert _cli_main(tool)(argv) == 0
        assert not dist.is_initialized()  # the tool's own group, destroyed
        with open(os.path.join(out, f"{tool}.stdout{rank}"), "w") as f:
            f.write(text.getvalue())


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.data
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_command_lines_under_torchrun_equal_one_process(tmp_path, data_root):
    """``torchrun --nproc-per-node 2 -m landscape.surface compute ...`` (and the
    Hessian's): each process sets up its gloo group from the environment, the grid
    points / batches are shared out, only rank 0 writes and prints, and the files
    equal a single-process run (issue 24)."""
    import torch.multiprocessing as mp

    from landscape import models
    from landscape.hessian import Eigenpairs
    from landscape.surface import Surface

    model = models.build("mlp", **_MLP)
    ckpt = str(tmp_path / "m.pt")
    torch.save({"model": model.state_dict(), "arch": "mlp", "arch_kwargs": _MLP}, ckpt)
    one, two = tmp_path / "one", tmp_path / "two"
    for tool, argv in _cli_argvs(ckpt, str(data_root), str(one)).items():
        assert _cli_main(tool)(argv) == 0
    two.mkdir()
    ports = [_free_port(), _free_port()]
    mp.spawn(
        _torchrun_worker, args=(2, ports, ckpt, str(data_root), str(two)), nprocs=2
    )
    for tool in ("surface", "hessian"):
        assert (two / f"{tool}.stdout0").read_text().strip()  # rank 0 reports
        assert (two / f"{tool}.stdout1").read_text() == ""  # rank 1 prints nothing
    s1, s2 = (Surface.load(d / "surface" / "surface.npz") for d in (one, two))
    assert s2.meta["world_size"] == 2 and s1.meta["world_size"] == 1
    np.testing.assert_allclose(s2.loss, s1.loss, rtol=1e-12)
    np.testing.assert_array_equal(s2.accuracy, s1.accuracy)
    e1, e2 = (
        Eigenpairs.load(d / "hessian" / "eigenpairs_eps0.npz") for d in (one, two)
    )
    np.testing.assert_allclose(e2.eigenvalues, e1.eigenvalues, rtol=1e-6)
    for tool in ("surface", "hessian"):  # one set of outputs, no per-rank copies
        assert sorted(p.name for p in (two / tool).iterdir()) == sorted(
            p.name for p in (one / tool).iterdir()
        )

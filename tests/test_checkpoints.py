"""landscape.checkpoints: the one loader of trained models (files, run folders,
end-of-period ensembles) and the Ensemble model."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape import checkpoints, io, models

KW = {"in_shape": [4], "num_classes": 3, "hidden": [5]}


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return models.build("mlp", **KW)


def _run_folder(folder, periods: int = 2) -> list[nn.Module]:
    """A run folder as the trainer writes it: config.json, final.pt and one
    checkpoint per period (each holding its config)."""
    cfg = {"model": "mlp", "model_kwargs": KW, "dataset": {"name": "mnist"}}
    nets = [_net(s) for s in range(periods)]
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    for e, n in enumerate(nets, 1):
        torch.save(
            {"model": n.state_dict(), "config": cfg},
            folder / checkpoints.period_checkpoint(e),
        )
    torch.save({"model": nets[-1].state_dict(), "config": cfg}, folder / "final.pt")
    return nets


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values()))  # fmt: skip


def test_ensemble_averages_softmax():
    torch.manual_seed(0)
    members = [nn.Linear(5, 3) for _ in range(3)]
    x = torch.randn(7, 5)
    ens = checkpoints.Ensemble(members)
    probs = torch.stack([m(x).softmax(1) for m in members]).mean(0)
    torch.testing.assert_close(ens(x).exp(), probs, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ens(x).softmax(1), probs, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(
        checkpoints.Ensemble(members[:1])(x), F.log_softmax(members[0](x), 1)
    )
    with pytest.raises(ValueError, match="at least one"):
        checkpoints.Ensemble([])


def test_run_folder_final_members_and_ensemble(tmp_path):
    nets = _run_folder(tmp_path / "run")
    x = torch.randn(6, 4)
    final = checkpoints.load_model(tmp_path / "run")
    assert _same(final, nets[-1]) and not final.training
    members = checkpoints.load_members(tmp_path / "run")
    assert len(members) == 2 and all(_same(m, n) for m, n in zip(members, nets))
    ens = checkpoints.load_model(tmp_path / "run", ensemble=True)
    assert isinstance(ens, checkpoints.Ensemble) and not ens.training
    probs = torch.stack([n.eval()(x).softmax(1) for n in nets]).mean(0)
    torch.testing.assert_close(ens(x).softmax(1), probs)
    # a checkpoint file inside the folder: the architecture from the file's config
    one = checkpoints.load_model(tmp_path / "run" / checkpoints.period_checkpoint(1))
    assert _same(one, nets[0])
    # a given instance is the template (its weights are replaced, it is not changed)
    template = _net(7)
    before = {k: v.clone() for k, v in template.state_dict().items()}
    got = checkpoints.load_model(tmp_path / "run", template)
    assert _same(got, nets[-1]) and got is not template
    assert all(torch.equal(before[k], v) for k, v in template.state_dict().items())
    cfg = checkpoints.run_config(tmp_path / "run")
    assert checkpoints.recorded_dataset(cfg) == "mnist" and cfg["model"] == "mlp"


def test_files_with_arch_and_bare_state_dicts(tmp_path):
    net = _net(0)
    p = tmp_path / "w.pt"
    torch.save({"model": net.state_dict(), "arch": "mlp", "arch_kwargs": KW}, p)
    assert _same(checkpoints.load_model(p), net)
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="records no architecture .* - pass arch="):
        checkpoints.load_model(tmp_path / "sd.pt")
    got = checkpoints.load_model(tmp_path / "sd.pt", arch="mlp", arch_kwargs=KW)
    assert _same(got, net)
    with pytest.raises(ValueError, match="do not fit the architecture mlp"):
        checkpoints.load_model(tmp_path / "sd.pt", arch="mlp", arch_kwargs={**KW,
                                                                     "hidden": [6]})  # fmt: skip
    assert checkpoints.run_config(tmp_path / "sd.pt") == {}


@pytest.mark.parametrize(
    "make, call, error, needle",
    [
        (None, "model", FileNotFoundError, "does not exist"),
        ("empty", "model", FileNotFoundError, "not a run folder (no config.json)"),
        ("unfinished", "model", FileNotFoundError, "the run has not finished"),
        ("unfinished", "members", FileNotFoundError, "no end-of-period checkpoints"),
        ("file", "members", ValueError, "need a run folder"),
        ("tensor", "model", ValueError, "not a model checkpoint"),
    ],
)
def test_errors_say_what_to_do(tmp_path, make, call, error, needle):
    path = tmp_path / "x"
    if make == "empty":
        path.mkdir()
    elif make == "unfinished":
        path.mkdir()
        (path / "config.json").write_text('{"model": "mlp"}')
    elif make in ("file", "tensor"):
        torch.save(torch.zeros(3) if make == "tensor" else _net(0).state_dict(), path)
    load = checkpoints.load_members if call == "members" else checkpoints.load_model
    with pytest.raises(error, match=re.escape(needle)) as e:
        load(path)
    assert " - " in str(e.value)  # what went wrong - what to do (one CLI line)


def test_corrupt_config_names_the_file(tmp_path):
    _run_folder(tmp_path / "run")
    (tmp_path / "run" / "config.json").write_text('{"model": "ml')
    with pytest.raises(io.CorruptFileError, match="config.json"):
        checkpoints.load_model(tmp_path / "run")


@pytest.mark.parametrize(
    "cfg, name",
    [
        ({"dataset": {"name": "mnist", "num_train": 5}}, "mnist"),
        ({"dataset": "fashion-mnist"}, "fashion-mnist"),
        ({"dataset": None, "model_kwargs": {"dataset": "cifar10"}}, "cifar10"),
        ({}, None),
    ],
)
def test_recorded_dataset(cfg, name):
    assert checkpoints.recorded_dataset(cfg) == name

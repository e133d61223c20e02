"""The audit of issue 27, as tests: one section per family of what it found.

1. Non-finite values: NaN / inf inputs and weights are refused where they enter every
   public analysis; a value that turns non-finite during an analysis stops it with a
   message naming what and where; no result holding NaN / inf is saved or loaded;
   numbers that are not finite are refused where they enter (API and flags).
2. Validated once: attack values and their functions accept the same settings;
   ``Result.load`` checks the shapes its class declares; every loader handles an
   empty file.
3. Nothing computed and then lost: outputs are checked before the work; the
   library's partial file is locked and cleaned like the CLI's; SIGTERM stops a run
   after its current write, says where, and it resumes exactly.
4. Every message true: untrusted vs corrupt, trust offered only where the tool has
   it, no raw exception text for the listed inputs.

CLI cases run through ``main(argv)`` in-process (stderr captured: one line, exit 2,
no traceback), except where a signal or a second process is the point.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape import io, models

MLP_KW = {"in_shape": [1, 28, 28], "hidden": [8]}
NONFINITE = io.NonFiniteError


def _main(tool):
    import importlib

    mod = {"surface": "landscape.surface._cli"}.get(tool, f"landscape.{tool}.__main__")
    return importlib.import_module(mod).main


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.splitlines()
    lines = [ln for ln in err if ln.strip() and not ln.startswith("note: ")]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("error: ") and " - " in line, line
    assert "Traceback" not in line and "\x1b[" not in line, line
    return line


def _tiny(seed: int = 0):
    """A 3-class ReLU MLP on 1x6x6 images and 8 examples in [0, 1]."""
    torch.manual_seed(seed)
    model = models.build("mlp", in_shape=(1, 6, 6), num_classes=3, hidden=(5,))
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(8, 1, 6, 6, generator=g)
    y = torch.randint(0, 3, (8,), generator=g)
    return model.eval(), x, y


def _nan_inputs(x):
    x = x.clone()
    x[3, 0, 2, 2] = math.nan
    return x


def _nan_weights(model):
    m = copy.deepcopy(model)
    with torch.no_grad():
        next(p for n, p in m.named_parameters() if n.endswith("weight"))[0, 0] = (
            math.nan
        )
    return m


def _run_folder(folder: Path, model=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model = model or models.build("mlp", **MLP_KW)
    (folder / "config.json").write_text(
        json.dumps({"model": "mlp", "model_kwargs": MLP_KW})
    )
    torch.save({"model": model.state_dict()}, folder / "final.pt")
    return folder


# ================================================================ 1. non-finite values
def _ce():
    return torch.nn.CrossEntropyLoss()


def _dirs(model):
    from landscape import directions

    g = torch.Generator().manual_seed(0)
    return directions.random_directions(model, num=2, generator=g)


def _other(model):
    """A second endpoint for the curves (finite: the NaN is the first's)."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(0.5)
    return m


def _analyses(tmp_path):
    """name -> run(model, x, y): every public analysis, at its smallest setting."""
    from _helpers import tiny_train_config

    from landscape import (
        attacks,
        certify,
        connectivity,
        evaluate,
        hessian,
        report,
        scattering,
        surface,
        train,
    )

    pgd = attacks.PGD(eps=0.1, steps=2)
    return {
        "evaluate": lambda m, x, y: evaluate.evaluate(
            m,
            (x, y),
            attacks=[attacks.PGD(eps=0.1, steps=2, keep="best")],
            checks=False,
        ),  # fmt: skip
        "robust_accuracy": lambda m, x, y: evaluate.robust_accuracy(
            m, (x, y), eps=0.1, steps=2
        ),
        "perturb_batches": lambda m, x, y: attacks.perturb_batches(m, (x, y), pgd),
        "PGD": lambda m, x, y: pgd(m, x, y),
        "APGD": lambda m, x, y: attacks.APGD(eps=0.1, steps=2)(m, x, y),
        "Square": lambda m, x, y: attacks.Square(eps=0.1, queries=3)(m, x, y),
        "adversarial_train": lambda m, x, y: train.adversarial_train(
            m, (x, y), tiny_train_config(epochs=1, batch_size=8)
        ),
        "curve training": lambda m, x, y: train.adversarial_train(
            connectivity.CurveModel(m, _other(m), kind="bezier"),
            (x, y),
            tiny_train_config(epochs=1, batch_size=8),
        ),  # fmt: skip
        "scan_curve": lambda m, x, y: connectivity.scan_curve(
            m,
            _ce(),
            (x, y),
            connectivity.init_curve(m, _other(m), kind="line"),
            num=2,
        ),  # fmt: skip
        "scattering": lambda m, x, y: scattering.scattering(
            m, None, (x, y), attack=pgd, scales=[1e-2], num_directions=1
        ),
        "gradient_norms": lambda m, x, y: scattering.gradient_norms(
            m, None, (x, y), attack=pgd
        ),
        "top_eigenvalues": lambda m, x, y: hessian.top_eigenvalues(
            m, _ce(), [(x, y)], num=1, max_iter=3
        ),
        "trace": lambda m, x, y: hessian.trace(m, _ce(), [(x, y)], num_matvecs=2),
        "lanczos_density": lambda m, x, y: hessian.lanczos_density(
            m, _ce(), [(x, y)], max_iter=3, num_runs=1
        ),
        "hvp": lambda m, x, y: hessian.hvp(
            m, _ce(), [(x, y)], {n: torch.ones_like(p) for n, p in m.named_parameters()}
        ),
        "dense_hessian": lambda m, x, y: hessian.dense_hessian(m, _ce(), [(x, y)]),
        "loss_surface": lambda m, x, y: surface.loss_surface(
            m, _ce(), [(x, y)], _dirs(m), xs=[-1.0, 0.0, 1.0]
        ),
        "certify": lambda m, x, y: certify.certify(m, (x, y), eps=0.1),
        "build_report": lambda m, x, y: report.build_report(
            m, None, (x, y), eps=0.1, out_dir=tmp_path / "rep", sections=["curvature"]
        ),
    }


ANALYSES = [
    "evaluate",
    "robust_accuracy",
    "perturb_batches",
    "PGD",
    "APGD",
    "Square",
    "adversarial_train",
    "curve training",
    "scan_curve",
    "scattering",
    "gradient_norms",
    "top_eigenvalues",
    "trace",
    "lanczos_density",
    "hvp",
    "dense_hessian",
    "loss_surface",
    "certify",
    "build_report",
]


@pytest.mark.parametrize("name", ANALYSES)
@pytest.mark.parametrize("where", ["inputs", "weights"])
def test_nan_inputs_and_weights_are_refused_by_every_analysis(tmp_path, name, where):
    model, x, y = _tiny()
    run = _analyses(tmp_path)[name]
    if where == "inputs":
        with pytest.raises(
            NONFINITE, match=r"(batch 0 holds|the) inputs (x )?(that )?"
        ):
            run(model, _nan_inputs(x), y)
    else:
        with pytest.raises(NONFINITE, match=r"NaN or inf in its (weights|start|bend)"):
            run(_nan_weights(model), x, y)
    assert not (tmp_path / "rep" / "report.html").exists()


def test_inf_targets_and_images_without_channels_are_clear():
    from landscape import _batches

    lenet = models.build("lenet")
    with pytest.raises(ValueError, match=r"no channel dimension.*x.unsqueeze\(1\)"):
        list(
            _batches.as_batches(
                (torch.rand(4, 28, 28), torch.zeros(4).long()), model=lenet
            )
        )
    y = torch.tensor([0.0, math.inf])
    with pytest.raises(NONFINITE, match="targets that are not finite"):
        list(_batches.as_batches((torch.rand(2, 3), y)))
    x = torch.full((2, 3), math.inf)
    with pytest.raises(NONFINITE, match=r"0 NaN and 6 inf of 6 values; 2 of 2"):
        list(_batches.as_batches((x, torch.zeros(2).long())))


def test_a_loss_that_overflows_during_an_analysis_is_named():
    from landscape import hessian, surface

    model, x, y = _tiny()
    far = [{k: v * 1e38 for k, v in d.items()} for d in _dirs(model)]
    with pytest.raises(NONFINITE, match=r"grid point \d+ \(coefficients \[1.0, "):
        surface.loss_surface(model, _ce(), [(x, y)], far, xs=[0.0, 1.0])

    # finite loss, overflowing curvature: exp(w.x) with x = 1e3 (float32)
    lin = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.02)
    data = [(torch.full((2, 4), 1e3), torch.zeros(2, 1))]

    def exp_loss(out, _y):
        return out.exp().mean()

    with pytest.raises(
        NONFINITE, match="Hessian-vector products at Lanczos iteration 1"
    ):
        hessian.top_eigenvalues(lin, exp_loss, data, num=1, max_iter=3)
    with pytest.raises(NONFINITE, match=r"v\^T H v at probes 1 to 2 of 2 \("):
        hessian.trace(lin, exp_loss, data, num_matvecs=2, distribution="gaussian")
    with pytest.raises(NONFINITE, match="the Hessian"):
        hessian.dense_hessian(lin, exp_loss, data)


class _NanBack(torch.autograd.Function):
    """Identity forward, NaN input gradient (a sqrt of 0 in a model's forward)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * math.nan


class _Fragile(torch.nn.Module):
    """Finite at the clean inputs; NaN logits where a pixel exceeds 0.95 (``nan_at``)
    or a NaN input gradient everywhere (``nan_grad``)."""

    def __init__(self, kind: str):
        super().__init__()
        torch.manual_seed(0)
        self.kind, self.lin = kind, torch.nn.Linear(36, 3)

    def forward(self, x):
        if self.kind == "nan_grad":
            return self.lin(_NanBack.apply(x).flatten(1))
        out = self.lin(x.flatten(1))
        far = (x.flatten(1) > 0.95).any(1, keepdim=True)
        return torch.where(far, torch.full_like(out, math.nan), out)


def test_nan_during_attacks_evaluation_and_training_is_named():
    from _helpers import tiny_train_config

    from landscape import attacks, evaluate, train

    _, x, y = _tiny()
    x = 0.9 * x  # clean pixels below 0.95: the fragile model is finite there
    pgd, apgd = (
        attacks.PGD(eps=0.3, steps=3, keep="best"),
        attacks.APGD(eps=0.3, steps=3),
    )
    for atk in (pgd, apgd, attacks.Square(eps=0.3, queries=5)):
        with pytest.raises(NONFINITE, match=rf"outputs at the adversarial inputs of "
                           rf"{atk.name} at eps 0.3, batch 0"):  # fmt: skip
            evaluate.evaluate(_Fragile("nan_at"), (x, y), attacks=[atk], checks=False)
    for atk in (attacks.PGD(eps=0.3, steps=3), pgd, apgd, attacks.FGSM(eps=0.3)):
        with pytest.raises(NONFINITE, match="NaN or inf in the adversarial inputs"):
            atk(_Fragile("nan_grad"), x, y)  # sign(NaN) = 0 was a silent zero step
    with pytest.raises(NONFINITE, match="NaN or inf in the adversarial inputs"):
        evaluate.evaluate(_Fragile("nan_grad"), (x, y), attacks=[pgd], checks=False)
    with pytest.raises(train.DivergedError, match=r"attack returned NaN .*epoch 1, b"):
        train.adversarial_train(
            _Fragile("nan_grad"), (x, y), tiny_train_config(epochs=1, batch_size=8)
        )


def test_no_result_with_nan_is_saved_or_loaded(tmp_path):
    from landscape.hessian import Density, TraceEstimate
    from landscape.surface import Surface

    bad = Surface(xs=np.arange(3.0), ys=None, loss=np.array([0.0, np.nan, 1.0]))
    with pytest.raises(NONFINITE, match=r"cannot save the Surface: loss holds 1 NaN"):
        bad.save(tmp_path / "s.npz")
    assert not list(tmp_path.iterdir())  # nothing written, not even the sidecar
    # documented non-finite uses still save: NaN padding, inf from one probe
    Density(
        grid=np.arange(3.0), density=np.ones(3), nodes=np.array([[1.0, np.nan]]),
        weights=np.array([[1.0, np.nan]]),
    ).save(tmp_path / "d.npz")  # fmt: skip
    TraceEstimate(1.0, math.inf, -math.inf, math.inf, samples=np.ones(1)).save(
        tmp_path / "t.npz"
    )
    # a file edited to hold NaN is refused on load, naming file and array
    good = Surface(xs=np.arange(3.0), ys=None, loss=np.zeros(3)).save(
        tmp_path / "g.npz"
    )
    arrays, rest = io.read_result(good)
    arrays["loss"][1] = np.nan
    np.savez(good, **arrays, __meta__=np.array(json.dumps(rest)))
    with pytest.raises(
        io.CorruptFileError, match=r"g.npz is not a valid Surface: loss"
    ):
        Surface.load(good)


def test_numbers_that_are_not_finite_are_refused_where_they_enter():
    from landscape import _cli, surface

    p = _cli.Parser(prog="tool")
    p.add_argument("--x", type=float)
    p.add_argument("--eps", type=_cli.number)
    for argv in (["--x", "nan"], ["--x", "inf"], ["--x", "1e400"], ["--eps", "1e400"]):
        with pytest.raises(_cli.CLIError, match="not a finite number"):
            p.parse_args(argv)
    model, x, y = _tiny()
    with pytest.raises(
        NONFINITE, match=r"save_interval must be a finite number .*nan$"
    ):
        surface.loss_surface(
            model, _ce(), [(x, y)], _dirs(model), xs=[0.0], save_interval=math.nan
        )
    with pytest.raises(ValueError, match="xs must be finite"):
        surface.loss_surface(model, _ce(), [(x, y)], _dirs(model), xs=[math.inf])
    from landscape import attacks, hessian

    with pytest.raises(
        ValueError, match=r"alpha must be a finite number > 0 .*got inf"
    ):
        attacks.PGD(eps=0.1, alpha=math.inf)  # "must be > 0, got inf" was untrue
    for tol in (math.nan, math.inf):  # NaN was taken: the early stop never fired
        with pytest.raises(NONFINITE, match=r"tol must be a finite number"):
            hessian.trace(model, _ce(), [(x, y)], num_matvecs=2, tol=tol)
        with pytest.raises(NONFINITE, match=r"tol must be a finite number"):
            hessian.top_eigenvalues(model, _ce(), [(x, y)], tol=tol, max_iter=3)
        with pytest.raises(NONFINITE, match=r"tol must be a finite number"):
            hessian.top_eigenvalues(
                model, _ce(), [(x, y)], method="power", tol=tol, max_iter=3
            )
    v = {n: torch.full_like(p, math.nan) for n, p in model.named_parameters()}
    with pytest.raises(NONFINITE, match=r"the v passed has NaN or inf .* pass finite"):
        hessian.hvp(model, _ce(), [(x, y)], v)  # the caller's v, not an overflow


@pytest.mark.data
def test_cli_numbers_and_nan_checkpoints(tmp_path, data_root, capsys):
    model = models.build("mlp", **MLP_KW)
    nan = _nan_weights(model)
    torch.save({"model": nan.state_dict(), "arch": "mlp", "arch_kwargs": MLP_KW},
               tmp_path / "nan.pt")  # fmt: skip
    torch.save({"model": model.state_dict(), "arch": "mlp", "arch_kwargs": MLP_KW},
               tmp_path / "good.pt")  # fmt: skip
    ens = _run_folder(tmp_path / "ens", model)
    torch.save({"model": model.state_dict()}, ens / "ckpt_epoch0001.pt")
    torch.save({"model": nan.state_dict()}, ens / "ckpt_epoch0002.pt")
    root = ["--data-root", str(data_root), "--num-samples", "8", "--no-progress"]
    out = str(tmp_path / "o")
    cases = [
        ("evaluate", [str(tmp_path / "good.pt"), "--eps", "1e400", *root], "1e400"),
        (
            "evaluate",
            [str(ens), "--ensemble", "--eps", "0.1", *root, "--out", out],
            "ckpt_epoch0002.pt has NaN or inf in its weights",
        ),  # fmt: skip
        (
            "surface",
            [
                "compute",
                str(tmp_path / "good.pt"),
                *root,
                "--save-interval",
                "nan",
                "-o",
                out,
            ],
            "--save-interval",
        ),  # fmt: skip
        (
            "surface",
            ["compute", str(tmp_path / "good.pt"), "--grid", "0", "inf", "3"],
            "not a finite number",
        ),  # fmt: skip
        (
            "evaluate",
            [str(tmp_path / "nan.pt"), "--eps", "0.1", *root, "--out", out],
            "nan.pt has NaN or inf in its weights",
        ),  # fmt: skip
        (
            "hessian",
            [str(tmp_path / "nan.pt"), *root, "--out", out],
            "nan.pt has NaN or inf in its weights",
        ),  # fmt: skip
        (
            "scattering",
            [str(tmp_path / "nan.pt"), "--eps", "0", *root, "-o", out],
            "nan.pt has NaN or inf in its weights",
        ),  # fmt: skip
        (
            "surface",
            ["compute", str(tmp_path / "nan.pt"), *root, "-o", out],
            "nan.pt has NaN or inf in its weights",
        ),  # fmt: skip
    ]
    for tool, argv, needle in cases:
        assert _main(tool)(argv) == 2, (tool, argv)
        line = _one_line(capsys)
        assert needle in line, (tool, needle, line)
    assert not list(tmp_path.glob("o*"))


def test_a_published_checkpoint_with_nan_weights_is_refused(tmp_path):
    from landscape.models import load_published

    m = models.build("cifar_preact_resnet", dataset="cifar10")
    sd = {k: v for k, v in m.state_dict().items() if not k.startswith("normalize.")}
    first = next(k for k, v in sd.items() if v.is_floating_point())
    sd[first] = sd[first].clone().fill_(math.nan)
    torch.save({"state_dict": sd}, tmp_path / "ckpt.pt")
    with pytest.raises(NONFINITE, match=r"ckpt.pt has NaN or inf in its weights"):
        load_published(tmp_path / "ckpt.pt", "Wong2020Fast")  # loaded silently before


# ========================================================== 2. validated once
def test_every_attack_value_refuses_bad_settings_when_built():
    import dataclasses

    from landscape import attacks

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = torch.rand(2, 1, 2, 2), torch.tensor([0, 1])
    kinds = [
        attacks.PGD, attacks.FGSM, attacks.APGD, attacks.APGDT, attacks.FAB,
        attacks.FABT, attacks.Square, attacks.SimBA,
    ]  # fmt: skip
    bad = [
        {"eps": math.nan}, {"eps": math.inf}, {"eps": -0.1}, {"eps": 1e400},
        {"norm": "l3"}, {"steps": 0}, {"steps": 1.5}, {"restarts": 0},
        {"queries": 0}, {"alpha": math.nan}, {"alpha": -1.0}, {"eot_iter": 0},
    ]  # fmt: skip
    for cls in kinds:
        fields = {f.name for f in dataclasses.fields(cls)} - {"label"}
        for kw in bad:
            if set(kw) <= fields:
                with pytest.raises((ValueError, TypeError), match=next(iter(kw))):
                    cls(**{"eps": 0.1, **kw})
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        attacks.perturb_batches(model, (x, y), attacks.PGD(eps=0.1, steps=0))


def test_result_load_checks_the_declared_shapes(tmp_path):
    from landscape.certify import CertifyResult
    from landscape.surface import Surface

    r = CertifyResult(
        eps=np.array([0.1]), norm="linf", method="ibp",
        certified=np.zeros((1, 7), bool), clean_correct=np.ones(7, bool),
    )  # fmt: skip
    path = r.save(tmp_path / "c.npz")
    arrays, rest = io.read_result(path)
    bad = {**arrays, "certified": np.zeros((3, 7), bool)}
    np.savez(path, **bad, __meta__=np.array(json.dumps(rest)))
    with pytest.raises(
        io.CorruptFileError, match=r"c.npz .*certified has shape \(3, 7"
    ):
        CertifyResult.load(path)
    missing = {k: v for k, v in arrays.items() if k != "clean_correct"}
    np.savez(path, **missing, __meta__=np.array(json.dumps(rest)))
    with pytest.raises(io.CorruptFileError, match=r"c.npz misses clean_correct"):
        CertifyResult.load(path)
    with pytest.raises(ValueError, match=r"cannot save the Surface: loss has shape"):
        Surface(xs=np.arange(3.0), ys=np.arange(2.0), loss=np.zeros((3, 3))).save(
            tmp_path / "s.npz"
        )
    line = Surface(xs=np.arange(3.0), ys=None, loss=np.zeros(3)).save(tmp_path / "l")
    assert Surface.load(line).is_line  # "Y?": a line has no ys dimension


@pytest.mark.data
def test_an_empty_file_is_named_by_every_loader(tmp_path, data_root, capsys):
    from landscape import checkpoints, train

    (tmp_path / "zero.pt").write_bytes(b"")
    run = _run_folder(tmp_path / "run")
    (run / "final.pt").write_bytes(b"")
    for load in (
        lambda: io.load_torch(tmp_path / "zero.pt"),
        lambda: checkpoints.load_model(tmp_path / "zero.pt", arch="mlp"),
        lambda: checkpoints.load_model(run),
        lambda: checkpoints.run_config(tmp_path / "zero.pt"),
    ):
        with pytest.raises(io.CorruptFileError, match=r"is empty \(0 bytes\)"):
            load()
    train_run = tmp_path / "trun"
    train_run.mkdir()
    del train
    root = ["--data-root", str(data_root), "--num-samples", "8", "--no-progress"]
    for tool, argv in (
        ("evaluate", [str(run), "--eps", "0.1", *root, "--out", str(tmp_path / "e")]),
        ("hessian", [str(tmp_path / "zero.pt"), *root, "--out", str(tmp_path / "h")]),
        ("scattering", [str(run), "--eps", "0", *root, "-o", str(tmp_path / "s")]),
        ("surface", ["compute", str(run), *root, "-o", str(tmp_path / "f")]),
    ):
        assert _main(tool)(argv) == 2
        assert "is empty (0 bytes)" in _one_line(capsys), tool


# ============================================================ 3. nothing lost
@pytest.mark.data
def test_outputs_are_checked_before_any_work(tmp_path, data_root, capsys, monkeypatch):
    from landscape import checkpoints

    good = _run_folder(tmp_path / "good")
    (tmp_path / "afile").write_text("x")
    blocked = str(tmp_path / "afile" / "sub")  # a path through a file
    loads = []
    real = checkpoints.load_model
    monkeypatch.setattr(checkpoints, "load_model", lambda *a, **k: loads.append(a))
    root = ["--data-root", str(data_root), "--num-samples", "8", "--no-progress"]
    cases = [
        ("surface", ["compute", str(good), *root, "-o", blocked]),
        (
            "surface",
            [
                "compute",
                str(good),
                *root,
                "--partial",
                blocked + ".npz",
                "-o",
                str(tmp_path / "s"),
            ],
        ),  # fmt: skip
        ("scattering", [str(good), "--eps", "0", *root, "-o", blocked]),
        ("hessian", [str(good), *root, "--out", blocked]),
        ("evaluate", [str(good), "--eps", "0.1", *root, "--out", blocked]),
        ("plot", [str(tmp_path / "none.npz"), "-o", blocked]),
    ]
    for tool, argv in cases:
        assert _main(tool)(argv) == 2, tool
        line = _one_line(capsys)
        assert "afile is a file" in line and "choose another path" in line, line
    assert not loads  # no checkpoint was even loaded
    monkeypatch.setattr(checkpoints, "load_model", real)

    from landscape import surface

    model, x, y = _tiny()
    with pytest.raises(io.NotWritableError, match="partial_path: .*afile is a file"):
        surface.loss_surface(
            model, _ce(), [(x, y)], _dirs(model), xs=[0.0],
            partial_path=tmp_path / "afile" / "p.npz",
        )  # fmt: skip


def test_loss_surface_locks_and_cleans_its_partial_file_like_the_cli(tmp_path):
    from landscape import surface

    model, x, y = _tiny()
    part = tmp_path / "p.npz"

    def run():
        return surface.loss_surface(
            model, _ce(), [(x, y)], _dirs(model), xs=[0.0, 1.0], partial_path=part
        )

    with io.lock(part), pytest.raises(io.LockedError, match="in use by process"):
        run()  # the lock of another writer (here: this process's own) is honoured
    (tmp_path / ".p.npz.x1.tmp").write_bytes(b"half")  # a killed write's leftover
    run()
    assert not list(tmp_path.glob(".p.npz.*.tmp")) and part.exists()


_SURFACE_SCRIPT = """
import sys, torch
from landscape import directions, models, surface
torch.manual_seed(0)
model = models.build("mlp", in_shape=(1, 6, 6), num_classes=3, hidden=(5,))
g = torch.Generator().manual_seed(0)
x, y = torch.rand(8, 1, 6, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
d = directions.random_directions(model, num=2, generator=g)
if sys.argv[2] == "slow":  # each point sleeps, so that the parent can act mid-run
    import time
    loss_fn = lambda out, t: (time.sleep(0.05), torch.nn.functional.cross_entropy(out, t))[1]
else:
    loss_fn = torch.nn.CrossEntropyLoss()
xs = torch.linspace(-1, 1, 12).tolist()
s = surface.loss_surface(model, loss_fn, [(x, y)], d, xs=xs, partial_path=sys.argv[1],
                         save_interval=0, strategy="loop", batch_size=None)
print("done", float(s.loss.sum()))
"""


def _script(tmp_path, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    script = tmp_path / "surf.py"
    script.write_text(_SURFACE_SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_for(path: Path, proc, timeout=120.0):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, "the run never wrote its partial file"
        time.sleep(0.05)


@pytest.mark.slow
def test_loss_surface_partial_file_is_locked_and_cleaned_through_the_api(tmp_path):
    part = tmp_path / "p.npz"
    first = _script(tmp_path, str(part), "slow")
    _wait_for(part, first)
    second = _script(tmp_path, str(part), "fast")
    _, err = second.communicate(timeout=120)
    assert second.returncode != 0 and "in use by process" in err, err
    first.kill()  # kill -9 in the middle: temporary files may be left behind
    first.wait()
    (tmp_path / ".p.npz.left.tmp").write_bytes(b"half")  # as a killed write leaves
    again = _script(tmp_path, str(part), "fast")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert not list(tmp_path.glob(".p.npz*.tmp")), list(tmp_path.iterdir())
    clean = _script(tmp_path, str(tmp_path / "fresh.npz"), "fast")
    out2, _ = clean.communicate(timeout=300)
    assert out.split()[-1] == out2.split()[-1]  # resumed = computed in one go


_TRAIN_ARGV = [
    "mnist-lenet", "--smoke", "--num-train", "64", "--num-test", "8", "--epochs",
    "1", "--eval-num", "8", "--no-progress",
]  # fmt: skip


@pytest.mark.data
def test_sigterm_stops_the_train_cli_with_one_line_and_status_143(tmp_path, data_root):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LANDSCAPE_DATA": str(data_root)}
    run = tmp_path / "run"
    argv = [
        sys.executable, "-m", "landscape.train", "mnist-lenet", "--smoke",
        "--num-train", "256", "--batch-size", "16", "--num-test", "8", "--eval-num",
        "8", "--epochs", "2", "--no-progress", "--run-dir", str(run),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, text=True, stderr=subprocess.PIPE)
    _wait_for(run / "metrics.jsonl", proc)  # epoch 1 is done: stop in epoch 2
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 128 + signal.SIGTERM, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "stopped by SIGTERM" in lines[0] and "resume.pt" in lines[0], lines[0]
    assert re.search(r"training (at epoch 2, batch|after epoch 1)", lines[0]), lines[0]
    assert "rerun the same command to resume" in lines[0]
    assert not list(run.glob(".*.tmp")) and (run / "resume.pt").exists()


@pytest.mark.parametrize("at_step", [3, 4])  # mid-epoch, and the end of epoch 1
def test_sigterm_in_training_saves_that_step_and_resumes_exactly(tmp_path, at_step):
    from _helpers import tiny_train_config

    from landscape import train

    _, x, y = _tiny()
    x = x.repeat(4, 1, 1, 1)
    y = y.repeat(4)  # 32 examples: 2 batches of 16 per epoch

    def fresh():
        torch.manual_seed(1)
        return models.build("mlp", in_shape=(1, 6, 6), num_classes=3, hidden=(5,))

    cfg = tiny_train_config(epochs=3)
    ref = fresh()
    train.adversarial_train(ref, (x, y), cfg)

    def kill_at(info):
        if info["iteration"] == at_step:
            os.kill(os.getpid(), signal.SIGTERM)  # held until the step is done

    model = fresh()
    with pytest.raises(io.Interrupted) as e:
        train.adversarial_train(model, (x, y), cfg, run_dir=tmp_path, callback=kill_at)
    assert e.value.resumable and f"iteration {at_step})" in str(e.value), str(e.value)
    assert "resume.pt" in str(e.value)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
    model = fresh()
    train.adversarial_train(model, (x, y), cfg, run_dir=tmp_path)
    for a, b in zip(model.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)


class _KillAfter(torch.nn.Module):
    """Wraps a model; sends SIGTERM to this process at its ``n``-th forward (the
    signal lands in the middle of an analysis, as a ``kill`` from outside would)."""

    def __init__(self, model, n: int):
        super().__init__()
        self.model, self.n, self.calls = model, n, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.n:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.model(x)


def test_sigterm_in_evaluate_and_surface_saves_and_resumes_exactly(tmp_path):
    from landscape import attacks, evaluate, surface

    model, x, y = _tiny()
    x, y = x.repeat(3, 1, 1, 1), y.repeat(3)  # 3 batches of 8
    kw = dict(
        attacks=[attacks.PGD(eps=0.2, steps=3, keep="best"), attacks.FGSM(eps=0.2)],
        checks=False, batch_size=8, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    count = _KillAfter(model, 0)  # counts the forwards of a whole run
    ref = evaluate.evaluate(count, (x, y), **kw)
    state = tmp_path / "ev.state.pt"
    with io.stop_signals(), pytest.raises(io.Interrupted) as e:
        kw["generator"] = torch.Generator().manual_seed(0)
        kill = _KillAfter(model, int(0.6 * count.calls))  # in a later batch
        evaluate.evaluate(kill, (x, y), state_path=state, **kw)
    assert e.value.resumable and "(eps, attack, batch) steps" in str(e.value)
    assert str(state) in str(e.value) and state.exists()
    kw["generator"] = torch.Generator().manual_seed(0)
    got = evaluate.evaluate(model, (x, y), state_path=state, **kw)
    assert np.array_equal(got.robust_correct, ref.robust_correct)
    assert np.array_equal(got.broken_by, ref.broken_by)
    torch.save([1, 2], state)  # the tool's own file, not a state: a clear error
    with pytest.raises(io.CorruptFileError, match="is not an evaluation state"):
        evaluate.evaluate(model, (x, y), state_path=state, **kw)

    count = _KillAfter(model, 0)  # the wrapper's names: model.body...
    d, xs = _dirs(count), np.linspace(-1, 1, 5)
    plain = surface.loss_surface(count, _ce(), [(x, y)], d, xs=xs, strategy="loop")
    part = tmp_path / "p.npz"
    with io.stop_signals(), pytest.raises(io.Interrupted) as e:
        surface.loss_surface(
            _KillAfter(model, count.calls // 2), _ce(), [(x, y)], d, xs=xs,
            strategy="loop", partial_path=part, save_interval=1e9,
        )  # fmt: skip
    assert e.value.resumable and f"saved in {part}" in str(e.value), str(e.value)
    done = int(np.load(part)["done"].sum())
    assert 0 < done < 25, done
    again = surface.loss_surface(
        _KillAfter(model, 0), _ce(), [(x, y)], d, xs=xs, strategy="loop",
        partial_path=part,
    )  # fmt: skip
    np.testing.assert_allclose(again.loss, plain.loss, rtol=1e-6)


def test_sigterm_in_the_checks_of_evaluate_says_the_attacks_are_saved(tmp_path):
    from landscape import attacks, evaluate

    model, x, y = _tiny()
    kw = dict(
        attacks=[attacks.PGD(eps=0.2, steps=2, keep="best")], batch_size=8,
        check_samples=4,
    )  # fmt: skip

    def gen():
        return torch.Generator().manual_seed(0)

    attacks_only = _KillAfter(model, 0)
    evaluate.evaluate(attacks_only, (x, y), checks=False, generator=gen(), **kw)
    ref = evaluate.evaluate(model, (x, y), checks=True, generator=gen(), **kw)
    state = tmp_path / "ev.state.pt"
    kill = _KillAfter(model, attacks_only.calls + 2)  # in the checks, after the attacks
    with io.stop_signals(), pytest.raises(io.Interrupted) as e:
        evaluate.evaluate(
            kill, (x, y), checks=True, state_path=state, generator=gen(), **kw
        )
    msg = str(e.value)  # was "stopped by SIGTERM - nothing was saved: ... start over"
    assert e.value.resumable and "in the gradient-masking checks, after 1 of 1" in msg
    assert str(state) in msg and "to resume" in msg, msg
    got = evaluate.evaluate(
        model, (x, y), checks=True, state_path=state, generator=gen(), **kw
    )
    assert np.array_equal(got.robust_correct, ref.robust_correct)
    assert got.checks == ref.checks


def test_sigterm_in_a_report_section_names_the_cached_ones(tmp_path):
    import dataclasses

    from landscape import report

    model, x, y = _tiny()
    tiny = dataclasses.replace(
        report.BUDGETS["quick"], eval_num=8, hessian_num=8, num_eigenvalues=1,
        density_max_iter=4, surface_num=8, grid=3,
    )  # fmt: skip
    kw = dict(eps=0.1, budget=tiny, generator=torch.Generator().manual_seed(0))
    first = _KillAfter(model, 0)
    report.build_report(first, None, (x, y), out_dir=tmp_path / "a",
                        sections=["curvature"], **kw)  # fmt: skip
    kw["generator"] = torch.Generator().manual_seed(0)
    out = tmp_path / "b"
    kill = _KillAfter(model, first.calls + 2)  # in the surface section
    with io.stop_signals(), pytest.raises(io.Interrupted) as e:
        report.build_report(kill, None, (x, y), out_dir=out,
                            sections=["curvature", "surface"], **kw)  # fmt: skip
    msg = str(e.value)  # was "stopped by SIGTERM - nothing was saved: ... start over"
    assert e.value.resumable and "in the surface section (loss_surface after" in msg
    assert "partial.npz); curvature cached in" in msg, msg
    kw["generator"] = torch.Generator().manual_seed(0)
    again = report.build_report(_KillAfter(model, 0), None, (x, y), out_dir=out,
                                sections=["curvature", "surface"], **kw)  # fmt: skip
    assert again.cached == ("curvature",)


def test_signals_never_cut_an_atomic_write(tmp_path):
    target = tmp_path / "f.txt"
    with io.stop_signals(), pytest.raises(io.Interrupted) as e:
        with io.atomic_write(target, "w") as f:
            f.write("first half ")
            os.kill(os.getpid(), signal.SIGTERM)  # held until the file is in place
            f.write("second half")
    assert target.read_text() == "first half second half"
    assert e.value.signal == "SIGTERM" and e.value.exit_status == 143
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored


# ========================================================= 4. every message true
def test_untrusted_is_not_corrupt_and_trust_loads_it(tmp_path):
    with open(tmp_path / "plain.pt", "wb") as f:
        pickle.dump({"w": np.arange(3)}, f)
    torch.save({"rng": np.random.default_rng(0)}, tmp_path / "np.pt")
    for name in ("plain.pt", "np.pt"):
        with pytest.raises(io.UntrustedFileError) as e:
            io.load_torch(tmp_path / name)
        msg = str(e.value)
        assert "could run code" in msg and "corrupt or truncated" not in msg, msg
        assert "trust=True" in msg and "--trust-checkpoint" not in msg
        with pytest.warns(UserWarning, match="weights_only=False"):
            assert io.load_torch(tmp_path / name, trust=True)
    with pytest.raises(io.UntrustedFileError) as e:
        io.load_torch(tmp_path / "np.pt", kind="state")
    assert "trust=True" not in str(e.value) and "state_dict" not in str(e.value)
    assert "delete it" in str(e.value)
    half = tmp_path / "half.pt"
    torch.save({"w": torch.zeros(3)}, half)
    half.write_bytes(half.read_bytes()[:40])
    with pytest.raises(io.CorruptFileError, match="corrupt or truncated") as e:
        io.load_torch(half)
    assert "\x1b[" not in str(e.value)


@pytest.mark.data
def test_each_message_offers_only_what_the_tool_takes(tmp_path, data_root, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"model": models.build("mlp", **MLP_KW)}, evil)
    run = _run_folder(tmp_path / "run")
    torch.save(models.build("mlp", **MLP_KW), run / "final.pt")
    root = ["--data-root", str(data_root), "--num-samples", "8", "--no-progress"]
    for tool, argv, trust in (
        ("hessian", [str(evil), *root, "--out", str(tmp_path / "h")], True),
        (
            "connectivity",
            [
                "scan",
                "--line",
                str(run),
                str(run),
                "--out",
                str(tmp_path / "c"),
                *root,
            ],
            False,
        ),  # fmt: skip
    ):
        assert _main(tool)(argv) == 2
        line = _one_line(capsys)
        assert "could run code" in line
        assert ("--trust-checkpoint" in line) == trust, (tool, line)
    trun = tmp_path / "trun"
    argv = [*_TRAIN_ARGV, "--data-root", str(data_root), "--run-dir", str(trun)]
    assert _main("train")(argv) == 0
    capsys.readouterr()
    torch.save({"format": 1, "x": models.build("mlp", **MLP_KW)}, trun / "resume.pt")
    assert _main("train")(argv) == 2
    line = _one_line(capsys)
    assert "state file" in line and "delete it" in line, line
    assert "--trust-checkpoint" not in line and "state_dict" not in line, line


@pytest.mark.data
def test_raw_messages_no_longer_reach_the_user(tmp_path, data_root, capsys):
    good = _run_folder(tmp_path / "good")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    root = ["--data-root", str(data_root), "--num-samples", "8", "--no-progress"]
    cases = [
        (
            "hessian",
            [str(good), *root, "--device", "cuda:7", "--out", str(tmp_path / "h")],
            "--device cuda:7: this machine cannot use it",
        ),  # fmt: skip
        (
            "hessian",
            [
                str(good),
                *root,
                "--arch",
                "mlp",
                "--arch-kwargs",
                '{"width": "x"}',
                "--out",
                str(tmp_path / "h"),
            ],
            "width (a factor on the widths) must be a number, got 'x'",
        ),  # fmt: skip
        (
            "train",
            [*_TRAIN_ARGV, *root[:2], "--run-dir", str(tmp_path / "dangling")],
            "dangling is a symlink to",
        ),  # fmt: skip
        (
            "train",
            [*_TRAIN_ARGV, *root[:2], "--run-dir", str(tmp_path / "loop")],
            "loop is a symlink that points back to itself",
        ),  # fmt: skip
    ]
    for tool, argv, needle in cases:
        assert _main(tool)(argv) == 2, (tool, argv)
        line = _one_line(capsys)
        assert needle in line, (needle, line)


@pytest.mark.data
def test_a_truncated_connectivity_record_is_named(tmp_path, data_root, capsys):
    run = _run_folder(tmp_path / "run")
    curve = tmp_path / "curve"
    curve.mkdir()
    (curve / "endpoints.json").write_text('{"a": {"path": "')
    root = ["--data-root", str(data_root), "--num-samples", "8", "--no-progress"]
    argv = ["scan", str(curve), "--out", str(tmp_path / "c"), *root]
    assert _main("connectivity")(argv) == 2
    line = _one_line(capsys)
    assert "endpoints.json is truncated or not valid JSON" in line, line
    (curve / "endpoints.json").write_text('{"b": 1}')
    assert _main("connectivity")(argv) == 2
    assert "endpoints.json does not record the endpoints" in _one_line(capsys)
    del run


def test_library_messages_name_the_right_thing(tmp_path):
    from landscape import train

    with pytest.raises(FileNotFoundError, match=r"nope does not exist - pass the run"):
        train.load_run(tmp_path / "nope")
    (tmp_path / "afile").write_text("x")
    model, x, y = _tiny()
    from _helpers import tiny_train_config

    with pytest.raises(io.NotWritableError, match="run_dir .*afile is a file, not a"):
        train.adversarial_train(
            model, (x, y), tiny_train_config(epochs=1), run_dir=tmp_path / "afile"
        )

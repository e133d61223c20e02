"""Safety (issue 12): untrusted files never run code, nothing half-written is trusted,
run folders and state files are locked, every CLI error is one line with exit 2."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch
from _helpers import tiny_train_config

from landscape import io, models, train

MLP_KW = {"in_shape": [1, 28, 28], "hidden": [8]}


class _Payload:
    """Unpickling it calls ``open(marker, "w")``: it would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def evil(tmp_path):
    """``evil(path, wrap=True)`` writes a code-running pickle to ``path``."""
    marker = tmp_path / "MARKER"

    def write(path, wrap=True):
        obj = {"model": _Payload(marker), "config": {"model": "mlp"}} if wrap else None
        torch.save(obj if wrap else _Payload(marker), path)
        return path

    write.marker = marker
    return write


def _run_folder(folder, model=None, *, periods=0):
    """A minimal run folder of landscape.train: config.json + final.pt (+ members)."""
    folder.mkdir(parents=True, exist_ok=True)
    model = model or models.build("mlp", **MLP_KW)
    (folder / "config.json").write_text(
        json.dumps({"model": "mlp", "model_kwargs": MLP_KW})
    )
    torch.save({"model": model.state_dict()}, folder / "final.pt")
    for i in range(periods):
        torch.save({"model": model.state_dict()}, folder / f"ckpt_epoch{i + 1:04d}.pt")
    return folder


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.splitlines()
    lines = [ln for ln in err if ln.strip() and not ln.startswith("note: ")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and " - " in lines[0], lines[0]
    assert "Traceback" not in lines[0]
    return lines[0]


def _main(tool):
    import importlib

    return importlib.import_module(f"landscape.{tool}.__main__").main


# --------------------------------------------------------------- code-running pickles
_EVAL = ["--dataset", "mnist", "--num-samples", "10", "--eps", "0.1", "--no-checks"]
_HESS = ["--num-samples", "10", "--num-eigenvalues", "1"]
_SCAT = ["--num-samples", "10", "--eps", "0", "--num-directions", "1"]
_TRAIN = ["mnist-lenet", "--smoke", "--num-train", "16", "--num-test", "8"]


def _cli_cases(tmp_path, evil, data_root):
    """(name, tool, argv) for every CLI loader path of issue 12."""
    ev = evil(tmp_path / "evil.pt")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps({"model": "mlp", "model_kwargs": MLP_KW})
    )
    evil(run / "final.pt")
    ens = _run_folder(tmp_path / "ens")
    evil(ens / "ckpt_epoch0001.pt")
    good = _run_folder(tmp_path / "good")
    torch.save(
        {
            "model": models.build("mlp", **MLP_KW).state_dict(),
            "arch": "mlp",
            "arch_kwargs": MLP_KW,
        },
        tmp_path / "good.pt",
    )
    root = ["--data-root", str(data_root)]
    out = str(tmp_path / "out")
    evil(tmp_path / "ev_linf.state.pt")
    evil(tmp_path / "data.pt", wrap=False)
    evil(tmp_path / "dirs.pt", wrap=False)
    surf = [
        "compute",
        str(tmp_path / "good.pt"),
        "--dataset",
        "mnist",
        *root,
        "--num-samples",
        "10",
        "--grid",
        "-1",
        "1",
        "3",
        "-o",
        out + ".npz",
    ]
    return [
        ("evaluate file", "evaluate", [str(ev), *_EVAL, *root, "--out", out]),
        ("evaluate run folder", "evaluate", [str(run), *_EVAL, *root, "--out", out]),
        (
            "evaluate --ensemble",
            "evaluate",
            [str(ens), "--ensemble", *_EVAL, *root, "--out", out],
        ),
        (
            "evaluate state file",
            "evaluate",
            [str(good), *_EVAL, *root, "--out", str(tmp_path / "ev")],
        ),
        ("hessian file", "hessian", [str(ev), *_HESS, *root, "--out", out]),
        ("hessian run folder", "hessian", [str(run), *_HESS, *root, "--out", out]),
        ("surface CHECKPOINT", "surface", ["compute", str(ev), *surf[2:]]),
        ("surface --data", "surface", [*surf, "--data", str(tmp_path / "data.pt")]),
        (
            "surface --directions",
            "surface",
            [*surf, "--directions", str(tmp_path / "dirs.pt")],
        ),
        ("surface --to", "surface", [*surf, "--to", str(ev)]),
        ("scattering file", "scattering", [str(ev), *_SCAT, *root, "-o", out]),
        ("scattering run folder", "scattering", [str(run), *_SCAT, *root, "-o", out]),
    ]


@pytest.mark.data
def test_no_cli_loader_runs_a_pickled_payload(tmp_path, evil, data_root, capsys):
    for name, tool, argv in _cli_cases(tmp_path, evil, data_root):
        rc = _main(tool)(argv)
        assert not evil.marker.exists(), f"{name}: the pickle ran code"
        assert rc == 2, name
        line = _one_line_error(capsys)
        assert "pickled" in line, (name, line)
        if "state file" in name:  # the tool's own file: never loaded with trust
            assert "--trust-checkpoint" not in line and "state_dict" not in line
            assert "delete it" in line, (name, line)
        else:
            assert "--trust-checkpoint" in line, (name, line)


def test_no_library_loader_runs_a_pickled_payload(tmp_path, evil):
    from landscape import checkpoints

    ev = evil(tmp_path / "evil.pt")
    run = tmp_path / "run"
    _run_folder(run, periods=1)
    evil(run / "final.pt")
    evil(run / "ckpt_epoch0001.pt")
    for load in (
        lambda: io.load_torch(ev),
        lambda: checkpoints.load_model(ev, models.build("mlp", **MLP_KW)),
        lambda: checkpoints.load_model(run),
        lambda: checkpoints.load_model(run, ensemble=True),
        lambda: checkpoints.load_members(run),
        lambda: checkpoints.load_model(ev),
        lambda: checkpoints.run_config(ev),
        lambda: io.load_torch(evil(tmp_path / "legacy.pt", wrap=False)),
    ):
        with pytest.raises(io.UntrustedFileError, match="could run code"):
            load()
        assert not evil.marker.exists()


def _tiny_train(run_dir, **kw):
    from landscape.train import adversarial_train

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(32, 1, 6, 6, generator=g), torch.randint(0, 2, (32,), generator=g)
    model = models.build("mlp", in_shape=(1, 6, 6), num_classes=2, hidden=(4,))
    from landscape import attacks

    attack = attacks.PGD(eps=0.1, steps=1)
    cfg = tiny_train_config(epochs=1, optimizer="sgd", attack=attack, **kw)
    return adversarial_train(model, (x, y), cfg, run_dir=run_dir)


@pytest.mark.parametrize("name", ["resume.pt", "init.pt"])
def test_adversarial_train_resume_refuses_a_pickled_payload(tmp_path, evil, name):
    _tiny_train(tmp_path)
    evil(tmp_path / name, wrap=False)
    with pytest.raises(io.UntrustedFileError):
        _tiny_train(tmp_path)
    assert not evil.marker.exists()


@pytest.mark.data
@pytest.mark.parametrize("name", ["resume.pt", "init.pt"])
def test_train_cli_resume_refuses_a_pickled_payload(
    tmp_path, evil, data_root, capsys, name
):
    argv = [
        *_TRAIN,
        "--epochs",
        "1",
        "--eval-num",
        "8",
        "--data-root",
        str(data_root),
        "--run-dir",
        str(tmp_path / "run"),
        "--no-progress",
    ]
    main = _main("train")
    (tmp_path / "run").mkdir()
    stale = tmp_path / "run" / ".resume.pt.abc123.tmp"  # left by a killed write
    stale.write_bytes(b"x" * 100)
    assert main(argv) == 0
    assert not stale.exists()  # cleaned on the next open of the folder
    capsys.readouterr()
    evil(tmp_path / "run" / name, wrap=False)
    assert main(argv) == 2
    assert not evil.marker.exists()
    assert "pickled" in _one_line_error(capsys)


def test_trust_opt_in_loads_a_whole_module_with_a_warning(tmp_path):
    from landscape import checkpoints

    net = models.build("mlp", **MLP_KW)
    torch.save(net, tmp_path / "m.pt")
    with pytest.raises(io.UntrustedFileError) as e:
        checkpoints.load_model(tmp_path / "m.pt")
    msg = str(e.value)
    assert "whole pickled nn.Module" in msg and "state_dict()" in msg
    assert "models.build" in msg and "trust=True" in msg
    assert "--trust-checkpoint" not in msg  # a Python caller has no flags
    with pytest.warns(UserWarning, match="weights_only=False"):
        got = checkpoints.load_model(tmp_path / "m.pt", trust=True)
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(got(x), net.eval()(x))


def test_numpy_state_and_plain_types_still_load(tmp_path):
    state = {"numpy": np.random.get_state(), "x": np.float64(1.5), "rows": [{"a": 1}]}
    torch.save(state, tmp_path / "s.pt")
    got = io.load_torch(tmp_path / "s.pt")
    np.testing.assert_array_equal(got["numpy"][1], state["numpy"][1])
    assert got["x"] == 1.5 and got["rows"] == [{"a": 1}]


# ------------------------------------------------------------ nothing half-written
def test_new_npz_with_old_sidecar_loads_the_new_result(tmp_path):
    from landscape.surface import Surface

    def surf(label):
        return Surface(
            xs=np.arange(3.0), ys=None, loss=np.full(3, label), meta={"label": label}
        )

    p = surf(1.0).save(tmp_path / "s.npz")
    old = (tmp_path / "s.npz.json").read_text()
    surf(2.0).save(p)
    (tmp_path / "s.npz.json").write_text(old)  # killed between the two writes
    got = Surface.load(p)
    assert got.meta["label"] == 2.0 and got.loss[0] == 2.0
    (tmp_path / "s.npz.json").unlink()  # the npz alone is the result
    assert Surface.load(p).meta["label"] == 2.0


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_outputs_honour_the_umask(tmp_path, mask, mode):
    from landscape.surface import Surface

    old = os.umask(mask)
    try:
        p = Surface(xs=np.arange(3.0), ys=None, loss=np.zeros(3)).save(
            tmp_path / "s.npz"
        )
        io.atomic_save_torch({"a": torch.zeros(1)}, tmp_path / "a.pt")
    finally:
        os.umask(old)
    for f in (p, tmp_path / "s.npz.json", tmp_path / "a.pt"):
        assert stat.S_IMODE(f.stat().st_mode) == mode, f


def test_lock_names_the_holder_and_takes_over_dead_pids(tmp_path):
    with io.lock(tmp_path) as lock_file:
        assert lock_file.read_text().startswith(f"{os.getpid()}@")
        with pytest.raises(io.LockedError, match=f"process {os.getpid()}@"):
            with io.lock(tmp_path):
                pass
    assert not (tmp_path / ".lock").exists()
    (tmp_path / ".lock").write_text("999999999@elsewhere\n")  # a killed holder's lock
    (tmp_path / ".final.pt.x1.tmp").write_text("half")
    with io.lock(tmp_path) as lock_file:
        assert lock_file.read_text().startswith(f"{os.getpid()}@")
        assert not (tmp_path / ".final.pt.x1.tmp").exists()
    state = tmp_path / "ev_linf.state.pt"
    with io.lock(state), pytest.raises(io.LockedError, match=str(state)):
        with io.lock(state):
            pass


@pytest.mark.data
def test_second_process_on_a_run_folder_or_state_file_is_refused(
    tmp_path, data_root, capsys
):
    run = tmp_path / "run"
    run.mkdir()
    argv = [
        *_TRAIN,
        "--data-root",
        str(data_root),
        "--run-dir",
        str(run),
    ]
    with io.lock(run):
        assert _main("train")(argv) == 2
    line = _one_line_error(capsys)
    assert f"in use by process {os.getpid()}@" in line
    assert not (run / "config.json").exists()
    good = _run_folder(tmp_path / "good")
    state = tmp_path / "ev_linf.state.pt"
    with io.lock(state):
        argv = [
            str(good),
            *_EVAL,
            "--data-root",
            str(data_root),
            "--out",
            str(tmp_path / "ev"),
        ]
        assert _main("evaluate")(argv) == 2
    assert f"in use by process {os.getpid()}@" in _one_line_error(capsys)


@pytest.mark.data
def test_surface_save_interval_and_partial_lock(
    tmp_path, data_root, monkeypatch, capsys
):
    from landscape import surface

    seen = {}
    real = surface.loss_surface

    def spy(*a, **kw):
        seen.update(kw)
        return real(*a, **kw)

    monkeypatch.setattr(surface, "loss_surface", spy)
    _run_folder(tmp_path / "run")
    part = tmp_path / "part.npz"
    argv = [
        "compute",
        str(tmp_path / "run"),
        "--data-root",
        str(data_root),
        "--num-samples",
        "8",
        "--grid",
        "-1",
        "1",
        "2",
        "--partial",
        str(part),
        "--save-interval",
        "0",
        "-o",
        str(tmp_path / "s.npz"),
        "--no-progress",
    ]
    assert _main("surface")(argv) == 0
    assert seen["save_interval"] == 0.0 and seen["partial_path"] == part
    with io.lock(part):
        assert _main("surface")(argv) == 2
    assert "in use by process" in _one_line_error(capsys)


# ---------------------------------------------------------------- one-line CLI errors
def _error_cases(tmp_path, data_root):
    root = ["--data-root", str(data_root)]
    good = _run_folder(tmp_path / "good")
    (tmp_path / "afile").write_text("x")
    trunc = _run_folder(tmp_path / "trunc")
    (trunc / "config.json").write_text('{"model": "ml')
    badm = tmp_path / "badmetrics"
    badm.mkdir()
    (badm / "metrics.jsonl").write_text('{"epoch": 1}\n{"epo')
    sd = tmp_path / "sd.pt"
    torch.save(models.build("mlp", **MLP_KW).state_dict(), sd)
    oldnpz = tmp_path / "old.npz"  # an npz without the metadata of a saved result
    np.savez(oldnpz, loss=np.zeros(3))
    noload = tmp_path / "noload.npz"
    np.savez(noload, __meta__=np.array(json.dumps({"__class__": "TrainConfig"})))
    ev = ["--eps", "0.1", "--num-samples", "10", *root, "--out", str(tmp_path / "e")]
    train_args = ["mnist-lenet", "--smoke", *root]
    surf = [
        "compute",
        str(good),
        *root,
        "--num-samples",
        "8",
        "-o",
        str(tmp_path / "s.npz"),
    ]
    return [
        ("train", [*train_args, "--run-dir", str(tmp_path / "afile")], "is a file"),
        ("train", [*train_args, "--num-train", "0"], "--num-train"),
        ("train", [*train_args, "--run-dir", str(badm)], "metrics.jsonl"),
        ("train", [*train_args, "--run-dir", str(trunc)], "trunc/config.json"),
        ("evaluate", [str(trunc), *ev], "trunc/config.json"),
        ("evaluate", [str(tmp_path / "nope" / "run"), *ev], "does not exist"),
        ("evaluate", [str(good / "final.pt"), "--ensemble", *ev], "run folder"),
        ("hessian", [str(sd), "--num-eigenvalues", "-1"], "--num-eigenvalues"),
        (
            "hessian",
            [str(sd), "--arch", "lenet", *root],
            "sd.pt do not fit the architecture",
        ),
        ("hessian", [str(sd), *root], "--arch"),
        ("surface", [*surf, "--grid", "-1", "1", "2.7"], "NUM=2.7"),
        ("surface", [], "compute"),
        ("plot", [str(oldnpz), "-o", str(tmp_path / "x.png")], "holds no metadata"),
        ("plot", [str(noload), "-o", str(tmp_path / "x.png")], "not a saved"),
        ("plot", [str(tmp_path / "none.npz"), "-o", str(tmp_path / "x.png")], "none"),
        (
            "scattering",
            [str(good), "--eps", "0", "-o", "x.npz", "--num-samples", "0"],
            "--num-samples",
        ),
    ]


@pytest.mark.data
def test_every_cli_error_is_one_line_with_exit_2(tmp_path, data_root, capsys):
    for tool, argv, needle in _error_cases(tmp_path, data_root):
        rc = _main(tool)(argv)
        line = _one_line_error(capsys)
        assert rc == 2, (tool, argv)
        assert needle in line, (tool, needle, line)
    assert not (tmp_path / "nope").exists()


def test_debug_shows_the_traceback(tmp_path, monkeypatch):

    main = _main("hessian")
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist"):
        main([str(tmp_path / "missing.pt"), "--debug"])
    monkeypatch.setenv("LANDSCAPE_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main([str(tmp_path / "missing.pt")])


def test_shared_flags_and_no_hidden_spellings():
    from landscape import _cli
    from landscape.hessian._cli import _parser as hessian_parser

    p = hessian_parser()
    for old in (
        ["--num", "7"],
        ["--model", "lenet"],
        ["--progress"],
        ["--progressbar"],
    ):
        with pytest.raises(_cli.CLIError, match="unrecognized arguments"):
            p.parse_args(["ck", *old])
    a = p.parse_args(["ck", "--num-samples", "9", "--arch", "mlp", "--no-progress"])
    assert (a.num_samples, a.arch, a.progress) == (9, "mlp", False)
    assert _cli.progress(p.parse_args(["ck"])) is False  # stderr is not a terminal
    for mod in ("hessian", "scattering", "evaluate", "train", "plot"):
        import importlib

        assert "main" not in getattr(
            importlib.import_module(f"landscape.{mod}"), "__all__", []
        )


# ------------------------------------------------------------------- data root
def test_data_root_defaults_to_one_per_user_cache(tmp_path, monkeypatch):
    from landscape import data

    monkeypatch.delenv("LANDSCAPE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    if os.name == "posix" and not os.uname().sysname == "Darwin":
        assert data.resolve_root() == tmp_path / "xdg" / "landscape"
    assert data.resolve_root() == data.default_root()
    assert not data.resolve_root().is_relative_to(tmp_path / "data")
    monkeypatch.setenv("LANDSCAPE_DATA", str(tmp_path / "mine"))
    assert data.resolve_root() == tmp_path / "mine"


def test_offline_demo_fails_in_one_line_and_leaves_no_empty_folder(
    tmp_path, monkeypatch, capsys, caplog
):
    from landscape import data

    monkeypatch.setitem(data.MIRRORS, "mnist", [f"file://{tmp_path}/offline/"])
    root = tmp_path / "cache"
    argv = ["--smoke", "--data-root", str(root), "--out", str(tmp_path / "demo")]
    with caplog.at_level("WARNING", logger="landscape.data"):
        assert _main("demo")([*argv, "--no-progress"]) == 2
    line = _one_line_error(capsys)
    assert "mnist files missing" in line
    assert "python -m landscape.data download mnist" in line
    assert not root.exists()  # no empty cache/mnist/ left behind
    assert f"downloading mnist into {root / 'mnist'}" in caplog.text


def test_library_run_readers_name_a_truncated_file(tmp_path):
    run = _run_folder(tmp_path / "run")
    (run / "config.json").write_text('{"model": "ml')
    from landscape import checkpoints

    for load in (checkpoints.load_model, train.load_run):
        with pytest.raises(io.CorruptFileError, match="run/config.json"):
            load(run)
    _run_folder(run)
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n{"ep')
    with pytest.raises(io.CorruptFileError, match=r"metrics.jsonl .*line 2"):
        train.load_run(run)

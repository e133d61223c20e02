"""Every long step says where it is (issue 28): a bar on a terminal, plain lines in a
log (``landscape._progress``), for every long loop of the library and every tool."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from torch import nn

from landscape import _progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Log:
    """What the code under test wrote to stderr, which is captured (not a terminal)."""

    def __init__(self, capsys):
        self.capsys, self.text = capsys, ""

    def getvalue(self) -> str:
        self.text += self.capsys.readouterr().err
        return self.text


@pytest.fixture
def log(capsys, monkeypatch):
    """stderr goes to a log, not a terminal; a progress line at every step."""
    monkeypatch.setenv(_progress.INTERVAL_ENV, "0")
    return _Log(capsys)


def test_lines_start_progress_eta_and_done(log):
    bar = _progress.bar(range(4), desc="work", unit="batches", about="of 8 images")
    assert isinstance(bar, _progress.Lines)
    assert list(bar) == [0, 1, 2, 3]
    lines = log.getvalue().splitlines()
    assert lines[0] == "work: start, 4 batches (of 8 images)"
    assert lines[1].startswith("work: 1/4 batches (25%), 0:00 elapsed, ETA 0:00")
    assert lines[4].startswith("work: 4/4 batches (100%)")
    assert lines[5].startswith("work: done, 4/4 batches in 0:00")
    assert len(lines) == 6 and "\r" not in log.getvalue()


def test_lines_at_a_modest_interval(log, monkeypatch):
    monkeypatch.setenv(_progress.INTERVAL_ENV, "3600")
    for _ in _progress.bar(range(1000), desc="quiet"):
        pass
    lines = log.getvalue().splitlines()
    assert lines == ["quiet: start, 1,000 steps", lines[1]]  # start and done only
    assert lines[1].startswith("quiet: done, 1,000/1,000 steps in")
    monkeypatch.setenv(_progress.INTERVAL_ENV, "soon")
    with pytest.raises(ValueError, match="LANDSCAPE_PROGRESS_INTERVAL"):
        _progress.interval()


def test_inner_loops_print_progress_but_no_start_or_done_lines(log):
    outer = _progress.bar(desc="outer", total=2, unit="epochs", about="x")
    for _ in range(2):
        inner = _progress.bar(desc="epoch", total=3, unit="batches", leave=False)
        for _ in range(3):
            inner.update(1)
        inner.close()
        outer.update(1)
        outer.set_postfix(loss="0.5")
    outer.close()
    lines = log.getvalue().splitlines()
    assert lines[0] == "outer: start, 2 epochs (x)"
    assert not any(line.startswith("epoch: start") for line in lines)
    assert not any(line.startswith("epoch: done") for line in lines)
    assert sum(line.startswith("epoch: ") for line in lines) == 6
    assert (
        lines[-1].startswith("outer: done, 2/2 epochs in") and "loss=0.5" in lines[-1]
    )
    # unknown size: how far and how long, no percentage
    buf = io.StringIO()
    u = _progress.Lines(desc="stream", unit="batches", every=0, file=buf)
    u.update(5)
    u.close()
    assert "stream: start" in buf.getvalue() and "stream: 5 batches, " in buf.getvalue()


def test_a_terminal_gets_a_tqdm_bar_and_disabled_shows_nothing(monkeypatch):
    from tqdm.std import tqdm

    monkeypatch.setattr(sys, "stderr", _Tty())
    assert isinstance(_progress.bar(range(3), desc="t"), tqdm)
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    for _ in _progress.bar(range(3), desc="t", enabled=False):
        pass
    assert buf.getvalue() == ""


def _tiny():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(12, 1, 2, 2, generator=g), torch.randint(0, 3, (12,), generator=g)
    return model, nn.CrossEntropyLoss(), [(x[:6], y[:6]), (x[6:], y[6:])]


def _calls():
    from landscape import (
        attacks,
        certify,
        directions,
        evaluate,
        hessian,
        scattering,
        surface,
        train,
    )
    from landscape import connectivity as mc

    pgd = attacks.PGD(eps=0.1, steps=2)

    def curve(model, loss_fn, data):
        other = nn.Sequential(*[m for m in _tiny()[0]])
        with torch.no_grad():
            for p in other.parameters():
                p.add_(0.1)
        c = mc.init_curve(model, other, kind="line")
        return mc.scan_curve(model, loss_fn, data, c, num=3, progressbar=True)

    def surf(model, loss_fn, data):
        d = directions.random_directions(model, num=2)
        return surface.loss_surface(
            model, loss_fn, data, d, xs=[-1, 0, 1], progressbar=True
        )

    return {
        "adversarial_train": lambda m, lf, d: train.adversarial_train(
            m,
            d,
            train.TrainConfig(
                epochs=2,
                batch_size=6,
                attack=pgd,
                runtime=train.Runtime(eval_num=0, co_check_num=0),
            ),
            progressbar=True,
        ),
        "lanczos": lambda m, lf, d: hessian.top_eigenvalues(
            m, lf, d, num=2, progressbar=True
        ),
        "lanczos_density": lambda m, lf, d: hessian.lanczos_density(
            m, lf, d, max_iter=5, num_runs=2, progressbar=True
        ),
        "hutch++": lambda m, lf, d: hessian.trace(
            m, lf, d, num_matvecs=9, method="hutch++", progressbar=True
        ),
        "loss_surface": surf,
        "scattering": lambda m, lf, d: scattering.scattering(
            m, lf, d, attack=pgd, scales=[1e-2], num_directions=1, progressbar=True
        ),
        "evaluate": lambda m, lf, d: evaluate.evaluate(
            m, d, eps=0.1, preset="quick", steps=2, checks=False, progressbar=True
        ),
        "perturb_batches": lambda m, lf, d: attacks.perturb_batches(
            m, d, pgd, progressbar=True
        ),
        "certify": lambda m, lf, d: certify.certify(
            nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)),
            d,
            eps=0.1,
            progressbar=True,
        ),
        "scan_curve": curve,
    }


@pytest.mark.parametrize("name", sorted(_calls()))
def test_every_long_loop_writes_a_start_line_and_progress_to_a_log(name, log):
    model, loss_fn, data = _tiny()
    _calls()[name](model, loss_fn, data)
    text = log.getvalue()
    assert f"{name}: start" in text, text
    assert f"{name}: done" in text, text
    assert "ETA" in text or "elapsed" in text, text
    assert "\r" not in text


def _logged_run(cmd: list[str], log_path, **env_extra) -> str:
    """Run a tool with stdout and stderr going to one log file (not a terminal)."""
    env = dict(os.environ, MPLBACKEND="Agg", **env_extra)
    env[_progress.INTERVAL_ENV] = "0"
    with open(log_path, "w") as f:
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=600
        )
    text = log_path.read_text()
    assert proc.returncode == 0, text[-3000:]
    return text


def test_a_tool_writing_to_a_log_file_prints_start_and_progress_lines(tmp_path):
    from landscape import io as lio
    from landscape import models

    kw = {"in_shape": [1, 4, 4], "num_classes": 3, "hidden": [5]}
    lio.atomic_save_torch(
        {
            "model": models.build("mlp", **kw).state_dict(),
            "arch": "mlp",
            "arch_kwargs": kw,
        },
        tmp_path / "ckpt.pt",
    )
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(30, 1, 4, 4, generator=g), torch.randint(0, 3, (30,), generator=g)
    torch.save({"x": x, "y": y}, tmp_path / "data.pt")
    cmd = [
        sys.executable,
        "-m",
        "landscape.surface",
        "compute",
        str(tmp_path / "ckpt.pt"),
    ]
    cmd += ["--data", str(tmp_path / "data.pt"), "--grid", "-1", "1", "3"]
    cmd += ["-o", str(tmp_path / "surf"), "--threads", "1"]
    text = _logged_run(cmd, tmp_path / "surface.log")
    assert "loss_surface: start, 9 points" in text
    assert "loss_surface: 9/9 points (100%)" in text and "ETA" in text
    assert "loss_surface: done, 9/9 points" in text
    assert f"saved {tmp_path / 'surf' / 'surface.npz'}" in text
    assert "\r" not in text


@pytest.mark.data
def test_train_smoke_in_a_log_shows_epochs_batches_and_says_it_is_not_learning(
    tmp_path, data_root
):
    cmd = [sys.executable, "-m", "landscape.train", "mnist-lenet", "--smoke"]
    cmd += ["--run-dir", str(tmp_path / "run"), "--threads", "1"]
    text = _logged_run(cmd, tmp_path / "train.log", LANDSCAPE_DATA=str(data_root))
    assert "adversarial_train: start, 2 epochs (8 batches per epoch, pgd" in text
    assert "epoch 1: 1/8 batches (12%)" in text and "ETA" in text
    assert "adversarial_train: done, 2/2 epochs in" in text
    assert "not meant to learn" in text


def test_decoding_an_image_folder_says_where_it_is(log, monkeypatch, tmp_path):
    """Decoding a JPEG data set (CIFAR-10: 50,000 images, minutes on first use) shows
    its progress in a log; small folders stay silent (before: nothing for minutes)."""
    from PIL import Image

    from landscape.data import _images

    for c in ("a", "b"):
        (tmp_path / "train" / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (4, 4), (i * 40, 0, 0)).save(
                tmp_path / "train" / c / f"{i}.png"
            )
    monkeypatch.setattr(_images, "PROGRESS_FROM", 4)
    _images._read_folder_cached.cache_clear()
    x, y, classes = _images.read_image_folder(tmp_path, "train")
    assert x.shape == (6, 3, 4, 4) and classes == ("a", "b")
    lines = log.getvalue().splitlines()
    name = f"decode {tmp_path.name} train"
    assert (
        lines[0]
        == f"{name}: start, 6 images (once: later loads read the decoded cache)"
    )
    assert lines[-1].startswith(f"{name}: done, 6/6 images in")
    monkeypatch.setattr(_images, "PROGRESS_FROM", 7)
    _images._read_folder_cached.cache_clear()
    _images.read_image_folder(tmp_path, "train")
    assert log.getvalue().splitlines() == lines  # below the threshold: silent

"""The main job: ``python -m landscape.demo --smoke`` end to end, checked against
independent recomputations (loss at the surface centre, a power-iteration Hessian
eigenvalue, eps = 0 identities) and for resuming from its cache."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO

pytestmark = pytest.mark.data


def _run_demo(out: Path, data_root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LANDSCAPE_DATA=str(data_root), MPLBACKEND="Agg")
    # the demo never calls a deprecated landscape API: such a call is an error here
    # (library DeprecationWarnings are hidden by default outside __main__)
    env["PYTHONWARNINGS"] = "error::DeprecationWarning:landscape.demo._stages"
    cmd = [sys.executable, "-m", "landscape.demo", "--smoke", "--out", str(out)]
    cmd += ["--threads", "1", "--no-progress", *extra]
    return subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="session")
def demo_run(data_root, tmp_path_factory):
    """One smoke demo run shared by every test, also across pytest-xdist workers (the
    first worker runs it under a file lock, the others reuse its folder)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by all workers of this session
    out = base / "demo_smoke_run"
    log = base / "demo_smoke_run.stdout"
    try:
        from filelock import FileLock
    except ImportError:  # filelock comes with torch; without it, no sharing
        lock = contextlib.nullcontext()
    else:
        lock = FileLock(str(base / "demo_smoke_run.lock"))
    with lock:
        if not log.exists():
            proc = _run_demo(out, data_root)
            assert proc.returncode == 0, (
                f"demo --smoke failed (rc={proc.returncode})\n{proc.stdout[-3000:]}\n"
                f"{proc.stderr[-5000:]}"
            )
            log.write_text(proc.stdout)
    summary = json.loads((out / "summary.json").read_text())
    return out, summary, log.read_text()


def test_demo_writes_summary_and_figures(demo_run):
    out, s, stdout = demo_run
    from landscape.demo import DemoConfig

    cfg = DemoConfig.smoke()
    expected = {f"constant_eps{e:g}" for e in cfg.eps_list} | {
        f"periodic_eps{cfg.periodic_eps:g}"
    }
    assert set(s["runs"]) == expected
    for tag, r in s["runs"].items():
        for key in ("clean_acc", "robust_acc_quick_train_eps", "final_train_acc"):
            assert 0.0 <= r[key] <= 1.0, (tag, key, r[key])
        # robust accuracy can never exceed clean accuracy on the same points
        assert r["robust_acc_quick_train_eps"] <= r["clean_acc"] + 1e-12
        assert np.isfinite(r["hessian_top_clean"]) and r["hessian_top_clean"] > 0
        assert r["dist_init"] > 0
    # the ensemble of the periodic run was evaluated too
    assert set(s["ensemble"]) == {
        "quick@train_eps",
        f"quick@{cfg.eval_eps:g}",
        f"{cfg.strong_preset}@train_eps",
    }
    for name in (
        "learning_curves.png",
        "learning_curves.pdf",
        "accuracy_vs_eps.png",
        "hessian_top_eigenvalue.png",
        "scattering.png",
        "surfaces.png",
        "surfaces.pdf",
    ):
        p = out / "figures" / name
        assert p.exists() and p.stat().st_size > 1000, name
    # one self-contained interactive file with a menu entry per surface
    html = (out / "figures" / "surfaces.html").read_text()
    assert "plotly" in html.lower() and '<script src="https://cdn' not in html
    for label in ("eps = 0, clean", "eps = 0.3, clean", "eps = 0.3, adversarial"):
        assert f'"label":"{label}"' in html.replace(": ", ":"), label
    for rel in s["figures"]:
        assert (out / rel).stat().st_size > 0
    md = (out / "summary.md").read_text()
    assert "| constant_eps0.3 |" in md and "Stage timings" in md
    assert "summary.md" in stdout


def test_eps0_identities(demo_run):
    """At eps = 0 the 'robust' numbers must equal the clean ones exactly."""
    _, s, _ = demo_run
    r = s["runs"]["constant_eps0"]
    assert r["robust_acc_quick_train_eps"] == r["clean_acc"]
    assert r["hessian_top_adversarial"] == r["hessian_top_clean"]
    # the clean model learns something even in the smoke size (10 classes: 0.1 chance)
    assert r["clean_acc"] > 0.3


def _train_subset(data_root, num):
    from landscape import data
    from landscape.demo import DemoConfig

    cfg = DemoConfig.smoke()
    x, y = data.load_dataset(
        cfg.dataset,
        data_root,
        split="train",
        num_samples=cfg.num_train,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    return x[:num], y[:num]


def test_surface_center_matches_plain_loss(demo_run, data_root):
    """The surface's centre equals the model's cross-entropy on the same images,
    recomputed here from the saved final checkpoint."""
    out, s, _ = demo_run
    from landscape import checkpoints
    from landscape.demo import DemoConfig

    cfg = DemoConfig.smoke()
    model = checkpoints.load_model(out / "train" / "constant_eps0")
    x, y = _train_subset(data_root, cfg.surface_num)
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(x), y).item()
    got = s["runs"]["constant_eps0"]["surface_clean_center_loss"]
    assert got == pytest.approx(loss, rel=1e-4)


def test_hessian_top_eigenvalue_matches_power_iteration(demo_run, data_root):
    """Independent check: plain power iteration with double-backward HVPs."""
    out, s, _ = demo_run
    from landscape import checkpoints
    from landscape.demo import DemoConfig

    cfg = DemoConfig.smoke()
    model = checkpoints.load_model(out / "train" / "constant_eps0").double()
    x, y = _train_subset(data_root, cfg.hessian_num)
    params = [p for p in model.parameters() if p.requires_grad]
    loss = torch.nn.functional.cross_entropy(model(x.double()), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    g = torch.Generator().manual_seed(1)
    v = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]
    lam = 0.0
    for _ in range(200):
        n = torch.sqrt(sum((t * t).sum() for t in v))
        v = [t / n for t in v]
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        new = float(sum((a * b).sum() for a, b in zip(hv, v)))
        v = [t.detach() for t in hv]
        if abs(new - lam) < 1e-7 * abs(new):
            lam = new
            break
        lam = new
    got = s["runs"]["constant_eps0"]["hessian_top_clean"]
    # power iteration converges from below; Lanczos is the more accurate of the two
    assert got == pytest.approx(lam, rel=2e-2)


def test_rerun_resumes_from_cache(demo_run, data_root):
    """A second run in the same folder reuses every stage: same numbers, the trained
    checkpoints untouched; another configuration in that folder is refused."""
    out, s, _ = demo_run
    final = out / "train" / "constant_eps0.3" / "final.pt"
    mtime = final.stat().st_mtime_ns
    proc = _run_demo(out, data_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s2 = json.loads((out / "summary.json").read_text())
    assert s2["runs"] == s["runs"]
    assert final.stat().st_mtime_ns == mtime
    assert "finished earlier" in proc.stdout
    assert s2["timings_s"]["train"] < 0.5 * max(s["timings_s"]["train"], 1.0)

    cfg_path = out / "demo_config.json"
    original = cfg_path.read_text()
    cfg = json.loads(original)
    cfg["epochs"] += 1
    cfg_path.write_text(json.dumps(cfg))
    try:
        proc = _run_demo(out, data_root)
    finally:
        cfg_path.write_text(original)
    assert proc.returncode == 2
    assert "another configuration" in proc.stderr and "--fresh" in proc.stderr


@pytest.mark.parametrize("adversarial", [False, True])
def test_surface_stage_calls_no_deprecated_api(adversarial, tmp_path):
    """The demo's surface stage builds its attack as ``attacks.PGD`` (the loose
    ``eps=/steps=/alpha=`` keywords of ``loss_surface`` are deprecated), and the
    adversarial surface attacks the images (fails on the loose keywords: the warning
    is an error here; the subprocess demo run hides library DeprecationWarnings)."""
    import dataclasses
    import warnings

    from landscape import models
    from landscape.demo import DemoConfig
    from landscape.demo._stages import Context, _surface

    cfg = dataclasses.replace(DemoConfig.smoke(), surface_points=2, surface_num=16)
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.rand(16, 1, 28, 28, generator=g),
        torch.randint(0, 10, (16,), generator=g),
    )
    ctx = Context(
        cfg=cfg, out=tmp_path, device=torch.device("cpu"), data=((x, y), (x, y))
    )
    model = models.build("lenet", dataset="mnist").eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        s = _surface(ctx, model, 0.3, adversarial)
        clean = _surface(ctx, model, 0.3, False)
    assert s.loss.shape == (2, 2)
    # attacked images give a strictly higher loss at the centre than the clean ones
    assert (s.center_loss > clean.center_loss) == adversarial

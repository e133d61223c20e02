"""The scale and GPU benchmarks run end to end in their ``--smoke`` form (on CPU, in
seconds of CPU time), so they stay runnable between the sessions that measure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _smoke(script: str, state: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", "--state", str(state)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=900,
    )  # fmt: skip


def test_bench_scale_smoke(tmp_path):
    from_state = tmp_path / "scale.json"
    proc = _smoke("bench_scale.py", from_state)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads(from_state.read_text())
    rows = {k.split(":")[0] for k in state}
    assert rows == {
        "evaluate", "top5", "trace", "slq", "surface", "scattering", "sharp_worst",
        "sharp_avg",
    }  # fmt: skip
    assert {int(k.split(":")[1]) for k in state} == {16, 64}
    assert all(v["cpu_s"] > 0 and v["peak_mib"] >= 0 for v in state.values())
    assert "| top5 |" in proc.stdout
    # resumable: a second call finds every row done and runs nothing
    again = _smoke("bench_scale.py", from_state)
    assert again.returncode == 0 and "peak +" not in again.stdout


def test_bench_gpu_smoke(tmp_path):
    state = tmp_path / "gpu.json"
    proc = _smoke("bench_gpu.py", state)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    got = json.loads(state.read_text())
    assert list(got) == [
        "train_fp32", "train_bf16", "sync_train", "sync_attacks", "sync_hvp",
        "evaluate", "top5", "surface",
    ]  # fmt: skip
    assert all(v["status"] == "ok" for v in got.values()), got
    assert got["sync_train"]["skipped"] == "no CUDA"
    assert got["surface"]["max_rel_diff_to_loop"] < 1e-5
    assert got["train_fp32"]["pgd_img_per_s"] > 0
    again = _smoke("bench_gpu.py", state)
    assert again.returncode == 0 and "train_fp32:" not in again.stdout

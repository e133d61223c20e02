"""Every figure script runs with ``--smoke`` and writes non-empty figures; the shared
figure helpers cache and redraw.

The scripts are found by globbing ``figures/fig*.py``, so a new script is tested
without editing this file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, _find_data_root

FIG_DIR = REPO / "figures"
SCRIPTS = sorted(FIG_DIR.glob("fig*.py"))
FIGURE_SUFFIXES = {".png", ".pdf", ".html", ".svg"}
SMOKE_TIMEOUT = (
    300  # seconds; the target is < 30 s, this is a hang guard on shared CPUs
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    )
    env.setdefault("MPLBACKEND", "Agg")
    root = _find_data_root()
    if root is not None:
        env.setdefault("LANDSCAPE_DATA", str(root))
    return env


def _results_snapshot(stem: str) -> dict[str, float]:
    """Files of data/results/ that belong to one figure script (name starts with it)."""
    res = REPO / "data" / "results"
    if not res.exists():
        return {}
    return {str(p): p.stat().st_mtime for p in res.rglob(f"{stem}*") if p.is_file()}


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_figure_script_smoke(script: Path, tmp_path: Path) -> None:
    """``figNN.py --smoke --out-dir TMP`` exits 0, writes at least one non-empty figure
    there, leaves ``data/results`` alone, and a second run redraws from its cache."""
    doc = script.read_text().lstrip()
    assert doc.startswith(('"""', "'''", "#!")), f"{script.name}: no module docstring"
    before = _results_snapshot(script.stem)
    cmd = [sys.executable, str(script), "--smoke", "--out-dir", str(tmp_path)]
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT,
    )
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed (rc={proc.returncode})\n"
        f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
    )
    assert "DeprecationWarning" not in proc.stderr, (
        f"{script.name} calls a deprecated landscape API:\n{proc.stderr[-2000:]}"
    )
    figures = [p for p in tmp_path.rglob("*") if p.suffix in FIGURE_SUFFIXES]
    assert figures, (
        f"{script.name} --smoke wrote no figure (.png/.pdf/.html/.svg) into "
        f"{tmp_path}; found {[p.name for p in tmp_path.rglob('*')]}"
    )
    empty = [
        p.name for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size == 0
    ]
    assert not empty, f"{script.name} wrote empty files: {empty}"
    assert _results_snapshot(script.stem) == before, (
        f"{script.name} --smoke modified data/results/: smoke runs must cache into "
        "the --out-dir (or a temporary folder)"
    )
    # Redraw from the cache: when the run left cached results in the out-dir, a second
    # run must reuse them (cache files untouched) and still write every figure.
    caches = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npz")}
    if not caches:
        return
    for p in figures:
        p.unlink()
    proc2 = subprocess.run(
        cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=SMOKE_TIMEOUT
    )
    assert proc2.returncode == 0, proc2.stderr[-4000:]
    for p in figures:
        assert p.exists() and p.stat().st_size > 0, f"{p.name} not redrawn from cache"
    changed = [p.name for p, m in caches.items() if p.stat().st_mtime_ns != m]
    assert not changed, (
        f"{script.name}: the second --smoke run recomputed {changed} instead of "
        "redrawing from the cache"
    )


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_figure_script_help(script: Path, monkeypatch, capsys) -> None:
    """``main(["--help"])`` works (in-process: cheap) and documents the size flags."""
    import importlib.util

    monkeypatch.syspath_prepend(str(FIG_DIR))
    spec = importlib.util.spec_from_file_location(f"_fig_{script.stem}", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert callable(getattr(mod, "main", None)), f"{script.name} has no main(argv)"
    with pytest.raises(SystemExit) as exc:
        mod.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--smoke", "--full", "--out-dir"):
        assert flag in out, f"{script.name} --help does not mention {flag}"


# ----------------------------------------------------------------- _common helpers


@pytest.fixture
def common(monkeypatch):
    monkeypatch.syspath_prepend(str(FIG_DIR))
    import _common

    return _common


def test_cached_computes_once_then_loads(common, tmp_path):
    args = common.parser("doc").parse_args(["--smoke", "--out-dir", str(tmp_path)])
    ctx = common.setup(args, "figtest")
    assert ctx.size == "smoke" and ctx.out_dir == tmp_path
    assert ctx.cache_dir == tmp_path / "results"
    calls = []

    def compute():
        calls.append(1)
        return common.FigureData(
            arrays={"curve": np.linspace(0, 1, 5)},
            table={"rows": [["constant", 0.25, None]], "note": "x"},
        )

    a = common.cached(ctx, "figtest", compute)
    b = common.cached(ctx, "figtest", compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(a.arrays["curve"], np.linspace(0, 1, 5))
    np.testing.assert_array_equal(b.arrays["curve"], a.arrays["curve"])
    assert b.table == {"rows": [["constant", 0.25, None]], "note": "x"}
    assert b.meta["size"] == "smoke" and "compute_seconds" in b.meta
    assert (tmp_path / "results" / "figtest_smoke.npz").stat().st_size > 0

    args = common.parser("doc").parse_args(
        ["--smoke", "--out-dir", str(tmp_path), "--recompute"]
    )
    common.cached(common.setup(args, "figtest"), "figtest", compute)
    assert len(calls) == 2


def test_sizes_and_default_folders(common, tmp_path, monkeypatch):
    p = common.parser("doc")
    ctx = common.setup(p.parse_args(["--out-dir", str(tmp_path)]), "figx")
    assert ctx.size == "cpu" and ctx.cache_dir == common.RESULTS
    assert ctx.pick(1, 2, 3) == 2
    ctx = common.setup(p.parse_args(["--full", "--out-dir", str(tmp_path)]), "figx")
    assert ctx.size == "full" and ctx.pick(1, 2, 3) == 3
    monkeypatch.chdir(tmp_path)  # --smoke writes under ./runs, printed as such
    ctx = common.setup(p.parse_args(["--smoke"]), "figx")
    assert ctx.out_dir == Path("runs/figures/figx-smoke") and ctx.out_dir.exists()
    assert (tmp_path / "runs" / "figures" / "figx-smoke").is_dir()
    with pytest.raises(SystemExit):
        p.parse_args(["--smoke", "--full"])


def test_save_figure_writes_png_and_pdf(common, tmp_path):
    import matplotlib.pyplot as plt

    ctx = common.setup(
        common.parser("d").parse_args(["--smoke", "--out-dir", str(tmp_path)]), "figy"
    )
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    paths = common.save_figure(fig, ctx)
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    assert (tmp_path / "figy.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "figy.pdf").read_bytes()[:4] == b"%PDF"


# ----------------------------------------------------------------- the study tier


@pytest.fixture
def study(common):
    import _study

    return _study


def test_study_size_flags(common):
    p = common.parser("doc")
    ctx = common.setup(p.parse_args(["--study", "--out-dir", "x"]), "figx")
    assert (
        ctx.size == "study" and not ctx.from_results and ctx.cache_dir == common.RESULTS
    )
    assert ctx.pick(1, 2, 3) == 2 and ctx.pick(1, 2, 3, study=4) == 4
    ctx = common.setup(p.parse_args(["--from-results", "--out-dir", "x"]), "figx")
    assert ctx.size == "study" and ctx.from_results
    assert ctx.cache_dir == common.PUBLISHED
    ctx = common.setup(p.parse_args(["--study"]), "figx")
    assert ctx.out_dir == common.PUBLISHED
    with pytest.raises(SystemExit):
        p.parse_args(["--study", "--smoke"])


def test_study_statistics_match_closed_forms(study):
    from scipy import stats

    v = [1.0, 2.0, 4.0]
    s = study.summary(v)
    half = stats.t.ppf(0.975, 2) * np.std(v, ddof=1) / np.sqrt(3)
    assert s["n"] == 3 and s["mean"] == pytest.approx(7 / 3)
    assert s["std"] == pytest.approx(np.std(v, ddof=1))
    assert s["ci95"] == pytest.approx([7 / 3 - half, 7 / 3 + half])
    assert study.summary([])["mean"] is None
    assert study.fmt(study.summary([0.5, 0.7]), 100) == "60.0 +- 14.1"
    assert study.fmt({}) == "not run"
    assert study.fmt(study.summary([0.5]), 100) == "50.0 (1 seed)"
    assert study.stalled({"clean_acc": 0.1135}) and not study.stalled(
        {"clean_acc": 0.6}
    )
    a, b = [1.0, 1.2, 0.9], [0.1, 0.3, 0.2]
    w = study.welch(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert w["p"] == pytest.approx(ref.pvalue) and w["significant"]
    assert study.welch([1.0], b)["p"] is None
    # no variance in either group: no test (a p-value of 0 or 1 would be no evidence)
    same = study.welch([0.1, 0.1], [0.1, 0.1])
    assert same["p"] is None and same["note"] == "no variance"
    assert study.welch([0.1, 0.1], [0.2, 0.2])["p"] is None
    # power: the textbook 17 seeds per group for a 1-sd effect (two-sample), 10 for a
    # one-sample test; half the effect needs about 4x the seeds
    assert study.seeds_needed(1.0, 1.0) == 17 and study.seeds_needed_one(1.0, 1.0) == 10
    assert 60 <= study.seeds_needed(0.5, 1.0) <= 66
    assert study.seeds_needed(0.0, 1.0) is None
    # slopes per seed: y = 2 x + seed noise -> increasing; y = -x -> decreasing
    xs = [[0, 1, 2]] * 3
    up = study.slope_test(xs, [[0, 2.1, 4], [0.1, 2, 3.9], [0, 1.9, 4.1]])
    assert up["verdict"] == "increasing" and up["slope"]["mean"] == pytest.approx(
        2.0, abs=0.1
    )
    down = study.slope_test(xs, [[0, -1, -2.1], [0, -1.1, -2], [0.1, -1, -2]])
    assert down["verdict"] == "decreasing"
    flat = study.slope_test(xs, [[0, 1, 0], [0, -1, 0], [1, 0, 1]])
    assert flat["verdict"] == "undecided"


def test_study_zoo_trains_once_and_caches(study, common, tmp_path, monkeypatch):
    """A zoo model is trained into its run folder once; a second call (and the
    evaluations) reuse it; ``compute=False`` reports missing work as None."""
    root = _find_data_root()
    if root is None:
        pytest.skip("no MNIST data folder")
    monkeypatch.setitem(study.SIZE, "num_train", 64)
    monkeypatch.setitem(study.SIZE, "num_test", 32)
    monkeypatch.setitem(study.SIZE, "epochs", 2)
    monkeypatch.setitem(study.SIZE, "eval_num", 16)
    monkeypatch.setitem(study.SIZE, "steps", 1)
    study._DATA.clear()
    args = common.parser("d").parse_args(
        ["--study", "--cache-dir", str(tmp_path), "--data-root", str(root)]
    )
    ctx = common.setup(args, "figz")
    spec = study.Spec(eps=0.1, seed=0, schedule="periodic")
    assert study.Spec(eps=0.0, seed=0, schedule="linear").schedule == "constant"
    assert study.final_eval(ctx, spec, compute=False) is None
    fe = study.final_eval(ctx, spec)
    run = tmp_path / "study" / "runs" / spec.key
    stamp = (run / "final.pt").stat().st_mtime_ns
    assert set(fe) >= {
        "clean_acc",
        "pgd20_acc@0.1",
        "pgd20_acc@0.3",
        "final_train_loss",
    }
    assert study.final_eval(ctx, spec) == fe
    assert study.final_eval(ctx, spec, compute=False) == fe
    assert (run / "final.pt").stat().st_mtime_ns == stamp
    # periodic over 2 epochs: periods [0, 1, 2] (the tier's [0, E/2, 3E/4, E] with
    # the repeated boundary dropped), a 2-member ensemble
    assert spec.periods == [0, 1, 2]
    assert len(sorted(run.glob("ckpt_epoch*.pt"))) == 2
    assert not (run.parent / (run.name + ".lock")).exists()
    # one lock per run folder (a suffix-based name was shared by every seed and lr)
    assert not list(run.parent.glob("*.lock"))
    q = study.protocol_eval(ctx, spec, "quick", num=32, ensemble=True)
    assert 0 <= q["robust_acc"] <= q["clean_acc"] <= 1 and q["attacks"] == ["pgd-20"]
    # a result (and a half-done state) of an older definition of the preset is stale
    folder = tmp_path / "study" / "evals" / spec.key
    cached = folder / "quick_ens_eps0.1_n32.json"
    cached.write_text(json.dumps({**q, "attacks": ["pgd-7"], "robust_acc": -1.0}))
    (folder / "quick_ens_eps0.1_n32.0ld0ld0l.state.pt").write_bytes(b"old")
    again = study.protocol_eval(ctx, spec, "quick", num=32, ensemble=True)
    assert again["attacks"] == ["pgd-20"] and again["robust_acc"] == q["robust_acc"]
    assert not list(folder.glob("*.state.pt"))
    assert study.cost(ctx, spec) > 0
    study._DATA.clear()


def test_study_budget_from_the_environment():
    """The default budget ``cpu`` (the paper's recipe scaled down) publishes to
    results/cpu/; ``v1`` / ``v1-long`` point at the earlier recipe's committed record;
    an unknown budget is a one-line error."""
    code = (
        "import sys; sys.path.insert(0, 'figures'); import _study, _common; "
        "print(_study.SIZE['num_train'], _study.SIZE['epochs'], "
        "_common.PUBLISHED.relative_to(_common.REPO).as_posix(), "
        "_study.Spec(eps=0.4, seed=1).key)"
    )
    run = {"cwd": REPO, "capture_output": True, "text": True, "timeout": 120}
    base = subprocess.run([sys.executable, "-c", code], env=_env(), **run)
    assert base.returncode == 0, base.stderr[-2000:]
    n, e, published, key = base.stdout.split()
    assert (n, e, published) == ("16000", "16", "results/cpu")
    assert key == "paper-lenet-w2-relu-cosine-eps0.4-lr0.002-s1-n16000-e16-k5-b128"
    for budget, folder in (("v1", "results"), ("v1-long", "results/long")):
        env = {**_env(), "LANDSCAPE_STUDY_BUDGET": budget}
        out = subprocess.run([sys.executable, "-c", code], env=env, **run)
        assert out.returncode == 0 and out.stdout.split()[2] == folder, out.stderr
    env = {**_env(), "LANDSCAPE_STUDY_BUDGET": "huge"}
    bad = subprocess.run([sys.executable, "-c", code], env=env, **run)
    assert bad.returncode != 0 and "LANDSCAPE_STUDY_BUDGET='huge'" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_figure_redraws_from_committed_results(script: Path, tmp_path: Path) -> None:
    """``--from-results`` redraws the study-tier figure from the committed tables in
    ``results/`` (no training), or says clearly that they are not committed."""
    cmd = [sys.executable, str(script), "--from-results", "--out-dir", str(tmp_path)]
    env = {**_env(), "LANDSCAPE_STUDY_BUDGET": "v1"}  # the committed record's recipe
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=SMOKE_TIMEOUT
    )
    committed = (REPO / "results" / f"{script.stem}_study.npz").exists()
    if not committed:
        assert proc.returncode != 0 and "not" in (proc.stdout + proc.stderr)
        return
    assert proc.returncode == 0, proc.stderr[-4000:]
    pngs = list(tmp_path.glob("*.png"))
    assert pngs and all(p.stat().st_size > 0 for p in pngs)
    assert not list(tmp_path.rglob("*.npz")), "--from-results must not compute"


# ------------------------------------------------------------- the claim table


@pytest.fixture
def claims(common):
    import claims

    return claims


def test_readme_claim_table_is_generated_from_the_tables(claims):
    """The README's claim table is exactly what figures/claims.py renders from the
    committed tables (regenerate with ``python figures/claims.py``)."""
    block = claims.readme_block(claims.README.read_text())
    assert block is not None and block == claims.render()
    words = ("holds", "does not hold", "not tested at this size", "undecided")
    for row in claims.rows():
        assert row["verdict"].startswith(words), row


def _claim1_csv(path, cos, const):
    rows = [("cycle_cos", s, a) for s, a in enumerate(cos)]
    rows += [("constant", s, a) for s, a in enumerate(const)]
    lines = ["# test", ",".join(["schedule", "seed", "clean_acc", "stalled", "params",
                                 "model", "num_train", "epochs"])]  # fmt: skip
    for sch, seed, acc in rows:
        lines.append(f"{sch},{seed},{acc},{acc < 0.2},52506,lenet w2,16000,16")
    path.write_text("\n".join(lines) + "\n")


def test_claim1_verdict_words(claims, tmp_path, monkeypatch):
    """holds only when significant; zero-variance groups get no p-value; an interval
    that includes 0 is undecided with the seeds a decisive test needs; one seed is
    undecided with the seeds a decisive test needs."""
    path = tmp_path / "claim1.csv"
    monkeypatch.setattr(claims, "CLAIM1_CSV", path)
    _claim1_csv(path, [0.95, 0.96, 0.94], [0.11, 0.12, 0.1135])
    assert claims._claim1()["verdict"].startswith(("holds (p = ", "holds (p < "))
    _claim1_csv(path, [0.95, 0.95], [0.1135, 0.1135])
    v = claims._claim1()["verdict"]
    assert v.startswith("undecided (no variance") and "0.0" not in v
    _claim1_csv(path, [0.95, 0.30, 0.90], [0.11, 0.92, 0.5])
    v = claims._claim1()["verdict"]
    assert v.startswith("undecided (interval includes 0; a decisive test needs ")
    _claim1_csv(path, [0.95], [0.1135])
    assert "needs" in claims._claim1()["verdict"]
    _claim1_csv(path, [0.11, 0.12, 0.10], [0.95, 0.96, 0.94])
    assert claims._claim1()["verdict"].startswith("does not hold")


def test_claim1_cell_has_the_robust_loss_and_the_standard_protocol(
    claims, tmp_path, monkeypatch
):
    """Claim 1's numbers carry the robust test loss (an effect only when its interval
    excludes 0) and the standard protocol's robust accuracy with its n and failed
    masking checks."""
    path = tmp_path / "claim1.csv"
    monkeypatch.setattr(claims, "CLAIM1_CSV", path)
    head = "schedule,seed,clean_acc,stalled,params,model,num_train,epochs,"
    head += "robust_loss_pgd20,standard_robust_acc,standard_n,standard_failed_checks"
    lines = ["# test", head]
    for seed, (rl, ra) in enumerate([(2.30, 0.2), (2.10, 0.3), (2.50, 0.25)]):
        lines.append(f"cycle_cos,{seed},0.95,False,52506,lenet w2,16000,16,{rl},{ra}"
                     ",500,none")  # fmt: skip
    for seed, rl in enumerate([2.3026, 2.3025, 2.3027]):
        lines.append(f"constant,{seed},0.1135,True,52506,lenet w2,16000,16,{rl},0.1,"
                     "500,eps-sweep")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    num = claims._claim1()["numbers"]
    assert "robust test loss" in num and "no significant difference" in num
    assert "first 500 test images" in num and "eps-sweep" in num
    assert "25.0 +- 5.0 % (n = 3)" in num


def test_p_values_and_effects_are_honest(common):
    """No p-value prints as 0.0 for zero-variance groups, and an interval that
    includes 0 is not reported as an effect (the earlier tables printed p 0.0 and
    "ensembles lose 24-28 points" with paired intervals [-50, +2])."""
    import _study

    w = _study.welch([0.0, 0.0, 0.0], [0.118, 0.118, 0.118])
    assert w["p"] is None and _study.fmt_p(w) == "no variance"
    assert _study.fmt_p({"p": 1e-9}) == "< 0.0001"
    e = _study.effect({"diff": -0.24, "ci95": [-0.50, 0.02], "p": 0.08}, 100, 0)
    assert e.startswith("no significant difference") and "includes 0" in e
    e = _study.effect({"diff": 0.83, "ci95": [0.80, 0.86], "p": 0.002}, 100, 1)
    assert e == "+83.0 [80.0, +86.0], p = 0.002"
    assert _study.verdict({"diff": 0.1, "ci95": [-0.1, 0.3], "p": 0.3}, +1).startswith(
        "undecided"
    )
    assert _study.verdict({"diff": -0.2, "ci95": [-0.3, -0.1], "p": 0.01}, +1) == (
        "does not hold (p = 0.01)"
    )
    st = _study.slope_test([[0, 0.2, 0.4]] * 3, [[1, 2, 3], [1, 2.2, 3.1], [0, 1, 2.1]])
    assert st["slope"]["p"] is not None and st["slope"]["p"] < 0.05


def test_claim_table_verdicts_for_claims_3_4_5(claims, tmp_path, monkeypatch):
    """Claim 3 is decided from the corrected recipe's Hessian table when 2+ seeds
    have 2+ eps (else undecided from the earlier spread); claim 4 is "not tested at
    this size"; claim 5 reads "trains at every learning rate", not "less
    sensitive"."""
    path = tmp_path / "claim3.csv"
    monkeypatch.setattr(claims, "CLAIM3_CSV", path)
    lines = ["eps,seed,model,params,num_train,epochs,clean_acc,lambda1_adv"]
    for seed, ys in enumerate([(10, 20, 30), (12, 21, 33), (9, 18, 29)]):
        for e, y in zip((0.0, 0.2, 0.4), ys):
            lines.append(f"{e},{seed},lenet w2,52506,16000,16,0.9,{y}")
    path.write_text("\n".join(lines) + "\n")
    r3 = claims._claim3()
    assert r3["verdict"].startswith("holds (p = ") and "52,506" in r3["setting"]
    path.write_text("\n".join(lines[:4]) + "\n")  # one seed
    assert claims._claim3()["verdict"].startswith("undecided")
    rows = {r["claim"][0]: r for r in claims.rows()}
    assert rows["4"]["verdict"].startswith("not tested at this size (")
    assert "trains at every learning rate" in rows["5"]["claim"]
    assert "less sensitive" not in rows["5"]["claim"].split("(")[0]


def _claim5_csv(path, periodic, constant, robust=0.3):
    """``periodic`` / ``constant``: {lr: [clean acc per seed]}; a trained model's
    robust accuracy is ``robust``, a stalled one's 11.35 %."""
    head = "schedule,lr,eps,seed,model,params,num_train,epochs,clean_acc,stalled,"
    head += "standard_robust_acc,standard_n,standard_failed_checks"
    lines = ["# test", head]
    for sch, table in (("periodic", periodic), ("constant", constant)):
        for lr, accs in table.items():
            for seed, a in enumerate(accs):
                rob = robust if a > 0.5 else 0.1135
                lines.append(f"{sch},{lr},0.4,{seed},lenet w2,52506,16000,16,{a},"
                             f"{a < 0.2},{rob},500,none")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def test_claim5_verdict_words(claims, tmp_path, monkeypatch):
    """Claim 5 holds when the periodic schedule trains adversarially (clean accuracy
    and a robust accuracy above the stalled constant classifier's) at every lr with
    2+ seeds per lr; it does not hold when a periodic run stalls or when its robust
    accuracy is not above the constant classifier's; undecided with one seed at an
    lr; "not tested at this size" without any periodic run; the cell carries the
    standard protocol's robust accuracy per lr."""
    path = tmp_path / "claim5.csv"
    monkeypatch.setattr(claims, "CLAIM5_CSV", path)
    lrs = claims.CLAIM5_LRS
    stall = {lr: [0.1135, 0.1135] for lr in lrs}
    _claim5_csv(path, {lr: [0.93, 0.95] for lr in lrs}, stall)
    r5 = claims._claim5()
    assert r5["verdict"].startswith("holds (periodic trained in 6 of 6 runs")
    assert "robust (standard) periodic 30.0 +- 0.0 % (n = 2)" in r5["numbers"]
    assert "52,506" in r5["setting"]
    _claim5_csv(path, {lrs[0]: [0.93, 0.1135], lrs[1]: [0.9, 0.9]}, stall)
    assert claims._claim5()["verdict"].startswith(
        "does not hold (periodic stalled in 1"
    )
    _claim5_csv(path, {lrs[0]: [0.93], lrs[1]: [0.9, 0.9]}, stall)
    assert claims._claim5()["verdict"].startswith("undecided")
    _claim5_csv(path, {lr: [0.93, 0.95] for lr in lrs}, stall, robust=0.0)
    v = claims._claim5()["verdict"]
    assert v.startswith("does not hold as adversarial training") and "0 of 6" in v
    rows = {r["claim"][0]: r for r in claims.rows()}
    assert rows["5"]["verdict"].startswith("does not hold")
    path.unlink()
    assert claims._claim5() is None
    rows = {r["claim"][0]: r for r in claims.rows()}
    assert rows["5"]["verdict"].startswith("not tested at this size (")


def test_claim7_cell_states_the_budget_next_to_madrys(claims, tmp_path, monkeypatch):
    """Claim 7 at a budget below Madry's 83 epochs is "not tested at this size" with
    the budget and the standard protocol's interval; at Madry's budget it is decided
    by whether 88.5 % lies in the binomial interval."""
    path = tmp_path / "claim7.csv"
    monkeypatch.setattr(claims, "CLAIM7_CSV", path)
    head = ",".join(claims._FIELDS7)

    def write(epochs, acc):
        row = dict(model="madry_cnn w1", params=3274634, num_train=60000,
                   epochs=epochs, madry_epochs=83, train_steps="PGD-10 step 0.04",
                   eps=0.3, clean_acc=0.98, pgd20_indicator=0.93,
                   standard_robust_acc=acc, standard_clean_acc=0.985, standard_n=200,
                   standard_failed_checks="none", train_wall_s=2000, train_cpu_s=1980,
                   eval_wall_s=900, eval_cpu_s=880)  # fmt: skip
        path.write_text(head + "\n" + ",".join(str(row[k]) for k in claims._FIELDS7))

    write(3, 0.82)
    r7 = claims._claim7()
    assert r7["verdict"].startswith("not tested at this size (budget: 3 of Madry's 83")
    assert "82.0 % [76.7, 87.3]" in r7["numbers"] and "3,274,634" in r7["setting"]
    write(83, 0.88)
    assert claims._claim7()["verdict"].startswith("holds (88.5 % is inside")
    write(83, 0.70)
    assert claims._claim7()["verdict"].startswith("does not hold")
    rows = {r["claim"][0]: r for r in claims.rows()}
    assert rows["7"]["verdict"].startswith("does not hold")


def test_claim2_separates_the_measures_between_adversarial_budgets(
    claims, tmp_path, monkeypatch
):
    """Claim 2's cell tests both measures over every eps and between the adversarial
    budgets only (eps 0 has no attack, hence no excess): a relative measure flat from
    0.2 to 0.4 is said to show no significant growth there."""
    path = tmp_path / "claim2.csv"
    monkeypatch.setattr(claims, "CLAIM2_CSV", path)
    lines = ["eps,seed,model,params,excess_dg,grad_norm,excess_rel"]
    table = [((0, 0.04, 0.22), (0, 0.040, 0.039)), ((0, 0.03, 0.27), (0, 0.037, 0.036)),
             ((0, 0.04, 0.17), (0, 0.028, 0.044))]  # fmt: skip
    for seed, (ab, rel) in enumerate(table):
        for e, a, r in zip((0.0, 0.2, 0.4), ab, rel):
            lines.append(f"{e},{seed},lenet w2,52506,{a},1.0,{r}")
    path.write_text("\n".join(lines) + "\n")
    r2 = claims._claim2()
    assert r2["verdict"].startswith("holds (p = ")
    assert (
        "between eps 0.2 and 0.4 only the absolute measure grows, the relative shows "
        "no significant growth" in r2["verdict"]
    )


# ------------------------------------------------- --full is the paper's setting

PAPER_LENET_PARAMS = 3_274_634  # LeNet width 16: conv 32 / 64, fc 1,024


def _full_ctx(common, tmp_path, name):
    args = common.parser("d").parse_args(["--full", "--out-dir", str(tmp_path)])
    return common.setup(args, name)


def test_full_builds_the_papers_lenet_and_recipe(common, tmp_path):
    """fig02 / fig05 / fig06 ``--full`` train the paper's width-16 LeNet (they built
    width 1 at every size) with the preset's recipe; fig03 / fig04 ``--full`` build
    the same network."""
    import importlib

    import torch

    from landscape import attacks, models

    x = torch.rand(2, 1, 28, 28)
    for name in ("fig02_learning_curves", "fig05_surfaces"):
        mod = importlib.import_module(name)
        ctx = _full_ctx(common, tmp_path, name)
        cfg = mod._config(ctx, mod.settings(ctx), 0.3)
        model = common.model_for(cfg)
        assert common.num_params(model) == PAPER_LENET_PARAMS, name
        assert model.normalize is None or torch.equal(model.normalize(x), x)
        assert (cfg.batch_size, cfg.optimizer, cfg.lr) == (128, "adam", 1e-4)
        # the learning-curve rule: step 0.01 and eps / 0.01 + 10 steps, constant eps
        assert cfg.attack == attacks.PGD(
            eps=0.3, steps=40, alpha=0.01, random_start="step"
        )
        assert cfg.eps_schedule == "constant" and cfg.schedule_update == "epoch"
    mod = importlib.import_module("fig06_schedules")
    ctx = _full_ctx(common, tmp_path, "fig06_schedules")
    s = mod.settings(ctx)
    cfgs = {sch: mod._config(ctx, s, sch) for sch in mod.SCHEDULES}
    for sch, cfg in cfgs.items():
        assert common.num_params(common.model_for(cfg)) == PAPER_LENET_PARAMS, sch
        assert cfg.epochs == 100 and cfg.attack.step_sizes() == (pytest.approx(0.01),)
    eps = {sch: cfg.eps_fn() for sch, cfg in cfgs.items()}
    assert [round(eps["cosine"](e), 4) for e in (0, 50, 60, 61)] == [
        0,
        0.3,
        0.3927,
        0.4,
    ]
    assert eps["linear"](25) == pytest.approx(0.2) and eps["linear"](50) == 0.4
    assert eps["constant"](0) == 0.4
    assert cfgs["periodic"].period_end_epochs() == [50, 75, 100]
    assert [cfgs[k].period_end_epochs() for k in ("constant", "linear", "cosine")] == [
        [100]
    ] * 3  # one period: no warm-up checkpoints in an "ensemble"
    lr = cfgs["periodic"].lr_fn()
    assert [lr(e) for e in (0, 25, 50, 63, 75, 94)] == pytest.approx(
        [1e-4, 1e-5, 1e-4, 1e-5, 1e-4, 1e-6]
    )
    for name in ("fig03_scattering", "fig04_hessian"):
        mod = importlib.import_module(name)
        s = mod._settings(_full_ctx(common, tmp_path, name))
        net = models.build(s["model"], **s["model_kw"])
        assert common.num_params(net) == PAPER_LENET_PARAMS, name


# ---------------------------------------- --full in resumable chunks on a GPU


def test_full_runner_builds_the_papers_experiments(common):
    """``run_study.py full`` trains exactly the paper's settings (issue 30's table):
    MNIST LeNet w16 ``cycle_cos`` (and constant), CIFAR-10 VGG-16 / ResNet-18 w8 with
    three periods, the standard protocol with the masking checks at full budgets."""
    import _full

    from landscape import models, train

    exps = {e.name: e for e in _full.experiments()}
    assert list(exps) == [
        "mnist-lenet-cycle_cos", "mnist-lenet-constant",
        "cifar10-vgg16-constant", "cifar10-vgg16-cycle_cos", "cifar10-vgg16-cycle_linear",
        "cifar10-resnet18-constant", "cifar10-resnet18-cycle_cos",
        "cifar10-resnet18-cycle_linear",
    ]  # fmt: skip
    for e in exps.values():
        assert e.checks and e.scale == 1.0 and e.num_test == 1000
    m = exps["mnist-lenet-cycle_cos"].config
    assert m == train.preset("mnist-lenet")
    assert (m.epochs, m.batch_size, m.optimizer, m.lr, m.lr_schedule) == (
        100, 128, "adam", 1e-4, "constant",
    )  # fmt: skip
    assert (m.attack.eps, m.attack.steps, m.attack.random_start) == (0.4, 50, "step")
    assert m.attack.alpha_rel * m.attack.eps == pytest.approx(0.01)
    assert (m.eps_schedule, m.eps_kwargs) == ("cycle_cos", {"peak": 0.6})
    net = models.build(m.model, dataset="mnist", **m.model_kwargs)
    assert sum(p.numel() for p in net.parameters()) == 3_274_634
    c = exps["mnist-lenet-constant"].config
    assert c.eps_schedule == "constant" and c.attack == m.attack
    for arch in ("vgg16", "resnet18"):
        for sch, name in (("constant", "constant"), ("cosine", "cycle_cos"),
                          ("linear", "cycle_linear")):  # fmt: skip
            e = exps[f"cifar10-{arch}-{name}"]
            cfg = e.config
            assert e.ensemble and e.dataset == "cifar10-jpeg"
            assert cfg == train.cifar10_periodic(train.preset(f"cifar10-{arch}"), sch)
            assert cfg.periods == [0, 100, 150, 200] and cfg.epochs == 200
            assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.batch_size) == (
                "sgd", 0.1, 0.9, 128,
            )  # fmt: skip
            assert cfg.lr_schedule == "cycle_jump" and cfg.augment == "crop_flip"
            assert cfg.attack.eps == pytest.approx(8 / 255) and cfg.attack.steps == 10
            assert cfg.attack.alpha_rel * cfg.attack.eps == pytest.approx(2 / 255)
            assert cfg.model_kwargs == {"width": 0.5, "mean": 0.0, "std": 1.0}
            if sch == "cosine":
                assert cfg.eps_kwargs["peak"] == pytest.approx(16 / 255)


def test_full_smoke_travels_only_what_the_carry_plan_names(common, tmp_path):
    """Each simulated device call starts on a fresh folder holding only the paths
    ``plan`` names (the state without the parked run files, never ``init.pt``: it
    is rebuilt from the seed), its state comes back through ``pack`` / ``unpack``;
    the results, the weights and the per-epoch metrics (distance from init included)
    are those of one uninterrupted call."""
    import _full
    import torch

    quiet = lambda *a: None  # noqa: E731
    one = tmp_path / "one"
    assert _full.run(smoke=True, budget=1e6, state=one, keep_weights=True, log=quiet)
    home = tmp_path / "home" / "runs"
    state, parked, data = home / "full", home / "full_parked", home / "full_data"
    carry = _full.plan(state, parked, data, smoke=True)
    calls, stops = 0, 0
    while carry:
        dev = tmp_path / f"dev{calls}" / "runs"
        for p in carry:
            if p.is_dir():
                shutil.copytree(p, dev / p.relative_to(home))
        assert not list(dev.rglob("init.pt")) and not list(dev.rglob("*_parked"))
        if not _full.run(
            smoke=True,
            budget=0.01,
            state=dev / "full",
            data_root=dev / "full_data",
            keep_weights=True,
            log=quiet,
        ):
            stops += 1  # fmt: skip
        _full.unpack(_full_out(_full, dev), state)
        carry = _full.plan(state, parked, data, smoke=True)
        calls += 1
        assert calls < 60
    assert calls >= 10 and not list(state.rglob("run/*.pt"))  # weights parked
    for name in ("mnist-lenet-cycle_cos", "cifar10-vgg16-cycle_cos"):
        a = json.loads((one / name / "result.json").read_text())
        b = json.loads((state / name / "result.json").read_text())
        for k in ("final", "ensemble", "config"):
            assert a.get(k) == b.get(k), (name, k)
        ma = (one / name / "run" / "metrics.jsonl").read_text().splitlines()
        mb = (state / name / "run" / "metrics.jsonl").read_text().splitlines()
        strip = lambda rows: [  # noqa: E731
            {k: v for k, v in json.loads(r).items() if "time" not in k} for r in rows
        ]
        assert strip(ma) == strip(mb) and "dist_init" in ma[-1]
        for f in (one / name / "run").glob("*.pt"):
            if f.name in ("init.pt", "resume.pt"):
                continue
            wa = torch.load(f, weights_only=True)
            wb = torch.load(parked / name / "run" / f.name, weights_only=True)
            sa, sb = wa.get("model", wa), wb.get("model", wb)
            assert all(torch.equal(sa[k], sb[k]) for k in sa), (name, f.name)


def _full_out(_full, dev):
    out = dev.parent / "out"
    _full.pack(out, dev / "full")
    return out


def test_full_smoke_in_chunks_gives_the_one_call_result(common, tmp_path):
    """``run_study.py full --smoke``: calls with a tiny budget stop at a training step
    or a stage boundary (one step or stage each) and resume; their results and final
    weights are those of one uninterrupted call; ``pack`` / ``unpack`` carry the
    state in <= 15 MiB parts."""
    import _full
    import torch

    one, chunked = tmp_path / "one", tmp_path / "chunked"
    quiet = lambda *a: None  # noqa: E731
    assert _full.run(smoke=True, budget=1e6, state=one, keep_weights=True, log=quiet)
    calls = 0
    while not _full.run(smoke=True, budget=0.01, state=chunked, keep_weights=True,
                        log=quiet):  # fmt: skip
        calls += 1
        assert calls < 40
    assert calls >= 10  # 12 training steps and 3 evaluations, one per call
    for name in ("mnist-lenet-cycle_cos", "cifar10-vgg16-cycle_cos"):
        a = json.loads((one / name / "result.json").read_text())
        b = json.loads((chunked / name / "result.json").read_text())
        for k in ("final", "ensemble", "config"):
            assert a.get(k) == b.get(k), (name, k)
        wa = torch.load(one / name / "run" / "final.pt", weights_only=True)
        wb = torch.load(chunked / name / "run" / "final.pt", weights_only=True)
        sa, sb = wa.get("model", wa), wb.get("model", wb)
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    parts = _full.pack(tmp_path / "out", one)
    assert parts and all(p.stat().st_size <= _full.PART_BYTES for p in parts)
    back = _full.unpack(tmp_path / "out", tmp_path / "restored")
    name = "cifar10-vgg16-cycle_cos/result.json"
    assert (back / name).read_text() == (one / name).read_text()

"""The demo's summary: ``summary.json`` (every number) and ``summary.md`` (the table,
findings read off the numbers, what to look for, stage timings)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import io
from ._spec import DemoConfig, RunSpec, runs
from ._stages import Context

__all__ = ["summary"]


def _run_row(cfg: DemoConfig, r: RunSpec, res: dict[str, dict[str, Any]]) -> dict:
    """The numbers of one run for the summary table."""
    tr = res["train"][r.tag]
    row: dict[str, Any] = {
        "eps": r.eps,
        "schedule": r.schedule,
        "final_train_loss": tr.final("train_loss"),
        "final_train_acc": tr.final("train_acc"),
        "dist_init": tr.final("dist_init") if "dist_init" in tr.metrics else None,
    }
    for key, name in [
        ("quick@train_eps", "quick_train_eps"),
        (f"quick@{cfg.eval_eps:g}", f"quick_eps{cfg.eval_eps:g}"),
        (f"{cfg.strong_preset}@train_eps", f"{cfg.strong_preset}_train_eps"),
    ]:
        ev = res["evaluate"].get(f"{r.tag}/{key}")
        if ev is not None:
            if name == "quick_train_eps":
                row["clean_acc"] = ev["clean_acc"]
            row[f"robust_acc_{name}"] = ev["robust_acc"]
    h = res["hessian"].get(r.tag)
    if h is not None:
        row["hessian_top_clean"] = h["clean"][0]
        row["hessian_top_adversarial"] = h["adversarial"][0]
    sc = res["scattering"].get(r.tag)
    if sc is not None:
        row["scatter_ratio_median_smallest_s"] = float(
            np.median(np.asarray(sc.ratio)[0, :, 0])
        )
        row["scatter_cosine_median_smallest_s"] = float(
            np.median(np.asarray(sc.cosine)[0, :, 0])
        )
        row["scatter_excess_median"] = float(np.median(sc.excess()))
    for kind in ("clean", "adversarial"):
        surf = res["surface"].get(f"{r.tag}/{kind}")
        if surf is not None:
            row[f"surface_{kind}_center_loss"] = surf.center_loss
            row[f"surface_{kind}_max_loss"] = float(np.max(surf.loss))
    return row


def summary(
    ctx: Context,
    res: dict[str, dict[str, Any]],
    timings: dict[str, float],
    figures: list[Path],
    *,
    cpu: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Collect the numbers per run, write ``summary.json`` and ``summary.md``."""
    cfg, out, evals = ctx.cfg, ctx.out, res["evaluate"]
    ens = {k.split("/", 1)[1]: v for k, v in evals.items() if "+ensemble" in k}
    summary = {
        "config": cfg.to_dict(),
        "device": str(ctx.device),
        "threads": torch.get_num_threads(),
        "timings_s": timings,
        "total_s": round(sum(timings.values()), 1),
        "cpu_timings_s": cpu or {},
        "total_cpu_s": round(sum((cpu or {}).values()), 1),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "cumulative_timings_s": _cumulative_timings(out, timings),
        "runs": {r.tag: _run_row(cfg, r, res) for r in runs(cfg)},
        "ensemble": ens,
        "evaluations": evals,
        "figures": [str(p.relative_to(out)) for p in figures],
        "provenance": io.provenance(),
    }
    with io.atomic_write(out / "summary.json", "w") as f:
        json.dump(io._jsonable(summary), f, indent=1)
    with io.atomic_write(out / "summary.md", "w") as f:
        f.write(_markdown(cfg, summary))
    return summary


def _cumulative_timings(out: Path, timings: dict[str, float]) -> dict[str, float]:
    """Add this invocation's stage times to ``results/timings.json`` (a resumed run
    reports the compute spent over every invocation, not only the last one)."""
    path = out / "results" / "timings.json"
    total: dict[str, float] = {}
    if path.exists():
        try:
            total = io.read_json(path)
        except io.CorruptFileError:
            total = {}
    for k, v in timings.items():
        total[k] = round(total.get(k, 0.0) + v, 2)
    with io.atomic_write(path, "w") as f:
        json.dump(total, f, indent=1)
    return total


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100 * v:.1f}" if pct else f"{v:.3g}"


def _findings(cfg: DemoConfig, s: dict[str, Any]) -> list[str]:
    """Plain statements read off the numbers (no claim beyond them)."""
    runs = s["runs"]
    const = {t: r for t, r in runs.items() if r["schedule"] == "constant"}
    out = []
    stalled = [
        t for t, r in const.items() if r["final_train_acc"] < 0.2 and r["eps"] > 0
    ]
    moved = ", ".join(
        f"eps={r['eps']:g}: {_fmt(r['dist_init'])}" for r in const.values()
    )
    if stalled:
        eps_s = ", ".join(f"{const[t]['eps']:g}" for t in stalled)
        out.append(
            f"Constant-schedule training stalled near the initialisation at eps = {eps_s}"
            f" (robust training accuracy below 20 % after {cfg.epochs} epochs)."
        )
    else:
        out.append(
            "No constant-schedule run stalled (all reached >= 20 % robust training accuracy)."
        )
    out.append(f"Distance from the initialisation after training: {moved}.")
    per = [t for t, r in runs.items() if r["schedule"] == "periodic"]
    for t in per:
        p = runs[t]
        c = const.get(f"constant_eps{p['eps']:g}")
        if c is not None and "clean_acc" in p and "clean_acc" in c:
            out.append(
                f"At eps = {p['eps']:g} the periodic schedule reached "
                f"{_fmt(p['clean_acc'], True)} % clean / "
                f"{_fmt(p.get('robust_acc_quick_train_eps'), True)} % robust (PGD-20) "
                f"accuracy, the constant one {_fmt(c['clean_acc'], True)} % / "
                f"{_fmt(c.get('robust_acc_quick_train_eps'), True)} %."
            )
    if all("hessian_top_clean" in r for r in const.values()):
        out.append(
            "Top Hessian eigenvalue (clean / adversarial loss): "
            + ", ".join(
                f"eps={r['eps']:g}: {_fmt(r['hessian_top_clean'])} / "
                f"{_fmt(r['hessian_top_adversarial'])}"
                for r in const.values()
            )
            + "."
        )
    if all("scatter_ratio_median_smallest_s" in r for r in const.values()):
        s0 = min(cfg.scatter_scales)
        out.append(
            f"Gradient-Lipschitz ratio at s = {s0:g} (median): "
            + ", ".join(
                f"eps={r['eps']:g}: {_fmt(r['scatter_ratio_median_smallest_s'])}"
                for r in const.values()
            )
            + "; a ratio that is much larger for eps > 0 than for eps = 0 is gradient "
            "scattering (Proposition 2)."
        )
    return out


def _markdown(cfg: DemoConfig, s: dict[str, Any]) -> str:
    sp = cfg.strong_preset
    lines = [
        "# landscape demo: a small study on MNIST",
        "",
        f"{cfg.model} (width {cfg.width:g}) on {cfg.num_train} {cfg.dataset} training images, "
        f"{cfg.epochs} epochs of PGD-{cfg.train_steps} adversarial training (Adam, lr "
        f"{cfg.lr:g}); evaluated on {cfg.eval_num} test images (quick protocol = PGD-20; "
        f"'{sp}' protocol on {cfg.strong_num}). Device: {s['device']} "
        f"({s['threads']} threads), total {s['total_s']:.0f} s. This is a CPU-size "
        "illustration, not the paper's full experiment.",
        "",
        f"| run | clean acc % | robust % @ train eps | robust % @ {cfg.eval_eps:g} | "
        f"{sp} % @ train eps (n={cfg.strong_num}) | dist from init | lambda_max clean | lambda_max adv | "
        "scatter excess |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for tag, r in s["runs"].items():
        lines.append(
            f"| {tag} | {_fmt(r.get('clean_acc'), True)} | "
            f"{_fmt(r.get('robust_acc_quick_train_eps'), True)} | "
            f"{_fmt(r.get(f'robust_acc_quick_eps{cfg.eval_eps:g}'), True)} | "
            f"{_fmt(r.get(f'robust_acc_{sp}_train_eps'), True)} | "
            f"{_fmt(r.get('dist_init'))} | {_fmt(r.get('hessian_top_clean'))} | "
            f"{_fmt(r.get('hessian_top_adversarial'))} | "
            f"{_fmt(r.get('scatter_excess_median'))} |"
        )
    for key, ev in s["ensemble"].items():
        lines.append(
            f"\nEnsemble of the periodic run's end-of-period models, {key}: clean "
            f"{_fmt(ev['clean_acc'], True)} %, robust {_fmt(ev['robust_acc'], True)} % "
            f"(eps {ev['eps']:g})."
        )
    failed = sorted(
        f"{k} {name}"
        for k, ev in s["evaluations"].items()
        for name, ok in (ev.get("checks") or {}).items()
        if ok is False
    )
    checked = [k for k, ev in s["evaluations"].items() if ev.get("checks")]
    if checked:
        lines.append(
            f"\nGradient-masking checks ran with the '{sp}' protocol on {len(checked)} "
            "models: "
            + ("all passed." if not failed else "FAILED: " + "; ".join(failed) + ".")
        )
    lines += ["", "## Findings (computed from the numbers above)", ""]
    lines += [f"- {f}" for f in _findings(cfg, s)]
    return "\n".join(lines + _notes(s)) + "\n"


def _notes(s: dict[str, Any]) -> list[str]:
    """What to look for in the figures, and the stage timings."""
    lines = [
        "",
        "## What to look for",
        "",
        "- Learning curves (`figures/learning_curves.png`): the larger the training eps, "
        "the slower the robust training loss falls and the closer the weights stay to "
        "their initialisation (the paper's 'large eps stalls' observation).",
        "- Hessian (`figures/hessian_top_eigenvalue.png`) and surfaces "
        "(`figures/surfaces.png`, `figures/surfaces.html`, interactive): curvature of clean vs "
        "adversarial loss per training eps.",
        "- Scattering (`figures/scattering.png`): the ratio "
        "||g(w+sv)-g(w)||/||sv|| grows as s -> 0 when eps > 0 (non-vanishing excess, "
        "Proposition 2); at eps = 0 it stays bounded.",
    ]
    cum, cpu = s.get("cumulative_timings_s", {}), s.get("cpu_timings_s", {})
    load = ", ".join(f"{v:g}" for v in s.get("load_average", []))
    lines += [
        "",
        "## Stage timings (s): wall this invocation / all invocations in this "
        f"folder; CPU this invocation (load average at the end: {load})",
    ]
    lines += [""] + [
        f"- {k}: {v:.1f} / {cum.get(k, v):.1f}; CPU {cpu.get(k, float('nan')):.1f}"
        for k, v in s["timings_s"].items()
    ]
    return lines

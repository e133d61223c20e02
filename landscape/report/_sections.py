"""The analyses of a report, one function per section, each cached on disk.

A section computes its results (``landscape.io.Result`` objects, saved under
``cache/``) and a flat dict of numbers. A finished section writes ``cache/NAME.json``
last, with a fingerprint of the model, the data and the settings; a rerun with the
same fingerprint loads the section instead of recomputing it, so a killed report
resumes at the first unfinished section (the surfaces also resume mid-grid).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import attacks, directions, evaluate, hessian, io, scattering, surface
from ..hessian import Density, Eigenpairs
from ..scattering import ScatteringResult
from ..surface import Surface
from ._budget import Budget

__all__ = ["Context", "SECTIONS", "fingerprint", "first_samples", "run_section"]

Batches = list[tuple[Tensor, Tensor]]


@dataclasses.dataclass(frozen=True)
class Context:
    """Everything a section needs (built once by :func:`~landscape.report.build_report`)."""

    model: nn.Module
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    train: Batches
    test: Batches
    eps: float
    norm: str
    budget: Budget
    cache: Path
    seed: int
    progressbar: bool
    fingerprint: str

    def generator(self, offset: int) -> torch.Generator:
        """A generator per section, so a cached section does not shift the others."""
        return torch.Generator().manual_seed(self.seed + offset)

    def attack(self) -> attacks.PGD:
        """The PGD attack that makes the fixed adversarial examples (and that the
        scattering section replays): one run with the quick preset's steps."""
        return attacks.PGD(eps=self.eps, norm=self.norm, steps=self.budget.attack_steps)

    def partial(self, name: str) -> Path:
        """Where a section keeps its partial state (resumes mid-section); named after
        the fingerprint, so other settings never meet a stale partial file."""
        return self.cache / f"{name}.{self.fingerprint[:16]}.partial.npz"

    def subset(self, num: int) -> Batches:
        """The first ``num`` training points, as batches."""
        return _head(self.train, num)


def first_samples(data: Any, num: int, *, batch_size: int = 256) -> Batches:
    """The first ``num`` examples of ``data`` as CPU batches of at most ``batch_size``.

    ``data`` is an ``(x, y)`` pair of tensors or any iterable of ``(x, y)`` batches (a
    list, a streaming ``DataLoader``); iteration stops as soon as ``num`` examples
    are in, so a large loader is never read (or copied) whole.

    Raises:
        ValueError: ``data`` yields something other than ``(x, y)`` pairs, or nothing.
    """
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and isinstance(data[0], Tensor)
        and isinstance(data[1], Tensor)
        and data[0].shape[:1] == data[1].shape[:1]
        and data[1].ndim == 1
    ):
        data = [(data[0], data[1])]
    out: Batches = []
    have = 0
    for batch in data:
        if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
            raise ValueError(
                "data must yield (x, y) batches (an (x, y) pair of tensors, a list of "
                f"pairs or a DataLoader), got {type(batch).__name__}"
            )
        x, y = batch[0], batch[1]
        take = min(num - have, len(y))
        for i in range(0, take, batch_size):
            j = min(i + batch_size, take)
            out.append((x[i:j].detach().cpu(), y[i:j].detach().cpu().long()))
        have += take
        if have >= num:
            break
    if not out:
        raise ValueError("data yielded no examples")
    return out


def _head(batches: Batches, num: int) -> Batches:
    out, have = [], 0
    for x, y in batches:
        if have >= num:
            break
        k = min(num - have, len(y))
        out.append((x[:k], y[:k]))
        have += k
    return out


def fingerprint(model: nn.Module, batches: Batches, settings: dict) -> str:
    """SHA-256 over the weights, the data and the settings (the cache key)."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    for x, y in batches:
        h.update(x.contiguous().numpy().tobytes())
        h.update(y.contiguous().numpy().tobytes())
    return h.hexdigest()


def _sig(v: float) -> float:
    """``v`` to 7 significant digits (JSON stays readable; small values survive)."""
    return float(f"{float(v):.7g}")


def _floats(a: Any) -> Any:
    arr = np.asarray(a, dtype=float)
    return np.vectorize(_sig, otypes=[float])(arr).tolist() if arr.size else []


def _accuracy(ctx: Context) -> tuple[dict, dict]:
    b = ctx.budget
    eps_list = sorted({ctx.eps / 2, ctx.eps})
    res = evaluate.evaluate(
        ctx.model,
        _head(ctx.test, b.eval_num),
        eps=eps_list,
        norm=ctx.norm,
        preset=b.eval_preset,
        scale=b.eval_scale,
        checks=True,
        check_samples=b.check_samples,
        state_path=ctx.partial("accuracy_state"),
        generator=ctx.generator(1),
        progressbar=ctx.progressbar,
    )
    numbers = {
        "num_samples": res.num_samples,
        "preset": res.preset,
        "norm": res.norm,
        "eps": _floats(res.eps),
        "clean_accuracy": _sig(res.clean_accuracy),
        "robust_accuracy": _floats(res.robust_accuracy),
        "after_attack": {k: _floats(v) for k, v in res.per_attack_accuracy().items()},
        "checks": {
            k: {"passed": c.get("passed"), "detail": str(c.get("detail", ""))}
            for k, c in res.checks.items()
        },
    }
    return numbers, {"eval": res}


def _negative_mass(dens: Density) -> float:
    """Spectral mass on clearly negative eigenvalues: the quadrature weight (averaged
    over probes) of Ritz values below ``-1e-3 max |Ritz value|`` (no broadening, so
    the bulk at zero does not leak below it)."""
    nodes = np.asarray(dens.nodes, dtype=float)
    weights = np.asarray(dens.weights, dtype=float)
    ok = np.isfinite(nodes) & np.isfinite(weights)
    if not ok.any():
        return float("nan")
    tol = 1e-3 * np.abs(nodes[ok]).max()
    neg = np.where(ok & (nodes < -tol), weights, 0.0).sum()
    return _sig(neg / max(nodes.shape[0], 1))


def _curvature(ctx: Context) -> tuple[dict, dict]:
    b = ctx.budget
    clean = ctx.subset(b.hessian_num)
    adv = attacks.perturb_batches(
        ctx.model, clean, ctx.attack(), generator=ctx.generator(2)
    )
    results: dict[str, Any] = {}
    numbers: dict[str, Any] = {"num_samples": sum(len(y) for _, y in clean)}
    for tag, batches in (("clean", clean), ("adversarial", adv)):
        eig = hessian.top_eigenvalues(
            ctx.model,
            ctx.loss_fn,
            batches,
            num=b.num_eigenvalues,
            return_vectors=False,
            generator=ctx.generator(3),
            progressbar=ctx.progressbar,
        )
        dens = hessian.lanczos_density(
            ctx.model,
            ctx.loss_fn,
            batches,
            max_iter=b.density_max_iter,
            num_runs=b.density_runs,
            generator=ctx.generator(4),
            progressbar=ctx.progressbar,
        )
        results[f"top_{tag}"], results[f"density_{tag}"] = eig, dens
        nodes = np.asarray(dens.nodes, dtype=float)
        nodes = nodes[np.isfinite(nodes)]
        numbers[tag] = {
            "top_eigenvalues": _floats(eig.eigenvalues),
            "converged": bool(eig.converged),
            "hvps": int(eig.num_matvecs + dens.num_matvecs),
            "ritz_min": _sig(float(nodes.min())) if nodes.size else None,
            "ritz_max": _sig(float(nodes.max())) if nodes.size else None,
            "negative_mass": _negative_mass(dens),
        }
    return numbers, results


def _surface(ctx: Context) -> tuple[dict, dict]:
    b = ctx.budget
    batches = ctx.subset(b.surface_num)
    dirs = directions.random_directions(
        ctx.model, num=2, norm="filter", ignore="biasbn", generator=ctx.generator(5)
    )
    xs = np.linspace(-1.0, 1.0, b.grid)
    common = dict(xs=xs, ys=xs, progressbar=ctx.progressbar)
    clean = surface.loss_surface(
        ctx.model,
        ctx.loss_fn,
        batches,
        dirs,
        partial_path=ctx.partial("surface_clean"),
        **common,
    )
    adv = surface.loss_surface(
        ctx.model,
        ctx.loss_fn,
        batches,
        dirs,
        adversarial="fixed",
        attack=ctx.attack(),
        generator=ctx.generator(6),
        partial_path=ctx.partial("surface_adversarial"),
        **common,
    )
    numbers: dict[str, Any] = {
        "grid": _floats(xs),
        "num_samples": sum(len(y) for _, y in batches),
    }
    for tag, s in (("clean", clean), ("adversarial", adv)):
        loss = np.asarray(s.loss, dtype=float)
        numbers[tag] = {
            "center_loss": _sig(float(s.center_loss)),
            "min_loss": _sig(float(np.nanmin(loss))),
            "max_loss": _sig(float(np.nanmax(loss))),
            "loss": _floats(loss),
        }
        if s.accuracy is not None:
            numbers[tag]["accuracy"] = _floats(s.accuracy)
    return numbers, {"clean": clean, "adversarial": adv}


def _scattering(ctx: Context) -> tuple[dict, dict]:
    b = ctx.budget
    eps_list = [0.0, ctx.eps / 2, ctx.eps]
    res = scattering.scattering(
        ctx.model,
        ctx.loss_fn,
        ctx.subset(b.scatter_num),
        attack=ctx.attack(),
        eps=eps_list,
        scales=b.scatter_scales,
        num_directions=b.scatter_directions,
        generator=ctx.generator(7),
        progressbar=ctx.progressbar,
    )
    ratio = np.asarray(res.ratio, dtype=float)  # (E, D, S, B)
    med = np.median(
        np.moveaxis(ratio, 2, 1).reshape(len(eps_list), ratio.shape[2], -1), 2
    )
    exc = np.median(res.excess().reshape(len(eps_list), -1), axis=1)
    numbers = {
        "eps": _floats(eps_list),
        "scales": _floats(res.scales),
        "median_ratio": _floats(med),
        "median_excess": _floats(exc),
    }
    return numbers, {"scattering": res}


# name -> (compute, {result key: Result class})
SECTIONS: dict[str, tuple[Callable[[Context], tuple[dict, dict]], dict[str, type]]] = {
    "accuracy": (_accuracy, {"eval": evaluate.EvalResult}),
    "curvature": (
        _curvature,
        {
            "top_clean": Eigenpairs,
            "density_clean": Density,
            "top_adversarial": Eigenpairs,
            "density_adversarial": Density,
        },
    ),
    "surface": (_surface, {"clean": Surface, "adversarial": Surface}),
    "scattering": (_scattering, {"scattering": ScatteringResult}),
}


def run_section(ctx: Context, name: str) -> tuple[dict, dict, bool]:
    """Compute section ``name`` or load it from the cache.

    Returns:
        ``(numbers, results, from_cache)``.
    """
    compute, kinds = SECTIONS[name]
    done = ctx.cache / f"{name}.json"
    if done.exists():
        info = json.loads(done.read_text())
        if info.get("fingerprint") == ctx.fingerprint:
            results = {
                k: cls.load(ctx.cache / f"{name}_{k}.npz") for k, cls in kinds.items()
            }
            return info["numbers"], results, True
    numbers, results = compute(ctx)
    for k, r in results.items():
        r.save(ctx.cache / f"{name}_{k}.npz")
    with io.atomic_write(done, "w") as f:
        json.dump({"fingerprint": ctx.fingerprint, "numbers": numbers}, f, indent=1)
    return numbers, results, False

"""Landscape metrics along a run (:class:`Tracking`): curvature, gradient norm and
sharpness of the clean and the adversarial loss of a fixed batch at chosen epochs."""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .. import _utils, attacks, hessian, sharpness

__all__ = ["Tracking", "track"]

_ON = ("heldout", "train")
_DATA = ("clean", "adv")


@dataclasses.dataclass(frozen=True)
class Tracking:
    """Landscape metrics recorded along a run (``Runtime(track=Tracking(...))``), at
    the end of every ``every``-th epoch and of the epochs listed in ``epochs``, into
    the run's metrics (rank 0; its randomness forked, so the run is the same with or
    without it; the time it took in ``time_track``).

    On a fixed batch of ``num`` examples (``on="heldout"``: the first of the
    validation split when the run has one, else of the test data; ``"train"``: the
    first training examples) and its adversarial examples, attacked afresh at every
    tracked epoch by ``attack`` (the per-epoch evaluation attack at the target eps
    when None), held fixed during the measurements (the loss at fixed adversarial
    examples, STYLE.md section 2), for ``clean`` and ``adv``:

    - ``loss_<d>`` and ``grad_norm_<d>``: the mean loss and the norm of its gradient;
    - ``lam_max_<d>`` (the ``d`` in ``hessian_on``): the top Hessian eigenvalue
      (Lanczos, ``max_iter`` iterations at most, tolerance ``tol``; ``max_iter=0``
      skips it), with its Ritz residual ``lam_max_residual_<d>`` (no warning when it
      is above ``tol``);
    - ``trace_<d>`` (the ``d`` in ``hessian_on``): the Hessian trace (Hutch++ with
      ``num_matvecs`` products; 0 skips it);
    - ``sharp_<d>_<name>``: each ``sharpness`` measure
      (:class:`landscape.sharpness.WorstCase` / ``AverageCase``), on the data
      ``sharpness_on`` names (default the adversarial batch; a measure with an
      ``attack`` of its own re-attacks from the clean batch).

    Attributes:
        every: track every ``every`` epochs (0: only ``epochs``).
        epochs: 1-based epochs to track as well.
        num: examples of the fixed batch.
        on: ``"heldout"`` or ``"train"``.
        attack: the attack of the fixed adversarial batch (None: the per-epoch
            evaluation attack at the run's target eps).
        max_iter: Lanczos iterations of the top eigenvalue (0: none).
        tol: Lanczos tolerance.
        num_matvecs: Hutch++ budget of the trace (0: none).
        sharpness: sharpness measures.
        sharpness_on: ``("adv",)``, ``("clean",)`` or both.
        hessian_on: the losses of the eigenvalue and the trace: ``("clean",
            "adv")`` (default), ``("adv",)`` (half the Hessian-vector products) or
            ``("clean",)``.
    """

    every: int = 5
    epochs: tuple[int, ...] = ()
    num: int = 256
    on: str = "heldout"
    attack: attacks.Attack | None = None
    max_iter: int = 20
    tol: float = 1e-3
    num_matvecs: int = 20
    sharpness: tuple[sharpness.Measure, ...] = ()
    sharpness_on: tuple[str, ...] = ("adv",)
    hessian_on: tuple[str, ...] = ("clean", "adv")

    def __post_init__(self) -> None:
        for name in ("every", "max_iter", "num_matvecs"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
            object.__setattr__(self, name, int(v))
        if int(self.num) != self.num or self.num < 1:
            raise ValueError(f"num must be an integer >= 1, got {self.num!r}")
        object.__setattr__(self, "epochs", tuple(int(e) for e in self.epochs))
        if any(e < 1 for e in self.epochs):
            raise ValueError(f"epochs are 1-based epoch numbers, got {self.epochs}")
        if self.on not in _ON:
            raise ValueError(f"on must be one of {_ON}, got {self.on!r}")
        if self.attack is not None and not isinstance(self.attack, attacks.Attack):
            raise TypeError(
                "attack must be an attack value or None, got "
                f"{type(self.attack).__name__}"
            )
        ms = tuple(self.sharpness)
        if not all(isinstance(m, sharpness.Measure) for m in ms):
            raise TypeError(
                "sharpness must hold sharpness measures (sharpness.WorstCase(...), "
                "sharpness.AverageCase(...))"
            )
        object.__setattr__(self, "sharpness", ms)
        on = tuple(self.sharpness_on)
        if not on or any(d not in _DATA for d in on):
            raise ValueError(f"sharpness_on must name some of {_DATA}, got {on!r}")
        object.__setattr__(self, "sharpness_on", on)
        on = tuple(self.hessian_on)
        if not on or any(d not in _DATA for d in on):
            raise ValueError(f"hessian_on must name some of {_DATA}, got {on!r}")
        object.__setattr__(self, "hessian_on", on)
        if not (self.every or self.epochs):
            raise ValueError("give every >= 1 or a list of epochs to track")

    def due(self, epoch: int) -> bool:
        """Whether the 1-based ``epoch`` is tracked."""
        return epoch in self.epochs or (self.every > 0 and epoch % self.every == 0)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["attack"] = None if self.attack is None else self.attack.to_dict()
        d["sharpness"] = [m.to_dict() for m in self.sharpness]
        d["epochs"], d["sharpness_on"] = list(self.epochs), list(self.sharpness_on)
        d["hessian_on"] = list(self.hessian_on)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tracking:
        d = dict(d)
        if d.get("attack") is not None:
            d["attack"] = attacks.Attack.from_dict(d["attack"])
        d["sharpness"] = tuple(
            sharpness.Measure.from_dict(m) for m in d.get("sharpness", ())
        )
        return cls(**d)


def _grad_norm(model: nn.Module, loss_fn, data) -> tuple[float, float]:
    """The mean loss over ``data`` and the norm of its gradient (eval mode)."""
    params = [p for p in model.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    loss, n = 0.0, 0
    with _utils.eval_mode(model), torch.enable_grad():
        for x, y in data:
            value = loss_fn(model(x), y) * len(y)
            grads = torch.autograd.grad(value, params, allow_unused=True)
            for t, g in zip(total, grads):
                if g is not None:
                    t.add_(g)
            loss, n = loss + float(value.detach()), n + len(y)
    norm = torch.linalg.vector_norm(torch.stack([t.double().norm() for t in total]))
    return loss / max(n, 1), float(norm) / max(n, 1)


def track(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    clean: list[tuple[Tensor, Tensor]],
    spec: Tracking,
    attack: attacks.Attack,
    seed: int,
) -> dict[str, Any]:
    """The tracked metrics of one epoch (see :class:`Tracking`), with their time in
    ``time_track``; ``attack`` is the fixed batch's attack, ``seed`` the epoch's."""
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    adv = attacks.perturb_batches(model, clean, attack, generator=gen) if (
        attack.eps > 0
    ) else clean  # fmt: skip
    out: dict[str, Any] = {}
    for tag, data in (("clean", clean), ("adv", adv)):
        out[f"loss_{tag}"], out[f"grad_norm_{tag}"] = _grad_norm(model, loss_fn, data)
        if spec.max_iter and tag in spec.hessian_on:
            with warnings.catch_warnings():  # the residual is recorded instead
                warnings.filterwarnings("ignore", "top_eigenvalues", UserWarning)
                eig = hessian.top_eigenvalues(
                    model, loss_fn, data, num=1, max_iter=spec.max_iter, tol=spec.tol,
                    return_vectors=False, generator=gen, check_deterministic=False,
                )  # fmt: skip
            out[f"lam_max_{tag}"] = float(eig.eigenvalues[0])
            if eig.residuals is not None:
                out[f"lam_max_residual_{tag}"] = float(eig.residuals[0])
        if spec.num_matvecs and tag in spec.hessian_on:
            tr = hessian.trace(
                model, loss_fn, data, num_matvecs=spec.num_matvecs, method="hutch++",
                generator=gen, check_deterministic=False,
            )  # fmt: skip
            out[f"trace_{tag}"] = float(tr.estimate)
    for m in spec.sharpness:
        for tag in spec.sharpness_on:
            data = clean if (tag == "clean" or m.attack is not None) else adv
            res = m(model, loss_fn, data, gen, distributed=False)
            out[f"sharp_{tag}_{m.name}"] = res.value
    for k, v in out.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = math.nan
    out["time_track"] = time.perf_counter() - t0
    return out

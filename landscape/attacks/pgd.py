"""PGD (Madry et al., 2018): projected gradient ascent on a loss inside the eps-ball,
for training and for evaluation; FGSM-RS (Wong et al., 2020) is its one-step case.

One value, :class:`PGD`, covers both uses:

- ``keep="last"`` (the default): one run from a random point of the ball, returning
  the last iterate: the attack of adversarial training and of the analyses'
  adversarial data. It takes input gradients only (``torch.autograd.grad`` with
  respect to the perturbation, :mod:`._input_grad` on CPU), in place, so a step never
  computes or accumulates weight gradients.
- ``keep="best"``: the evaluation PGD. Every run keeps, per example, its *best*
  iterate (the first misclassified point, or the highest-loss one); ``restarts``
  random restarts per step size re-attack only the points that no earlier run has
  broken, so the result is the per-example worst case; ``alpha`` / ``alpha_rel`` may
  be a grid of step sizes (combined per example); ``patience`` ends the restarts
  early; ``early_stop`` stops iterating a point once it is broken (the result does
  not change); losses ``"ce"``, ``"cw"`` (margin), ``"dlr"``; optional per-step
  traces.

The step size is absolute (``alpha``) or relative to the budget (``alpha_rel``, a
multiple of eps, which follows ``dataclasses.replace(attack, eps=...)``); by default
``2.5 * eps / steps`` (relative too).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _utils
from ._ball import ascend_, per_example_norm, project, project_, random_init, signed
from ._ball import step_direction as _direction
from ._base import Attack, Gen, Loss, Run, is_recorded_callable, summed
from ._input_grad import input_grad_mode
from ._losses import _check_first_output, _expand, get_loss
from ._runs import compact_now, finish, setup

__all__ = ["PGD", "FGSMRS"]

Alpha = float | tuple[float, ...] | None
_KEEP = ("last", "best")


def _grid(value: Alpha, name: str) -> Alpha:
    """``value`` as a float or a tuple of floats, each finite and > 0."""
    if value is None:
        return None
    vals = value if isinstance(value, (tuple, list)) else (value,)
    try:
        out = tuple(float(v) for v in vals)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a number or a list of numbers, got {value!r}"
        ) from None
    if not out or not all(math.isfinite(v) and v > 0 for v in out):
        raise ValueError(
            f"the step size {name} must be a finite number > 0 (a list: each entry), "
            f"got {value!r} "
            "(a step larger than eps is fine: FGSM-RS uses alpha_rel=1.25)"
        )
    return out if isinstance(value, (tuple, list)) else out[0]


@dataclasses.dataclass(frozen=True)
class PGD(Attack):
    """Projected gradient ascent (Madry et al., 2018); see the module docstring.

    Attributes:
        eps: budget (>= 0); ``eps=0`` returns ``x``.
        norm: ``"linf"`` (signed steps) or ``"l2"`` (normalised-gradient steps).
        steps: gradient steps per run (>= 1).
        alpha: absolute step size, or (``keep="best"``) a grid of them.
        alpha_rel: the step size as a multiple of eps (follows a change of eps), or
            a grid of multiples; give ``alpha`` or ``alpha_rel``, not both. Default
            (neither): ``2.5 * eps / steps``. A step larger than eps is legitimate.
        random_start: ``True``: start the (first) run at a uniform random point
            of the ball; ``False``: at ``x``; ``"step"``: at a uniform random point
            of the ball of radius the step size (per coordinate in
            ``[-alpha, alpha]`` for L-inf), the start of the released code of Liu et
            al. (NeurIPS 2020, ``util/attack.py``: ``(rand * 2 - 1) * step_size``),
            which follows a relative step under a schedule. Later restarts always
            start at a random point of the eps-ball. For an L2 evaluation start at
            ``x``: from a random point of the L2 ball, steps of ``2.5 eps / steps``
            turn along the sphere too slowly to reach the worst case (on a linear
            classifier 50 steps leave points unbroken that the closed form breaks).
        loss: ``None`` (the caller's loss: summed cross-entropy, or the training
            loss inside the trainer and the measured loss inside scattering),
            ``"ce"``, ``"cw"`` (margin), ``"dlr"`` or a callable ``(logits, y) ->
            per-example or scalar loss`` (recorded by name in JSON).
        restarts: runs per step size (``keep="best"``).
        patience: stop the restarts once ``patience`` restarts in a row (each over
            the whole step-size grid) broke no further point (``keep="best"``);
            None runs them all.
        keep: ``"last"``: one run, the last iterate (training); ``"best"``: per
            example the worst case over all runs (evaluation).
        early_stop: with ``keep="best"``, stop iterating a point once it is
            misclassified (its result is the first adversarial iterate; only the
            cost changes).

    A call's own options: ``train=True`` runs the model in train mode (BatchNorm
    batch statistics; ``keep="last"``, the trainer's ``attack_train_mode``);
    ``trace=True`` records per-step mean loss and robust accuracy of every run in
    ``info["trace"]`` (``keep="best"``). ``return_info=True`` returns ``success``,
    ``num_grad`` (input-gradient passes, summed over examples), ``seed`` and, with
    ``keep="best"``, ``num_forward`` and ``restart_curve`` (the points still
    unbroken after each restart that ran: robust accuracy vs restarts).

    Example:
        >>> import dataclasses, torch
        >>> atk = PGD(eps=0.1, steps=5)
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x, y = torch.rand(8, 1, 2, 2), torch.randint(0, 2, (8,))
        >>> xa = atk(model, x, y, torch.Generator().manual_seed(0))
        >>> bool((xa - x).abs().max() <= 0.1 + 1e-6)
        True
        >>> rel = PGD(eps=0.3, steps=10, alpha_rel=0.25)
        >>> dataclasses.replace(rel, eps=0.2).step_sizes()  # follows the budget
        (0.05,)
    """

    steps: int = 10
    alpha: Alpha = None
    alpha_rel: Alpha = None
    random_start: bool | str = True
    loss: Loss = None
    restarts: int = 1
    patience: int | None = None
    keep: str = "last"
    early_stop: bool = True

    # train: the model in train mode (keep="last"); trace: per-run traces (keep="best")
    options: ClassVar[tuple[str, ...]] = ("train", "trace")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._count("steps")
        self._count("restarts")
        if self.patience is not None:
            self._count("patience")
        object.__setattr__(self, "alpha", _grid(self.alpha, "alpha"))
        object.__setattr__(self, "alpha_rel", _grid(self.alpha_rel, "alpha_rel"))
        if self.alpha is not None and self.alpha_rel is not None:
            raise ValueError(
                "give the step size as alpha (absolute) or alpha_rel (a multiple of "
                f"eps), not both (got alpha={self.alpha!r}, "
                f"alpha_rel={self.alpha_rel!r})"
            )
        self._loss(none=True)
        if self.keep not in _KEEP:
            raise ValueError(f"keep must be 'last' or 'best', got {self.keep!r}")
        if not isinstance(self.early_stop, bool):
            raise TypeError("early_stop must be True or False")
        if not (isinstance(self.random_start, bool) or self.random_start == "step"):
            raise TypeError(
                "random_start must be True (a random point of the eps-ball), False "
                f"(start at x) or 'step' (of the step-size ball), got "
                f"{self.random_start!r}"
            )
        grid = len(self.step_sizes()) > 1
        if self.keep == "last" and (grid or self.restarts > 1 or self.patience):
            raise ValueError(
                "restarts, patience and a step-size grid keep the per-example worst "
                "case over runs: pass keep='best' (keep='last' is one run)"
            )

    def _default_name(self) -> str:
        name = f"pgd-{self.steps}"
        if self.loss is None or self.loss == "ce":
            return name
        loss = self.loss if isinstance(self.loss, str) else "custom"
        return f"{name}-{loss.removeprefix('callable:').split('.')[-1]}"

    def _default_alpha(self) -> float:
        """The step size when neither ``alpha`` nor ``alpha_rel`` is given."""
        return 2.5 * self.eps / self.steps

    def step_sizes(self) -> tuple[float, ...]:
        """The absolute step size(s) at this value's eps."""
        if self.alpha is not None:
            return self.alpha if isinstance(self.alpha, tuple) else (self.alpha,)
        if self.alpha_rel is not None:
            rel = self.alpha_rel if isinstance(self.alpha_rel, tuple) else (
                self.alpha_rel,
            )  # fmt: skip
            return tuple(a * self.eps for a in rel)
        return (self._default_alpha(),)

    # -- what an analysis that replays the attack asks for -------------------------
    def init(
        self, x: Tensor, generator: torch.Generator, alpha: float | None = None
    ) -> Tensor:
        """The starting perturbation of a run: a uniform random point of the eps-ball
        (``random_start=True``), of the ball of radius ``alpha`` (default: the step
        size; ``random_start="step"``) projected onto the eps-ball and the box, or
        zero."""
        if self.eps <= 0 or self.random_start is False:
            return torch.zeros_like(x)
        if self.random_start == "step":
            (step,) = self.step_sizes() if alpha is None else (alpha,)
            return project(
                random_init(x, min(step, self.eps), self.norm, generator),
                x,
                self.eps,
                self.norm,
            )
        return random_init(x, self.eps, self.norm, generator)

    def step(self, x: Tensor, delta: Tensor, grad: Tensor) -> Tensor:
        """One step from ``x + delta`` along the loss gradient ``grad`` (not in
        place): ascent by the step size (``keep="last"``) along ``sign(grad)``
        (L-inf) or ``grad / ||grad||_2`` (L2, per example), then projection onto
        the ball and the box. For replaying the attack where it cannot be called,
        e.g. under ``torch.func.vmap``."""
        (alpha,) = self.step_sizes()
        if self.norm == "linf":
            delta = delta + alpha * signed(grad)
        else:
            delta = delta + alpha * grad / (per_example_norm(grad) + 1e-12)
        return project(delta, x, self.eps, self.norm)

    def _run(
        self, model: nn.Module, x: Tensor, y: Tensor, gen: Gen, bar: bool, *,
        train: bool = False, trace: bool = False,
    ) -> Run:  # fmt: skip
        if self.keep == "last":
            if trace:
                raise ValueError("trace=True needs keep='best' (per-run traces)")
            return _last(self, model, x, y, gen, train)
        if train:
            raise ValueError("train=True is the training attack's: keep='last'")
        return _best(self, model, x, y, gen, trace, bar)


@dataclasses.dataclass(frozen=True)
class FGSMRS(PGD):
    """FGSM with a random start (Wong et al., 2020): :class:`PGD` with one step of
    ``alpha`` (default ``1.25 * eps``, relative) from a uniform point of the ball."""

    steps: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.steps != 1:
            raise ValueError(
                f"FGSMRS takes one step, got steps={self.steps}; use PGD(steps=...)"
            )

    def _default_name(self) -> str:
        return "fgsm-rs"

    def _default_alpha(self) -> float:
        return 1.25 * self.eps


# -------------------------------------------------------------- keep="last"
def _last(atk: PGD, model, x, y, generator, train: bool) -> Run:
    """One run from the start, the last iterate: the in-place training kernel."""
    eps, norm = atk.eps, atk.norm
    x = x.detach()
    seed = None
    if eps == 0:
        x_adv = x.clone()
    else:
        gen, seed = _utils.make_generator(generator, x.device)
        (alpha,) = atk.step_sizes()
        loss_fn = summed(atk.loss) or (
            lambda out, t: F.cross_entropy(out, t, reduction="sum")
        )
        delta = atk.init(x, gen)
        mode = _utils.train_mode if train else _utils.eval_mode
        fast = input_grad_mode(model, x)
        with mode(model), _utils.thin_conv_backend(model), torch.enable_grad():
            for _ in range(atk.steps):
                grad = _input_grad(model, loss_fn, x, delta, y, fast)
                ascend_(delta, grad, alpha, norm)
                project_(delta, x, eps, norm)
        x_adv = x + delta
    steps = atk.steps if eps > 0 else 0
    return x_adv, {"num_grad": steps * x.shape[0], "seed": seed}


def _input_grad(model, loss_fn, x: Tensor, delta: Tensor, y: Tensor, mode) -> Tensor:
    """d loss / d x at ``x + delta``: one input-gradient pass (no weight gradients)
    with the forward inside ``mode`` (:func:`input_grad_mode`)."""
    xa = (x + delta).requires_grad_(True)
    with mode:
        loss = loss_fn(model(xa), y)
    (grad,) = torch.autograd.grad(loss, xa)
    return grad


# -------------------------------------------------------------- keep="best"
def _per_example_loss(loss: Loss) -> Callable[[Tensor, Tensor], Tensor]:
    if loss is None:
        return get_loss("ce")
    if is_recorded_callable(loss):
        summed(loss)  # raises: pass the callable again
    return get_loss(loss)


def _one_run(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    delta: Tensor,
    *,
    eps: float,
    norm: str,
    alpha: float,
    steps: int,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    early_stop: bool,
    trace: list | None,
) -> tuple[Tensor, Tensor, Tensor, int, int]:
    """One PGD run on ``x``; returns best point, broken flags, best loss, #grad, #fwd."""
    n = x.shape[0]
    best_x = (x + delta).clone()
    best_loss = torch.full((n,), float("-inf"), device=x.device, dtype=x.dtype)
    broken = torch.zeros(n, dtype=torch.bool, device=x.device)
    idx = torch.arange(n, device=x.device)
    num_grad = num_fwd = 0
    losses, accs = [], []
    # the active set shrinks only at compact_now(t) (a host sync); in between, the
    # points broken since are masked: their best point stays the first adversarial
    for t in range(steps + 1):
        last = t == steps
        xi = (x[idx] + delta[idx]).detach()
        if not last:
            xi.requires_grad_(True)
        with torch.enable_grad() if not last else torch.no_grad():
            out = model(xi)
            lv = loss_fn(out, y[idx])
            if not last:
                (g,) = torch.autograd.grad(lv.sum(), xi)
        num_grad += 0 if last else idx.numel()
        num_fwd += idx.numel()
        lv = lv.detach()
        xi = xi.detach()
        wrong = out.detach().argmax(1) != y[idx]
        was = broken[idx]
        upd = ~was & (wrong | (lv > best_loss[idx]))
        best_x[idx] = torch.where(_expand(upd, xi), xi, best_x[idx])
        best_loss[idx] = torch.where(upd, lv, best_loss[idx])
        broken[idx] = was | wrong
        if trace is not None:  # a diagnostic: reads two numbers per step
            losses.append(lv.mean().item() if lv.numel() else float("nan"))
            accs.append(1.0 - broken.float().mean().item())
        if last:
            break
        if early_stop and compact_now(t + 1):
            keep = (~broken[idx]).nonzero().squeeze(1)
            idx, g = idx[keep], g[keep]
            if idx.numel() == 0:
                break
        delta[idx] = project(
            delta[idx] + alpha * _direction(g, norm), x[idx], eps, norm
        )
    if trace is not None:
        trace.append({"alpha": alpha, "loss": losses, "robust_accuracy": accs})
    return best_x, broken, best_loss, num_grad, num_fwd


def _restarts(model, x, y, st, atk: PGD, alphas, gen, progressbar, traces, loss_fn):
    """Restarts x step sizes on the points not yet broken (updates ``st`` in place);
    returns (#grad, #forward, unbroken count after each restart)."""
    broken, x_adv, best_loss = st
    num_grad = num_fwd = 0
    curve: list[int] = []
    bar = None
    if progressbar:
        from .._progress import bar as _bar

        bar = _bar(
            desc="pgd", total=atk.restarts * len(alphas), unit="runs", leave=False
        )
    for r in range(atk.restarts if alphas else 0):
        for a in alphas:
            idx = (~broken).nonzero().squeeze(1)
            if bar is not None:
                bar.update(1)
            if idx.numel() == 0:
                continue
            xs = x[idx]
            if r > 0:
                delta = random_init(xs, atk.eps, atk.norm, gen)
            else:
                delta = atk.init(xs, gen, a)
            bx, bb, bl, ng, nf = _one_run(
                model, xs, y[idx], delta, eps=atk.eps, norm=atk.norm, alpha=a,
                steps=atk.steps, loss_fn=loss_fn, early_stop=atk.early_stop,
                trace=traces,
            )  # fmt: skip
            num_grad, num_fwd = num_grad + ng, num_fwd + nf
            upd = bb | (bl > best_loss[idx])
            x_adv[idx[upd]] = bx[upd]
            best_loss[idx[upd]] = bl[upd]
            broken[idx[bb]] = True
            if traces is not None:
                traces[-1]["restart"] = r
        curve.append(int((~broken).sum()))
        p = atk.patience
        if p is not None and len(curve) > p and curve[-1] == curve[-1 - p]:
            break  # stable for `patience` restarts
    if bar is not None:
        bar.close()
    return num_grad, num_fwd, curve


def _best(atk: PGD, model, x, y, generator, trace, progressbar) -> Run:
    """The evaluation PGD: the per-example worst case over restarts x step sizes."""
    x, y, gen, seed = setup(x, y, generator)
    alphas = list(atk.step_sizes()) if atk.eps > 0 else []
    loss_fn = _per_example_loss(atk.loss)
    traces: list | None = [] if trace else None
    with _utils.eval_mode(model):
        with torch.no_grad():
            out = model(x)
        _check_first_output(out, "pgd", y)
        broken = out.argmax(1) != y
        x_adv = x.clone()
        best_loss = torch.full(
            (x.shape[0],), float("-inf"), device=x.device, dtype=x.dtype
        )
        st = (broken, x_adv, best_loss)
        num_grad, num_fwd, curve = _restarts(
            model, x, y, st, atk, alphas, gen, progressbar and atk.eps > 0, traces,
            loss_fn,
        )  # fmt: skip
        num_fwd += x.shape[0]
    info = {"success": broken, "num_grad": num_grad, "num_forward": num_fwd}
    info.update(seed=seed, restart_curve=curve)
    if traces is not None:
        info["trace"] = traces
    return finish(x_adv, x, atk.eps, atk.norm, "pgd", info)

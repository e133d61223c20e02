"""The sharpness measures as values: :class:`WorstCase` and :class:`AverageCase`,
called as ``measure(model, loss_fn, data, generator) -> Sharpness`` (the one way to
measure sharpness: there are no function forms)."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from .. import _utils, attacks
from . import _core
from ._core import LossFn, Vec, Work
from ._result import Sharpness

__all__ = ["Measure", "WorstCase", "AverageCase"]

_ADAPTIVE = (None, "element", "filter")
_IGNORE = (None, "bn", "biasbn")
_ADVERSARIAL = (None, "fixed", "reattack")
_REGISTRY: dict[str, type[Measure]] = {}


@dataclasses.dataclass(frozen=True)
class Measure:
    """Settings shared by the sharpness measures (a frozen, JSON-able value).

    Attributes:
        rho: the radius: of the ball (worst case) or of the noise (average case:
            the standard deviation of Gaussian noise, the half-width of uniform
            noise), in weight units, or relative to ``|w|`` with ``adaptive``.
        adaptive: None (plain), ``"element"`` (every weight's radius is ``rho |w_i|``)
            or ``"filter"`` (``rho`` times the norm of the weight's output filter /
            row; 1-D tensors element-wise): the adaptive sharpness of Kwon et al.
            (2021) and Andriushchenko et al. (2023), invariant under the rescalings
            of a ReLU network that leave its function unchanged (element-wise: all
            of them; filter-wise: whole layers and output channels).
        m: examples per batch of m-sharpness (Foret et al. 2021): each batch of
            ``data`` is split into batches of ``m``, the maximum (expectation) is
            taken per batch of ``m`` and the increases are averaged. None: the
            batches of ``data`` as they are.
        ignore: which parameters stay fixed: None (none: all parameters move, as in
            Andriushchenko et al.), ``"bn"`` (the normalisation layers', as in Stutz
            et al. 2021) or ``"biasbn"`` (every parameter of one dimension: biases
            and normalisation parameters).
        attack: an attack value for the robust loss. With ``adversarial="fixed"``
            the inputs are attacked once at the weights and kept; with
            ``"reattack"`` (the default when an attack is given) they are attacked
            again at every perturbed weight, so the measured loss is the robust loss
            ``max_x' L(w + delta, x')`` (Stutz et al.'s robust flatness; the ascent
            uses its gradient at the attacked inputs, Danskin's theorem). Without an
            attack the loss is that of ``data`` as given (pass fixed adversarial
            batches of :func:`landscape.attacks.perturb_batches` for the loss at
            fixed adversarial examples).
        adversarial: None, ``"fixed"`` or ``"reattack"`` (see ``attack``).
        label: the measure's name in tables and metric columns (default: derived
            from the settings, e.g. ``"worst-linf-element-rho0.002"``).

    BatchNorm: every forward pass runs in eval mode, so the running statistics are
    fixed (as in both references: Andriushchenko et al.'s evaluation puts the model
    in ``eval()``, Stutz et al.'s weight attack asserts eval mode).
    """

    rho: float
    adaptive: str | None = None
    m: int | None = None
    ignore: str | None = None
    attack: attacks.Attack | None = None
    adversarial: str | None = None
    label: str | None = None

    kind: ClassVar[str] = "measure"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __post_init__(self) -> None:
        try:
            rho = float(self.rho)
        except (TypeError, ValueError):
            raise TypeError(f"rho must be a number, got {self.rho!r}") from None
        if not (math.isfinite(rho) and rho > 0):
            raise ValueError(f"rho must be a finite number > 0, got {self.rho!r}")
        object.__setattr__(self, "rho", rho)
        if self.adaptive not in _ADAPTIVE:
            raise ValueError(
                f"adaptive must be None, 'element' or 'filter', got {self.adaptive!r}"
            )
        if self.ignore not in _IGNORE:
            raise ValueError(
                f"ignore must be None, 'bn' or 'biasbn', got {self.ignore!r}"
            )
        if self.m is not None:
            _count(self, "m")
        if self.attack is not None and not isinstance(self.attack, attacks.Attack):
            raise TypeError(
                "attack must be an attack value (e.g. attacks.PGD(eps=8/255, "
                f"steps=10)) or None, got {type(self.attack).__name__}"
            )
        if self.adversarial not in _ADVERSARIAL:
            raise ValueError(
                "adversarial must be None, 'fixed' or 'reattack', got "
                f"{self.adversarial!r}"
            )
        if self.attack is not None and self.adversarial is None:
            object.__setattr__(self, "adversarial", "reattack")
        if self.adversarial is not None and self.attack is None:
            raise ValueError(
                f"adversarial={self.adversarial!r} needs an attack: pass "
                "attack=attacks.PGD(eps=...)"
            )

    # -- description ---------------------------------------------------------------
    @property
    def name(self) -> str:
        """``label``, else a name derived from the settings."""
        if self.label:
            return self.label
        parts = [self._kind_name()]
        if self.adaptive:
            parts.append(self.adaptive)
        parts.append(f"rho{self.rho:g}")
        if self.m is not None:
            parts.append(f"m{self.m}")
        if self.adversarial is not None:
            parts.append(f"{self.adversarial}-{self.attack.name}")
        return "-".join(parts)

    def _kind_name(self) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """``{"measure": class name, **settings}``, JSON-ready (the attack as its
        :meth:`~landscape.attacks.Attack.to_dict`)."""
        out: dict[str, Any] = {"measure": type(self).__name__}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, attacks.Attack) else v
        return out

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Measure:
        """The measure of :meth:`to_dict`.

        Example:
            >>> m = WorstCase(rho=0.01, norm="linf", adaptive="element")
            >>> Measure.from_dict(m.to_dict()) == m
            True

        Raises:
            ValueError: not a measure record, or unknown settings.
        """
        if not isinstance(d, dict) or d.get("measure") not in _REGISTRY:
            raise ValueError(
                f"not a sharpness measure record (a dict with 'measure' one of "
                f"{sorted(_REGISTRY)}): {d!r}"
            )
        d = dict(d)
        cls = _REGISTRY[d.pop("measure")]
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{cls.__name__} has no settings {unknown}")
        if d.get("attack") is not None:
            d["attack"] = attacks.Attack.from_dict(d["attack"])
        return cls(**d)

    # -- the measurement -----------------------------------------------------------
    def __call__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Any,
        generator: torch.Generator | None = None,
        *,
        progressbar: bool = False,
        distributed: bool = True,
    ) -> Sharpness:
        """Measure the sharpness of the mean loss ``loss_fn`` over each batch of
        ``data`` at the weights of ``model`` (left untouched).

        Args:
            model: the network (its weights are copied; the copy runs in eval mode).
            loss_fn: ``(logits, y) -> batch-mean loss``.
            data: an ``(x, y)`` pair, a list of batches or a loader.
            generator: the random start / noise and the attack's randomness (its
                seed is recorded in ``meta``). Every batch draws from its own stream
                derived from it, so the result does not depend on the world size.
            progressbar: a tqdm bar over the batches' iterations / samples.
            distributed: under an initialised ``torch.distributed`` process group,
                each rank measures every ``world_size``-th batch and the ranks sum
                their per-batch rows, so every rank returns the whole result (give
                every rank the same model and data; the seed is rank 0's).

        Returns:
            :class:`Sharpness`.

        Raises:
            FloatingPointError: a non-finite loss at the unperturbed weights.
        """
        if not callable(loss_fn):
            raise TypeError(
                "loss_fn must map (logits, y) to the batch-mean loss, e.g. "
                f"torch.nn.CrossEntropyLoss(), got {type(loss_fn).__name__}"
            )
        t0 = time.perf_counter()
        _, seed = _utils.make_generator(generator)
        rank, size = _core.world(distributed)
        seed = _core.shared_seed(seed, size)
        work = Work(model, _core.chosen_names(model, self.ignore), self.adaptive)
        # streamed: one batch at a time (every rank reads the same batches and
        # measures every size-th); per batch: size, loss, perturbed loss, variance of
        # the mean, #grad, #fwd (zeros for another rank's batch)
        batches = _core.as_chunked(data, model, self.attack is not None)
        num = _core.num_chunks(batches, self.m)
        steps = self._steps()
        bar = _core.progress(
            None if num is None else len(range(rank, num, size)) * steps,
            type(self).__name__,
            progressbar,
        )
        found = []
        for i, (x, y) in enumerate(_core.chunks(batches, self.m)):
            row = np.zeros(6)
            if i % size == rank:
                row[:] = [len(y), *self._batch(work, loss_fn, x, y, seed, i, bar)]
            found.append(row)
        bar.close()
        if not found:
            raise ValueError("data holds no batch")
        rows = _core.summed(np.stack(found), size)
        sizes = rows[:, 0]
        per_batch = rows[:, 2] - rows[:, 1]
        weights = sizes / sizes.sum()
        value = float((weights * per_batch).sum())
        std_error = None
        if isinstance(self, AverageCase):
            std_error = float(np.sqrt((weights**2 * rows[:, 3]).sum()))
        return Sharpness(
            value=value,
            per_batch=per_batch,
            loss=rows[:, 1],
            perturbed_loss=rows[:, 2],
            sizes=sizes.astype(np.int64),
            std_error=std_error,
            num_grad=int(rows[:, 4].sum()),
            num_forward=int(rows[:, 5].sum()),
            measure=self.to_dict(),
            meta={
                "name": self.name,
                "seed": seed,
                "world_size": size,
                "num_params": int(sum(w.numel() for w in work.w)),
                "seconds": round(time.perf_counter() - t0, 3),
            },
        )

    def _steps(self) -> int:
        raise NotImplementedError

    def _batch(self, work: Work, loss_fn, x, y, seed: int, index: int, bar):
        raise NotImplementedError

    # -- the loss of one batch, clean or attacked ----------------------------------
    def _start(self, work: Work, loss_fn, x: Tensor, y: Tensor, seed: int, index: int):
        """The start of a batch: its generator, its inputs (attacked once with
        ``adversarial="fixed"``), the loss at the weights and the passes spent so far
        ``(gen, x, loss0, ngrad, nfwd)``."""
        gen = _core.chunk_generator(seed, index)
        ngrad = nfwd = 0
        if self.adversarial == "fixed":
            x, ngrad = _attacked(self.attack, work.net, x, y, gen)
        work.set(None)
        loss0, _, cost = self._evaluate(work, loss_fn, x, y, gen, grad=False)
        _core.finite(loss0, "at the weights")
        return gen, x, loss0, ngrad + cost, nfwd + 1

    def _evaluate(
        self, work: Work, loss_fn, x: Tensor, y: Tensor, gen, *, grad: bool
    ) -> tuple[float, Vec | None, int]:
        """The loss (and its scaled gradient) at the current weights of ``work``,
        re-attacking the inputs first with ``adversarial="reattack"``; the third
        value counts the attack's gradient passes."""
        cost = 0
        if self.adversarial == "reattack":
            x, cost = _attacked(self.attack, work.net, x, y, gen)
        if grad:
            value, g = work.loss_grad(loss_fn, x, y)
            return value, g, cost
        return work.loss(loss_fn, x, y), None, cost


def _count(value: Measure, name: str, low: int = 1) -> None:
    v = getattr(value, name)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    object.__setattr__(value, name, int(v))


def _attacked(attack: attacks.Attack, net: nn.Module, x, y, gen) -> tuple[Tensor, int]:
    xa, info = attack(net, x, y, gen, return_info=True)
    passes = info.get("num_grad", 0)
    return xa, int(round(passes / max(len(y), 1)))


@dataclasses.dataclass(frozen=True)
class WorstCase(Measure):
    """Worst-case sharpness: the largest loss increase within the ball
    ``{||delta / c||_p <= rho}`` (``c = 1``, or ``|w|`` / the filter norm with
    ``adaptive``), found by APGD in weight space (Croce & Hein 2020), as in
    Andriushchenko et al. (2023, ``sharpness.py``): ``max_iter`` gradient steps per
    batch, step size ``2 rho`` halved at APGD's checkpoints when the best loss
    stalls, momentum 0.75; the value kept is the largest loss over all iterates
    (and the unperturbed loss, so it is >= 0).

    The ascent runs in the scaled coordinates ``u = delta / c`` (the gradient is
    ``c * dL/dw``, the projection onto ``||u||_p <= rho`` is exact), so the
    adaptive estimate is itself invariant under a function-preserving rescaling of
    the weights, not only the true maximum; Andriushchenko et al.'s adaptive L2
    step (``g / ||g|| * |w|``, ellipsoid projection by bisection) is not.

    Attributes:
        norm: ``"l2"`` (steps ``g / ||g||_2``) or ``"linf"`` (signed steps).
        max_iter: gradient steps per batch.
        init: ``"random"`` (a random point of the ball: uniform on the L2 sphere or
            in the L-inf box) or ``"zero"``. The reference's default is zero (its
            random start is broken by a trailing comma); at an exact critical point
            (zero gradient) a zero start never moves, so the default here is random.
        step_size: the initial step as a multiple of ``rho`` (default 2).

    The other attributes (``rho``, ``adaptive``, ``m``, ``ignore``, ``attack``,
    ``adversarial``, ``label``) are those of :class:`Measure`.

    Cost per batch: ``max_iter`` gradient passes and two forward passes (plus the
    attack at every step with ``adversarial="reattack"``).

    Example:
        >>> X = torch.eye(3, dtype=torch.float64)  # a quadratic with H = 2 X^T X / 3
        >>> model = torch.nn.Linear(3, 1, bias=False).double()
        >>> _ = torch.nn.init.zeros_(model.weight)  # the minimum: zero gradient
        >>> data = [(X, torch.zeros(3, 1, dtype=X.dtype))]
        >>> s = WorstCase(rho=0.1)(model, torch.nn.MSELoss(), data,
        ...                        torch.Generator().manual_seed(0))
        >>> round(s.value, 10)  # rho^2 lambda_max / 2 = 0.01 * (2 / 3) / 2
        0.0033333333
    """

    norm: str = "l2"
    max_iter: int = 20
    init: str = "random"
    step_size: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "norm", _utils.check_norm(self.norm))
        _count(self, "max_iter")
        if self.init not in ("random", "zero"):
            raise ValueError(f"init must be 'random' or 'zero', got {self.init!r}")
        if not (math.isfinite(float(self.step_size)) and float(self.step_size) > 0):
            raise ValueError(f"step_size must be > 0, got {self.step_size!r}")
        object.__setattr__(self, "step_size", float(self.step_size))

    def _kind_name(self) -> str:
        return f"worst-{self.norm}"

    def _steps(self) -> int:
        return self.max_iter

    def _batch(self, work: Work, loss_fn, x, y, seed: int, index: int, bar):
        gen, x, loss0, ngrad, nfwd = self._start(work, loss_fn, x, y, seed, index)
        rho, norm = self.rho, self.norm
        if self.init == "random":
            u = _core.random_start(work.w, rho, norm, gen)
        else:
            u = work.zeros()
        u_prev = u
        eta = self.step_size * rho
        cps = set(_core.checkpoints(self.max_iter))
        best, best_u, best_g = loss0, None, None
        n_upd, prev_cp, prev_eta, prev_best = 0, 0, eta, best
        for k in range(self.max_iter):
            work.set(u)
            value, g, cost = self._evaluate(work, loss_fn, x, y, gen, grad=True)
            ngrad += 1 + cost
            if value > best:
                best, best_u, best_g = value, u, g
                n_upd += 1
            if k in cps:
                stalled = n_upd < 0.75 * (k - prev_cp)
                same = prev_eta == eta and prev_best == best
                prev_eta, prev_best, prev_cp, n_upd = eta, best, k, 0
                if stalled or same:  # halve the step, restart from the best point
                    eta /= 2
                    if best_u is None:
                        best_u = work.zeros()
                        work.set(best_u)
                        _, best_g, cost = self._evaluate(
                            work, loss_fn, x, y, gen, grad=True
                        )
                        ngrad += 1 + cost
                    u, g, u_prev = best_u, best_g, best_u
            z = _core.project(
                [a + eta * d for a, d in zip(u, _core.direction(g, norm))], rho, norm
            )
            alpha = 0.75 if k > 0 else 1.0
            nxt = [
                a + alpha * (b - a) + (1 - alpha) * (a - c)
                for a, b, c in zip(u, z, u_prev)
            ]
            u_prev, u = u, _core.project(nxt, rho, norm)
            bar.update(1)
        work.set(u)
        value, _, cost = self._evaluate(work, loss_fn, x, y, gen, grad=False)
        ngrad, nfwd = ngrad + cost, nfwd + 1
        if value > best:
            best = value
        work.set(None)
        return loss0, best, 0.0, ngrad, nfwd


@dataclasses.dataclass(frozen=True)
class AverageCase(Measure):
    """Average-case sharpness: the expected loss increase under random weight noise
    ``delta = c * rho * xi`` (``xi`` standard Gaussian or uniform on [-1, 1] per
    entry; ``c`` as in :class:`Measure`), estimated from ``num_samples`` draws per
    batch, as in Andriushchenko et al. (2023, ``eval_average_sharpness``). For a
    quadratic loss the Gaussian value is ``rho^2 tr(H) / 2`` (``rho^2 tr(D H D) / 2``
    adaptive, ``D = diag(|w|)``) and the uniform one ``rho^2 tr(H) / 6``, exactly.

    Attributes:
        noise: ``"gaussian"`` or ``"uniform"``.
        num_samples: noise draws per batch.

    The other attributes (``rho``, ``adaptive``, ``m``, ``ignore``, ``attack``,
    ``adversarial``, ``label``) are those of :class:`Measure`; ``rho`` is the standard
    deviation of the Gaussian noise and the half-width of the uniform noise.

    Cost per batch: ``num_samples + 1`` forward passes (plus an attack per sample
    with ``adversarial="reattack"``: Stutz et al.'s average-case robust flatness,
    whose adversarial examples are recomputed for every perturbed model).
    """

    noise: str = "gaussian"
    num_samples: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.noise not in ("gaussian", "uniform"):
            raise ValueError(
                f"noise must be 'gaussian' or 'uniform', got {self.noise!r}"
            )
        _count(self, "num_samples")

    def _kind_name(self) -> str:
        return f"avg-{self.noise}"

    def _steps(self) -> int:
        return self.num_samples

    def _batch(self, work: Work, loss_fn, x, y, seed: int, index: int, bar):
        gen, x, loss0, ngrad, nfwd = self._start(work, loss_fn, x, y, seed, index)
        values = []
        for _ in range(self.num_samples):
            work.set(_core.noise(work.w, self.noise, self.rho, gen))
            value, _, cost = self._evaluate(work, loss_fn, x, y, gen, grad=False)
            values.append(value)
            ngrad, nfwd = ngrad + cost, nfwd + 1
            bar.update(1)
        work.set(None)
        v = np.asarray(values, dtype=np.float64)
        var = float(v.var(ddof=1) / len(v)) if len(v) > 1 else 0.0
        return loss0, float(v.mean()), var, ngrad, nfwd

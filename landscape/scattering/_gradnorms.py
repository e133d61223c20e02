"""Per-example gradient norms of the adversarial loss and trainer-logged norms."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from .. import _finite, _utils
from ..attacks import PGD
from ._common import LossFn, Params, _check_eps_list, _loss_default, _params
from ._measure import _count, _first_batches, adversarial_gradient
from ._results import GradNormStats, TrainingGradNorms

__all__ = ["per_example_grad_norms", "gradient_norms", "summarize_training_gradnorms"]


def per_example_grad_norms(
    model: nn.Module,
    loss_fn: LossFn | None,
    x: Tensor,
    y: Tensor,
    *,
    params: Params | None = None,
    method: str = "vmap",
) -> Tensor:
    """``||grad_w loss(f(x_i), y_i)||`` for every example (model in eval mode).

    Args:
        model: classifier returning logits.
        loss_fn: ``(logits, y) -> scalar`` applied to a batch of one example.
        x, y: a batch.
        params: weights (default: the model's own).
        method: ``"vmap"`` (``torch.func.vmap(grad)``, one pass) or ``"loop"`` (one
            backward per example; the reference).

    Returns:
        Tensor of shape ``(N,)``.

    Example:
        >>> m = torch.nn.Linear(3, 1, bias=False).double()
        >>> x = torch.randn(5, 3, dtype=torch.float64)
        >>> mse = lambda o, t: ((o - t) ** 2).mean()
        >>> n = per_example_grad_norms(m, mse, x, torch.zeros(5, 1, dtype=x.dtype))
        >>> ref = (2 * (x @ m.weight.detach().T).abs() * x.norm(dim=1, keepdim=True))
        >>> torch.allclose(n, ref.view(-1))
        True
    """
    loss_fn = loss_fn or _loss_default
    p = _params(model) if params is None else params

    def one(pp: Params, xi: Tensor, yi: Tensor) -> Tensor:
        return loss_fn(functional_call(model, pp, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    with _utils.eval_mode(model):
        if method == "vmap":
            g = vmap(grad(one), in_dims=(None, 0, 0))(p, x, y)
            sq = sum(t.reshape(t.shape[0], -1).pow(2).sum(1) for t in g.values())
            return sq.sqrt().detach()
        if method == "loop":
            res = []
            names = list(p)
            for i in range(x.shape[0]):
                prm = {n: t.detach().requires_grad_(True) for n, t in p.items()}
                with torch.enable_grad():
                    gi = torch.autograd.grad(
                        one(prm, x[i], y[i]), [prm[n] for n in names]
                    )
                res.append(_utils.flatten(list(gi)).norm())
            return torch.stack(res).detach()
    raise ValueError(f"method must be 'vmap' or 'loop', got {method!r}")


def gradient_norms(
    model: nn.Module,
    loss_fn: LossFn | None,
    data: Iterable[tuple[Tensor, Tensor]],
    *,
    attack: PGD,
    eps: float | Sequence[float] | None = None,
    num_batches: int | None = None,
    generator: torch.Generator | None = None,
    progressbar: bool = False,
) -> GradNormStats:
    """Per-example and mini-batch gradient norms of the adversarial loss per eps.

    Each batch is attacked at the model's weights (``attack``, ascending ``loss_fn``)
    and the per-example gradients are taken with ``torch.func.vmap(grad)``.

    Args:
        model, loss_fn, data: as in :func:`scattering` (``loss_fn`` must accept a
            batch of one example).
        attack: a :class:`~landscape.attacks.PGD` (or ``FGSMRS``) without a loss of
            its own; each budget runs ``dataclasses.replace(attack, eps=e)``.
        eps: one budget or a list (default: the attack's eps).
        num_batches: use only the first batches.
        generator: the attack's random starts.
        progressbar: show progress (a bar on a terminal, lines in a log).

    Returns:
        A :class:`GradNormStats`.
    """
    from .._progress import bar as _bar

    eps_arr = _check_eps_list(attack.eps if eps is None else eps)
    _finite.check_model(model, name="gradient_norms: model")
    loss_fn = loss_fn or _loss_default
    device = _utils.model_device(model)
    gen, seed = _utils.make_generator(generator, device)
    batches = _first_batches(model, loss_fn, data)  # the one owner, streamed
    num = _count(batches, num_batches)
    per, bat = [], []
    bar = _bar(
        desc="gradient_norms",
        total=len(eps_arr) * num,
        unit="batches",
        enabled=progressbar,
        about=f"{len(eps_arr)} eps x {num} batches",
    )
    for ep in eps_arr:
        pe, bn = [], []
        for b, (x, y) in batches.numbered(stop=num):
            with _finite.checked_at_entry():
                g, xa = adversarial_gradient(
                    model,
                    loss_fn,
                    x,
                    y,
                    attack=dataclasses.replace(attack, eps=float(ep)),
                    generator=gen,
                )
            bn.append(float(_utils.flatten(g).norm()))
            pe.append(per_example_grad_norms(model, loss_fn, xa, y).cpu().double())
            where = f"at eps {float(ep):g}, batch {b}"
            _finite.check_host(bn[-1], "the batch gradient's norm", where)
            _finite.check_host(pe[-1].numpy(), "the per-example gradient norms", where)
            bar.update(1)
        per.append(torch.cat(pe).numpy())
        bat.append(bn)
    bar.close()
    meta = dict(seed=seed, attack=attack.to_dict(), num_batches=num)
    return GradNormStats(
        eps=eps_arr, per_example=np.stack(per), batch=np.array(bat), meta=meta
    )


# --------------------------------------------------------------------------- training logs
def _is_gradnorm_key(k: str) -> bool:
    k = k.lower()
    return "grad" in k and "norm" in k


def summarize_training_gradnorms(
    run: str | Path | Sequence[dict[str, Any]],
) -> TrainingGradNorms:
    """Gradient norms logged during training, per epoch.

    Args:
        run: a run folder (reads ``metrics.jsonl``, else ``metrics.csv``, and the target
            eps from ``config.json`` when present), a path to a metrics file, or a list
            of metric records (dicts, one per epoch).

    Returns:
        A :class:`TrainingGradNorms` with every numeric metric whose name contains both
        "grad" and "norm" (e.g. ``grad_norm``, ``train/grad_norm_mean``).

    Raises:
        FileNotFoundError: no metrics file in the folder.
        ValueError: no gradient-norm metric was logged.
    """
    target = float("nan")
    src = "records"
    if isinstance(run, (str, Path)):
        path = Path(run)
        src = str(path)
        if path.is_dir():
            cfg = path / "config.json"
            if cfg.exists():
                with open(cfg) as f:
                    c = json.load(f)
                if "attack" in c:  # the trainer's: the training attack's eps
                    target = float((c["attack"] or {}).get("eps", 0.0))
            for name in ("metrics.jsonl", "metrics.csv"):
                if (path / name).exists():
                    path = path / name
                    break
            else:
                raise FileNotFoundError(
                    f"no metrics.jsonl or metrics.csv in {run}: is it a training run folder?"
                )
        if not path.exists():
            raise FileNotFoundError(f"{path} not found")
        if path.suffix == ".csv":
            import csv

            with open(path, newline="") as f:
                records = [
                    {k: _num(v) for k, v in r.items()} for r in csv.DictReader(f)
                ]
        else:
            with open(path) as f:
                records = [json.loads(line) for line in f if line.strip()]
    else:
        records = list(run)
    keys = sorted(
        {
            k
            for r in records
            for k, v in r.items()
            if _is_gradnorm_key(k) and isinstance(v, (int, float))
        }
    )
    if not keys:
        raise ValueError(
            "no gradient-norm metric found (expected a key containing 'grad' and 'norm'); "
            f"logged keys: {sorted({k for r in records for k in r})}"
        )
    rows = [r for r in records if any(isinstance(r.get(k), (int, float)) for k in keys)]
    epoch = np.array([float(r.get("epoch", i)) for i, r in enumerate(rows)])
    eps = np.array(
        [
            float(r["eps"]) if isinstance(r.get("eps"), (int, float)) else np.nan
            for r in rows
        ]
    )
    values = {
        k: np.array(
            [
                float(r[k]) if isinstance(r.get(k), (int, float)) else np.nan
                for r in rows
            ]
        )
        for k in keys
    }
    return TrainingGradNorms(
        epoch=epoch, eps=eps, values=values, target_eps=target, meta={"source": src}
    )


def _num(v: Any) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return v

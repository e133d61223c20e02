"""End-of-period ensembles (Liu et al., Sec. 5) and loading trained models back."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import io
from ._run import FINAL, period_ckpt_name

__all__ = ["Ensemble", "load_members", "load_ensemble", "load_model"]


class Ensemble(nn.Module):
    """Average of the members' softmax outputs, as one model.

    ``forward`` returns ``log(mean_i softmax(f_i(x)))``: valid logits (their softmax is
    the averaged probabilities), so cross-entropy, accuracy and every attack treat the
    ensemble as a single classifier.

    Example:
        >>> a, b = nn.Linear(3, 4), nn.Linear(3, 4)
        >>> x = torch.randn(5, 3)
        >>> p = (a(x).softmax(1) + b(x).softmax(1)) / 2
        >>> torch.allclose(Ensemble([a, b])(x).softmax(1), p, atol=1e-6)
        True
    """

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("an Ensemble needs at least one model")
        self.members = nn.ModuleList(models)

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, x: Tensor) -> Tensor:
        logp = torch.stack([F.log_softmax(m(x), dim=1) for m in self.members])
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))


def _template(run_dir: Path, model: nn.Module | None) -> nn.Module:
    if model is not None:
        return copy.deepcopy(model)
    cfg = io.read_json(run_dir / "config.json")
    name = cfg.get("model")
    if not name:
        raise ValueError(
            f"{run_dir}/config.json records no model name: pass the architecture as "
            "model=... (an instance; its weights are replaced)"
        )
    from .. import models as _models

    return _models.build(name, **(cfg.get("model_kwargs") or {}))


def _load_into(template: nn.Module, path: Path, device) -> nn.Module:
    ckpt = io.load_torch(path, map_location="cpu")
    state = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
    m = copy.deepcopy(template)
    try:
        m.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"checkpoint {path} does not fit the given model architecture: {err}"
        ) from err
    return m.to(device).eval()


def load_members(
    run_dir: str | Path,
    model: nn.Module | None = None,
    *,
    device: torch.device | str = "cpu",
) -> list[nn.Module]:
    """The end-of-period models of a run (one per period), in eval mode.

    Args:
        run_dir: run folder of :func:`adversarial_train`.
        model: an instance of the architecture (weights are replaced); default rebuild
            it with ``landscape.models.build`` from the recorded ``model`` name.
        device: where to put the models.

    Raises:
        FileNotFoundError: the run has no end-of-period checkpoint yet.
    """
    run_dir = Path(run_dir)
    paths = sorted(run_dir.glob("ckpt_epoch*.pt"))
    if not paths:
        raise FileNotFoundError(
            f"no end-of-period checkpoints ({period_ckpt_name(0).replace('0000', '*')}) "
            f"in {run_dir}: has the run finished a period?"
        )
    template = _template(run_dir, model)
    return [_load_into(template, p, device) for p in paths]


def load_ensemble(
    run_dir: str | Path,
    model: nn.Module | None = None,
    *,
    device: torch.device | str = "cpu",
) -> Ensemble:
    """:class:`Ensemble` of the end-of-period models of a run (see :func:`load_members`)."""
    return Ensemble(load_members(run_dir, model, device=device)).eval()


def load_model(
    path: str | Path,
    model: nn.Module | None = None,
    *,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """The final model of a run folder (or the model in a checkpoint file), in eval mode."""
    path = Path(path)
    run_dir = path if path.is_dir() else path.parent
    file = path / FINAL if path.is_dir() else path
    return _load_into(_template(run_dir, model), file, device)

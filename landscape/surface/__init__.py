"""Loss surfaces and lines around a model: clean or adversarial, batched, resumable,
shardable.

``loss_surface(model, loss_fn, data, [d1, d2], xs=..., ys=...)`` evaluates the loss (and
accuracy) at ``theta = center + a * d1 + b * d2`` for every ``(a, b)`` of the grid
(Li et al., 2018); with one direction, ``[d1]``, it is the line ``center + a * d1``.
The caller's model is never modified: every point is evaluated with
``torch.func.functional_call`` on the perturbed parameters, with the model in eval mode
(BatchNorm running statistics, no Dropout).

Evaluation strategies (``strategy=``):

- ``"loop"``: one forward pass over the data per grid point, data kept on the device
  and re-batched to the best batch size (measured, ``batch_size="auto"``). On CPU this
  is the floor (one forward per point) and what ``"auto"`` picks.
- ``"vmap"``: several grid points per forward (``torch.func.vmap`` over stacked
  parameters). On a GPU small models underuse the device, so this pays; ``"auto"``
  measures both on the device and keeps the faster one.

Adversarial surfaces: ``adversarial="fixed"`` attacks the data once at the centre and
evaluates those fixed examples everywhere (or pass adversarial batches as ``data``);
``adversarial="reattack"`` runs the attack (e.g. ``attacks.PGD(...)``) against the
model at every grid point: slower, the true robust landscape.

Long grids save partial results to ``partial_path`` (atomically) and resume from them.
Under ``torch.distributed`` each rank evaluates every ``world_size``-th point and the
ranks all-gather the result, so every rank returns the full surface.
"""

from __future__ import annotations

from ._api import loss_surface
from ._result import Surface

__all__ = ["Surface", "loss_surface"]

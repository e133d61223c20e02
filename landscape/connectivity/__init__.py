"""Mode connectivity: curves between two trained models, curve training (clean or
adversarial) and loss / accuracy scans along the curve (Garipov et al., 2018, "Loss
Surfaces, Mode Connectivity, and Fast Ensembling of DNNs"; Liu et al., NeurIPS 2020,
Appendix C, for adversarial training).

- :func:`init_curve` -> :class:`Curve`: a straight line, quadratic (or higher) Bezier
  curve or polygonal chain between two models; ``curve.state(t)`` is the parameter
  (and buffer) dict at ``t`` for ``torch.func.functional_call`` (no curve layers).
- :func:`curve_point` / :func:`curve_weights`: the curve as a function of the
  endpoints' and bends' parameter dicts.
- :class:`CurveModel`: the curve as a model whose trainable parameters are the bends,
  evaluated at a random ``t`` per batch; train it with
  :func:`landscape.train.adversarial_train` (schedules, attacks, exact resume, AMP,
  DDP and metrics come from the trainer) and read the trained curve with
  ``curve_model.curve()``.
- :func:`scan_curve` -> :class:`CurveScan`: clean and robust loss / accuracy at
  ``num`` values of t, BatchNorm statistics re-estimated at every t
  (:func:`bn_statistics`); ``scan.barrier("robust_loss")``.
- ``python -m landscape.connectivity train|scan`` is the command-line tool.

Example:
    >>> import torch
    >>> from landscape import train
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(64, 2, generator=g); y = (x[:, 0] > 0).long()
    >>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    >>> line = init_curve(a, b, kind="line")
    >>> scan = scan_curve(a, torch.nn.CrossEntropyLoss(), [(x, y)], line, num=5)
    >>> scan.ts.tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    >>> cm = CurveModel(a, b)
    >>> cfg = train.TrainConfig(epochs=1, batch_size=32, lr=0.01,
    ...                         runtime=train.Runtime(eval_num=0, co_check_num=0))
    >>> res = train.adversarial_train(cm, (x, y), cfg)
    >>> cm.curve().kind, cm.curve().num_bends
    ('bezier', 1)
"""

from ._bn import bn_statistics, has_batchnorm
from ._curves import (
    KINDS,
    Curve,
    CurveModel,
    bn_buffer_names,
    curve_point,
    curve_weights,
    init_curve,
)
from ._scan import CurveScan, barrier, scan_curve

__all__ = [
    "KINDS",
    "Curve",
    "CurveModel",
    "CurveScan",
    "barrier",
    "bn_buffer_names",
    "bn_statistics",
    "curve_point",
    "curve_weights",
    "has_batchnorm",
    "init_curve",
    "scan_curve",
]

"""Mode connectivity: curves between two trained models, curve training (clean or
adversarial) and loss / accuracy scans along the curve (Garipov et al., 2018, "Loss
Surfaces, Mode Connectivity, and Fast Ensembling of DNNs"; Liu et al., NeurIPS 2020,
Appendix C, for adversarial training).

- :func:`init_curve` -> :class:`Curve`: a straight line, quadratic (or higher) Bezier
  curve or polygonal chain between two models; ``curve.state(t)`` is the parameter
  (and buffer) dict at ``t`` for ``torch.func.functional_call`` (no curve layers).
- :func:`curve_point` / :func:`curve_weights`: the curve as a function of the
  endpoints' and bends' parameter dicts.
- :func:`train_curve` (:class:`CurveConfig`): the bends minimise the clean or
  adversarial loss at ``t ~ U(0, 1)``; schedules, resumable checkpoints.
- :func:`scan_curve` -> :class:`CurveScan`: clean and robust loss / accuracy at
  ``num`` values of t, BatchNorm statistics re-estimated at every t
  (:func:`bn_statistics`); ``scan.barrier("robust_loss")``.
- ``python -m landscape.connectivity train|scan`` is the command-line tool.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(64, 2, generator=g); y = (x[:, 0] > 0).long()
    >>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    >>> line = init_curve(a, b, kind="line")
    >>> scan = scan_curve(a, torch.nn.CrossEntropyLoss(), [(x, y)], line, num=5)
    >>> scan.ts.tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    >>> res = train_curve(a, b, (x, y), CurveConfig(epochs=1, batch_size=32, eps=0.0))
    >>> res.curve.kind, res.curve.num_bends
    ('bezier', 1)
"""

from ._bn import bn_statistics, has_batchnorm
from ._curves import (
    KINDS,
    Curve,
    bn_buffer_names,
    curve_point,
    curve_weights,
    init_curve,
)
from ._scan import CurveScan, barrier, scan_curve
from ._train import CurveConfig, CurveTrainResult, train_curve

__all__ = [
    "KINDS",
    "Curve",
    "CurveConfig",
    "CurveScan",
    "CurveTrainResult",
    "barrier",
    "bn_buffer_names",
    "bn_statistics",
    "curve_point",
    "curve_weights",
    "has_batchnorm",
    "init_curve",
    "scan_curve",
    "train_curve",
]

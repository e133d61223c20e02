"""Certified robustness: sound lower bounds of robust accuracy for ReLU networks,
feed-forward or residual (Linear / Conv / transposed Conv / BatchNorm in eval mode /
average and max pooling / Flatten / ReLU / additions), L-inf and L2, in float64.

- :func:`certify` -> :class:`CertifyResult` (certified points and accuracy per eps).
- :func:`certified`, :func:`margin_bounds`, :func:`logit_bounds`: per-example calls.
- :func:`as_graph`: the network as a :class:`BoundGraph` of float64 operations, its
  weights read exactly from the modules; :func:`spec_bounds` bounds any linear
  function of the output on it.
- Methods: ``"ibp"`` (interval bound propagation, Gowal et al. 2018, the margin
  folded into the last linear layers as auto_LiRPA does), ``"crown"`` (linear
  relaxation, Zhang et al. 2018) and ``"crown-ibp"`` (CROWN on IBP's intermediate
  bounds, Zhang et al. 2020: one backward pass, for deep networks such as ResNets),
  implemented here; convolutions are never dense matrices (bounds pass through
  ``conv2d`` / ``conv_transpose2d``). auto_LiRPA 0.3,
  the only release on PyPI, does not import with numpy 2 and torch 2.13 without
  patches (``benchmarks/README.md`` compares the two).

``evaluate.evaluate(..., certify=True)`` brackets robust accuracy between the
certified and the attacked value and flags any point that is both certified and
broken by an attack (a bug in one of the two).
"""

from ._api import CertifyResult, certified, certify, logit_bounds, margin_bounds
from ._bounds import margin_spec, spec_bounds
from ._graph import BoundGraph, as_graph

__all__ = [
    "BoundGraph",
    "CertifyResult",
    "as_graph",
    "certified",
    "certify",
    "logit_bounds",
    "margin_bounds",
    "margin_spec",
    "spec_bounds",
]

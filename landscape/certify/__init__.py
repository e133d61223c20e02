"""Certified robustness: sound lower bounds of robust accuracy for feed-forward ReLU
networks (Linear / Conv / BatchNorm in eval mode / Flatten / ReLU), L-inf and L2.

- :func:`certify` -> :class:`CertifyResult` (certified points and accuracy per eps).
- :func:`certified`, :func:`margin_bounds`, :func:`logit_bounds`: per-example calls.
- :func:`as_affine_relu`: the network as dense affine maps and ReLUs.
- Methods: ``"ibp"`` (interval bound propagation, Gowal et al. 2018) and ``"crown"``
  (linear relaxation, Zhang et al. 2018), implemented here: auto_LiRPA 0.3, the only
  release on PyPI, installs with ``--no-deps`` but does not import with numpy 2
  (``numpy.lib.arraysetops`` is gone) nor without its other dependencies.

``evaluate.evaluate(..., certify=True)`` brackets robust accuracy between the
certified and the attacked value and flags any point that is both certified and
broken by an attack (a bug in one of the two).
"""

from ._api import CertifyResult, certified, certify, logit_bounds, margin_bounds
from ._bounds import crown_bounds, ibp_bounds
from ._network import AffineReLUNet, as_affine_relu

__all__ = [
    "AffineReLUNet",
    "CertifyResult",
    "as_affine_relu",
    "certified",
    "certify",
    "crown_bounds",
    "ibp_bounds",
    "logit_bounds",
    "margin_bounds",
]

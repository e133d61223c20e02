"""Version-space and constant-classifier theory for linear models (Liu et al., 2020, §3).

A linear classifier ``f(x) = w.x + b`` under an L_p attack of radius ``eps`` loses
exactly ``eps ||w||_{p*}`` of margin, where ``p*`` is the dual exponent
(``1/p + 1/p* = 1``): the L-inf attack is paid with the L1 norm of ``w``, the L2 attack
with the L2 norm. Everything here follows from that one identity:

- :func:`robust_margins`, :func:`robust_loss`, :func:`worst_case_perturbation`: the exact
  adversarial loss of a binary linear model with labels +-1 for any margin-decreasing
  loss (logistic, hinge), and the perturbation that attains it
  (``-y eps sign(w)`` for L-inf, ``-y eps w/||w||_2`` for L2).
- :func:`multiclass_robust_bound`: for softmax cross-entropy the pairwise upper bound
  ``log(1 + sum_{j != y} exp(-(z_y - z_j) + eps ||w_y - w_j||_{p*}))`` (exact for two
  classes); PGD gives a lower bound.
- The eps-version space ``V_eps = {(w, b): y_i (w.x_i + b) > eps ||w||_{p*} for all i}``
  (:func:`in_version_space`). It is a cone, nested (``V_eps2 ⊂ V_eps1`` for
  ``eps1 <= eps2``) and nonempty exactly when ``eps < gamma``, the robust max-margin
  :func:`robust_margin` ``gamma = max_{||w||_{p*} <= 1} min_i y_i (w.x_i + b)``. The
  constraint is on the **dual** norm of ``w``: an L1-ball linear program for L-inf
  attacks, the L2 hard-margin SVM for L2 attacks.
- The constant-classifier threshold :func:`constant_threshold`: for the robust logistic
  (or hinge) loss without bias, ``w = 0`` is optimal iff ``eps >= eps* =
  ||mean_i y_i x_i||_p`` (the perturbation norm itself); with a free bias (logistic),
  ``eps* = ||mu_+ - mu_-||_p / 2`` whatever the class balance. Beyond eps* the optimum
  is ``w = 0`` exactly and the robust loss is ``log 2`` (no bias) or the binary entropy
  of the class proportions (bias). An L2 penalty does not move eps*. For K classes
  (no bias) :func:`constant_threshold_multiclass` gives
  ``eps*_K = min_c max_k ||mu_k - c / pi_k||_p`` (the radius of the smallest L_p ball
  enclosing the class means when classes are balanced).
- Robust training two ways on the same data: :func:`robust_train_closed_form` (convex,
  solved to high precision by L-BFGS-B) and :func:`robust_train_pgd` (full-batch PGD
  adversarial training with :class:`landscape.attacks.PGD`), and the eps sweep
  :func:`linear_sweep` behind figure 1.

The proof of eps* (the directional derivative of the convex robust loss at ``w = 0``)
and of the order ``gamma <= eps*`` of the two thresholds is in the docstring of
``landscape/linear/_threshold.py``. Below gamma the data stay robustly separable and
the unpenalised logistic optimum is at infinity; between gamma and eps* it is finite
and nonzero; from eps* on it is ``w = 0``.

Inputs are arrays of shape ``(n, d)`` (or tensors; images are flattened), labels +-1
for the binary functions. PGD through :class:`landscape.attacks.PGD` clamps inputs
to ``[0, 1]``; the theory has no box, so :func:`robust_train_pgd` maps the data
affinely into the unit box with room for the whole eps-ball (:func:`embed_unit_box`),
which makes the clamp inactive without changing the problem. For image data the
closed form therefore ignores the ``[0, 1]`` box: it upper-bounds the box-constrained
robust loss that attacks on images measure.

Parts: ``_closed_form`` (dual norms, robust margins and losses, worst-case
perturbation, multiclass bound, input checks), ``_version_space`` (version space,
robust margin gamma), ``_threshold`` (eps*, multiclass eps*, with the proofs),
``_training`` (closed-form robust training, :class:`LinearFit`), ``_pgd`` (PGD robust
training, :func:`embed_unit_box`), ``_sweep`` (:func:`linear_sweep`,
:class:`LinearSweep`).
"""

from ._closed_form import (
    dual_norm,
    multiclass_robust_bound,
    robust_loss,
    robust_margins,
    worst_case_perturbation,
)
from ._pgd import embed_unit_box, robust_train_pgd
from ._sweep import LinearSweep, linear_sweep
from ._threshold import constant_threshold, constant_threshold_multiclass
from ._training import LinearFit, robust_train_closed_form
from ._version_space import MarginResult, in_version_space, robust_margin

__all__ = [
    "LinearFit",
    "LinearSweep",
    "MarginResult",
    "constant_threshold",
    "constant_threshold_multiclass",
    "dual_norm",
    "embed_unit_box",
    "in_version_space",
    "linear_sweep",
    "multiclass_robust_bound",
    "robust_loss",
    "robust_margin",
    "robust_margins",
    "robust_train_closed_form",
    "robust_train_pgd",
    "worst_case_perturbation",
]

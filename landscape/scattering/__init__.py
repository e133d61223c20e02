"""Gradient scattering of the adversarial loss (Liu et al., NeurIPS 2020, Prop. 2).

With ``L_ww`` the weight smoothness and ``L_wx`` the input-weight cross smoothness of
the loss, the adversarial loss ``L_eps(w) = max_{|d| <= eps} L(w, x + d)`` satisfies

    ||grad L_eps(w1) - grad L_eps(w2)|| <= L_ww ||w1 - w2|| + 2 eps L_wx.

The second term does not vanish as ``w2 -> w1``: the worst-case input jumps inside the
eps-ball when the weights move a little, so the gradients *scatter*, more for larger
eps. This module measures it. At weights ``w`` and ``w + s v`` (directions ``v``,
scales ``s``) it recomputes the adversarial examples (PGD with the *same* random start
at both points: one generator seed per (eps, batch), so the only difference between the
two attacks is the weights), takes the gradient of the loss on them and records

- ``ratio = ||g(w + s v) - g(w)|| / ||s v||``: an empirical gradient-Lipschitz ratio;
- ``cosine`` between the two gradients;
- ``excess``: the intercept of ``||delta g||`` against ``s`` as ``s -> 0`` (the
  ``2 eps L_wx`` term; :meth:`ScatteringResult.excess`);
- ``pert_cosine`` / ``sign_cosine``: how much the perturbations ``x_adv - x`` (and
  their signs) move between the two points, per example, averaged over the batch.

The caller's model is never modified: perturbed weights are evaluated with
``torch.func.functional_call`` (in eval mode). All points ``w, w + s_j v_d`` of a batch
are attacked and differentiated together with ``torch.func.vmap``
(``strategy="vmap"``, replaying the attack value with its ``init`` and ``step``);
``strategy="loop"`` calls the attack point by point (same numbers, used by the tests
as the reference). The attack is an attack value, ``attacks.PGD(...)`` or
``attacks.FGSMRS(...)``, replayed at both weights from the same random start.

Also: per-example gradient norms of the adversarial loss (:func:`gradient_norms`,
vectorised with ``torch.func``) and the gradient norms a trainer logged
(:func:`summarize_training_gradnorms`).

Command line: ``python -m landscape.scattering CHECKPOINT --dataset mnist --eps 0 0.1
0.3 -o data/results/scatter.npz`` (see ``--help``).
"""

from ._common import scatter_directions
from ._gradnorms import (
    gradient_norms,
    per_example_grad_norms,
    summarize_training_gradnorms,
)
from ._measure import adversarial_gradient, scattering
from ._results import (
    GradNormStats,
    ScatteringResult,
    TrainingGradNorms,
    concat_eps,
    fit_excess,
)

__all__ = [
    "ScatteringResult",
    "GradNormStats",
    "TrainingGradNorms",
    "scattering",
    "adversarial_gradient",
    "gradient_norms",
    "per_example_grad_norms",
    "scatter_directions",
    "fit_excess",
    "concat_eps",
    "summarize_training_gradnorms",
]

"""Sharpness of the loss in weight space: worst case, average case, adaptive, m-sharpness.

The flatness measures of the literature on sharpness and generalisation, for any
model, loss and data (``model, loss_fn, data``, like the other analyses), on the
clean or the adversarial loss:

- :class:`WorstCase`: the largest loss increase within a ball of
  radius ``rho`` in weight space (L2 or L-inf), found by APGD in weight space
  (Andriushchenko et al., 2023, "A modern look at the relationship between sharpness
  and generalization", whose ``sharpness.py`` this follows: step ``2 rho`` halved at
  APGD's checkpoints, momentum 0.75, the maximum over the iterates);
- :class:`AverageCase`: the expected loss increase under
  Gaussian or uniform weight noise of scale ``rho``;
- ``adaptive="element"`` / ``"filter"``: the ball (noise) scaled by ``|w|`` per entry
  or by the norm of each filter (Kwon et al., 2021, ASAM; Andriushchenko et al.), which
  makes the measure invariant under the rescalings of a ReLU network that leave its
  function unchanged (Dinh et al., 2017, showed that plain sharpness is not);
- ``m=``: m-sharpness (Foret et al., 2021, SAM): the maximum (expectation) per batch
  of ``m`` examples, averaged over the batches;
- the robust loss: pass fixed adversarial batches
  (:func:`landscape.attacks.perturb_batches`) as ``data``, or an ``attack`` value to
  attack the inputs once (``adversarial="fixed"``) or again at every perturbed weight
  (``"reattack"``: the robust flatness of Stutz et al., 2021, "Relating adversarially
  robust generalization to flat minima").

Keskar et al.'s (2017) sharpness is the worst case in the box ``eps (|w| + 1)``
relative to ``1 + L``; it is not offered (``adaptive="element"`` with
``norm="linf"`` is the box ``eps |w|``).

BatchNorm: the model is measured in eval mode, its running statistics fixed, as in
both references. Which parameters move: all of them by default (Andriushchenko et
al.); ``ignore="bn"`` keeps the normalisation layers fixed (Stutz et al.),
``ignore="biasbn"`` every one-dimensional parameter.

Every measure returns a :class:`Sharpness` (a frozen result that saves and loads:
the value, the per-batch values and losses, the cost in gradient and forward
passes), draws its randomness from ``generator=`` (one stream per batch, so the
answer does not depend on how many processes share the work), shows a tqdm bar with
``progressbar=True`` and, under an initialised ``torch.distributed`` process group,
shares the batches out over the ranks (every rank returns the whole result).

``python -m landscape.sharpness CHECKPOINT`` is the command-line tool.

Example:
    >>> import torch
    >>> X = torch.eye(4, dtype=torch.float64)
    >>> model = torch.nn.Linear(4, 1, bias=False).double()
    >>> _ = torch.nn.init.zeros_(model.weight)  # the minimum of a quadratic
    >>> data = [(X, torch.zeros(4, 1, dtype=X.dtype))]  # H = 2 X^T X / 4 = I / 2
    >>> measure = AverageCase(rho=0.1, noise="uniform", num_samples=4000)
    >>> s = measure(model, torch.nn.MSELoss(), data, torch.Generator().manual_seed(0))
    >>> exact = 0.1**2 * 2.0 / 6  # rho^2 tr(H) / 6
    >>> abs(s.value - exact) < 4 * s.std_error
    True
"""

from ._measures import AverageCase, Measure, WorstCase
from ._result import Sharpness

__all__ = [
    "WorstCase",
    "AverageCase",
    "Measure",
    "Sharpness",
]

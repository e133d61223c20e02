"""Curvature of the loss: Hessian-vector products, extreme eigenpairs, trace.

Everything measures the Hessian of the *mean loss over a fixed dataset* (a list of
``(x, y)`` batches or a re-iterable loader; each batch weighted by its size, so the
batching does not matter) at the model's weights, in eval mode, without touching the
caller's model. For the robust (adversarial) Hessian, attack once with
:func:`landscape.attacks.perturb_batches` and pass the fixed adversarial batches.

- :func:`hvp`, :func:`dense_hessian`, :class:`HessianOperator` (HVP formulations:
  cached double-backward graph, recomputed double backward, ``torch.func``
  forward-over-reverse; several vectors at once with ``vmap``).
- :func:`top_eigenvalues`: Lanczos with full reorthogonalisation and a Ritz-residual
  stopping rule (``which="LA" | "SA" | "LM"``), or power iteration with deflation.
  Eigenvectors come back as ``dict[name -> tensor]`` (surface directions).
- :func:`trace`: Hutchinson with a confidence interval, Hutch++ and XTrace.
- :func:`lanczos_density`: spectral density by stochastic Lanczos quadrature, default
  bandwidth from the Ritz values.
- Operator level, on any symmetric linear operator (a square tensor, a scipy
  ``LinearOperator``, anything with ``matmat`` / ``matvec`` / ``@``; see
  :func:`as_operator`): :func:`eigsh`, :func:`hutchinson`, :func:`hutchpp`,
  :func:`xtrace`, :func:`xdiag`, :func:`slq`. The model-level functions are these on
  the :class:`HessianOperator` of the model's loss.
- One vocabulary: ``num`` eigenpairs, ``max_iter`` (Lanczos / power iterations),
  ``num_matvecs`` (a budget of Hessian-vector products, and the products a result
  used), ``chunk_size`` (vectors per batched product), ``generator``.
- ``python -m landscape.hessian CHECKPOINT``: the command-line tool.

pyhessian (``backend="pyhessian"``). The released pyhessian 0.1 works on this torch
for power-iteration eigenvalues and the Hutchinson trace, which are offered through a
wrapper. What does not work or misleads, as found on torch 2.13:

1. ``hessian.density()`` calls ``torch.eig``, removed from torch: it raises
   ``RuntimeError: This function was deprecated since version 1.9 and is now removed.
   `torch.linalg.eig` returns complex tensors ...``. Not offered; use
   :func:`lanczos_density`.
2. Gradient accumulation: the constructor runs ``loss.backward(create_graph=True)``
   into the model's ``.grad``; a second ``hessian`` object built on the same model and
   batch before the first one's methods cleared the grads sees the sum of the two
   gradients and reports exactly twice the eigenvalues (tests/test_hessian.py shows
   it). It also leaves the model in eval mode. The wrapper works on a deep copy with
   cleared grads, so the caller's model is untouched and repeated calls agree.
3. Accuracy: power iteration stops when the Rayleigh quotient changes by < 1e-3
   (relative), which leaves errors of several percent when the gap is small; with
   deflation the errors compound and eigenvalues can come out in the wrong order
   (swapped). It converges to the largest *magnitude* eigenvalue, which may be a
   negative one. ``normalization`` adds 1e-6 to the norm. Its random vectors come
   from torch's global RNG (the wrapper seeds it inside ``fork_rng``).
"""

from __future__ import annotations

from ._api import top_eigenvalues, trace
from ._lanczos import basis_device, lanczos, lanczos_eigs, power_iteration, ritz
from ._linop import MatrixOperator, as_operator
from ._operator import HessianOperator, NondeterministicLossError, dense_hessian, hvp
from ._ops import eigsh
from ._pyhessian import PYHESSIAN_DENSITY_ERROR
from ._results import Eigenpairs, TraceEstimate
from ._spectrum import (
    Density,
    LanczosQuadrature,
    lanczos_density,
    lanczos_quadrature,
    papyan_bandwidth,
    slq,
)
from ._trace import estimate_trace, hutchinson, hutchpp, xdiag, xtrace

__all__ = [
    "hvp",
    "dense_hessian",
    "HessianOperator",
    "MatrixOperator",
    "NondeterministicLossError",
    "top_eigenvalues",
    "trace",
    "lanczos_density",
    "lanczos_quadrature",
    "as_operator",
    "eigsh",
    "estimate_trace",
    "hutchinson",
    "hutchpp",
    "xtrace",
    "xdiag",
    "slq",
    "papyan_bandwidth",
    "lanczos",
    "lanczos_eigs",
    "basis_device",
    "power_iteration",
    "ritz",
    "Eigenpairs",
    "TraceEstimate",
    "Density",
    "LanczosQuadrature",
    "PYHESSIAN_DENSITY_ERROR",
]

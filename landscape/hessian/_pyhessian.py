"""``backend="pyhessian"``: the released pyhessian 0.1, wrapped so that it is safe.

What the wrapper fixes or avoids (see the package docstring for the full list):

- pyhessian calls ``model.eval()`` and leaves it so, runs ``loss.backward
  (create_graph=True)`` into the model's ``.grad`` and leaves those graphs attached;
  a second ``hessian`` object built on the same model and batch before the grads are
  cleared sees the *sum* of both gradients, so its eigenvalues come out doubled. The
  wrapper runs pyhessian on a deep copy with cleared gradients, so the caller's model
  (mode, ``.grad``) is untouched and consecutive calls agree.
- pyhessian draws its random vectors from torch's global RNG; the wrapper seeds it
  from ``generator`` inside ``torch.random.fork_rng`` so the global state is unchanged.
- ``hessian.density()`` calls ``torch.eig``, removed from torch (RuntimeError "This
  function was deprecated since version 1.9 and is now removed..."); it is not
  offered: use :func:`landscape.hessian.lanczos_density`.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from .. import _finite, _utils
from .._batches import as_batches, is_class_loss

__all__ = ["pyhessian_eigenvalues", "pyhessian_trace", "PYHESSIAN_DENSITY_ERROR"]

PYHESSIAN_DENSITY_ERROR = (
    "pyhessian 0.1's hessian.density() calls torch.eig, which was removed from torch "
    "(RuntimeError: 'This function was deprecated since version 1.9 and is now "
    "removed. `torch.linalg.eig` returns complex tensors...'); use "
    "landscape.hessian.lanczos_density (backend='landscape') instead"
)


def _make(model: nn.Module, loss_fn, data: Iterable, dtype: torch.dtype | None):
    from pyhessian import hessian as PyHessian

    _finite.check_model(model)
    m = copy.deepcopy(model)
    if dtype is not None:
        m = m.to(dtype)
    for p in m.parameters():
        p.grad = None
    m.eval()
    device, mdtype = _utils.model_device(m), _utils.model_dtype(m)
    batches = []
    labels = "class" if is_class_loss(loss_fn) else "auto"
    for x, y in as_batches(data, model=m, labels=labels):
        if y.is_floating_point():
            y = y.to(mdtype)
        batches.append((x, y))
    cuda = device.type == "cuda"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*create_graph=True.*")
        if len(batches) == 1:
            h = PyHessian(m, loss_fn, data=batches[0], cuda=cuda)
        else:
            h = PyHessian(m, loss_fn, dataloader=batches, cuda=cuda)
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    return h, m, names


def pyhessian_eigenvalues(
    model: nn.Module,
    loss_fn,
    data: Iterable,
    *,
    num: int,
    tol: float,
    max_iter: int,
    seed: int,
    dtype: torch.dtype | None = None,
):
    """Top-``num`` eigenvalues by pyhessian's power iteration (largest magnitude).

    Returns:
        ``(values, vectors as list of dicts, names)``.
    """
    h, m, names = _make(model, loss_fn, data, dtype)
    devices = [torch.device("cuda")] if _utils.model_device(m).type == "cuda" else []
    with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*create_graph=True.*")
        torch.manual_seed(seed)
        values, vectors = h.eigenvalues(maxIter=max_iter, tol=tol, top_n=num)
    vecs = [{n: t.detach().cpu() for n, t in zip(names, v)} for v in vectors]
    return np.array(values, dtype=np.float64), vecs


def pyhessian_trace(
    model: nn.Module,
    loss_fn,
    data: Iterable,
    *,
    tol: float,
    max_iter: int,
    seed: int,
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Hutchinson samples ``v^T H v`` from pyhessian's ``trace`` (it stops when the
    running mean changes by less than ``tol``, relative)."""
    h, m, _ = _make(model, loss_fn, data, dtype)
    devices = [torch.device("cuda")] if _utils.model_device(m).type == "cuda" else []
    with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*create_graph=True.*")
        torch.manual_seed(seed)
        samples = h.trace(maxIter=max_iter, tol=tol)
    return np.array(samples, dtype=np.float64)

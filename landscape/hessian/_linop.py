"""Adapters: any symmetric linear operator as the row-convention operator of hessian.

The algorithms of this package (Lanczos, power iteration, the trace and diagonal
estimators, SLQ) use one small protocol: attributes ``dim``, ``dtype``, ``device`` and
``matmat(V)`` mapping the *rows* of ``V (r, dim)`` to the rows of ``(A V^T)^T``
(:class:`~landscape.hessian.HessianOperator` and :class:`MatrixOperator` are such
operators). :func:`as_operator` turns what users have into one:

- a square dense :class:`torch.Tensor` (or NumPy array): :class:`MatrixOperator`;
- a :class:`scipy.sparse.linalg.LinearOperator` or a SciPy sparse matrix: products
  in NumPy (columns), results back as tensors;
- any object with ``shape == (n, n)`` and ``matmat`` (columns, ``A @ X`` for
  ``X (n, k)``), ``matvec`` or ``@`` (e.g. curvlinops' operators), called with
  tensors in its ``dtype`` / ``device`` when it declares them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["MatrixOperator", "ColumnOperator", "as_operator"]


class MatrixOperator:
    """A dense symmetric matrix as an operator (tests with planted spectra).

    Example:
        >>> op = MatrixOperator(torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64)))
        >>> op.matvec(torch.ones(2, dtype=torch.float64)).tolist()
        [3.0, 1.0]
    """

    def __init__(self, A: Tensor) -> None:
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"expected a square matrix, got shape {tuple(A.shape)}")
        self.A = A
        self.dim = A.shape[0]
        self.dtype = A.dtype
        self.device = A.device
        self.num_matvecs = 0

    def matmat(self, V: Tensor) -> Tensor:
        """Rows of ``(A V^T)^T`` for ``V (r, dim)``."""
        self.num_matvecs += V.shape[0]
        return V.to(self.device, self.dtype) @ self.A.T

    def matvec(self, v: Tensor) -> Tensor:
        """``A @ v``."""
        return self.matmat(v.reshape(1, -1))[0]


class ColumnOperator:
    """A column-convention operator (SciPy's ``A @ X``) seen through rows.

    Args:
        A: an object with ``shape (n, n)`` and ``matmat``, ``matvec`` or ``@``.
        numpy: call ``A`` with NumPy arrays (SciPy operators) instead of tensors.
        dtype, device: those of the vectors passed to ``A`` (default: ``A.dtype`` /
            ``A.device`` when it has them, else float64 on CPU).
    """

    def __init__(
        self,
        A: Any,
        *,
        numpy: bool,
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
    ) -> None:
        shape = tuple(A.shape)
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"expected a square operator, got shape {shape}")
        self.A = A
        self.dim = int(shape[0])
        self.numpy = numpy
        self.dtype = dtype or _torch_dtype(getattr(A, "dtype", None))
        self.device = torch.device(device or getattr(A, "device", "cpu"))
        self.num_matvecs = 0

    def matmat(self, V: Tensor) -> Tensor:
        """Rows of ``(A V^T)^T`` for ``V (r, dim)``."""
        self.num_matvecs += V.shape[0]
        X = V.to(self.device, self.dtype).T
        if self.numpy:
            X = X.detach().cpu().numpy()
        if hasattr(self.A, "matmat"):
            Y = self.A.matmat(X)
        elif hasattr(self.A, "matvec"):
            cols = [self.A.matvec(X[:, i]) for i in range(X.shape[1])]
            Y = np.stack(cols, 1) if self.numpy else torch.stack(cols, 1)
        else:
            Y = self.A @ X
        Y = torch.as_tensor(np.asarray(Y) if self.numpy else Y)
        return Y.to(self.device, self.dtype).reshape(self.dim, -1).T

    def matvec(self, v: Tensor) -> Tensor:
        """``A @ v``."""
        return self.matmat(v.reshape(1, -1))[0]


def _torch_dtype(dt: Any) -> torch.dtype:
    if isinstance(dt, torch.dtype):
        return dt
    if dt is not None and np.dtype(dt) == np.float32:
        return torch.float32
    return torch.float64


def as_operator(A: Any) -> Any:
    """Wrap ``A`` (see the module docstring) as a row-convention operator.

    Operators of this package (anything with ``dim`` and a row ``matmat``) are
    returned as they are.

    Raises:
        TypeError: ``A`` is none of the supported kinds.

    Example:
        >>> import scipy.sparse.linalg as sla
        >>> A = np.diag([2.0, 1.0])
        >>> op = as_operator(sla.aslinearoperator(A))
        >>> op.matmat(torch.eye(2, dtype=torch.float64)).tolist()
        [[2.0, 0.0], [0.0, 1.0]]
    """
    if hasattr(A, "dim") and hasattr(A, "matmat") and not isinstance(A, Tensor):
        return A
    if isinstance(A, Tensor):
        return MatrixOperator(A)
    if isinstance(A, np.ndarray):
        return MatrixOperator(torch.as_tensor(A))
    import scipy.sparse
    import scipy.sparse.linalg

    if scipy.sparse.issparse(A):
        A = scipy.sparse.linalg.aslinearoperator(A)
    if isinstance(A, scipy.sparse.linalg.LinearOperator):
        return ColumnOperator(A, numpy=True)
    has_product = any(hasattr(A, m) for m in ("matmat", "matvec", "__matmul__"))
    if hasattr(A, "shape") and has_product:
        return ColumnOperator(A, numpy=False)
    raise TypeError(
        f"cannot use a {type(A).__name__} as a linear operator: pass a square tensor, "
        "a scipy LinearOperator, or an object with shape (n, n) and matmat/matvec/@"
    )

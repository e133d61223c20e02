"""A feed-forward network as a chain of dense affine maps and ReLUs.

Consecutive affine layers (``Linear``, ``Conv2d``, ``BatchNorm`` in eval mode,
``Flatten``, ``Identity``, ``Dropout`` in eval mode) are merged into one dense map
``z = W h + b``, read off by probing the layers with the unit vectors (exact: they
are affine). ReLUs separate the maps. Anything else raises a clear error.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from .. import _utils, models

__all__ = ["AffineReLUNet", "as_affine_relu"]

_AFFINE = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Flatten,
    nn.Identity,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.dropout._DropoutNd,
    models.Normalize,
)


@dataclasses.dataclass
class AffineReLUNet:
    """``f(x) = A_L relu(A_{L-1} ... relu(A_1 x))`` with ``A_i h = W_i h + b_i``.

    Attributes:
        weights: dense ``W_i``, shapes (n_i, n_{i-1}).
        biases: ``b_i``, shapes (n_i,).
        in_shape: the input shape of one example (without the batch dimension).
    """

    weights: list[Tensor]
    biases: list[Tensor]
    in_shape: tuple[int, ...]

    def forward(self, x: Tensor) -> Tensor:
        """Evaluate on flattened-or-not inputs, shape (N, ...)."""
        h = x.flatten(1)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w.T + b
            if i < len(self.weights) - 1:
                h = h.relu()
        return h


def _leaves(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, nn.Sequential):
        return [m for sub in model for m in _leaves(sub)]
    if isinstance(model, (models.LinearModel, models.MLP)):  # normalize -> body
        return [model.normalize, *_leaves(model.body)]
    return [model]


def _probe(layers: list[nn.Module], in_shape: tuple[int, ...], like: Tensor):
    """Dense (W, b) of a chain of affine layers on inputs of ``in_shape``."""
    d = int(torch.tensor(in_shape).prod())
    eye = torch.eye(d, dtype=like.dtype, device=like.device).view(d, *in_shape)
    zero = torch.zeros(1, *in_shape, dtype=like.dtype, device=like.device)
    with torch.no_grad():
        h0, h1 = zero, eye
        for m in layers:
            h0, h1 = m(h0), m(h1)
    b = h0.flatten(1)[0]
    w = (h1.flatten(1) - b).T
    return w.contiguous(), b.contiguous(), tuple(h0.shape[1:])


def as_affine_relu(model: nn.Module, x: Tensor) -> AffineReLUNet:
    """Read ``model`` (a possibly nested ``nn.Sequential`` of affine layers and ReLUs,
    evaluated in eval mode) as an :class:`AffineReLUNet` for inputs shaped like
    ``x[0]``.

    Raises:
        ValueError: for a layer that is neither affine nor a ReLU (max pooling,
            softmax, attention, ...).
    """
    leaves = _leaves(model)
    for m in leaves:
        if not isinstance(m, (*_AFFINE, nn.ReLU)):
            raise ValueError(
                f"certify: cannot bound layer {type(m).__name__}; supported are "
                "feed-forward nn.Sequential nets (and models.build('linear' / 'mlp')) of "
                "Linear, Conv1d/2d, BatchNorm (eval), Normalize, Flatten, Dropout (eval) "
                "and ReLU layers"
            )
    with _utils.eval_mode(model):
        return _chain(leaves, x)


def _chain(leaves: list[nn.Module], x: Tensor) -> AffineReLUNet:
    weights, biases, group = [], [], []
    shape = tuple(x.shape[1:])
    for m in [*leaves, None]:
        if m is None or isinstance(m, nn.ReLU):  # close the affine map before it
            w, b, shape = _probe(group, shape, x)
            weights.append(w)
            biases.append(b)
            group = []
        else:
            group.append(m)
    return AffineReLUNet(weights, biases, tuple(x.shape[1:]))

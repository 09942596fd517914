"""Apply one IR synapse to a batch of source tensors (torch); shared by lowering, proofs and simulators."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..ir.formats import SynapseKind


def apply_synapse(x: torch.Tensor, kind: SynapseKind, weight: torch.Tensor, stride: tuple[int, int],
                  padding: tuple[int, int], dilation: tuple[int, int], groups: int) -> torch.Tensor:
    """Apply one synapse to a batch of source tensors ``x`` (N, *source_shape) → (N, *target_shape)."""
    if kind is SynapseKind.DENSE:
        return x.reshape(x.shape[0], -1) @ weight.T
    return F.conv2d(x, weight, stride=stride, padding=padding, dilation=dilation, groups=groups)


def bias_tensor(bias: np.ndarray, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A bias (C,) or ``shape`` as a tensor broadcastable against (N, *shape)."""
    b = torch.as_tensor(np.asarray(bias), dtype=dtype)
    if b.dim() == 1 and len(shape) == 3:
        b = b.view(-1, 1, 1)
    return b

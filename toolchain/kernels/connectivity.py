"""Exact connectivity counts of one synapse: fan-out per source element and the ANN's MACs.

Both count real connections, so borders of padded convolutions and strides are exact.
"""

from __future__ import annotations

import numpy as np
import torch

from ..ir.formats import SynapseKind
from ..ir.geometry import SynapseLike


def synapse_fanout(syn: SynapseLike, source_shape: tuple[int, ...]) -> np.ndarray:
    """Number of non-zero synapses each source element drives through ``syn``, exact at borders.

    Returns:
        int64 array of ``source_shape``.
    """
    mask = torch.as_tensor(np.asarray(syn.weight) != 0, dtype=torch.float64)
    if syn.kind is SynapseKind.DENSE:
        return mask.sum(0).numpy().astype(np.int64).reshape(source_shape)
    x = torch.zeros((1, *source_shape), dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.conv2d(x, mask, stride=syn.stride, padding=syn.padding,
                                     dilation=syn.dilation, groups=syn.groups)
    out.sum().backward()  # d(Σ out)/dx = how many (output, weight) pairs read each input element
    return x.grad[0].round().numpy().astype(np.int64)


def synapse_macs(syn: SynapseLike, source_shape: tuple[int, ...]) -> int:
    """MACs of one synapse in the ANN: every weight (zeros included) times every input it reads.

    Dense: ``out · in``. Conv: Σ over output neurons of the in-bounds kernel taps × C_in/groups, i.e. the
    sum of ``conv2d(ones(source), ones(weight))``, exact at padded borders and with strides.
    """
    if syn.kind is SynapseKind.DENSE:
        return int(syn.weight.size)
    x = torch.ones((1, *source_shape), dtype=torch.float64)
    k = torch.ones(syn.weight.shape, dtype=torch.float64)
    out = torch.nn.functional.conv2d(x, k, stride=syn.stride, padding=syn.padding, dilation=syn.dilation,
                                     groups=syn.groups)
    return int(round(float(out.sum())))

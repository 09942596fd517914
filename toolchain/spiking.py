"""The converted spiking network in floating point: normalized units, threshold 1, binary spikes.

This is the output of ``lower.py`` and the input of ``quantize.py``. Each layer's weights are already
divided by its own θ and multiplied by the θ of its source (SPEC §4), so a spike is a plain 1 and the
threshold is 1:

    z = Σ_k W_k ⊛ s_{source_k} + b                  (input current, normalized units)
    v ← v + z;  s = v ≥ 1;  v ← v − s               (IF, reset by subtraction), v(0) = δ₂

The same description evaluates the tailored ANN (``ann_forward``): replace the IF neuron by the
normalized SlipReLU ``a·clip(z + δ₁/L, 0, 1) + (1 − a)·clip(floor(L·z + δ₂)/L, 0, 1)``.
The first synapse reads 8-bit pixel values 0..255 (input normalization is folded into it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .activations import SlipParams, slip_relu
from .ir import INPUT_SOURCE, SynapseKind


@dataclass(frozen=True, eq=False)
class FloatSynapse:
    """A float connection; same fields as ``ir.IntSynapse`` with a float64 weight in normalized units."""

    source: int
    kind: SynapseKind
    weight: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1


@dataclass(frozen=True, eq=False)
class FloatLayer:
    """One neuron population of the converted network.

    Attributes:
        name: the torch module the layer came from (its activation, or the final Linear).
        shape: neuron shape (C, H, W) or (N,).
        synapses: ``synapses[0]`` from the previous layer, others residual (see ``ir.IntLayer``).
        bias: float64, per channel (C,) or per neuron (``shape``), normalized units.
        spiking: False for the output layer, which sums its input over time.
        theta: the layer's θ in the ANN's units (1.0 for the output layer).
        act: the activation's parameters for ANN mode; None means a plain ReLU (calibrated θ).
        v_init: initial membrane in units of the threshold (δ₂; 0 for the output).
        ann_macs: multiply-accumulates of the original modules (before folding) per sample.
    """

    name: str
    shape: tuple[int, ...]
    synapses: tuple[FloatSynapse, ...]
    bias: np.ndarray
    spiking: bool
    theta: float
    act: SlipParams | None
    v_init: float
    ann_macs: int = 0

    def bias_full(self) -> np.ndarray:
        """The bias broadcast to the neuron shape (float64)."""
        b = np.asarray(self.bias, dtype=np.float64)
        return np.broadcast_to(b if b.shape == self.shape else b.reshape((-1,) + (1,) * (len(self.shape) - 1)),
                               self.shape).copy()


@dataclass(frozen=True, eq=False)
class SpikingNetwork:
    """The converted SNN: layers in pipeline order, the last one non-spiking.

    Attributes:
        input_shape: (C, H, W) of the 8-bit image.
        layers: the populations.
        meta: provenance copied from the checkpoint (activation, data set, classes, …).
    """

    input_shape: tuple[int, int, int]
    layers: tuple[FloatLayer, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def source_shape(self, source: int) -> tuple[int, ...]:
        return self.input_shape if source == INPUT_SOURCE else self.layers[source].shape


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


def slip_normalized(z: torch.Tensor, p: SlipParams | None) -> torch.Tensor:
    """SlipReLU in normalized units (θ = 1); a plain ReLU when ``p`` is None."""
    if p is None:
        return torch.relu(z)
    return slip_relu(z, torch.ones((), dtype=z.dtype), p.a, p.L, p.delta1, p.delta2)


@torch.no_grad()
def ann_forward(net: SpikingNetwork, pixels: torch.Tensor) -> list[torch.Tensor]:
    """Evaluate the tailored ANN on the lowered description.

    Args:
        net: the converted network.
        pixels: (N, C, H, W) 8-bit pixel values 0..255 (float or integer tensor).

    Returns:
        One tensor per layer: the normalized activation (ANN output / θ) of each hidden layer and
        the logits of the output layer, each (N, *layer.shape), float64.
    """
    x = pixels.to(torch.float64)
    outs: list[torch.Tensor] = []
    for layer in net.layers:
        z = bias_tensor(layer.bias, layer.shape, torch.float64)
        for syn in layer.synapses:
            src = x if syn.source == INPUT_SOURCE else outs[syn.source]
            z = z + apply_synapse(src, syn.kind, torch.as_tensor(syn.weight, dtype=torch.float64),
                                  syn.stride, syn.padding, syn.dilation, syn.groups)
        outs.append(slip_normalized(z, layer.act) if layer.spiking else z)
    return outs

"""The converted spiking network in floating point: normalized units, threshold 1, binary spikes.

This is the output of ``conversion.lower`` and the input of ``conversion.quantize``. Each layer's weights are already
divided by its own θ and multiplied by the θ of its source (SPEC §4), so a spike is a plain 1 and the
threshold is 1:

    z = Σ_k W_k ⊛ s_{source_k} + b                  (input current, normalized units)
    v ← v + z;  s = v ≥ 1;  v ← v − s               (IF, reset by subtraction), v(0) = δ₂

The same description evaluates the tailored ANN (``backends.ann_eval``): replace the IF neuron by the
normalized SlipReLU ``a·clip(z + δ₁/L, 0, 1) + (1 − a)·clip(floor(L·z + δ₂)/L, 0, 1)``.
The first synapse reads 8-bit pixel values 0..255 (input normalization is folded into it).
Every field is validated on construction: finite real numbers, consistent shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ModelError
from .activation import SlipParams
from .formats import INPUT_SOURCE, SynapseKind
from .geometry import check_geometry, check_wiring, output_shape


def _finite_array(value: Any, what: str) -> np.ndarray:
    """``value`` as a float64 array, refusing complex, non-numeric and non-finite entries."""
    a = np.asarray(value)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ModelError(f"{what} has dtype {a.dtype}; allowed: real numbers")
    a = a.astype(np.float64)
    if a.size and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ModelError(f"{what} holds a non-finite value {a[tuple(bad)]} at index {tuple(int(i) for i in bad)}; "
                         "allowed: finite numbers (check the trained weights and BatchNorm statistics)")
    return a


@dataclass(frozen=True, eq=False)
class FloatSynapse:
    """A float connection; same fields as ``ir.integer.IntSynapse`` with a float64 weight in normalized units.

    Attributes:
        source: presynaptic layer index, ``INPUT_SOURCE`` (−1) for the 8-bit image.
        kind: conv or dense.
        weight: float64; conv (C_out, C_in/groups, kH, kW), dense (out, in) over the C-order flatten.
        stride, padding, dilation, groups: conv geometry (ignored for dense).
    """

    source: int
    kind: SynapseKind
    weight: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", SynapseKind(self.kind))
        object.__setattr__(self, "weight", _finite_array(self.weight, f"synapse weight from source {self.source}"))
        for name in ("stride", "padding", "dilation"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        object.__setattr__(self, "groups", int(self.groups))
        check_geometry(self, f"synapse from source {self.source}")

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of this synapse's output for a source of shape ``in_shape``."""
        return output_shape(self, in_shape)


@dataclass(frozen=True, eq=False)
class FloatLayer:
    """One neuron population of the converted network.

    Attributes:
        name: the torch module the layer came from (its activation, or the final Linear).
        shape: neuron shape (C, H, W) or (N,).
        synapses: ``synapses[0]`` from the previous layer, others residual (see ``ir.integer.IntLayer``).
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

    def __post_init__(self) -> None:
        where = f"layer {self.name!r}"
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "synapses", tuple(self.synapses))
        if len(self.shape) not in (1, 3) or min(self.shape) < 1:
            raise ModelError(f"{where}: shape {self.shape} must be (N,) or (C, H, W) with positive sizes")
        if not self.synapses:
            raise ModelError(f"{where}: has no synapses")
        bias = _finite_array(self.bias, f"{where}: bias")
        if bias.shape not in ((self.shape[0],), self.shape):
            raise ModelError(f"{where}: bias of shape {bias.shape} is neither per channel ({self.shape[0]},) "
                             f"nor per neuron {self.shape}")
        object.__setattr__(self, "bias", bias)
        for name in ("theta", "v_init"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise ModelError(f"{where}: {name}={value} must be finite")
            object.__setattr__(self, name, value)
        if not self.theta > 0:
            raise ModelError(f"{where}: theta={self.theta} must be positive")
        if int(self.ann_macs) < 0:
            raise ModelError(f"{where}: ann_macs={self.ann_macs} must be ≥ 0")

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

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        object.__setattr__(self, "layers", tuple(self.layers))
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ModelError(f"input shape {self.input_shape} must be (C, H, W) with positive sizes")
        if not self.layers:
            raise ModelError("the converted network has no layers")
        for i, layer in enumerate(self.layers):
            if layer.spiking == (i == len(self.layers) - 1):
                raise ModelError(f"layer {i} ({layer.name!r}): only the last layer is non-spiking")
        check_wiring(self.layers, self.source_shape, ModelError)

    def source_shape(self, source: int) -> tuple[int, ...]:
        """Shape of what ``source`` emits: the input image (−1) or a layer's neurons."""
        return self.input_shape if source == INPUT_SOURCE else self.layers[source].shape

    @property
    def ann_macs(self) -> int:
        """The ANN's multiply-accumulates per sample, counted on the modules as trained."""
        return sum(int(layer.ann_macs) for layer in self.layers)

"""The integer spiking network: one typed IR read by the exporter, the simulator, Lava and the reports.

Layout (all integers, Loihi 2 formats):

* The input is an 8-bit image (C, H, W), fed as graded spikes every time-step.
* Each ``IntLayer`` is one neuron population. Its input current per step is the sum of its
  synapses, ``a = Σ_k W_k ⊛ s_{source_k}`` (conv or dense), where ``s`` is the binary spike tensor of a
  layer or the 8-bit image (source −1). ``synapses[0]`` comes from the previous layer (netx's
  sequential edge); further synapses are residual edges from earlier layers.
* Neuron state ``v`` is a 24-bit signed membrane in state units (1 weight unit = 64 state units):

      v ← clip(v + (a << 6) + (bias << bias_exp), ±(2²³ − 1))
      IF_SOFT:    s = v ≥ threshold << 6;  v ← v − s·(threshold << 6)       (reset by subtraction)
      ACCUMULATE: no spike; v is the time-summed output (the class is argmax v)

  and ``v`` restarts at ``v_init`` at the beginning of every sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import FormatError
from ..tables import Column, format_table
from .formats import (BIAS_EXP_MAX, BIAS_MAX, BIAS_MIN, FORMAT_VERSION, INPUT_SOURCE, MAX_NAME,
                      STATE_MAX, STATE_SHIFT, THRESHOLD_MAX, WEIGHT_EXP_MAX, WEIGHT_EXP_MIN,
                      WEIGHT_MAX, WEIGHT_MIN, NeuronKind, SynapseKind, horizon_problem)
from .geometry import check_geometry, check_wiring, output_shape

@dataclass(frozen=True, eq=False)
class IntSynapse:
    """One integer connection into a layer.

    Attributes:
        source: index of the presynaptic layer; ``INPUT_SOURCE`` (−1) for the 8-bit image.
        kind: conv or dense.
        weight: int32; conv (C_out, C_in/groups, kH, kW) in torch layout, dense (out, in) over the
            C-order flatten of the source; even integers in [−256, 254].
        weight_exp: dense only; the accumulated sum is shifted, ``a = (W·s) << e`` (e ≥ 0) or
            ``a = (W·s) >> −e`` (arithmetic, floors), as Lava's Dense does.
        stride, padding, dilation: (H, W) conv geometry (ignored for dense).
        groups: conv groups.
    """

    source: int
    kind: SynapseKind
    weight: np.ndarray
    weight_exp: int = 0
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", SynapseKind(self.kind))
        w = np.asarray(self.weight)
        if not np.issubdtype(w.dtype, np.integer):
            raise FormatError(f"synapse weight has dtype {w.dtype}; allowed: integers")
        object.__setattr__(self, "weight", w.astype(np.int32))
        if w.size and (w.min() < WEIGHT_MIN or w.max() > WEIGHT_MAX or (w % 2).any()):
            raise FormatError(f"weight values must be even integers in [{WEIGHT_MIN}, {WEIGHT_MAX}]; "
                              f"found min {w.min()}, max {w.max()}, odd values: {bool((w % 2).any())}")
        if self.kind is SynapseKind.CONV and self.weight_exp != 0:
            raise FormatError(f"conv weight_exp={self.weight_exp}: Lava's Conv has no weight exponent; "
                              "allowed: 0")
        if not WEIGHT_EXP_MIN <= self.weight_exp <= WEIGHT_EXP_MAX:
            raise FormatError(f"weight_exp={self.weight_exp} outside [{WEIGHT_EXP_MIN}, {WEIGHT_EXP_MAX}]")
        for name in ("stride", "padding", "dilation"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        object.__setattr__(self, "groups", int(self.groups))
        check_geometry(self)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of this synapse's output for a source of shape ``in_shape``; raises if they do not fit."""
        return output_shape(self, in_shape)


@dataclass(frozen=True, eq=False)
class IntLayer:
    """One neuron population with its incoming synapses.

    Attributes:
        name: human-readable name (the torch module it came from).
        shape: neuron shape, (C, H, W) or (N,).
        synapses: ``synapses[0]`` comes from the previous layer; others are residual edges.
        neuron: neuron model.
        threshold: 17-bit threshold mantissa; the neuron fires at v ≥ threshold << 6.
        bias: int32 13-bit mantissa, per channel (C,) or per neuron (``shape``).
        bias_exp: the bias enters the 24-bit state as ``bias << bias_exp`` (0..7).
        v_init: initial membrane of every sample, in 24-bit state units.
        scale: integer weight units per normalized unit (≈ threshold); used to read values back as floats.
    """

    name: str
    shape: tuple[int, ...]
    synapses: tuple[IntSynapse, ...]
    neuron: NeuronKind
    threshold: int
    bias: np.ndarray
    bias_exp: int
    v_init: int
    scale: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "neuron", NeuronKind(self.neuron))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "synapses", tuple(self.synapses))
        if not isinstance(self.name, str) or len(self.name) > MAX_NAME or not self.name.isprintable():
            raise FormatError(f"layer name {str(self.name)[:40]!r}… must be printable text of at most {MAX_NAME} "
                              "characters")
        where = f"layer {self.name!r}"
        if len(self.shape) not in (1, 3) or min(self.shape) < 1:
            raise FormatError(f"{where}: shape {self.shape} must be (N,) or (C, H, W) with positive sizes")
        if not self.synapses:
            raise FormatError(f"{where}: has no synapses")
        if not 0 <= int(self.threshold) <= THRESHOLD_MAX:
            raise FormatError(f"{where}: threshold {self.threshold} outside the 17-bit range [0, {THRESHOLD_MAX}]")
        if self.neuron is NeuronKind.IF_SOFT and int(self.threshold) < 1:
            raise FormatError(f"{where}: a spiking layer needs threshold ≥ 1 (found {self.threshold})")
        b = np.asarray(self.bias)
        if not np.issubdtype(b.dtype, np.integer):
            raise FormatError(f"{where}: bias has dtype {b.dtype}; allowed: integers")
        if b.shape not in ((self.shape[0],), self.shape):
            raise FormatError(f"{where}: bias of shape {b.shape} is neither per channel "
                              f"({self.shape[0]},) nor per neuron {self.shape}")
        if b.size and (b.min() < BIAS_MIN or b.max() > BIAS_MAX):
            raise FormatError(f"{where}: bias in [{b.min()}, {b.max()}] exceeds the 13-bit range "
                              f"[{BIAS_MIN}, {BIAS_MAX}]")
        object.__setattr__(self, "bias", b.astype(np.int32))
        if not 0 <= int(self.bias_exp) <= BIAS_EXP_MAX:
            raise FormatError(f"{where}: bias_exp {self.bias_exp} outside [0, {BIAS_EXP_MAX}]")
        if abs(int(self.v_init)) > STATE_MAX:
            raise FormatError(f"{where}: v_init {self.v_init} exceeds the 24-bit membrane (±{STATE_MAX})")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise FormatError(f"{where}: scale {self.scale} must be a positive finite number")

    @property
    def spiking(self) -> bool:
        return self.neuron is NeuronKind.IF_SOFT

    @property
    def num_neurons(self) -> int:
        return int(np.prod(self.shape))

    def bias_full(self) -> np.ndarray:
        """The bias broadcast to the neuron shape (int64)."""
        b = self.bias.astype(np.int64)
        if b.shape == self.shape:
            return b
        return np.broadcast_to(b.reshape((-1,) + (1,) * (len(self.shape) - 1)), self.shape).copy()

    @property
    def threshold_state(self) -> int:
        """The firing threshold in 24-bit state units: ``threshold << 6``."""
        return int(self.threshold) << STATE_SHIFT

    def bias_state(self) -> np.ndarray:
        """The per-neuron bias in 24-bit state units, ``bias << bias_exp`` (int64, ``shape``)."""
        return self.bias_full() << int(self.bias_exp)


@dataclass(frozen=True, eq=False)
class IntNetwork:
    """The integer spiking network.

    Attributes:
        input_shape: (C, H, W) of the 8-bit input image.
        layers: the neuron populations in pipeline order; the last one is the ACCUMULATE output.
        timesteps: default number of time-steps per sample (what the file was exported for).
        max_timesteps: horizon up to which the 24-bit membrane is proven never to overflow.
        meta: provenance (activation parameters, data set, class count, per-layer quantization
            report, slipsnn version); JSON-serialisable.
        version: IR / file format version.
    """

    input_shape: tuple[int, int, int]
    layers: tuple[IntLayer, ...]
    timesteps: int
    max_timesteps: int
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.version != FORMAT_VERSION:
            raise FormatError(f"format version {self.version} is not supported; this slipsnn reads {FORMAT_VERSION}")
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise FormatError(f"input shape {self.input_shape} must be (C, H, W) with positive sizes")
        if not self.layers:
            raise FormatError("network has no layers")
        if problem := horizon_problem(self.timesteps, self.max_timesteps):
            raise FormatError(problem)
        for i, layer in enumerate(self.layers):
            last = i == len(self.layers) - 1
            if last != (layer.neuron is NeuronKind.ACCUMULATE):
                raise FormatError(f"layer {i} ({layer.name!r}): only the last layer accumulates, "
                                  f"every other layer spikes (found {layer.neuron.value})")
        check_wiring(self.layers, self.source_shape)

    def source_shape(self, source: int) -> tuple[int, ...]:
        """Shape of what ``source`` emits: the input image (−1) or a layer's neurons."""
        return self.input_shape if source == INPUT_SOURCE else self.layers[source].shape

    @property
    def num_classes(self) -> int:
        return self.layers[-1].num_neurons

    @property
    def depth(self) -> int:
        """Pipeline depth in Lava steps: one per layer."""
        return len(self.layers)

    def summary(self) -> str:
        """A table of the layers: shape, synapses, threshold, bias exponent, initial potential."""
        columns = [Column("#", 2), Column("layer", 18, "<", clip=True), Column("neuron", 10, "<"),
                   Column("shape", 14, "<"), Column("synapses (source:kind kernel)", 34, "<", clip=True),
                   Column("vth", 7), Column("b_exp", 5), Column("v_init", 8)]
        rows = []
        for i, L in enumerate(self.layers):
            syn = ", ".join(f"{s.source}:{s.kind.value} {'x'.join(map(str, s.weight.shape[2:])) or s.weight.shape[1]}"
                            + (f"/s{s.stride[0]}" if s.kind is SynapseKind.CONV and s.stride != (1, 1) else "")
                            for s in L.synapses)
            rows.append([i, L.name, L.neuron.value, "x".join(map(str, L.shape)), syn, L.threshold, L.bias_exp,
                         L.v_init])
        footer = (f"input {'x'.join(map(str, self.input_shape))} (8-bit graded), T={self.timesteps}, "
                  f"overflow-free up to T={self.max_timesteps}")
        return "\n".join(format_table(columns, rows) + [footer])

"""Proofs that let the integer simulator compute in float32 and merge parallel synapses, per synapse and layer.

Every value the integer network computes is an integer. float32 holds every integer of magnitude ≤ 2²⁴, and an
IEEE multiply or add whose exact result is representable returns it exactly; so a computation is exact in
float32 when every product and every partial sum provably stays within ±2²⁴, whatever the order of the sum
(the algorithm is then free to block, split or vectorize it; ``kernels.device.exact_float_math`` keeps it to
multiply-adds). The bounds are the overflow proof's (``conversion.overflow``): pixels 0..255, binary spikes.

* **Synapse** ``a = W ⊛ x`` (one group of parallel copies merged, see below): every partial sum of a target
  neuron is bounded by ``B = Σ_j |W_j|·x_max_j``; float32 when ``max B ≤ 2²⁴`` and the 24-bit accumulator
  cannot wrap (wrapping adds 2²³ to a value beyond 2²³). A dense shift ``<< e`` or
  ``>> −e`` (floor) only scales by a power of two: exact.
* **Merging.** ``quantize`` splits a weight beyond 8 bits into parallel copies (same source and geometry).
  In integers ``Σ_k W_k ⊛ s = (Σ_k W_k) ⊛ s``; the merge is exact unless a copy's own 24-bit conv
  accumulator could wrap (Lava wraps each synapse) or a dense copy floors (``>> −e``), and then they stay apart.
* **Membrane.** float32 when, over the run's T, the overflow proof keeps every pre-reset membrane that can
  change a spike within ±(2²³ − 1), every partial sum of the layer's synapse currents within 2²⁴, and the drive
  ``(a << 6) + bias`` within 2²⁴. For a constant-drive layer (fed by the image alone) that bound is one
  step's: the saturation may then act (``saturates``, run with the clamp) but cannot change a spike
  (``conversion.overflow``), and ``v + drive`` stays within 2²⁴ because both terms are within 2²³ − 1. Otherwise
  the layer runs in float64 with the saturation, today's arithmetic (exact below 2⁵³).

What cannot be proven falls back to float64 for that synapse or layer alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from ..conversion.overflow import OverflowBound, dense_shift, integer_extremes, layer_bounds
from ..ir.formats import STATE_MAX, STATE_SHIFT, SynapseKind
from ..ir.integer import IntLayer, IntNetwork, IntSynapse

FLOAT32_EXACT = 2 ** 24      # every integer of magnitude ≤ 2²⁴ is a float32


@dataclass(frozen=True)
class SynapseProof:
    """One group of parallel synapses of a layer and what is proven about it.

    Attributes:
        indices: positions in ``layer.synapses`` merged into this group (one index when not merged).
        weight: int64, the summed weight of the group (may leave [−256, 254]).
        abs_bound: max over target neurons of Σ|W|·x_max (weight units).
        wraps: a conv copy's 24-bit accumulator can wrap: the group is one synapse, wrapped as Lava does.
        float32: the synapse is computed exactly in float32.
    """

    indices: tuple[int, ...]
    weight: np.ndarray
    abs_bound: int
    wraps: bool
    float32: bool


@dataclass(frozen=True)
class LayerProof:
    """What is proven about one layer over ``timesteps`` steps.

    Attributes:
        layer, name: index and name.
        synapses: one proof per synapse group.
        bound: the layer's overflow proof over T (``conversion.overflow.layer_bounds``).
        drive_bound: worst-case |(a << 6) + bias| (state units).
        float32: the membrane runs in float32 (exact, saturation included).
    """

    layer: int
    name: str
    synapses: tuple[SynapseProof, ...]
    bound: OverflowBound
    drive_bound: int
    float32: bool

    @property
    def state_bound(self) -> int:
        """Worst-case |pre-reset membrane| that can change a spike (state units)."""
        return self.bound.state

    @property
    def raw_state_bound(self) -> int:
        """Worst-case |pre-reset membrane| without saturation over T (≥ ``state_bound``)."""
        return self.bound.raw_state

    @property
    def saturates(self) -> bool:
        """The 24-bit saturation may act within T steps (the simulator then applies it)."""
        return self.bound.saturates


def _mergeable_key(syn: IntSynapse) -> tuple:
    return (syn.source, syn.kind, syn.weight.shape, syn.weight_exp, syn.stride, syn.padding, syn.dilation,
            syn.groups)


def synapse_groups(layer: IntLayer, source_shape) -> list[tuple[tuple[int, ...], bool]]:
    """Group a layer's synapses into mergeable parallel copies.

    Returns:
        ``[(indices, wraps), …]`` in first-appearance order; ``wraps`` says a conv synapse's accumulator can
        wrap (it then stays alone).
    """
    groups: dict[tuple, list[int]] = {}
    alone: list[tuple[tuple[int, ...], bool]] = []
    order: list[tuple] = []
    for k, syn in enumerate(layer.synapses):
        pos, neg = integer_extremes(syn, source_shape(syn.source))
        wraps = syn.kind is SynapseKind.CONV and max(int(pos.max()), int(-neg.min())) > STATE_MAX
        if wraps or (syn.kind is SynapseKind.DENSE and syn.weight_exp < 0):
            key: tuple = ("alone", k)
            alone.append(((k,), wraps))
        else:
            key = _mergeable_key(syn)
        if key not in groups:
            order.append(key)
        groups.setdefault(key, []).append(k)
    wrapped = {g[0][0]: g[1] for g in alone}
    return [(tuple(groups[key]), wrapped.get(groups[key][0], False)) for key in order]


def prove_layer(net: IntNetwork, index: int, timesteps: int, allow_float32: bool = True) -> LayerProof:
    """Merge, float32 and saturation proofs of layer ``index`` for runs of ``timesteps`` steps.

    Args:
        net: the integer network.
        index: the layer.
        timesteps: T of the run (the membrane bound grows with T).
        allow_float32: False proves nothing about float32 (everything float64, the reference arithmetic).
    """
    layer = net.layers[index]
    syn_proofs = []
    partial = np.zeros(layer.shape, dtype=np.int64)        # Σ over groups of max |current| (weight units)
    i_max = layer.bias_state().astype(np.int64)             # the drive's range per neuron, as conversion.overflow
    i_min = i_max.copy()
    for indices, wraps in synapse_groups(layer, net.source_shape):
        first = layer.synapses[indices[0]]
        weight = sum(layer.synapses[k].weight.astype(np.int64) for k in indices)
        # the summed weight may leave the 8-bit format, so the group is described, not built as an IntSynapse
        merged = SimpleNamespace(source=first.source, kind=first.kind, weight=weight, stride=first.stride,
                                 padding=first.padding, dilation=first.dilation, groups=first.groups)
        pos, neg = integer_extremes(merged, net.source_shape(first.source))
        abs_bound = int((pos - neg).max())
        # a wrapping accumulator exceeds 2²³, and wrapping it adds 2²³: float64
        syn_proofs.append(SynapseProof(indices, weight, abs_bound, wraps,
                                       allow_float32 and not wraps and abs_bound <= FLOAT32_EXACT))
        pos, neg = (dense_shift(a, first.weight_exp).reshape(layer.shape) for a in (pos, neg))
        partial = partial + np.maximum(pos, -neg)
        i_max, i_min = i_max + (pos << STATE_SHIFT), i_min + (neg << STATE_SHIFT)
    bounds = layer_bounds(layer, index, net.source_shape, timesteps)
    drive_bound = int(max(np.abs(i_max).max(), np.abs(i_min).max()))
    float32 = (allow_float32 and all(p.float32 for p in syn_proofs) and int(partial.max()) <= FLOAT32_EXACT
               and drive_bound <= FLOAT32_EXACT and bounds.state <= STATE_MAX)
    return LayerProof(index, layer.name, tuple(syn_proofs), bounds, drive_bound, float32)


def prove_exactness(net: IntNetwork, timesteps: int, allow_float32: bool = True) -> list[LayerProof]:
    """``prove_layer`` for every layer (what the fast simulator runs in which type)."""
    return [prove_layer(net, i, timesteps, allow_float32) for i in range(len(net.layers))]

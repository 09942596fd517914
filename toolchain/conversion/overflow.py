"""Static proof that no reachable input overflows the 24-bit membrane or the 24-bit conv accumulator.

Reachable inputs are every 8-bit image (pixels 0..255) and every binary spike pattern of the
hidden layers. Per neuron, the input current of one step lies in [I_min, I_max] (state units):

    I_max = Σ_k (Σ_j max(W_kj, 0)·x_max_j shifted by e_k) << 6 + bias << bias_exp      (I_min with min)

With reset by subtraction and at most one spike per step, the pre-reset membrane u(t) = v(t−1) + I(t)
of a spiking layer obeys (θ = threshold << 6, M = max(I_max, 0), m = min(I_min, 0)):

    u(t) ≤ max(v₀, θ) + M + (t − 1)·max(M − θ, 0)        u(t) ≥ min(v₀, 0) + t·m

and the accumulating output layer obeys v₀ + t·m ≤ u(t) ≤ v₀ + t·M. Overflow is impossible for all
t ≤ T when both bounds stay within ±(2²³ − 1); the conv accumulator must stay within ±(2²³ − 1) too
(Lava wraps it to 24 bits, and its float32 convolution is only exact below 2²⁴).

**Constant drive.** A spiking layer whose every synapse reads the input image (the first layer) gets the same
input I at every step of a sample, since the image is fed unchanged. The membrane saturates at ±(2²³ − 1)
(docs/format.md), and for a constant I saturation never changes a spike: with I ≥ θ the neuron fires at every
step once it has fired (after a spike v = u − θ ≥ 0, so the next u ≥ I ≥ θ, clipped or not: the ceiling
2²³ − 1 ≥ θ); with I < 0 it never fires (u only falls, and v₀ < θ); with 0 ≤ I < θ the membrane stays below
max(v₀, θ) + I and never saturates. So for such a layer the bound that matters is one step's, whatever T:
``state`` is that bound, ``raw_state`` the T-step one (which says whether saturation may act). A target
whose membrane wraps instead (stock CUBA) must use ``raw_state`` (``layer_bounds(..., saturating=False)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import QuantizationError
from ..ir.geometry import SynapseLike
from ..ir.formats import INPUT_SOURCE, STATE_MAX, STATE_SHIFT, SynapseKind
from ..ir.floating import FloatLayer
from ..ir.integer import IntLayer, IntNetwork
from ..kernels.synapse import apply_synapse

INPUT_MAX = 255


@dataclass(frozen=True)
class OverflowBound:
    """Worst-case magnitudes of one layer, in 24-bit state units (accumulator in weight units).

    Attributes:
        layer: layer index; name: its name.
        state: max |u(t)| that can change a spike or a logit, over every neuron, reachable input and
            t ≤ timesteps (one step's bound for a constant drive on a saturating membrane, module docstring).
        accumulator: max |Σ W·x| of one synapse in one step.
        raw_state: max |u(t)| without saturation over the same steps (≥ ``state``); beyond 2²³ − 1 the
            saturation may act, harmlessly when ``state`` is within range.
    """

    layer: int
    name: str
    state: int
    accumulator: int
    raw_state: int

    @property
    def saturates(self) -> bool:
        """The 24-bit saturation may act within the steps bounded (it then cannot change a spike when ``ok``)."""
        return self.raw_state > STATE_MAX

    @property
    def ok(self) -> bool:
        return self.state <= STATE_MAX and self.accumulator <= STATE_MAX

    @property
    def margin_bits(self) -> float:
        """log2(limit / worst case): positive means headroom, negative the bits it overflows by."""
        worst = max(self.state, self.accumulator, 1)
        return float(np.log2(STATE_MAX / worst))


def input_extremes(syn: SynapseLike, source_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per target neuron, the largest and smallest input one step of ``syn`` can deliver.

    Returns:
        (Σ max(W, 0)·x_max, Σ min(W, 0)·x_max), float64 arrays of the synapse's output shape, in the
        weight's units; x_max is 255 for the 8-bit image and 1 for spikes. Exact for integer weights.
    """
    x_max = INPUT_MAX if syn.source == INPUT_SOURCE else 1
    x = torch.full((1, *source_shape), float(x_max), dtype=torch.float64)
    w = torch.as_tensor(np.asarray(syn.weight), dtype=torch.float64)
    geo = dict(stride=syn.stride, padding=syn.padding, dilation=syn.dilation, groups=syn.groups)
    return (apply_synapse(x, syn.kind, w.clamp(min=0), **geo)[0].numpy(),
            apply_synapse(x, syn.kind, w.clamp(max=0), **geo)[0].numpy())


def has_constant_drive(layer: "IntLayer | FloatLayer") -> bool:
    """A spiking layer whose every synapse reads the input image: its drive is the same at every step of a sample."""
    return layer.spiking and all(s.source == INPUT_SOURCE for s in layer.synapses)


def membrane_bound(i_max: np.ndarray, i_min: np.ndarray, v0: float, theta: float, timesteps: int,
                   spiking: bool) -> float:
    """Worst-case |u(t)| for t ≤ ``timesteps`` given per-neuron input bounds (the recurrences above).

    Args:
        i_max, i_min: per-neuron bounds of one step's total input (same units as ``theta`` and ``v0``).
        v0: initial membrane; theta: threshold (ignored when not ``spiking``); timesteps: T (1 gives the
            bound that matters for a constant drive on a saturating membrane).
        spiking: IF_SOFT (True) or ACCUMULATE (False).
    """
    big_m, small_m, t = np.maximum(i_max, 0), np.minimum(i_min, 0), int(timesteps)
    if spiking:
        upper = max(v0, theta) + big_m + (t - 1) * np.maximum(big_m - theta, 0)
        lower = min(v0, 0) + t * small_m
    else:
        upper, lower = v0 + t * big_m, v0 + t * small_m
    return float(max(np.max(np.abs(upper)), np.max(np.abs(lower))))


def layer_bounds(layer: IntLayer, index: int, source_shape: Callable[[int], tuple[int, ...]],
                 timesteps: int, saturating: bool = True) -> OverflowBound:
    """The worst-case bound of one layer over ``timesteps`` steps, in exact integers.

    Args:
        layer: the layer; index: its position (for messages).
        source_shape: maps a synapse source index to its shape (``IntNetwork.source_shape``).
        timesteps: horizon T.
        saturating: the membrane saturates at 24 bits (slipsnn's neuron, the IR): a constant-drive layer is
            bounded over one step. False for a target that wraps (stock CUBA).
    """
    i_max = layer.bias_state()
    i_min = i_max.copy()
    acc = 0
    for syn in layer.synapses:
        pos, neg = integer_extremes(syn, source_shape(syn.source))
        if syn.kind is SynapseKind.CONV:  # Lava's Dense accumulates in int32 without wrapping
            acc = max(acc, int(np.max(pos)), int(-np.min(neg)))
        i_max = i_max + (dense_shift(pos, syn.weight_exp) << STATE_SHIFT).reshape(layer.shape)
        i_min = i_min + (dense_shift(neg, syn.weight_exp) << STATE_SHIFT).reshape(layer.shape)
    theta = layer.threshold_state
    raw = int(membrane_bound(i_max, i_min, int(layer.v_init), theta, timesteps, layer.spiking))
    state = int(membrane_bound(i_max, i_min, int(layer.v_init), theta, 1, True)) \
        if saturating and has_constant_drive(layer) else raw
    return OverflowBound(index, layer.name, min(state, raw), acc, raw)


def dense_shift(a: np.ndarray, exp: int) -> np.ndarray:
    """Lava's dense exponent on an int64 array: ``<< e`` or ``>> −e`` (floors, like the hardware)."""
    return a << exp if exp >= 0 else a >> -exp


def integer_extremes(syn: SynapseLike, source_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``input_extremes`` as exact int64 arrays (the sums are integers for integer weights)."""
    pos, neg = input_extremes(syn, source_shape)
    return np.round(pos).astype(np.int64), np.round(neg).astype(np.int64)


def prove_no_overflow(net: IntNetwork, timesteps: int | None = None) -> list[OverflowBound]:
    """Bound every layer for ``timesteps`` (default ``net.max_timesteps``); raise if any can overflow.

    Raises:
        QuantizationError: naming the first layer that can overflow and by how many bits.
    """
    t = int(timesteps or net.max_timesteps)
    bounds = [layer_bounds(L, i, net.source_shape, t) for i, L in enumerate(net.layers)]
    for b in bounds:
        if not b.ok:
            what = "membrane" if b.state > STATE_MAX else "conv accumulator"
            raise QuantizationError(
                f"layer {b.layer} ({b.name!r}) can overflow its 24-bit {what} within {t} steps: worst case "
                f"{max(b.state, b.accumulator)} > {STATE_MAX} ({-b.margin_bits:.2f} bits over)")
    return bounds

"""Pure neuron steps: integrate-and-fire with reset by subtraction, in float and in Loihi integers.

Each step takes the membrane ``v`` and this step's input and returns ``(spikes, v_next)``; nothing is
stored between calls, so the simulator, the tests and the Lava process model share one definition.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .ir import STATE_MAX, STATE_SHIFT


class FloatIFParams(NamedTuple):
    """Float IF in normalized units: threshold 1.

    Attributes:
        bias: added every step, broadcastable to the membrane.
        spiking: False for the accumulating output layer.
    """

    bias: torch.Tensor
    spiking: bool


class IntIFParams(NamedTuple):
    """Integer IF in 24-bit state units (see ``ir`` for the equations).

    Attributes:
        bias_state: ``bias << bias_exp`` (integer-valued), broadcastable to the membrane.
        threshold_state: ``threshold << 6``.
        spiking: False for the accumulating output layer.
    """

    bias_state: torch.Tensor
    threshold_state: int
    spiking: bool


def float_if_step(v: torch.Tensor, z: torch.Tensor, p: FloatIFParams) -> tuple[torch.Tensor, torch.Tensor]:
    """``v ← v + z + b``; fire where ``v ≥ 1``; subtract 1 where fired.

    Args:
        v: membrane (N, *shape), units of the threshold.
        z: synaptic input of this step, same shape.
        p: parameters.

    Returns:
        (spikes as float 0/1, next membrane).
    """
    v = v + z + p.bias
    if not p.spiking:
        return torch.zeros_like(v), v
    s = (v >= 1.0).to(v.dtype)
    return s, v - s


def int_if_step(v: torch.Tensor, a: torch.Tensor, p: IntIFParams) -> tuple[torch.Tensor, torch.Tensor]:
    """``v ← clip(v + (a << 6) + bias_state, ±(2²³−1))``; fire at ``v ≥ threshold_state``; subtract it.

    Works on int64 tensors and on float64 tensors holding integers (exact below 2⁵³; the simulator
    uses float64 so that convolutions need no conversions).

    Args:
        v: membrane (N, *shape), state units.
        a: synaptic input of this step in weight units, same shape and dtype.
        p: parameters.

    Returns:
        (spikes 0/1 in v's dtype, next membrane).
    """
    v = torch.clamp(v + a * (1 << STATE_SHIFT) + p.bias_state, -STATE_MAX, STATE_MAX)
    if not p.spiking:
        return torch.zeros_like(v), v
    s = (v >= p.threshold_state).to(v.dtype)
    return s, v - s * p.threshold_state

"""Pure neuron steps: integrate-and-fire with reset by subtraction, in float and in Loihi integers.

Each step takes the membrane ``v`` and this step's input and returns ``(spikes, v_next)``; nothing is
stored between calls. ``if_step`` works on numpy arrays and torch tensors alike, so the simulator
(torch), the Lava process models (numpy) and the tests share one definition. This module does not
import torch: Lava's forked model processes use it with numpy only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from .formats import STATE_MAX, STATE_SHIFT

if TYPE_CHECKING:
    import torch


class FloatIFParams(NamedTuple):
    """Float IF in normalized units: threshold 1.

    Attributes:
        bias: added every step, broadcastable to the membrane.
        spiking: False for the accumulating output layer.
    """

    bias: "torch.Tensor"
    spiking: bool


class IntIFParams(NamedTuple):
    """Integer IF in 24-bit state units (see ``ir`` for the equations).

    Attributes:
        bias_state: ``bias << bias_exp`` (integer-valued), broadcastable to the membrane.
        threshold_state: ``threshold << 6``.
        spiking: False for the accumulating output layer.
    """

    bias_state: "torch.Tensor"
    threshold_state: int
    spiking: bool


def if_step(v: Any, drive: Any, threshold: float, spiking: bool, clip: bool) -> tuple[Any, Any]:
    """``v ← v + drive`` (saturated at ±(2²³ − 1) when ``clip``); fire at ``v ≥ threshold``; subtract it.

    Args:
        v: membrane, a numpy array or torch tensor (N, *shape).
        drive: this step's total input (synapses and bias) in the membrane's units, broadcastable.
        threshold: firing threshold in the membrane's units.
        spiking: False: no spike test and no reset (the accumulating output layer).
        clip: saturate at the 24-bit membrane range (the integer network).

    Returns:
        (spikes 0/1 in v's dtype, next membrane).
    """
    v = v + drive
    if clip:
        v = v.clip(-STATE_MAX, STATE_MAX)
    if not spiking:
        return v * 0, v
    fired = v >= threshold
    s = fired.astype(v.dtype) if hasattr(fired, "astype") else fired.to(v.dtype)
    return s, v - s * threshold


def float_if_step(v: "torch.Tensor", z: "torch.Tensor", p: FloatIFParams) -> tuple["torch.Tensor", "torch.Tensor"]:
    """``v ← v + z + b``; fire where ``v ≥ 1``; subtract 1 where fired.

    Args:
        v: membrane (N, *shape), units of the threshold.
        z: synaptic input of this step, same shape.
        p: parameters.

    Returns:
        (spikes as float 0/1, next membrane).
    """
    return if_step(v, z + p.bias, 1.0, p.spiking, clip=False)


def int_if_step(v: "torch.Tensor", a: "torch.Tensor", p: IntIFParams) -> tuple["torch.Tensor", "torch.Tensor"]:
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
    return if_step(v, a * (1 << STATE_SHIFT) + p.bias_state, p.threshold_state, p.spiking, clip=True)

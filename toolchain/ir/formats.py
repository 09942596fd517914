"""Numbers and names of slipsnn's integer format: Loihi 2 ranges, state units, kinds of synapse and neuron.

numpy only; every other layer reads its limits from here.
"""

from __future__ import annotations

from enum import Enum
from typing import Sequence

import numpy as np

from ..errors import SlipsnnError

FORMAT_VERSION = 1

STATE_SHIFT = 6                      # weight units → 24-bit state units
STATE_MAX = 2 ** 23 - 1              # |v| limit of the 24-bit membrane
WEIGHT_MIN, WEIGHT_MAX = -256, 254   # netx synapse format: even integers (8-bit mantissa × 2)
THRESHOLD_MAX = 2 ** 17 - 1          # 17-bit unsigned threshold mantissa
BIAS_MIN, BIAS_MAX = -2 ** 12, 2 ** 12 - 1   # 13-bit signed bias mantissa
BIAS_EXP_MAX = 7                     # 3-bit bias exponent
WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = -8, 8
INPUT_BITS = 8
MAX_TIMESTEPS = 4096                 # time-steps per sample; far beyond the 1–32 conversion works at
MAX_NAME = 200                       # characters of a layer name
INPUT_SOURCE = -1                    # ``IntSynapse.source`` of the input image


def lava_dense_clips(weight: np.ndarray) -> bool:
    """True when Lava's fixed-point Dense would change ``weight``: a matrix without a positive entry is
    'inhibitory' there and clipped to [−255, 0], so a −256 becomes −255 (lava/utils/weightutils.py)."""
    w = np.asarray(weight)
    return bool(w.size) and int(w.max()) <= 0 and int(w.min()) < -255


class SynapseKind(str, Enum):
    """How a synapse maps its source onto its target."""

    CONV = "conv"      # torch ``conv2d`` of the (C, H, W) source
    DENSE = "dense"    # matrix product with the C-order flattened source


class NetxNeuron(str, Enum):
    """The neuron a netx file declares (``slipsnn/neuron``); each kind's writer and limits live in ``exporters.netx``."""

    IF_SOFT = "if_soft"   # slipsnn's soft-reset IF, bit-exact at every T
    CUBA = "cuba"         # stock lava-dl netx CUBA (resets to zero): loads in unmodified netx


class ExportFormat(str, Enum):
    """The file formats ``slipsnn-export`` writes."""

    NETX = "netx"   # lava-dl netx HDF5 (exporters.netx)
    NIR = "nir"     # a NIR graph (exporters.nir)


class NirVariant(str, Enum):
    """The NIR graph ``exporters.nir`` writes (see its module docstring)."""

    PORTABLE = "portable"   # Input, Conv2d/Affine, IF, Flatten, Output only: exact at T = 1
    EXACT = "exact"         # I + Threshold + recurrent Scale(−θ): slipsnn's subtractive reset at every T


class NeuronKind(str, Enum):
    """The neuron model of a layer (see the module docstring for the update equations)."""

    IF_SOFT = "IF_SOFT"          # integrate-and-fire, fires at v ≥ θ, reset by subtraction (slipsnn)
    ACCUMULATE = "ACCUMULATE"    # non-spiking output layer: sums its input over time


def check_timesteps(timesteps: int) -> int:
    """Validate T: an integer in [1, ``MAX_TIMESTEPS``]; returns it as ``int``.

    Raises:
        SlipsnnError: T out of range.
    """
    if int(timesteps) != timesteps or not 1 <= int(timesteps) <= MAX_TIMESTEPS:
        raise SlipsnnError(f"timesteps={timesteps}: must be in [1, {MAX_TIMESTEPS}]")
    return int(timesteps)


def check_timestep_list(timesteps: int | Sequence[int]) -> list[int]:
    """One T or several (each as ``check_timesteps``) as a non-empty list of ``int``.

    Raises:
        SlipsnnError: an empty list or a T out of range.
    """
    ts = [timesteps] if isinstance(timesteps, (int, np.integer)) else list(timesteps)
    if not ts:
        raise SlipsnnError("timesteps: give at least one")
    return [check_timesteps(t) for t in ts]


def horizon_problem(timesteps: int, max_timesteps: int) -> str | None:
    """What is wrong with a default T and a proven horizon (None: ``1 ≤ T ≤ max_timesteps ≤ MAX_TIMESTEPS``)."""
    if 1 <= int(timesteps) <= int(max_timesteps) <= MAX_TIMESTEPS:
        return None
    return (f"timesteps {timesteps} and max_timesteps {max_timesteps} must satisfy "
            f"1 ≤ timesteps ≤ max_timesteps ≤ {MAX_TIMESTEPS}")

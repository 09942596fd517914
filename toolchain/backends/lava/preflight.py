"""What Lava can represent: the limits of the Lava processes slipsnn builds, checked on the IR before compiling.

Every limit is read from Lava's own source (lava-nc/lava v0.10.0, lava-nc/lava-dl v0.6.0; file:line in
docs/lava.md). Most ranges are already guaranteed by the IR (``ir.integer`` validates weights, thresholds,
biases, exponents, stride/padding/dilation ≤ 64); this module checks the ones the IR does not, and those that
Lava's graph builder cannot re-express exactly:

* conv ``groups`` is an int8 Var (``lava/proc/conv/models.py:29``): a larger value wraps silently. The graph
  builder re-expresses it exactly with ``lava_conv_groups`` (a divisor ≤ 127 and a block-diagonal kernel),
  so it is never refused;
* conv ``kernel_size`` is an int8 Var too (``models.py:25``): a kernel side above 127 is refused;
* Lava's Conv casts its sum to int32 before wrapping it to 24 bits (``lava/proc/conv/utils.py:218``) and
  Lava's Dense accumulates and shifts in int32 (``lava/proc/dense/models.py:68, 97-107``): a synapse whose
  worst-case one-step sum reaches 2³¹ is refused;
* a residual edge is delayed by one step per skipped layer; Loihi 2's synaptic delay has 6 bits, at most
  63 steps (``lava/proc/dense/models.py:306, 330-334``): a longer delay is refused.

numpy only: importing this module does not import Lava.
"""

from __future__ import annotations

import numpy as np

from ...errors import LavaError
from ...ir.formats import INPUT_SOURCE, SynapseKind
from ...ir.integer import IntNetwork, IntSynapse

INT8_MAX = 127                 # Lava's conv geometry Vars (kernel_size, stride, padding, dilation, groups) are int8
MAX_CONV_GROUPS = INT8_MAX
MAX_KERNEL = INT8_MAX
ACCUMULATOR_MAX = 2 ** 31 - 1  # int32 accumulators of Lava's fixed-point Conv and Dense
MAX_DELAY = 63                 # Loihi 2 synaptic delay: 6 bits
INPUT_MAX = 255                # the 8-bit image; spikes are 0/1

_CONV_SRC = "lava/proc/conv/models.py:25 (kernel_size: int8)"
_ACC_SRC = {SynapseKind.CONV: "Lava's Conv casts its sum to int32 (lava/proc/conv/utils.py:218)",
            SynapseKind.DENSE: "Lava's Dense accumulates in int32 (lava/proc/dense/models.py:97-107)"}
_DELAY_SRC = "Loihi 2's 6-bit synaptic delay (lava/proc/dense/models.py:330-334)"


def lava_conv_groups(groups: int) -> int:
    """The number of groups Lava's Conv gets for an IR conv of ``groups`` groups: the largest divisor ≤ 127.

    A conv of g groups equals a conv of g' groups (g' dividing g) whose kernel holds the original kernels on
    its block diagonal and zeros elsewhere (``regroup_weight``), so the re-expression is exact.
    """
    g = int(groups)
    if g <= MAX_CONV_GROUPS:
        return g
    return max(d for d in range(1, MAX_CONV_GROUPS + 1) if g % d == 0)


def regroup_weight(weight: np.ndarray, groups: int, new_groups: int) -> np.ndarray:
    """A conv kernel of ``groups`` groups as the equivalent kernel of ``new_groups`` groups (which divides it).

    Args:
        weight: (C_out, C_in/groups, kH, kW) in torch layout.
        groups: its groups.
        new_groups: a divisor of ``groups``.

    Returns:
        (C_out, C_in/new_groups, kH, kW), same dtype: output channel o of original group G = o // (C_out/groups)
        reads, inside its new group, the input slice of G (``G mod m`` of the ``m = groups/new_groups`` merged
        groups); every other entry is zero.

    Example:
        >>> regroup_weight(np.full((4, 1, 1, 1), 2), 4, 2)[:, :, 0, 0]
        array([[2, 0],
               [0, 2],
               [2, 0],
               [0, 2]])
    """
    if groups % new_groups:
        raise ValueError(f"new_groups={new_groups} does not divide groups={groups}")
    if new_groups == groups:
        return weight
    c_out, c_group = weight.shape[:2]
    merged, per_group = groups // new_groups, c_out // groups
    out = np.zeros((c_out, c_group * merged, *weight.shape[2:]), dtype=weight.dtype)
    for o in range(c_out):
        slot = (o // per_group) % merged
        out[o, slot * c_group:(slot + 1) * c_group] = weight[o]
    return out


def accumulator_bound(syn: IntSynapse) -> int:
    """Worst case of |Σ W·x| (and of its shifted value for a dense exponent > 0) in one step of ``syn``.

    Every output sums at most all of its weights' positive (or negative) parts times the largest input (255
    for the image, 1 for spikes); border effects of a conv only remove terms, so this bounds every output.
    """
    x_max = INPUT_MAX if syn.source == INPUT_SOURCE else 1
    w = syn.weight.astype(np.int64).reshape(len(syn.weight), -1)
    worst = int(max(np.clip(w, 0, None).sum(axis=1).max(), -np.clip(w, None, 0).sum(axis=1).min())) * x_max
    if syn.kind is SynapseKind.DENSE and syn.weight_exp > 0:
        worst <<= int(syn.weight_exp)
    return worst


def check_lava(net: IntNetwork) -> list[str]:
    """Every reason Lava cannot run ``net`` exactly, one sentence each (layer, value, limit); empty if it can.

    Example:
        >>> check_lava(net)                           # doctest: +SKIP
        []
    """
    problems = []
    for i, layer in enumerate(net.layers):
        for k, syn in enumerate(layer.synapses):
            where = f"layer {i} ({layer.name!r}) synapse {k}"
            if syn.kind is SynapseKind.CONV and max(syn.weight.shape[2:]) > MAX_KERNEL:
                problems.append(f"{where}: conv kernel {tuple(syn.weight.shape[2:])} exceeds Lava's limit of "
                                f"{MAX_KERNEL} per side ({_CONV_SRC})")
            bound = accumulator_bound(syn)
            if bound > ACCUMULATOR_MAX:
                problems.append(f"{where}: one step can sum to {bound}, beyond ±{ACCUMULATOR_MAX}; "
                                f"{_ACC_SRC[syn.kind]}")
            delay = i - syn.source - 1
            if k > 0 and delay > MAX_DELAY:
                origin = "the input" if syn.source == INPUT_SOURCE else f"layer {syn.source}"
                problems.append(f"{where}: the residual edge from {origin} needs a delay of {delay} steps; "
                                f"at most {MAX_DELAY} ({_DELAY_SRC})")
    return problems


def require_lava_compatible(net: IntNetwork) -> None:
    """Raise ``LavaError`` naming every layer Lava cannot represent exactly (see ``check_lava``).

    Raises:
        LavaError: one sentence per problem, joined by "; ".
    """
    problems = check_lava(net)
    if problems:
        raise LavaError(f"Lava cannot run this network exactly: {'; '.join(problems)}")

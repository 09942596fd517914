"""Shapes that a synapse produces: the one place where conv and dense output shapes are computed."""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

import numpy as np

from ..errors import FormatError
from .formats import INPUT_SOURCE, SynapseKind


class SynapseLike(Protocol):
    """What shape and count computations need; ``IntSynapse`` and ``FloatSynapse`` both fit."""

    source: int
    kind: SynapseKind
    weight: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int


def output_shape(syn: SynapseLike, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of ``syn``'s output for a source of shape ``in_shape``.

    Dense: ``(out,)``, the weight (out, in) reads the C-order flatten of the source. Conv: torch ``conv2d``'s
    ``(C_out, H_out, W_out)`` with ``H_out = ⌊(H + 2·pad − dil·(k − 1) − 1) / stride⌋ + 1``.

    Raises:
        FormatError: the weight does not fit the source.
    """
    w = np.asarray(syn.weight)
    if syn.kind is SynapseKind.DENSE:
        n_in = int(np.prod(in_shape))
        if w.shape[1] != n_in:
            raise FormatError(f"dense weight takes {w.shape[1]} inputs; its source has {n_in} "
                              f"(shape {tuple(in_shape)})")
        return (int(w.shape[0]),)
    if len(in_shape) != 3 or in_shape[0] != w.shape[1] * syn.groups:
        raise FormatError(f"conv weight {tuple(w.shape)} with groups={syn.groups} does not fit a "
                          f"source of shape {tuple(in_shape)}")
    out = [int(w.shape[0])]
    for d in range(2):
        k = syn.dilation[d] * (w.shape[2 + d] - 1) + 1
        n = (in_shape[1 + d] + 2 * syn.padding[d] - k) // syn.stride[d] + 1
        if n < 1:
            raise FormatError(f"conv kernel {tuple(w.shape[2:])} does not fit input {tuple(in_shape)}")
        out.append(int(n))
    return tuple(out)


def check_wiring(layers: Sequence[Any], source_shape: Callable[[int], tuple[int, ...]],
                 error: type[Exception] = FormatError) -> None:
    """Validate how layers connect: ``synapses[0]`` from the previous layer, residual synapses from earlier
    layers (−1: the input) and every synapse producing its layer's shape.

    Args:
        layers: objects with ``name``, ``shape`` and ``synapses`` (``IntLayer`` or ``FloatLayer``).
        source_shape: maps a source index to its shape.
        error: the exception raised (``FormatError`` for files, ``ModelError`` for conversions).
    """
    for i, layer in enumerate(layers):
        for k, syn in enumerate(layer.synapses):
            if k == 0 and syn.source != i - 1:
                raise error(f"layer {i} ({layer.name!r}): its first synapse must come from layer "
                            f"{i - 1}, found source {syn.source}")
            if not INPUT_SOURCE <= syn.source < i - (k > 0):
                raise error(f"layer {i} ({layer.name!r}): residual synapse {k} points to layer "
                            f"{syn.source}; allowed: earlier layers −1..{i - 2}")
            out = output_shape(syn, source_shape(syn.source))
            if out != layer.shape:
                raise error(f"layer {i} ({layer.name!r}): synapse {k} produces shape {out}, "
                            f"the layer has {layer.shape}")


def check_geometry(syn: SynapseLike, where: str = "") -> None:
    """Validate the kind-dependent weight rank, stride/padding/dilation and groups of a synapse.

    Raises:
        FormatError: naming ``where`` (the synapse), the value and what is allowed.
    """
    w = np.asarray(syn.weight)
    where = f"{where}: " if where else ""
    want = 4 if syn.kind is SynapseKind.CONV else 2
    if w.ndim != want:
        raise FormatError(f"{where}{syn.kind.value} weight has {w.ndim} dimensions; expected {want}")
    for name in ("stride", "padding", "dilation"):
        val = tuple(getattr(syn, name))
        low = 0 if name == "padding" else 1
        if len(val) != 2 or min(val) < low or max(val) > 64:
            raise FormatError(f"{where}conv {name}={val}: expected two integers in [{low}, 64]")
    if syn.kind is SynapseKind.CONV and (syn.groups < 1 or w.shape[0] % syn.groups):
        raise FormatError(f"{where}conv groups={syn.groups} does not divide {w.shape[0]} output channels")

"""Files for stock lava-dl netx (CUBA neurons) that ``read_netx`` does not take back into the IR: slipsnn's
``--neuron cuba`` export and files slayer wrote. ``describe_stock_netx`` reads what running and reporting
them needs — the layer stack (type, shape, neuron) and slipsnn's metadata when present — without the
weights' meaning (stock netx interprets them itself).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from slipsnn.toolchain.errors import FormatError
from slipsnn.toolchain.files import check_input, is_regular_file
from slipsnn.toolchain.ir.floating import FloatSynapse
from slipsnn.exporters.netx import MAX_FILE_BYTES, check_self_contained
from slipsnn.toolchain.ir.formats import SynapseKind

STOCK_NEURONS = ("CUBA",)


@dataclass(frozen=True)
class StockLayer:
    """One neuron block of a stock netx file.

    Attributes:
        name: the group name (``layer/<g>``) or slipsnn's layer name.
        kind: ``conv`` or ``dense``.
        shape: neuron shape, (C, H, W) or (N,).
        synapse: the block's incoming synapse (source = previous block, −1 for the input), weights as stored.
            A slayer conv kernel is (out, in, kx, ky) where slipsnn's is (out, in, kH, kW): for the square
            kernels and symmetric geometry of slayer's blocks the connectivity counts are the same.
        scale: integer weight units per normalized unit (slipsnn files; 1.0 for others).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    synapse: FloatSynapse
    scale: float = 1.0


@dataclass(frozen=True)
class StockNetwork:
    """What a stock netx file declares.

    Attributes:
        input_shape: (C, H, W) of the input.
        layers: the neuron blocks in order (flatten groups left out).
        input_bits: 8 for slipsnn's graded pixels, 0 for binary spikes (slayer's default).
        timesteps: T recorded by slipsnn (None: not recorded).
        max_timesteps: the horizon a slipsnn file was quantized for (None: not recorded).
        meta: slipsnn's ``meta_json`` (empty for other writers).
        writer: ``"slipsnn"`` or ``"other"``.
    """

    input_shape: tuple[int, int, int]
    layers: tuple[StockLayer, ...]
    input_bits: int
    timesteps: int | None
    max_timesteps: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    writer: str = "other"

    @property
    def num_classes(self) -> int:
        return int(np.prod(self.layers[-1].shape))


def _text(value: Any) -> str:
    value = value[()] if hasattr(value, "shape") else value
    value = value[0] if isinstance(value, np.ndarray) and value.shape else value
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def is_stock_netx(path: str | Path) -> bool:
    """True when ``path`` is an HDF5 netx file whose neuron blocks are all stock CUBA (False otherwise)."""
    if not is_regular_file(path):   # a FIFO would block h5py; the reader that follows names what it is
        return False
    try:
        with h5py.File(path, "r") as h:
            layers = h.get("layer")
            if not isinstance(layers, h5py.Group):
                return False
            kinds = [_text(g["neuron/type"]) for g in layers.values() if isinstance(g, h5py.Group) and "neuron" in g]
    except (OSError, KeyError, ValueError, TypeError):
        return False
    return bool(kinds) and all(k in STOCK_NEURONS for k in kinds)


def _pair(g: h5py.Group, key: str, default: int) -> tuple[int, int]:
    if key not in g:
        return (default, default)
    v = np.asarray(g[key][()]).reshape(-1)
    return (int(v[0]), int(v[-1]))


def _synapse(g: h5py.Group, kind: str, source: int) -> FloatSynapse:
    weight = np.asarray(g["weight"][()])
    if kind == "dense":
        return FloatSynapse(source, SynapseKind.DENSE, weight.reshape(weight.shape[0], -1))
    return FloatSynapse(source, SynapseKind.CONV, weight.reshape(weight.shape[:4]), _pair(g, "stride", 1),
                        _pair(g, "padding", 0), _pair(g, "dilation", 1), int(g["groups"][()]) if "groups" in g else 1)


def describe_stock_netx(path: str | Path, input_shape: tuple[int, int, int] | None = None) -> StockNetwork:
    """The layer stack of a stock netx file.

    Args:
        path: the file.
        input_shape: (C, H, W) of the input for a file without an ``input`` group (slayer writes none);
            ignored when the file has one.

    Raises:
        FormatError: not a netx file, no input shape, a block without ``shape``, a neuron stock netx
            does not know.
    """
    path = Path(path)
    try:
        check_input(path, MAX_FILE_BYTES, "netx file")
        with h5py.File(path, "r") as h:
            check_self_contained(h)
            groups = [h["layer"][k] for k in sorted(h["layer"], key=int)]
            meta = h.get("slipsnn")
            shape_of = lambda g: tuple(int(s) for s in np.asarray(g["shape"][()]).reshape(-1))  # noqa: E731
            has_input = _text(groups[0]["type"]) == "input"
            if has_input:
                input_shape = shape_of(groups[0])
            elif input_shape is None:
                raise FormatError("the file has no input group (slayer writes none): give the input shape")
            input_shape = tuple(int(v) for v in input_shape)
            layers = []
            for k, g in enumerate(groups[1:] if has_input else groups, start=1 if has_input else 0):
                kind = _text(g["type"])
                if kind in ("flatten", "input"):
                    continue
                ntype = _text(g["neuron/type"])
                if ntype not in STOCK_NEURONS:
                    raise FormatError(f"layer/{k}/neuron/type is {ntype!r}; allowed here: {', '.join(STOCK_NEURONS)}")
                shape = shape_of(g)
                shape = shape[:1] if len(shape) == 3 and shape[1:] == (1, 1) and kind == "dense" else shape
                name = _text(g["name"]) if "name" in g else f"layer/{k}"
                layers.append(StockLayer(name, kind, shape, _synapse(g, kind, len(layers) - 1),
                                         float(g["scale"][()]) if "scale" in g else 1.0))
            info = json.loads(_text(meta["meta_json"])) if meta is not None else {}
            input_bits = int(meta["input_bits"][()]) if meta is not None else 0
            timesteps = int(meta["timesteps"][()]) if meta is not None else None
            horizon = int(meta["max_timesteps"][()]) if meta is not None else None
    except FormatError as e:
        raise FormatError(f"{path}: {e}") from e
    except (OSError, KeyError, ValueError, TypeError, IndexError) as e:
        raise FormatError(f"{path}: not a readable stock netx file ({type(e).__name__}: {e})") from e
    if len(input_shape) != 3 or not layers:  # noqa: PLR2004
        raise FormatError(f"{path}: layer/0/shape {input_shape} must be (C, H, W) and at least one block must follow")
    return StockNetwork(input_shape, tuple(layers), input_bits, timesteps, horizon, info,
                        "slipsnn" if meta is not None else "other")

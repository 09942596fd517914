"""The model file for a user's own model: the lowered float network as ``.npz`` arrays plus a JSON header.

A user's model class is not needed to export, analyse or compare it: what every command needs is the converted
float network (``ir.floating.SpikingNetwork``): θ-normalized weights, biases, thresholds and activation
parameters. This file holds exactly that, and nothing that can run code when read:

- a zip archive (``numpy.savez`` layout) of ``.npy`` members: ``header.npy`` (the JSON header as uint8 bytes),
  ``l<i>.bias.npy`` and ``l<i>.s<k>.weight.npy`` (float64);
- reading parses each ``.npy`` header itself and accepts only integer/float dtypes within size limits, then reads
  the array with ``allow_pickle=False``; the JSON header is parsed by ``json``. No pickle is ever opened.

The layout is documented in docs/format.md ("The model file").
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from slipsnn.toolchain.errors import FormatError, SlipsnnError
from slipsnn.toolchain.files import atomic_write, check_input, is_regular_file
from slipsnn.toolchain.ir.activation import SlipParams
from slipsnn.toolchain.ir.floating import FloatLayer, FloatSynapse, SpikingNetwork

FORMAT = "slipsnn-float-network"
VERSION = 1
HEADER = "header.npy"
MAX_ELEMENTS = 2 ** 27      # all array elements of one file together (1 GiB of float64)
MAX_HEADER = 2 ** 24        # bytes of the JSON header
MAX_MEMBERS = 100_000

MAX_FILE_BYTES = 2 ** 34   # 16 GiB: the largest model file read_float_network opens


def _layer_doc(i: int, layer: FloatLayer, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    arrays[f"l{i}.bias"] = np.asarray(layer.bias, dtype=np.float64)
    synapses = []
    for k, syn in enumerate(layer.synapses):
        arrays[f"l{i}.s{k}.weight"] = np.asarray(syn.weight, dtype=np.float64)
        synapses.append({"source": syn.source, "kind": syn.kind.value, "stride": list(syn.stride),
                         "padding": list(syn.padding), "dilation": list(syn.dilation), "groups": syn.groups,
                         "weight": f"l{i}.s{k}.weight"})
    return {"name": layer.name, "shape": list(layer.shape), "spiking": layer.spiking, "theta": layer.theta,
            "act": layer.act.to_dict() if layer.act is not None else None, "v_init": layer.v_init,
            "ann_macs": int(layer.ann_macs), "bias": f"l{i}.bias", "synapses": synapses}


def write_float_network(net: SpikingNetwork, path: str | Path) -> Path:
    """Write ``net`` as a model file, atomically.

    Args:
        net: the converted float network (``conversion.lower.lower``); ``net.meta`` must be JSON-serialisable and
            should name the ``dataset`` the commands evaluate on.
        path: destination (conventionally ``*.snn.npz``).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        FormatError: ``net.meta`` is not JSON, or the file cannot be written.

    Example:
        >>> write_float_network(lower(model, (1, 28, 28), meta={"dataset": "mnist"}), "my.snn.npz")  # doctest: +SKIP
    """
    arrays: dict[str, np.ndarray] = {}
    doc = {"format": FORMAT, "version": VERSION, "input_shape": list(net.input_shape),
           "layers": [_layer_doc(i, layer, arrays) for i, layer in enumerate(net.layers)], "meta": net.meta}
    try:
        header = json.dumps(doc, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as err:
        raise FormatError(f"{path}: the network's meta is not plain JSON ({err})") from None
    path = Path(path)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, header=np.frombuffer(header, dtype=np.uint8), **arrays)
    try:
        return atomic_write(path, write)
    except OSError as err:
        raise FormatError(f"{path}: cannot write: {err}") from err


def is_float_network(path: str | Path) -> bool:
    """True when ``path`` is a zip archive holding ``header.npy`` (a model file), without reading arrays."""
    if not is_regular_file(path):   # the loader that follows names what it is instead
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return HEADER in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


class _Reader:
    """Reads members of one archive, checking dtype and a running element budget before any data."""

    def __init__(self, path: Path, z: zipfile.ZipFile) -> None:
        self.path, self.z, self.left = path, z, MAX_ELEMENTS
        self.names = set(z.namelist())

    def array(self, key: str, kinds: str = "fiu") -> np.ndarray:
        member = f"{key}.npy"
        if member not in self.names:
            raise FormatError(f"{self.path}: array {key!r} named by the header is missing")
        with self.z.open(member) as f:
            try:
                version = np.lib.format.read_magic(f)
                shape, fortran, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                         else np.lib.format.read_array_header_2_0(f))
            except ValueError as err:
                raise FormatError(f"{self.path}: array {key!r} is not a valid .npy member ({err})") from None
            if dtype.kind not in kinds or dtype.hasobject or dtype.fields is not None:
                raise FormatError(f"{self.path}: array {key!r} has dtype {dtype}; allowed: plain numbers "
                                  "(objects are refused: reading never unpickles)")
            size = math.prod(shape)
            if size > self.left:
                raise FormatError(f"{self.path}: array {key!r} of shape {shape} exceeds the {MAX_ELEMENTS} "
                                  "elements a model file may hold")
            self.left -= size
            try:
                data = f.read(size * dtype.itemsize)
            except (OSError, zipfile.BadZipFile, EOFError) as err:
                raise FormatError(f"{self.path}: array {key!r} cannot be read ({err})") from None
            if len(data) != size * dtype.itemsize:
                raise FormatError(f"{self.path}: array {key!r} is truncated")
            a = np.frombuffer(data, dtype=dtype)
            return (a.reshape(shape[::-1]).T if fortran else a.reshape(shape)).copy()


def _field(d: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise FormatError(f"{where}: field {key!r} is missing")
    value = d[key]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise FormatError(f"{where}: field {key!r} = {value!r} has the wrong type")
    return value


def _ints(d: Any, key: str, where: str, n: int | None = None) -> tuple[int, ...]:
    value = _field(d, key, list, where)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value) or (n is not None and len(value) != n):
        raise FormatError(f"{where}: field {key!r} = {value!r} must be a list of {n or 'some'} integers")
    return tuple(value)


def _synapse(r: _Reader, d: Any, where: str) -> FloatSynapse:
    return FloatSynapse(source=_field(d, "source", int, where), kind=_field(d, "kind", str, where),
                        weight=r.array(_field(d, "weight", str, where)), stride=_ints(d, "stride", where, 2),
                        padding=_ints(d, "padding", where, 2), dilation=_ints(d, "dilation", where, 2),
                        groups=_field(d, "groups", int, where))


def _layer(r: _Reader, i: int, d: Any) -> FloatLayer:
    where = f"{r.path}: layer {i}"
    act = _field(d, "act", (dict, type(None)), where)
    if act is not None:
        act = SlipParams(**{k: act[k] for k in ("a", "L", "delta1", "delta2", "a_learnable") if k in act})
    synapses = _field(d, "synapses", list, where)
    return FloatLayer(name=_field(d, "name", str, where), shape=_ints(d, "shape", where),
                      synapses=tuple(_synapse(r, s, f"{where} synapse {k}") for k, s in enumerate(synapses)),
                      bias=r.array(_field(d, "bias", str, where)), spiking=_field(d, "spiking", bool, where),
                      theta=float(_field(d, "theta", (int, float), where)), act=act,
                      v_init=float(_field(d, "v_init", (int, float), where)), ann_macs=_field(d, "ann_macs", int, where))


def read_float_network(path: str | Path) -> SpikingNetwork:
    """Read a model file written by ``write_float_network`` without running any code from it.

    Raises:
        FormatError: not a model file, a member that is no plain numeric array (an object/pickle array), sizes
            beyond the limits, missing or mistyped header fields, or a network that fails the IR's validation
            (one sentence naming the file).

    Example:
        >>> net = read_float_network("my.snn.npz")   # doctest: +SKIP
    """
    path = Path(path)
    check_input(path, MAX_FILE_BYTES, "model file")
    try:
        with zipfile.ZipFile(path) as z:
            if len(z.namelist()) > MAX_MEMBERS:
                raise FormatError(f"{path}: more than {MAX_MEMBERS} members")
            r = _Reader(path, z)
            if HEADER not in r.names:
                raise FormatError(f"{path}: not a slipsnn model file (no {HEADER})")
            raw = r.array("header", kinds="u")
            if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > MAX_HEADER:
                raise FormatError(f"{path}: the header must be at most {MAX_HEADER} bytes of uint8")
            try:
                doc = json.loads(raw.tobytes().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise FormatError(f"{path}: the header is not JSON ({err})") from None
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise FormatError(f"{path}: not a slipsnn model file (format {doc.get('format') if isinstance(doc, dict) else None!r})")
            if doc.get("version") != VERSION:
                raise FormatError(f"{path}: model file version {doc.get('version')!r}; this slipsnn reads {VERSION}")
            meta = _field(doc, "meta", dict, str(path))
            layers = [_layer(r, i, d) for i, d in enumerate(_field(doc, "layers", list, str(path)))]
            return SpikingNetwork(input_shape=_ints(doc, "input_shape", str(path), 3), layers=tuple(layers), meta=meta)
    except zipfile.BadZipFile as err:
        raise FormatError(f"{path}: not a slipsnn model file: not a zip archive ({err})") from None
    except FormatError:
        raise
    except (SlipsnnError, TypeError, ValueError) as err:   # the IR's own validation, a bad SlipParams
        raise FormatError(f"{path}: invalid network ({err})") from None

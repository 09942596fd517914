"""The integer network as a lava-dl netx HDF5 file: ``write_netx`` and ``read_netx`` (docs/format.md).

``layer/<g>`` holds the pipeline as ``lava.lib.dl.netx.hdf5.Network`` reads it: ``layer/0`` is the
8-bit input, then one group per ``IntLayer``, preceded by a ``flatten`` group when a dense synapse reads
a (C, H, W) source — so file group numbers are not IR layer numbers. Residual synapses live in
``layer/<g>/residual/<k>`` (k = index in ``IntLayer.synapses``; ``source`` = IR layer index, −1 = input),
which netx never reads; the top-level ``slipsnn`` group holds the metadata.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np

from slipsnn.toolchain import __version__
from slipsnn.toolchain.conversion.overflow import prove_no_overflow
from slipsnn.toolchain.files import atomic_write, check_input, check_output
from slipsnn.toolchain.errors import FormatError, QuantizationError, SlipsnnError
from slipsnn.toolchain.ir.formats import (BIAS_MAX, BIAS_MIN, FORMAT_VERSION, INPUT_BITS, STATE_SHIFT,
                                          THRESHOLD_MAX, NetxNeuron, NeuronKind, SynapseKind, lava_dense_clips)
from slipsnn.toolchain.ir.integer import IntLayer, IntNetwork, IntSynapse

MAX_DIM = 65536          # largest size of one dimension read from a file
MAX_NEURONS = 2 ** 26    # all neurons of a network together
MAX_WEIGHTS = 2 ** 28    # all weight elements of a network together
MAX_GROUPS = 4096        # layer groups; residual groups of one layer
MAX_TEXT = 2 ** 24       # bytes of one fixed-length string (meta_json included)
MAX_FILE_BYTES = 2 ** 34  # 16 GiB: the largest file read_netx opens
MAX_RATIO = 32           # declared bytes per stored byte of a compressed dataset (above 1 MiB)
RATIO_FREE_BYTES = 2 ** 20
CUBA_SILENT_VTH = THRESHOLD_MAX   # the ACCUMULATE output as a CUBA layer that does not spike

Neuron = tuple[np.ndarray, dict[str, Any]]   # (bias to store, neuron/* keys)


# ------------------------------------------------------------------------------------------ writing

def _put_str(g: h5py.Group, key: str, text: str) -> None:
    """A (1,) fixed-length byte string, as slayer writes ``type`` (netx reads ``[0].decode('ascii')``)."""
    data = text.encode("utf-8")
    g.create_dataset(key, (1,), f"S{max(len(data), 1)}", [data])


def _write_conv(g: h5py.Group, syn: IntSynapse) -> None:
    w = syn.weight
    g["weight"], g["groups"] = w, syn.groups
    g["stride"], g["padding"], g["dilation"] = np.array(syn.stride), np.array(syn.padding), np.array(syn.dilation)
    g["inChannels"], g["outChannels"], g["kernelSize"] = w.shape[1] * syn.groups, w.shape[0], np.array(w.shape[2:])


def _write_dense(g: h5py.Group, syn: IntSynapse) -> None:
    g["weight"], g["wgtExp"] = syn.weight, syn.weight_exp
    g["inFeatures"], g["outFeatures"] = syn.weight.shape[1], syn.weight.shape[0]


_SYN_WRITERS: dict[SynapseKind, Callable[[h5py.Group, IntSynapse], None]] = {
    SynapseKind.CONV: _write_conv, SynapseKind.DENSE: _write_dense}


def _write_synapse(g: h5py.Group, syn: IntSynapse) -> None:
    _put_str(g, "type", syn.kind.value)
    _SYN_WRITERS[syn.kind](g, syn)


def _if_soft_neuron(layer: IntLayer) -> Neuron:
    """slipsnn's neuron: the IR's bias ((C,) or (C, H, W)), threshold, v_init and bias_exp verbatim."""
    return layer.bias, dict(type=layer.neuron.value, vThMant=layer.threshold, vInit=layer.v_init,
                            biasExp=layer.bias_exp)


def _cuba_vth(layer: IntLayer) -> int:
    """v_init folded into vThMant: ``v_init + 64·x ≥ 64·θ ⟺ x > ⌈θ − v_init/64⌉ − 1`` (x = a + b)."""
    return -((layer.v_init - layer.threshold_state) // 64) - 1 if layer.spiking else CUBA_SILENT_VTH


def _cuba_neuron(layer: IntLayer) -> Neuron:
    """Stock CUBA, iDecay 4096, vDecay 0: ``v ← v + 64·(a + b)``, spike at ``v > 64·vThMant``, then v ← 0.

    Exact for the first step after a reset: bias ``(bias << bias_exp) / 64`` (netx fixes bias_exp 6),
    v_init folded into the threshold; a per-neuron bias is stored in netx's (W, H, C) order.
    """
    bias = (layer.bias.astype(np.int64) << layer.bias_exp) >> STATE_SHIFT
    bias = bias.transpose(2, 1, 0) if bias.ndim == 3 else bias
    return bias.astype(np.int32), dict(type="CUBA", iDecay=4096, vDecay=0, vThMant=_cuba_vth(layer),
                                       refDelay=1, gradedSpike=False)


def _cuba_problems(layer: IntLayer) -> list[str]:
    """What in ``layer`` stock netx cannot represent exactly (empty: it can be a CUBA layer)."""
    syn, found = layer.synapses[0], []
    if len(layer.synapses) > 1:
        found.append(f"{len(layer.synapses) - 1} residual synapse(s)")
    if syn.weight_exp != 0:
        found.append(f"dense weight_exp {syn.weight_exp} (stock netx: 0)")
    if syn.kind is SynapseKind.DENSE and not syn.weight.any():
        found.append("an all-zero dense matrix (stock netx raises OverflowError)")
    if syn.kind is SynapseKind.DENSE and lava_dense_clips(syn.weight):
        found.append("a dense matrix without positive weights reaching −256 (stock netx clips it to −255)")
    b = layer.bias.astype(np.int64) << int(layer.bias_exp)
    if (b % 64).any() or not BIAS_MIN <= (b >> STATE_SHIFT).min() <= (b >> STATE_SHIFT).max() <= BIAS_MAX:
        found.append(f"bias << bias_exp {layer.bias_exp} is not 64 × a 13-bit mantissa (netx fixes bias_exp 6)")
    if not 0 <= _cuba_vth(layer) <= THRESHOLD_MAX:
        found.append(f"threshold {layer.threshold} with v_init {layer.v_init} folds to vThMant "
                     f"{_cuba_vth(layer)} outside [0, {THRESHOLD_MAX}]")
    return found


_NEURON_WRITERS: dict[str, Callable[[IntLayer], Neuron]] = {NetxNeuron.IF_SOFT.value: _if_soft_neuron,
                                                            NetxNeuron.CUBA.value: _cuba_neuron}

#: What each neuron kind's file can hold, as ``conversion.quantize.QuantConfig`` options: a stock netx CUBA layer
#: has no dense weight exponent and a bias in weight units (netx fixes the bias exponent at 6), and its membrane
#: wraps at 24 bits where slipsnn's saturates (so no layer may rely on saturation).
QUANT_LIMITS: dict[str, dict[str, object]] = {NetxNeuron.IF_SOFT.value: {},
                                              NetxNeuron.CUBA.value: {"dense_weight_exp": False,
                                                                      "bias_exp": STATE_SHIFT,
                                                                      "saturating_membrane": False}}


def _write_layer(g: h5py.Group, layer: IntLayer, neuron: str) -> None:
    _write_synapse(g, layer.synapses[0])
    g["shape"], g["scale"] = np.array(layer.shape), float(layer.scale)
    _put_str(g, "name", layer.name)
    g["bias"], params = _NEURON_WRITERS[neuron](layer)
    _put_str(g, "neuron/type", params.pop("type"))
    for key, value in params.items():
        g[f"neuron/{key}"] = value
    for k, syn in enumerate(layer.synapses[1:], start=1):
        r = g.create_group(f"residual/{k}")
        r["source"] = syn.source
        _write_synapse(r, syn)


def _write_file(h: h5py.File, net: IntNetwork, neuron: str, meta_json: str) -> None:
    top = h.create_group("layer")
    _put_str(top.create_group("0"), "type", "input")
    top["0/shape"] = np.array(net.input_shape)
    for layer in net.layers:
        source_shape = net.source_shape(layer.synapses[0].source)
        if layer.synapses[0].kind is SynapseKind.DENSE and len(source_shape) == 3:
            _put_str(top.create_group(str(len(top))), "type", "flatten")
            top[f"{len(top) - 1}/shape"] = np.array([int(np.prod(source_shape)), 1, 1])
        _write_layer(top.create_group(str(len(top))), layer, neuron)
    meta = h.create_group("slipsnn")
    # a cuba file equals the IR only at T = 1 (hard reset): it records T = 1, and keeps the IR's horizon
    # (what it was quantized for) in max_timesteps
    timesteps = 1 if neuron == NetxNeuron.CUBA.value else net.timesteps
    for key, value in dict(format_version=net.version, timesteps=timesteps, max_timesteps=net.max_timesteps,
                           input_shape=np.array(net.input_shape), input_bits=INPUT_BITS,
                           num_classes=net.num_classes).items():
        meta[key] = value
    for key, text in dict(slipsnn_version=__version__, neuron=neuron, meta_json=meta_json).items():
        _put_str(meta, key, text)
    if neuron == NetxNeuron.CUBA.value:
        meta["exact_timesteps"] = 1   # agreement with the if_soft network at T > 1: slipsnn-run measures it


def write_netx(net: IntNetwork, path: str | Path, neuron: str = "if_soft") -> Path:
    """Write ``net`` as a netx HDF5 file, atomically (temp file in the same folder, fsync, ``os.replace``).

    Args:
        net: the integer network (not modified).
        path: destination; an existing file is replaced only once the new one is complete.
        neuron: ``"if_soft"``: slipsnn's reset-by-subtraction neuron; ``read_netx`` gives back the
            identical IR and slipsnn's Lava runtime runs it. ``"cuba"``: a file stock
            ``lava.lib.dl.netx.hdf5.Network`` runs — hard reset, so it equals the IR only at T=1
            (one step after each reset; after a spike, soft and hard reset differ). The output layer
            becomes a CUBA layer with vThMant 131071 that does not spike: read its voltage (IR v − v_init).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        FormatError: unknown ``neuron``; ``"cuba"`` with a layer stock netx cannot represent (residual
            synapses, weight_exp ≠ 0, …; names the layer and the feature); the file cannot be written.

    Example:
        >>> write_netx(net, "model.net")                               # doctest: +SKIP
    """
    if neuron not in _NEURON_WRITERS:
        raise FormatError(f"neuron={neuron!r}; allowed: {sorted(_NEURON_WRITERS)}")
    for i, layer in enumerate(net.layers if neuron == "cuba" else ()):
        if problems := _cuba_problems(layer):
            raise FormatError(f"layer {i} ({layer.name!r}) cannot be a stock-netx CUBA layer: "
                              f"{'; '.join(problems)}; use neuron='if_soft'")
    try:
        meta_json = json.dumps(net.meta)
    except (TypeError, ValueError) as e:
        raise FormatError(f"net.meta is not JSON-serialisable: {e}") from e
    path = Path(path)
    try:
        check_output(path)
    except SlipsnnError as e:
        raise FormatError(f"cannot write: {e}") from None
    buffer = io.BytesIO()   # built in memory: HDF5 crashes (SIGSEGV) closing a file whose writes failed (disk full)
    with h5py.File(buffer, "w") as h:
        _write_file(h, net, neuron, meta_json)
    try:
        return atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))
    except OSError as e:
        raise FormatError(f"{path}: cannot write: {e}") from e


# ------------------------------------------------------------------------------------------ reading

_KINDS = {"iu": "integers", "fiu": "a number", "SO": "a string"}


def _no_external_link(g: h5py.Group, key: str) -> None:
    """Refuse an HDF5 external link (it would read another file)."""
    try:
        link = g.get(key, getlink=True)
    except (OSError, KeyError, ValueError, TypeError, RuntimeError):
        return   # reported by the caller's own lookup
    if isinstance(link, h5py.ExternalLink):
        raise FormatError(f"{g.name}/{key} is an external link to {link.filename}:{link.path}; a slipsnn file "
                          "must hold all its data itself")


def _check_storage(ds: h5py.Dataset) -> None:
    """Refuse data kept outside the file, data that was never written, and decompression bombs (before a read)."""
    if ds.is_virtual:
        raise FormatError(f"{ds.name}: a virtual dataset (its data lives in other files or is HDF5 fill values); "
                          "a slipsnn file must hold all its data itself")
    if ds.external:
        raise FormatError(f"{ds.name}: uses external storage ({ds.external[0][0]!r}); a slipsnn file must hold "
                          "all its data itself")
    declared, stored = ds.size * ds.dtype.itemsize, ds.id.get_storage_size()
    if ds.size and not stored:
        raise FormatError(f"{ds.name}: has no stored data (every read would give the HDF5 fill value); "
                          "every dataset must be written")
    if declared > RATIO_FREE_BYTES and declared > MAX_RATIO * stored:
        raise FormatError(f"{ds.name}: declares {declared} bytes compressed into {stored}; slipsnn reads "
                          f"compressed datasets of at most {MAX_RATIO}× their stored size")


def check_self_contained(g: h5py.Group, max_objects: int = 100_000) -> None:
    """Walk a whole HDF5 file (or group) without following links out of it: refuse external links, virtual
    datasets, external storage, unwritten datasets and decompression bombs anywhere in it.

    For readers of files slipsnn did not write (``exporters.stock_netx``); slipsnn's own reader checks each
    object it reads instead.
    """
    todo, seen = [g], 0
    while todo:
        group = todo.pop()
        for key in group:
            seen += 1
            if seen > max_objects:
                raise FormatError(f"{g.file.filename}: more than {max_objects} HDF5 objects")
            _no_external_link(group, key)
            if isinstance(group.get(key, getlink=True), h5py.SoftLink):
                continue   # resolves inside this file: its target is visited where it lives
            obj = group[key]
            if isinstance(obj, h5py.Group):
                todo.append(obj)
            elif isinstance(obj, h5py.Dataset):
                _check_storage(obj)


def _dataset(g: h5py.Group, key: str, kinds: str, max_size: int = MAX_NEURONS, max_dim: int = MAX_DIM) -> Any:
    """The value of ``g[key]``, checked (present, stored in the file, dtype kind, declared shape) before it is read."""
    _no_external_link(g, key)
    try:
        ds = g.get(key)
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:   # RuntimeError: a soft-link loop
        raise FormatError(f"{g.name}/{key}: unreadable ({e})") from e
    if not isinstance(ds, h5py.Dataset):
        raise FormatError(f"{g.name}: missing dataset {key!r}" if ds is None else f"{g.name}/{key} is not a dataset")
    _check_storage(ds)
    if ds.dtype.kind not in kinds:
        raise FormatError(f"{ds.name}: dtype {ds.dtype}; allowed: {_KINDS[kinds]}")
    if ds.dtype.kind == "S" and ds.dtype.itemsize > MAX_TEXT:
        raise FormatError(f"{ds.name}: declared string length {ds.dtype.itemsize} bytes exceeds {MAX_TEXT}")
    if any(d > max_dim for d in ds.shape) or ds.size > max_size:
        raise FormatError(f"{ds.name}: declared shape {ds.shape} exceeds {max_dim} per dimension "
                          f"or {max_size} elements")
    try:
        return ds[()]
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise FormatError(f"{ds.name}: unreadable ({e})") from e


def _ints(g: h5py.Group, key: str, ndim: tuple[int, ...], max_size: int = MAX_NEURONS,
          max_dim: int = MAX_DIM) -> np.ndarray:
    a = np.asarray(_dataset(g, key, "iu", max_size, max_dim))
    if a.ndim not in ndim:
        raise FormatError(f"{g.name}/{key}: {a.ndim} dimensions; expected {' or '.join(map(str, ndim))}")
    if a.size and a.dtype == np.uint64 and a.max() > np.iinfo(np.int64).max:
        raise FormatError(f"{g.name}/{key}: value {a.max()} exceeds int64")
    return a.astype(np.int64)


def _one(g: h5py.Group, key: str, kinds: str) -> Any:
    a = np.asarray(_dataset(g, key, kinds, 1))
    if a.size != 1:
        raise FormatError(f"{g.name}/{key}: shape {a.shape}; expected one value")
    return a.reshape(-1)[0]


def _int(g: h5py.Group, key: str) -> int:
    return int(_one(g, key, "iu"))


def _str(g: h5py.Group, key: str, allowed: tuple[str, ...] = ()) -> str:
    raw = _one(g, key, "SO")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    except UnicodeDecodeError as e:
        raise FormatError(f"{g.name}/{key}: not UTF-8 text ({e})") from e
    if allowed and text not in allowed:
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise FormatError(f"{g.name}/{key}: {shown!r}; allowed: {list(allowed)}")
    return text


def _group(g: h5py.Group, key: str) -> h5py.Group:
    _no_external_link(g, key)
    try:
        sub = g.get(key)
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        raise FormatError(f"{g.name}/{key}: unreadable ({e})") from e
    if not isinstance(sub, h5py.Group):
        raise FormatError(f"{g.name}: missing group {key!r}")
    return sub


def _numbered(g: h5py.Group, first: int) -> list[h5py.Group]:
    """All subgroups of ``g``, which must be named first, first+1, … ."""
    names = list(g.keys())
    want = [str(i) for i in range(first, first + len(names))]
    if len(names) > MAX_GROUPS or sorted(names, key=lambda n: (len(n), n)) != want:
        raise FormatError(f"{g.name}: subgroups {names[:8]}; expected {first}..{first + len(names) - 1} "
                          f"(at most {MAX_GROUPS})")
    return [_group(g, n) for n in want]


class _Budget:
    """Neurons and weight elements read so far, checked before each allocation, and the shapes read so far."""

    def __init__(self) -> None:
        self.neurons = self.weights = 0
        self.shapes: dict[int, tuple[int, ...]] = {}   # IR index (−1: the input) → neuron shape

    def shape(self, g: h5py.Group, ndim: tuple[int, ...]) -> tuple[int, ...]:
        s = _ints(g, "shape", (1,), 3)
        if len(s) not in ndim or s.min() < 1 or s.max() > MAX_DIM:
            raise FormatError(f"{g.name}/shape: {s.tolist()}; expected {ndim} sizes in [1, {MAX_DIM}]")
        self.neurons += int(np.prod(s, dtype=np.float64))
        if self.neurons > MAX_NEURONS:
            raise FormatError(f"{g.name}/shape: {s.tolist()} brings the network over {MAX_NEURONS} neurons")
        self.shapes[len(self.shapes) - 1] = shape = tuple(int(v) for v in s)
        return shape

    def weight(self, g: h5py.Group, source: int, padding: tuple[int, ...] | None = None) -> np.ndarray:
        """The weight of a synapse from ``source`` into the layer being read (``padding``: conv, None: dense).

        Its declared size is bounded before it is read by what such a synapse can hold: out·in (dense),
        C_out·C_source·(H + 2p)·(W + 2p) (conv: a kernel never exceeds the padded source; p ≤ 64).
        """
        layer = len(self.shapes) - 2
        if source not in self.shapes:
            raise FormatError(f"{g.name}: residual source {source} names no earlier layer; allowed: −1..{layer - 2}")
        src, dst = self.shapes[source], self.shapes[layer]
        if padding is None:
            bound, ndim = int(np.prod(dst)) * int(np.prod(src)), 2
        else:
            c, *hw = src if len(src) == 3 else (int(np.prod(src)), 1, 1)
            bound, ndim = dst[0] * c, 4
            for n, p in zip(hw, padding):
                bound *= n + 2 * min(max(p, 0), 64)
        ds = g.get("weight") if not isinstance(g.get("weight", getlink=True), h5py.ExternalLink) else None
        if isinstance(ds, h5py.Dataset) and ds.size > bound:
            raise FormatError(f"{g.name}/weight: declared shape {ds.shape} ({ds.size} elements) does not fit a "
                              f"{'dense' if padding is None else 'conv'} synapse from {list(src)} (source {source}) "
                              f"into {list(dst)}, which holds at most {bound}")
        w = _ints(g, "weight", (ndim,), min(bound, MAX_WEIGHTS - self.weights), MAX_NEURONS)   # dense: in = C·H·W
        self.weights += w.size
        return w


def _read_conv(g: h5py.Group, source: int, budget: _Budget) -> dict[str, Any]:
    geometry = {k: tuple(int(v) for v in _ints(g, k, (1,), 2)) for k in ("stride", "padding", "dilation")}
    return dict(weight=budget.weight(g, source, geometry["padding"]), groups=_int(g, "groups"), **geometry)


def _read_dense(g: h5py.Group, source: int, budget: _Budget) -> dict[str, Any]:
    return dict(weight=budget.weight(g, source), weight_exp=_int(g, "wgtExp"))


_SYN_READERS: dict[SynapseKind, Callable[[h5py.Group, int, _Budget], dict[str, Any]]] = {
    SynapseKind.CONV: _read_conv, SynapseKind.DENSE: _read_dense}


def _read_synapse(g: h5py.Group, source: int, budget: _Budget) -> IntSynapse:
    kind = SynapseKind(_str(g, "type", tuple(k.value for k in _SYN_READERS)))
    fields = _SYN_READERS[kind](g, source, budget)
    try:
        return IntSynapse(source, kind, **fields)
    except FormatError as e:   # the IR's range checks: add where
        raise FormatError(f"{g.name}: {e}") from e


def _read_layer(g: h5py.Group, index: int, budget: _Budget) -> IntLayer:
    shape, n = budget.shape(g, (1, 3)), _group(g, "neuron")
    kind = _str(n, "type", tuple(k.value for k in NeuronKind) + ("CUBA",))
    if kind == "CUBA":
        raise FormatError(f"{n.name}/type is 'CUBA': a stock-netx file (written with neuron='cuba', threshold "
                          "and v_init folded); run it with lava.lib.dl.netx.hdf5.Network")
    synapses = [_read_synapse(g, index - 1, budget)]
    if "residual" in g:
        synapses += [_read_synapse(r, _int(r, "source"), budget) for r in _numbered(_group(g, "residual"), 1)]
    fields = dict(name=_str(g, "name"), threshold=_int(n, "vThMant"),
                  bias=_ints(g, "bias", (1, 3), int(np.prod(shape))),   # at most one per neuron
                  bias_exp=_int(n, "biasExp"), v_init=_int(n, "vInit"), scale=float(_one(g, "scale", "fiu")))
    try:
        return IntLayer(shape=shape, synapses=tuple(synapses), neuron=NeuronKind(kind), **fields)
    except FormatError as e:   # the IR's range checks: add where
        raise FormatError(f"{g.name}: {e}") from e


def _read_file(h: h5py.File) -> IntNetwork:
    meta = h.get("slipsnn")
    if not isinstance(meta, h5py.Group):
        raise FormatError("missing group 'slipsnn': not a slipsnn file (a stock netx file? run it with netx)")
    version = _int(meta, "format_version")
    if version != FORMAT_VERSION:
        raise FormatError(f"slipsnn/format_version {version}; this slipsnn reads {FORMAT_VERSION}")
    if _str(meta, "neuron", tuple(_NEURON_WRITERS)) == "cuba":
        raise FormatError("slipsnn/neuron is 'cuba': a stock-netx file (threshold and v_init folded) that "
                          "cannot be read back; run it with lava.lib.dl.netx.hdf5.Network")
    if _int(meta, "input_bits") != INPUT_BITS:
        raise FormatError(f"slipsnn/input_bits must be {INPUT_BITS} (unsigned graded spikes)")
    groups, budget = _numbered(_group(h, "layer"), 0), _Budget()
    if not groups or not _str(groups[0], "type", ("input",)) or "neuron" in groups[0]:
        raise FormatError("layer/0 must be type 'input' without a neuron group (8-bit graded input)")
    input_shape = budget.shape(groups[0], (3,))
    layers: list[IntLayer] = []
    flatten = False
    for g in groups[1:]:
        kind = _str(g, "type", ("flatten",) + tuple(k.value for k in _SYN_READERS))
        if kind == "flatten" and not flatten:
            flatten = True
            continue
        if flatten != (kind == SynapseKind.DENSE.value and len(layers[-1].shape if layers else input_shape) == 3):
            raise FormatError(f"{g.name}: a single 'flatten' group must precede exactly the dense layers whose "
                              f"source is (C, H, W); found {'one' if flatten else 'none'} before this {kind}")
        flatten = False
        layers.append(_read_layer(g, len(layers), budget))
    if flatten:
        raise FormatError("the last layer group is a 'flatten'")
    for key, want in (("input_shape", list(input_shape)), ("num_classes", [layers[-1].num_neurons if layers else 0])):
        if _ints(meta, key, (0, 1), 3).reshape(-1).tolist() != want:
            raise FormatError(f"slipsnn/{key} does not match the layer groups ({want})")
    text = _str(meta, "meta_json")
    try:
        info = json.loads(text)
    except (ValueError, RecursionError) as e:   # RecursionError: nested deeper than Python's stack
        raise FormatError(f"slipsnn/meta_json: not JSON ({e})") from e
    if not isinstance(info, dict):
        raise FormatError(f"slipsnn/meta_json holds {json.dumps(info)[:40]}; expected a JSON object")
    _printable(info, "meta")
    return IntNetwork(input_shape, tuple(layers), _int(meta, "timesteps"), _int(meta, "max_timesteps"), info, version)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _printable(obj: Any, where: str) -> None:
    """Refuse control characters (terminal escape sequences) in every string of the metadata."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _printable(k, f"{where} key")
            _printable(v, f"{where}[{k!r}]")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _printable(v, f"{where}[{i}]")
    elif isinstance(obj, str) and (found := _CONTROL.search(obj)):
        raise FormatError(f"slipsnn/meta_json: {where} holds the control character {found.group()!r}; "
                          "allowed: printable text (no terminal escape sequences)")


def read_proven_netx(path: str | Path) -> IntNetwork:
    """``read_netx``, then the file's ``max_timesteps`` proven again with ``conversion.overflow.prove_no_overflow``.

    A file may claim any horizon; one whose claim is false would let a run clip membranes silently, so the
    commands that run a file (``pipeline.load_network``) read it through here.

    Raises:
        FormatError: the file is refused by ``read_netx``, or some layer can overflow 24 bits within the
            claimed ``max_timesteps`` (names the layer and the worst case).
    """
    net = read_netx(path)
    try:
        prove_no_overflow(net)
    except QuantizationError as e:
        raise FormatError(f"{path}: slipsnn/max_timesteps = {net.max_timesteps} is not a proven horizon: {e}; "
                          "re-export it with a shorter --max-timesteps") from None
    return net


def read_netx(path: str | Path) -> IntNetwork:
    """Read a slipsnn netx file (written with ``neuron="if_soft"``) back into the identical IR.

    Each key is checked before it is read (present, integer dtype, declared size within
    ``MAX_DIM``/``MAX_NEURONS``/``MAX_WEIGHTS`` and a weight within what its two layers' shapes allow,
    strings within ``MAX_TEXT`` bytes), values by the IR's own range checks. Files written
    with ``neuron="cuba"`` are refused (their thresholds are folded): run them with stock netx.

    Raises:
        FormatError: naming the file and the key, for every unreadable, corrupt or out-of-range file.

    Example:
        >>> net = read_netx("model.net")                               # doctest: +SKIP
    """
    path = Path(path)
    try:
        check_input(path, MAX_FILE_BYTES, "file")
    except SlipsnnError as e:
        raise FormatError(str(e)) from None
    try:
        h = h5py.File(path, "r")
    except (OSError, ValueError) as e:
        raise FormatError(f"{path}: {'not an HDF5 file (or truncated)' if path.exists() else 'no such file'}: "
                          f"{e}") from e
    try:
        with h:
            return _read_file(h)
    except FormatError as e:
        raise FormatError(f"{path}: {e}") from e
    except (OSError, KeyError, ValueError, TypeError, UnicodeDecodeError, IndexError, OverflowError,
            RuntimeError) as e:   # RuntimeError: HDF5's link iteration on a damaged file
        raise FormatError(f"{path}: unreadable ({type(e).__name__}: {e})") from e

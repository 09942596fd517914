"""The integer network as a NIR graph (neuromorphs/NIR, pip ``nir``): ``to_nir`` and ``write_nir``.

The graph holds slipsnn's integers as exactly representable float32 values, in weight units (1 weight unit =
64 state units of the 24-bit membrane, so a membrane ``v`` becomes ``v / 64``, a multiple of 1/64 below 2¹⁷:
23 significant bits, exact in float32). Time is discrete, one NIR step per slipsnn time-step, nodes of a step
evaluated in graph order, a recurrent edge delayed by one step (as nirtorch and the NIR reference executor do).

* ``input`` (C, H, W) takes the 8-bit pixel values 0..255 at every step.
* Each synapse is a ``Conv2d`` (bias per channel, ``(C_out,)``; groups expanded to a block-diagonal kernel) or an ``Affine`` (a dense synapse's weight
  is ``W · 2^weight_exp``), preceded by a ``Flatten(start_dim=0)`` of a (C, H, W) source.
* ``output`` receives the output layer's per-step input ``a + b``; the class is the argmax of its sum over
  T, which equals slipsnn's ``argmax v`` (``v = v_init + 64 · Σ_t (a_t + b)``).

Two variants of a spiking layer (firing threshold θ, initial membrane v_init, bias b, all in weight units;
slipsnn fires at ``v ≥ θ``, NIR at ``v > v_thr``, so ``v_thr = θ − 1/64`` on the 1/64 grid):

``portable`` — only Input, Conv2d/Affine, IF, Flatten, Output, the subset every NIR consumer maps:
    ``IF(r = 1, v_threshold = θ − 1/64 − v_init − d, v_reset = 0)`` where ``d`` is the part of a per-neuron
    bias a ``(C_out,)`` conv bias cannot hold. Exact at T = 1; after a spike NIR's IF resets to 0 where
    slipsnn subtracts θ, so at T > 1 it approximates slipsnn (docs/nir.md measures how well).
``exact`` — reproduces slipsnn at every T:
    ``I(r = 1) → Threshold(θ − 1/64 − v_init)`` with a recurrent ``Threshold → Scale(−θ) → I`` edge: the
    integrator holds ``v − v_init`` before the reset, the one-step-delayed ``−θ`` is the subtractive reset.
    A per-neuron bias enters as ``Conv2d(zero kernel, bias 1) → Scale(b)`` from the layer's first source.

Neither variant can floor: a dense synapse with a negative ``weight_exp`` (``a = (W·s) >> e``) is refused —
export from the checkpoint (``--format nir`` quantizes without a dense exponent). The 24-bit saturation of
the membrane and the wrap of Lava's conv accumulator are not represented; slipsnn's overflow proof keeps
both out of reach up to ``max_timesteps``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from slipsnn.toolchain import __version__
from slipsnn.toolchain.errors import FormatError, SlipsnnError
from slipsnn.toolchain.files import atomic_write
from slipsnn.toolchain.ir.formats import INPUT_SOURCE, STATE_SHIFT, NirVariant, SynapseKind
from slipsnn.toolchain.ir.integer import IntLayer, IntNetwork, IntSynapse

VARIANTS = tuple(v.value for v in NirVariant)
STEP = 1.0 / (1 << STATE_SHIFT)      # one state unit in weight units: the grid of the membrane
F32 = np.float32


def _require_nir() -> Any:
    try:
        import nir
    except ImportError as e:   # a dependency; only a broken install lacks it
        raise SlipsnnError("writing NIR needs the 'nir' package (pip install nir)") from e
    return nir


def _f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).astype(F32)


def _check(net: IntNetwork) -> None:
    for i, layer in enumerate(net.layers):
        for k, syn in enumerate(layer.synapses):
            if syn.kind is SynapseKind.DENSE and syn.weight_exp < 0:
                raise FormatError(f"layer {i} ({layer.name!r}) synapse {k}: dense weight_exp {syn.weight_exp} "
                                  "floors its sum (>> e), which NIR cannot express; allowed: weight_exp ≥ 0 — "
                                  "export from the checkpoint with --format nir")
    last = net.layers[-1]
    if last.bias.shape == last.shape and len(last.shape) == 3:
        raise FormatError(f"output layer {last.name!r} has a per-neuron (C, H, W) bias; allowed for NIR: per channel")


def _ungrouped(syn: IntSynapse) -> np.ndarray:
    """A grouped conv's kernel as the equivalent block-diagonal (C_out, C_in, kH, kW) kernel of groups=1.

    nir 1.0.8 types a Conv2d's input as ``weight.shape[1]`` channels, so a grouped conv fails the type check
    that ``nir.read`` runs; the zeros cost file size, not exactness.
    """
    w, g = syn.weight, syn.groups
    if g == 1:
        return w
    c_out, c_in_g = w.shape[:2]
    full = np.zeros((c_out, c_in_g * g, *w.shape[2:]), w.dtype)
    per = c_out // g
    for k in range(g):
        full[k * per:(k + 1) * per, k * c_in_g:(k + 1) * c_in_g] = w[k * per:(k + 1) * per]
    return full


class _Builder:
    """Collects nodes and edges; one ``Flatten`` per (C, H, W) source that a dense synapse reads."""

    def __init__(self, nir: Any, net: IntNetwork) -> None:
        self.nir, self.net = nir, net
        self.nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(net.input_shape))}
        self.edges: list[tuple[str, str]] = []
        self.flat: dict[int, str] = {}

    def source_node(self, source: int) -> str:
        return "input" if source == INPUT_SOURCE else f"L{source}.spikes"

    def _flattened(self, source: int) -> str:
        if source not in self.flat:
            name = "input.flat" if source == INPUT_SOURCE else f"L{source}.flat"
            self.nodes[name] = self.nir.Flatten(input_type={"input": np.array(self.net.source_shape(source))},
                                                start_dim=0, end_dim=-1)
            self.edges.append((self.source_node(source), name))
            self.flat[source] = name
        return self.flat[source]

    def synapse(self, name: str, syn: IntSynapse, bias: np.ndarray, target: str) -> None:
        """``syn`` (with a per-channel ``bias`` in weight units) as node ``name`` feeding ``target``."""
        src_shape = self.net.source_shape(syn.source)
        if syn.kind is SynapseKind.CONV:
            self.nodes[name] = self.nir.Conv2d(input_shape=tuple(src_shape[1:]), weight=_f32(_ungrouped(syn)),
                                               stride=syn.stride, padding=syn.padding, dilation=syn.dilation,
                                               groups=1, bias=_f32(bias))
            self.edges.append((self.source_node(syn.source), name))
        else:
            self.nodes[name] = self.nir.Affine(weight=_f32(syn.weight.astype(np.float64) * 2.0 ** syn.weight_exp),
                                               bias=_f32(bias))
            src = self._flattened(syn.source) if len(src_shape) == 3 else self.source_node(syn.source)
            self.edges.append((src, name))
        self.edges.append((name, target))

    def synapses(self, i: int, layer: IntLayer, bias_c: np.ndarray, target: str) -> None:
        for k, syn in enumerate(layer.synapses):
            self.synapse(f"L{i}.syn{k}", syn, bias_c if k == 0 else np.zeros(syn.weight.shape[0]), target)

    def per_neuron_bias(self, i: int, layer: IntLayer, d: np.ndarray, target: str) -> None:
        """A constant ``d`` (neuron shape) every step: ones from a zero-kernel conv of the first source, scaled."""
        syn = layer.synapses[0]
        ones = IntSynapse(syn.source, syn.kind, np.zeros_like(syn.weight), syn.weight_exp, syn.stride, syn.padding,
                          syn.dilation, syn.groups)
        self.synapse(f"L{i}.ones", ones, np.ones(layer.shape[0]), f"L{i}.bias")
        self.nodes[f"L{i}.bias"] = self.nir.Scale(scale=_f32(d))
        self.edges.append((f"L{i}.bias", target))


def _split_bias(layer: IntLayer) -> tuple[np.ndarray, np.ndarray]:
    """(per-channel part, per-neuron remainder), both in weight units; the remainder is 0 for a (C,) bias."""
    full = layer.bias_state().astype(np.float64) * STEP
    if layer.bias.shape != layer.shape or len(layer.shape) == 1:
        return full.reshape(layer.shape[0], -1)[:, 0], np.zeros(layer.shape)
    channel = np.median(full.reshape(layer.shape[0], -1), axis=1)   # the interior value of a padded conv
    return channel, full - channel.reshape(-1, 1, 1)


def to_nir(net: IntNetwork, variant: str = "exact") -> Any:
    """The network as a ``nir.NIRGraph`` (see the module docstring for both variants).

    Args:
        net: the integer network.
        variant: ``"portable"`` (IF only; exact at T = 1) or ``"exact"`` (I + Threshold + recurrent reset).

    Returns:
        ``nir.NIRGraph`` with nodes named ``input``, ``L<i>.syn<k>``, ``L<i>.spikes``, …, ``output``;
        its ``metadata`` says which slipsnn and variant wrote it and how to read the output.

    Raises:
        FormatError: unknown variant, a dense weight_exp < 0, a per-neuron bias in the output layer.
    """
    if variant not in VARIANTS:
        raise FormatError(f"NIR variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    _check(net)
    nir = _require_nir()
    b = _Builder(nir, net)
    for i, layer in enumerate(net.layers):
        bias_c, d = _split_bias(layer)
        if not layer.spiking:
            if len(layer.synapses) == 1:
                b.synapses(i, layer, bias_c, "output")
                continue
            # several edges into an Output become several outputs in nirtorch: sum them in an identity Affine
            n = layer.num_neurons
            b.nodes[f"L{i}.sum"] = nir.Affine(weight=np.eye(n, dtype=F32), bias=np.zeros(n, F32))
            b.edges.append((f"L{i}.sum", "output"))
            b.synapses(i, layer, bias_c, f"L{i}.sum")
            continue
        theta = float(layer.threshold)
        vth = theta - STEP - layer.v_init * STEP           # v_init folded: the membrane holds v − v_init
        ones = np.ones(layer.shape)
        if variant == "portable":
            b.nodes[f"L{i}.spikes"] = nir.IF(r=_f32(ones), v_threshold=_f32(vth - d), v_reset=_f32(0 * ones))
            b.synapses(i, layer, bias_c, f"L{i}.spikes")
            continue
        b.nodes[f"L{i}.v"] = nir.I(r=_f32(ones))
        b.nodes[f"L{i}.spikes"] = nir.Threshold(threshold=_f32(vth * ones))
        b.nodes[f"L{i}.reset"] = nir.Scale(scale=_f32(-theta * ones))
        b.edges += [(f"L{i}.v", f"L{i}.spikes"), (f"L{i}.spikes", f"L{i}.reset"), (f"L{i}.reset", f"L{i}.v")]
        b.synapses(i, layer, bias_c, f"L{i}.v")
        if d.any():
            b.per_neuron_bias(i, layer, d, f"L{i}.v")
    b.nodes["output"] = nir.Output(output_type=np.array(net.layers[-1].shape))
    meta = {"writer": f"slipsnn {__version__}", "variant": variant, "timesteps": net.timesteps,
            "max_timesteps": net.max_timesteps, "input": "8-bit pixels 0..255 every step",
            "output": "the output layer's per-step input; class = argmax of its sum over T",
            "slipsnn_meta": json.dumps(net.meta)}
    return nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata=meta)


def write_nir(net: IntNetwork, path: str | Path, variant: str = "exact") -> Path:
    """Write ``to_nir(net, variant)`` as a NIR HDF5 file, atomically.

    Raises:
        FormatError: as ``to_nir``; the file cannot be written.

    Example:
        >>> write_nir(net, "model.nir", variant="portable")          # doctest: +SKIP
    """
    graph = to_nir(net, variant)
    nir = _require_nir()
    path = Path(path)
    try:
        return atomic_write(path, lambda tmp: nir.write(tmp, graph))
    except OSError as e:
        raise FormatError(f"{path}: cannot write: {e}") from e

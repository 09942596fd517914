"""Fast, batched simulation of the spiking network over T steps: float (``SpikingNetwork``) or integer
(``IntNetwork``, bit-exact with the Lava process models).

Layers are evaluated in order within a step, so layer i at step t sees its sources' spikes of step t;
Lava pipelines the same computation one step per layer (see ``backends.lava.runtime``), which changes when a
result appears, not what it is. The 8-bit image is fed at every step.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from slipsnn.toolchain.ir.floating import FloatSynapse, SpikingNetwork
from slipsnn.toolchain.ir.formats import INPUT_SOURCE, STATE_SHIFT, SynapseKind, check_timesteps
from slipsnn.toolchain.ir.integer import IntNetwork, IntSynapse
from slipsnn.toolchain.ir.neurons import FloatIFParams, IntIFParams, float_if_step, int_if_step
from slipsnn.toolchain.kernels.connectivity import synapse_fanout
from slipsnn.toolchain.kernels.synapse import apply_synapse, bias_tensor
from slipsnn.toolchain.backends.checks import check_horizon, check_pixels
from slipsnn.toolchain.backends.result import SimResult

CONV_ACC_BITS = 24          # Lava's Conv wraps its accumulator to 24 signed bits (signed_clamp)


class _Layer(NamedTuple):
    synapses: list[tuple[int, Callable[[torch.Tensor], torch.Tensor], torch.Tensor]]  # source, apply, fan-out
    step: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    v_init: float | int
    shape: tuple[int, ...]


def _geometry(syn: IntSynapse | FloatSynapse) -> dict:
    return dict(stride=syn.stride, padding=syn.padding, dilation=syn.dilation, groups=syn.groups)


def _compile_float(net: SpikingNetwork) -> list[_Layer]:
    layers = []
    for layer in net.layers:
        syns = []
        for syn in layer.synapses:
            w = torch.as_tensor(syn.weight, dtype=torch.float32)
            geo = _geometry(syn)
            syns.append((syn.source, lambda x, w=w, k=syn.kind, g=geo: apply_synapse(x, k, w, **g),
                         _fanout_tensor(syn, net.source_shape(syn.source))))
        p = FloatIFParams(bias_tensor(layer.bias, layer.shape, torch.float32), layer.spiking)
        layers.append(_Layer(syns, lambda v, z, p=p: float_if_step(v, z, p), layer.v_init, layer.shape))
    return layers


def _int_synapse(syn: IntSynapse) -> Callable[[torch.Tensor], torch.Tensor]:
    """Integer synapse on float64 tensors holding integers: exact, and no dtype conversions per step."""
    w = torch.as_tensor(syn.weight, dtype=torch.float64)
    geo, kind, scale = _geometry(syn), syn.kind, 2.0 ** syn.weight_exp
    half = float(1 << (CONV_ACC_BITS - 1))

    def apply(x: torch.Tensor) -> torch.Tensor:
        a = apply_synapse(x, kind, w, **geo)
        if kind is SynapseKind.CONV:
            return torch.remainder(a + half, 2 * half) - half
        return a * scale if scale >= 1 else torch.floor(a * scale)   # Lava's Dense: << e, or >> −e (floors)
    return apply


def _compile_int(net: IntNetwork) -> list[_Layer]:
    layers = []
    for layer in net.layers:
        syns = []
        for syn in layer.synapses:
            syns.append((syn.source, _int_synapse(syn), _fanout_tensor(syn, net.source_shape(syn.source))))
        bias = torch.as_tensor(layer.bias_state(), dtype=torch.float64)
        p = IntIFParams(bias, layer.threshold_state, layer.spiking)
        layers.append(_Layer(syns, lambda v, a, p=p: int_if_step(v, a, p), int(layer.v_init), layer.shape))
    return layers


def _fanout_tensor(syn: IntSynapse | FloatSynapse, source_shape: tuple[int, ...]) -> torch.Tensor:
    return torch.as_tensor(synapse_fanout(syn, source_shape).reshape(-1), dtype=torch.float64)


@torch.no_grad()
def _run(layers: list[_Layer], x: torch.Tensor, timesteps: int, out_scale: float, state_dtype: torch.dtype,
         names: list[str], record_counts: bool) -> SimResult:
    n, n_layers = x.shape[0], len(layers)
    spikes = np.zeros((n, n_layers, timesteps), dtype=np.int64)
    synops = np.zeros((n, n_layers, timesteps), dtype=np.int64)
    logits = np.zeros((n, timesteps, int(np.prod(layers[-1].shape))), dtype=np.float64)
    v = [torch.full((n, *L.shape), L.v_init, dtype=state_dtype) for L in layers]
    counts = [torch.zeros((n, *L.shape), dtype=torch.int64) for L in layers] if record_counts else None
    x_events = (x != 0).reshape(n, -1).to(torch.float64)
    for t in range(timesteps):
        out: list[torch.Tensor] = []
        for i, L in enumerate(layers):
            a = None
            for source, apply, fanout in L.synapses:
                src = x if source == INPUT_SOURCE else out[source]
                a = apply(src) if a is None else a + apply(src)
                events = x_events if source == INPUT_SOURCE else src.reshape(n, -1)
                synops[:, i, t] += (events.to(fanout.dtype) @ fanout).round().to(torch.int64).numpy()
            s, v[i] = L.step(v[i], a)
            out.append(s)
            spikes[:, i, t] = s.reshape(n, -1).sum(1).to(torch.int64).numpy()
            if counts is not None:
                counts[i] += s.to(torch.int64)
        logits[:, t] = v[-1].reshape(n, -1).to(torch.float64).numpy() / out_scale
    return SimResult(logits, spikes, synops, names, None if counts is None else [c.numpy() for c in counts])


def _batched(run: Callable[[torch.Tensor], SimResult], pixels: torch.Tensor, batch_size: int,
             progress: bool, desc: str) -> SimResult:
    parts = [run(pixels[i:i + batch_size])
             for i in tqdm(range(0, len(pixels), batch_size), desc=desc, disable=not progress, leave=False)]
    return SimResult.concat(parts)


def simulate_float(net: SpikingNetwork, pixels: torch.Tensor, timesteps: int, batch_size: int = 256,
                   record_counts: bool = False, progress: bool = False) -> SimResult:
    """Simulate the float converted SNN.

    Args:
        net: the converted network (``lower.lower``).
        pixels: (N, C, H, W) 8-bit pixel values 0..255.
        timesteps: T ≥ 1.
        batch_size: samples per vectorized batch.
        record_counts: keep per-neuron spike counts (``SimResult.counts``).
        progress: show a tqdm bar over batches.

    Example:
        >>> res = simulate_float(snn, pixels, timesteps=4)      # doctest: +SKIP
        >>> res.accuracy(labels)                                 # accuracy after t = 1, 2, 3, 4
    """
    check_timesteps(timesteps)
    pixels = check_pixels(pixels, net.input_shape).to(torch.float32)
    layers, names = _compile_float(net), [L.name for L in net.layers]
    return _batched(lambda x: _run(layers, x, timesteps, 1.0, torch.float32, names, record_counts),
                    pixels, batch_size, progress, "float SNN")


def simulate_int(net: IntNetwork, pixels: torch.Tensor, timesteps: int, batch_size: int = 256,
                 record_counts: bool = False, progress: bool = False) -> SimResult:
    """Simulate the integer network exactly as the Lava fixed-point process models compute it.

    Args:
        net: the integer network.
        pixels: (N, C, H, W) 8-bit pixel values 0..255 (integer-valued tensor).
        timesteps: T, 1 ≤ T ≤ ``net.max_timesteps`` (the horizon proven free of 24-bit overflow).
        batch_size, record_counts, progress: as in ``simulate_float``.

    Returns:
        ``SimResult``; logits are the output membrane divided by 64·scale (normalized units).
    """
    check_timesteps(timesteps)
    check_horizon(net, timesteps)
    pixels = check_pixels(pixels, net.input_shape).to(torch.float64)
    layers, names = _compile_int(net), [L.name for L in net.layers]
    out_scale = float(net.layers[-1].scale) * (1 << STATE_SHIFT)
    return _batched(lambda x: _run(layers, x, timesteps, out_scale, torch.float64, names, record_counts),
                    pixels, batch_size, progress, "integer SNN")

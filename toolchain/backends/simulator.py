"""Fast, batched simulation of the spiking network over T steps: float (``SpikingNetwork``) or integer
(``IntNetwork``, bit-exact with the Lava process models), on CPU or CUDA.

The network is evaluated **layer by layer over all T steps**. Layer i at step t depends only on its
sources' spikes at step t (Lava pipelines the same computation one step per layer, see
``backends.lava.runtime``, which changes when a result appears, not what it is), so each synapse is one
convolution or matrix product over the (T·N, …) stack of its source's spikes, followed by a cheap scan of
the neuron over T. The 8-bit image is the same at every step: the input current is computed once per sample.

Integer arithmetic runs in float32 where ``backends.exactness`` proves every intermediate value an integer
below 2²⁴ (per synapse and per layer), in float64 elsewhere; inside ``kernels.device.exact_float_math`` both are
exact, hence bit-identical on CPU and CUDA. Memory is bounded by the batch size (samples per batch), given or
chosen for the device (``auto_batch_size``: a cache-sized working set on the host, free memory on CUDA).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..ir.floating import SpikingNetwork
from ..ir.formats import INPUT_SOURCE, STATE_MAX, STATE_SHIFT, SynapseKind, check_timesteps
from ..ir.integer import IntNetwork
from ..kernels.connectivity import synapse_fanout
from ..kernels.device import exact_float_math, free_memory_bytes, resolve_device
from ..kernels.synapse import bias_tensor
from .checks import check_batch_size, check_horizon, check_pixels
from .exactness import FLOAT32_EXACT, LayerProof, prove_exactness
from .result import SimResult

CONV_ACC_BITS = 24          # Lava's Conv wraps its accumulator to 24 signed bits (signed_clamp)
# Working memory per batch on the host when the batch size is not given. Measured (docs/benchmarks.md §3): one
# thread runs fastest when a batch's working set stays near the caches' size, e.g. ResNet-20 at T = 8 2.4x
# faster in batches of 8 samples (60 MB) than of 64 (480 MB); 64 MiB was best or within 10 % on every net.
HOST_BUDGET = 64 << 20
MAX_AUTO_BATCH = 1024


@dataclass(frozen=True)
class _Synapse:
    """One synapse (or merged group) ready to apply: ``current = apply(source tensor)``."""

    source: int
    kind: SynapseKind
    weight: torch.Tensor            # in ``dtype`` on the device
    geometry: dict
    scale: float                    # dense: 2**weight_exp (floor when < 1); 1 for float networks
    wraps: bool                     # wrap the accumulator to 24 bits (a conv whose wrap is not proven impossible)
    dtype: torch.dtype
    fanout: torch.Tensor            # (source elements,) non-zero synapses per source element
    per_channel: bool               # a grouped 1×1 conv with one input channel per group: a per-channel scale


@dataclass(frozen=True)
class _Layer:
    name: str
    shape: tuple[int, ...]
    synapses: tuple[_Synapse, ...]
    bias: torch.Tensor              # broadcastable to (N, *shape), in ``dtype``
    drive_scale: float              # current → membrane units: 64 for integers, 1 for floats
    threshold: float
    spiking: bool
    v_init: float
    dtype: torch.dtype
    saturate: bool                  # clip the membrane at ±(2²³ − 1) (the integer network when not proven idle)


def _geometry(syn) -> dict:
    return dict(stride=tuple(syn.stride), padding=tuple(syn.padding), dilation=tuple(syn.dilation),
                groups=int(syn.groups))


_FANOUTS: "weakref.WeakKeyDictionary[object, np.ndarray]" = weakref.WeakKeyDictionary()


def _synapse_fanout(syn, source_shape: tuple[int, ...]) -> np.ndarray:
    """``synapse_fanout`` flattened, remembered per synapse object (the IR is immutable): repeated runs of one
    network (a benchmark, a δ₂ sweep) pay its convolution once."""
    fan = _FANOUTS.get(syn)
    if fan is None:
        with torch.enable_grad():   # synapse_fanout differentiates a convolution
            fan = _FANOUTS[syn] = synapse_fanout(syn, source_shape).reshape(-1)
    return fan


def _fanout(syns, source_shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    fan = sum(_synapse_fanout(s, source_shape) for s in syns)
    # float32 counts are exact while the total stays below 2²⁴ (every partial sum is smaller)
    dtype = torch.float32 if int(fan.sum()) <= FLOAT32_EXACT else torch.float64
    return torch.as_tensor(fan, dtype=dtype, device=device)


def _is_per_channel(weight_shape: tuple[int, ...], kind: SynapseKind, geometry: dict) -> bool:
    return (kind is SynapseKind.CONV and tuple(weight_shape[1:]) == (1, 1, 1) and geometry["groups"] == weight_shape[0]
            and geometry["padding"] == (0, 0))


def _compile_int(net: IntNetwork, proofs: list[LayerProof], device: torch.device) -> list[_Layer]:
    layers = []
    for layer, proof in zip(net.layers, proofs):
        syns = []
        for group in proof.synapses:
            first = layer.synapses[group.indices[0]]
            dtype = torch.float32 if group.float32 else torch.float64
            geo = _geometry(first)
            syns.append(_Synapse(first.source, first.kind, torch.as_tensor(group.weight, dtype=dtype, device=device),
                                 geo, 2.0 ** first.weight_exp, group.wraps, dtype,
                                 _fanout([layer.synapses[k] for k in group.indices], net.source_shape(first.source),
                                         device),
                                 _is_per_channel(group.weight.shape, first.kind, geo)))
        dtype = torch.float32 if proof.float32 else torch.float64
        layers.append(_Layer(layer.name, layer.shape, tuple(syns),
                             torch.as_tensor(layer.bias_state(), dtype=dtype, device=device),
                             float(1 << STATE_SHIFT), float(layer.threshold_state), layer.spiking,
                             float(layer.v_init), dtype, proof.saturates))
    return layers


def _compile_float(net: SpikingNetwork, device: torch.device) -> list[_Layer]:
    layers = []
    for layer in net.layers:
        syns = []
        for syn in layer.synapses:
            geo = _geometry(syn)
            syns.append(_Synapse(syn.source, syn.kind, torch.as_tensor(syn.weight, dtype=torch.float32, device=device),
                                 geo, 1.0, False, torch.float32, _fanout([syn], net.source_shape(syn.source), device),
                                 _is_per_channel(syn.weight.shape, syn.kind, geo)))
        layers.append(_Layer(layer.name, layer.shape, tuple(syns),
                             bias_tensor(layer.bias, layer.shape, torch.float32).to(device), 1.0, 1.0,
                             layer.spiking, float(layer.v_init), torch.float32, False))
    return layers


def _apply(syn: _Synapse, x: torch.Tensor) -> torch.Tensor:
    """The synapse's current for a batch of sources ``x`` (B, *source_shape) → (B, *target_shape)."""
    x = x.to(syn.dtype)
    if syn.kind is SynapseKind.DENSE:
        a = x.reshape(x.shape[0], -1) @ syn.weight.T
        if syn.scale > 1:
            a = a * syn.scale
        elif syn.scale < 1:
            a = torch.floor(a * syn.scale)        # Lava's Dense: >> −e floors
        return a
    if syn.per_channel:       # one product per element, as the convolution computes it
        sh, sw = syn.geometry["stride"]
        a = x[:, :, ::sh, ::sw] * syn.weight.view(1, -1, 1, 1)
    else:
        a = F.conv2d(x, syn.weight, **syn.geometry)
    if syn.wraps:
        half = float(1 << (CONV_ACC_BITS - 1))
        a = torch.remainder(a + half, 2 * half) - half
    return a


def _last_uses(layers: list[_Layer]) -> dict[int, int]:
    """Source index → the last layer that reads it (its spikes are freed after that layer)."""
    last: dict[int, int] = {}
    for i, layer in enumerate(layers):
        for syn in layer.synapses:
            last[syn.source] = i
    return last


@torch.no_grad()
def _run_batch(layers: list[_Layer], x: torch.Tensor, timesteps: int, out_scale: float, names: list[str],
               record_counts: bool) -> SimResult:
    """Simulate one batch ``x`` (N, C, H, W) on its device; results come back to the host."""
    T, n, dev = timesteps, x.shape[0], x.device
    spikes = torch.zeros((len(layers), T, n), dtype=torch.int64, device=dev)
    synops = torch.zeros((len(layers), T, n), dtype=torch.int64, device=dev)
    counts: list[np.ndarray] = []
    x_events = (x != 0).reshape(n, -1)
    outs: dict[int, torch.Tensor] = {}          # layer → its spikes (T, N, *shape), float32 0/1
    last_use = _last_uses(layers)
    logits = None
    for i, layer in enumerate(layers):
        a = None                                # (T or 1, N, *shape): the summed synaptic current
        for syn in layer.synapses:
            if syn.source == INPUT_SOURCE:
                cur = _apply(syn, x).unsqueeze(0)
                synops[i] += (x_events.to(syn.fanout.dtype) @ syn.fanout).round().to(torch.int64)
            else:
                src = outs[syn.source]
                flat = src.reshape(T * n, *src.shape[2:])
                cur = _apply(syn, flat).reshape(T, n, *layer.shape)
                synops[i] += (flat.reshape(T * n, -1).to(syn.fanout.dtype) @ syn.fanout
                              ).round().to(torch.int64).reshape(T, n)
            cur = cur.to(layer.dtype)
            a = cur if a is None else (a.add_(cur) if a.shape[0] >= cur.shape[0] else cur + a)
        drive = torch.add(layer.bias, a, alpha=layer.drive_scale)   # bias + scale·a, exact (see exactness)
        v = torch.full((n, *layer.shape), layer.v_init, dtype=layer.dtype, device=dev)
        drive = drive.expand(T, *drive.shape[1:])   # a drive computed once (the image's) is a view for every t
        if layer.spiking:
            out = torch.empty((T, n, *layer.shape), dtype=torch.float32, device=dev)
            for t in range(T):
                v.add_(drive[t])
                if layer.saturate:
                    v.clamp_(-STATE_MAX, STATE_MAX)
                torch.ge(v, layer.threshold, out=out[t])
                v.sub_(out[t] if v.dtype == out.dtype else out[t].to(v.dtype), alpha=layer.threshold)
            spikes[i] = out.reshape(T, n, -1).sum(2).to(torch.int64)
            if record_counts:
                counts.append(out.sum(0).to(torch.int64).cpu().numpy())
            outs[i] = out
        else:
            trace = torch.empty((T, n, *layer.shape), dtype=torch.float64, device=dev)
            for t in range(T):
                v.add_(drive[t])
                if layer.saturate:
                    v.clamp_(-STATE_MAX, STATE_MAX)
                trace[t] = v
            logits = trace.reshape(T, n, -1).transpose(0, 1).cpu().numpy() / out_scale
            if record_counts:
                counts.append(np.zeros((n, *layer.shape), dtype=np.int64))
        del a, drive
        for source in [k for k, last in last_use.items() if last == i and k in outs]:
            del outs[source]
    return SimResult(logits, spikes.permute(2, 0, 1).cpu().numpy(), synops.permute(2, 0, 1).cpu().numpy(), names,
                     counts if record_counts else None)


def batch_bytes_per_sample(layers: list[_Layer], timesteps: int, input_shape: tuple[int, ...]) -> int:
    """Peak working memory of one sample in ``_run_batch`` (bytes, an upper estimate).

    While layer i runs, the spikes of every layer still to be read are alive (float32, T copies), plus the
    layer's current, drive and output over T, and a float64 convolution's im2col buffer.
    """
    last_use = _last_uses(layers)
    sizes = [int(np.prod(L.shape)) for L in layers]
    peak = 0
    for i, layer in enumerate(layers):
        alive = sum(4 * timesteps * sizes[j] for j in range(i) if last_use.get(j, -1) >= i)
        width = 8 if layer.dtype == torch.float64 else 4
        own = timesteps * sizes[i] * (3 * width + 4 + (8 if not layer.spiking else 0))
        cols = 0
        for syn in layer.synapses:
            if syn.kind is SynapseKind.CONV and not syn.per_channel:
                k = int(np.prod(syn.weight.shape[1:]))
                cols = max(cols, timesteps * k * int(np.prod(layer.shape[1:])) * syn.weight.element_size())
            src = input_shape if syn.source == INPUT_SOURCE else layers[syn.source].shape
            cols += timesteps * int(np.prod(src)) * (8 if syn.dtype == torch.float64 else 0)   # dtype copies
        peak = max(peak, alive + own + cols)
    return peak + 4 * int(np.prod(input_shape)) * 3


def auto_batch_size(layers: list[_Layer], timesteps: int, input_shape: tuple[int, ...],
                    device: torch.device) -> int:
    """Samples per batch for the device: half its free memory on CUDA; on the host a cache-sized working set
    (``HOST_BUDGET``), and at most a quarter of the memory available."""
    free = free_memory_bytes(device)
    budget = free // 2 if device.type == "cuda" else min(HOST_BUDGET, free // 4)
    return int(max(1, min(MAX_AUTO_BATCH, budget // max(1, batch_bytes_per_sample(layers, timesteps, input_shape)))))


def _simulate(layers: list[_Layer], pixels: torch.Tensor, timesteps: int, out_scale: float, names: list[str],
              input_dtype: torch.dtype, device: torch.device, batch_size: int | None, record_counts: bool,
              progress: bool, desc: str) -> SimResult:
    size = check_batch_size(batch_size) if batch_size is not None else \
        auto_batch_size(layers, timesteps, tuple(pixels.shape[1:]), device)
    parts = []
    with exact_float_math():
        for i in tqdm(range(0, len(pixels), size), desc=desc, disable=not progress, leave=False):
            x = pixels[i:i + size].to(device=device, dtype=input_dtype)
            parts.append(_run_batch(layers, x, timesteps, out_scale, names, record_counts))
    return SimResult.concat(parts)


def simulate_float(net: SpikingNetwork, pixels: torch.Tensor, timesteps: int, batch_size: int | None = None,
                   record_counts: bool = False, progress: bool = False,
                   device: str | torch.device | None = "cpu") -> SimResult:
    """Simulate the float converted SNN.

    Args:
        net: the converted network (``conversion.lower.lower``).
        pixels: (N, C, H, W) 8-bit pixel values 0..255.
        timesteps: T ≥ 1.
        batch_size: samples per vectorized batch (default: ``auto_batch_size``).
        record_counts: keep per-neuron spike counts (``SimResult.counts``).
        progress: show a tqdm bar over batches.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.

    Example:
        >>> res = simulate_float(snn, pixels, timesteps=4)      # doctest: +SKIP
        >>> res.accuracy(labels)                                 # accuracy after t = 1, 2, 3, 4
    """
    check_timesteps(timesteps)
    pixels = check_pixels(pixels, net.input_shape)
    dev = resolve_device(device)
    layers = _compile_float(net, dev)
    return _simulate(layers, pixels, int(timesteps), 1.0, [L.name for L in net.layers], torch.float32, dev,
                     batch_size, record_counts, progress, "float SNN")


def simulate_int(net: IntNetwork, pixels: torch.Tensor, timesteps: int, batch_size: int | None = None,
                 record_counts: bool = False, progress: bool = False,
                 device: str | torch.device | None = "cpu", proofs: list[LayerProof] | None = None) -> SimResult:
    """Simulate the integer network exactly as the Lava fixed-point process models compute it.

    Args:
        net: the integer network.
        pixels: (N, C, H, W) 8-bit pixel values 0..255 (integer-valued tensor).
        timesteps: T, 1 ≤ T ≤ ``net.max_timesteps`` (the horizon proven free of 24-bit overflow).
        batch_size, record_counts, progress, device: as in ``simulate_float``.
        proofs: ``exactness.prove_exactness(net, timesteps)`` when already computed (what runs in float32).

    Returns:
        ``SimResult``; logits are the output membrane divided by 64·scale (normalized units).
    """
    check_timesteps(timesteps)
    check_horizon(net, timesteps)
    pixels = check_pixels(pixels, net.input_shape)
    dev = resolve_device(device)
    proofs = proofs if proofs is not None else prove_exactness(net, int(timesteps))
    layers = _compile_int(net, proofs, dev)
    input_dtype = torch.float32 if all(s.dtype == torch.float32 for L in layers for s in L.synapses
                                       if s.source == INPUT_SOURCE) else torch.float64
    out_scale = float(net.layers[-1].scale) * (1 << STATE_SHIFT)
    return _simulate(layers, pixels, int(timesteps), out_scale, [L.name for L in net.layers], input_dtype, dev,
                     batch_size, record_counts, progress, "integer SNN")

"""Run a stock lava-dl netx file (CUBA neurons: slipsnn's ``--neuron cuba`` export or a file slayer wrote)
through unmodified ``lava.lib.dl.netx.hdf5.Network`` at any T.

What a lava-dl user has to get right, and this module does:

* **Reset phase.** ``Network(path, reset_interval=T, reset_offset=1)``: netx resets block k at steps
  t ≡ reset_offset + 1 + k (mod T), and each block's synapse delays its input by one step, so block k sees
  sample n (fed at steps nT + 1 … nT + T) during steps nT + 2 + k … nT + T + 1 + k. With
  ``reset_offset = 1`` every block resets just before the first step of a sample reaches it; the default
  ``reset_offset = 0`` resets one step early, mixing samples.
* **Reading the class.** The output block does not spike (slipsnn writes it with vThMant 131071), so
  ``net.out`` carries nothing: the class is the argmax of the output block's ``v`` at step nT + T + depth
  (depth = number of neuron blocks), the last step before its next reset. The pipeline is flushed with
  ``depth`` zero steps.

Each sample's output membrane is recorded by one Lava ``Monitor`` over the whole run (one compile, one run).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..result import SimResult
from .runtime import require_lava, shutdown


def run_stock_netx(path: str | Path, pixels: np.ndarray, timesteps: int, input_bits: int = 8,
                   scale: float = 1.0, names: list[str] | None = None, read: str = "v",
                   fanouts: list[np.ndarray] | None = None,
                   input_shape: tuple[int, int, int] | None = None) -> tuple[SimResult, dict[str, float]]:
    """Run a stock netx file on ``pixels``, T steps per sample, in one compile and one run.

    Args:
        path: a netx HDF5 file whose neurons stock netx knows (CUBA).
        pixels: (N, C, H, W) input values (0..255 for 8-bit graded input, 0/1 for binary input).
        timesteps: T, steps per sample.
        input_bits: ``input_message_bits`` of the network (8: graded pixels; 0: binary spikes).
        scale: the output layer's weight units per normalized unit (logits = v / (64 · scale)).
        names: layer names for the result (default: netx's block names).
        read: ``"v"``: logits are the output block's membrane (slipsnn's silent output block; Lava's v is
            the IR's v − v_init); ``"spikes"``: the output block's spike count so far (slayer's read-out).
        fanouts: per block, the non-zero synapses each element of its source (the previous block, or the
            input for block 0) drives; gives ``synops`` (zeros when None).
        input_shape: (C, H, W) for a file without an input group (slayer writes none).

    Returns:
        (result, timing): ``SimResult`` with logits after each step of each sample, each block's spikes
        and synaptic events per step. timing: ``compile_run_s``, ``samples_per_s``.
    """
    require_lava()
    from lava.lib.dl.netx import hdf5
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    pixels = np.asarray(pixels)
    n, t = len(pixels), int(timesteps)
    shape = {} if input_shape is None else {"input_shape": tuple(input_shape[::-1])}   # netx: (x, y, f)
    net = hdf5.Network(net_config=str(path), input_message_bits=input_bits, reset_interval=t, reset_offset=1,
                       **shape)
    depth = len(net.layers)
    steps = n * t + depth
    frames = np.zeros(tuple(net.inp.shape) + (steps,), np.int32)
    xyz = pixels.transpose(0, 3, 2, 1)                      # (N, C, H, W) → (N, W, H, C), netx's layout
    for i in range(n):
        frames[..., i * t:(i + 1) * t] = xyz[i][..., None]
    source = RingBuffer(data=frames)
    source.s_out.connect(net.inp)
    out = net.layers[-1].neuron
    monitors = [Monitor() for _ in range(depth + 1)]
    monitors[-1].probe(out.v, steps)
    for m, block in zip(monitors[:-1], net.layers):
        m.probe(block.neuron.s_out, steps)
    start = time.perf_counter()
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        data = [m.get_data() for m in monitors]
    finally:
        shutdown(net)
    elapsed = time.perf_counter() - start
    # block k sees step τ = 1..T of sample n at (0-based) step nT + k + τ
    at = lambda k: (np.arange(n)[:, None] * t + k + np.arange(1, t + 1)[None, :])  # noqa: E731
    spikes, synops = np.zeros((n, depth, t), np.int64), np.zeros((n, depth, t), np.int64)
    events = (pixels.reshape(n, 1, -1) != 0).repeat(t, axis=1)   # the input's events at each step
    for k, block in enumerate(net.layers):
        # netx's neurons are (x, y, f): back to C-order (C, H, W) so that the fan-outs line up
        raw = np.asarray(data[k][block.neuron.name]["s_out"]).reshape(steps, *block.neuron.s_out.shape)
        raw = raw.transpose(0, 3, 2, 1) if raw.ndim == 4 else raw
        fired = raw.reshape(steps, -1)[at(k)] != 0                         # (N, T, neurons)
        spikes[:, k] = fired.sum(axis=2)
        if fanouts is not None:
            synops[:, k] = events.astype(np.int64) @ np.asarray(fanouts[k], np.int64).reshape(-1)
        events = fired
    if read == "v":
        v = np.asarray(data[-1][out.name]["v"], np.float64).reshape(steps, -1)
        logits = v[at(depth - 1)] / (64.0 * scale)                         # (N, T, classes)
    else:
        logits = np.cumsum(fired, axis=1).astype(np.float64)
    names = names or [block.name for block in net.layers]
    return (SimResult(logits, spikes, synops, names),
            {"compile_run_s": elapsed, "samples_per_s": n / elapsed})

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
from typing import Any

import numpy as np

from .runtime import require_lava, shutdown


def stock_netx_membranes(path: str | Path, pixels: np.ndarray, timesteps: int,
                         input_bits: int = 8) -> tuple[np.ndarray, dict[str, float]]:
    """The output block's membrane after T steps of each sample, from stock netx.

    Args:
        path: a netx HDF5 file whose neurons stock netx knows (CUBA).
        pixels: (N, C, H, W) input values (0..255 for 8-bit graded input, 0/1 for binary input).
        timesteps: T, steps per sample.
        input_bits: ``input_message_bits`` of the network (8: graded pixels; 0: binary spikes).

    Returns:
        (v, timing): v (N, *output shape in netx's (x, y, f) order, squeezed to (N, classes) for a dense
        output), in Lava's state units; timing with ``compile_run_s``.
    """
    require_lava()
    from lava.lib.dl.netx import hdf5
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    pixels = np.asarray(pixels)
    n, t = len(pixels), int(timesteps)
    net = hdf5.Network(net_config=str(path), input_message_bits=input_bits, reset_interval=t, reset_offset=1)
    depth = len(net.layers)
    steps = n * t + depth
    frames = np.zeros(tuple(net.inp.shape) + (steps,), np.int32)
    xyz = pixels.transpose(0, 3, 2, 1)                      # (N, C, H, W) → (N, W, H, C), netx's layout
    for i in range(n):
        frames[..., i * t:(i + 1) * t] = xyz[i][..., None]
    source = RingBuffer(data=frames)
    source.s_out.connect(net.inp)
    monitor = Monitor()
    out = net.layers[-1].neuron
    monitor.probe(out.v, steps)
    start = time.perf_counter()
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        data = monitor.get_data()
    finally:
        shutdown(net)
    record = np.asarray(data[out.name]["v"])                # (steps, *shape)
    at = np.arange(n) * t + t + depth - 1                   # step nT + T + depth, 1-based
    v = record[at].reshape(n, -1)
    return v, {"compile_run_s": time.perf_counter() - start}

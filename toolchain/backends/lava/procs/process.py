"""Lava Processes of slipsnn: declarations only (ports and Vars); the arithmetic is in ``models``.

Shapes follow Lava's (x, y, z) = (W, H, C) order for images, or (N,) for dense layers. Every
process can keep per-step ring buffers (``*_log`` Vars of length ``log_steps``, written at index
``(time_step − 1) % log_steps``), so a run's activity is read with ``Var.get`` between ``run`` calls
without extra sink processes (each Lava process is one OS process on CPU).
"""

from __future__ import annotations

import numpy as np

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess, LogConfig
from lava.magma.core.process.variable import Var


def _fanout_var(fanout: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """(E, *shape) fan-out maps of the outgoing edges; one all-zero row when there are none."""
    if fanout is None or len(fanout) == 0:
        return np.zeros((1, *shape), dtype=np.int64)
    fan = np.asarray(fanout, dtype=np.int64)
    if fan.shape[1:] != tuple(shape):
        raise ValueError(f"fan-out maps of shape {fan.shape[1:]} do not match the process shape {tuple(shape)}")
    return fan


class SoftResetIF(AbstractProcess):
    """Integer integrate-and-fire neuron with reset by subtraction (slipsnn's ``IF_SOFT``), or the
    non-spiking accumulating output (``ACCUMULATE``), in 24-bit state units (1 weight unit = 64)::

        at the start of a sample (time_step % reset_interval == reset_offset % reset_interval):
            v ← v_init
        v ← clip(v + (a << 6) + (bias_mant << bias_exp), ±(2²³ − 1))
        spiking:     s = v ≥ vth << 6;  v ← v − s·(vth << 6);  sends s (0/1)
        not spiking: sends v (graded) every step

    Args:
        shape: neuron shape, (W, H, C) or (N,).
        vth: 17-bit threshold mantissa (weight units).
        v_init: membrane at the start of every sample (state units); scalar or ``shape``.
        bias_mant: 13-bit bias mantissa; scalar or ``shape`` (netx blocks pass it via ``bias_key``).
        bias_exp: bias exponent 0..7.
        spiking: False for the accumulating output layer.
        reset_interval: steps per sample (T); 0 = never reset.
        reset_offset: the phase of the reset (Lava counts ``time_step`` from 1).
        fanout: int (E, *shape): for each of E outgoing synapses, how many non-zero synapses each
            neuron drives; ``synop_log[e]`` records Σ s·fanout[e] per step. None: no outgoing edges.
        log_steps: length of the per-step ring buffers ``spike_log`` (spikes per step),
            ``synop_log`` (E, log_steps) and, when not spiking, ``v_log`` (*shape, log_steps);
            0 records nothing.
    """

    def __init__(self, *, shape: tuple[int, ...], vth: int, v_init: int | np.ndarray = 0,
                 bias_mant: int | np.ndarray = 0, bias_exp: int = 0, spiking: bool = True,
                 reset_interval: int = 0, reset_offset: int = 0, fanout: np.ndarray | None = None,
                 log_steps: int = 0, name: str | None = None, log_config: LogConfig | None = None) -> None:
        shape = tuple(int(s) for s in shape)
        super().__init__(shape=shape, spiking=bool(spiking), reset_interval=int(reset_interval),
                         reset_offset=int(reset_offset), log_steps=int(log_steps), name=name,
                         log_config=log_config)
        fan = _fanout_var(fanout, shape)
        buffer = max(1, int(log_steps))
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.v = Var(shape=shape, init=v_init)
        self.v_init = Var(shape=shape, init=v_init)
        self.vth = Var(shape=(1,), init=int(vth))
        self.bias_mant = Var(shape=shape, init=bias_mant)
        self.bias_exp = Var(shape=(1,), init=int(bias_exp))
        self.fanout = Var(shape=fan.shape, init=fan)
        self.spike_log = Var(shape=(buffer,), init=0)
        self.synop_log = Var(shape=(fan.shape[0], buffer), init=0)
        self.v_log = Var(shape=(*shape, buffer) if not spiking and log_steps else (1,), init=0)


class FrameSource(AbstractProcess):
    """Sends 8-bit frames as graded spikes: frame n during steps n·T + 1 … (n+1)·T, zeros afterwards.

    The frames are a process parameter, not a Var: on CPU the model process shares them with the
    host (fork), so a whole data set streams without copying it through Lava's Var channels.

    Args:
        frames: int (N, *shape) frames in the order they are sent; shape (W, H, C) or (n,).
        timesteps: T, steps each frame is held.
        fanout: int (E, *shape) fan-out maps of the outgoing synapses (see ``SoftResetIF``);
            ``synop_log[e]`` records Σ (x ≠ 0)·fanout[e] per step.
        log_steps: length of the ``synop_log`` ring buffer; 0 records nothing.
    """

    def __init__(self, *, frames: np.ndarray, timesteps: int, fanout: np.ndarray | None = None,
                 log_steps: int = 0, name: str | None = None, log_config: LogConfig | None = None) -> None:
        frames = np.asarray(frames)
        shape = tuple(frames.shape[1:])
        super().__init__(frames=frames, timesteps=int(timesteps), log_steps=int(log_steps), name=name,
                         log_config=log_config)
        fan = _fanout_var(fanout, shape)
        self.s_out = OutPort(shape=shape)
        self.fanout = Var(shape=fan.shape, init=fan)
        self.synop_log = Var(shape=(fan.shape[0], max(1, int(log_steps))), init=0)


class SpikeDelay(AbstractProcess):
    """Delays a (binary or graded) spike tensor by ``delay`` ≥ 1 steps: ``s_out[t] = s_in[t − delay]``
    (zeros for the first ``delay`` steps). Used to align a residual synapse with the longer path.

    Args:
        shape: tensor shape.
        delay: steps of delay, ≥ 1.
    """

    def __init__(self, *, shape: tuple[int, ...], delay: int, name: str | None = None,
                 log_config: LogConfig | None = None) -> None:
        if int(delay) < 1:
            raise ValueError(f"SpikeDelay delay={delay}: must be ≥ 1 (connect directly for no delay)")
        shape = tuple(int(s) for s in shape)
        super().__init__(shape=shape, delay=int(delay), name=name, log_config=log_config)
        self.s_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.buffer = Var(shape=(int(delay), *shape), init=0)


"""CPU ProcessModels of slipsnn's Lava Processes (``fixed_pt``: bit-exact integers; ``floating_pt``).

The neuron update is ``slipsnn.toolchain.ir.neurons.if_step``, the simulator's own step, called here on
numpy arrays (torch is not used inside Lava's forked model processes).
Imports are absolute: Lava executes this file outside its package while it looks for models.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.conv.models import AbstractPyConvModel
from lava.proc.conv.process import Conv
from lava.proc.conv.utils import signed_clamp

from slipsnn.toolchain.ir.formats import STATE_SHIFT
from slipsnn.toolchain.ir.neurons import if_step
from slipsnn.toolchain.backends.lava.procs.process import FrameSource, SoftResetIF, SpikeDelay


class _AbstractSoftResetIFModel(PyLoihiProcessModel):
    """Shared ``run_spk``: restart, update, send, log. Subclasses fix the dtype and the clip."""

    state_dtype: type = np.int64
    clip: bool = True

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.spiking: bool = proc_params["spiking"]
        self.reset_interval: int = proc_params["reset_interval"]
        self.reset_offset: int = proc_params["reset_offset"]
        self.log_steps: int = proc_params["log_steps"]

    def run_spk(self) -> None:
        a = self.a_in.recv().astype(self.state_dtype)
        if self.reset_interval > 0 and \
                self.time_step % self.reset_interval == self.reset_offset % self.reset_interval:
            self.v[:] = self.v_init
        dt = self.state_dtype
        bias_state = self.bias_mant.astype(dt) * dt(2) ** dt(self.bias_exp[0])
        vth_state = dt(self.vth[0]) * dt(1 << STATE_SHIFT)
        s, v = if_step(self.v.astype(dt), a * dt(1 << STATE_SHIFT) + bias_state, vth_state, self.spiking, self.clip)
        self.v[:] = v
        self.s_out.send(s if self.spiking else v)
        if self.log_steps:
            k = (self.time_step - 1) % self.log_steps
            self.spike_log[k] = s.sum()
            self.synop_log[:, k] = (self.fanout * s).reshape(self.fanout.shape[0], -1).sum(axis=1)
            if not self.spiking:
                self.v_log[..., k] = v


@implements(proc=SoftResetIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySoftResetIFModelFixed(_AbstractSoftResetIFModel):
    """Bit-exact integer model: int64 arithmetic, 24-bit saturating membrane, int32 storage."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v_init: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=3)
    fanout: np.ndarray = LavaPyType(np.ndarray, np.int64)
    spike_log: np.ndarray = LavaPyType(np.ndarray, np.int64)
    synop_log: np.ndarray = LavaPyType(np.ndarray, np.int64)
    v_log: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)


@implements(proc=SoftResetIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySoftResetIFModelFloat(_AbstractSoftResetIFModel):
    """The same equations in float64, for prototyping: the membrane is NOT clipped to 24 bits, so it
    equals the fixed-point model exactly until |v| would exceed 2²³ − 1."""

    state_dtype = np.float64
    clip = False

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    v_init: np.ndarray = LavaPyType(np.ndarray, float)
    vth: np.ndarray = LavaPyType(np.ndarray, float)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, float)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, float)
    fanout: np.ndarray = LavaPyType(np.ndarray, float)
    spike_log: np.ndarray = LavaPyType(np.ndarray, float)
    synop_log: np.ndarray = LavaPyType(np.ndarray, float)
    v_log: np.ndarray = LavaPyType(np.ndarray, float)


class _AbstractFrameSourceModel(PyLoihiProcessModel):
    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.frames: np.ndarray = proc_params["frames"]
        self.timesteps: int = proc_params["timesteps"]
        self.log_steps: int = proc_params["log_steps"]
        self.zeros = np.zeros(self.frames.shape[1:], dtype=self.out_dtype)

    def run_spk(self) -> None:
        n = (self.time_step - 1) // self.timesteps
        x = self.frames[n].astype(self.out_dtype) if n < len(self.frames) else self.zeros
        self.s_out.send(x)
        if self.log_steps:
            events = (x != 0).astype(np.int64)
            self.synop_log[:, (self.time_step - 1) % self.log_steps] = \
                (self.fanout * events).reshape(self.fanout.shape[0], -1).sum(axis=1)


@implements(proc=FrameSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFrameSourceModelFixed(_AbstractFrameSourceModel):
    """Sends the frames as int32 graded spikes."""

    out_dtype = np.int32
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    fanout: np.ndarray = LavaPyType(np.ndarray, np.int64)
    synop_log: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=FrameSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFrameSourceModelFloat(_AbstractFrameSourceModel):
    """Sends the frames as float graded spikes."""

    out_dtype = np.float64
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    fanout: np.ndarray = LavaPyType(np.ndarray, float)
    synop_log: np.ndarray = LavaPyType(np.ndarray, float)


@implements(proc=SpikeDelay, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PySpikeDelayModel(PyLoihiProcessModel):
    """Ring buffer of ``delay`` frames: sends what it received ``delay`` steps ago."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    buffer: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def run_spk(self) -> None:
        x = self.s_in.recv()
        k = (self.time_step - 1) % self.buffer.shape[0]
        self.s_out.send(self.buffer[k].copy())
        self.buffer[k] = x


def conv_kernel_matrices(weight: np.ndarray, groups: int) -> list[np.ndarray]:
    """Per group, the (C_in/groups · kW · kH, C_out/groups) float64 matrix of a Lava conv kernel.

    ``weight`` is Lava's (C_out, kW, kH, C_in/groups) kernel of a true convolution; flipping it back
    gives the correlation kernel that multiplies the input windows.
    """
    corr = np.asarray(weight, dtype=np.float64)[:, ::-1, ::-1, :]
    o_group = corr.shape[0] // groups
    return [np.ascontiguousarray(corr[g * o_group:(g + 1) * o_group].transpose(0, 3, 1, 2).reshape(o_group, -1).T)
            for g in range(groups)]


def conv_lava_layout(x: np.ndarray, weight: np.ndarray, stride: tuple[int, int], padding: tuple[int, int],
                     dilation: tuple[int, int], groups: int,
                     matrices: list[np.ndarray] | None = None) -> np.ndarray:
    """What ``lava.proc.conv.utils.conv`` computes, vectorized: a true 2-D convolution in Lava's layout.

    Args:
        x: (W, H, C_in) input.
        weight: (C_out, kW, kH, C_in/groups) Lava kernel (spatially flipped relative to torch).
        stride, padding, dilation: (W, H) order.
        groups: convolution groups.
        matrices: ``conv_kernel_matrices(weight, groups)``, when already computed.

    Returns:
        float64 (W_out, H_out, C_out). The products and sums are integers below 2⁵³ for 24-bit inputs and
        8-bit weights (|x·w| < 2³³, fewer than 2²⁰ terms), so float64 matrix products are exact and fast.
    """
    c_out, kw, kh, c_group = weight.shape
    mats = conv_kernel_matrices(weight, groups) if matrices is None else matrices
    xp = np.pad(x.astype(np.float64), ((padding[0], padding[0]), (padding[1], padding[1]), (0, 0)))
    win = sliding_window_view(xp, ((kw - 1) * dilation[0] + 1, (kh - 1) * dilation[1] + 1), axis=(0, 1))
    win = win[::stride[0], ::stride[1], :, ::dilation[0], ::dilation[1]]     # (W_out, H_out, C_in, kW, kH)
    w_out, h_out = win.shape[:2]
    o_group = c_out // groups
    out = np.empty((w_out, h_out, c_out), dtype=np.float64)
    for g, mat in enumerate(mats):
        cols = win[:, :, g * c_group:(g + 1) * c_group].reshape(w_out * h_out, c_group * kw * kh)
        out[:, :, g * o_group:(g + 1) * o_group] = (cols @ mat).reshape(w_out, h_out, o_group)
    return out


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyConvModelFixedVectorized(AbstractPyConvModel):
    """Lava's stock fixed-point ``Conv`` model (``PyConvModelFixed``) with its scipy loop over channel pairs
    replaced by one matrix product per group: the same integers (then wrapped to 24 bits), ~30× faster.

    Differs only where Lava's own model is undefined: a sum beyond the int32 range, which Lava casts
    to int32 before wrapping, is wrapped exactly here.
    """

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    a_buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    weight: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.matrices: list[np.ndarray] | None = None   # built from the weight Var at the first step

    def run_spk(self) -> None:
        self.a_out.send(self.a_buf)
        x = self.s_in.recv()
        if self.num_message_bits.item() == 0:
            x = x.astype(bool)
        groups = int(self.groups[0])
        if self.matrices is None:
            self.matrices = conv_kernel_matrices(self.weight, groups)
        a = conv_lava_layout(x, self.weight, tuple(int(v) for v in self.stride), tuple(int(v) for v in self.padding),
                             tuple(int(v) for v in self.dilation), groups, self.matrices)
        self.a_buf = signed_clamp(np.rint(a).astype(np.int64), bits=24)


FIXED_PT_MODELS = {SoftResetIF: PySoftResetIFModelFixed, FrameSource: PyFrameSourceModelFixed,
                   SpikeDelay: PySpikeDelayModel}
FLOATING_PT_MODELS = {SoftResetIF: PySoftResetIFModelFloat, FrameSource: PyFrameSourceModelFloat,
                      SpikeDelay: PySpikeDelayModel}

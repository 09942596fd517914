"""The Lava backends: slipsnn's neuron process against hand-computed traces, the streamed Lava network
bit for bit against ``simulate_int``, the ``loihi`` pre-flight message, lazy imports, and that no Lava
OS process survives a failure or Ctrl-C.

Tests marked ``lava`` start Lava runtimes (one OS process per leaf process; a few seconds each).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from slipsnn.toolchain.errors import BackendUnavailable, LavaError
from slipsnn.toolchain.ir.formats import STATE_MAX
from slipsnn.toolchain.ir.integer import IntLayer, IntNetwork, IntSynapse
from slipsnn.toolchain.ir.neurons import IntIFParams, int_if_step
from slipsnn.toolchain.backends.result import SimResult
from slipsnn.toolchain.backends.simulator import simulate_int

pytest.importorskip("lava.magma.core.process.process", reason="Lava is not installed")

from slipsnn.toolchain.backends.lava import runtime as lava_runtime
from slipsnn.toolchain.backends.lava.runtime import run_lava, run_lava_naive
from factories import assert_same_result, chain_net, even_weights, live_children, random_pixels, residual_net


# --------------------------------------------------------------------------------------------------
# helpers


# --------------------------------------------------------------------------------------------------
# networks


# --------------------------------------------------------------------------------------------------
# pure layout checks (no Lava processes)

@pytest.mark.parametrize("geometry", [
    dict(stride=(2, 2), padding=(1, 1), dilation=(1, 1), groups=1, k=(3, 3), shape=(3, 7, 10)),
    dict(stride=(2, 1), padding=(0, 2), dilation=(1, 2), groups=2, k=(3, 2), shape=(4, 9, 6)),
    dict(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=4, k=(1, 1), shape=(4, 5, 3)),
    dict(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=256, k=(1, 1), shape=(256, 2, 3)),  # regrouped
])
def test_conv_layout_computes_torch_conv2d(geometry: dict) -> None:
    """Lava's stock conv and slipsnn's vectorized model, fed ``conv_params``, compute torch ``conv2d``."""
    from lava.proc.conv.utils import conv as lava_conv

    from slipsnn.toolchain.backends.lava.procs.models import conv_lava_layout

    rng = np.random.default_rng(0)
    c, h, w = geometry["shape"]
    g = geometry["groups"]
    syn = IntSynapse(-1, "conv", even_weights(rng, -128, 128, 6 if g < 4 else c, c // g, *geometry["k"]),
                     stride=geometry["stride"], padding=geometry["padding"], dilation=geometry["dilation"], groups=g)
    x = rng.integers(0, 256, (c, h, w))
    ref = torch.nn.functional.conv2d(torch.as_tensor(x[None], dtype=torch.float64),
                                     torch.as_tensor(syn.weight, dtype=torch.float64), stride=syn.stride,
                                     padding=syn.padding, dilation=syn.dilation, groups=g)[0].numpy()
    p = lava_runtime.conv_params(syn)
    assert p["groups"] <= 127, "Lava stores groups as int8"
    kernel = p["weight"].shape[1:3]
    stock = lava_conv(lava_runtime.to_lava_layout(x).astype(np.int32), p["weight"], kernel, p["stride"],
                      p["padding"], p["dilation"], p["groups"])
    fast = conv_lava_layout(lava_runtime.to_lava_layout(x), p["weight"], p["stride"], p["padding"], p["dilation"],
                            p["groups"])
    want = lava_runtime.to_lava_layout(ref)
    assert stock.shape == want.shape and (stock == want).all(), f"{np.argwhere(stock != want)[:5]}"
    assert (fast == want).all(), f"{np.argwhere(fast != want)[:5]}"


def test_dense_params_survive_lava_weight_clipping() -> None:
    """An all-non-positive matrix holding −256 is clipped to −255 by Lava's Dense; ``dense_params`` avoids it."""
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    rng = np.random.default_rng(1)
    s = rng.integers(0, 2, 30)
    inhibitory = -(rng.integers(0, 129, (7, 30)) * 2)
    inhibitory[0, 0] = -256
    cases = [(inhibitory, 1), (np.full((3, 30), -256), -1), (even_weights(rng, -128, 128, 7, 30), -2),
             (even_weights(rng, 0, 128, 7, 30), 0)]
    for weight, exp in cases:
        syn = IntSynapse(0, "dense", weight.astype(np.int32), weight_exp=exp)
        w, e = lava_runtime.dense_params(syn)
        mode = determine_sign_mode(w)
        lava_w = truncate_weights(clip_weights(w, mode, num_bits=8), mode, num_weight_bits=8)
        acc = lava_w[:, s.astype(bool)].sum(axis=1)
        got = np.left_shift(acc, e) if e > 0 else np.right_shift(acc, -e)
        want = (syn.weight.astype(np.int64) @ s) << exp if exp >= 0 else (syn.weight.astype(np.int64) @ s) >> -exp
        assert (got == want).all(), f"weight_exp {exp}: {np.argwhere(got != want)[:5]}"


# --------------------------------------------------------------------------------------------------
# the neuron process against hand-computed traces

# SoftResetIF A: vth 2 (128 state units), bias_exp 2, restarts at steps 1 and 5 (interval 4, offset 1).
#   neuron 0: v_init 60, bias 1 (4/step): exactly 128 at step 1 fires (≥), 196 → remainder 68, restart.
#   neuron 1: v_init 0: ±2²⁴ inputs saturate at ±(2²³ − 1) (fires from the clipped value).
#   neuron 2: v_init 79, bias −4 (−16/step): 127 stays below, restart from 15 → 63.
A_INPUT = np.array([[1, 3, 0, 0, 0, 2, 0, 0],
                    [2 ** 17, -2 ** 18, 0, 0, 2 ** 16, 2 ** 16, 0, 0],
                    [1, 0, 1, 0, 0, 0, 0, 3]])
A_SPIKES = np.array([[1, 1, 0, 0, 0, 1, 0, 0],
                     [1, 0, 0, 0, 1, 1, 1, 1],
                     [0, 0, 1, 0, 0, 0, 0, 1]])
A_V = np.array([[0, 68, 72, 76, 64, 68, 72, 76],
                [2 ** 23 - 1 - 128, -(2 ** 23 - 1), -(2 ** 23 - 1), -(2 ** 23 - 1), 2 ** 22 - 128,
                 2 ** 23 - 256, 2 ** 23 - 384, 2 ** 23 - 512],
                [127, 111, 31, 15, 63, 47, 31, 79]])
A_FANOUT = np.array([1, 2, 3])
# ACCUMULATE B: bias_exp 0, restarts at steps 2, 5, 8 (interval 3, offset 2); sends v every step.
#   neuron 0: v_init 320, bias 3.   neuron 1: v_init 0, bias −1, saturates at both ends.
B_INPUT = np.array([[1, 2, 0, -1, 0, 0, 1, 0],
                    [0, 2 ** 17, 2 ** 17, 0, -2 ** 18, 0, 0, 0]])
B_V = np.array([[387, 451, 454, 393, 323, 326, 393, 323],
                [-1, 2 ** 23 - 1, 2 ** 23 - 1, 2 ** 23 - 2, -(2 ** 23 - 1), -(2 ** 23 - 1), -(2 ** 23 - 1), -1]])


def _reference_trace(inputs: np.ndarray, v_init: np.ndarray, bias_state: np.ndarray, vth: int, spiking: bool,
                     interval: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """The same trace from ``neurons.int_if_step`` (the simulator's step), with the per-sample restart."""
    p = IntIFParams(torch.as_tensor(bias_state), vth << 6, spiking)
    v = torch.as_tensor(v_init, dtype=torch.int64)
    spikes, vs = [], []
    for t in range(inputs.shape[1]):
        if (t + 1) % interval == offset % interval:
            v = torch.as_tensor(v_init, dtype=torch.int64)
        s, v = int_if_step(v, torch.as_tensor(inputs[:, t], dtype=torch.int64), p)
        spikes.append(s.numpy())
        vs.append(v.numpy())
    return np.stack(spikes, 1), np.stack(vs, 1)


def test_hand_traces_match_int_if_step() -> None:
    s, v = _reference_trace(A_INPUT, np.array([60, 0, 79]), np.array([4, 0, -16]), 2, True, 4, 1)
    assert (s == A_SPIKES).all() and (v == A_V).all()
    _, v = _reference_trace(B_INPUT, np.array([320, 0]), np.array([3, -1]), 0, False, 3, 2)
    assert (v == B_V).all()
    assert np.abs(A_V).max() <= STATE_MAX and np.abs(B_V).max() == STATE_MAX


def test_numpy_step_equals_torch_step() -> None:
    """``neurons.if_step`` on numpy (the Lava model) equals ``int_if_step`` on torch (the simulator),
    including both clips and v = θ exactly."""
    from slipsnn.toolchain.ir.neurons import if_step

    rng = np.random.default_rng(2)
    v = rng.integers(-STATE_MAX, STATE_MAX + 1, 4000)
    a = rng.integers(-2 ** 18, 2 ** 18, 4000)
    a[:500] = 0
    bias = rng.integers(-2 ** 12, 2 ** 12, 4000) << 7
    vth = 1000 << 6
    v[:500] = vth - bias[:500]                                   # lands exactly on the threshold
    assert (np.abs(v + (a << 6) + bias) > STATE_MAX).sum() > 100    # both clips are exercised
    for spiking in (True, False):
        s, v_next = if_step(v, (a << 6) + bias, vth, spiking, clip=True)
        params = IntIFParams(torch.as_tensor(bias), vth, spiking)
        s_ref, v_ref = (x.numpy() for x in int_if_step(torch.as_tensor(v), torch.as_tensor(a), params))
        assert (s == s_ref).all() and (v_next == v_ref).all(), f"{np.argwhere(v_next != v_ref)[:5]}"
        assert s[:500].all() == spiking                               # v = θ fires (≥)


@pytest.mark.lava
@pytest.mark.parametrize("tag", ["fixed_pt", "floating_pt"])
def test_soft_reset_if_process_follows_hand_trace(tag: str) -> None:
    """Threshold at exactly v = vth·64, subtraction remainder, v_init, bias·2^exp, the 24-bit clip, the
    per-sample restart, the spike/synop logs, and ACCUMULATE's graded output (floating_pt: no clip)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from slipsnn.toolchain.backends.lava.procs.models import FIXED_PT_MODELS, FLOATING_PT_MODELS
    from slipsnn.toolchain.backends.lava.procs.process import SoftResetIF

    steps = A_INPUT.shape[1]
    models = FIXED_PT_MODELS if tag == "fixed_pt" else FLOATING_PT_MODELS
    cfg = Loihi2SimCfg(select_tag=tag, exception_proc_model_map=dict(models))

    def run(inputs: np.ndarray, **params) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Drive one neuron process from a RingBuffer step by step; (sent values, v after each step, logs)."""
        with lava_runtime._lava_root_logging():
            source = Source(data=inputs.astype(np.int32))
            neuron = SoftResetIF(shape=(len(inputs),), log_steps=steps, **params)
            sink = Sink(shape=(len(inputs),), buffer=steps)
            source.s_out.connect(neuron.a_in)
            neuron.s_out.connect(sink.a_in)
        v = []
        try:
            for t in range(steps):
                neuron.run(RunSteps(1), cfg if t == 0 else None)
                v.append(neuron.v.get())
            logs = {name: getattr(neuron, name).get() for name in ("spike_log", "synop_log", "v_log")}
            return sink.data.get(), np.stack(v, 1), logs
        finally:
            lava_runtime.shutdown(neuron)

    spikes, v_a, logs_a = run(A_INPUT, vth=2, v_init=np.array([60, 0, 79]), bias_mant=np.array([1, 0, -4]),
                              bias_exp=2, reset_interval=4, reset_offset=1, fanout=A_FANOUT[None])
    v_b, _, logs_b = run(B_INPUT, vth=0, v_init=np.array([320, 0]), bias_mant=np.array([3, -1]), bias_exp=0,
                         spiking=False, reset_interval=3, reset_offset=2)
    rows = [0, 1, 2] if tag == "fixed_pt" else [0, 2]          # floating_pt does not saturate neuron 1
    assert (spikes[rows] == A_SPIKES[rows]).all(), f"{np.argwhere(spikes[rows] != A_SPIKES[rows])[:5]}"
    assert (v_a[rows] == A_V[rows]).all(), f"{np.argwhere(v_a[rows] != A_V[rows])[:5]}"
    b_rows = [0, 1] if tag == "fixed_pt" else [0]
    assert (v_b[b_rows] == B_V[b_rows]).all() and (logs_b["v_log"][b_rows] == B_V[b_rows]).all()
    if tag == "fixed_pt":
        assert (logs_a["spike_log"] == A_SPIKES.sum(0)).all()
        assert (logs_a["synop_log"][0] == A_FANOUT @ A_SPIKES).all()
        assert not logs_b["spike_log"].any()
    else:
        assert v_a[1, 0] == 2 ** 23 - 128, "floating_pt keeps the unclipped membrane"


# --------------------------------------------------------------------------------------------------
# the whole network, bit for bit against simulate_int

def _check_activity(ref: SimResult) -> None:
    """Guard against a vacuous comparison: every spiking layer fires and the logits move."""
    assert (ref.spikes[:, :-1].sum(axis=(0, 2)) > 0).all(), ref.spikes.sum(axis=(0, 2))
    assert len(np.unique(ref.logits)) > 10


@pytest.mark.lava
@pytest.mark.parametrize("make, samples, chunk", [(chain_net, 6, 4), (residual_net, 5, 2)])
def test_streamed_lava_equals_simulate_int(make, samples: int, chunk: int) -> None:
    """Several samples streamed through one runtime (chunk boundaries inside samples and in the tail)."""
    net = make()
    pixels = random_pixels(samples, net.input_shape, seed=samples)
    ref = simulate_int(net, pixels, net.timesteps)
    _check_activity(ref)
    got, timing = run_lava(net, pixels, net.timesteps, chunk_samples=chunk)
    assert_same_result(got, ref)
    assert timing["steps"] == samples * net.timesteps + len(net.layers)
    assert set(timing) >= {"compile_s", "run_s", "steps", "samples_per_s", "steps_per_s"}


@pytest.mark.lava
def test_a_saturating_first_layer_equals_simulate_int() -> None:
    """A layer fed by the image alone whose membrane leaves 24 bits within T: Lava saturates it, the fast backend
    runs it in float32 with the clamp (one step's proof), and both agree with the unbounded neuron's spikes."""
    from slipsnn.toolchain.backends.exactness import prove_exactness
    from slipsnn.toolchain.conversion.overflow import prove_no_overflow
    big = IntLayer("big", (3,), (IntSynapse(-1, "dense", np.array([[254, 254], [-256, -256], [254, -256]])),),
                   "IF_SOFT", 1000, np.zeros(3, np.int32), 0, 0, 1000.0)
    out = IntLayer("o", (2,), (IntSynapse(0, "dense", np.array([[2, -2, 4], [-2, 2, 2]])),), "ACCUMULATE", 0,
                   np.zeros(2, np.int32), 0, 0, 1.0)
    net = IntNetwork((1, 1, 2), (big, out), timesteps=8, max_timesteps=8)
    bound = prove_no_overflow(net)[0]
    assert bound.saturates and bound.raw_state > 2 * STATE_MAX
    first = prove_exactness(net, 8)[0]
    assert first.float32 and first.saturates
    pixels = torch.tensor([[255, 255], [255, 0], [0, 255], [128, 200], [0, 0]], dtype=torch.float32).reshape(5, 1, 1, 2)
    ref = simulate_int(net, pixels, 8)
    got, _ = run_lava(net, pixels, 8, chunk_samples=2)
    assert_same_result(got, ref)
    # the unbounded neuron (no saturation) spikes alike: neuron 0 fires every step on bright pixels, 1 never
    drive = (pixels.reshape(5, 2).numpy().astype(np.int64) @ np.array([[254, -256, 254], [254, -256, -256]])) << 6
    v, spikes = np.zeros((5, 3), np.int64), np.zeros((5, 3), np.int64)
    for _ in range(8):
        v = v + drive
        s = (v >= 1000 * 64).astype(np.int64)
        v, spikes = v - s * 1000 * 64, spikes + s
    assert np.abs(v).max() > STATE_MAX and np.array_equal(spikes.sum(1), ref.spikes[:, 0, :].sum(1))


@pytest.mark.lava
def test_stock_lava_conv_model_equals_simulate_int() -> None:
    """The same comparison with Lava's own (slow) CPU Conv model instead of the vectorized one."""
    net = chain_net()
    pixels = random_pixels(2, net.input_shape, seed=11)
    got, _ = run_lava(net, pixels, net.timesteps, stock_conv=True)
    assert_same_result(got, simulate_int(net, pixels, net.timesteps))


def wide_identity_net(widths: tuple[int, ...] = (128, 256, 512), hw: int = 2, seed: int = 5) -> IntNetwork:
    """Per width C: a 1×1 entry conv, then conv 3×3 → conv 3×3 + the identity shortcut from the entry
    (depthwise 1×1, groups = C, beyond Lava's int8 ``groups``), on a tiny hw × hw image; dense output."""
    rng = np.random.default_rng(seed)
    layers: list[IntLayer] = []

    def add(name: str, c: int, synapses: tuple[IntSynapse, ...], vth: int) -> int:
        layers.append(IntLayer(name, (c, hw, hw), synapses, "IF_SOFT", vth, rng.integers(-8, 24, c), 3,
                               64 * vth // 2, float(vth)))
        return len(layers) - 1

    c_prev = 3
    for c in widths:
        entry = add(f"entry{c}", c, (IntSynapse(len(layers) - 1, "conv", even_weights(rng, -3, 5, c, c_prev, 1, 1)),),
                    20 if layers else 800)
        conv = lambda src: IntSynapse(src, "conv", even_weights(rng, -4, 5, c, c, 3, 3), padding=(1, 1))  # noqa: E731
        mid = add(f"conv1_{c}", c, (conv(entry),), c)
        add(f"conv2_{c}", c, (conv(mid), IntSynapse(entry, "conv", np.full((c, 1, 1, 1), 128, np.int32), groups=c)), c)
        c_prev = c
    layers.append(IntLayer("out", (10,), (IntSynapse(len(layers) - 1, "dense",
                                                     even_weights(rng, -60, 60, 10, c_prev * hw * hw)),),
                           "ACCUMULATE", 0, np.zeros(10, np.int32), 0, 0, 10.0))
    return IntNetwork((3, hw, hw), layers, timesteps=2, max_timesteps=8)


@pytest.mark.lava
def test_identity_shortcuts_of_128_to_512_channels_equal_simulate_int() -> None:
    """Depthwise shortcuts with groups = 128, 256, 512 (Lava's int8 Var would wrap them to −128, 0, 0) are
    re-expressed exactly: Lava equals ``simulate_int`` bit for bit, and the shortcuts do carry signal."""
    net = wide_identity_net()
    pixels = random_pixels(3, net.input_shape, seed=7)
    ref = simulate_int(net, pixels, net.timesteps)
    _check_activity(ref)
    cut = IntNetwork(net.input_shape, tuple(
        IntLayer(L.name, L.shape, L.synapses[:1], L.neuron, L.threshold, L.bias, L.bias_exp, L.v_init, L.scale)
        for L in net.layers), net.timesteps, net.max_timesteps)
    without = simulate_int(cut, pixels, net.timesteps)
    for i in (2, 5, 8):   # the conv2 layers would fire differently without their shortcut
        assert (without.spikes[:, i] != ref.spikes[:, i]).any(), net.layers[i].name
    got, _ = run_lava(net, pixels, net.timesteps, chunk_samples=2)
    assert_same_result(got, ref)


@pytest.mark.lava
def test_lowered_digits_model_equals_simulate_int() -> None:
    """The real pipeline (build → lower → quantize) on a tiny digits CNN; the naive per-sample run agrees."""
    from slipsnn.toolchain.ir.activation import preset_params
    from slipsnn.toolchain.conversion.lower import lower
    from slipsnn.toolchain.ann.models import ModelConfig, build_model
    from slipsnn.toolchain.conversion.quantize import quantize

    torch.manual_seed(0)
    cfg = ModelConfig("digits_cnn", 10, (1, 8, 8), (0.3,), (0.4,), width=0.25)
    net = quantize(lower(build_model(cfg, preset_params("slip", L=4), theta=1.0), cfg.input_shape))
    pixels = random_pixels(5, cfg.input_shape, seed=5)
    ref = simulate_int(net, pixels, 4)
    got, _ = run_lava(net, pixels, 4, chunk_samples=2)
    assert_same_result(got, ref)
    naive, timing = run_lava_naive(net, pixels[:2], 4)
    assert_same_result(naive, SimResult(ref.logits[:2], ref.spikes[:2], ref.synops[:2], ref.layer_names))
    assert timing["steps"] == 2 * (4 + len(net.layers))


# --------------------------------------------------------------------------------------------------
# backends, imports and cleanup

def test_loihi_backend_explains_what_is_missing() -> None:
    """Without lava-loihi: one sentence naming what is missing and suggesting loihi_sim, before compiling."""
    missing = lava_runtime.check_loihi2()
    if not missing:
        pytest.skip("a Loihi 2 system is configured here")
    net = chain_net()
    with pytest.raises(BackendUnavailable) as info:
        run_lava(net, random_pixels(1, net.input_shape, 0), 3, hardware=True)
    msg = str(info.value)
    assert "lava-loihi" in msg and "loihi_sim" in msg and missing[0] in msg
    assert "\n" not in msg and ". " not in msg, msg
    assert "CLoihiProcessModel" not in msg


def test_missing_lava_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lava.magma.core.run_configs", None)
    net = chain_net()
    with pytest.raises(BackendUnavailable, match=r"pip install 'slipsnn\[lava\]'"):
        run_lava(net, random_pixels(1, net.input_shape, 0), 3)


def test_importing_the_toolchain_does_not_import_lava() -> None:
    code = ("import sys, slipsnn.toolchain.backends.lava.runtime, slipsnn.toolchain.backends.registry\n"
            "prefixes = ('lava.', 'slipsnn.toolchain.backends.lava.procs.models', 'slipsnn.toolchain.backends.lava.procs.process')\n"
            "bad = sorted(m for m in sys.modules if m == 'lava' or m.startswith(prefixes))\n"
            "assert not bad, bad\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.lava
@pytest.mark.parametrize("where", ["model", "host"])
def test_no_lava_process_survives_a_failing_run(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model process raising mid-run (Lava alone would wait forever) or the host failing between
    chunks: the error surfaces and every Lava OS process is gone."""
    from slipsnn.toolchain.backends.lava.procs import models

    if where == "model":
        step = models._AbstractSoftResetIFModel.run_spk

        def failing_step(self) -> None:
            if self.time_step > 5 and self.reset_offset == 3:     # layer 1's neuron
                raise ValueError("injected model failure\nsecond line")
            step(self)
        monkeypatch.setattr(models._AbstractSoftResetIFModel, "run_spk", failing_step)   # forked into the models
        expected = LavaError
    else:
        def failing_read(*args) -> None:
            raise ValueError("injected host failure")
        monkeypatch.setattr(lava_runtime, "_read_chunk", failing_read)
        expected = ValueError
    before = live_children()
    net = chain_net()
    with pytest.raises(expected, match="injected") as info:
        run_lava(net, random_pixels(8, net.input_shape, 1), net.timesteps, chunk_samples=2)
    assert live_children() <= before
    if where == "model":   # one line naming the process; the child's traceback is the cause
        assert str(info.value) == ("Lava process layer 1 ('conv1') neuron (SoftResetIF) failed: ValueError: "
                                   "injected model failure"), str(info.value)
        assert "failing_step" in str(info.value.__cause__)


@pytest.mark.lava
def test_ctrl_c_stops_the_runtime_and_its_processes() -> None:
    """SIGINT to the whole process group (what a terminal's Ctrl-C does) in the middle of a run."""
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from factories import chain_net, random_pixels
        from slipsnn.toolchain.backends.lava import runtime as lava_runtime
        read = lava_runtime._read_chunk
        def announce(*args):
            read(*args)
            print("chunk", flush=True)
        lava_runtime._read_chunk = announce
        net = chain_net()
        lava_runtime.run_lava(net, random_pixels(4000, net.input_shape, 0), net.timesteps, chunk_samples=2)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "chunk", proc.stderr.read()[-2000:]
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "KeyboardInterrupt" in err, err[-2000:]
    assert proc.returncode != 0
    deadline = time.monotonic() + 5.0          # Python's resource tracker exits shortly after its parent
    while (left := _live_in_group(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes of the interrupted run still alive: {left}"


def _live_in_group(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


@pytest.mark.lava
def test_cli_prints_a_dead_lava_process_as_one_error_line(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``slipsnn run --backend loihi_sim`` on a file whose Lava neuron fails: one ``Error:`` line naming the
    process and the cause, exit status 1, no traceback (``--debug`` shows the child's)."""
    from click.testing import CliRunner

    from slipsnn.exporters.netx import write_netx
    from slipsnn.toolchain import cli
    from slipsnn.toolchain.backends.lava.procs import models
    from factories import digits_net

    def failing_step(self) -> None:
        raise ZeroDivisionError("integer division or modulo by zero")
    monkeypatch.setattr(models._AbstractSoftResetIFModel, "run_spk", failing_step)   # forked into the models
    path = write_netx(digits_net(timesteps=2), tmp_path / "m.net")
    before = live_children()
    res = CliRunner().invoke(cli.main, ["run", str(path), "--backend", "loihi_sim", "--limit", "2"])
    assert res.exit_code == 1, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    assert lines[0].startswith("Error: Lava process layer ") and "neuron (SoftResetIF) failed: ZeroDivisionError: " \
        "integer division or modulo by zero" in lines[0], lines[0]
    debug = CliRunner().invoke(cli.main, ["run", str(path), "--backend", "loihi_sim", "--limit", "2", "--debug"])
    assert isinstance(debug.exception, LavaError) and "failing_step" in str(debug.exception.__cause__)
    assert live_children() <= before

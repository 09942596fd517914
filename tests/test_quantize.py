"""Quantization, the 24-bit overflow proof and the integer simulator, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from slipsnn.toolchain.ann.activations import SlipReLU
from slipsnn.toolchain.ir.activation import preset_params
from slipsnn.toolchain.errors import QuantizationError
from slipsnn.toolchain.ir.formats import INPUT_SOURCE, STATE_MAX, THRESHOLD_MAX, NeuronKind, SynapseKind
from slipsnn.toolchain.ir.integer import IntLayer, IntNetwork, IntSynapse
from slipsnn.toolchain.conversion.lower import lower
from slipsnn.toolchain.ann.models import BasicBlock, ModelConfig, build_model
from slipsnn.toolchain.conversion.overflow import layer_bounds, prove_no_overflow
from slipsnn.toolchain.conversion.quantize import QuantConfig, quantize
from slipsnn.toolchain.backends.simulator import simulate_float, simulate_int


def _two_layer(threshold: int = 10, weight: int = 4) -> IntNetwork:
    """Input (1,1,2) → 2 IF neurons (dense) → 1 accumulating output."""
    hidden = IntLayer("h", (2,), (IntSynapse(INPUT_SOURCE, SynapseKind.DENSE, np.array([[2, 0], [0, 2]])),),
                      NeuronKind.IF_SOFT, threshold=threshold, bias=np.array([1, 0]), bias_exp=6, v_init=5 * 64,
                      scale=float(threshold))
    out = IntLayer("o", (1,), (IntSynapse(0, SynapseKind.DENSE, np.array([[weight, -2]])),),
                   NeuronKind.ACCUMULATE, threshold=0, bias=np.array([0]), bias_exp=0, v_init=0, scale=1.0)
    return IntNetwork((1, 1, 2), (hidden, out), timesteps=3, max_timesteps=3)


def test_two_layer_network_spikes_as_computed_by_hand() -> None:
    # pixels (3, 1): neuron 0 gets 2·3 + bias 1 = 7 per step, neuron 1 gets 2·1 = 2; threshold 10, v(0) = 5
    #   neuron 0: 5+7=12 ≥ 10 → spike, 2 | 2+7=9 → no | 9+7=16 → spike, 6      spikes 1,0,1
    #   neuron 1: 5+2=7 | 9 | 11 → spike, 1                                       spikes 0,0,1
    # output (weight units): t1: 4·1 = 4; t2: 4 + 0 = 4; t3: 4 + 4 − 2 = 6
    res = simulate_int(_two_layer(), torch.tensor([[[[3.0, 1.0]]]]), 3)
    assert res.spikes[0, 0].tolist() == [1, 0, 2]
    assert np.array_equal(res.logits[0, :, 0], np.array([4, 4, 6]) * 64 / 64.0)
    # synaptic events: the two non-zero pixels drive one synapse each every step; each hidden spike
    # of neuron 0 drives 1 synapse, of neuron 1 one synapse
    assert res.synops[0, 0].tolist() == [2, 2, 2] and res.synops[0, 1].tolist() == [1, 0, 2]


def _big_layer(source: int, weight: np.ndarray) -> IntLayer:
    return IntLayer("big", (1,), (IntSynapse(source, SynapseKind.DENSE, weight),), NeuronKind.IF_SOFT,
                    threshold=1000, bias=np.array([0]), bias_exp=0, v_init=0, scale=1000.0)


def _out_layer(source: int) -> IntLayer:
    return IntLayer("o", (1,), (IntSynapse(source, SynapseKind.DENSE, np.array([[2]])),), NeuronKind.ACCUMULATE,
                    threshold=0, bias=np.array([0]), bias_exp=0, v_init=0, scale=1.0)


def test_overflow_proof_catches_a_constructed_overflowing_layer() -> None:
    ok = _two_layer()
    assert all(b.ok for b in prove_no_overflow(ok))
    # a layer fed by spikes of 256 neurons through weights 254: M = 256·254·64 = 4.16e6 state units per step;
    # threshold 1000 (×64) is crossed at most once a step, so over 8 steps v can climb past 2²³
    relay = IntLayer("relay", (256,), (IntSynapse(INPUT_SOURCE, SynapseKind.DENSE, np.full((256, 2), 2)),),
                     NeuronKind.IF_SOFT, threshold=10, bias=np.zeros(256, np.int64), bias_exp=0, v_init=0, scale=10.0)
    big = _big_layer(0, np.full((1, 256), 254))
    net = IntNetwork((1, 1, 2), (relay, big, _out_layer(1)), timesteps=1, max_timesteps=8)
    with pytest.raises(QuantizationError, match=r"layer 1 \('big'\) can overflow its 24-bit membrane within 8 steps"):
        prove_no_overflow(net)
    # after t steps u ≤ θ + M + (t−1)(M − θ)
    m, theta = 256 * 254 * 64, 1000 * 64
    assert layer_bounds(big, 1, net.source_shape, 1).state == max(0, theta) + m
    assert layer_bounds(big, 1, net.source_shape, 8).state == theta + m + 7 * (m - theta)
    assert layer_bounds(big, 1, net.source_shape, 2).ok and not layer_bounds(big, 1, net.source_shape, 3).ok


def test_a_layer_fed_by_the_image_alone_is_bounded_over_one_step() -> None:
    """Its drive is the same at every step, so the saturation cannot change a spike: one step's bound, any T —
    unless the target wraps instead of saturating (stock CUBA)."""
    # weight 254 on 8-bit pixels: 2·254·255·64 = 8.29e6 state units per step; threshold 64000
    big = _big_layer(INPUT_SOURCE, np.array([[254, 254]]))
    net = IntNetwork((1, 1, 2), (big, _out_layer(0)), timesteps=1, max_timesteps=8)
    m, theta = 2 * 254 * 255 * 64, 1000 * 64
    bound = prove_no_overflow(net)[0]
    assert (bound.state, bound.raw_state) == (theta + m, theta + m + 7 * (m - theta))
    assert bound.ok and bound.saturates and bound.raw_state > STATE_MAX
    wraps = layer_bounds(big, 0, net.source_shape, 8, saturating=False)
    assert wraps.state == bound.raw_state and not wraps.ok
    # the claim itself, on the neuron step: saturated and unbounded membranes spike alike for every constant drive
    from slipsnn.toolchain.ir.neurons import if_step
    rng = np.random.default_rng(0)
    drive = np.concatenate([rng.integers(-m, m, 4000), [0, theta - 1, theta, theta + 1, m, -m]]).astype(np.int64)
    for v0 in (0, theta // 2, -theta // 2, theta - 1):
        v_sat = v_raw = np.full(drive.shape, v0, np.int64)
        peak = 0
        for _ in range(64):
            s_sat, v_sat = if_step(v_sat, drive, theta, True, clip=True)
            s_raw, v_raw = if_step(v_raw, drive, theta, True, clip=False)
            assert np.array_equal(s_sat, s_raw)
            peak = max(peak, int(np.abs(v_raw).max()))
        assert peak > 10 * STATE_MAX   # the unbounded membrane did leave the 24-bit range


def test_the_first_layer_keeps_its_precision_at_long_horizons() -> None:
    """The horizon no longer shrinks the first layer's scale (slipsnn's saturating neuron); the stock CUBA
    export, whose membrane wraps, keeps the T-step bound."""
    snn = lower(_small_model(0), (1, 6, 6))
    short, long = (quantize(snn, QuantConfig(timesteps=1, max_timesteps=t)) for t in (1, 64))
    assert long.layers[0].scale == short.layers[0].scale
    cuba = [quantize(snn, QuantConfig(timesteps=1, max_timesteps=t, saturating_membrane=False)) for t in (1, 64)]
    assert cuba[1].layers[0].scale < cuba[0].layers[0].scale
    assert long.meta["quantization"][0]["limited_by"] != "membrane"


def test_running_beyond_the_proven_horizon_is_refused() -> None:
    big = _two_layer(threshold=1, weight=254)
    assert prove_no_overflow(big, 3)
    long = IntNetwork(big.input_shape, big.layers, timesteps=1, max_timesteps=1)
    simulate_int(long, torch.zeros(1, 1, 1, 2), 3)   # the proof also holds for 3 steps: allowed
    with pytest.raises(QuantizationError, match="re-export with --max-timesteps"):
        simulate_int(long, torch.full((1, 1, 1, 2), 255.0), 4000)


def _small_model(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    act = lambda: SlipReLU(theta=1.0, L=4, a=0.5)  # noqa: E731
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), act(), BasicBlock(4, 4, 1, act), nn.AvgPool2d(2),
                          nn.Conv2d(4, 6, 3, padding=1), act(), nn.Flatten(), nn.Linear(6 * 3 * 3, 5))
    return model.eval()


def test_quantized_layers_fit_loihi_formats() -> None:
    snn = lower(_small_model(0), (1, 6, 6))
    net = quantize(snn, QuantConfig(timesteps=4))
    for fl, layer in zip(snn.layers, net.layers):
        for syn in layer.synapses:
            assert syn.weight.min() >= -256 and syn.weight.max() <= 254 and not (syn.weight % 2).any()
        assert 0 <= layer.threshold <= THRESHOLD_MAX and abs(layer.bias).max() <= 4095
        if layer.spiking:
            assert layer.threshold == layer.scale
            assert layer.v_init == round(fl.v_init * layer.scale * 64)
    assert all(b.ok for b in prove_no_overflow(net, 4))
    assert [r["margin_bits"] >= 0 for r in net.meta["quantization"]]
    # the identity shortcut (weight θ_in/θ_out = 1) may need parallel copies: their sum is the rounded weight
    block = net.layers[2]
    assert all(s.source == 0 for s in block.synapses[1:])
    total = sum(s.weight.astype(np.int64) for s in block.synapses[1:])
    assert np.array_equal(total // 2, np.round(snn.layers[2].synapses[1].weight * block.scale / 2))


@pytest.mark.parametrize("seed", [0, 1])
def test_integer_network_tracks_the_float_snn(seed: int) -> None:
    cfg = ModelConfig("digits_cnn", 10, (1, 8, 8), (0.3,), (0.4,), width=0.5)
    torch.manual_seed(seed)
    model = build_model(cfg, preset_params("slip", L=4), theta=1.0).eval()
    snn = lower(model, (1, 8, 8))
    net = quantize(snn, QuantConfig(timesteps=4, max_timesteps=4))   # the finest integers for T = 4
    pixels = torch.randint(0, 256, (64, 1, 8, 8)).float()
    f, i = simulate_float(snn, pixels, 4), simulate_int(net, pixels, 4)
    # integer rounding moves a few spikes; the totals agree to a few percent
    fs, is_ = f.spikes.sum((0, 2))[:-1], i.spikes.sum((0, 2))[:-1]
    assert np.all(np.abs(fs - is_) <= 0.1 * fs + 20), (fs, is_)


def test_integer_simulation_is_exact_and_batch_independent() -> None:
    net = quantize(lower(_small_model(2), (1, 6, 6)), QuantConfig(timesteps=3))
    pixels = torch.randint(0, 256, (10, 1, 6, 6)).float()
    a = simulate_int(net, pixels, 3, batch_size=10)
    b = simulate_int(net, pixels, 3, batch_size=3)
    assert np.array_equal(a.logits, b.logits) and np.array_equal(a.spikes, b.spikes)
    membrane = a.logits * net.layers[-1].scale * 64      # logits are the integer membrane / (64·scale)
    assert np.allclose(membrane, np.round(membrane), rtol=0, atol=1e-6)
    assert np.abs(membrane).max() <= STATE_MAX

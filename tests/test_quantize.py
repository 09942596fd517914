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


def test_overflow_proof_catches_a_constructed_overflowing_layer() -> None:
    ok = _two_layer()
    assert all(b.ok for b in prove_no_overflow(ok))
    # weight 254 on 8-bit pixels: 254·255 = 64770 weight units per step, ×64 = 4.1e6 state units;
    # threshold 131071 (×64 = 8.4e6) is only crossed every other step, so over 8 steps v climbs past 2²³
    big = IntLayer("big", (1,), (IntSynapse(INPUT_SOURCE, SynapseKind.DENSE, np.array([[254, 254]])),),
                   NeuronKind.IF_SOFT, threshold=1000, bias=np.array([0]), bias_exp=0, v_init=0, scale=1000.0)
    out = IntLayer("o", (1,), (IntSynapse(0, SynapseKind.DENSE, np.array([[2]])),), NeuronKind.ACCUMULATE,
                   threshold=0, bias=np.array([0]), bias_exp=0, v_init=0, scale=1.0)
    net = IntNetwork((1, 1, 2), (big, out), timesteps=1, max_timesteps=8)
    with pytest.raises(QuantizationError, match=r"layer 0 \('big'\) can overflow its 24-bit membrane within 8 steps"):
        prove_no_overflow(net)
    # per step 2·64770·64 = 8.29e6 state units; threshold 64000; after t steps u ≤ θ + M + (t−1)(M − θ)
    m, theta = 2 * 254 * 255 * 64, 1000 * 64
    assert layer_bounds(big, 0, net.source_shape, 1).state == max(0, theta) + m
    assert layer_bounds(big, 0, net.source_shape, 8).state == theta + m + 7 * (m - theta)
    assert layer_bounds(big, 0, net.source_shape, 1).ok and not layer_bounds(big, 0, net.source_shape, 2).ok


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

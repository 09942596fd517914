"""The layer-by-layer simulator against the step-by-step reference (``reference_simulator``, the simulator as it
was before issue 11), bit for bit: float32 where proven, the float64 fallback, merged copies, batching, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

import reference_simulator as ref
from factories import (assert_same_result, chain_net, even_weights, file_chain_net, file_residual_net, hand_net,
                       mixed_residual_net, random_pixels, residual_net)
from slipsnn.toolchain.backends.exactness import FLOAT32_EXACT, prove_exactness
from slipsnn.toolchain.backends.simulator import batch_bytes_per_sample, simulate_float, simulate_int
from slipsnn.toolchain.errors import SlipsnnError
from slipsnn.toolchain.ir.formats import STATE_MAX
from slipsnn.toolchain.ir.integer import IntLayer, IntNetwork, IntSynapse
from slipsnn.toolchain.kernels.device import resolve_device
from test_fuzz_netx import int_networks

FACTORIES = [chain_net, residual_net, file_chain_net, file_residual_net, mixed_residual_net, hand_net]


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("timesteps", [1, 3, 8])
def test_int_matches_reference(factory, timesteps: int) -> None:
    net = factory()
    pixels = random_pixels(13, net.input_shape, seed=timesteps)
    assert_same_result(simulate_int(net, pixels, timesteps, record_counts=True),
                       ref.simulate_int(net, pixels, timesteps))


def test_counts_match_reference() -> None:
    net, pixels = mixed_residual_net(), random_pixels(9, mixed_residual_net().input_shape, seed=1)
    got, want = simulate_int(net, pixels, 5, record_counts=True), ref.simulate_int(net, pixels, 5, record_counts=True)
    for layer, (a, b) in enumerate(zip(got.counts, want.counts)):
        assert (a == b).all(), f"layer {layer}: counts differ at {np.argwhere(a != b)[:5]}"


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_float64_everywhere_matches_reference(factory) -> None:
    """The fallback arithmetic alone (nothing proven for float32) is exact too."""
    net = factory()
    pixels = random_pixels(11, net.input_shape, seed=5)
    proofs = prove_exactness(net, 4, allow_float32=False)
    assert not any(p.float32 or any(s.float32 for s in p.synapses) for p in proofs)
    assert_same_result(simulate_int(net, pixels, 4, proofs=proofs), ref.simulate_int(net, pixels, 4))


def test_quantized_networks_are_proven_float32() -> None:
    """What ``quantize`` writes is proven overflow-free, so it runs entirely in float32 (the proofs are not vacuous);
    a factory layer runs in float32 exactly when its own bounds allow it."""
    from slipsnn.toolchain.conversion.quantize import QuantConfig, quantize
    net = quantize(_lowered_digits_cnn(), QuantConfig(timesteps=4, max_timesteps=8))
    for t in (1, 8):
        proofs = prove_exactness(net, t)
        assert all(p.float32 and all(s.float32 for s in p.synapses) for p in proofs)
    pixels = random_pixels(12, net.input_shape, seed=0)
    assert_same_result(simulate_int(net, pixels, 8), ref.simulate_int(net, pixels, 8))
    for factory in FACTORIES:
        for p in prove_exactness(factory(), 4):
            assert all(s.float32 == (s.abs_bound <= FLOAT32_EXACT and not s.wraps) for s in p.synapses)
            assert p.float32 == (p.state_bound <= STATE_MAX and p.drive_bound <= FLOAT32_EXACT), (factory.__name__, p.name)
    # chain_net's first layer (fed by the image alone) may saturate at T = 4, harmlessly: float32 with the clamp
    first = prove_exactness(chain_net(), 4)[0]
    assert first.saturates and first.float32 and first.raw_state_bound > STATE_MAX >= first.state_bound


def overflowing_net(seed: int = 0) -> IntNetwork:
    """Every fallback at once: a conv from 16 input channels whose accumulator reaches 144·254·255 > 2²⁴ (wraps,
    float64), a dense from the image with Σ|W|·255 > 2²⁴, parallel conv copies, a membrane that saturates."""
    rng = np.random.default_rng(seed)
    big = np.full((3, 16, 3, 3), 254, np.int32)
    big[1] = -256
    big[2] = even_weights(rng, -128, 127, 16, 3, 3)
    copy = even_weights(rng, -128, 127, 3, 16, 1, 1)
    layers = (
        IntLayer("first", (4, 5, 5), (IntSynapse(-1, "conv", even_weights(rng, -20, 20, 4, 16, 3, 3), padding=(1, 1)),),
                 "IF_SOFT", 3000, rng.integers(-300, 300, (4,)), 7, 0, 3000.0),
        IntLayer("wrap", (3, 5, 5), (IntSynapse(0, "conv", even_weights(rng, -128, 127, 3, 4, 3, 3), padding=(1, 1)),
                                     IntSynapse(-1, "conv", big, padding=(1, 1)),
                                     IntSynapse(-1, "conv", copy), IntSynapse(-1, "conv", copy)),
                 "IF_SOFT", 2000, rng.integers(-300, 300, (3,)), 7, 0, 2000.0),
        IntLayer("dense_in", (7,), (IntSynapse(1, "dense", even_weights(rng, -128, 127, 7, 75), weight_exp=3),
                                    IntSynapse(-1, "dense", np.full((7, 400), 254, np.int32), weight_exp=-3)),
                 "IF_SOFT", 3, rng.integers(-40, 40, (7,)), 7, 64 * 2, 3.0),
        IntLayer("out", (4,), (IntSynapse(2, "dense", np.full((4, 7), 254, np.int32), weight_exp=8),
                               IntSynapse(1, "dense", np.full((4, 75), 254, np.int32), weight_exp=8),
                               IntSynapse(1, "dense", np.full((4, 75), 254, np.int32), weight_exp=8)),
                 "ACCUMULATE", 0, rng.integers(-40, 40, (4,)), 7, 8_000_000, 1.0),
    )
    return IntNetwork((16, 5, 5), layers, timesteps=4, max_timesteps=8)


def test_unprovable_synapses_fall_back_alone() -> None:
    net = overflowing_net()
    proofs = prove_exactness(net, 8)
    _, wrap, dense_in, out = proofs
    assert [s.indices for s in wrap.synapses] == [(0,), (1,), (2, 3)]   # the wrapping conv stays alone
    assert wrap.synapses[1].wraps and not wrap.synapses[1].float32
    assert wrap.synapses[1].abs_bound == 16 * 9 * 256 * 255            # channel 1: every weight −256
    assert [(s.float32, s.wraps) for s in (wrap.synapses[0], wrap.synapses[2])] == [(True, False)] * 2
    assert [s.float32 for s in dense_in.synapses] == [True, False]      # Σ|W|·255 = 400·254·255 > 2²⁴
    assert dense_in.synapses[1].abs_bound == 400 * 254 * 255
    assert out.saturates and not out.float32
    assert [s.indices for s in out.synapses] == [(0,), (1, 2)]          # << 8 copies merge
    pixels = random_pixels(10, net.input_shape, seed=2)
    res = simulate_int(net, pixels, 8)
    assert (np.abs(res.logits * 64) >= 2 ** 23 - 1).any()               # the saturation really acts
    assert_same_result(res, ref.simulate_int(net, pixels, 8))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(net=int_networks())
def test_random_networks_match_reference(net: IntNetwork) -> None:
    """Any valid network, every field anywhere in its range (saturating, wrapping, floor shifts)."""
    t = min(net.max_timesteps, 5)
    pixels = random_pixels(4, net.input_shape, seed=t)
    assert_same_result(simulate_int(net, pixels, t), ref.simulate_int(net, pixels, t))


@pytest.mark.parametrize("batch_size", [1, 4, None])
def test_batch_size_does_not_change_results(batch_size: int | None) -> None:
    net = residual_net()
    pixels = random_pixels(10, net.input_shape, seed=3)
    assert_same_result(simulate_int(net, pixels, 6, batch_size=batch_size), ref.simulate_int(net, pixels, 6))


def test_the_host_batch_keeps_a_cache_sized_working_set() -> None:
    """On the CPU the automatic batch stays within HOST_BUDGET (measured fastest, docs/benchmarks.md §3): a
    ResNet-20 at T = 8 runs in batches of a few samples, a small network in batches of hundreds."""
    import torch
    from slipsnn.toolchain.backends.simulator import HOST_BUDGET, _compile_int, auto_batch_size
    from slipsnn.toolchain.kernels.device import free_memory_bytes
    from slipsnn.toolchain.ann.models import ModelConfig, build_model
    from slipsnn.toolchain.conversion.lower import lower
    from slipsnn.toolchain.conversion.quantize import QuantConfig, quantize
    from slipsnn.toolchain.ir.activation import preset_params
    cfg = ModelConfig("resnet20", 10, (3, 32, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    big = quantize(lower(build_model(cfg, preset_params("slip")).eval(), cfg.input_shape), QuantConfig(4, 8))
    cpu = torch.device("cpu")
    for net, t in ((big, 8), (big, 1), (hand_net(), 8)):
        layers = _compile_int(net, prove_exactness(net, t), cpu)
        per_sample = batch_bytes_per_sample(layers, t, net.input_shape)
        n = auto_batch_size(layers, t, net.input_shape, cpu)
        budget = min(HOST_BUDGET, free_memory_bytes(cpu) // 4)
        assert n >= 1 and (n * per_sample <= budget or n == 1), (t, n, per_sample)
        assert (n + 1) * per_sample > budget or n == 1024
    assert auto_batch_size(_compile_int(big, prove_exactness(big, 8), cpu), 8, big.input_shape, cpu) < 16


def test_bad_batch_size() -> None:
    net = hand_net()
    with pytest.raises(SlipsnnError, match="batch size 0"):
        simulate_int(net, random_pixels(2, net.input_shape, seed=0), 2, batch_size=0)


def test_batch_memory_estimate_grows_with_t() -> None:
    from slipsnn.toolchain.backends.simulator import _compile_int
    net = file_chain_net()
    one, eight = (batch_bytes_per_sample(_compile_int(net, prove_exactness(net, t), torch.device("cpu")), t,
                                         net.input_shape) for t in (1, 8))
    assert 0 < one < eight < 9 * one


def _lowered_digits_cnn():
    from slipsnn.toolchain.ann.models import ModelConfig, build_model
    from slipsnn.toolchain.conversion.lower import lower
    from slipsnn.toolchain.ir.activation import preset_params
    torch.manual_seed(0)
    cfg = ModelConfig("digits_cnn", 10, (1, 8, 8), (0.3,), (0.4,), width=0.5)
    return lower(build_model(cfg, preset_params("slip")), (1, 8, 8))


@pytest.mark.parametrize("timesteps", [1, 4])
def test_float_matches_reference(timesteps: int) -> None:
    snn = _lowered_digits_cnn()
    pixels = random_pixels(17, snn.input_shape, seed=timesteps)
    got, want = (simulate_float(snn, pixels, timesteps, record_counts=True),
                 ref.simulate_float(snn, pixels, timesteps, record_counts=True))
    assert_same_result(got, want)
    assert all((a == b).all() for a, b in zip(got.counts, want.counts))


def test_devices() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(SlipsnnError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(SlipsnnError, match="no CUDA GPU"):
            simulate_int(hand_net(), random_pixels(2, (1, 4, 4), seed=0), 2, device="cuda:0")


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="needs a CUDA GPU (benchmarks/gpu_check.py on the GPU machine)")
@pytest.mark.parametrize("factory", FACTORIES + [overflowing_net], ids=lambda f: f.__name__)
def test_cuda_matches_cpu(factory) -> None:
    net = factory()
    pixels = random_pixels(9, net.input_shape, seed=4)
    assert_same_result(simulate_int(net, pixels, 4, device="cuda"), simulate_int(net, pixels, 4, device="cpu"))

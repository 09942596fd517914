"""Lava's limits checked on the IR before anything is compiled (no Lava needed): the exact re-expression of
conv groups beyond Lava's int8 Var, and one-sentence refusals naming the layer, the value and the limit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slipsnn.toolchain.backends.lava.preflight import (ACCUMULATOR_MAX, MAX_DELAY, accumulator_bound, check_lava,
                                                       lava_conv_groups, regroup_weight, require_lava_compatible)
from slipsnn.toolchain.errors import LavaError
from slipsnn.toolchain.ir.integer import IntLayer, IntNetwork, IntSynapse
from factories import chain_net, even_weights, residual_net


@pytest.mark.parametrize("groups, lava", [(1, 1), (64, 64), (127, 127), (128, 64), (200, 100), (254, 127),
                                          (256, 64), (512, 64), (131, 1), (262, 2)])
def test_lava_groups_are_the_largest_divisor_within_int8(groups: int, lava: int) -> None:
    assert lava_conv_groups(groups) == lava


@pytest.mark.parametrize("c_in, c_out, groups, kernel", [(512, 512, 512, 1), (256, 256, 256, 3), (12, 18, 6, 3),
                                                         (200, 200, 200, 1), (131, 262, 131, 1)])
def test_regrouped_conv_computes_the_same_integers(c_in: int, c_out: int, groups: int, kernel: int) -> None:
    """torch conv2d with the original groups and with Lava's groups give identical outputs (exact in float64)."""
    rng = np.random.default_rng(groups)
    w = even_weights(rng, -128, 128, c_out, c_in // groups, kernel, kernel)
    x = torch.as_tensor(rng.integers(0, 256, (1, c_in, 3, 4)), dtype=torch.float64)
    new = lava_conv_groups(groups)
    w2 = regroup_weight(w, groups, new)
    assert w2.shape == (c_out, c_in // new, kernel, kernel) and w2.dtype == w.dtype
    pad = kernel // 2
    ref = torch.nn.functional.conv2d(x, torch.as_tensor(w, dtype=torch.float64), padding=pad, groups=groups)
    got = torch.nn.functional.conv2d(x, torch.as_tensor(w2, dtype=torch.float64), padding=pad, groups=new)
    assert (got == ref).all(), f"{torch.nonzero(got != ref)[:5]}"
    assert np.count_nonzero(w2) == np.count_nonzero(w)


def test_zoo_like_networks_pass() -> None:
    assert check_lava(chain_net()) == [] and check_lava(residual_net()) == []
    require_lava_compatible(residual_net())


def _single_conv(kernel: int) -> IntNetwork:
    rng = np.random.default_rng(0)
    layers = (IntLayer("big", (2, 1, 2), (IntSynapse(-1, "conv", even_weights(rng, -2, 3, 2, 1, kernel, kernel)),),
                       "IF_SOFT", 100, np.zeros(2, np.int32), 0, 0, 100.0),
              IntLayer("out", (3,), (IntSynapse(0, "dense", even_weights(rng, -2, 3, 3, 4)),), "ACCUMULATE", 0,
                       np.zeros(3, np.int32), 0, 0, 1.0))
    return IntNetwork((1, kernel, kernel + 1), layers, timesteps=1, max_timesteps=1)


def test_a_kernel_beyond_int8_is_refused_naming_layer_value_and_limit() -> None:
    problems = check_lava(_single_conv(128))
    assert len(problems) == 1, problems
    assert "layer 0 ('big') synapse 0" in problems[0] and "(128, 128)" in problems[0] and "127" in problems[0]
    assert "lava/proc/conv/models.py:25" in problems[0]
    assert check_lava(_single_conv(127)) == []


def test_an_int32_accumulator_overflow_is_refused() -> None:
    """A dense layer on the 8-bit image whose worst case (Σ max(W, 0) · 255) << e passes 2³¹."""
    w = np.full((2, 3 * 32 * 32), 254, np.int32)
    for exp, refused in ((2, False), (4, True)):
        layers = (IntLayer("fc", (2,), (IntSynapse(-1, "dense", w, weight_exp=exp),), "IF_SOFT", 100,
                           np.zeros(2, np.int32), 0, 0, 100.0),
                  IntLayer("out", (2,), (IntSynapse(0, "dense", np.full((2, 2), 2, np.int32)),), "ACCUMULATE", 0,
                           np.zeros(2, np.int32), 0, 0, 1.0))
        net = IntNetwork((3, 32, 32), layers, timesteps=1, max_timesteps=1)
        bound = accumulator_bound(net.layers[0].synapses[0])
        assert bound == (3 * 32 * 32 * 254 * 255) << exp
        assert (bound > ACCUMULATOR_MAX) == refused
        problems = check_lava(net)
        assert bool(problems) == refused, problems
        if refused:
            assert f"one step can sum to {bound}" in problems[0] and "int32" in problems[0]


def test_a_residual_delay_beyond_63_steps_is_refused() -> None:
    """A residual edge skipping 64 layers needs a 64-step delay; Loihi 2's synaptic delay stops at 63."""
    def net(depth: int) -> IntNetwork:
        dense = lambda src: IntSynapse(src, "dense", np.full((2, 2), 2, np.int32))  # noqa: E731
        layers = [IntLayer(f"l{i}", (2,), (dense(i - 1),) + ((dense(-1),) if i == depth - 1 else ()), "IF_SOFT", 10,
                           np.zeros(2, np.int32), 0, 0, 10.0) for i in range(depth)]
        layers.append(IntLayer("out", (2,), (dense(depth - 1),), "ACCUMULATE", 0, np.zeros(2, np.int32), 0, 0, 1.0))
        return IntNetwork((2, 1, 1), layers, timesteps=1, max_timesteps=1)

    assert check_lava(net(MAX_DELAY + 1)) == []            # the edge into layer 63 waits 63 steps
    problems = check_lava(net(MAX_DELAY + 2))
    assert len(problems) == 1 and "delay of 64 steps; at most 63" in problems[0], problems
    with pytest.raises(LavaError, match=r"^Lava cannot run this network exactly: layer 64 \('l64'\) synapse 1"):
        require_lava_compatible(net(MAX_DELAY + 2))

"""Stock lava-dl netx at any T: slipsnn's cuba files (and the layer description of stock files)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from factories import file_chain_net
from slipsnn.exporters.netx import _cuba_vth, write_netx
from slipsnn.exporters.stock_netx import describe_stock_netx, is_stock_netx
from slipsnn.toolchain.ir.integer import IntNetwork
from slipsnn.toolchain.kernels.synapse import apply_synapse


def hard_reset_run(net: IntNetwork, x: np.ndarray, timesteps: int) -> tuple[np.ndarray, np.ndarray]:
    """What a cuba file means: v ← v + 64·a + bias_state, spike at v > 64·vThMant, then v ← 0 (v from 0).

    Returns:
        (output v after each step (N, T, classes), spikes per layer and step (N, layers, T)).
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    n = len(x)
    v = [torch.zeros((n, *layer.shape), dtype=torch.float64) for layer in net.layers]
    out_v, spikes = [], np.zeros((n, len(net.layers), timesteps), np.int64)
    for t in range(timesteps):
        out: list[torch.Tensor] = []
        for i, layer in enumerate(net.layers):
            a = sum(apply_synapse(x if s.source == -1 else out[s.source], s.kind,
                                  torch.as_tensor(s.weight, dtype=torch.float64), stride=s.stride,
                                  padding=s.padding, dilation=s.dilation, groups=s.groups) for s in layer.synapses)
            v[i] = v[i] + 64 * a + torch.as_tensor(layer.bias_state(), dtype=torch.float64)
            z = (v[i] > 64 * _cuba_vth(layer)).double() if layer.spiking else torch.zeros_like(v[i])
            v[i] = v[i] * (1 - z)
            out.append(z)
            spikes[:, i, t] = z.reshape(n, -1).sum(1).numpy()
        out_v.append(v[-1].reshape(n, -1).numpy())
    return np.stack(out_v, axis=1), spikes


def test_cuba_file_records_the_horizon_it_meets(tmp_path: Path) -> None:
    net = file_chain_net()
    write_netx(net, tmp_path / "c.net", neuron="cuba")
    with h5py.File(tmp_path / "c.net") as h:
        assert int(h["slipsnn/timesteps"][()]) == 1 and int(h["slipsnn/exact_timesteps"][()]) == 1
        assert int(h["slipsnn/max_timesteps"][()]) == net.max_timesteps
    info = describe_stock_netx(tmp_path / "c.net")
    assert is_stock_netx(tmp_path / "c.net") and info.writer == "slipsnn" and info.input_bits == 8
    assert [layer.shape for layer in info.layers] == [layer.shape for layer in net.layers]
    write_netx(net, tmp_path / "s.net")
    assert not is_stock_netx(tmp_path / "s.net")


@pytest.mark.lava
@pytest.mark.slow
def test_stock_netx_runs_a_cuba_file_at_every_step_of_t3(tmp_path: Path) -> None:
    """reset_offset = 1 and v read at step nT + τ + depth − 1: stock netx equals the hard-reset model exactly."""
    from slipsnn.toolchain.backends.lava.stock_netx import run_stock_netx
    net, t = file_chain_net(), 3
    x = np.random.default_rng(5).integers(0, 12, (3, *net.input_shape))   # small: no 24-bit wrap of Lava's u
    write_netx(net, tmp_path / "c.net", neuron="cuba")
    sim, _ = run_stock_netx(tmp_path / "c.net", x, t)
    want_v, want_spikes = hard_reset_run(net, x, t)
    assert 0 < want_spikes[:, :-1].sum() and (want_spikes[:, 0, 1:] > 0).any(), "spikes after the first step"
    got_v = sim.logits * 64
    bad = np.argwhere(got_v != want_v)
    assert not len(bad), f"output v differs at (sample, step, class) {bad[:5].tolist()}"
    bad = np.argwhere(sim.spikes != want_spikes)
    assert not len(bad), f"spike counts differ at (sample, layer, step) {bad[:5].tolist()}"

"""Stock lava-dl netx at any T: slipsnn's cuba files (and the layer description of stock files)."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from factories import file_chain_net, untrained_digits_checkpoint
from slipsnn.exporters.netx import _cuba_vth, write_netx
from slipsnn.exporters.stock_netx import describe_stock_netx, is_stock_netx
from slipsnn.toolchain.errors import FormatError
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


@pytest.mark.lava
@pytest.mark.slow
def test_stock_counts_equal_slipsnn_at_t1(tmp_path: Path) -> None:
    """The stock run's spikes and synaptic events (fan-outs from the file's own weights) equal simulate_int's
    at T = 1, where the cuba file is the IR exactly."""
    from slipsnn.toolchain.backends.lava.stock_netx import run_stock_netx
    from slipsnn.toolchain.backends.simulator import simulate_int
    from slipsnn.toolchain.kernels.connectivity import synapse_fanout
    net = file_chain_net()
    x = np.random.default_rng(6).integers(0, 12, (4, *net.input_shape))
    write_netx(net, tmp_path / "c.net", neuron="cuba")
    info = describe_stock_netx(tmp_path / "c.net")
    shapes = [info.input_shape] + [layer.shape for layer in info.layers]
    fanouts = [synapse_fanout(layer.synapse, shapes[i]) for i, layer in enumerate(info.layers)]
    sim, _ = run_stock_netx(tmp_path / "c.net", x, 1, fanouts=fanouts)
    ref = simulate_int(net, torch.as_tensor(x), 1)
    assert np.array_equal(sim.spikes, ref.spikes), f"{sim.spikes[0, :, 0]} != {ref.spikes[0, :, 0]}"
    assert np.array_equal(sim.synops, ref.synops), f"{sim.synops[0, :, 0]} != {ref.synops[0, :, 0]}"


def _slayer_file(path: Path) -> Path:
    """A tiny network as lava-dl's slayer builds and exports it: CUBA conv 1→4 (3×3) → flatten → dense 256→10."""
    import lava.lib.dl.slayer as slayer
    p = dict(threshold=1.0, current_decay=1.0, voltage_decay=0.0, tau_grad=1, scale_grad=1, requires_grad=False)
    torch.manual_seed(0)
    blocks = [slayer.block.cuba.Conv(p, 1, 4, 3, padding=1, weight_scale=2, weight_norm=False),
              slayer.block.cuba.Flatten(),
              slayer.block.cuba.Dense(p, 4 * 8 * 8, 10, weight_scale=2, weight_norm=False)]
    dense = blocks[2].synapse.weight
    dense.data = torch.where(torch.rand_like(dense) < 0.5, -0.5, 0.5)   # no weight quantizes to 0: fan-out 10
    x = torch.zeros(1, 1, 8, 8, 2)
    for block in blocks:   # slayer learns each block's neuron shape in a forward pass, and exports it
        x = block(x)
    with h5py.File(path, "w") as h:
        group = h.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(group.create_group(str(i)))
    return path


@pytest.mark.lava
@pytest.mark.slow
def test_report_of_a_slayer_file(tmp_path: Path) -> None:
    """slipsnn-report's library path on a file slayer wrote: float weights, binary input, spiking output."""
    from slipsnn.toolchain.costs.energy import snn_energy
    from slipsnn.toolchain.data.loaders import load_pixels
    from slipsnn.toolchain.pipeline import report_stock_file
    path = _slayer_file(tmp_path / "slayer.net")
    assert is_stock_netx(path)
    with pytest.raises(FormatError, match="no input group"):
        describe_stock_netx(path)
    info = describe_stock_netx(path, (1, 8, 8))
    assert info.writer == "other" and info.input_bits == 0 and [L.shape for L in info.layers] == [(4, 8, 8), (10,)]
    rep = report_stock_file(path, "digits", [1, 3], "loihi2", limit=6)
    (t1, _, c1, _, _), (t3, acc3, c3, e3, chip3) = rep.steps
    assert (t1, t3) == (1, 3) and 0.0 <= acc3 <= 1.0
    # layer 0's events are the binary input (pixel ≥ 128) times the conv's fan-out, every step
    pixels, _ = load_pixels("digits", "test", None, 6)
    from slipsnn.toolchain.kernels.connectivity import synapse_fanout
    fan = synapse_fanout(info.layers[0].synapse, (1, 8, 8))
    want0 = float(((pixels.numpy() >= 128) * fan).reshape(6, -1).sum(1).mean())
    assert c1[0].synops == want0 and c3[0].synops == 3 * want0
    # the dense layer: every weight non-zero, so each spike of layer 0 is 10 events
    assert c3[0].spikes > 0 and c3[1].synops == 10 * c3[0].spikes
    assert e3["loihi2"].total_pj == snn_energy(c3, _profile("loihi2"), chip3["loihi2"].latency_us).total_pj
    doc = rep.to_json()
    assert doc["writer"] == "other" and doc["samples"] == 6 and [s["timesteps"] for s in doc["steps"]] == [1, 3]
    assert doc["steps"][1]["layers"][1]["synops"] == c3[1].synops
    assert doc["steps"][1]["energy_pj"]["loihi2"] == e3["loihi2"].total_pj
    # mapped like slipsnn's own networks: from the file's shapes, the step set by the most loaded core
    from slipsnn.toolchain.costs.mapping import LayerSpec, SynapseSpec, map_cores
    specs = [LayerSpec("0", (4, 8, 8), (SynapseSpec("conv", (1, 8, 8), (4, 1, 3, 3), 1, int(fan.sum())),)),
             LayerSpec("2", (10,), (SynapseSpec("dense", (4, 8, 8), (10, 256), 1, 2560),))]
    want = map_cores(specs, _profile("loihi2"))
    assert [(m.cores, m.tile) for m in rep.cores["loihi2"].layers] == [(m.cores, m.tile) for m in want.layers]
    assert doc["cores"]["loihi2"] == {"total": want.total_cores, "chips": 1,
                                      "per_layer": dict(zip([L.name for L in info.layers], [m.cores for m in want.layers]))}
    assert chip3["loihi2"].source == "most loaded core"
    from slipsnn.toolchain.show.stock import format_stock_report
    row = " ".join(str(m.cores) for m in want.layers)
    assert re.search(rf"^loihi2 +{want.total_cores} +1 +{row} *$", format_stock_report(rep), re.M), format_stock_report(rep)


def _profile(name: str):  # noqa: ANN202
    from slipsnn.toolchain.costs.profiles import load_profile
    return load_profile(name)


@pytest.mark.lava
@pytest.mark.slow
def test_cli_runs_a_cuba_export_through_stock_netx(tmp_path: Path) -> None:
    """slipsnn-run on a --neuron cuba file: stock netx at T = 1 agrees with the if_soft twin on every sample."""
    import json

    from click.testing import CliRunner

    from slipsnn.toolchain import cli
    ckpt = untrained_digits_checkpoint(tmp_path / "model.pt")
    runner = CliRunner()
    res = runner.invoke(cli.main, ["export", str(ckpt), "--neuron", "cuba", "-o", str(tmp_path / "c.net")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli.main, ["run", str(tmp_path / "c.net"), "--limit", "6", "--timesteps", "1",
                                   "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["if_soft_agreement"] == 1.0 and doc["samples"] == 6 and doc["timesteps"] == 1
    assert "same class on 100.00 % of 6 samples at T=1" in res.output

"""NIR export: both variants run through an executor written from the NIR spec and through real consumers
(nirtorch 2.6, snnTorch 1.0.0), compared with slipsnn's integer simulator step by step."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from factories import digits_net, file_chain_net, hand_net, random_pixels, residual_net
from nir_consumers import run_nirtorch, run_snntorch
from nir_reference import run_graph
from slipsnn.exporters.nir import to_nir, write_nir
from slipsnn.exporters.netx import write_netx
from slipsnn.toolchain import cli
from slipsnn.toolchain.backends.simulator import simulate_int
from slipsnn.toolchain.errors import FormatError
from slipsnn.toolchain.ir.integer import IntLayer, IntNetwork, IntSynapse


def residual_no_floor() -> IntNetwork:
    """``residual_net`` with its output's second synapse at weight_exp 0 (NIR cannot floor a >> e)."""
    net = residual_net()
    out = net.layers[-1]
    syn = out.synapses[1]
    fixed = IntSynapse(syn.source, syn.kind, syn.weight // 4 * 2, 0)
    layers = net.layers[:-1] + (IntLayer(out.name, out.shape, (out.synapses[0], fixed), out.neuron, out.threshold,
                                         out.bias, out.bias_exp, out.v_init, out.scale),)
    return IntNetwork(net.input_shape, layers, net.timesteps, net.max_timesteps)


NETS = {"hand": hand_net, "digits": digits_net, "per_neuron_bias": file_chain_net, "residual": residual_no_floor}


def slipsnn_membrane(net: IntNetwork, x: torch.Tensor, timesteps: int) -> np.ndarray:
    """The output layer's membrane after each step (N, T, classes), state units."""
    res = simulate_int(net, x, timesteps)
    return np.round(res.logits * net.layers[-1].scale * 64)   # v is an integer: undo the float division


def nir_membrane(net: IntNetwork, out: np.ndarray) -> np.ndarray:
    """The same from a NIR output (per-step input in weight units): v_init + 64 · cumulative sum."""
    return net.layers[-1].v_init + 64 * np.cumsum(out, axis=1)


def assert_equal_at(got: np.ndarray, want: np.ndarray, steps: range) -> None:
    for t in steps:
        bad = np.argwhere(got[:, t] != want[:, t])
        assert not len(bad), f"t={t + 1}: {len(bad)} outputs differ, first {bad[0]}: {got[:, t][tuple(bad[0])]} " \
                             f"!= {want[:, t][tuple(bad[0])]}"


@pytest.mark.parametrize("name", NETS)
def test_exact_variant_equals_slipsnn_at_every_step(name: str, tmp_path: Path) -> None:
    net = NETS[name]()
    x = random_pixels(48, net.input_shape, seed=1)
    graph = nir.read(write_nir(net, tmp_path / "m.nir", "exact"))   # through the file
    got = nir_membrane(net, run_graph(graph, x.numpy(), net.max_timesteps)["output"])
    assert_equal_at(got, slipsnn_membrane(net, x, net.max_timesteps), range(net.max_timesteps))


@pytest.mark.parametrize("name", NETS)
def test_portable_variant_is_exact_at_one_step_and_uses_the_portable_nodes(name: str) -> None:
    net = NETS[name]()
    x = random_pixels(48, net.input_shape, seed=2)
    graph = to_nir(net, "portable")
    assert {type(n) for n in graph.nodes.values()} <= {nir.Input, nir.Conv2d, nir.Affine, nir.IF, nir.Flatten,
                                                        nir.Output}
    got = nir_membrane(net, run_graph(graph, x.numpy(), 1)["output"])
    assert_equal_at(got, slipsnn_membrane(net, x, 1), range(1))


def test_portable_differs_after_a_spike_where_reset_matters() -> None:
    """Hard reset ≠ subtractive reset: on file_chain_net the two must part after T = 1 (measured, not assumed)."""
    net = file_chain_net()
    x = random_pixels(48, net.input_shape, seed=2)
    got = nir_membrane(net, run_graph(to_nir(net, "portable"), x.numpy(), 4)["output"])
    assert (got[:, 3] != slipsnn_membrane(net, x, 4)[:, 3]).any()


@pytest.mark.parametrize("variant", ["portable", "exact"])
@pytest.mark.parametrize("name", NETS)
def test_nirtorch_runs_the_graph_like_the_reference(name: str, variant: str) -> None:
    net = NETS[name]()
    x = random_pixels(16, net.input_shape, seed=3).numpy()
    graph = to_nir(net, variant)
    ref = run_graph(graph, x, 6)["output"]
    got = run_nirtorch(graph, x, 6)
    assert np.array_equal(got, ref), f"max |diff| {np.abs(got - ref).max()}"


@pytest.mark.parametrize("name", ["hand", "digits", "residual"])
def test_snntorch_runs_the_portable_graph_like_the_reference(name: str) -> None:
    net = NETS[name]()
    x = random_pixels(16, net.input_shape, seed=4).numpy()
    graph = to_nir(net, "portable")
    ref = run_graph(graph, x, 6)["output"]
    got = run_snntorch(graph, x, 6)
    assert np.array_equal(got, ref), f"max |diff| {np.abs(got - ref).max()}"


def test_refuses_what_nir_cannot_express() -> None:
    with pytest.raises(FormatError, match="weight_exp -2 floors"):
        to_nir(residual_net(), "exact")
    with pytest.raises(FormatError, match="allowed: portable, exact"):
        to_nir(hand_net(), "lossy")


def test_cli_exports_a_net_file_as_nir(tmp_path: Path) -> None:
    net = hand_net()   # the file's claimed horizon must be provable: the reader proves it again
    write_netx(net, tmp_path / "m.net")
    res = CliRunner().invoke(cli.main, ["export", str(tmp_path / "m.net"), "--format", "nir", "--nir-variant",
                                        "portable", "-o", str(tmp_path / "m.nir")])
    assert res.exit_code == 0, res.output
    graph = nir.read(tmp_path / "m.nir")
    assert graph.metadata["variant"] == "portable" and isinstance(graph.nodes["L0.spikes"], nir.IF)
    x = random_pixels(8, net.input_shape, seed=5)
    got = nir_membrane(net, run_graph(graph, x.numpy(), 1)["output"])
    assert_equal_at(got, slipsnn_membrane(net, x, 1), range(1))

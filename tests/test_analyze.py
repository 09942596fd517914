"""Layer-wise conversion error (``toolchain/analyze.py``): hand-checked values, δ₂ sweep, JSON = table, plot, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from slipsnn.toolchain.ir.activation import SlipParams
from slipsnn.toolchain.analysis.conversion import analyze_network
from slipsnn.toolchain.pipeline import analyze_conversion
from slipsnn.toolchain.show.analysis import format_analysis, plot_analysis
from slipsnn.toolchain.cli import main
from slipsnn.toolchain.errors import SlipsnnError
from slipsnn.toolchain.ir.formats import INPUT_SOURCE, SynapseKind
from slipsnn.toolchain.ir.floating import FloatLayer, FloatSynapse, SpikingNetwork
from slipsnn.toolchain.ann.training import TrainConfig, train


def _one_neuron(weight: float, bias: float, a: float, L: int, delta2: float) -> SpikingNetwork:
    """Pixel p → one SlipReLU neuron with θ = 1 and normalized pre-activation z = weight·p + bias → 2 outputs.

    Built directly in the IR (no lowering), so z is exactly what the test says.
    """
    hidden = FloatLayer(name="hidden", shape=(1,), synapses=(FloatSynapse(INPUT_SOURCE, SynapseKind.DENSE,
                                                                          np.array([[weight]])),),
                        bias=np.array([bias]), spiking=True, theta=1.0,
                        act=SlipParams(a=a, L=L, delta1=0.0, delta2=delta2), v_init=delta2)
    to_out = FloatSynapse(0, SynapseKind.DENSE, np.array([[1.0], [-1.0]]))
    readout = FloatLayer(name="out", shape=(2,), synapses=(to_out,), bias=np.zeros(2), spiking=False, theta=1.0,
                         act=None, v_init=0.0)
    return SpikingNetwork(input_shape=(1, 1, 1), layers=(hidden, readout))


def _pixels(values: list[float] | np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float32)).view(-1, 1, 1, 1)


def test_error_matches_a_hand_computed_slip_neuron() -> None:
    # z = p/100 − 0.2 for p = 0, 50, 100, 150 → z = −0.2, 0.3, 0.8, 1.3; a = 0.5, L = 4, δ₂ = 0.5, T = 3.
    # ANN/θ = 0.5·clip(z, 0, 1) + 0.5·clip(floor(4z + 0.5)/4, 0, 1)  →  0, 0.275, 0.775, 1
    # IF from v = 0.5 adding z each step, fire at v ≥ 1, subtract 1:
    #   z = −0.2: 0.3, 0.1, −0.1 → 0 spikes;  z = 0.3: 0.8, 1.1→0.1, 0.4 → 1;
    #   z = 0.8: 1.3→0.3, 1.1→0.1, 0.9 → 2;   z = 1.3: 1.8→0.8, 2.1→1.1, 2.4→1.4 → 3
    # e = ANN − spikes/3 = 0, 0.275 − 1/3, 0.775 − 2/3, 0
    net = _one_neuron(0.01, -0.2, a=0.5, L=4, delta2=0.5)
    res = analyze_network(net, _pixels([0, 50, 100, 150]), torch.zeros(4, dtype=torch.long), 3, delta2_values=[])
    e = np.array([0.0, 0.275 - 1 / 3, 0.775 - 2 / 3, 0.0])
    (layer,) = res.trained.layers
    assert res.trained.delta2 == 0.5 and res.sweep == () and layer.neurons == 1
    assert layer.mean == pytest.approx(e.mean(), abs=1e-6)
    assert layer.std == pytest.approx(e.std(), abs=1e-6)
    assert (layer.p5, layer.p95) == pytest.approx(tuple(np.percentile(e, [5, 95])), abs=1e-6)
    assert layer.mean_abs == pytest.approx(np.abs(e).mean(), abs=1e-6)
    assert layer.ann_mean == pytest.approx((0 + 0.275 + 0.775 + 1) / 4, abs=1e-6)
    assert layer.rate_mean == pytest.approx((0 + 1 + 2 + 3) / 12, abs=1e-6)


def test_qcfs_error_vs_delta2_follows_the_theory() -> None:
    # QCFS (a = 0, δ₂ = ½ in training), T = L = 4, z = (p + ½)/256 uniform over [0, 1): the rate is
    # floor(4z + δ₂)/4 (clipped at 0), the ANN floor(4z + ½)/4. So e = 0 exactly at δ₂ = ½; +½/T on
    # average at δ₂ = 0; at δ₂ = −½ it is 1/T except in the lowest half-bin, where both are 0: (7/8)/T.
    T = 4
    net = _one_neuron(1 / 256, 0.5 / 256, a=0.0, L=T, delta2=0.5)
    res = analyze_network(net, _pixels(np.arange(256)), torch.zeros(256, dtype=torch.long), T,
                          delta2_values=[-0.5, 0.0, 0.25, 0.5])
    mean = {d.delta2: d.layers[0].mean for d in res.sweep}
    assert mean[0.5] == pytest.approx(0.0, abs=1e-9) and res.sweep[-1].layers[0].std == pytest.approx(0.0, abs=1e-9)
    assert mean[0.0] == pytest.approx(0.5 / T, abs=1e-9)
    assert mean[0.25] == pytest.approx(0.25 / T, abs=1e-9)
    assert mean[-0.5] == pytest.approx(7 / 8 / T, abs=1e-9)
    assert res.trained.layers[0].mean == pytest.approx(0.0, abs=1e-9)   # as converted: δ₂ = ½
    assert res.preset == "qcfs"


def test_json_equals_table_and_plot_is_written(tmp_path: Path) -> None:
    net = _one_neuron(1 / 256, 0.5 / 256, a=0.5, L=4, delta2=0.0)
    res = analyze_network(net, _pixels(np.arange(0, 256, 3)), torch.zeros(86, dtype=torch.long), 2)
    doc = res.to_json()
    json.dumps(doc, allow_nan=False)   # plain, finite JSON
    text = format_analysis(res)
    rows = [line.split() for line in text.splitlines()]
    trained_row = next(r for r in rows if r and r[0] == doc["trained"]["layers"][0]["name"] and len(r) == 9)
    layer = doc["trained"]["layers"][0]
    expected = [layer[k] for k in ("mean", "std", "p5", "p95", "mean_abs", "ann_mean", "rate_mean")]
    assert [float(v) for v in trained_row[2:]] == expected
    sweep_row = next(r for r in rows if r and r[0] == layer["name"] and len(r) == 1 + len(doc["sweep"]))
    assert [float(v) for v in sweep_row[1:]] == [s["layers"][0]["mean"] for s in doc["sweep"]]
    acc_line = next(line for line in text.splitlines() if line.startswith("SNN acc %"))
    assert [float(v) for v in re.findall(r"[\d.]+", acc_line.split("%", 1)[1])] == \
        [round(100 * s["snn_accuracy"], 2) for s in doc["sweep"]]
    assert [s["delta2"] for s in doc["sweep"]] == [-0.5, -0.25, 0.0, 0.25, 0.5]
    png = plot_analysis(res, tmp_path / "sub" / "err.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_bad_delta2_and_timesteps_are_refused() -> None:
    net = _one_neuron(0.01, 0.0, a=0.5, L=4, delta2=0.5)
    with pytest.raises(SlipsnnError, match=r"outside \(-1, 1\)"):
        analyze_network(net, _pixels([1]), torch.zeros(1, dtype=torch.long), 2, delta2_values=[1.0])
    with pytest.raises(SlipsnnError, match="timesteps"):
        analyze_network(net, _pixels([1]), torch.zeros(1, dtype=torch.long), 0)


def test_cli_analyze_on_a_trained_checkpoint(tmp_path: Path) -> None:
    cfg = TrainConfig.for_dataset("digits", activation="qcfs", L=4, epochs=1, width=0.25, device="cpu",
                                  out_dir=str(tmp_path))
    train(cfg, progress=False)
    js, png = tmp_path / "a.json", tmp_path / "a.png"
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "model.pt"), "--timesteps", "4", "--limit", "60",
                                       "--delta2", "0", "--delta2", "0.5", "--json", str(js), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    doc = json.loads(js.read_text())
    assert doc["samples"] == 60 and doc["timesteps"] == 4 and doc["preset"] == "qcfs"
    assert [s["delta2"] for s in doc["sweep"]] == [0.0, 0.5] and len(doc["trained"]["layers"]) == 3
    assert "mean error per layer vs initial membrane" in result.output and png.is_file()
    first = [s["layers"][0] for s in doc["sweep"]]
    # layer 1 sees the constant image: with T = L its QCFS error is ~0 at the trained δ₂ = ½ (float32 vs
    # float64 rounding at bin edges aside), and starting at δ₂ = 0 makes the SNN fire less (e > 0)
    assert abs(first[1]["mean"]) < 0.01 and first[0]["mean"] > first[1]["mean"] + 0.02
    for s in doc["sweep"]:
        assert 0.0 <= s["snn_accuracy"] <= 1.0
        for layer in s["layers"]:
            assert layer["p5"] <= layer["p95"] and layer["std"] >= 0 and abs(layer["mean"]) <= layer["mean_abs"]
    # the library call gives the same numbers
    lib = analyze_conversion(tmp_path / "model.pt", 4, delta2_values=[0.0, 0.5], limit=60).to_json()
    assert lib["sweep"] == doc["sweep"] and lib["trained"] == doc["trained"]


def test_cli_analyze_help_and_bad_delta2(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["analyze", "--help"]).exit_code == 0
    bad = runner.invoke(main, ["analyze", str(tmp_path / "missing.pt")])
    assert bad.exit_code == 2 and "does not exist" in bad.output

"""Determinism on the CPU: the same seed and data give the same checkpoint, metrics, exported network and spikes.

Where it cannot hold (CUDA training, Lava's wall-clock timings) is written down in docs/reliability.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from slipsnn.exporters.netx import read_netx
from slipsnn.toolchain.ann.checkpoint import load_checkpoint
from slipsnn.toolchain.data.loaders import load_pixels
from slipsnn.toolchain.pipeline import convert_checkpoint, export_checkpoint, train_and_evaluate
from slipsnn.toolchain.backends.result import SimResult
from slipsnn.toolchain.backends.simulator import simulate_float, simulate_int
from slipsnn.toolchain.ann.training import TrainConfig

SIM_FIELDS = ("logits", "spikes", "synops")


def train_once(out: Path, seed: int = 7) -> dict:
    """One epoch of a quarter-width digits CNN on the CPU, written to ``out`` (model.pt, metrics.json)."""
    cfg = TrainConfig.for_dataset("digits", epochs=1, width=0.25, seed=seed, device="cpu", out_dir=str(out))
    return train_and_evaluate(cfg, progress=False, timesteps=(1, 4))


def without_wall_time(metrics: dict) -> dict:
    """Metrics minus the one field that measures wall time (``seconds``)."""
    return {k: v for k, v in metrics.items() if k != "seconds"}


def assert_same_sim(a: SimResult, b: SimResult) -> None:
    for name in SIM_FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape and (x == y).all(), f"{name}: {np.argwhere(x != y)[:5]=}"


@pytest.mark.slow
def test_same_seed_same_checkpoint_metrics_and_network(tmp_path: Path) -> None:
    a, b = train_once(tmp_path / "a"), train_once(tmp_path / "b")
    assert without_wall_time(a) == without_wall_time(b)
    ja, jb = (json.loads((tmp_path / run / "metrics.json").read_text()) for run in "ab")
    assert without_wall_time(ja) == without_wall_time(jb) and ja["snn_accuracy"] == a["snn_accuracy"]
    ca, cb = load_checkpoint(tmp_path / "a/model.pt"), load_checkpoint(tmp_path / "b/model.pt")
    assert without_wall_time(ca.metrics) == without_wall_time(cb.metrics) and ca.thetas == cb.thetas
    sa, sb = ca.model.state_dict(), cb.model.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), f"{key}: max |Δ| {(sa[key] - sb[key]).abs().max()}"

    na, _ = export_checkpoint(tmp_path / "a/model.pt", tmp_path / "a.net", timesteps=4)
    nb, _ = export_checkpoint(tmp_path / "b/model.pt", tmp_path / "b.net", timesteps=4)
    for i, (la, lb) in enumerate(zip(na.layers, nb.layers, strict=True)):
        assert (la.threshold, la.bias_exp, la.v_init, la.scale) == (lb.threshold, lb.bias_exp, lb.v_init, lb.scale)
        assert np.array_equal(la.bias, lb.bias), f"layer {i} bias"
        for k, (sa_, sb_) in enumerate(zip(la.synapses, lb.synapses, strict=True)):
            assert np.array_equal(sa_.weight, sb_.weight), f"layer {i} synapse {k}"


def test_simulators_repeat_bit_for_bit(tmp_path: Path) -> None:
    """The same network and images give identical spikes, synaptic events and outputs, run after run;
    the integer simulator's result does not depend on the batch size either."""
    from slipsnn.toolchain.ir.activation import preset_params
    from slipsnn.toolchain.ann.checkpoint import save_checkpoint
    from slipsnn.toolchain.data.loaders import DATASETS
    from slipsnn.toolchain.ann.models import ModelConfig, build_model
    info = DATASETS["digits"]
    cfg = ModelConfig("digits_cnn", info.num_classes, info.input_shape, info.mean, info.std, width=0.25)
    act = preset_params("slip", L=4)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m.pt", build_model(cfg, act), cfg, act, dataset="digits", metrics={})
    pixels, _ = load_pixels("digits", "test", limit=96)

    snn = convert_checkpoint(ckpt)
    f1, f2 = simulate_float(snn, pixels, 6), simulate_float(snn, pixels, 6)
    assert_same_sim(f1, f2)

    net, path = export_checkpoint(ckpt, tmp_path / "m.net", timesteps=6)
    runs = [simulate_int(net, pixels, 6), simulate_int(net, pixels, 6), simulate_int(read_netx(path), pixels, 6),
            simulate_int(net, pixels, 6, batch_size=40)]
    assert runs[0].spikes.sum() > 0, "a silent network would make this test vacuous"
    for other in runs[1:]:
        assert_same_sim(runs[0], other)

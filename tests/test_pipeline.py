"""End to end through files: checkpoint → export → run (fast and Lava) → the same numbers everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from slipsnn.toolchain.ir.activation import preset_params
from slipsnn.toolchain.ann.checkpoint import save_checkpoint
from slipsnn.toolchain.data.registry import dataset_info
from slipsnn.toolchain.ann.models import ModelConfig, build_model
from slipsnn.toolchain.pipeline import accuracy_chain, export_checkpoint, run_file, verify_file
from slipsnn.toolchain.pipeline import load_network


def _checkpoint(folder: Path, arch: str, seed: int = 0) -> Path:
    """An untrained (seeded) digits-shaped model with random BatchNorm statistics, saved as model.pt."""
    info = dataset_info("digits")
    cfg = ModelConfig(arch, 10, info.input_shape, info.mean, info.std, width=0.25)
    torch.manual_seed(seed)
    model = build_model(cfg, preset_params("slip", L=4), theta=1.0).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.uniform_(0.0, 0.3)
    return save_checkpoint(folder / "model.pt", model, cfg, preset_params("slip", L=4), dataset="digits",
                           metrics={"ann_accuracy": 0.1})


def test_export_run_and_chain_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net, path = export_checkpoint(_checkpoint(tmp_path, "digits_cnn"), tmp_path / "m.net", timesteps=3)
    res = run_file(path, backend="fast", limit=40)
    doc = res.to_json()
    assert {"backend", "timesteps", "samples", "accuracy", "predictions", "spikes_per_layer"} <= set(doc)
    assert doc["samples"] == 40 and len(doc["predictions"]) == 40
    assert np.array(doc["spikes_per_layer"]).shape == (40, len(net.layers))
    json.dumps(doc)
    from slipsnn.toolchain.pipeline import running
    calls: list[str] = []
    real = running.run_network
    monkeypatch.setattr(running, "run_network", lambda *a, **k: calls.append(a[4]) or real(*a, **k))
    chain = accuracy_chain(tmp_path / "model.pt", path, (1, 3), backend="fast", limit=40)
    assert calls == ["fast"], "chain runs the integer simulator once"
    assert chain["int_snn"] == chain["fast"]
    assert chain["int_snn"][3] == pytest.approx(res.accuracy)
    # the file holds what the export returned
    assert load_network(path).summary() == net.summary()


@pytest.mark.lava
@pytest.mark.parametrize("arch", ["digits_cnn", "resnet20"])
def test_lava_equals_fast_bit_for_bit_through_the_file(tmp_path: Path, arch: str) -> None:
    """The digits CNN (average pools folded) and a ResNet (identity and projection shortcuts, global pool)."""
    _, path = export_checkpoint(_checkpoint(tmp_path, arch, seed=1), tmp_path / "m.net", timesteps=2)
    v = verify_file(path, limit=6)
    assert v.mismatch.total == 0, v.mismatch
    assert np.array_equal(v.lava.sim.spikes, v.fast.sim.spikes)
    assert v.lava.sim.spikes[:, :-1].sum() > 0, "the test network must spike to mean anything"


@pytest.mark.lava
def test_cuba_export_runs_in_stock_netx_like_slipsnn_at_t1(tmp_path: Path) -> None:
    """``--neuron cuba``: stock lava-dl netx, resetting every step, gives slipsnn's T=1 outputs exactly."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from slipsnn.toolchain.data.loaders import load_pixels
    from slipsnn.toolchain.backends.lava.runtime import require_lava
    from slipsnn.toolchain.backends.simulator import simulate_int

    require_lava()
    from lava.lib.dl.netx import hdf5
    from lava.proc.io.source import RingBuffer

    net, path = export_checkpoint(_checkpoint(tmp_path, "digits_cnn", seed=2), tmp_path / "c.net", timesteps=1,
                                  neuron="cuba")
    pixels, _ = load_pixels("digits", "test", limit=3)
    want = simulate_int(net, pixels, 1).logits[:, 0] * net.layers[-1].scale * 64   # output membrane, state units
    steps = net.depth + 2   # the same image every step; every layer restarts every step
    for image, expected in zip(pixels.numpy().astype(np.int64), want):
        lava_net = hdf5.Network(net_config=str(path), input_message_bits=8, reset_interval=1)
        source = RingBuffer(data=np.repeat(image.transpose(2, 1, 0)[..., None], steps, axis=-1))
        source.s_out.connect(lava_net.inp)
        try:
            lava_net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            got = np.asarray(lava_net.layers[-1].neuron.v.get())
        finally:
            lava_net.stop()
        assert np.array_equal(got, np.round(expected)), (got, expected)

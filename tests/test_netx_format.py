"""The netx HDF5 writer/reader: exact round trip, key layout, stock-netx loading, hostile files, atomicity."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from slipsnn.exporters import netx
from slipsnn.exporters.netx import read_netx, write_netx
from slipsnn.toolchain.errors import FormatError
from slipsnn.toolchain.ir.integer import IntNetwork
from factories import file_chain_net, file_residual_net


def assert_same_network(a: IntNetwork, b: IntNetwork) -> None:
    """Field-by-field equality of two IntNetworks (arrays bit-exact, dtypes included)."""
    assert (a.input_shape, a.timesteps, a.max_timesteps, a.version) == \
           (b.input_shape, b.timesteps, b.max_timesteps, b.version)
    assert a.meta == b.meta
    assert len(a.layers) == len(b.layers)
    for i, (la, lb) in enumerate(zip(a.layers, b.layers)):
        for name in ("name", "shape", "neuron", "threshold", "bias_exp", "v_init", "scale"):
            assert getattr(la, name) == getattr(lb, name), f"layer {i} {name}"
        assert la.bias.dtype == lb.bias.dtype and np.array_equal(la.bias, lb.bias), f"layer {i} bias"
        assert len(la.synapses) == len(lb.synapses), f"layer {i} synapse count"
        for k, (sa, sb) in enumerate(zip(la.synapses, lb.synapses)):
            for name in ("source", "kind", "weight_exp", "stride", "padding", "dilation", "groups"):
                assert getattr(sa, name) == getattr(sb, name), f"layer {i} synapse {k} {name}"
            assert sa.weight.dtype == sb.weight.dtype, f"layer {i} synapse {k} weight dtype"
            assert np.array_equal(sa.weight, sb.weight), \
                f"layer {i} synapse {k}: {np.argwhere(sa.weight != sb.weight)[:5]=}"


@pytest.mark.parametrize("make", [file_chain_net, file_residual_net])
def test_round_trip_is_exact(make, tmp_path: Path) -> None:
    net = make()
    snapshot = [(l.bias.copy(), [s.weight.copy() for s in l.synapses]) for l in net.layers]
    assert write_netx(net, tmp_path / "m.net") == tmp_path / "m.net"
    assert_same_network(net, read_netx(tmp_path / "m.net"))
    assert_same_network(net, make())   # the writer did not touch its input
    for (bias, weights), layer in zip(snapshot, net.layers):
        assert np.array_equal(bias, layer.bias)
        assert all(np.array_equal(w, s.weight) for w, s in zip(weights, layer.synapses))


def test_key_layout(tmp_path: Path) -> None:
    write_netx(file_chain_net(), tmp_path / "c.net")
    write_netx(file_residual_net(), tmp_path / "r.net")
    with h5py.File(tmp_path / "c.net", "r") as h:
        types = [h[f"layer/{g}/type"][0].decode("ascii") for g in range(len(h["layer"]))]
        assert types == ["input", "conv", "conv", "flatten", "dense", "dense"]
        assert "neuron" not in h["layer/0"] and list(h["layer/0/shape"][()]) == [2, 8, 8]
        assert list(h["layer/3/shape"][()]) == [96, 1, 1]
        assert h["layer/1/neuron/type"][0] == b"IF_SOFT" and h["layer/5/neuron/type"][0] == b"ACCUMULATE"
        assert h["layer/1/bias"].shape == (4, 8, 8) and h["layer/1/neuron/vInit"][()] == 64 * 1500
        assert list(h["layer/2/stride"][()]) == [2, 2] and h["layer/2/groups"][()] == 1
        assert (h["layer/2/inChannels"][()], h["layer/2/outChannels"][()]) == (4, 6)
        assert (h["layer/4/inFeatures"][()], h["layer/4/outFeatures"][()], h["layer/4/wgtExp"][()]) == (96, 12, 0)
        assert h["slipsnn/input_bits"][()] == 8 and h["slipsnn/num_classes"][()] == 5
        names: list[str] = []
        h.visit(names.append)
        assert not [n for n in names if "messageBits" in n]
    with h5py.File(tmp_path / "r.net", "r") as h:
        assert h["layer/3/residual/1/source"][()] == 0 and h["layer/3/residual/1/type"][0] == b"conv"
        assert h["layer/3/residual/1/groups"][()] == 4 and h["layer/5/wgtExp"][()] == -2
        assert [h[f"layer/{g}/name"][0] for g in (1, 2, 3, 5, 6)] == [b"b0", b"b1", b"b2", b"fc3", b"out"]


def test_cuba_variant_values(tmp_path: Path) -> None:
    """v_init folds into the threshold, bias << bias_exp into a bias_exp-6 mantissa, per-neuron bias → WHC."""
    net = file_chain_net()
    write_netx(net, tmp_path / "c.net", neuron="cuba")
    with h5py.File(tmp_path / "c.net", "r") as h:
        vth = [h[f"layer/{g}/neuron/vThMant"][()] for g in (1, 2, 4, 5)]
        assert vth == [3000 - 1500 - 1, 400 - 200 - 1, 499, 131071]   # ⌈θ − v_init/64⌉ − 1; silent output
        assert np.array_equal(h["layer/1/bias"][()], net.layers[0].bias.transpose(2, 1, 0))
        assert np.array_equal(h["layer/4/bias"][()], net.layers[2].bias * 2)   # bias_exp 7 → 6
        assert h["layer/1/neuron/type"][0] == b"CUBA" and h["slipsnn/neuron"][0] == b"cuba"
    with pytest.raises(FormatError, match="stock-netx"):
        read_netx(tmp_path / "c.net")


def _stock_netx():
    """lava-dl's netx reader, imported the way slipsnn imports Lava (see ``lava_runtime.require_lava``)."""
    from slipsnn.toolchain.backends.lava.runtime import require_lava
    require_lava()
    return pytest.importorskip("lava.lib.dl.netx.hdf5")


@pytest.mark.lava
def test_stock_netx_loads_cuba_file(tmp_path: Path) -> None:
    hdf5 = _stock_netx()
    net = file_chain_net()
    write_netx(net, tmp_path / "c.net", neuron="cuba")
    lava_net = hdf5.Network(net_config=str(tmp_path / "c.net"), input_message_bits=8)
    assert len(lava_net.layers) == len(net.layers)
    for layer, block in zip(net.layers, lava_net.layers):
        assert tuple(block.shape) == layer.shape[::-1]
        w = layer.synapses[0].weight
        if w.ndim == 4:   # netx flips the kernel (Lava's conv is a true convolution) and stores (Cout, kW, kH, Cin)
            assert np.array_equal(block.synapse.weight.init, w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))
        else:             # even weights in [−256, 254]: optimize_weight_bits leaves them unchanged
            assert np.array_equal(block.synapse.weights.init, w)
    assert np.array_equal(lava_net.layers[0].neuron.bias_mant.init, net.layers[0].bias.transpose(2, 1, 0))


def _ir_first_step(net: IntNetwork, image: np.ndarray) -> list[np.ndarray]:
    """Each layer's membrane after one IR step (before reset), from the module docstring of ``ir``."""
    torch = pytest.importorskip("torch")
    out: dict[int, np.ndarray] = {-1: image.astype(np.int64)}
    membranes = []
    for i, layer in enumerate(net.layers):
        a = 0
        for syn in layer.synapses:
            s = out[syn.source]
            if syn.kind.value == "conv":   # float64 conv2d is exact for these integers (< 2**53)
                a = a + torch.nn.functional.conv2d(
                    torch.from_numpy(s[None].astype(np.float64)), torch.from_numpy(syn.weight.astype(np.float64)),
                    stride=syn.stride, padding=syn.padding, dilation=syn.dilation, groups=syn.groups,
                )[0].numpy().astype(np.int64)
            else:
                a = a + ((syn.weight.astype(np.int64) @ s.reshape(-1)) >> -syn.weight_exp)
        v = np.clip(layer.v_init + (a << 6) + (layer.bias_full() << layer.bias_exp), -(2 ** 23 - 1), 2 ** 23 - 1)
        out[i] = (v >= layer.threshold << 6).astype(np.int64) if layer.spiking else v
        membranes.append(v)
    return membranes


@pytest.mark.lava
def test_stock_netx_runs_cuba_file_exactly_at_t1(tmp_path: Path) -> None:
    """With a reset every step, each stock CUBA layer does one IR step: v_Lava = v_IR − v_init, 0 after a spike."""
    hdf5 = _stock_netx()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer

    net, steps = file_chain_net(), 6
    image = np.random.default_rng(2).integers(0, 12, net.input_shape)   # small: no 24-bit wrap in Lava's u
    write_netx(net, tmp_path / "c.net", neuron="cuba")
    lava_net = hdf5.Network(net_config=str(tmp_path / "c.net"), input_message_bits=8, reset_interval=1)
    source = RingBuffer(data=np.repeat(image.transpose(2, 1, 0)[..., None], steps, axis=-1))
    source.s_out.connect(lava_net.inp)
    try:
        lava_net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        got = [np.asarray(block.neuron.v.get()) for block in lava_net.layers]
    finally:
        lava_net.stop()
    for i, (layer, v_ir, v) in enumerate(zip(net.layers, _ir_first_step(net, image), got)):
        want = v_ir - layer.v_init
        if layer.spiking:
            assert 0 < (v_ir >= layer.threshold << 6).mean() < 1, f"layer {i}: no informative spikes"
            want = np.where(v_ir >= layer.threshold << 6, 0, want)
        v = v.transpose(2, 1, 0) if v.ndim == 3 else v
        assert (v == want).all(), f"layer {i}: {np.argwhere(v != want)[:5]=}"


@pytest.mark.lava
def test_stock_netx_rejects_if_soft_file(tmp_path: Path) -> None:
    """Stock netx does not know IF_SOFT: slipsnn's own Lava runtime is needed for the exact file."""
    hdf5 = _stock_netx()
    write_netx(file_chain_net(), tmp_path / "s.net")
    with pytest.raises(AttributeError):
        hdf5.Network(net_config=str(tmp_path / "s.net"))


def test_cuba_refuses_what_stock_netx_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"layer 2 \('b2'\).*residual"):
        write_netx(file_residual_net(), tmp_path / "r.net", neuron="cuba")
    with pytest.raises(FormatError, match="allowed"):
        write_netx(file_chain_net(), tmp_path / "x.net", neuron="lif")
    assert not list(tmp_path.iterdir())


def _edit(path: Path, fn) -> Path:
    with h5py.File(path, "r+") as h:
        fn(h)
    return path


def _replace(key: str, **dataset):
    def fn(h: h5py.File) -> None:
        del h[key]
        h.create_dataset(key, **dataset)
    return fn


def _drop_flatten(h: h5py.File) -> None:
    del h["layer/3"]
    h.move("layer/4", "layer/3")
    h.move("layer/5", "layer/4")


@pytest.mark.parametrize("edit, message", [
    (_replace("layer/1/weight", data=np.zeros((4, 2, 3, 3), np.float32)), r"layer/1/weight: dtype float32"),
    (_replace("layer/2/neuron/vInit", data=np.nan), r"layer/2/neuron/vInit: dtype float64"),
    (_replace("layer/2/neuron/vThMant", data=np.array(b"400")), r"vThMant: dtype \|S3"),
    (lambda h: h.__delitem__("layer/2/neuron/vThMant"), r"layer/2/neuron: missing dataset 'vThMant'"),
    (_replace("layer/1/shape", data=np.array([4, 100000, 100000])), r"layer/1/shape: \[4, 100000, 100000\]"),
    (_replace("layer/4/weight", shape=(2 ** 20, 2 ** 20), dtype=np.int32, chunks=(64, 64)),
     r"layer/4/weight: declared shape \(1048576, 1048576\) \(1099511627776 elements\) does not fit a dense synapse from \[6, 4, 4\]"),
    (_replace("layer/2/type", data=[b"pool"]), r"'pool'; allowed: \['flatten', 'conv', 'dense'\]"),
    (_replace("layer/2/neuron/vThMant", data=2 ** 20),
     r"layer/2: layer 'conv1': threshold 1048576 outside the 17-bit range"),
    (_replace("layer/4/neuron/biasExp", data=9), r"bias_exp 9 outside"),
    (lambda h: h.__delitem__("layer/3"), r"layer: subgroups"),
    (lambda h: h.__delitem__("slipsnn"), r"missing group 'slipsnn'"),
    (_replace("slipsnn/format_version", data=2), r"format_version 2"),
    (_replace("slipsnn/meta_json", data=[b"{not json"]), r"slipsnn/meta_json: not JSON"),
    (_drop_flatten, r"layer/3: a single 'flatten' group must precede"),
    (_replace("slipsnn/num_classes", data=4), r"slipsnn/num_classes does not match"),
])
def test_bad_files_raise_format_error(edit, message: str, tmp_path: Path) -> None:
    path = _edit(write_netx(file_chain_net(), tmp_path / "m.net"), edit)
    with pytest.raises(FormatError, match=message) as err:
        read_netx(path)
    assert str(path) in str(err.value)


def test_residual_source_is_checked(tmp_path: Path) -> None:
    path = _edit(write_netx(file_residual_net(), tmp_path / "r.net"), _replace("layer/3/residual/1/source", data=2))
    with pytest.raises(FormatError, match="residual synapse 1 points to layer 2"):
        read_netx(path)


def test_truncated_and_foreign_files(tmp_path: Path) -> None:
    path = write_netx(file_chain_net(), tmp_path / "m.net")
    data = path.read_bytes()
    (tmp_path / "half.net").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.net").write_text("layer/0/type = input\n")
    for name in ("half.net", "text.net"):
        with pytest.raises(FormatError, match=rf"{name}: not an HDF5 file"):
            read_netx(tmp_path / name)
    with pytest.raises(FormatError, match="no such file"):
        read_netx(tmp_path / "missing.net")


def test_failed_write_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_netx(file_chain_net(), tmp_path / "m.net")
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(netx, "_write_layer", explode)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_netx(file_residual_net(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.net"]
    with pytest.raises(FormatError, match="cannot write"):
        write_netx(file_chain_net(), path / "under-a-file.net")   # the parent is a file

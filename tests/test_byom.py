"""Bring your own model: slipify's refusals, the one-call API, the model file (safe to read) and the commands on it."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from slipsnn import toolchain
from slipsnn.exporters.floatnet import read_float_network, write_float_network
from slipsnn.exporters.netx import read_netx
from slipsnn.toolchain import cli
from slipsnn.toolchain.ann.activations import DEFAULT_L, DEFAULT_THETA0, SlipReLU, clamp_activations_, slipify
from slipsnn.toolchain.ann.models import Normalize
from slipsnn.toolchain.backends.simulator import simulate_float, simulate_int
from slipsnn.toolchain.conversion.check import input_warning
from slipsnn.toolchain.conversion.lower import lower
from slipsnn.toolchain.conversion.quantize import QuantConfig, quantize
from slipsnn.toolchain.data.loaders import load_tensors
from slipsnn.toolchain.errors import FormatError, ModelError
from slipsnn.toolchain.ir.activation import preset_params
from slipsnn.toolchain.pipeline import load_model, save_model


class DigitsNet(nn.Module):
    """A user's own model: its own forward(), functional relu and max-pool, a residual add."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = Normalize([0.305], [0.376])
        self.c1, self.c2 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.c3 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.c1(self.norm(x)))
        a = F.max_pool2d(F.relu(self.c2(a) + a), 2)
        a = F.max_pool2d(F.relu(self.c3(a)), 2)
        return self.fc(a.flatten(1))


def _trained(epochs: int = 4) -> tuple[nn.Module, float]:
    torch.manual_seed(0)
    x, y = load_tensors("digits", "train")
    xt, yt = load_tensors("digits", "test")
    model = slipify(DigitsNet())
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(64):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            clamp_activations_(model)
    model.eval()
    with torch.no_grad():
        acc = float((model(xt).argmax(1) == yt).double().mean())
    return model, acc


@pytest.fixture(scope="module")
def user_files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A trained user model written as a model file (read-only for the tests)."""
    model, acc = _trained()
    folder = tmp_path_factory.mktemp("byom")
    path = save_model(model, folder / "mine.snn.npz", (1, 8, 8), dataset="digits",
                      metrics={"ann_accuracy": acc})
    return {"model": model, "acc": acc, "file": path, "folder": folder}


def test_slipify_defaults_are_the_measured_ones() -> None:
    net = slipify(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU6(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2, 2)))
    act = net[1]
    assert isinstance(act, SlipReLU) and float(act.theta) == DEFAULT_THETA0 == 1.0 and act.L == DEFAULT_L == 4
    assert type(net[2]) is nn.AvgPool2d and net[2].kernel_size == 2 and net[2].stride == 2


def test_slipify_refuses_every_inexact_part_at_once_or_warns_with_strict_false() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.GELU(), nn.Conv2d(2, 2, 3), nn.LeakyReLU(), nn.MaxPool2d(3, 2, 1),
                          nn.Dropout2d(), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(ModelError) as err:
        slipify(model)
    msg = str(err.value)
    assert msg.startswith("slipify cannot make 3 part(s) of the model exact: 1 (GELU)"), msg
    assert "3 (LeakyReLU)" in msg and "4 (MaxPool2d(kernel_size=3, stride=2, padding=1))" in msg
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept = slipify(model, strict=False)
    assert [str(w.message).split(" (")[0] for w in caught] == ["slipify leaves 1", "slipify leaves 3",
                                                               "slipify leaves 4"]
    assert type(kept[1]) is nn.GELU and type(kept[4]) is nn.MaxPool2d and type(kept[5]) is nn.Dropout2d


def test_slipify_refuses_inexact_calls_in_a_forward() -> None:
    class Silu(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(F.silu(x.flatten(1)))

    with pytest.raises(ModelError, match=r"graph node 'silu' at .*test_byom.py:\d+ `return self.fc\(F.silu"):
        slipify(Silu())


def test_dropout2d_converts_as_identity() -> None:
    torch.manual_seed(1)
    model = slipify(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.3), nn.Flatten(),
                                  nn.Linear(32, 3))).eval()
    ref = slipify(nn.Sequential(*[m for m in model if not isinstance(m, nn.Dropout2d)]))
    a, b = lower(model, (1, 4, 4)), lower(ref, (1, 4, 4))
    assert [np.array_equal(p.synapses[0].weight, q.synapses[0].weight) for p, q in zip(a.layers, b.layers)] == [True, True]


def test_public_api_is_lazy_and_complete() -> None:
    code = ("import sys, slipsnn.toolchain as t; assert 'torch' not in sys.modules, 'eager torch import'; "
            "names = ['slipify', 'check_convertible', 'convert', 'write_netx', 'read_netx', 'run', 'save_model', "
            "'load_model']; print(all(callable(getattr(t, n)) for n in names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        toolchain.nope  # noqa: B018


def test_convert_is_lower_then_quantize_and_run_matches_the_simulator(user_files: dict) -> None:
    model = user_files["model"]
    net = toolchain.convert(model, (1, 8, 8), timesteps=2, dataset="digits")
    ref = quantize(lower(model, (1, 8, 8)), QuantConfig(2))
    for a, b in zip(net.layers, ref.layers):
        for sa, sb in zip(a.synapses, b.synapses):
            assert np.array_equal(sa.weight, sb.weight) and sa.weight_exp == sb.weight_exp
        assert np.array_equal(a.bias, b.bias) and a.threshold == b.threshold
    xt, yt = load_tensors("digits", "test", limit=120)
    res = toolchain.run(net, xt, yt)
    sim = simulate_int(net, (xt * 255).round(), 2)
    assert res.accuracy == sim.accuracy(yt.numpy())[-1]
    assert res.accuracy > 0.5, res.accuracy     # far above chance (0.1): the network is the trained one
    with pytest.raises(Exception, match="floats in \\[0, 1\\]"):
        toolchain.run(net, xt - 0.5, yt)


def test_model_file_round_trip_is_exact(user_files: dict) -> None:
    snn = lower(user_files["model"], (1, 8, 8))
    back = load_model(user_files["file"])
    assert back.input_shape == snn.input_shape and len(back.layers) == len(snn.layers)
    for a, b in zip(back.layers, snn.layers):
        assert (a.name, a.shape, a.spiking, a.theta, a.act, a.v_init, a.ann_macs) == \
               (b.name, b.shape, b.spiking, b.theta, b.act, b.v_init, b.ann_macs)
        assert np.array_equal(a.bias, b.bias)
        for sa, sb in zip(a.synapses, b.synapses, strict=True):
            assert (sa.source, sa.kind, sa.stride, sa.padding, sa.dilation, sa.groups) == \
                   (sb.source, sb.kind, sb.stride, sb.padding, sb.dilation, sb.groups)
            assert np.array_equal(sa.weight, sb.weight)
    assert back.meta["dataset"] == "digits" and back.meta["arch"] == "DigitsNet"
    assert back.meta["activation"] == {"preset": "slip", "params": preset_params("slip", L=4).to_dict()}
    assert back.meta["metrics"]["ann_accuracy"] == user_files["acc"]


class _Evil:
    """Unpickling this creates the file ``path``: the proof that a reader ran pickled code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _write_npz(path: Path, **arrays: np.ndarray) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


@pytest.mark.parametrize("member", ["header", "l0.bias"])
def test_a_hostile_model_file_cannot_run_code(user_files: dict, tmp_path: Path, member: str) -> None:
    marker = tmp_path / "pwned"
    good = np.load(user_files["file"])
    arrays = {k: good[k] for k in good.files}
    arrays[member] = np.array([_Evil(str(marker))], dtype=object)
    path = _write_npz(tmp_path / "evil.snn.npz", **arrays)
    assert np.load(path, allow_pickle=True)[member] is not None and marker.exists(), "the payload must be live"
    marker.unlink()
    with pytest.raises(FormatError, match=f"array {member!r} has dtype object; allowed: plain numbers"):
        read_float_network(path)
    res = CliRunner().invoke(cli.main, ["export", str(path), "-o", str(tmp_path / "x.net")])
    assert res.exit_code == 1 and "has dtype object" in res.output
    assert not marker.exists(), "reading the model file ran pickled code"


def test_malformed_model_files_are_one_sentence(user_files: dict, tmp_path: Path) -> None:
    good = np.load(user_files["file"])
    doc = json.loads(good["header"].tobytes())
    doc["layers"][0]["theta"] = "high"
    arrays = {k: good[k] for k in good.files}
    arrays["header"] = np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)
    with pytest.raises(FormatError, match="layer 0: field 'theta' = 'high' has the wrong type"):
        read_float_network(_write_npz(tmp_path / "a.snn.npz", **arrays))
    del arrays["l1.s0.weight"]
    arrays["header"] = good["header"]
    with pytest.raises(FormatError, match="array 'l1.s0.weight' named by the header is missing"):
        read_float_network(_write_npz(tmp_path / "b.snn.npz", **arrays))
    arrays = {k: good[k] for k in good.files}
    arrays["l0.bias"] = np.zeros(3)
    with pytest.raises(FormatError, match="invalid network .*bias of shape \\(3,\\)"):
        read_float_network(_write_npz(tmp_path / "c.snn.npz", **arrays))


def test_model_file_meta_must_be_json(tmp_path: Path, user_files: dict) -> None:
    snn = load_model(user_files["file"])
    bad = type(snn)(snn.input_shape, snn.layers, {"dataset": object()})
    with pytest.raises(FormatError, match="meta is not plain JSON"):
        write_float_network(bad, tmp_path / "m.snn.npz")
    assert not (tmp_path / "m.snn.npz").exists()


def test_commands_accept_the_user_model_file(user_files: dict) -> None:
    folder, path = user_files["folder"], user_files["file"]
    run = CliRunner().invoke
    net_path = folder / "mine.net"
    res = run(cli.main, ["export", str(path), "-o", str(net_path), "--timesteps", "2"])
    assert res.exit_code == 0, res.output
    net = read_netx(net_path)
    ref = toolchain.convert(load_model(path), timesteps=2)
    assert all(np.array_equal(a.synapses[0].weight, b.synapses[0].weight) for a, b in zip(net.layers, ref.layers))
    res = run(cli.main, ["chain", str(path), str(net_path), "--backend", "fast", "--timesteps", "1", "2",
                         "--limit", "150"])
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in res.output.splitlines()[1:]}
    xt, yt = load_tensors("digits", "test", limit=150)
    with torch.no_grad():
        ann = 100 * float((user_files["model"](xt).argmax(1) == yt).double().mean())
    assert abs(rows["ANN"][0] - ann) <= 100 / 150 + 1e-9, (rows["ANN"], ann)
    assert rows["int_snn"] == rows["fast"]
    snn_acc = simulate_float(load_model(path), (xt * 255).round(), 2).accuracy(yt.numpy())
    assert rows["float_snn"] == [round(100 * float(a), 2) for a in snn_acc]
    res = run(cli.main, ["analyze", str(path), "--timesteps", "2", "--limit", "60", "--delta2", "0.5"])
    assert res.exit_code == 0 and "c3:pool+conv" in res.output, res.output
    acc = simulate_float(load_model(path), (xt[:60] * 255).round(), 2).accuracy(yt[:60].numpy())[-1]
    assert f"SNN accuracy {100 * acc:.2f} %" in res.output, res.output
    res = run(cli.main, ["report", str(net_path), "--timesteps", "1", "--limit", "60"])
    assert res.exit_code == 0 and "chips: " in res.output, res.output


def test_normalized_inputs_without_normalize_in_the_model_warn() -> None:
    x, _ = load_tensors("digits", "train", limit=200)
    plain = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 2))
    normalized = (x - x.mean()) / x.std()
    assert input_warning(plain, x) is None
    assert "look normalized outside the model" in input_warning(plain, normalized)
    assert input_warning(nn.Sequential(Normalize([0.3], [0.4]), *plain), normalized) is None
    with pytest.warns(UserWarning, match="put the normalization into the model"):
        toolchain.convert(slipify(plain), (1, 8, 8), images=normalized)


def test_relu_models_get_their_thetas_from_the_images() -> None:
    torch.manual_seed(4)
    x, _ = load_tensors("digits", "train", limit=300)
    plain = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(108, 4))
    with pytest.raises(ModelError, match="calibrate"):
        toolchain.convert(plain, (1, 8, 8))
    net = toolchain.convert(plain, (1, 8, 8), images=x)
    with torch.no_grad():
        top = torch.quantile(plain[:2](x).flatten()[plain[:2](x).flatten() > 0].double(), 0.999)
    assert abs(net.meta["thetas"]["0:conv"] - float(top)) < 1e-6, (net.meta["thetas"], float(top))


def test_train_cli_takes_theta0(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli.main, ["train", "--epochs", "1", "--width", "0.25", "--theta0", "0.5", "--quiet",
                                        "--device", "cpu", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    assert ckpt["train_config"]["theta_init"] == 0.5

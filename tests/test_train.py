"""Training, checkpoints (safe loading, bit-exact round trip), calibration and atomic writes."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from slipsnn.toolchain.files import atomic_write, atomic_write_json
from slipsnn.toolchain.ann.checkpoint import REQUIRED_KEYS, load_checkpoint, save_checkpoint
from slipsnn.toolchain.data.loaders import load_tensors
from slipsnn.toolchain.errors import ModelError, SlipsnnError
from slipsnn.toolchain.conversion.lower import lower
from slipsnn.toolchain.backends.simulator import simulate_float
from slipsnn.toolchain.ann.calibration import calibrate_thresholds
from slipsnn.toolchain.ann.training import TrainConfig, TrainResult, fit, split_indices, train
from slipsnn.toolchain.pipeline import snn_accuracies


def _train(out_dir: Path | None, epochs: int = 2, **overrides: object) -> TrainResult:
    """A few epochs of a quarter-width digits CNN on the CPU (about 0.3 s each)."""
    cfg = TrainConfig.for_dataset("digits", device="cpu", epochs=epochs, width=0.25,
                                  out_dir=None if out_dir is None else str(out_dir), **overrides)
    return train(cfg, progress=False)


def _no_times(metrics: dict) -> dict:
    """Metrics without the wall times (``seconds`` of the run and of every epoch)."""
    return {k: v for k, v in metrics.items() if k != "seconds"} | {
        "history": [{k: v for k, v in h.items() if k != "seconds"} for h in metrics["history"]]}


def test_training_writes_a_checkpoint_that_rebuilds_the_model_bit_for_bit(tmp_path: Path) -> None:
    res = _train(tmp_path)
    assert res.checkpoint == tmp_path / "model.pt" and res.checkpoint.is_file()
    m = res.metrics
    assert m["epochs"] == 2 and len(m["history"]) == 2 and m["finished"] is True
    assert m["selected_by"] == "validation" and m["val_size"] == 135 and m["train_size"] == 1212  # 10 % of 1347
    assert m["val_accuracy"] == max(h["val_accuracy"] for h in m["history"])
    val = [h["val_accuracy"] for h in m["history"]]
    assert m["best_epoch"] == len(val) - val[::-1].index(m["val_accuracy"]), "ties go to the later epoch"
    assert "test_accuracy" not in m["history"][0], "the test split is not looked at while training"
    assert m["ann_accuracy"] == m["test_accuracy"] > 0.5 and m["threads"] == 1
    assert m["history"][0]["lr"] == 0.1 and m["history"][1]["lr"] == pytest.approx(0.05)  # cosine, T_max = 2
    ckpt = load_checkpoint(res.checkpoint)
    assert (ckpt.preset, ckpt.dataset, ckpt.act, ckpt.model_cfg) == ("slip", "digits", res.act, res.model_cfg)
    assert ckpt.metrics == m and ckpt.thetas == res.thetas and ckpt.train_config["epochs"] == 2
    assert not ckpt.model.training
    x, _ = load_tensors("digits", "test", limit=64)
    with torch.no_grad():
        assert torch.equal(ckpt.model(x), res.model(x))
    for k, v in res.model.state_dict().items():
        assert torch.equal(ckpt.model.state_dict()[k], v), k


def test_checkpoint_is_weights_only_and_plain(tmp_path: Path) -> None:
    res = _train(tmp_path, activation="qcfs", L=4)
    data = torch.load(res.checkpoint, weights_only=True)
    assert set(data) == set(REQUIRED_KEYS)
    assert (data["format"], data["version"]) == ("slipsnn-checkpoint", 1)
    assert data["activation"] == {"preset": "qcfs", "a": 0.0, "L": 4, "delta1": 0.0, "delta2": 0.5,
                                  "a_learnable": False}
    assert data["input_shape"] == [1, 8, 8] and data["num_classes"] == 10
    slips = [n for n, mod in res.model.named_modules() if type(mod).__name__ == "SlipReLU"]
    assert sorted(data["thetas"]) == sorted(slips) and len(slips) == 3
    assert all(data["thetas"][n] == float(res.model.get_submodule(n).theta) for n in slips)
    assert not list(tmp_path.glob(".*tmp*")), "no temporary files left behind"


def test_same_seed_gives_identical_runs_and_another_seed_does_not(tmp_path: Path) -> None:
    a, b, c = _train(None, 1, seed=3), _train(None, 1, seed=3), _train(None, 1, seed=4)
    strip = _no_times
    assert strip(a.metrics) == strip(b.metrics)
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    assert a.metrics["history"][0]["loss"] != c.metrics["history"][0]["loss"]


class _Exploit:
    """Unpickling this would run ``exec``, which creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_a_malicious_pickle_is_refused_and_not_executed(tmp_path: Path, how: str) -> None:
    marker, path = tmp_path / "pwned.txt", tmp_path / "model.pt"
    payload = {"format": "slipsnn-checkpoint", "version": 1, "state_dict": {}, "evil": _Exploit(marker)}
    if how == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(ModelError, match="refusing") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)
    if how == "torch.save":
        assert "__builtin__.exec" in str(err.value), "names the object it refused"
    assert not marker.exists(), "the pickle's code ran"


def _valid_checkpoint(tmp_path: Path) -> Path:
    from slipsnn.toolchain.ir.activation import preset_params
    from slipsnn.toolchain.ann.models import ModelConfig, build_model
    cfg = ModelConfig("digits_cnn", 10, (1, 8, 8), (0.3,), (0.4,), width=0.25)
    act = preset_params("slip", L=4)
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "good.pt", build_model(cfg, act), cfg, act, dataset="digits",
                           metrics={"ann_accuracy": np.float64(0.5)})


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _resave(src: Path, dst: Path, edit) -> Path:
    data = torch.load(src, weights_only=True)
    edit(data)
    torch.save(data, dst)
    return dst


@pytest.mark.parametrize("make, match", [
    (lambda d, good: d / "absent.pt", "no such checkpoint file"),
    (lambda d, good: d, "is not a file"),
    (lambda d, good: _write(d / "empty.pt", b""), "not a torch.save archive"),
    (lambda d, good: _write(d / "junk.pt", b"\x00garbage" * 50), "not a torch.save archive"),
    (lambda d, good: _write(d / "half.pt", good.read_bytes()[: good.stat().st_size // 2]), "not a"),
    (lambda d, good: _resave(good, d / "other.pt", lambda x: (x.clear(), x.update(weights=torch.zeros(2)))),
     "not a slipsnn checkpoint"),
    (lambda d, good: _resave(good, d / "v2.pt", lambda x: x.update(version=2)), "format version 2"),
    (lambda d, good: _resave(good, d / "nothetas.pt", lambda x: x.pop("thetas")), r"lacks the fields \['thetas'\]"),
    (lambda d, good: _resave(good, d / "wide.pt", lambda x: x["model_config"].update(width=0.5)),
     "does not fit architecture 'digits_cnn'.*wrong shape"),
    (lambda d, good: _resave(good, d / "extra.pt", lambda x: x["state_dict"].update(bogus=torch.zeros(1))),
     r"unexpected \['bogus'\]"),
    (lambda d, good: _resave(good, d / "act.pt", lambda x: x["activation"].update(a=3.0)), "a=3.0"),
    (lambda d, good: _resave(good, d / "arch.pt", lambda x: x["model_config"].update(arch="alexnet")),
     "unknown architecture 'alexnet'"),
], ids=["absent", "folder", "empty", "junk", "truncated", "foreign", "version", "no-thetas", "wrong-width",
        "extra-key", "bad-a", "bad-arch"])
def test_bad_files_give_one_model_error(tmp_path: Path, make, match: str) -> None:
    good = _valid_checkpoint(tmp_path)
    path = make(tmp_path, good)
    with pytest.raises(ModelError, match=match) as err:
        load_checkpoint(path)
    assert str(err.value).startswith(str(path)), err.value
    assert "\n" not in str(err.value)


def test_relu_preset_stores_calibrated_theta_per_relu(tmp_path: Path) -> None:
    res = _train(tmp_path, activation="relu")
    relus = [n for n, m in res.model.named_modules() if isinstance(m, nn.ReLU)]
    ckpt = load_checkpoint(res.checkpoint)
    assert ckpt.preset == "relu" and ckpt.act is None
    assert sorted(ckpt.thetas) == sorted(relus) and len(relus) == 3
    # θ = 99.9th percentile of each ReLU's positive outputs on the first 1024 training images
    x, _ = load_tensors("digits", "train", limit=1024)
    outs: dict[str, list[torch.Tensor]] = {n: [] for n in relus}
    hooks = [res.model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: outs[n].append(o)) for n in relus]
    with torch.no_grad():
        res.model(x)
    for h in hooks:
        h.remove()
    for n in relus:
        v = torch.cat(outs[n]).flatten().double().numpy()
        assert ckpt.thetas[n] == pytest.approx(np.percentile(v[v > 0], 99.9), rel=1e-6), n
    assert snn_accuracies(ckpt.model, ckpt.model_cfg, ckpt.thetas, x[:32], torch.zeros(32, dtype=torch.long), (1,))


def test_calibration_percentile_is_exact_with_bounded_memory() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 40), nn.ReLU(), nn.Linear(40, 30), nn.ReLU())
    x = torch.rand(700, 1, 3, 4)
    for q in (99.9, 99.0, 50.0, 100.0):
        thetas = calibrate_thresholds(model, x, percentile=q, batch_size=64)
        with torch.no_grad():
            h1 = model[2](model[1](model[0](x)))
            h2 = model[4](model[3](h1))
        for name, h in (("2", h1), ("4", h2)):
            v = h.flatten().double().numpy()
            assert thetas[name] == pytest.approx(np.percentile(v[v > 0], q), rel=1e-9, abs=1e-12), (q, name)
    assert calibrate_thresholds(model, x, max_images=10) != calibrate_thresholds(model, x)
    with pytest.raises(SlipsnnError, match="percentile"):
        calibrate_thresholds(model, x, percentile=0.0)


def test_snn_accuracies_read_every_t_from_one_pass() -> None:
    res = _train(None, activation="slip", L=4)
    x, y = load_tensors("digits", "test", limit=100)
    got = snn_accuracies(res.model, res.model_cfg, res.thetas, x, y, timesteps=(4, 1, 2))
    assert list(got) == [1, 2, 4]
    acc = simulate_float(lower(res.model, (1, 8, 8)), (x * 255).round(), 4).accuracy(y)
    assert got == {1: acc[0], 2: acc[1], 4: acc[3]}
    assert snn_accuracies(res.model, res.model_cfg, None, x, y, (1,))[1] == acc[0]


def test_train_config_defaults_and_validation() -> None:
    cifar = TrainConfig.for_dataset("cifar10")
    assert (cifar.arch, cifar.epochs, cifar.lr, cifar.batch_size, cifar.theta_init, cifar.augment) == \
        ("resnet20", 300, 0.1, 128, 8.0, True)
    assert cifar.act_params().L == 16 and cifar.weight_decay == 5e-4 and cifar.momentum == 0.9
    assert TrainConfig(dataset="cifar10") == cifar and TrainConfig.for_dataset("tiny-imagenet").arch == "resnet18"
    digits = TrainConfig()
    assert (digits.dataset, digits.arch, digits.L, digits.theta_init) == ("digits", "digits_cnn", 4, 1.0)
    assert TrainConfig.for_dataset("digits", activation="relu").act_params() is None
    assert TrainConfig.for_dataset("digits", activation="qcfs", L=4).act_params().L == 4
    with pytest.raises(SlipsnnError, match="unknown training options"):
        TrainConfig.for_dataset("digits", learning_rate=0.1)
    with pytest.raises(ModelError, match="unknown activation"):
        TrainConfig.for_dataset("digits", activation="gelu")
    with pytest.raises(ModelError, match="takes no SlipReLU parameters"):
        TrainConfig(activation="relu", L=4)
    with pytest.raises(SlipsnnError, match="epochs=0"):
        TrainConfig(epochs=0)


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path: Path) -> None:
    path = atomic_write_json(tmp_path / "sub" / "x.json", {"b": 1, "a": [1, 2]})
    assert path.read_text() == '{\n  "b": 1,\n  "a": [\n    1,\n    2\n  ]\n}\n'

    def partial_then(exc: BaseException):
        def writer(tmp: Path) -> None:
            tmp.write_text("half")
            raise exc
        return writer

    for exc in (OSError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            atomic_write(path, partial_then(exc))
        assert path.read_text().startswith('{\n  "b": 1')
        assert sorted(p.name for p in path.parent.iterdir()) == ["x.json"], "temporary file removed"


def test_validation_split_is_seeded_disjoint_and_the_same_for_every_training_seed() -> None:
    tr, va = split_indices(1347, 0.1, seed=0)
    assert len(va) == 135 and len(tr) == 1212 and not set(tr) & set(va) and sorted(tr + va) == list(range(1347))
    assert split_indices(1347, 0.1, seed=0) == (tr, va) and split_indices(1347, 0.1, seed=1)[1] != va
    assert split_indices(10, 0.0) == (list(range(10)), [])
    with pytest.raises(SlipsnnError, match="val_fraction=1.0"):
        split_indices(10, 1.0)
    with pytest.raises(SlipsnnError, match="empty split"):
        split_indices(3, 0.1)
    a, b = _train(None, 1, seed=0), _train(None, 1, seed=5)
    assert a.metrics["val_size"] == b.metrics["val_size"] == 135


def test_no_validation_keeps_the_last_epoch() -> None:
    res = _train(None, 2, val_fraction=0.0)
    m = res.metrics
    assert (m["selected_by"], m["best_epoch"], m["val_accuracy"], m["train_size"]) == ("last_epoch", 2, None, 1347)


def test_stop_after_and_resume_equal_an_uninterrupted_run(tmp_path: Path) -> None:
    whole = _train(tmp_path / "whole", 3)
    cfg = TrainConfig.for_dataset("digits", device="cpu", epochs=3, width=0.25, out_dir=str(tmp_path / "parts"))
    first = train(cfg, progress=False, stop_after=2)
    assert first.metrics["finished"] is False and first.metrics["epochs"] == 2 and first.checkpoint is None
    assert (tmp_path / "parts" / "resume.pt").is_file() and not (tmp_path / "parts" / "model.pt").exists()
    assert first.metrics["test_accuracy"] is None, "an unfinished run does not score the test split"
    rest = train(cfg, progress=False, resume=True)
    assert not (tmp_path / "parts" / "resume.pt").exists(), "resume.pt is removed when training finishes"
    strip = _no_times
    assert strip(rest.metrics) == strip(whole.metrics)
    assert all(torch.equal(v, whole.model.state_dict()[k]) for k, v in rest.model.state_dict().items())
    other = TrainConfig.for_dataset("digits", device="cpu", epochs=3, width=0.25, lr=0.2,
                                    out_dir=str(tmp_path / "parts"))
    train(cfg, progress=False, stop_after=1)
    with pytest.raises(SlipsnnError, match="resume file of another run"):
        train(other, progress=False, resume=True)


def test_results_do_not_depend_on_the_callers_thread_count() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = _train(None, 2)
        torch.set_num_threads(1)
        one = _train(None, 2)
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before
    strip = _no_times
    assert strip(one.metrics) == strip(two.metrics) and one.metrics["threads"] == 1
    assert all(torch.equal(v, two.model.state_dict()[k]) for k, v in one.model.state_dict().items())


def test_fit_trains_a_users_model_from_a_dataloader() -> None:
    from torch.utils.data import DataLoader, TensorDataset
    x, y = load_tensors("digits", "train")
    xt, yt = load_tensors("digits", "test")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    res = fit(model, loader, epochs=3, lr=0.05, test_data=TensorDataset(xt, yt), progress=False)
    m = res.metrics
    assert m["selected_by"] == "validation" and (m["train_size"], m["val_size"]) == (1212, 135)
    assert len(m["history"]) == 3 and m["test_accuracy"] > 0.8 and res.model_cfg is None
    with torch.no_grad():
        acc = float((res.model(xt).argmax(1) == yt).float().mean())
    assert acc == pytest.approx(m["test_accuracy"])
    with pytest.raises(SlipsnnError, match="divisible|stop_after"):
        fit(model, loader, epochs=1, stop_after=0, progress=False)


def test_cli_stop_after_then_resume_records_the_options(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from slipsnn.toolchain import cli
    args = ["--dataset", "digits", "--epochs", "2", "--width", "0.25", "--quiet", "--out", str(tmp_path),
            "--val-fraction", "0.2", "--threads", "1"]
    first = CliRunner().invoke(cli.train, args + ["--stop-after", "1"], catch_exceptions=False)
    assert first.exit_code == 0 and "stopped after epoch 1 of 2; continue with --resume" in first.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resume.pt"]
    second = CliRunner().invoke(cli.train, args + ["--resume"], catch_exceptions=False)
    assert second.exit_code == 0 and "chosen by validation" in second.output, second.output
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert (m["epochs"], m["val_size"], m["threads"], m["selected_by"]) == (2, 269, 1, "validation")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "model.pt"]

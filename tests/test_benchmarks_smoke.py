"""Smoke runs of the benchmark scripts: ``cifar.py --smoke`` (with a resume) and ``methods.py --quick``.

The scripts are imported from ``benchmarks/`` and their ``main(argv)`` is called in-process (one import of
torch for the whole file). On an idle 2-core machine the file takes about a minute.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _fraction(v: float) -> bool:
    return isinstance(v, float) and 0.0 <= v <= 1.0


def test_cifar_smoke_prints_the_paper_table(capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    summary = _script("cifar").main(["--smoke"])
    out = capsys.readouterr().out
    assert torch.get_num_threads() == threads, "main() restores torch's thread count"
    assert "CIFAR10 top-1 %" in out and "SMOKE RUN" in out
    head = next(line for line in out.splitlines() if line.startswith("method"))
    assert head.split() == ["method", "arch", "source", "ANN", "T=1", "T=2"]
    assert [line.split()[:3] for line in out.splitlines() if line.startswith(("SlipReLU", "QCFS"))] == \
        [["SlipReLU", "ResNet-20", "here"], ["QCFS", "ResNet-20", "here"]]
    published = next(line.split() for line in out.splitlines() if line.split()[:1] == ["published"])
    assert published[1:] == ["91.77", "–", "73.20"]   # QCFS ResNet-20 CIFAR-10: ANN, T=1 (not reported), T=2
    assert set(summary["runs"]) == {"resnet20_slip", "resnet20_qcfs"} and summary["timesteps"] == [1, 2]
    for run in summary["runs"].values():
        assert run["finished"] is True and run["samples"] == 20 and run["epochs"] == 1
        assert _fraction(run["ann"]) and set(run["float_snn"]) == set(run["int_snn"]) == {"1", "2"}
        assert all(_fraction(v) for v in [*run["float_snn"].values(), *run["int_snn"].values()])
        assert run["train_config"]["width"] == 0.125 and run["train_config"]["L"] is None   # preset's L = 16
    # the one MAC definition (kernels.connectivity.synapse_macs, in-bounds taps): 37.2 M, the report's figure;
    # counting every padded k² tap (thop, ptflops) would give 40 813 184
    assert summary["macs_per_image_width1"]["resnet20"] == 37_219_648


def test_cifar_resumes_an_interrupted_run_and_skips_finished_ones(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cifar = _script("cifar")
    args = ["--smoke", "--methods", "qcfs", "--epochs", "2", "--out", str(tmp_path), "--timesteps", "1"]
    run = tmp_path / "cifar10" / "resnet20_qcfs"
    first = cifar.main(args + ["--stop-after", "1"])
    assert first["runs"]["resnet20_qcfs"] == {"finished": False}
    saved = torch.load(run / "resume.pt", weights_only=True)
    assert saved["state"]["epoch"] == 1 and len(saved["state"]["history"]) == 1
    assert not (run / "results.json").exists()
    assert "stopping after epoch 1/2" in capsys.readouterr().err

    second = cifar.main(args)
    assert "resuming resnet20_qcfs at epoch 2/2" in capsys.readouterr().err
    assert not (run / "resume.pt").exists(), "resume.pt is removed when training finishes"
    ckpt = torch.load(run / "model.pt", weights_only=True)
    assert ckpt["metrics"]["finished"] is True and [h["epoch"] for h in ckpt["metrics"]["history"]] == [1, 2]
    assert json.loads((run / "results.json").read_text())["float_snn"].keys() == {"1"}
    assert second["runs"]["resnet20_qcfs"]["epochs"] == 2

    third = cifar.main(args)
    assert "finished earlier, skipped" in capsys.readouterr().err
    assert third["runs"]["resnet20_qcfs"] == second["runs"]["resnet20_qcfs"]


def test_methods_quick_writes_the_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    methods = _script("methods")
    result = methods.main(["--quick", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert "float SNN" in text and "integer SNN" in text and "paired difference vs qcfs" in text
    assert text.count("QCFS (a=0, δ₂=0.5)") == 2 and "T=8" in text and "runs done: 2 of 2" in text
    doc = json.loads((tmp_path / "digits" / "summary.json").read_text())
    assert doc == json.loads(json.dumps(result)) and doc["finished"] is True
    assert (doc["setting"]["epochs"], doc["seeds"], doc["timesteps"]) == (2, [0], [1, 2, 4, 8])
    assert [m["key"] for m in doc["methods"]] == ["qcfs", "slip_a0.5"]
    for m in doc["methods"]:
        (run,) = m["runs"]
        assert run["test_samples"] == 150 and run["selected_by"] == "validation"
        assert _fraction(run["ann"]) and run["ann"] > 0.5 and run["train_s_total"] > 0
        for kind in ("float_snn", "int_snn"):
            assert set(run[kind]) == {"1", "2", "4", "8"} and all(_fraction(v) for v in run[kind].values())
            assert m["summary"][kind]["8"] == {"mean": run[kind]["8"], "std": 0.0, "n": 1}
    comp = doc["comparisons"]["slip_a0.5"]["float_snn"]["4"]
    assert comp["n"] == 1 and comp["significant"] is None   # one seed decides nothing
    # a second call finds both results.json files and trains nothing
    again = methods.main(["--quick", "--out", str(tmp_path)])
    assert [m["runs"] for m in again["methods"]] == [m["runs"] for m in doc["methods"]]
    assert "seed 0: ANN" in capsys.readouterr().err
    methods.main(["--quick", "--out", str(tmp_path), "--summary-only", "--markdown"])
    md = capsys.readouterr().out
    assert "| QCFS (a=0, δ₂=0.5) | 1 | " in md and "| slip a=0.5 | int | 1 | " in md and "[–; –]" in md
    assert sum(line.startswith("|---") for line in md.splitlines()) == 3 and "Wall time per run" in md
    # the T = 1 diagnosis of the same runs: prediction skew and layer-wise error
    rows = _script("methods_t1").main(["--dataset", "digits", "--out", str(tmp_path), "--limit", "40"])
    assert [r["run"] for r in rows] == ["qcfs_s0", "slip_a0.5_s0"]
    for r in rows:
        assert abs(sum(r["class_shares"]) - 1) < 1e-9 and r["class_share_min"] <= 0.1 <= r["class_share_max"]
        assert _fraction(r["int_accuracy_t1"]) and len(r["layers"]) == 3
    assert r["int_accuracy_t1"] == _run_t1(tmp_path / "digits" / "slip_a0.5_s0")
    assert json.loads((tmp_path / "digits" / "t1_diagnosis.json").read_text())["runs"] == json.loads(json.dumps(rows))
    # killed after training, before results.json: the finished model.pt is evaluated, not retrained
    run_dir = tmp_path / "digits" / "qcfs_s0"
    stamp = (run_dir / "model.pt").stat().st_mtime_ns
    (run_dir / "results.json").unlink()
    third = methods.main(["--quick", "--out", str(tmp_path), "--methods", "qcfs"])
    assert (run_dir / "model.pt").stat().st_mtime_ns == stamp
    timing = ("train_s_this_call", "eval_s", "machine")
    assert {k: v for k, v in third["methods"][0]["runs"][0].items() if k not in timing} \
        == {k: v for k, v in doc["methods"][0]["runs"][0].items() if k not in timing}


def _run_t1(run_dir: Path) -> float:
    """The T = 1 integer accuracy of a run through the public path: export for T = 1, run on fast."""
    from slipsnn.toolchain.pipeline import export_checkpoint, run_file
    _, path = export_checkpoint(run_dir / "model.pt", run_dir / "t1.net", timesteps=1, max_timesteps=1)
    return run_file(path, backend="fast").accuracy


def test_paired_statistics_match_scipy() -> None:
    from scipy import stats
    methods = _script("methods")
    a = [{"seed": s, "int_snn": {"1": v}} for s, v in enumerate([0.80, 0.83, 0.81])]
    b = [{"seed": s, "int_snn": {"1": v}} for s, v in enumerate([0.78, 0.80, 0.80])]
    c = methods.paired(a, b, "int_snn", 1)
    ref = stats.ttest_rel([0.80, 0.83, 0.81], [0.78, 0.80, 0.80])
    assert c["n"] == 3 and abs(c["mean"] - 0.02) < 1e-12 and abs(c["p_t"] - ref.pvalue) < 1e-12
    assert c["significant"] is bool(ref.pvalue < 0.05) is False and c["wilcoxon_p"] == 0.25   # the smallest p with 3 seeds


def test_throughput_rows_by_batch_size_are_bit_exact(tmp_path: Path) -> None:
    """``throughput.py --batch-sizes``: a fast CPU row per batch size, each bit-exact with the automatic batch."""
    throughput = _script("throughput")
    threads = torch.get_num_threads()
    try:
        result = throughput.main(["--nets", "resnet20", "--samples", "3", "--timesteps", "2", "--repeats", "1",
                                  "--batch-sizes", "1", "2", "--out", str(tmp_path / "t.json")])
    finally:
        torch.set_num_threads(threads)
    (net,) = result["nets"]
    assert {r["backend"] for r in net["rows"]} == {"ann", "float_snn", "fast_cpu", "fast_cpu b=1", "fast_cpu b=2"}
    assert net["checks"]["T=2 fast_cpu b=1 bit-exact with fast_cpu"] is True
    assert net["checks"]["T=2 fast_cpu b=2 bit-exact with fast_cpu"] is True
    per_sample, automatic = net["checks"]["T=2 fast_cpu MB per sample, automatic batch"]
    assert per_sample > 0 and automatic >= 1

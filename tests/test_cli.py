"""CLI behaviour: exit codes (0 success, 1 failed run, 2 usage error), one-line errors, ``--debug`` tracebacks.

In-process tests use click's ``CliRunner``; a few run the installed console scripts to check real exit
codes and what reaches the terminal.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

from slipsnn.toolchain import cli
from slipsnn.toolchain.errors import SlipsnnError

from factories import untrained_digits_checkpoint

BIN = Path(sys.executable).parent


def build_files(folder: Path) -> dict[str, Path]:
    """An untrained quarter-width digits checkpoint, its exported network (T=2), and corrupt copies of both."""
    from slipsnn.toolchain.pipeline import export_checkpoint
    ckpt = untrained_digits_checkpoint(folder / "model.pt")
    _, net = export_checkpoint(ckpt, folder / "model.net", timesteps=2)
    files = {"pt": ckpt, "net": net, "bad_net": folder / "bad.net", "bad_pt": folder / "bad.pt",
             "empty_dir": folder / "empty"}
    files["bad_net"].write_bytes(net.read_bytes()[:3000])   # truncated HDF5
    files["bad_pt"].write_bytes(b"PK\x03\x04 not really a zip")
    files["empty_dir"].mkdir()
    for p in files.values():
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))   # read-only test input
    return files


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Read-only input files shared by the tests of this module (built once; tests write into tmp_path)."""
    return build_files(tmp_path_factory.mktemp("cli_files"))


def invoke(args: list[str]) -> Result:
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def error_lines(res: Result) -> list[str]:
    """The lines a terminal shows of stderr (a progress bar erased with ``\r`` is gone), without click's
    usage header of a usage error."""
    lines = [line.split("\r")[-1] for line in res.stderr.split("\n")]
    return [line for line in lines if line.strip() and not line.startswith(("Usage:", "Try '"))]


def assert_user_error(res: Result, code: int, match: str, max_lines: int = 1) -> None:
    assert res.exit_code == code, f"exit {res.exit_code}, expected {code}: {res.output}"
    assert isinstance(res.exception, SystemExit), f"escaped: {res.exception!r}"
    assert "Traceback" not in res.output, res.output
    lines = error_lines(res)
    assert 1 <= len(lines) <= max_lines and lines[0].startswith("Error: "), lines
    assert match in " ".join(lines), lines


# ------------------------------------------------------------------------------------------ help

@pytest.mark.parametrize("command", [None, *cli.main.commands])
def test_help_of_every_command(command: str | None) -> None:
    res = invoke([command, "--help"] if command else ["--help"])
    assert res.exit_code == 0 and res.output.startswith("Usage: "), res.output
    if command:
        assert "--debug" in res.output and cli.main.commands[command].help.split("\n")[0][:40] in res.output
    else:
        assert all(name in res.output for name in cli.main.commands)


@pytest.mark.parametrize("name", ["slipsnn", "slipsnn-train", "slipsnn-export", "slipsnn-run", "slipsnn-report"])
def test_help_of_the_installed_console_scripts(name: str) -> None:
    res = subprocess.run([str(BIN / name), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.startswith(f"Usage: {name} "), res.stderr[-2000:]


# ------------------------------------------------------------------------------------------ usage errors: 2

@pytest.mark.parametrize("args, match", [
    (["run", "{tmp}/missing.net"], "does not exist"),
    (["export", "{tmp}/missing.pt"], "does not exist"),
    (["report", "{tmp}/missing.net"], "does not exist"),
    (["chain", "{pt}", "{tmp}/missing.net"], "does not exist"),
    (["analyze", "{tmp}/missing.pt"], "does not exist"),
    (["run", "{net}", "--timesteps", "0"], "0 is not in the range x>=1"),
    (["export", "{pt}", "--timesteps", "0"], "0 is not in the range x>=1"),
    (["report", "{net}", "--timesteps", "0"], "0 is not in the range x>=1"),
    (["chain", "{pt}", "{net}", "--timesteps", "-1"], "-1 is not in the range x>=1"),
    (["analyze", "{pt}", "--timesteps", "0"], "0 is not in the range x>=1"),
    (["train", "--epochs", "0"], "0 is not in the range x>=1"),
    (["run", "{net}", "--backend", "gpu"], "'gpu' is not one of"),
    (["run", "{net}", "--dataset", "imagenet"], "'imagenet' is not one of"),
    (["run", "{empty_dir}"], "is a directory"),
    (["export", "{net}"], "model.net: is an input of this command"),   # the default output is the input itself
])
def test_usage_errors_exit_2_with_one_line(args: list[str], match: str, files: dict[str, Path],
                                           tmp_path: Path) -> None:
    res = invoke([a.format(tmp=tmp_path, **files) for a in args])
    assert_user_error(res, 2, match)


# ------------------------------------------------------------------------------------------ failed runs: 1

@pytest.mark.parametrize("args, match", [
    (["run", "{bad_net}", "--backend", "fast"], "bad.net: not an HDF5 file"),
    (["report", "{bad_net}"], "bad.net: not an HDF5 file"),
    (["chain", "{pt}", "{bad_net}"], "bad.net: not an HDF5 file"),
    (["run", "{pt}", "--backend", "fast"], "model.pt: not an HDF5 file"),
    (["export", "{bad_pt}"], "bad.pt: not a slipsnn checkpoint"),
    (["chain", "{bad_pt}", "{net}"], "bad.pt: not a slipsnn checkpoint"),
    (["analyze", "{bad_pt}"], "bad.pt: not a slipsnn checkpoint"),
    (["run", "{net}", "--backend", "fast", "--dataset", "cifar10", "--data-root", "{empty_dir}"],
     "cifar10 not found under"),
    (["run", "{net}", "--backend", "fast", "--dataset", "mnist", "--data-root", "{empty_dir}"],
     "mnist not found under"),
    (["train", "--dataset", "cifar100", "--data-root", "{empty_dir}", "--epochs", "1", "--width", "0.25",
      "--device", "cpu", "--out", "{tmp}/out", "--quiet"], "cifar100 not found under"),
    (["train", "--arch", "nope", "--quiet", "--out", "{tmp}/out"], "unknown architecture 'nope'; allowed"),
    (["run", "{net}", "--backend", "fast", "--timesteps", "4000"], "re-export with --max-timesteps"),
    (["run", "{net}", "--backend", "fast", "--timesteps", "100000000"], "must be in [1, 4096]"),
    (["report", "{net}", "--profile", "nochip", "--limit", "4"], "unknown profile 'nochip'"),
    (["export", "{pt}", "-o", "{net}/m.net"], "cannot write"),   # parent is a file
    (["run", "{net}", "--backend", "fast", "--limit", "4", "--json", "{net}/x.json"], "model.net"),
    (["run", "{net}", "--backend", "fast", "--device", "tpu"], "unknown device 'tpu'; allowed: auto, cpu, cuda"),
    (["chain", "{pt}", "{net}", "--backend", "fast", "--device", "gpu0"], "unknown device 'gpu0'"),
    (["analyze", "{pt}", "--device", "cuda:x", "--limit", "4"], "unknown device 'cuda:x'"),
] + ([] if torch.cuda.is_available() else [
    (["run", "{net}", "--backend", "fast", "--device", "cuda"], "requested but torch sees no CUDA GPU"),
    (["report", "{net}", "--device", "cuda:1", "--limit", "4"], "requested but torch sees no CUDA GPU"),
]))
def test_user_mistakes_exit_1_with_one_line(args: list[str], match: str, files: dict[str, Path],
                                            tmp_path: Path) -> None:
    res = invoke([a.format(tmp=tmp_path, **files) for a in args])
    assert_user_error(res, 1, match)


def test_unavailable_backend_is_one_sentence(files: dict[str, Path]) -> None:
    """``--backend loihi`` without Intel's lava-loihi: exit 1 and one sentence saying what is missing."""
    from slipsnn.toolchain.backends.lava.runtime import check_loihi2
    if not check_loihi2():
        pytest.skip("this machine can run the loihi backend")
    res = invoke(["run", files["net"], "--backend", "loihi", "--limit", "2"])
    assert_user_error(res, 1, "backend 'loihi' needs Intel's lava-loihi")
    assert error_lines(res)[0].count(". ") == 0, "one sentence"


def test_debug_lets_the_exception_through(files: dict[str, Path]) -> None:
    res = invoke(["run", files["bad_net"], "--backend", "fast", "--debug"])
    assert res.exit_code == 1 and isinstance(res.exception, SlipsnnError), repr(res.exception)
    assert res.exc_info is not None and res.exc_info[2] is not None   # Python prints its traceback


# ------------------------------------------------------------------------------------------ success: 0

def test_export_and_run_succeed(files: dict[str, Path], tmp_path: Path) -> None:
    res = invoke(["export", files["pt"], "-o", tmp_path / "m.net", "--timesteps", "2"])
    assert res.exit_code == 0 and (tmp_path / "m.net").is_file(), res.output
    assert (tmp_path / "m.net").read_bytes() == files["net"].read_bytes(), "export is deterministic"
    res = invoke(["run", tmp_path / "m.net", "--backend", "fast", "--limit", "8", "--json", tmp_path / "r.json"])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["backend"] == "fast" and doc["samples"] == 8 and doc["timesteps"] == 2
    assert f"accuracy {100 * doc['accuracy']:.2f} %" in res.stdout


def test_run_verbose_and_export_state_the_float32_proof(files: dict[str, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from slipsnn.exporters import netx
    reads: list[object] = []
    real = netx.read_proven_netx
    monkeypatch.setattr(netx, "read_proven_netx", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    res = invoke(["export", files["pt"], "-o", tmp_path / "m.net", "--timesteps", "2"])
    assert res.exit_code == 0, res.output
    assert "fast backend, T ≤ 8: float32 proven exact (every partial sum ≤ 2^24) for 4 of 4 synapses and 4 of 4 " \
           "membranes" in res.stdout
    res = invoke(["run", files["net"], "--backend", "fast", "--limit", "4", "-v", "--device", "cpu", "--batch-size", "3"])
    assert res.exit_code == 0, res.output
    assert "synapses: Σ|W|·x_max (type)" in res.stdout and "T ≤ 2: float32 proven exact" in res.stdout
    assert reads == [files["net"]], "run -v reads and proves the file once, for the proof table and the run"


# ------------------------------------------------------------------------------------------ the real scripts

def script(name: str, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / name), *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_console_script_exit_codes(files: dict[str, Path], tmp_path: Path) -> None:
    ok = script("slipsnn-run", files["net"], "--backend", "fast", "--limit", "8")
    assert ok.returncode == 0 and "fast: accuracy" in ok.stdout, ok.stderr[-2000:]

    usage = script("slipsnn", "run", tmp_path / "missing.net")
    lines = [line for line in usage.stderr.splitlines() if line.startswith("Error: ")]
    assert usage.returncode == 2 and len(lines) == 1 and "does not exist" in lines[0], usage.stderr
    assert "Traceback" not in usage.stderr

    debug = script("slipsnn-run", files["bad_net"], "--backend", "fast", "--debug")
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr, debug.stderr[-2000:]
    assert "slipsnn.toolchain.errors.FormatError" in debug.stderr and "bad.net" in debug.stderr


@pytest.mark.slow
def test_ctrl_c_of_a_console_script_ends_at_once_with_130(tmp_path: Path) -> None:
    """SIGINT mid-training: one line, exit 130 within seconds (no interpreter teardown), no temporary file."""
    import signal
    import time
    proc = subprocess.Popen([str(BIN / "slipsnn-train"), "--dataset", "digits", "--epochs", "200", "--width", "0.25",
                             "--out", str(tmp_path), "--quiet", "--resume"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "resume.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)   # the first epoch is done once resume.pt exists: training is under way
        assert proc.poll() is None and (tmp_path / "resume.pt").exists(), proc.communicate()[1][-2000:]
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=30)
        waited = time.monotonic() - sent
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "Error: interrupted (Ctrl-C); exit status 130" and "Traceback" not in err
    assert waited < 10, f"exit took {waited:.1f} s after SIGINT"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resume.pt"], "only whole files are left"


def test_cli_choices_are_the_registries() -> None:
    """The CLI lists names by hand (so ``--help`` starts without torch); they must equal the registries."""
    from slipsnn.exporters.netx import _NEURON_WRITERS
    from slipsnn.toolchain import cli
    from slipsnn.toolchain.ir.activation import PRESETS
    from slipsnn.toolchain.backends.registry import BACKENDS
    assert set(cli.ACTIVATIONS) == set(PRESETS)
    assert set(cli.BACKEND_CHOICES) == set(BACKENDS)
    export_neuron = next(p for p in cli.export.params if p.name == "neuron")
    assert set(export_neuron.type.choices) == set(_NEURON_WRITERS)

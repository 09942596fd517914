"""Nothing half-written: a writer SIGKILLed in the middle of replacing a file leaves the previous file intact.

Each writer runs in a child process (``python tests/test_atomic.py KIND FOLDER``) that writes version 0,
waits for the test to copy it, then starts writing a large version 1; the test kills it with SIGKILL once
the temporary file holds 64 KiB of it. The file at the path must then be byte-identical to version 0 and load.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from factories import tiny_conv_net

TARGETS = {"json": "metrics.json", "netx": "model.net", "checkpoint": "model.pt"}
READY_SECONDS = 120.0   # the child's imports and first write, on a loaded 2-core machine
KILL_SECONDS = 60.0     # from "go" until the temporary file of version 1 has data
ATTEMPTS = 3            # a kill that lands after the rename proves nothing: try again
PARTIAL_BYTES = 64 * 1024   # kill once the temporary file holds this much of version 1


# ------------------------------------------------------------------------------------------ the writers

def _write_json(path: Path, version: int) -> None:
    from slipsnn.toolchain.files import atomic_write_json
    atomic_write_json(path, {"version": version, "data": [version + 0.5 * i for i in range(1_000_000)]})


def _big_net(version: int):
    """64 × 64 input → dense 4096 → dense 2: 16.8 M int32 weights (64 MiB)."""
    from slipsnn.toolchain.ir.integer import IntLayer, IntNetwork, IntSynapse
    w = np.full((4096, 4096), 2 * version, np.int32)
    layers = (IntLayer("fc", (4096,), (IntSynapse(-1, "dense", w),), "IF_SOFT", 100, np.zeros(4096, np.int32), 0, 0,
                       100.0),
              IntLayer("out", (2,), (IntSynapse(0, "dense", np.full((2, 4096), 2, np.int32)),), "ACCUMULATE", 0,
                       np.zeros(2, np.int32), 0, 0, 1.0))
    return IntNetwork((1, 64, 64), layers, timesteps=1, max_timesteps=1, meta={"version": version})


def _write_netx(path: Path, version: int) -> None:
    from slipsnn.exporters.netx import write_netx
    write_netx(_big_net(version), path)


def _write_checkpoint(path: Path, version: int) -> None:
    import torch
    from slipsnn.toolchain.ir.activation import preset_params
    from slipsnn.toolchain.ann.checkpoint import save_checkpoint
    from slipsnn.toolchain.ann.models import ModelConfig, build_model
    cfg, act = ModelConfig("digits_cnn", 10, (1, 8, 8), (0.3,), (0.4,), width=0.25), preset_params("slip", L=4)
    torch.manual_seed(version)
    save_checkpoint(path, build_model(cfg, act), cfg, act, dataset="digits",   # 48 MB of metrics make it slow
                    metrics={"version": version, "blob": torch.full((12_000_000,), float(version))})


WRITERS: dict[str, Callable[[Path, int], None]] = {"json": _write_json, "netx": _write_netx,
                                                   "checkpoint": _write_checkpoint}


def _version(kind: str, path: Path) -> int:
    """Load the file with its own reader and return the version it holds."""
    if kind == "json":
        return json.loads(path.read_text())["version"]
    if kind == "netx":
        from slipsnn.exporters.netx import read_netx
        return read_netx(path).meta["version"]
    from slipsnn.toolchain.ann.checkpoint import load_checkpoint
    return load_checkpoint(path).metrics["version"]


def child(kind: str, folder: Path) -> None:
    """Write version 0, say ``ready``, wait for a line on stdin, write version 1, say ``done``, wait to be killed."""
    path = folder / TARGETS[kind]
    WRITERS[kind](path, 0)
    print("ready", flush=True)
    sys.stdin.readline()
    WRITERS[kind](path, 1)
    print("done", flush=True)
    time.sleep(600)


# ------------------------------------------------------------------------------------------ the test

def _readline(proc: subprocess.Popen, seconds: float) -> str:
    """One line of the child's stdout, or '' when it does not come in time."""
    import selectors
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        return proc.stdout.readline().strip() if sel.select(seconds) else ""


def _kill_mid_write(kind: str, folder: Path) -> tuple[bytes, list[Path], bool]:
    """Run one child and SIGKILL it while version 1 is being written.

    Returns:
        (version 0's bytes, the temporary files left in ``folder``, whether version 1 completed first).
    """
    target = folder / TARGETS[kind]
    proc = subprocess.Popen([sys.executable, __file__, kind, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        if _readline(proc, READY_SECONDS) != "ready":
            proc.kill()
            pytest.fail(f"{kind} child did not write version 0 within {READY_SECONDS} s: {proc.stderr.read()[-2000:]}")
        before, stat = target.read_bytes(), target.stat()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        deadline = time.monotonic() + KILL_SECONDS
        while time.monotonic() < deadline and proc.poll() is None:
            partial = [p for p in folder.iterdir() if p != target and p.is_file() and p.stat().st_size >= PARTIAL_BYTES]
            now = target.stat()
            if partial or (now.st_size, now.st_mtime_ns, now.st_ino) != (stat.st_size, stat.st_mtime_ns, stat.st_ino):
                break   # version 1 is being written beside the file, or (a non-atomic writer) into it
            time.sleep(0.001)
        else:
            pytest.fail(f"{kind}: no temporary file of {PARTIAL_BYTES} bytes appeared within {KILL_SECONDS} s "
                        f"(child rc {proc.poll()}): {proc.stderr.read()[-2000:] if proc.poll() is not None else ''}")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        completed = "done" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    return before, [p for p in folder.iterdir() if p != target], completed


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(TARGETS))
def test_sigkill_mid_write_leaves_the_previous_file(kind: str, tmp_path: Path) -> None:
    for attempt in range(ATTEMPTS):
        folder = tmp_path / f"attempt{attempt}"
        folder.mkdir()
        before, leftovers, completed = _kill_mid_write(kind, folder)
        target = folder / TARGETS[kind]
        if completed:
            continue   # version 1 was renamed into place before the kill arrived: no mid-write kill to judge
        after = target.read_bytes()
        assert after == before, f"{kind}: {target.name} changed ({len(before)} → {len(after)} bytes)"
        assert leftovers, f"{kind}: killed mid-write but no temporary file remains"
        assert all(p.name.startswith(".") and ".tmp" in p.name for p in leftovers), \
            f"{kind}: the writer wrote outside a hidden temporary file: {[p.name for p in leftovers]}"
        assert _version(kind, target) == 0
        return
    pytest.fail(f"{kind}: in {ATTEMPTS} attempts the kill never landed before version 1 was complete")


def test_plots_are_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A savefig that fails halfway (disk full) leaves the earlier plots untouched and no temporary file."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from slipsnn.toolchain.show.plots import PLOT_FILES, plot_report
    from slipsnn.toolchain.costs.profiles import load_profile
    from slipsnn.toolchain.costs.report import build_report
    from slipsnn.toolchain.backends.registry import run_network
    net = tiny_conv_net()
    pixels = np.random.default_rng(0).integers(0, 256, (4, *net.input_shape)).astype(np.float64)
    run = run_network(net, pixels, np.arange(4) % 2, backend="fast")
    rep = build_report(net, run, [1, 2], [load_profile("loihi2")], load_profile("gpu45nm"))
    written = plot_report(rep, tmp_path)
    assert [p.name for p in written] == list(PLOT_FILES)
    before = {p.name: p.read_bytes() for p in written}

    def disk_full(self: Figure, fname: object, **kwargs: object) -> None:
        Path(fname).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", disk_full)
    with pytest.raises(OSError, match="No space left"):
        plot_report(rep, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


if __name__ == "__main__":   # the writer child: python tests/test_atomic.py KIND FOLDER
    child(sys.argv[1], Path(sys.argv[2]))

"""Clean teardown: no Lava OS process outlives a run that was interrupted, terminated or whose stop hangs.

``tests/test_lava.py`` covers ``run_lava`` failing (in a model process or on the host) and Ctrl-C sent to a
direct ``run_lava`` call; here the real ``slipsnn-run --backend loihi_sim`` is interrupted and terminated
the ways a user, ``timeout`` or a batch scheduler does it, and Lava's own stop is made to hang.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lava.magma.core.process.process", reason="Lava is not installed")

from slipsnn.exporters.netx import write_netx
from slipsnn.toolchain.backends.lava import runtime as lava_runtime
from factories import digits_net

RUN_SCRIPT = Path(sys.executable).parent / "slipsnn-run"
START_SECONDS = 180.0   # imports, data, compile and process start on a loaded 2-core machine
EXIT_SECONDS = 10.0     # what a container runtime allows between SIGTERM and SIGKILL
REAP_SECONDS = 30.0     # Python's resource tracker exits shortly after its parent (slower on a loaded machine)
STOP_TIMEOUT_S = 2.0    # a shorter stop timeout than lava_runtime's, for the hanging-stop test


def live_processes(field: int, value: int) -> list[str]:
    """Live (non-zombie, not exiting) processes whose /proc stat ``field`` (after the command; 1: parent,
    3: session) equals ``value``, as 'pid command'; Python's resource tracker is left out (it exits after
    its parent)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")[:100]
        except OSError:   # it ended while we looked
            continue
        # an empty command line means the process has already released its memory: it is exiting
        if int(fields[field]) == value and fields[0] != "Z" and command.strip() and "resource_tracker" not in command:
            found.append(f"{entry} {command}")
    return found


def session_processes(sid: int) -> list[str]:
    return live_processes(3, sid)


def wait_for(predicate, seconds: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + seconds
    while not (ok := predicate()) and time.monotonic() < deadline:
        time.sleep(step)
    return ok


# ------------------------------------------------------------------------------------------ the CLI

def shm_segments(pids: list[int]) -> set[str]:
    """The /dev/shm segments the processes ``pids`` have mapped (Lava's channels)."""
    found = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as f:
                found.update(line.split()[-1] for line in f if "/dev/shm/" in line)
        except OSError:
            continue
    return found


def start_run(tmp_path: Path) -> subprocess.Popen:
    """``slipsnn-run --backend loihi_sim`` on digits in its own session, returned once its Lava processes run."""
    net = write_netx(digits_net(), tmp_path / "m.net")
    proc = subprocess.Popen([str(RUN_SCRIPT), str(net), "--backend", "loihi_sim"], stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "stderr.txt", "w"), start_new_session=True)
    # Lava's model processes are forked once the network is compiled: then the run is under way
    started = wait_for(lambda: len(session_processes(proc.pid)) >= 4 or proc.poll() is not None, START_SECONDS)
    assert started and proc.poll() is None, \
        f"the run did not start (rc {proc.poll()}): {(tmp_path / 'stderr.txt').read_text()[-2000:]}"
    time.sleep(1.0)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    return proc


def stop_and_check(proc: subprocess.Popen, sig: signal.Signals, to_group: bool) -> None:
    """Send ``sig``; slipsnn-run exits within EXIT_SECONDS, and no process nor /dev/shm segment outlives it."""
    segments = shm_segments([int(line.split()[0]) for line in session_processes(proc.pid)])
    assert segments, "the Lava run maps no shared memory: nothing to check"
    sent = time.monotonic()
    (os.killpg if to_group else os.kill)(proc.pid, sig)
    try:
        proc.wait(EXIT_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"slipsnn-run did not exit within {EXIT_SECONDS} s of {sig.name}")
    wait_for(lambda: not session_processes(proc.pid), REAP_SECONDS)
    left = session_processes(proc.pid)
    assert not left, f"{len(left)} processes outlived the run ({sig.name}, rc {proc.returncode}, " \
        f"{time.monotonic() - sent:.1f} s after the signal):\n" + "\n".join(left[:5])
    assert wait_for(lambda: not any(os.path.exists(s) for s in segments), REAP_SECONDS), \
        f"{sum(os.path.exists(s) for s in segments)} of {len(segments)} /dev/shm segments left after {sig.name}"


def kill_session(proc: subprocess.Popen) -> None:
    for line in session_processes(proc.pid):   # never leave our own processes behind
        os.kill(int(line.split()[0]), signal.SIGKILL)
    proc.wait(30) if proc.poll() is None else None


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.parametrize("sig, to_group", [
    (signal.SIGINT, True),     # Ctrl-C in a terminal: the whole foreground process group
    (signal.SIGTERM, False),   # `timeout`, `kill`, a batch scheduler's time limit, a container stop
    (signal.SIGHUP, False),    # the terminal closes
], ids=["ctrl-c", "sigterm", "sighup"])
def test_interrupted_cli_run_leaves_no_process(sig: signal.Signals, to_group: bool, tmp_path: Path) -> None:
    proc = start_run(tmp_path)
    try:
        stop_and_check(proc, sig, to_group)
        err = (tmp_path / "stderr.txt").read_text()
        lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "step/s" not in line
                 and "?step" not in line]
        if sig == signal.SIGINT:   # Ctrl-C: Lava shut down, one line, exit 130 (also while Lava was still forking)
            assert proc.returncode == 130, (proc.returncode, err[-2000:])
            assert lines[0] == "Error: interrupted (Ctrl-C); exit status 130" \
                or lines[0].startswith("Error: interrupted by SIGINT while Lava started"), err[-2000:]
            assert "Traceback" not in err
        else:   # one line, exit status 128 + signal (stopped while Lava was still forking, the children die with
            # slipsnn and Python's resource tracker may add its "leaked shared_memory objects" warning)
            assert proc.returncode == 128 + sig, (proc.returncode, err[-2000:])
            assert lines[0].startswith(f"Error: stopped by {sig.name}") and "Traceback" not in err, err[-2000:]
            assert len(lines) == 1 or "while Lava started its processes" in lines[0], err[-2000:]
    finally:
        kill_session(proc)


@pytest.mark.lava
def test_sigkill_of_slipsnn_leaves_no_process_and_no_shared_memory(tmp_path: Path) -> None:
    """``kill -9`` cannot be caught: every Lava child dies with its parent (PR_SET_PDEATHSIG) and Python's
    resource tracker unlinks the /dev/shm segments they used."""
    proc = start_run(tmp_path)
    try:
        stop_and_check(proc, signal.SIGKILL, False)
        assert proc.returncode == -signal.SIGKILL
    finally:
        kill_session(proc)


# ------------------------------------------------------------------------------------------ a stop that hangs

def _children() -> set[str]:
    return set(live_processes(1, os.getpid()))


@pytest.mark.lava
def test_a_hanging_stop_is_forced_within_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A complete run whose ``Runtime.stop`` never returns: ``shutdown`` gives up after its timeout, kills
    the model processes, and the result still comes back. A failing run is never stopped gracefully: it
    may have been interrupted mid-protocol, so its processes are killed at once."""
    from lava.magma.runtime.runtime import Runtime

    release = threading.Event()

    def hang(self: Runtime) -> None:
        release.wait(60)

    def failing_read(*args: object) -> None:
        raise ValueError("injected host failure")

    seconds: list[float] = []

    def timed_shutdown(proc: object, force: bool = False) -> None:
        start = time.monotonic()
        shutdown(proc, timeout_s=STOP_TIMEOUT_S, force=force)
        seconds.append(time.monotonic() - start)

    shutdown = lava_runtime.shutdown
    monkeypatch.setattr(Runtime, "stop", hang)
    monkeypatch.setattr(lava_runtime, "shutdown", timed_shutdown)
    before = _children()
    net = digits_net(timesteps=2)
    pixels = np.random.default_rng(0).integers(0, 256, (4, *net.input_shape))
    try:
        result, _ = lava_runtime.run_lava(net, pixels, 2, chunk_samples=2)
        assert result.logits.shape == (4, 2, 10)
        monkeypatch.setattr(lava_runtime, "_read_chunk", failing_read)
        with pytest.raises(ValueError, match="injected host failure"):
            lava_runtime.run_lava(net, pixels, 2, chunk_samples=2)
    finally:
        release.set()
    assert wait_for(lambda: _children() <= before, REAP_SECONDS), f"left: {_children() - before}"
    # the stop timeout, then kill and join (~0 s here); the failed run: kill at once
    assert len(seconds) == 2 and STOP_TIMEOUT_S <= seconds[0] < STOP_TIMEOUT_S + 10.0 and seconds[1] < STOP_TIMEOUT_S, \
        seconds

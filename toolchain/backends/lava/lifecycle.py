"""The OS processes of a Lava run: they die with slipsnn, stop fast, and never outlive it.

On CPU every Lava leaf process, runtime service and the shared-memory manager is a ``fork`` of the slipsnn
process. Three things keep them from leaking:

* ``die_with_parent``: while Lava forks, every child asks Linux to SIGKILL it when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``), so even a ``kill -9`` of slipsnn leaves no orphan. The shared-memory
  segments in /dev/shm are then unlinked by Python's resource tracker (started by fork + exec, so not
  armed), which cleans up what its dead clients registered;
* ``exit_on_termination``: SIGTERM and SIGHUP unwind the run so the ``finally`` that stops Lava runs,
  then the process ends with status 128 + signal and one line on stderr;
* ``shutdown``: Lava's own ``stop()`` for a healthy, idle runtime; otherwise (a chunk still running, a
  signal, a dead process, a stop that hangs) the processes are killed and the shared-memory manager is
  shut down at once, which takes well under a second.

Lava is not imported here.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from typing import Any, Iterator

from ...errors import exit_with_error

STOP_TIMEOUT_S = 20.0   # a graceful Lava stop of an idle runtime that takes longer is forced
PR_SET_PDEATHSIG = 1    # linux/prctl.h

_armed = False          # set while Lava forks (see die_with_parent)
_forking_pid = 0
_postponed: list[int] = []   # SIGTERM/SIGHUP received while armed, raised when die_with_parent ends
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _prctl = None


def _before_fork() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _after_fork_in_child() -> None:
    """In a child forked while armed: SIGKILL when the parent dies (exit now if it already has); Ctrl-C is
    ignored (slipsnn handles it) and SIGTERM/SIGHUP end the child quietly."""
    if not _armed:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    if _prctl is not None and _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0 \
            and os.getppid() != _forking_pid:
        os._exit(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def die_with_parent() -> Iterator[None]:
    """Every process forked inside the block is killed by the kernel when the process that forked it ends.

    Linux only (elsewhere nothing changes). The parent-death signal follows the forking *thread*; Lava forks
    from the thread that creates the runtime, which lives until ``shutdown``.
    """
    global _armed
    previous, _armed = _armed, True
    try:
        yield
    finally:
        _armed = previous
    if _postponed:   # a signal that arrived while Lava forked, for a handler slipsnn did not install
        raise Terminated(_postponed.pop())


@contextlib.contextmanager
def defer_signals(*held: signal.Signals) -> Iterator[None]:
    """Hold the signals ``held`` (default SIGINT, SIGTERM, SIGHUP) until the block ends, then deliver the first.

    Used for SIGINT while Lava forks its processes (an exception raised by a signal handler inside
    ``fork``'s at-fork callbacks is swallowed by Python, and the run would go on) and for all three while
    it is stopped (so the stop itself is not interrupted).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    held = held or (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous: dict[int, Any] = {}

    def hold(signum: int, frame: Any) -> None:
        if _armed and signum == signal.SIGINT and previous.get(signum) is signal.default_int_handler:
            # Ctrl-C while Lava forks, with Python's own handler: end now, as an uncaught KeyboardInterrupt
            # would; the kernel kills the children forked so far (waiting could take long on a loaded machine)
            exit_with_error(f"interrupted by SIGINT while Lava started its processes; they end with slipsnn "
                            f"(exit status {128 + signum})", 128 + signum)
        received.append(signum)

    for sig in held:
        previous[sig] = signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        if received:
            old = previous[received[0]]
            if callable(old):
                old(received[0], None)        # e.g. Python's SIGINT handler raises KeyboardInterrupt here
            elif old == signal.SIG_DFL:
                os.kill(os.getpid(), received[0])


class Terminated(SystemExit):
    """SIGTERM or SIGHUP arrived during a Lava run; exits with status 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


@contextlib.contextmanager
def exit_on_termination() -> Iterator[None]:
    """While Lava runs, turn SIGTERM and SIGHUP into ``Terminated`` so the ``finally`` that stops Lava runs.

    By default those signals end Python without unwinding, orphaning every Lava process (``kill``,
    ``timeout``, a container stop, a closed terminal). Here the first one raises ``Terminated`` (a second
    cannot interrupt the shutdown); once the block has unwound and Lava is stopped, the signal's own
    disposition is honoured: a handler installed before is called; the default one (terminate) ends the
    process at once with status 128 + signal, after one line on stderr, without Python's slow interpreter
    teardown (seconds on a loaded machine). A signal that was ignored (``nohup``) stays ignored. Outside
    the main thread handlers cannot be set; nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[float] = []
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        if received:
            return
        received.append(time.monotonic())
        if _armed:   # Lava is forking: an exception raised here could be swallowed by fork's callbacks
            if previous.get(signum) == signal.SIG_DFL:   # end now: the kernel kills the children forked so far
                exit_with_error(f"stopped by {signal.Signals(signum).name} while Lava started its processes; they "
                                f"end with slipsnn (exit status {128 + signum})", 128 + signum)
            _postponed.append(signum)
            return
        raise Terminated(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)
    try:
        yield
    except Terminated as stop:
        for sig, old in previous.items():
            signal.signal(sig, old)
        old = previous[stop.signum]
        if callable(old):
            old(stop.signum, None)
            raise
        exit_with_error(f"stopped by {signal.Signals(stop.signum).name}; the Lava run was shut down in "
                        f"{time.monotonic() - received[0]:.1f} s (exit status {stop.code})", int(stop.code))
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def alive(actor: Any) -> bool:
    """Whether a Lava actor (a ``multiprocessing.Process``) still runs."""
    try:
        return actor.is_alive()
    except ValueError:   # a joined and closed multiprocessing.Process
        return False


def _graceful_stop(runtime: Any, timeout_s: float) -> bool:
    """Lava's ``Runtime.stop`` in a thread, bounded by ``timeout_s``; True when it finished without error."""
    errors: list[BaseException] = []

    def _stop() -> None:
        try:
            runtime.stop()
        except BaseException as e:  # noqa: BLE001 - the caller forces the stop instead
            errors.append(e)
    thread = threading.Thread(target=_stop, daemon=True, name="lava-stop")
    thread.start()
    thread.join(timeout_s)
    return not thread.is_alive() and not errors


def _kill(actors: list[Any], infra: Any) -> None:
    """SIGKILL every actor, reap them, and shut the shared-memory manager down (it unlinks /dev/shm)."""
    for actor in actors:
        if alive(actor):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                actor.kill()
    for actor in actors:
        with contextlib.suppress(ValueError, AssertionError, AttributeError):
            super(type(actor), actor).join(2.0)
    if infra is not None and infra.smm is not None:
        with contextlib.suppress(Exception):
            infra.smm.shutdown()


def shutdown(proc: Any, timeout_s: float = STOP_TIMEOUT_S, force: bool = False) -> None:
    """Stop the Lava runtime of ``proc`` and make sure none of its OS processes survives.

    A runtime that is started, idle (no ``run`` in flight) and healthy gets Lava's own ``stop()`` (bounded by
    ``timeout_s``). Otherwise — ``force`` (``run_lava`` forces it whenever the run did not complete: a
    signal or an error may have interrupted Lava mid-protocol, e.g. inside a ``Var.get``), a run still in
    flight, a runtime never started, a lost process, or a stop that hangs — its processes are killed and its
    shared-memory manager shut down. Safe to call twice or without a runtime.
    """
    runtime = getattr(proc, "_runtime", None)
    if runtime is None:
        return
    with defer_signals():
        infra = getattr(runtime, "_messaging_infrastructure", None)
        actors = list(infra.actors) if infra is not None else []
        graceful = not force and runtime._is_started and not getattr(runtime, "_is_running", False) \
            and actors and all(alive(a) for a in actors)
        if not (graceful and _graceful_stop(runtime, timeout_s)):
            _kill(actors, infra)
        runtime._is_started = False   # Runtime.__del__ would call stop() again otherwise
        runtime._is_running = False

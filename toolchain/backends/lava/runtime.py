"""Run an ``IntNetwork`` in Lava: bit-exact on CPU (``Loihi2SimCfg``, fixed point), or through
``Loihi2HwCfg`` where Intel's lava-loihi is installed (untested here: slipsnn's neuron has no Loihi 2
microcode model yet, so its processes would run on the host CPU; see docs/lava.md).

The graph is built from the IR (never from a file): one lava-dl netx ``Conv``/``Dense`` block per layer
(Lava's stock synapse + slipsnn's ``SoftResetIF`` neuron), a ``FrameSource`` that streams the 8-bit
images as graded spikes, and for every residual edge a stock ``Conv``/``Dense`` synapse into the
target neuron's ``a_in`` behind a ``SpikeDelay`` that aligns it with the main path.

Timing (Lava counts ``time_step`` from 1; every synapse adds one step):

* sample n is presented during steps n·T + 1 … n·T + T;
* layer i (0-based) computes step t of sample n at Lava step n·T + t + i + 2, and restarts at
  ``v_init`` when ``time_step % T == (i + 2) % T``;
* a residual edge from layer j (−1: the input) into layer i is delayed by i − j − 1 extra steps;
* N samples need N·T + depth steps in one compiled run (``depth`` = number of layers).

Before anything is compiled, ``preflight.require_lava_compatible`` refuses what Lava cannot represent
exactly (conv groups above Lava's int8 limit are re-expressed instead, in ``conv_params``); the OS
processes of a run die with slipsnn and are stopped by ``lifecycle``; a Lava process that fails becomes
one ``LavaError`` naming it.

Counts are recorded inside the processes (per-step ring buffers read with ``Var.get`` after every
chunk of ``chunk_samples`` samples), so no sink processes are needed. Lava is imported lazily:
importing this module does not import Lava.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from ...errors import BackendUnavailable, LavaError
from ...ir.formats import INPUT_SOURCE, STATE_SHIFT, SynapseKind, lava_dense_clips
from ...ir.integer import IntNetwork, IntSynapse
from ...kernels.connectivity import synapse_fanout
from ..result import SimResult
from ..checks import check_horizon, check_pixels
from ...ir.formats import check_timesteps
from .lifecycle import alive, defer_signals, die_with_parent, exit_on_termination, shutdown
from .preflight import lava_conv_groups, regroup_weight, require_lava_compatible

INPUT_MESSAGE_BITS = 8        # the image enters as 8-bit graded spikes
OUTPUT_MESSAGE_BITS = 24      # the accumulating output sends its 24-bit membrane
POLL_S = 0.005                # how often a running chunk is checked for finished or crashed processes
LAVA_HINT = "install the Lava extra on Python 3.10: pip install 'slipsnn[lava]' (lava-dl 0.6.0 with lava-nc 0.10.0)"


# --------------------------------------------------------------------------------------------------
# Pre-flight checks

def require_lava() -> None:
    """Import Lava, or raise ``BackendUnavailable`` with the install hint. Call it before importing Lava
    yourself (e.g. ``lava.lib.dl.netx`` to run a ``--neuron cuba`` file) in a process that may already
    have used multiprocessing.

    Lava calls ``multiprocessing.set_start_method('fork')`` when first imported, which raises
    "context has already been set" once anything resolved the start method (a tqdm bar creates a
    multiprocessing lock, for example). Lava's CPU runtime needs fork, so the resolved context is
    cleared just before that first import and Lava sets it.
    """
    import multiprocessing
    import sys
    if "lava.magma.runtime.message_infrastructure.multiprocessing" not in sys.modules and \
            multiprocessing.get_start_method(allow_none=True) is not None:
        multiprocessing.set_start_method(None, force=True)
    try:
        import lava.magma.core.run_configs  # noqa: F401
        _netx_blocks()
    except ImportError as e:
        raise BackendUnavailable(f"the Lava backends need Lava and lava-dl, which cannot be imported "
                                 f"({e}); {LAVA_HINT}") from None


def _netx_blocks() -> tuple[Any, Any]:
    """lava-dl's netx block Processes and their SubProcessModels (``blocks.process``, ``blocks.models``).

    ``lava/lib/dl/netx/__init__.py`` imports netx's HDF5 reader and with it all of slayer and torch's
    CUDA extension helpers (≈10 s on 2 cores, and banners printed to stdout). The block modules need
    none of that, so unless netx is already imported they are imported under a bare stand-in for the
    ``lava.lib.dl.netx`` package, which is removed again afterwards: a later ``import
    lava.lib.dl.netx`` runs the real package and reuses the block modules.
    """
    import importlib
    import importlib.util
    import sys
    import types

    name = "lava.lib.dl.netx"
    if name in sys.modules or "lava.lib.dl.netx.blocks.models" in sys.modules:
        return (importlib.import_module(name + ".blocks.process"), importlib.import_module(name + ".blocks.models"))
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(f"No module named {name!r}")
    stand_in = types.ModuleType(name)
    stand_in.__path__ = list(spec.submodule_search_locations)
    sys.modules[name] = stand_in
    try:
        return (importlib.import_module(name + ".blocks.process"), importlib.import_module(name + ".blocks.models"))
    finally:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        parent = sys.modules.get("lava.lib.dl")
        if parent is not None and getattr(parent, "netx", None) is stand_in:
            delattr(parent, "netx")


def check_loihi2() -> list[str]:
    """What is missing to run on a Loihi 2 system; an empty list means the ``loihi`` backend can try.

    Checks that Lava imports, that Intel's lava-loihi extension is installed, that its Loihi 2 compiler
    imports, and that a Loihi 2 host is configured (a SLURM controller or ``NXSDKHOST``). It imports Lava
    (``require_lava``), which fixes the multiprocessing start method to ``fork``; nothing else changes.

    Example:
        >>> check_loihi2()                      # doctest: +SKIP
        ['lava-loihi is not installed (Intel distributes it to INRC members)']
    """
    try:
        require_lava()
    except BackendUnavailable:
        return [f"Lava is not importable ({LAVA_HINT})"]
    from lava.utils import loihi, slurm

    if not loihi.is_installed():
        return ["lava-loihi is not installed (Intel distributes it to INRC members)"]
    missing = []
    try:
        import lava.magma.compiler.subcompilers.nc.ncproc_compiler  # noqa: F401
    except ImportError:
        missing.append("lava-loihi's Loihi 2 compiler (lava.magma.compiler.subcompilers.nc) does not import")
    if not os.environ.get("NXSDKHOST") and not slurm.is_available():
        missing.append("no Loihi 2 host is configured (no SLURM controller answers `sinfo` and NXSDKHOST is unset)")
    return missing


# --------------------------------------------------------------------------------------------------
# Layouts

def to_lava_layout(x: np.ndarray) -> np.ndarray:
    """(C, H, W) → Lava's (W, H, C); (N,) unchanged. Leading batch axes are not allowed."""
    return np.ascontiguousarray(np.transpose(x, (2, 1, 0))) if x.ndim == 3 else np.asarray(x)


def lava_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """(C, H, W) → (W, H, C); (N,) unchanged."""
    return tuple(shape[::-1]) if len(shape) == 3 else tuple(shape)


def conv_params(syn: IntSynapse) -> dict[str, Any]:
    """Lava ``Conv`` arguments computing torch ``conv2d`` of the IR weight (as netx's ``create_conv``).

    Lava's CPU conv is a true convolution in (W, H) order, so the torch (C_out, C_in/g, kH, kW)
    kernel is flipped spatially and reordered to (C_out, kW, kH, C_in/g); stride, padding and
    dilation go from (H, W) to (W, H). Lava stores ``groups`` as int8, so more than 127 groups (a
    depthwise identity shortcut of ≥ 128 channels) become the exact equivalent with fewer groups
    (``preflight.lava_conv_groups``: a divisor ≤ 127 and a block-diagonal kernel).
    """
    groups = lava_conv_groups(syn.groups)
    torch_weight = regroup_weight(syn.weight, int(syn.groups), groups)
    weight = np.ascontiguousarray(torch_weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)).astype(np.int32)
    return dict(weight=weight, stride=syn.stride[::-1], padding=syn.padding[::-1],
                dilation=syn.dilation[::-1], groups=groups)


def dense_params(syn: IntSynapse) -> tuple[np.ndarray, int]:
    """(weight, weight_exp) for Lava's ``Dense`` so that it computes exactly ``(W·s) << e`` / ``>> −e``.

    Lava's fixed-point Dense clips an all-non-positive matrix to [−255, 0]; such a matrix holding −256
    is halved (exact: the IR weights are even) and its exponent raised by one.
    """
    w, exp = syn.weight.astype(np.int32), int(syn.weight_exp)
    if lava_dense_clips(w):
        w, exp = w // 2, exp + 1
    return w, exp


# --------------------------------------------------------------------------------------------------
# Graph

@dataclass
class _Edge:
    """One synapse, seen from its source: it feeds layer ``target`` through ``synapses[k]``."""

    source: int
    target: int
    k: int


@dataclass
class LavaGraph:
    """The built (not yet compiled) Lava network.

    Attributes:
        source: the ``FrameSource`` (run/compile/stop through it).
        neurons: each layer's ``SoftResetIF``.
        blocks: each layer's netx block.
        out_edges: per source (index 0 = the input, i + 1 = layer i) the edges in its ``fanout`` order.
        log_steps: length of the per-step ring buffers.
        timesteps: T.
        num_samples: N frames in the source.
        labels: ``id`` of each leaf Lava process → what it is, e.g. "layer 3 ('conv2') synapse 1 (Conv)".
    """

    source: Any
    neurons: list[Any]
    blocks: list[Any]
    out_edges: list[list[_Edge]]
    log_steps: int
    timesteps: int
    num_samples: int
    labels: dict[int, str]

    @property
    def total_steps(self) -> int:
        return self.num_samples * self.timesteps + len(self.neurons)


def _out_edges(net: IntNetwork) -> list[list[_Edge]]:
    edges: list[list[_Edge]] = [[] for _ in range(len(net.layers) + 1)]
    for i, layer in enumerate(net.layers):
        for k, syn in enumerate(layer.synapses):
            edges[syn.source + 1].append(_Edge(syn.source, i, k))
    return edges


def _fanout(net: IntNetwork, edges: list[_Edge]) -> np.ndarray | None:
    if not edges:
        return None
    src = edges[0].source
    return np.stack([to_lava_layout(synapse_fanout(net.layers[e.target].synapses[e.k], net.source_shape(src)))
                     for e in edges])


@contextlib.contextmanager
def _lava_root_logging() -> Iterator[None]:
    """Every Lava Process adds a console handler to the root logger; drop those added while building."""
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        yield
    finally:
        root.handlers[:] = before


class _Ports:
    """The OutPort of every source (Lava layout), with the ``SpikeDelay`` in front of a residual edge made once
    per (source, delay)."""

    def __init__(self, net: IntNetwork, source: Any, labels: dict[int, str], delay_proc: Any) -> None:
        self.net, self.labels, self.delay_proc = net, labels, delay_proc
        self.outputs = {INPUT_SOURCE: source.s_out}
        self.delays: dict[tuple[int, int], Any] = {}

    def port(self, src: int, delay: int, kind: SynapseKind) -> Any:
        """The port a synapse of ``kind`` reads ``src`` from, ``delay`` extra steps late."""
        port = self.outputs[src]
        if delay:
            if (src, delay) not in self.delays:
                d = self.delay_proc(shape=lava_shape(self.net.source_shape(src)), delay=delay,
                                    name=f"delay{src}_{delay}")
                origin = "the input" if src == INPUT_SOURCE else f"layer {src}"
                self.labels[id(d)] = f"the {delay}-step delay of {origin} (SpikeDelay)"
                port.connect(d.s_in)
                self.delays[src, delay] = d
            port = self.delays[src, delay].s_out
        if kind is SynapseKind.DENSE and len(self.net.source_shape(src)) == 3:
            port = port.transpose([2, 1, 0]).flatten()   # the IR flattens (C, H, W) in C order
        return port


def _layer_block(net: IntNetwork, i: int, timesteps: int, log_steps: int, fanout: np.ndarray | None,
                 blocks_process: Any, neuron_proc: Any) -> Any:
    """The netx Conv/Dense block of layer ``i``: its main synapse (from layer i − 1) and its neurons."""
    layer = net.layers[i]
    neuron_params = dict(
        neuron_proc=neuron_proc, bias_key="bias_mant", vth=int(layer.threshold), v_init=int(layer.v_init),
        bias_exp=int(layer.bias_exp), spiking=layer.spiking, reset_interval=timesteps, reset_offset=i + 2,
        fanout=fanout, log_steps=log_steps, num_message_bits=0 if layer.spiking else OUTPUT_MESSAGE_BITS)
    bias = to_lava_layout(layer.bias_full()).astype(np.int32)
    main = layer.synapses[0]
    bits = INPUT_MESSAGE_BITS if main.source == INPUT_SOURCE else 0
    if main.kind is SynapseKind.CONV:
        return blocks_process.Conv(shape=lava_shape(layer.shape), input_shape=lava_shape(net.source_shape(main.source)),
                                   neuron_params=neuron_params, bias=bias, input_message_bits=bits,
                                   **conv_params(main))
    w, exp = dense_params(main)
    return blocks_process.Dense(shape=lava_shape(layer.shape), neuron_params=neuron_params, bias=bias, weight=w,
                                weight_exponent=exp, num_weight_bits=8, input_message_bits=bits)


def _residual_synapse(net: IntNetwork, syn: IntSynapse) -> Any:
    """A stock Lava Conv/Dense process for a residual synapse (it feeds the target's neurons directly)."""
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense
    bits = INPUT_MESSAGE_BITS if syn.source == INPUT_SOURCE else 0
    if syn.kind is SynapseKind.CONV:
        return Conv(input_shape=lava_shape(net.source_shape(syn.source)), num_message_bits=bits, **conv_params(syn))
    w, exp = dense_params(syn)
    return Dense(weights=w, weight_exp=exp, num_weight_bits=8, num_message_bits=bits)


def build_lava_graph(net: IntNetwork, pixels: np.ndarray, timesteps: int, log_steps: int) -> LavaGraph:
    """Build the Lava processes of ``net`` streaming ``pixels`` (N, C, H, W), T steps per sample.

    Args:
        net: the integer network.
        pixels: uint8-valued (N, C, H, W) images.
        timesteps: T.
        log_steps: length of the per-step activity ring buffers (≥ the steps of one ``run`` call).
    """
    require_lava()
    from .procs.process import FrameSource, SoftResetIF, SpikeDelay

    blocks_process, _ = _netx_blocks()
    out_edges = _out_edges(net)
    frames = np.ascontiguousarray(np.asarray(pixels, dtype=np.uint8).transpose(0, 3, 2, 1))   # (N, W, H, C)
    with _lava_root_logging():
        source = FrameSource(frames=frames, timesteps=timesteps, fanout=_fanout(net, out_edges[0]),
                             log_steps=log_steps, name="input")
        labels = {id(source): "the input (FrameSource)"}
        ports = _Ports(net, source, labels, SpikeDelay)
        neurons, blocks = [], []
        for i, layer in enumerate(net.layers):
            block = _layer_block(net, i, timesteps, log_steps, _fanout(net, out_edges[i + 1]), blocks_process,
                                 SoftResetIF)
            main = layer.synapses[0]
            ports.port(main.source, 0, main.kind).connect(block.inp)
            where = f"layer {i} ({layer.name!r})"
            labels[id(block.synapse)] = f"{where} synapse 0 ({type(block.synapse).__name__})"
            labels[id(block.neuron)] = f"{where} neuron (SoftResetIF)"
            for k, syn in enumerate(layer.synapses[1:], start=1):
                synapse = _residual_synapse(net, syn)
                ports.port(syn.source, i - syn.source - 1, syn.kind).connect(synapse.s_in)
                synapse.a_out.connect(block.neuron.a_in)
                labels[id(synapse)] = f"{where} synapse {k} ({type(synapse).__name__})"
            ports.outputs[i] = block.out
            neurons.append(block.neuron)
            blocks.append(block)
    return LavaGraph(source, neurons, blocks, out_edges, log_steps, timesteps, len(frames), labels)


# --------------------------------------------------------------------------------------------------
# Running and stopping

def _describe(actors: list[Any], runtime: Any, labels: dict[int, str]) -> dict[int, str]:
    """``id`` of each actor (OS process) → the Lava process it runs (its graph label, else its name and class).

    Lava forks one actor per ``PyProcessBuilder`` of the executable, in the builders' order, then one per
    runtime service (lava/magma/runtime/runtime.py:300-328); the runtime services are left out.
    """
    from lava.magma.compiler.builders.py_builder import PyProcessBuilder

    procs = [proc for proc, builder in runtime._executable.proc_builders.items()
             if isinstance(builder, PyProcessBuilder)]
    return {id(actor): labels.get(id(proc), f"{proc.name} ({type(proc).__name__})")
            for actor, proc in zip(actors, procs)}


def _failure(actors: list[Any], runtime: Any, labels: dict[int, str], wait_s: float = 0.0) -> LavaError | None:
    """A ``LavaError`` for the actor that failed (waiting up to ``wait_s`` for one to die), else None.

    A model process is named before a runtime service (which fails because its model did). The message is
    one line: the process, the exception type and its first line (or the exit status); the child's traceback
    is attached as the error's cause (``--debug`` shows it).
    """
    deadline = time.monotonic() + wait_s
    while True:
        dead = [a for a in actors if not alive(a)]
        if dead or time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    if not dead:
        return None
    names = _describe(actors, runtime, labels)
    named = [(names.get(id(a)), a) for a in dead]
    named.sort(key=lambda pair: (not pair[1].exception, pair[0] is None))
    what, actor = named[0]
    what = what or "the Lava runtime service"
    if actor.exception:
        exc, trace = actor.exception
        text = str(exc).strip().splitlines()
        err = LavaError(f"Lava process {what} failed: {type(exc).__name__}" + (f": {text[0]}" if text else ""))
        err.__cause__ = RuntimeError(f"in the Lava process:\n{trace}")
        return err
    code = actor.exitcode
    how = f"was killed by {signal.Signals(-code).name}" if code is not None and code < 0 \
        else f"exited with status {code}"
    return LavaError(f"Lava process {what} {how} during the run" + (" (out of memory?)" if code == -9 else ""))


def _run_steps(proc: Any, num_steps: int, labels: dict[int, str]) -> None:
    """``proc.run(RunSteps(num_steps))``; a Lava process that dies or raises becomes one ``LavaError``.

    Lava's own blocking run waits forever when one model process raises: its neighbours block on
    the dead process's ports and the runtime service never answers. The run is therefore started
    non-blocking and the runtime's answer is awaited while the model processes are watched; when the
    runtime service answers with an error instead, the failing process is looked up the same way.
    """
    from lava.magma.core.run_conditions import RunSteps

    proc.run(condition=RunSteps(num_steps=num_steps, blocking=False))
    runtime = proc.runtime
    actors = list(runtime._messaging_infrastructure.actors)
    while not all(port.probe() for port in runtime.service_to_runtime):
        failure = _failure(actors, runtime, labels)
        if failure is not None:
            raise failure
        time.sleep(POLL_S)
    try:
        runtime.wait()
    except RuntimeError as err:   # "N Exception(s) occurred": a model raised and its service reported it
        failure = _failure(actors, runtime, labels, wait_s=2.0)
        raise (failure or LavaError(f"the Lava runtime failed: {err}")) from None


def _run_config(hardware: bool, stock_conv: bool = False) -> Any:
    """``Loihi2SimCfg`` (fixed point) or ``Loihi2HwCfg``; models of every CPU process are named
    explicitly, which also spares the compiler its search through model directories.

    On CPU, Lava's ``Conv`` runs ``PyConvModelFixedVectorized`` (the same integers as Lava's
    ``PyConvModelFixed``, whose scipy loop over channel pairs dominates the step time) unless
    ``stock_conv``.
    """
    from .procs.models import FIXED_PT_MODELS, PyConvModelFixedVectorized
    blocks_process, blocks_models = _netx_blocks()
    models: dict = {**FIXED_PT_MODELS, blocks_process.Conv: blocks_models.PyConvModel,
                    blocks_process.Dense: blocks_models.PyDenseModel}
    if hardware:
        from lava.magma.core.run_configs import Loihi2HwCfg
        return Loihi2HwCfg(select_sub_proc_model=True, exception_proc_model_map=models)
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.conv.models import PyConvModelFixed
    from lava.proc.conv.process import Conv
    from lava.proc.dense.models import PyDenseModelBitAcc
    from lava.proc.dense.process import Dense
    models.update({Conv: PyConvModelFixed if stock_conv else PyConvModelFixedVectorized, Dense: PyDenseModelBitAcc})
    return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models)


@dataclass
class _Logs:
    """Per-step activity over the whole run, indexed by ``time_step − 1``."""

    spikes: np.ndarray    # int64 (layers, steps)
    synops: list[np.ndarray]   # per source (input first): int64 (edges, steps)
    v_out: np.ndarray     # int64 (classes, steps) output membrane, flattened in (C, H, W) order


def _read_chunk(graph: LavaGraph, logs: _Logs, start: int, n: int) -> None:
    logs.synops[0][:, start:start + n] = graph.source.synop_log.get()[:, :n]
    for i, neuron in enumerate(graph.neurons):
        logs.spikes[i, start:start + n] = neuron.spike_log.get()[:n]
        logs.synops[i + 1][:, start:start + n] = neuron.synop_log.get()[:, :n]
    v = graph.neurons[-1].v_log.get()[..., :n]            # (*lava shape, n)
    if v.ndim == 4:
        v = v.transpose(2, 1, 0, 3)                          # (W, H, C, n) -> (C, H, W, n)
    logs.v_out[:, start:start + n] = v.reshape(-1, n)


def _assemble(net: IntNetwork, graph: LavaGraph, logs: _Logs) -> SimResult:
    """Pick each layer's aligned steps out of the logs: sample n, step t of layer i is at index n·T + t + i + 1."""
    T, N, L = graph.timesteps, graph.num_samples, len(net.layers)
    base = (np.arange(N)[:, None] * T + np.arange(T)[None, :])          # (N, T): n·T + t
    spikes = np.zeros((N, L, T), dtype=np.int64)
    synops = np.zeros((N, L, T), dtype=np.int64)
    for i in range(L):
        spikes[:, i] = logs.spikes[i][base + i + 1]
    for s, edges in enumerate(graph.out_edges):
        for e, edge in enumerate(edges):
            synops[:, edge.target] += logs.synops[s][e][base + edge.source + 1]
    scale = float(net.layers[-1].scale) * (1 << STATE_SHIFT)
    logits = logs.v_out[:, base + L].transpose(1, 2, 0).astype(np.float64) / scale   # (N, T, classes)
    return SimResult(logits, spikes, synops, [layer.name for layer in net.layers])


def _simulate(net: IntNetwork, pixels: np.ndarray, timesteps: int, hardware: bool, chunk_samples: int,
              progress: bool, stock_conv: bool = False) -> tuple[SimResult, dict[str, float]]:
    """Build, compile, stream all of ``pixels`` through one runtime, read the logs, stop."""
    chunk_steps = max(1, int(chunk_samples)) * timesteps
    start = time.perf_counter()
    graph = build_lava_graph(net, pixels, timesteps, log_steps=chunk_steps)
    total = graph.total_steps
    logs = _Logs(np.zeros((len(net.layers), total), dtype=np.int64),
                 [np.zeros((max(1, len(e)), total), dtype=np.int64) for e in graph.out_edges],
                 np.zeros((net.num_classes, total), dtype=np.int64))
    completed = False
    with exit_on_termination():
        try:
            executable = graph.source.compile(_run_config(hardware, stock_conv))
            with defer_signals(signal.SIGINT), die_with_parent():
                graph.source.create_runtime(executable=executable)
            compiled = time.perf_counter()
            with tqdm(total=total, desc="loihi" if hardware else "loihi_sim", unit="step",
                      disable=not progress, leave=False) as bar:
                for first in range(0, total, chunk_steps):
                    n = min(chunk_steps, total - first)
                    _run_steps(graph.source, n, graph.labels)
                    _read_chunk(graph, logs, first, n)
                    bar.update(n)
            finished = time.perf_counter()
            completed = True
        finally:   # Lava's own stop only after a complete run: an interrupted one may be mid-protocol
            shutdown(graph.source, force=not completed)
    result = _assemble(net, graph, logs)
    run_s = finished - compiled
    return result, {"compile_s": compiled - start, "run_s": run_s, "total_s": time.perf_counter() - start,
                    "steps": float(total), "samples_per_s": graph.num_samples / max(run_s, 1e-9),
                    "steps_per_s": total / max(run_s, 1e-9)}


def _prepare(net: IntNetwork, pixels: torch.Tensor | np.ndarray, timesteps: int, hardware: bool) -> np.ndarray:
    """Validate the inputs and the backend before anything is compiled."""
    if hardware:
        missing = check_loihi2()
        if missing:
            raise BackendUnavailable(
                "backend 'loihi' needs Intel's lava-loihi package and a reachable Loihi 2 system, but here "
                + "; ".join(missing) + "; use --backend loihi_sim for the bit-accurate CPU simulation")
    else:
        require_lava()
    check_timesteps(timesteps)
    require_lava_compatible(net)
    check_horizon(net, int(timesteps))
    x = check_pixels(torch.as_tensor(pixels), net.input_shape).detach().cpu().numpy()
    return x.astype(np.uint8)


def run_lava(net: IntNetwork, pixels: torch.Tensor | np.ndarray, timesteps: int, *, hardware: bool = False,
             chunk_samples: int = 64, progress: bool = False, stock_conv: bool = False
             ) -> tuple[SimResult, dict[str, float]]:
    """Stream all samples through one compiled Lava network and return what ``simulate_int`` returns.

    Sample n enters at step n·T + 1; the layers are pipelined and each restarts at its ``v_init`` at
    the start of its own sample, so one compile and N·T + depth steps run the whole set.

    Args:
        net: the integer network.
        pixels: (N, C, H, W) 8-bit pixel values 0..255.
        timesteps: T ≥ 1.
        hardware: compile with ``Loihi2HwCfg`` (needs lava-loihi and a Loihi 2 system; the neurons still
            run on the host, see the module docstring) instead of the CPU fixed-point simulation.
        chunk_samples: samples per ``run`` call; activity is read back after each call.
        progress: show a tqdm bar over steps.
        stock_conv: simulate Lava's ``Conv`` with Lava's own CPU model instead of slipsnn's vectorized
            one (same integers, ~30× slower on conv-heavy networks).

    Returns:
        (``SimResult`` equal bit for bit to ``simulate_int``'s, timing in seconds: ``compile_s``
        (build + compile + start processes), ``run_s``, ``total_s``, ``steps``, ``samples_per_s``,
        ``steps_per_s`` (both over ``run_s``)).

    Raises:
        BackendUnavailable: Lava is missing, or (``hardware``) lava-loihi or a Loihi 2 host is missing.

    Example:
        >>> res, timing = run_lava(net, pixels[:16], timesteps=4)      # doctest: +SKIP
        >>> (res.logits == simulate_int(net, pixels[:16], 4).logits).all()   # doctest: +SKIP
        True
    """
    x = _prepare(net, pixels, timesteps, hardware)
    return _simulate(net, x, int(timesteps), hardware, chunk_samples, progress, stock_conv)


def run_loihi_sim(net: IntNetwork, pixels: torch.Tensor, timesteps: int, progress: bool) -> tuple[SimResult, dict]:
    """The ``loihi_sim`` backend: ``run_lava`` on Lava's CPU fixed-point simulation."""
    return run_lava(net, pixels, timesteps, hardware=False, progress=progress)


def run_loihi(net: IntNetwork, pixels: torch.Tensor, timesteps: int, progress: bool) -> tuple[SimResult, dict]:
    """The ``loihi`` backend: ``run_lava`` through ``Loihi2HwCfg`` (needs Intel's lava-loihi)."""
    return run_lava(net, pixels, timesteps, hardware=True, progress=progress)


def run_lava_naive(net: IntNetwork, pixels: torch.Tensor | np.ndarray, timesteps: int, *,
                   progress: bool = False) -> tuple[SimResult, dict[str, float]]:
    """The naive way, for benchmarks: build, compile, run T + depth steps and stop a fresh network per sample.

    Returns the same ``SimResult`` as ``run_lava``; the timing sums the per-sample figures, and
    ``samples_per_s``/``steps_per_s`` are over ``total_s`` (compiling is part of every sample).
    """
    x = _prepare(net, pixels, timesteps, hardware=False)
    start = time.perf_counter()
    parts, timings = [], []
    for n in tqdm(range(len(x)), desc="loihi_sim naive", disable=not progress, leave=False):
        res, timing = _simulate(net, x[n:n + 1], int(timesteps), False, 1, False)
        parts.append(res)
        timings.append(timing)
    total_s = time.perf_counter() - start
    steps = sum(t["steps"] for t in timings)
    return SimResult.concat(parts), {"compile_s": sum(t["compile_s"] for t in timings),
                                     "run_s": sum(t["run_s"] for t in timings), "total_s": total_s,
                                     "steps": steps, "samples_per_s": len(x) / max(total_s, 1e-9),
                                     "steps_per_s": steps / max(total_s, 1e-9)}

"""Run an integer network on a backend: ``fast`` (vectorized simulator), ``loihi_sim`` (Lava CPU,
bit-accurate fixed point) or ``loihi`` (Lava on Loihi 2 through Intel's lava-loihi).

Every backend returns the same ``SimResult`` (per-sample logits, spikes and synaptic events per layer
and step), so ``fast`` and ``loihi_sim`` can be compared bit for bit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .errors import SlipsnnError
from .ir import IntNetwork
from .simulate import SimResult, simulate_int


@dataclass
class RunResult:
    """A backend run over a labelled set of samples.

    Attributes:
        backend: the backend name.
        timesteps: T.
        sim: what the run measured.
        labels: int64 (N,).
        timing: wall-clock figures in seconds (``compile_s``, ``run_s``, ``samples_per_s`` …).
    """

    backend: str
    timesteps: int
    sim: SimResult
    labels: np.ndarray
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return float(self.sim.accuracy(self.labels)[-1])

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document: accuracy, per-sample predictions and spike counts per layer."""
        return {
            "backend": self.backend,
            "timesteps": self.timesteps,
            "samples": int(len(self.labels)),
            "accuracy": self.accuracy,
            "accuracy_per_timestep": {str(t + 1): float(a) for t, a in enumerate(self.sim.accuracy(self.labels))},
            "predictions": self.sim.predictions().tolist(),
            "labels": self.labels.tolist(),
            "layers": list(self.sim.layer_names),
            "spikes_per_layer": self.sim.spikes.sum(axis=2).tolist(),
            "synops_per_layer": self.sim.synops.sum(axis=2).tolist(),
            "timing": {k: float(v) for k, v in self.timing.items()},
        }


def _run_fast(net: IntNetwork, pixels: torch.Tensor, timesteps: int, progress: bool) -> tuple[SimResult, dict]:
    start = time.perf_counter()
    sim = simulate_int(net, pixels, timesteps, progress=progress)
    run_s = time.perf_counter() - start
    return sim, {"compile_s": 0.0, "run_s": run_s, "samples_per_s": len(pixels) / max(run_s, 1e-9)}


def _run_loihi_sim(net: IntNetwork, pixels: torch.Tensor, timesteps: int, progress: bool) -> tuple[SimResult, dict]:
    from .lava_runtime import run_lava
    return run_lava(net, pixels, timesteps, hardware=False, progress=progress)


def _run_loihi(net: IntNetwork, pixels: torch.Tensor, timesteps: int, progress: bool) -> tuple[SimResult, dict]:
    from .lava_runtime import run_lava
    return run_lava(net, pixels, timesteps, hardware=True, progress=progress)


Backend = Callable[[IntNetwork, torch.Tensor, int, bool], tuple[SimResult, dict]]
BACKENDS: dict[str, Backend] = {"fast": _run_fast, "loihi_sim": _run_loihi_sim, "loihi": _run_loihi}


def run_network(net: IntNetwork, pixels: torch.Tensor, labels: torch.Tensor | np.ndarray, timesteps: int | None = None,
                backend: str = "loihi_sim", progress: bool = False) -> RunResult:
    """Run ``net`` on ``pixels`` with one backend.

    Args:
        net: the integer network (``exporters.netx.read_netx`` or ``quantize.quantize``).
        pixels: (N, C, H, W) 8-bit pixel values 0..255.
        labels: (N,) class indices.
        timesteps: T (default: the network's own ``timesteps``).
        backend: one of ``BACKENDS``.
        progress: show progress bars.

    Example:
        >>> res = run_network(net, pixels, labels, timesteps=4, backend="fast")   # doctest: +SKIP
        >>> res.accuracy                                                           # doctest: +SKIP
    """
    if backend not in BACKENDS:
        raise SlipsnnError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    t = int(timesteps or net.timesteps)
    sim, timing = BACKENDS[backend](net, pixels, t, progress)
    return RunResult(backend, t, sim, np.asarray(labels, dtype=np.int64), timing)


@dataclass(frozen=True)
class Mismatch:
    """Where two backends disagree (empty lists mean bit-exact)."""

    predictions: list[int]             # sample indices whose prediction differs
    spikes: list[tuple[int, int, int]]  # (sample, layer, step) whose spike count differs
    synops: list[tuple[int, int, int]]
    logits: list[int]                  # samples whose output membrane differs

    @property
    def total(self) -> int:
        return len(self.predictions) + len(self.spikes) + len(self.synops) + len(self.logits)


def compare(a: SimResult, b: SimResult) -> Mismatch:
    """Compare two runs of the same samples element by element."""
    if a.spikes.shape != b.spikes.shape:
        raise SlipsnnError(f"runs differ in shape: {a.spikes.shape} vs {b.spikes.shape}")
    return Mismatch(
        predictions=np.flatnonzero(a.predictions() != b.predictions()).tolist(),
        spikes=[tuple(map(int, i)) for i in np.argwhere(a.spikes != b.spikes)],
        synops=[tuple(map(int, i)) for i in np.argwhere(a.synops != b.synops)],
        logits=np.flatnonzero((a.logits != b.logits).any(axis=(1, 2))).tolist(),
    )


def load_network(path: str | Path) -> IntNetwork:
    """Read an exported network file (netx HDF5 with slipsnn's neuron)."""
    from ..exporters.netx import read_netx
    return read_netx(path)

"""What every backend returns: per-sample, per-layer, per-step measurements (``SimResult``), a labelled run
(``RunResult``), and the element-by-element comparison of two runs (``Mismatch``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import SlipsnnError


@dataclass
class SimResult:
    """What one simulation measured, per sample.

    Attributes:
        logits: float64 (N, T, classes): the output layer's summed input after each step, normalized units.
        spikes: int64 (N, layers, T): spikes each layer emitted at each step (the output layer: 0).
        synops: int64 (N, layers, T): synaptic events each layer's synapses processed at each step
            (a presynaptic spike or non-zero input pixel times its non-zero synapses into that layer).
        layer_names: name of each layer.
        counts: per layer (N, *shape) spike counts over the T steps, when recorded.
    """

    logits: np.ndarray
    spikes: np.ndarray
    synops: np.ndarray
    layer_names: list[str]
    counts: list[np.ndarray] | None = None

    @property
    def timesteps(self) -> int:
        return self.logits.shape[1]

    def predictions(self, t: int | None = None) -> np.ndarray:
        """Class per sample after ``t`` steps (default: all T), int64 (N,)."""
        return self.logits[:, (t or self.timesteps) - 1].argmax(axis=1)

    def accuracy(self, labels: np.ndarray | torch.Tensor) -> np.ndarray:
        """Accuracy after each step t = 1..T, float64 (T,)."""
        y = np.asarray(labels).reshape(-1, 1)
        return (self.logits.argmax(axis=2) == y).mean(axis=0)

    @staticmethod
    def concat(parts: Sequence["SimResult"]) -> "SimResult":
        """Join results of consecutive batches."""
        counts = None if parts[0].counts is None else [np.concatenate(c) for c in zip(*(p.counts for p in parts))]
        return SimResult(np.concatenate([p.logits for p in parts]), np.concatenate([p.spikes for p in parts]),
                         np.concatenate([p.synops for p in parts]), parts[0].layer_names, counts)


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

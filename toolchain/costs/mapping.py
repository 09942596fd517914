"""Where the network sits on a chip and how long a sample takes: cores per layer, latency and throughput (pure).

    latency = (t + depth) · step_time,   throughput = 1 / (t · step_time)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir.integer import IntNetwork
from .counts import stored_synapses
from .profiles import Profile, ProfileKind, require_kind


@dataclass(frozen=True)
class ChipTiming:
    """Latency and throughput on one profile for t steps (µs, samples/s); ranges follow the step time's range."""

    profile: str
    timesteps: int
    depth: int
    step_time_us: float
    step_time_range_us: tuple[float, float]

    @property
    def latency_us(self) -> float:
        """(t + depth) · step_time: each layer adds one step of pipeline latency."""
        return (self.timesteps + self.depth) * self.step_time_us

    @property
    def latency_range_us(self) -> tuple[float, float]:
        lo, hi = self.step_time_range_us
        return (self.timesteps + self.depth) * lo, (self.timesteps + self.depth) * hi

    @property
    def throughput_per_s(self) -> float:
        """1 / (t · step_time): one sample every t steps when streaming."""
        return 1e6 / (self.timesteps * self.step_time_us)

    @property
    def throughput_range_per_s(self) -> tuple[float, float]:
        lo, hi = self.step_time_range_us
        return 1e6 / (self.timesteps * hi), 1e6 / (self.timesteps * lo)


@dataclass(frozen=True)
class LayerCores:
    """Cores one layer needs: enough for its neurons and for its synapse memory.

    Attributes:
        name: layer name.
        neurons: neurons of the layer.
        synapses: stored synapses into the layer (non-zero weights, conv expanded at borders).
        synapse_bytes: synapses · bytes_per_synapse.
        cores_for_neurons: ceil(neurons / neurons_per_core).
        cores_for_memory: ceil(synapse_bytes / synapse_memory_per_core).
    """

    name: str
    neurons: int
    synapses: int
    synapse_bytes: float
    cores_for_neurons: int
    cores_for_memory: int

    @property
    def cores(self) -> int:
        return max(self.cores_for_neurons, self.cores_for_memory, 1)


@dataclass(frozen=True)
class CoreMap:
    """The simple per-layer core mapping of a network on one profile (layers never share a core)."""

    profile: str
    layers: tuple[LayerCores, ...]
    cores_per_chip: int

    @property
    def total_cores(self) -> int:
        return sum(layer.cores for layer in self.layers)

    @property
    def chips(self) -> int:
        return math.ceil(self.total_cores / self.cores_per_chip)


def chip_timing(profile: Profile, timesteps: int, depth: int) -> ChipTiming:
    """Latency and throughput of t steps through a pipeline of ``depth`` layers on a neuromorphic profile."""
    require_kind(profile, ProfileKind.NEUROMORPHIC)
    return ChipTiming(profile.name, int(timesteps), int(depth), profile.step_time.base, profile.step_time.base_range)


def map_cores(net: IntNetwork, profile: Profile, synapses: np.ndarray | None = None) -> CoreMap:
    """Cores per layer: ceil(neurons / neurons_per_core), at least ceil(synapse bytes / memory per core).

    Args:
        net: the network.
        profile: a neuromorphic profile (its ``[core]`` limits).
        synapses: ``stored_synapses(net)`` when already computed.
    """
    require_kind(profile, ProfileKind.NEUROMORPHIC)
    core = profile.core
    synapses = stored_synapses(net) if synapses is None else synapses
    per_core_n, mem, bps = core.neurons_per_core.base, core.synapse_memory_per_core.base, core.bytes_per_synapse.base
    layers = tuple(LayerCores(layer.name, layer.num_neurons, int(n_syn), float(n_syn * bps),
                              math.ceil(layer.num_neurons / per_core_n), math.ceil(n_syn * bps / mem))
                   for layer, n_syn in zip(net.layers, synapses))
    return CoreMap(profile.name, layers, int(core.cores_per_chip.base))

"""Operation counts and their cost on a chip profile: pure functions over the IR and a ``SimResult``.

Per layer and per sample (means over the samples of a run), after t time-steps:

    spikes        = Σ_{s<t} spikes[n, l, s]                       (what the layer emitted)
    synops        = Σ_{s<t} synops[n, l, s]                       (events its synapses processed, exact fan-out)
    firing rate   = spikes / (neurons · t)
    updates       = neurons · t   (every neuron is updated every step; active = the spikes, inactive = the rest)
    ANN MACs      = Σ_synapses Σ_output neurons (in-bounds taps × C_in/groups)   (dense: in · out; zeros included)

    E_SNN = Σ_l synops·E_synop + spikes·E_spike + active·E_upd,act + inactive·E_upd,inact
            + P_static · chips · latency                                            (when the profile has P_static)
    E_ANN = Σ_l MACs · E_MAC
    latency = (t + depth) · step_time,   throughput = 1 / (t · step_time)

docs/reports.md gives the sources of the constants and what the estimate leaves out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np

from ..kernels.connectivity import synapse_fanout, synapse_macs
from ..errors import ProfileError, SlipsnnError
from ..ir.integer import IntNetwork
from .profiles import Profile, ProfileKind
from ..backends.result import SimResult

SNN_OPS = ("synop", "neuron_update_active", "neuron_update_inactive", "spike")   # dynamic energy terms
PJ_PER_MW_US = 1e3   # 1 mW · 1 µs = 1 nJ = 1000 pJ


@dataclass(frozen=True)
class LayerCounts:
    """What one layer did per sample in the first ``timesteps`` steps (means over the samples).

    Attributes:
        name: layer name.
        neurons: number of neurons.
        timesteps: t, the steps counted.
        spikes: spikes emitted per sample.
        synops: synaptic events processed by the layer's incoming synapses per sample.
        macs: multiply-accumulates of the same layer in the ANN, per sample (does not depend on t).
    """

    name: str
    neurons: int
    timesteps: int
    spikes: float
    synops: float
    macs: int

    @property
    def firing_rate(self) -> float:
        """Spikes per neuron per step, spikes / (neurons · t)."""
        return self.spikes / (self.neurons * self.timesteps)

    @property
    def neuron_updates(self) -> int:
        """neurons · t: every neuron is updated every step."""
        return self.neurons * self.timesteps

    @property
    def active_updates(self) -> float:
        """Updates in which the neuron spiked (= spikes: a neuron spikes at most once per step)."""
        return self.spikes

    @property
    def inactive_updates(self) -> float:
        return self.neuron_updates - self.spikes


@dataclass(frozen=True)
class Energy:
    """Energy per inference (per sample) on one profile, in pJ.

    Attributes:
        profile: profile name.
        by_layer: one ``{op: pJ}`` per layer.
        static_pj: static energy of the chips in use over the latency (0 when the profile has none).
    """

    profile: str
    by_layer: tuple[Mapping[str, float], ...]
    static_pj: float = 0.0

    @property
    def by_op(self) -> dict[str, float]:
        """Dynamic energy summed over layers, per op."""
        ops: dict[str, float] = {}
        for layer in self.by_layer:
            for op, e in layer.items():
                ops[op] = ops.get(op, 0.0) + e
        return ops

    @property
    def layer_totals(self) -> list[float]:
        return [float(sum(layer.values())) for layer in self.by_layer]

    @property
    def dynamic_pj(self) -> float:
        return float(sum(self.layer_totals))

    @property
    def total_pj(self) -> float:
        return self.dynamic_pj + self.static_pj


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


def ann_macs(net: IntNetwork) -> np.ndarray:
    """MACs per layer (int64) of the ANN as trained: the baseline a GPU would run.

    Read from ``meta['ann_macs']``, which the lowering counted on the original modules (a conv after an
    average pool is counted at the pooled resolution with its own kernel; an identity shortcut costs no
    MAC). A network without that record is counted as deployed: every synapse, a folded pool+conv as
    the bigger strided conv it became.
    """
    recorded = net.meta.get("ann_macs")
    if isinstance(recorded, list) and len(recorded) == len(net.layers) and \
            all(isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in recorded):
        return np.asarray(recorded, dtype=np.int64)
    return np.array([sum(synapse_macs(s, net.source_shape(s.source)) for s in layer.synapses)
                     for layer in net.layers], dtype=np.int64)


def stored_synapses(net: IntNetwork) -> np.ndarray:
    """Synapses stored per layer (int64): non-zero weights × the connections they make, conv expanded."""
    return np.array([sum(int(synapse_fanout(s, net.source_shape(s.source)).sum()) for s in layer.synapses)
                     for layer in net.layers], dtype=np.int64)


def _check_sim(net: IntNetwork, sim: SimResult) -> None:
    if sim.spikes.shape[1] != len(net.layers) or sim.synops.shape != sim.spikes.shape:
        raise SlipsnnError(f"the run has {sim.spikes.shape[1]} layers (synops {sim.synops.shape}); "
                           f"the network has {len(net.layers)}: report a run of this network")
    if sim.spikes.shape[0] == 0:
        raise SlipsnnError("the run has no samples; nothing to count")


def count_layers(net: IntNetwork, sim: SimResult, timesteps: int, macs: np.ndarray | None = None) -> tuple[LayerCounts, ...]:
    """Per-layer counts per sample after ``timesteps`` steps of ``sim``.

    Reading the first t steps of a longer run is exact: the dynamics are causal and restart per sample.

    Args:
        net: the network that produced ``sim``.
        sim: a run with at least ``timesteps`` steps; ``spikes``/``synops`` (N, layers, T).
        timesteps: t, 1 ≤ t ≤ T.
        macs: ``ann_macs(net)`` when already computed.
    """
    _check_sim(net, sim)
    if not 1 <= timesteps <= sim.timesteps:
        raise SlipsnnError(f"timesteps={timesteps}: the run has {sim.timesteps} steps; allowed 1..{sim.timesteps}")
    macs = ann_macs(net) if macs is None else macs
    spikes = sim.spikes[:, :, :timesteps].sum(axis=2).mean(axis=0)
    synops = sim.synops[:, :, :timesteps].sum(axis=2).mean(axis=0)
    return tuple(LayerCounts(layer.name, layer.num_neurons, int(timesteps), float(spikes[i]), float(synops[i]),
                             int(macs[i])) for i, layer in enumerate(net.layers))


def per_step_means(net: IntNetwork, sim: SimResult) -> tuple[np.ndarray, np.ndarray]:
    """Spikes and synops per layer per step, means over samples: two float64 (layers, T) arrays."""
    _check_sim(net, sim)
    return sim.spikes.mean(axis=0), sim.synops.mean(axis=0)


def _require(profile: Profile, kind: ProfileKind) -> None:
    if profile.kind is not kind:
        raise ProfileError(f"profile {profile.name!r} ({profile.path}) is of kind {profile.kind.value!r}; "
                           f"this estimate needs kind {kind.value!r}")


def snn_energy(counts: Sequence[LayerCounts], profile: Profile, latency_us: float = 0.0, chips: int = 1) -> Energy:
    """Energy per inference of the spiking network on a neuromorphic profile.

    Args:
        counts: per-layer counts (``count_layers``).
        profile: a neuromorphic profile.
        latency_us: time the chips are held per inference (``ChipTiming.latency_us``); static energy is
            ``P_static · chips · latency`` when the profile has static power.
        chips: chips in use (``CoreMap.chips``).
    """
    _require(profile, ProfileKind.NEUROMORPHIC)
    e = {op: profile.energy_pj(op) for op in SNN_OPS}
    by_layer = tuple(MappingProxyType({
        "synop": c.synops * e["synop"],
        "neuron_update_active": c.active_updates * e["neuron_update_active"],
        "neuron_update_inactive": c.inactive_updates * e["neuron_update_inactive"],
        "spike": c.spikes * e["spike"],
    }) for c in counts)
    static = profile.static_power.base * chips * latency_us * PJ_PER_MW_US if profile.static_power else 0.0
    return Energy(profile.name, by_layer, float(static))


def ann_energy(counts: Sequence[LayerCounts], profile: Profile) -> Energy:
    """Energy per inference of the ANN: Σ MACs · E_MAC (first layer included) on an ``ann`` profile."""
    _require(profile, ProfileKind.ANN)
    e_mac = profile.energy_pj("mac")
    return Energy(profile.name, tuple(MappingProxyType({"mac": c.macs * e_mac}) for c in counts))


def literature_snn_energy(net: IntNetwork, counts: Sequence[LayerCounts], profile: Profile) -> Energy | None:
    """The SNN papers' estimate on an ``ann`` profile: binary-input synops × E_add, graded-input synops × E_MAC.

    The first layer reads the 8-bit image (a multiply per event); every other layer reads binary spikes
    (an accumulate). Neuron updates and spikes are not counted, as in the papers. None when the profile
    has no ``add`` energy.
    """
    _require(profile, ProfileKind.ANN)
    if "add" not in profile.energy:
        return None
    e_mac, e_add = profile.energy_pj("mac"), profile.energy_pj("add")
    graded = [any(s.source < 0 for s in layer.synapses) for layer in net.layers]
    return Energy(profile.name, tuple(MappingProxyType({"mac": c.synops * e_mac} if g else {"add": c.synops * e_add})
                                      for c, g in zip(counts, graded)))


def chip_timing(profile: Profile, timesteps: int, depth: int) -> ChipTiming:
    """Latency and throughput of t steps through a pipeline of ``depth`` layers on a neuromorphic profile."""
    _require(profile, ProfileKind.NEUROMORPHIC)
    return ChipTiming(profile.name, int(timesteps), int(depth), profile.step_time.base, profile.step_time.base_range)


def map_cores(net: IntNetwork, profile: Profile, synapses: np.ndarray | None = None) -> CoreMap:
    """Cores per layer: ceil(neurons / neurons_per_core), at least ceil(synapse bytes / memory per core).

    Args:
        net: the network.
        profile: a neuromorphic profile (its ``[core]`` limits).
        synapses: ``stored_synapses(net)`` when already computed.
    """
    _require(profile, ProfileKind.NEUROMORPHIC)
    core = profile.core
    synapses = stored_synapses(net) if synapses is None else synapses
    per_core_n, mem, bps = core.neurons_per_core.base, core.synapse_memory_per_core.base, core.bytes_per_synapse.base
    layers = tuple(LayerCores(layer.name, layer.num_neurons, int(n_syn), float(n_syn * bps),
                              math.ceil(layer.num_neurons / per_core_n), math.ceil(n_syn * bps / mem))
                   for layer, n_syn in zip(net.layers, synapses))
    return CoreMap(profile.name, layers, int(core.cores_per_chip.base))

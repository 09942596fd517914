"""Activity counts of a run, per layer and per sample: pure functions over the IR and a ``SimResult``.

Per layer and per sample (means over the samples of a run), after t time-steps:

    spikes        = Σ_{s<t} spikes[n, l, s]                       (what the layer emitted)
    synops        = Σ_{s<t} synops[n, l, s]                       (events its synapses processed, exact fan-out)
    firing rate   = spikes / (neurons · t)
    updates       = neurons · t   (every neuron is updated every step; active = the spikes, inactive = the rest)
    ANN MACs      = Σ_synapses Σ_output neurons (in-bounds taps × C_in/groups)   (dense: in · out; zeros included)

The MAC count has one definition, ``kernels.connectivity.synapse_macs`` (padded taps are not counted);
the lowering, this module and benchmarks/cifar.py all use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends.result import SimResult
from ..errors import SlipsnnError
from ..ir.integer import IntNetwork
from ..kernels.connectivity import synapse_fanout, synapse_macs


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



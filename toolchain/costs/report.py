"""Cost report of a run: accuracy, per-layer activity, energy, latency and cores (the data; ``show.report`` prints it).

One run with T = max(timesteps) gives every t ≤ T: accuracy after t steps is ``sim.accuracy(labels)[t-1]``
and counts up to t sum the per-step arrays over steps < t. That is exact, because the dynamics are
causal and restart at every sample. Formulas and sources: ``costs`` and docs/reports.md.

    >>> rep = build_report(net, run, [1, 2, 4], *choose_profiles("loihi2"))   # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from .counts import LayerCounts, ann_macs, count_layers, per_step_means, stored_synapses
from .energy import Energy, ann_energy, literature_snn_energy, snn_energy
from .mapping import ChipTiming, CoreMap, StepEstimate, chip_timing, layer_specs, map_cores, step_estimate
from ..errors import ProfileError, SlipsnnError
from ..ir.integer import IntNetwork
from .profiles import Profile, ProfileKind, list_profiles, load_profile
from ..backends.result import RunResult

REPORT_FORMAT = "slipsnn-report"
REPORT_VERSION = 2
EDGE_ANN_PROFILE = "jetson_nano"   # the ANN baseline on hardware a user would pick instead, reported beside
SIMULATION_NOTE = "wall-clock time of the simulation on this computer, not chip time"


@dataclass(frozen=True)
class StepReport:
    """Everything that depends on the number of time-steps t.

    Attributes:
        timesteps: t.
        accuracy: top-1 accuracy after t steps (fraction).
        layers: per-layer counts per sample.
        energy: neuromorphic profile name → SNN energy per inference.
        timing: neuromorphic profile name → latency and throughput.
        literature: the SNN papers' estimate on the ANN profile (None when it has no ``add`` energy).
        energy_range: profile name → (low, high) SNN energy, every constant (and the latency) at the
            low or the high end of its range.
        estimates: profile name → the most loaded core's step estimate (None without per-op times).
    """

    timesteps: int
    accuracy: float
    layers: tuple[LayerCounts, ...]
    energy: Mapping[str, Energy]
    timing: Mapping[str, ChipTiming]
    literature: Energy | None
    energy_range: Mapping[str, tuple[Energy, Energy]] = MappingProxyType({})
    estimates: Mapping[str, StepEstimate | None] = MappingProxyType({})


@dataclass(frozen=True)
class AnnBaseline:
    """The ANN's energy per inference on one ``ann`` profile: the value and the (low, high) of its range."""

    profile: Profile
    energy: Energy
    low: Energy
    high: Energy


@dataclass(frozen=True, eq=False)
class Report:
    """A cost report (build with ``build_report``; ``to_json`` and ``format_report`` show the same numbers).

    Attributes:
        network: provenance: arch, dataset, input shape, depth, layer names.
        backend: the backend of the run.
        samples: number of samples counted.
        simulation_timing: the run's wall-clock figures in seconds (simulation, not chip time).
        profiles: the neuromorphic profiles; the first is the main one.
        ann_profile: the profile of the ANN baseline.
        ann_accuracy: the ANN's accuracy from the network's metadata (fraction), if recorded.
        steps: one ``StepReport`` per requested t, ascending.
        ann_energy: the ANN's energy per inference.
        cores: neuromorphic profile name → core mapping (budgets at their values).
        cores_range: profile name → (fewest, most): the mapping with every budget at the end of its range
            that gives the fewest cores, and at the end that gives the most (``map_cores(..., end)``).
        ann_baselines: the ANN on every ``ann`` profile (the main one first, then an edge GPU).
        synapses: stored synapses per layer (conv expanded; what a chip without weight sharing stores).
        accuracy_per_step: accuracy after every t = 1..T of the run.
        spikes_per_step, synops_per_step: float64 (layers, T), means over samples.
    """

    network: Mapping[str, Any]
    backend: str
    samples: int
    simulation_timing: Mapping[str, float]
    profiles: tuple[Profile, ...]
    ann_profile: Profile
    ann_accuracy: float | None
    steps: tuple[StepReport, ...]
    ann_energy: Energy
    cores: Mapping[str, CoreMap]
    cores_range: Mapping[str, tuple[CoreMap, CoreMap]]
    ann_baselines: tuple[AnnBaseline, ...]
    synapses: tuple[int, ...]
    accuracy_per_step: tuple[float, ...]
    spikes_per_step: np.ndarray
    synops_per_step: np.ndarray

    @property
    def main_profile(self) -> str:
        return self.profiles[0].name

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON types (energies in pJ, times in µs, rates as fractions)."""
        last = self.steps[-1]
        return {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "network": dict(self.network),
            "run": {"backend": self.backend, "samples": self.samples, "timesteps": len(self.accuracy_per_step),
                    "wall_clock_s": {k: float(v) for k, v in self.simulation_timing.items()},
                    "note": SIMULATION_NOTE},
            "main_profile": self.main_profile,
            "profiles": {p.name: p.to_dict() for p in (*self.profiles, *(b.profile for b in self.ann_baselines))},
            "layers": [{"name": c.name, "neurons": c.neurons, "synapses": int(s), "macs": c.macs}
                       for c, s in zip(last.layers, self.synapses)],
            "ann": {"profile": self.ann_profile.name, "accuracy": self.ann_accuracy,
                    "accuracy_note": "from the network's training metrics (full test split)",
                    "macs": int(sum(c.macs for c in last.layers)),
                    "energy_pj": self.ann_energy.total_pj,
                    "energy_pj_by_layer": self.ann_energy.layer_totals,
                    "macs_definition": "kernels.connectivity.synapse_macs: in-bounds taps only (padding excluded)",
                    "baselines": {b.profile.name: {"energy_pj": b.energy.total_pj,
                                                   "energy_range_pj": [b.low.total_pj, b.high.total_pj],
                                                   "description": b.profile.description}
                                  for b in self.ann_baselines}},
            "timesteps": [self._step_json(s) for s in self.steps],
            "cores": {name: _cores_json(m, self.cores_range[name]) for name, m in self.cores.items()},
            "per_step": {"accuracy": list(self.accuracy_per_step),
                         "spikes": self.spikes_per_step.tolist(), "synops": self.synops_per_step.tolist()},
        }

    def _step_json(self, s: StepReport) -> dict[str, Any]:
        ann = self.ann_energy.total_pj
        lit = None
        if s.literature is not None:
            lit = {"profile": s.literature.profile, "energy_pj": s.literature.total_pj,
                   "energy_pj_by_layer": s.literature.layer_totals, "ann_over_snn": _ratio(ann, s.literature.total_pj),
                   "formula": "first-layer synops × E_mac + other synops × E_add (no neuron updates)"}
        return {
            "timesteps": s.timesteps,
            "accuracy": s.accuracy,
            "layers": [{"name": c.name, "neurons": c.neurons, "spikes": c.spikes, "firing_rate": c.firing_rate,
                        "synops": c.synops, "neuron_updates": c.neuron_updates, "active_updates": c.active_updates,
                        "inactive_updates": c.inactive_updates, "macs": c.macs} for c in s.layers],
            "totals": {"spikes": float(sum(c.spikes for c in s.layers)), "synops": float(sum(c.synops for c in s.layers)),
                       "neuron_updates": int(sum(c.neuron_updates for c in s.layers)),
                       "macs": int(sum(c.macs for c in s.layers))},
            "energy": {name: {"energy_pj": e.total_pj, "dynamic_pj": e.dynamic_pj, "static_pj": e.static_pj,
                              "by_op_pj": e.by_op, "by_layer_pj": [dict(layer) for layer in e.by_layer],
                              "ann_over_snn": _ratio(ann, e.total_pj),
                              "ann_over_snn_dynamic": _ratio(ann, e.dynamic_pj),
                              **_range_json(s.energy_range.get(name))}
                       for name, e in s.energy.items()},
            "literature_estimate": lit,
            "timing": {name: {"step_time_us": t.step_time_us, "step_time_range_us": list(t.step_time_range_us),
                              "latency_us": t.latency_us, "latency_range_us": list(t.latency_range_us),
                              "throughput_per_s": t.throughput_per_s,
                              "throughput_range_per_s": list(t.throughput_range_per_s),
                              "step_source": t.source, "busiest_layer": t.busiest_layer,
                              "core_loads": _loads_json(s.estimates.get(name))}
                       for name, t in s.timing.items()},
        }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _range_json(pair: tuple[Energy, Energy] | None) -> dict[str, Any]:
    if pair is None:
        return {}
    lo, hi = pair
    return {"energy_range_pj": [lo.total_pj, hi.total_pj], "dynamic_range_pj": [lo.dynamic_pj, hi.dynamic_pj]}


def _loads_json(est: StepEstimate | None) -> list[dict[str, Any]] | None:
    if est is None:
        return None
    return [{"name": c.name, "synops": c.synops, "neurons": c.neurons, "spikes": c.spikes, "time_us": c.time_us,
             "time_range_us": list(c.time_range_us)} for c in est.loads]


def _cores_json(m: CoreMap, extremes: tuple[CoreMap, CoreMap]) -> dict[str, Any]:
    fewest, most = extremes
    return {"cores_per_chip": m.cores_per_chip, "total_cores": m.total_cores, "chips": m.chips,
            "weight_sharing": m.weight_sharing,
            "total_cores_range": [fewest.total_cores, most.total_cores], "chips_range": [fewest.chips, most.chips],
            "layers": [{"name": c.name, "kind": c.kind, "neurons": c.neurons, "cores": c.cores,
                        "cores_range": [f.cores, x.cores], "tile": list(c.tile),
                        "neurons_per_core": c.neurons_per_core, "synapse_bytes_per_core": c.synapse_bytes_per_core,
                        "axons_in_per_core": c.axons_in_per_core, "bound": c.bound, "fits": c.fits,
                        "first_core": c.first_core, "chips": list(m.chips_of(c))}
                       for c, f, x in zip(m.layers, fewest.layers, most.layers)]}


def _ann_accuracy(meta: Mapping[str, Any]) -> float | None:
    metrics = meta.get("metrics")
    value = (metrics if isinstance(metrics, Mapping) else {}).get("ann_accuracy", meta.get("ann_accuracy"))
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def build_report(net: IntNetwork, run: RunResult, timesteps: Sequence[int], profiles: Sequence[Profile],
                 ann_profile: Profile | Sequence[Profile]) -> Report:
    """Count, cost and time one run of ``net`` for every t in ``timesteps``.

    Args:
        net: the network that was run.
        run: one run with T ≥ max(timesteps) (``run_network``); every t ≤ T is read from its per-step arrays.
        timesteps: the t values to report, each in 1..T.
        profiles: neuromorphic profiles; the first is the main one (per-layer energy table and plot).
        ann_profile: the ``ann`` profile of the ANN baseline, or several (the first is the main one).

    Returns:
        The ``Report``.

    Raises:
        SlipsnnError: a t outside 1..T, or a run that does not match the network.
        ProfileError: a profile of the wrong kind, or no neuromorphic profile.

    Example:
        >>> rep = build_report(net, run, [1, 2, 4], [load_profile("loihi2")], load_profile("gpu45nm"))  # doctest: +SKIP
    """
    steps_t = sorted({int(t) for t in timesteps})
    T = run.sim.timesteps
    if not steps_t or steps_t[0] < 1 or steps_t[-1] > T:
        raise SlipsnnError(f"timesteps {list(timesteps)}: each must be in 1..{T}, the steps of the run")
    if not profiles:
        raise ProfileError("no neuromorphic profile given; built-in profiles: " + ", ".join(list_profiles()))
    names = [p.name for p in profiles]
    if len(set(names)) != len(names):
        raise ProfileError(f"profiles given twice: {names}")
    for p in profiles:
        if p.kind is not ProfileKind.NEUROMORPHIC:
            raise ProfileError(f"profile {p.name!r} ({p.path}) is of kind {p.kind.value!r}; "
                               "the SNN is costed on 'neuromorphic' profiles")
    anns = [ann_profile] if isinstance(ann_profile, Profile) else list(ann_profile)
    for a in anns:
        if a.kind is not ProfileKind.ANN:
            raise ProfileError(f"ANN profile {a.name!r} ({a.path}) is of kind {a.kind.value!r}; allowed: 'ann'")
    if not anns:
        raise ProfileError("no ANN profile given; built-in profiles: " + ", ".join(list_profiles()))
    ann_profile = anns[0]

    macs, synapses, specs = ann_macs(net), stored_synapses(net), layer_specs(net)
    cores = {p.name: map_cores(specs, p) for p in profiles}
    cores_range = {p.name: (map_cores(specs, p, "fewest"), map_cores(specs, p, "most")) for p in profiles}
    accuracy = run.sim.accuracy(run.labels)
    steps = []
    for t in steps_t:
        counts = count_layers(net, run.sim, t, macs)
        est = {p.name: step_estimate(cores[p.name], counts, p) for p in profiles}
        timing = {p.name: chip_timing(p, t, net.depth, est[p.name]) for p in profiles}
        energy = {p.name: snn_energy(counts, p, timing[p.name].latency_us, cores[p.name].chips) for p in profiles}
        lo_hi = {p.name: (snn_energy(counts, p, timing[p.name].latency_range_us[0], cores_range[p.name][0].chips, "low"),
                          snn_energy(counts, p, timing[p.name].latency_range_us[1], cores_range[p.name][1].chips, "high"))
                 for p in profiles}
        steps.append(StepReport(t, float(accuracy[t - 1]), counts, MappingProxyType(energy),
                                MappingProxyType(timing), literature_snn_energy(net, counts, ann_profile),
                                MappingProxyType(lo_hi), MappingProxyType(est)))
    last = steps[-1].layers
    baselines = tuple(AnnBaseline(a, ann_energy(last, a), ann_energy(last, a, "low"), ann_energy(last, a, "high"))
                      for a in anns)
    spikes_step, synops_step = per_step_means(net, run.sim)
    meta = net.meta
    network = {"arch": meta.get("arch"), "dataset": meta.get("dataset"), "input_shape": list(net.input_shape),
               "depth": net.depth, "layers": [layer.name for layer in net.layers],
               "exported_timesteps": net.timesteps, "max_timesteps": net.max_timesteps}
    return Report(network=MappingProxyType(network), backend=run.backend, samples=int(len(run.labels)),
                  simulation_timing=MappingProxyType(dict(run.timing)), profiles=tuple(profiles),
                  ann_profile=ann_profile, ann_accuracy=_ann_accuracy(meta), steps=tuple(steps),
                  ann_energy=baselines[0].energy, cores=MappingProxyType(cores),
                  cores_range=MappingProxyType(cores_range), ann_baselines=baselines,
                  synapses=tuple(int(s) for s in synapses), accuracy_per_step=tuple(float(a) for a in accuracy),
                  spikes_per_step=spikes_step, synops_per_step=synops_step)


# ----------------------------------------------------------------------------------------------------------
# Terminal tables. They are built from ``Report.to_json()``, so the table and the JSON cannot disagree.


def choose_profiles(profile: str | Path | Sequence[str | Path] = "loihi2",
                    ann_profile: str | Path = "gpu45nm",
                    edge_profile: str | Path | None = EDGE_ANN_PROFILE) -> tuple[list[Profile], list[Profile]]:
    """Load the profiles a report uses: exactly the neuromorphic ones given, and the ANN baselines.

    Args:
        profile: one profile or several (names or TOML paths); the first neuromorphic one is the main
            profile. A profile of kind ``ann`` among them replaces ``ann_profile``.
        ann_profile: profile of the main ANN baseline.
        edge_profile: a second ANN baseline on hardware a user would pick instead (None: none).

    Returns:
        (neuromorphic profiles, main first; the ANN profiles, main first).

    Raises:
        ProfileError: a profile cannot be loaded, none is neuromorphic, or more than one is ``ann``.
    """
    given = [profile] if isinstance(profile, (str, Path)) else list(profile)
    loaded = [load_profile(p) for p in given]
    anns = [p for p in loaded if p.kind is ProfileKind.ANN]
    if len(anns) > 1:
        raise ProfileError(f"more than one ANN profile given: {', '.join(p.name for p in anns)}; allowed: one")
    chips = [p for p in loaded if p.kind is ProfileKind.NEUROMORPHIC]
    if not chips:
        raise ProfileError(f"no neuromorphic profile among {[p.name for p in loaded]}; built-in profiles: "
                           + ", ".join(list_profiles()))
    main_ann = anns[0] if anns else load_profile(ann_profile)
    ann_list = [main_ann]
    if edge_profile is not None:
        edge = load_profile(edge_profile)
        if edge.kind is not ProfileKind.ANN:
            raise ProfileError(f"edge profile {edge.name!r} ({edge.path}) is of kind {edge.kind.value!r}; allowed: 'ann'")
        if edge.name != main_ann.name:
            ann_list.append(edge)
    return chips, ann_list

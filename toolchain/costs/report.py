"""Cost report of a run: accuracy, per-layer activity, energy, latency and cores, as JSON, tables and plots.

One run with T = max(timesteps) gives every t ≤ T: accuracy after t steps is ``sim.accuracy(labels)[t-1]``
and counts up to t sum the per-step arrays over steps < t. That is exact, because the dynamics are
causal and restart at every sample. Formulas and sources: ``costs`` and docs/reports.md.

    >>> rep = report("runs/d/model.net", "digits", [1, 2, 4], json_path="r.json")   # doctest: +SKIP
    >>> print(format_report(rep))                                                    # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from .counts import (ChipTiming, CoreMap, Energy, LayerCounts, ann_energy, ann_macs, chip_timing, count_layers, literature_snn_energy, map_cores, per_step_means, snn_energy, stored_synapses)
from ..errors import ProfileError, SlipsnnError
from ..ir.integer import IntNetwork
from .profiles import Profile, ProfileKind, list_profiles, load_profile
from ..backends.result import RunResult

REPORT_FORMAT = "slipsnn-report"
REPORT_VERSION = 1
SIMULATION_NOTE = "wall-clock time of the simulation on this computer, not chip time"
ENERGY_UNITS = (("pJ", 1.0), ("nJ", 1e3), ("µJ", 1e6), ("mJ", 1e9), ("J", 1e12))


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
    """

    timesteps: int
    accuracy: float
    layers: tuple[LayerCounts, ...]
    energy: Mapping[str, Energy]
    timing: Mapping[str, ChipTiming]
    literature: Energy | None


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
        cores: neuromorphic profile name → core mapping.
        synapses: stored synapses per layer.
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
            "profiles": {p.name: p.to_dict() for p in (*self.profiles, self.ann_profile)},
            "layers": [{"name": c.name, "neurons": c.neurons, "synapses": int(s), "macs": c.macs}
                       for c, s in zip(last.layers, self.synapses)],
            "ann": {"profile": self.ann_profile.name, "accuracy": self.ann_accuracy,
                    "accuracy_note": "from the network's training metrics (full test split)",
                    "macs": int(sum(c.macs for c in last.layers)),
                    "energy_pj": self.ann_energy.total_pj,
                    "energy_pj_by_layer": self.ann_energy.layer_totals},
            "timesteps": [self._step_json(s) for s in self.steps],
            "cores": {name: _cores_json(m) for name, m in self.cores.items()},
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
                              "ann_over_snn_dynamic": _ratio(ann, e.dynamic_pj)}
                       for name, e in s.energy.items()},
            "literature_estimate": lit,
            "timing": {name: {"step_time_us": t.step_time_us, "step_time_range_us": list(t.step_time_range_us),
                              "latency_us": t.latency_us, "latency_range_us": list(t.latency_range_us),
                              "throughput_per_s": t.throughput_per_s,
                              "throughput_range_per_s": list(t.throughput_range_per_s)}
                       for name, t in s.timing.items()},
        }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _cores_json(m: CoreMap) -> dict[str, Any]:
    return {"cores_per_chip": m.cores_per_chip, "total_cores": m.total_cores, "chips": m.chips,
            "layers": [{"name": c.name, "neurons": c.neurons, "synapses": c.synapses, "synapse_bytes": c.synapse_bytes,
                        "cores_for_neurons": c.cores_for_neurons, "cores_for_memory": c.cores_for_memory,
                        "cores": c.cores} for c in m.layers]}


def _ann_accuracy(meta: Mapping[str, Any]) -> float | None:
    metrics = meta.get("metrics")
    value = (metrics if isinstance(metrics, Mapping) else {}).get("ann_accuracy", meta.get("ann_accuracy"))
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def build_report(net: IntNetwork, run: RunResult, timesteps: Sequence[int], profiles: Sequence[Profile],
                 ann_profile: Profile) -> Report:
    """Count, cost and time one run of ``net`` for every t in ``timesteps``.

    Args:
        net: the network that was run.
        run: one run with T ≥ max(timesteps) (``run_network``); every t ≤ T is read from its per-step arrays.
        timesteps: the t values to report, each in 1..T.
        profiles: neuromorphic profiles; the first is the main one (per-layer energy table and plot).
        ann_profile: the ``ann`` profile of the ANN baseline.

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
    if ann_profile.kind is not ProfileKind.ANN:
        raise ProfileError(f"ANN profile {ann_profile.name!r} ({ann_profile.path}) is of kind "
                           f"{ann_profile.kind.value!r}; allowed: 'ann'")

    macs, synapses = ann_macs(net), stored_synapses(net)
    cores = {p.name: map_cores(net, p, synapses) for p in profiles}
    accuracy = run.sim.accuracy(run.labels)
    steps = []
    for t in steps_t:
        counts = count_layers(net, run.sim, t, macs)
        timing = {p.name: chip_timing(p, t, net.depth) for p in profiles}
        energy = {p.name: snn_energy(counts, p, timing[p.name].latency_us, cores[p.name].chips) for p in profiles}
        steps.append(StepReport(t, float(accuracy[t - 1]), counts, MappingProxyType(energy),
                                MappingProxyType(timing), literature_snn_energy(net, counts, ann_profile)))
    spikes_step, synops_step = per_step_means(net, run.sim)
    meta = net.meta
    network = {"arch": meta.get("arch"), "dataset": meta.get("dataset"), "input_shape": list(net.input_shape),
               "depth": net.depth, "layers": [layer.name for layer in net.layers],
               "exported_timesteps": net.timesteps, "max_timesteps": net.max_timesteps}
    return Report(network=MappingProxyType(network), backend=run.backend, samples=int(len(run.labels)),
                  simulation_timing=MappingProxyType(dict(run.timing)), profiles=tuple(profiles),
                  ann_profile=ann_profile, ann_accuracy=_ann_accuracy(meta), steps=tuple(steps),
                  ann_energy=ann_energy(steps[-1].layers, ann_profile), cores=MappingProxyType(cores),
                  synapses=tuple(int(s) for s in synapses), accuracy_per_step=tuple(float(a) for a in accuracy),
                  spikes_per_step=spikes_step, synops_per_step=synops_step)


# ----------------------------------------------------------------------------------------------------------
# Terminal tables. They are built from ``Report.to_json()``, so the table and the JSON cannot disagree.

def energy_unit(max_pj: float, digits: int = 4) -> tuple[str, float]:
    """The unit (name, pJ per unit) that prints ``max_pj`` with at most ``digits`` digits before the point."""
    for name, scale in ENERGY_UNITS:
        if max_pj < 10 ** digits * scale:
            return name, scale
    return ENERGY_UNITS[-1]


def format_energy(pj: float) -> str:
    """``pj`` picojoules in the unit that fits, e.g. ``'6.24 µJ'``."""
    unit, scale = energy_unit(abs(pj), digits=3)
    return f"{pj / scale:.3g} {unit}"


def _g(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 0) -> list[str]:
    """Right-aligned columns, the first ``left`` columns left-aligned."""
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i < left else str(c).rjust(w)
                              for i, (c, w) in enumerate(zip(r, widths)))
    return [fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)]


def format_report(report: Report | Mapping[str, Any]) -> str:
    """Readable terminal tables of a report (or of its ``to_json()`` dict, e.g. read back from a file).

    Sections: accuracy vs T; per layer at the largest T; energy per inference per profile vs the ANN;
    latency and throughput; cores; the constants that are assumptions.
    """
    d = report.to_json() if isinstance(report, Report) else report
    net, run, main = d["network"], d["run"], d["main_profile"]
    last = d["timesteps"][-1]
    ann = d["ann"]
    out = [f"slipsnn report: {net.get('arch') or 'network'} on {net.get('dataset') or '?'}, "
           f"{run['samples']} samples, backend {run['backend']}, depth {net['depth']}",
           "simulation wall-clock (" + SIMULATION_NOTE + "): "
           + ", ".join(f"{k} {_g(v)}" for k, v in run["wall_clock_s"].items()), ""]

    out += ["Accuracy vs time-steps"]
    rows = [[str(s["timesteps"]), f"{100 * s['accuracy']:.2f}"] for s in d["timesteps"]]
    if ann["accuracy"] is not None:
        rows.append(["ANN", f"{100 * ann['accuracy']:.2f}"])
    out += _table(["T", "accuracy %"], rows) + [""]

    e_main = last["energy"][main]
    layer_pj = [sum(x.values()) for x in e_main["by_layer_pj"]]
    unit, scale = energy_unit(max([*layer_pj, *ann["energy_pj_by_layer"], 0.0]))
    out += [f"Per layer at T={last['timesteps']} (per sample, mean over {run['samples']} samples; "
            f"energy on {main} and ANN on {ann['profile']}, in {unit})"]
    rows = []
    for i, (c, eb, ea) in enumerate(zip(last["layers"], layer_pj, ann["energy_pj_by_layer"])):
        rows.append([str(i), c["name"], str(c["neurons"]), _g(c["spikes"]), _g(100 * c["firing_rate"]), _g(c["synops"]),
                     str(c["macs"]), _g(eb / scale), _g(ea / scale)])
    tot = last["totals"]
    rows.append(["", "total", str(sum(c["neurons"] for c in last["layers"])), _g(tot["spikes"]), "",
                 _g(tot["synops"]), str(tot["macs"]), _g(e_main["dynamic_pj"] / scale), _g(ann["energy_pj"] / scale)])
    out += _table(["#", "layer", "neurons", "spikes", "rate %", "synops", "ANN MACs", f"E_SNN {unit}",
                   f"E_ANN {unit}"], rows, left=2) + [""]

    all_e = [e["energy_pj"] for s in d["timesteps"] for e in s["energy"].values()] + [ann["energy_pj"]]
    unit, scale = energy_unit(max(all_e))
    out += [f"Energy per inference ({unit}); ANN on {ann['profile']}: {_g(ann['energy_pj'] / scale)} {unit} "
            f"({ann['macs']} MACs)"]
    rows = []
    for s in d["timesteps"]:
        for name, e in s["energy"].items():
            rows.append([str(s["timesteps"]), name, _g(e["dynamic_pj"] / scale), _g(e["static_pj"] / scale),
                         _g(e["energy_pj"] / scale), _g(e["ann_over_snn"]), _g(e["ann_over_snn_dynamic"])])
        lit = s["literature_estimate"]
        if lit is not None:
            rows.append([str(s["timesteps"]), f"{lit['profile']} (papers' estimate)", _g(lit["energy_pj"] / scale), "-",
                         _g(lit["energy_pj"] / scale), _g(lit["ann_over_snn"]), _g(lit["ann_over_snn"])])
    out += _table(["T", "profile", "dynamic", "static", "total", "ANN/SNN", "ANN/SNN dynamic"], rows, left=2)
    out += ["(papers' estimate: first-layer synops × E_mac + other synops × E_add on the ANN profile)", ""]

    out += ["Latency (T + depth steps) and throughput (one sample per T steps) on the chip"]
    rows = []
    for s in d["timesteps"]:
        for name, t in s["timing"].items():
            lo, hi = t["latency_range_us"]
            tlo, thi = t["throughput_range_per_s"]
            rows.append([str(s["timesteps"]), name, _g(t["step_time_us"]), _g(t["latency_us"]), f"{_g(lo, 3)}–{_g(hi, 3)}",
                         _g(t["throughput_per_s"]), f"{_g(tlo, 3)}–{_g(thi, 3)}"])
    out += _table(["T", "profile", "step µs", "latency µs", "range µs", "samples/s", "range /s"], rows, left=2) + [""]

    for name, m in d["cores"].items():
        out += [f"Cores on {name} (a layer needs cores for its neurons and for its synapse memory; "
                f"{m['cores_per_chip']} cores per chip)"]
        rows = [[str(i), c["name"], str(c["neurons"]), str(c["synapses"]), str(c["cores_for_neurons"]),
                 str(c["cores_for_memory"]), str(c["cores"])] for i, c in enumerate(m["layers"])]
        rows.append(["", "total", "", "", "", "", str(m["total_cores"])])
        out += _table(["#", "layer", "neurons", "synapses", "by neurons", "by memory", "cores"], rows, left=2)
        out += [f"chips needed: {m['chips']}", ""]

    out += ["Constants that rest on a slipsnn assumption (each profile file says which and why):"]
    for name, p in d["profiles"].items():
        out.append(f"  {name}: {', '.join(p['assumptions']) or 'none'}")
    return "\n".join(out)


def save_report(report: Report, json_path: str | Path | None = None, plots_dir: str | Path | None = None) -> list[Path]:
    """Write the JSON and/or the three plots atomically; returns the written paths."""
    from ..files import atomic_write_json
    written: list[Path] = []
    if json_path is not None:
        written.append(atomic_write_json(json_path, report.to_json()))
    if plots_dir is not None:
        from ..show.plots import plot_report
        written += plot_report(report, plots_dir)
    return written


def choose_profiles(profile: str | Path | Sequence[str | Path] = "loihi2",
                    ann_profile: str | Path = "gpu45nm") -> tuple[list[Profile], Profile]:
    """Load the profiles a report uses: the given ones first, then every other built-in neuromorphic one.

    Args:
        profile: one profile or several (names or TOML paths); the first neuromorphic one is the main
            profile. A profile of kind ``ann`` among them replaces ``ann_profile``.
        ann_profile: profile of the ANN baseline.

    Returns:
        (neuromorphic profiles, main first; the ANN profile).

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
    names = {p.name for p in chips}
    for name in list_profiles():
        if name not in names:
            p = load_profile(name)
            if p.kind is ProfileKind.NEUROMORPHIC:
                chips.append(p)
                names.add(name)
    return chips, anns[0] if anns else load_profile(ann_profile)


def report(net_path: str | Path, dataset: str | None, timesteps: int | Sequence[int], backend: str = "fast",
           profile: str | Path | Sequence[str | Path] = "loihi2", json_path: str | Path | None = None,
           plots_dir: str | Path | None = None, data_root: str | Path | None = None, limit: int | None = None,
           ann_profile: str | Path = "gpu45nm", progress: bool = False) -> Report:
    """Load a network file and a test split, run once with T = max(timesteps), report and save.

    Args:
        net_path: exported network file (netx HDF5).
        dataset: data set name (``data.DATASETS``); its ``test`` split is used. None: the data set recorded
            in the network's metadata.
        timesteps: one t or several; the run uses the largest.
        backend: ``fast``, ``loihi_sim`` or ``loihi`` (``run.BACKENDS``).
        profile: the main neuromorphic profile (name or TOML path), or several, main first; every other
            built-in neuromorphic profile is reported beside them (``choose_profiles``).
        json_path, plots_dir: where to save the JSON and the plots (None: not saved).
        data_root: data folder (``data.load_pixels``).
        limit: use only the first ``limit`` test samples.
        ann_profile: profile of the ANN baseline.
        progress: show progress bars.

    Raises:
        SlipsnnError: bad timesteps, no data set, or any error of loading, running or costing.

    Example:
        >>> rep = report("runs/d/model.net", "digits", [1, 2, 4], limit=100)   # doctest: +SKIP
    """
    from ..pipeline import network_and_test_data
    from ..backends.registry import run_network
    ts = [int(timesteps)] if isinstance(timesteps, (int, np.integer)) else [int(t) for t in timesteps]
    if not ts or min(ts) < 1:
        raise SlipsnnError(f"timesteps {ts}: give at least one, each ≥ 1")
    profiles, ann = choose_profiles(profile, ann_profile)
    net, pixels, labels = network_and_test_data(net_path, dataset, data_root, limit)
    run = run_network(net, pixels, labels, max(ts), backend, progress=progress)
    rep = build_report(net, run, ts, profiles, ann)
    save_report(rep, json_path, plots_dir)
    return rep

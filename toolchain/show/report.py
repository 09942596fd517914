"""The cost report as terminal tables (from a ``Report`` or its JSON document); computes nothing.

    >>> print(format_report(rep))   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..costs.report import SIMULATION_NOTE, Report
from ..tables import Column, format_table


ENERGY_UNITS = (("pJ", 1.0), ("nJ", 1e3), ("µJ", 1e6), ("mJ", 1e9), ("J", 1e12))


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
    """Fitted columns two spaces apart under a dashed rule; right-aligned except the first ``left``."""
    return format_table([Column(h, align="<" if i < left else ">", gap=2) for i, h in enumerate(header)], rows,
                        rule=True)


def _constants(p: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(section.key, constant dict) of a profile's ``to_dict()``."""
    out = [(f"energy.{k}", c) for k, c in p.get("energy", {}).items()]
    return out + [(k, c) for k, c in p.items() if "." in k and isinstance(c, Mapping)]


def format_report(report: Report | Mapping[str, Any]) -> str:
    """Readable terminal tables of a report (or of its ``to_json()`` dict, e.g. read back from a file).

    Sections: accuracy vs T; per layer at the largest T; energy per inference per profile vs the ANN;
    latency and throughput; the partition on cores and chips; the constants by status.
    """
    d = report.to_json() if isinstance(report, Report) else report
    net, run = d["network"], d["run"]
    out = [f"slipsnn report: {net.get('arch') or 'network'} on {net.get('dataset') or '?'}, "
           f"{run['samples']} samples, backend {run['backend']}, depth {net['depth']}",
           "simulation wall-clock (" + SIMULATION_NOTE + "): "
           + ", ".join(f"{k} {_g(v)}" for k, v in run["wall_clock_s"].items()), ""]
    for section in (_accuracy_section, _layer_section, _energy_section, _timing_section, _cores_section,
                    _constants_section):
        out += section(d)
    return "\n".join(out)


def _accuracy_section(d: Mapping[str, Any]) -> list[str]:
    ann = d["ann"]
    rows = [[str(s["timesteps"]), f"{100 * s['accuracy']:.2f}"] for s in d["timesteps"]]
    if ann["accuracy"] is not None:
        rows.append(["ANN", f"{100 * ann['accuracy']:.2f}"])
    return ["Accuracy vs time-steps"] + _table(["T", "accuracy %"], rows) + [""]


def _layer_section(d: Mapping[str, Any]) -> list[str]:
    last, ann, main, run = d["timesteps"][-1], d["ann"], d["main_profile"], d["run"]
    e_main = last["energy"][main]
    layer_pj = [sum(x.values()) for x in e_main["by_layer_pj"]]
    unit, scale = energy_unit(max([*layer_pj, *ann["energy_pj_by_layer"], 0.0]))
    out = [f"Per layer at T={last['timesteps']} (per sample, mean over {run['samples']} samples; "
           f"energy on {main} and ANN on {ann['profile']}, in {unit})"]
    rows = []
    for i, (c, eb, ea) in enumerate(zip(last["layers"], layer_pj, ann["energy_pj_by_layer"])):
        rows.append([str(i), c["name"], str(c["neurons"]), _g(c["spikes"]), _g(100 * c["firing_rate"]), _g(c["synops"]),
                     str(c["macs"]), _g(eb / scale), _g(ea / scale)])
    tot = last["totals"]
    rows.append(["", "total", str(sum(c["neurons"] for c in last["layers"])), _g(tot["spikes"]), "",
                 _g(tot["synops"]), str(tot["macs"]), _g(e_main["dynamic_pj"] / scale), _g(ann["energy_pj"] / scale)])
    return out + _table(["#", "layer", "neurons", "spikes", "rate %", "synops", "ANN MACs", f"E_SNN {unit}",
                         f"E_ANN {unit}"], rows, left=2) + [""]


def _energy_section(d: Mapping[str, Any]) -> list[str]:
    ann = d["ann"]
    all_e = [e["energy_pj"] for s in d["timesteps"] for e in s["energy"].values()] + [ann["energy_pj"]]
    unit, scale = energy_unit(max(all_e))
    span = lambda r: f"{_g(r[0] / scale, 3)}–{_g(r[1] / scale, 3)}" if r else "-"  # noqa: E731
    out = [f"Energy per inference ({unit}); range: every constant at the low / high end of its range"]
    rows = []
    for s in d["timesteps"]:
        for name, e in s["energy"].items():
            rows.append([str(s["timesteps"]), name, _g(e["dynamic_pj"] / scale), span(e.get("dynamic_range_pj")),
                         _g(e["static_pj"] / scale), _g(e["energy_pj"] / scale), span(e.get("energy_range_pj")),
                         _g(e["ann_over_snn"]), _g(e["ann_over_snn_dynamic"])])
        lit = s["literature_estimate"]
        if lit is not None:
            rows.append([str(s["timesteps"]), f"{lit['profile']} (papers' estimate)", _g(lit["energy_pj"] / scale), "-",
                         "-", _g(lit["energy_pj"] / scale), "-", _g(lit["ann_over_snn"]), _g(lit["ann_over_snn"])])
    out += _table(["T", "profile", "dynamic", "dynamic range", "static", "total", "total range", "ANN/SNN",
                   "ANN/SNN dynamic"], rows, left=2)
    out += ["(papers' estimate: first-layer synops × E_mac + other synops × E_add on the ANN profile)", ""]
    out += [f"ANN baseline ({ann['macs']} MACs, {ann.get('macs_definition', 'in-bounds taps')}), {unit}"]
    rows = [[name, _g(b["energy_pj"] / scale), span(b["energy_range_pj"]), b["description"]]
            for name, b in ann.get("baselines", {ann["profile"]: {"energy_pj": ann["energy_pj"],
                                                                  "energy_range_pj": None, "description": ""}}).items()]
    return out + _table(["profile", "energy", "range", "what it is"], rows, left=1) + [""]


def _timing_section(d: Mapping[str, Any]) -> list[str]:
    out = ["Latency (T + depth steps) and throughput (one sample per T steps) on the chip; the step comes from the "
           "most loaded core when the profile has per-op times"]
    rows = []
    for s in d["timesteps"]:
        for name, t in s["timing"].items():
            lo, hi = t["latency_range_us"]
            tlo, thi = t["throughput_range_per_s"]
            src = t.get("step_source", "profile step_time")
            src = f"core of {t['busiest_layer']}" if t.get("busiest_layer") else src
            rows.append([str(s["timesteps"]), name, _g(t["step_time_us"]), src, _g(t["latency_us"]),
                         f"{_g(lo, 3)}–{_g(hi, 3)}", _g(t["throughput_per_s"]), f"{_g(tlo, 3)}–{_g(thi, 3)}"])
    return out + _table(["T", "profile", "step µs", "step set by", "latency µs", "range µs", "samples/s", "range /s"],
                        rows, left=2) + [""]


def _cores_section(d: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for name, m in d["cores"].items():
        sharing = "conv kernels shared within a core" if m.get("weight_sharing") else "conv synapses stored expanded"
        out += [f"Partition on {name} ({sharing}; {m['cores_per_chip']} cores per chip; range: every budget at "
                "the end of its range that gives the fewest / the most cores)"]
        rows = []
        for i, c in enumerate(m["layers"]):
            lo, hi = c["cores_range"]
            chips = c["chips"][0] if c["chips"][0] == c["chips"][1] else f"{c['chips'][0]}–{c['chips'][1]}"
            rows.append([str(i), c["name"], c["kind"], str(c["neurons"]), str(c["cores"]), f"{lo}–{hi}",
                         "×".join(str(t) for t in c["tile"]), _g(c["synapse_bytes_per_core"] / 1024, 3),
                         str(c["axons_in_per_core"] or "-"), c["bound"] + ("" if c["fits"] else " (does not fit)"),
                         str(chips)])
        lo, hi = m["total_cores_range"]
        rows.append(["", "total", "", "", str(m["total_cores"]), f"{lo}–{hi}", "", "", "", "", ""])
        out += _table(["#", "layer", "kind", "neurons", "cores", "range", "tile", "syn KiB/core", "axons/core",
                       "set by", "chip"], rows, left=3)
        clo, chi = m["chips_range"]
        out += [f"chips: {m['chips']} (range {clo}–{chi}); an estimate of a model calibrated on Intel's compiles "
                "(docs/reports.md), not a compiler result", ""]
    return out


def _constants_section(d: Mapping[str, Any]) -> list[str]:
    out = ["Constants by status (measured / calibrated / assumed; each profile file gives the source and why):"]
    for name, p in d["profiles"].items():
        by: dict[str, list[str]] = {}
        for key, c in _constants(p):
            by.setdefault(c.get("status", "unstated"), []).append(key)
        out.append(f"  {name}: " + "; ".join(f"{st}: {', '.join(keys)}" for st, keys in sorted(by.items())))
    return out

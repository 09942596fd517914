"""Plots of a cost report: accuracy vs time-steps, spikes per layer, energy per layer (PNG, matplotlib).

Figures are plain ``matplotlib.figure.Figure`` objects (``new_figure``): no pyplot, so no global backend
switch and no figure left open in a notebook. matplotlib is imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..files import atomic_write
from ..costs.energy import SNN_OPS

if TYPE_CHECKING:
    from ..costs.report import Report

PLOT_FILES = ("accuracy_vs_timesteps.png", "spikes_per_layer.png", "energy_per_layer.png", "energy_range.png")
OP_LABELS = {"synop": "synaptic ops", "neuron_update_active": "neuron updates (spiking)",
             "neuron_update_inactive": "neuron updates (silent)", "spike": "spikes sent"}
LOG_SCALE_RATIO = 100.0   # switch an axis to log scale when its positive values span more than this
DPI = 150


def plot_report(report: "Report", out_dir: str | Path) -> list[Path]:
    """Write the three plots of ``report`` into ``out_dir`` (created if missing), atomically.

    Files: ``accuracy_vs_timesteps.png`` (SNN accuracy after every t, the ANN as a dashed line when the
    network records it), ``spikes_per_layer.png`` (spikes per sample per spiking layer, one bar per
    reported T), ``energy_per_layer.png`` (energy per layer by operation on the main profile at the
    largest T, with the ANN's energy per layer beside it) and ``energy_range.png`` (energy per inference
    vs T on every profile, shaded over the range its constants span, with the ANN baselines' ranges).

    Returns:
        The written paths, in the order above.

    Example:
        >>> plot_report(rep, "runs/d/plots")       # doctest: +SKIP
    """
    d = report.to_json()
    out = Path(out_dir)
    makers: list[Callable[[dict], Any]] = [_accuracy, _spikes, _energy, _energy_range]
    return [save_figure(make(d), out / name) for name, make in zip(PLOT_FILES, makers)]


def new_figure(figsize: tuple[float, float], ncols: int = 1) -> tuple[Any, Any]:
    """A pyplot-free figure with ``ncols`` axes side by side; returns (figure, axes)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(1, ncols)


def save_figure(fig: Any, path: str | Path) -> Path:
    """Lay out ``fig`` and write it as a PNG atomically."""
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))


def _title(d: dict) -> str:
    net = d["network"]
    return f"{net.get('arch') or 'network'} on {net.get('dataset') or '?'} ({d['run']['samples']} samples)"


def _log_if_wide(ax: Any, values: np.ndarray) -> bool:
    pos = np.asarray(values, dtype=float)
    pos = pos[pos > 0]
    if pos.size and pos.max() / pos.min() > LOG_SCALE_RATIO:
        ax.set_yscale("log")
        return True
    return False


def _short(v: float) -> str:
    """A bar label: whole numbers (no exponent) from 100 up, three significant digits below."""
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _accuracy(d: dict) -> Any:
    fig, ax = new_figure((7, 4.5))
    acc = 100 * np.asarray(d["per_step"]["accuracy"])
    t_all = np.arange(1, len(acc) + 1)
    ax.plot(t_all, acc, "-", color="tab:blue", alpha=0.5, label="SNN, every t (one run)")
    ts = [s["timesteps"] for s in d["timesteps"]]
    acc_t = [100 * s["accuracy"] for s in d["timesteps"]]
    ax.plot(ts, acc_t, "o", color="tab:blue", label=f"SNN at reported T ({d['run']['backend']} backend)")
    for t, a in zip(ts, acc_t):
        ax.annotate(f"{a:.1f}", (t, a), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    if d["ann"]["accuracy"] is not None:
        ax.axhline(100 * d["ann"]["accuracy"], ls="--", color="tab:red", label="ANN (training metrics)")
    ax.set_xlabel("time-steps T")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_xticks(ts)
    ax.grid(alpha=0.3)
    ax.set_title(f"Accuracy vs time-steps: {_title(d)}")
    ax.legend(loc="best")
    return fig


def _spiking_layers(d: dict) -> list[int]:
    """Layers that emit spikes (the accumulating output layer never does)."""
    last = d["timesteps"][-1]["layers"]
    return [i for i in range(len(last) - 1)] or [0]


def _spikes(d: dict) -> Any:
    idx = _spiking_layers(d)
    names = [d["layers"][i]["name"] for i in idx]
    steps = d["timesteps"]
    fig, ax = new_figure((max(7, 0.6 * len(idx) * max(1, len(steps) / 2) + 2), 5))
    x = np.arange(len(idx))
    width = 0.8 / len(steps)
    values = []
    for k, s in enumerate(steps):
        v = [s["layers"][i]["spikes"] for i in idx]
        values += v
        ax.bar(x + (k - (len(steps) - 1) / 2) * width, v, width, label=f"T = {s['timesteps']}")
    logged = _log_if_wide(ax, np.array(values))
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_xlabel("layer (the output layer accumulates and does not spike)")
    ax.set_ylabel("spikes per sample" + (" (log scale)" if logged else ""))
    ax.set_title(f"Spikes per layer: {_title(d)}")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return fig


def _energy(d: dict) -> Any:
    from .report import energy_unit, format_energy
    main, last, ann = d["main_profile"], d["timesteps"][-1], d["ann"]
    e = last["energy"][main]
    names = [layer["name"] for layer in d["layers"]]
    by_op = {op: np.array([layer[op] for layer in e["by_layer_pj"]]) for op in SNN_OPS}
    ann_pj = np.array(ann["energy_pj_by_layer"])
    totals = sum(by_op.values())
    unit, scale = energy_unit(float(max(totals.max(), ann_pj.max(), 0.0)))
    fig, ax = new_figure((max(7, 0.9 * len(names) + 2) + 3, 5))
    x = np.arange(len(names))
    width = 0.4
    bottom = np.zeros(len(names))
    for op in SNN_OPS:
        v = by_op[op] / scale
        ax.bar(x - width / 2, v, width, bottom=bottom, label=f"SNN on {main}: {OP_LABELS[op]}")
        bottom = bottom + v
    ax.bar(x + width / 2, ann_pj / scale, width, color="lightgrey", edgecolor="black", hatch="//",
           label=f"ANN on {ann['profile']} (MACs)")
    logged = _log_if_wide(ax, np.concatenate([totals, ann_pj]) / scale)
    for xi, tot, a in zip(x, totals / scale, ann_pj / scale):
        ax.annotate(_short(tot), (xi - width / 2, tot), textcoords="offset points", xytext=(0, 3), ha="center",
                    fontsize=7)
        ax.annotate(_short(a), (xi + width / 2, a), textcoords="offset points", xytext=(0, 3), ha="center",
                    fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_xlabel("layer")
    ax.set_ylabel(f"energy per inference ({unit})" + (" (log scale: segments not to scale)" if logged else ""))
    ax.set_title(f"Energy per layer at T = {last['timesteps']}: {_title(d)}\n"
                 f"SNN dynamic {format_energy(e['dynamic_pj'])} + static {format_energy(e['static_pj'])} "
                 f"(not per layer) vs ANN {format_energy(ann['energy_pj'])}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _energy_range(d: dict) -> Any:
    from .report import energy_unit
    ts = [s["timesteps"] for s in d["timesteps"]]
    profiles = list(d["timesteps"][-1]["energy"])
    baselines = d["ann"].get("baselines") or {d["ann"]["profile"]: {"energy_pj": d["ann"]["energy_pj"],
                                                                    "energy_range_pj": [d["ann"]["energy_pj"]] * 2}}
    highs = [s["energy"][p].get("energy_range_pj", [0, s["energy"][p]["energy_pj"]])[1]
             for s in d["timesteps"] for p in profiles]
    highs += [b["energy_range_pj"][1] for b in baselines.values()]
    unit, scale = energy_unit(float(max(highs)))
    fig, ax = new_figure((8, 5))
    for p in profiles:
        e = np.array([s["energy"][p]["energy_pj"] for s in d["timesteps"]]) / scale
        rng = np.array([s["energy"][p].get("energy_range_pj", [s["energy"][p]["energy_pj"]] * 2)
                        for s in d["timesteps"]]) / scale
        line, = ax.plot(ts, e, marker="o", label=f"SNN on {p}")
        ax.fill_between(ts, rng[:, 0], rng[:, 1], color=line.get_color(), alpha=0.2)
    for (name, b), color in zip(baselines.items(), ("dimgray", "darkred", "darkgreen", "purple")):
        lo, hi = (v / scale for v in b["energy_range_pj"])
        ax.axhline(b["energy_pj"] / scale, color=color, linestyle="--", label=f"ANN on {name}")
        ax.axhspan(lo, hi, color=color, alpha=0.1)
    ax.set_yscale("log")
    ax.set_xlabel("time-steps T")
    ax.set_ylabel(f"energy per inference ({unit}, log scale)")
    ax.set_title(f"Energy per inference and the range its constants span: {_title(d)}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig

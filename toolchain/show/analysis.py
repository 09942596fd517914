"""The conversion analysis as text tables and a figure; computes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..analysis.conversion import DIGITS, ConversionAnalysis
from ..tables import Column, format_table
from .plots import new_figure, save_figure


def _activation_text(res: ConversionAnalysis) -> str:
    p = res.activation
    if not p:
        return res.preset
    return f"{res.preset}: a={p['a']:g}, L={p['L']}, δ₁={p['delta1']:g}, δ₂={p['delta2']:g}"


def _fmt(v: float) -> str:
    return f"{v:+.{DIGITS}f}"


def format_analysis(res: ConversionAnalysis) -> str:
    """The analysis as text tables; every number equals the JSON's (same rounding).

    Example:
        >>> print(format_analysis(res))   # doctest: +SKIP
    """
    d = res.to_json()
    names = res.layer_names
    width = max([len(n) for n in names] + [12])
    lines = ["conversion error e = ANN activation/θ − SNN spike count/T (units of θ; e > 0: the SNN fires less)",
             f"{res.source} ({_activation_text(res)}), T={res.timesteps}, {res.samples} test samples, "
             f"ANN accuracy {100 * d['ann_accuracy']:.2f} %", ""]
    tr = d["trained"]
    own = "per layer" if res.trained.delta2 is None else f"{res.trained.delta2:g}"
    lines.append(f"as converted (initial membrane δ₂ = {own}; SNN accuracy {100 * tr['snn_accuracy']:.2f} %):")
    cols = ("mean", "std", "p5", "p95", "mean|e|", "ANN", "rate")
    columns = [Column("layer", width, "<"), Column("neurons", 8)] + [Column(c, 10, gap=0) for c in cols]
    rows = [[layer["name"], layer["neurons"]] + [_fmt(layer[k]) for k in ("mean", "std", "p5", "p95", "mean_abs",
                                                                           "ann_mean", "rate_mean")]
            for layer in tr["layers"]]
    lines += format_table(columns, rows)
    if d["sweep"]:
        lines += ["", "mean error per layer vs initial membrane δ₂ (the trained ANN is unchanged):"]
        columns = [Column("layer", width, "<")] + [Column("δ₂=" + format(s["delta2"], "g"), 11, gap=0)
                                                   for s in d["sweep"]]
        rows = [[name] + [_fmt(s["layers"][k]["mean"]) for s in d["sweep"]] for k, name in enumerate(names)]
        rows.append(["SNN acc %"] + [f"{100 * s['snn_accuracy']:.2f}" for s in d["sweep"]])
        lines += format_table(columns, rows)
    return "\n".join(lines)


def plot_analysis(res: ConversionAnalysis, path: str | Path) -> Path:
    """Write a PNG: mean error ± std per layer vs δ₂, SNN accuracy vs δ₂, and the error spread per layer.

    The figure is pyplot-free (``plots.new_figure``); the file is written atomically.

    Returns:
        ``path`` as a ``Path``.
    """
    names = res.layer_names
    fig, axes = new_figure((17, 4.8), ncols=3)
    ax = axes[0]
    if res.sweep:
        deltas = np.array([s.delta2 for s in res.sweep])
        order = np.argsort(deltas)
        for k, name in enumerate(names):
            mean = np.array([s.layers[k].mean for s in res.sweep])[order]
            std = np.array([s.layers[k].std for s in res.sweep])[order]
            line, = ax.plot(deltas[order], mean, "o-", label=name)
            ax.fill_between(deltas[order], mean - std, mean + std, color=line.get_color(), alpha=0.12)
        ax.axhline(0.0, color="k", lw=0.8)
        if res.activation:
            ax.axvline(res.activation["delta2"], color="gray", ls=":", label="trained δ₂")
        ax.set_xlabel("initial membrane δ₂ (units of θ)")
        ax.set_ylabel("mean error e (units of θ), band ± std")
        ax.legend(fontsize=8)
        axes[1].plot(deltas[order], 100 * np.array([s.snn_accuracy for s in res.sweep])[order], "o-",
                     label=f"SNN, T={res.timesteps}")
        axes[1].axhline(100 * res.ann_accuracy, ls="--", color="tab:red", label="ANN")
        axes[1].set_xlabel("initial membrane δ₂ (units of θ)")
        axes[1].set_ylabel("top-1 accuracy (%)")
        axes[1].legend(fontsize=8)
    ax.set_title("mean conversion error vs δ₂")
    axes[1].set_title("SNN accuracy vs δ₂")
    x = np.arange(len(names))
    tr = res.trained.layers
    ax = axes[2]
    ax.vlines(x, [layer.p5 for layer in tr], [layer.p95 for layer in tr], color="tab:blue", lw=6, alpha=0.3,
              label="5–95 percentile")
    ax.errorbar(x, [layer.mean for layer in tr], yerr=[layer.std for layer in tr], fmt="o", color="tab:blue",
                capsize=4, label="mean ± std")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel("error e (units of θ)")
    ax.set_title(f"spread as converted (T={res.timesteps})")
    ax.legend(fontsize=8)
    for a in axes:
        a.grid(alpha=0.3)
    fig.suptitle(f"{res.source} — {_activation_text(res)}; e = ANN/θ − spikes/T; {res.samples} samples")
    return save_figure(fig, path)

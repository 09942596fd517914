"""Layer-wise conversion error: the tailored ANN's activation against the SNN's firing rate, per layer.

For every spiking (hidden) layer ℓ and every neuron i of every test sample, in units of the layer's
threshold θˡ (normalized units):

    eˡᵢ = aˡᵢ / θˡ − nˡᵢ(T) / T

where ``aˡᵢ / θˡ`` is the ANN activation (``spiking.ann_forward`` on the lowered network) and ``nˡᵢ(T)``
the neuron's spike count over T steps of the float SNN (``simulate_float(..., record_counts=True)``).
**Sign convention:** e > 0 means the SNN fires *less* than the ANN activation asks for. Both sides run
end to end from the same image, so the error of layer ℓ includes what earlier layers passed on.

This is the quantity of the theorems in QCFS (Bu et al., ICLR 2022, Thm. 2) and SlipReLU (Jiang et al.,
ICML 2023): with an initial membrane δ₂·θ the expected error is zero for every δ₂ ∈ [−½, ½] when the
ANN's step part uses the same shift. The δ₂ sweep keeps the trained ANN fixed and restarts the SNN from
other initial membranes (``dataclasses.replace(layer, v_init=δ₂)``), which shows the bias a mismatched
δ₂ introduces. For a QCFS layer (a = 0, δ₂ = ½ in training) fed a constant input with T = L, the rate is
``floor(T·z + δ₂)/T``, so the error is exactly 0 at δ₂ = ½ and averages +½/T at δ₂ = 0 (z uniform in
its bin), +1/T at δ₂ = −½.

Example:
    >>> res = analyze_conversion("runs/digits/model.pt", timesteps=4)          # doctest: +SKIP
    >>> print(format_analysis(res))                                           # doctest: +SKIP
    >>> plot_analysis(res, "runs/digits/conversion_error.png")                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..ir.activation import preset_name
from ..errors import SlipsnnError
from ..backends.simulator import simulate_float
from ..ir.floating import SpikingNetwork
from ..backends.ann_eval import ann_forward

DEFAULT_DELTA2 = (-0.5, -0.25, 0.0, 0.25, 0.5)
PERCENTILES = (5.0, 95.0)
DIGITS = 4          # decimals of the error statistics in the table (the JSON rounds to the same)


@dataclass(frozen=True)
class LayerError:
    """Statistics of e = ANN activation/θ − spike count/T over all neurons × samples of one layer.

    Attributes:
        name: the layer (its activation module).
        neurons: neurons in the layer.
        mean, std: mean and population standard deviation of e (units of θ).
        p5, p95: 5th and 95th percentiles of e (units of θ).
        mean_abs: mean |e| (units of θ).
        ann_mean: mean ANN activation / θ.
        rate_mean: mean SNN firing rate (spikes per step).
    """

    name: str
    neurons: int
    mean: float
    std: float
    p5: float
    p95: float
    mean_abs: float
    ann_mean: float
    rate_mean: float

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, DIGITS) if isinstance(v, float) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class DeltaResult:
    """The SNN restarted from initial membrane δ₂·θ in every spiking layer (the ANN unchanged).

    Attributes:
        delta2: the initial membrane, units of θ (None: the layers' own, which differ).
        snn_accuracy: top-1 accuracy (fraction) after T steps.
        layers: per spiking layer.
    """

    delta2: float | None
    snn_accuracy: float
    layers: tuple[LayerError, ...]

    def to_json(self) -> dict[str, Any]:
        return {"delta2": self.delta2, "snn_accuracy": round(self.snn_accuracy, DIGITS + 2),
                "layers": [layer.to_json() for layer in self.layers]}


@dataclass(frozen=True)
class ConversionAnalysis:
    """What ``analyze_conversion`` measured.

    Attributes:
        source: checkpoint path (or a description of the network).
        preset: activation preset of the trained ANN (``slip``, ``qcfs``, ``relu`` …).
        activation: its parameters (a, L, δ₁, δ₂), or None for a plain ReLU.
        timesteps: T.
        samples: test samples used.
        ann_accuracy: the ANN's top-1 accuracy on those samples (fraction).
        trained: the SNN as converted (each layer's own ``v_init``, i.e. the trained δ₂).
        sweep: one entry per requested δ₂, in the order given.
    """

    source: str
    preset: str
    activation: dict[str, Any] | None
    timesteps: int
    samples: int
    ann_accuracy: float
    trained: DeltaResult
    sweep: tuple[DeltaResult, ...]

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.trained.layers]

    def to_json(self) -> dict[str, Any]:
        """A plain dict (numbers rounded as ``format_analysis`` prints them)."""
        return {
            "quantity": "e = ANN activation/theta - SNN spike count/T, units of theta; e > 0: the SNN fires less",
            "source": self.source, "preset": self.preset, "activation": self.activation,
            "timesteps": self.timesteps, "samples": self.samples,
            "ann_accuracy": round(self.ann_accuracy, DIGITS + 2),
            "trained": self.trained.to_json(),
            "sweep": [d.to_json() for d in self.sweep],
        }


def _layer_error(name: str, ann: torch.Tensor, counts: np.ndarray, timesteps: int) -> LayerError:
    a = ann.reshape(len(ann), -1).numpy()
    r = counts.reshape(len(counts), -1).astype(np.float64) / timesteps
    e = (a - r).ravel()
    p_lo, p_hi = np.percentile(e, PERCENTILES)
    return LayerError(name=name, neurons=int(a.shape[1]), mean=float(e.mean()), std=float(e.std()),
                      p5=float(p_lo), p95=float(p_hi), mean_abs=float(np.abs(e).mean()),
                      ann_mean=float(a.mean()), rate_mean=float(r.mean()))


def _with_v_init(net: SpikingNetwork, delta2: float) -> SpikingNetwork:
    """A copy of ``net`` whose spiking layers start at ``delta2`` (the output layer keeps 0)."""
    layers = tuple(dataclasses.replace(layer, v_init=float(delta2)) if layer.spiking else layer
                   for layer in net.layers)
    return dataclasses.replace(net, layers=layers)


def _check_delta2(values: Sequence[float]) -> list[float]:
    values = [float(v) for v in values]
    bad = [v for v in values if not -1.0 < v < 1.0 or not math.isfinite(v)]
    if bad:
        raise SlipsnnError(f"initial membrane delta2 values {bad} are outside (-1, 1), the range in units of "
                           "θ where a neuron neither starts above threshold nor a whole spike below zero")
    return values


def analyze_network(net: SpikingNetwork, pixels: torch.Tensor, labels: torch.Tensor | np.ndarray, timesteps: int,
                    delta2_values: Sequence[float] = DEFAULT_DELTA2, *, source: str = "network",
                    batch_size: int = 256) -> ConversionAnalysis:
    """Per-layer conversion error of a lowered network on given samples, at its own δ₂ and across ``delta2_values``.

    Args:
        net: the converted float network (``lower.lower`` / ``pipeline.convert_checkpoint``).
        pixels: (N, C, H, W) 8-bit pixel values 0..255.
        labels: (N,) class indices.
        timesteps: T ≥ 1.
        delta2_values: initial membranes to try, units of θ, each in (−1, 1).
        source: what to call the network in the result.
        batch_size: samples per simulated batch.

    Returns:
        The ``ConversionAnalysis``.

    Every layer's ANN activations and spike counts for all samples are held in memory (percentiles
    need them all): fine for digits, use a sample limit for CIFAR-sized networks.
    """
    if int(timesteps) < 1:
        raise SlipsnnError(f"timesteps={timesteps}: must be ≥ 1")
    if len(pixels) == 0:
        raise SlipsnnError("the conversion analysis needs at least one sample")
    deltas = _check_delta2(delta2_values)
    y = np.asarray(labels, dtype=np.int64)
    ann = ann_forward(net, pixels)
    hidden = [i for i, layer in enumerate(net.layers) if layer.spiking]

    def measure(variant: SpikingNetwork, delta2: float | None) -> DeltaResult:
        sim = simulate_float(variant, pixels, int(timesteps), batch_size=batch_size, record_counts=True)
        layers = tuple(_layer_error(net.layers[i].name, ann[i], sim.counts[i], int(timesteps)) for i in hidden)
        return DeltaResult(delta2=delta2, snn_accuracy=float(sim.accuracy(y)[-1]), layers=layers)

    own = sorted({float(net.layers[i].v_init) for i in hidden})
    trained = measure(net, own[0] if len(own) == 1 else None)
    sweep = tuple(measure(_with_v_init(net, d), d) for d in deltas)
    act = net.meta.get("activation", {})
    params = act.get("params") if isinstance(act, dict) else None
    preset = act.get("preset", "?") if isinstance(act, dict) else "?"
    if preset == "?" and hidden:  # a network lowered without checkpoint provenance
        first = net.layers[hidden[0]].act
        params, preset = (None if first is None else first.to_dict()), preset_name(first)
    return ConversionAnalysis(source=source, preset=str(preset), activation=params, timesteps=int(timesteps),
                              samples=len(y), ann_accuracy=float((ann[-1].argmax(1).numpy() == y).mean()),
                              trained=trained, sweep=sweep)


def analyze_conversion(checkpoint_path: str | Path, timesteps: int,
                       delta2_values: Sequence[float] = DEFAULT_DELTA2, limit: int | None = None,
                       data_root: str | Path | None = None, dataset: str | None = None) -> ConversionAnalysis:
    """Layer-wise conversion error of a checkpoint on its data set's test split.

    Args:
        checkpoint_path: a slipsnn ``model.pt``.
        timesteps: T ≥ 1.
        delta2_values: initial membranes (units of θ) for the sweep, each in (−1, 1).
        limit: use the first ``limit`` test samples (default all; see ``analyze_network`` on memory).
        data_root: folder of the data set files (not needed for digits).
        dataset: evaluate on this data set's test split (default: the checkpoint's).

    Returns:
        The ``ConversionAnalysis``.

    Example:
        >>> res = analyze_conversion("runs/digits/model.pt", 4, delta2_values=[0.0, 0.5])   # doctest: +SKIP
        >>> [round(layer.mean, 3) for layer in res.trained.layers]                         # doctest: +SKIP
        [0.001, -0.004, 0.012]
    """
    from ..ann.checkpoint import load_checkpoint
    from ..data.loaders import load_pixels
    from ..pipeline import convert_checkpoint
    ckpt = load_checkpoint(checkpoint_path)
    net = convert_checkpoint(ckpt)
    pixels, labels = load_pixels(dataset or ckpt.dataset, "test", data_root, limit)
    return analyze_network(net, pixels, labels, timesteps, delta2_values, source=str(checkpoint_path))


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
    lines.append(f"{'layer':<{width}} {'neurons':>8}" + "".join(f"{c:>10}" for c in cols))
    for layer in tr["layers"]:
        vals = (layer["mean"], layer["std"], layer["p5"], layer["p95"], layer["mean_abs"], layer["ann_mean"],
                layer["rate_mean"])
        lines.append(f"{layer['name']:<{width}} {layer['neurons']:>8}" + "".join(f"{_fmt(v):>10}" for v in vals))
    if d["sweep"]:
        lines += ["", "mean error per layer vs initial membrane δ₂ (the trained ANN is unchanged):"]
        lines.append(f"{'layer':<{width}}" + "".join(f"{'δ₂=' + format(s['delta2'], 'g'):>11}" for s in d["sweep"]))
        for k, name in enumerate(names):
            lines.append(f"{name:<{width}}" + "".join(f"{_fmt(s['layers'][k]['mean']):>11}" for s in d["sweep"]))
        lines.append(f"{'SNN acc %':<{width}}" + "".join(f"{100 * s['snn_accuracy']:>11.2f}" for s in d["sweep"]))
    return "\n".join(lines)


def plot_analysis(res: ConversionAnalysis, path: str | Path) -> Path:
    """Write a PNG: mean error ± std per layer vs δ₂, SNN accuracy vs δ₂, and the error spread per layer.

    The figure is pyplot-free (``plots.new_figure``); the file is written atomically.

    Returns:
        ``path`` as a ``Path``.
    """
    from ..show.plots import new_figure, save_figure
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

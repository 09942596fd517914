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
from typing import Any, Sequence

import numpy as np
import torch

from ..ir.activation import preset_name
from ..errors import SlipsnnError
from ..ir.formats import check_timesteps
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
                    batch_size: int | None = None, device: str | None = "cpu") -> ConversionAnalysis:
    """Per-layer conversion error of a lowered network on given samples, at its own δ₂ and across ``delta2_values``.

    Args:
        net: the converted float network (``lower.lower`` / ``pipeline.convert_checkpoint``).
        pixels: (N, C, H, W) 8-bit pixel values 0..255.
        labels: (N,) class indices.
        timesteps: T ≥ 1.
        delta2_values: initial membranes to try, units of θ, each in (−1, 1).
        source: what to call the network in the result.
        batch_size: samples per simulated batch (default: from free memory).
        device: where the float SNN is simulated (``cpu``, ``cuda``, ``cuda:N``, ``auto``).

    Returns:
        The ``ConversionAnalysis``.

    Every layer's ANN activations and spike counts for all samples are held in memory (percentiles
    need them all): fine for digits, use a sample limit for CIFAR-sized networks.
    """
    check_timesteps(timesteps)
    if len(pixels) == 0:
        raise SlipsnnError("the conversion analysis needs at least one sample")
    deltas = _check_delta2(delta2_values)
    y = np.asarray(labels, dtype=np.int64)
    ann = ann_forward(net, pixels)
    hidden = [i for i, layer in enumerate(net.layers) if layer.spiking]

    def measure(variant: SpikingNetwork, delta2: float | None) -> DeltaResult:
        sim = simulate_float(variant, pixels, int(timesteps), batch_size=batch_size, record_counts=True, device=device)
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

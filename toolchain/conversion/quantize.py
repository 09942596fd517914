"""Quantization: the float converted network → the integer network in Loihi 2 formats.

Per layer, one integer scale S (weight units per normalized unit; the threshold is S itself) is chosen
as large as every format allows, so the weights keep as many of their 8 bits as possible:

* weights: 8-bit mantissa stored ×2 (even integers in [−256, 254]) → S ≤ 254 / max|W|;
  dense synapses may keep full 8-bit precision at a smaller S through a negative weight exponent
  (the accumulated sum is shifted right, as Lava's Dense does);
* threshold: 17-bit unsigned → S ≤ 131071;
* bias: 13-bit signed mantissa with exponent 0..7 in 24-bit state units → S ≤ 4095·2⁷ / (64·max|b|);
* no 24-bit overflow over ``max_timesteps`` steps for any reachable input (``overflow.py``).

The initial potential is ``round(δ₂·S·64)`` state units (24-bit resolution, not just weight units).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import QuantizationError
from ..ir.formats import (BIAS_EXP_MAX, BIAS_MAX, STATE_MAX, STATE_SHIFT, THRESHOLD_MAX,
                          WEIGHT_EXP_MAX, WEIGHT_EXP_MIN, NeuronKind, SynapseKind, horizon_problem)
from ..ir.integer import IntLayer, IntNetwork, IntSynapse
from .overflow import has_constant_drive, input_extremes, layer_bounds, membrane_bound
from ..ir.floating import FloatLayer, FloatSynapse, SpikingNetwork

W8_MAX = 127     # stored weight = 2·w8, w8 ∈ [−128, 127]
MAX_SPLIT = 4    # a residual synapse may become up to 4 parallel synapses (Loihi allows repeated pairs)
DEFAULT_HORIZON = 8   # time-steps proven overflow-free unless told: the 1–8 steps this toolchain targets


@dataclass(frozen=True)
class QuantConfig:
    """Knobs of the integer conversion.

    Args:
        timesteps: the default T recorded in the network (what ``slipsnn-run`` uses when not told).
        max_timesteps: horizon for which 24-bit overflow is proven impossible (default:
            max(``timesteps``, 8), so one export serves T = 1, 2, 4, 8). A longer horizon costs precision:
            the worst-case membrane grows with T, so the scale shrinks; pass ``timesteps`` itself for the
            finest integers at exactly that T.
        dense_weight_exp: let dense synapses use a weight exponent ≠ 0 (stock netx files need False).
        bias_exp: one bias exponent for every layer (6 for stock netx, whose bias is in weight units);
            None picks per layer the finest exponent that fits the 13-bit mantissa.
        saturating_membrane: the target's membrane saturates at 24 bits (slipsnn's neuron in Lava and the
            simulators), so a layer fed by the image alone is bounded over one step whatever the horizon
            (``conversion.overflow``: saturation cannot change its spikes) and keeps its precision at long
            horizons. False for targets that wrap or do not saturate (stock CUBA, NIR).
    """

    timesteps: int = 4
    max_timesteps: int | None = None
    dense_weight_exp: bool = True
    bias_exp: int | None = None
    saturating_membrane: bool = True

    def __post_init__(self) -> None:
        if self.max_timesteps is None:
            object.__setattr__(self, "max_timesteps", max(self.timesteps, DEFAULT_HORIZON))
        if problem := horizon_problem(self.timesteps, self.max_timesteps):  # type: ignore[arg-type]
            raise QuantizationError(problem)
        if self.bias_exp is not None and not 0 <= self.bias_exp <= BIAS_EXP_MAX:
            raise QuantizationError(f"bias_exp={self.bias_exp}: allowed 0..{BIAS_EXP_MAX} or None")


@dataclass(frozen=True)
class LayerQuantReport:
    """How one layer was quantized.

    Attributes:
        name: layer name; scale: S; limited_by: which format bound S ('weights', 'threshold', 'bias',
        'membrane', 'accumulator'); weight_bits: bits of the largest |w8| incl. sign; weight_exps: per synapse;
        weight_rel_error: RMS(W_int/S − W)/RMS(W); bias_rel_error likewise; v_init_error: |v0 − δ₂|
        in threshold units; margin_bits: log2 headroom of the 24-bit bound.
    """

    name: str
    scale: float
    limited_by: str
    weight_bits: int
    weight_exps: list[int]
    weight_rel_error: float
    bias_rel_error: float
    v_init_error: float
    margin_bits: float


def _float_bounds(layer: FloatLayer, net: SpikingNetwork, timesteps: int) -> tuple[float, float]:
    """(worst-case |u| over ``timesteps``, worst conv accumulator) in normalized units (threshold 1); pass
    ``timesteps=1`` for a constant-drive layer on a saturating membrane."""
    i_max = layer.bias_full()
    i_min, acc = i_max.copy(), 0.0
    for syn in layer.synapses:
        pos, neg = input_extremes(syn, net.source_shape(syn.source))
        if syn.kind is SynapseKind.CONV:
            acc = max(acc, float(pos.max()), float(-neg.min()))
        i_max, i_min = i_max + pos.reshape(layer.shape), i_min + neg.reshape(layer.shape)
    state = membrane_bound(i_max, i_min, layer.v_init, 1.0, timesteps, layer.spiking)
    return max(state, 1e-12), acc


def _choose_scale(layer: FloatLayer, net: SpikingNetwork, cfg: QuantConfig) -> tuple[float, str]:
    # residual synapses may be split into up to MAX_SPLIT parallel copies, so they bound S less
    w_max = max(float(np.abs(s.weight).max()) / (1 if k == 0 else MAX_SPLIT) for k, s in enumerate(layer.synapses))
    b_max = float(np.abs(layer.bias).max()) if np.size(layer.bias) else 0.0
    headroom = 0.98  # rounding of weights/bias/v_init can push the exact integer bound up slightly
    one_step = cfg.saturating_membrane and has_constant_drive(layer)
    state, acc = _float_bounds(layer, net, 1 if one_step else cfg.max_timesteps)
    # dense synapses keep their 8 bits at a larger scale through a weight exponent of up to +8
    dense_range = 2 ** WEIGHT_EXP_MAX if cfg.dense_weight_exp and all(
        s.kind is SynapseKind.DENSE for s in layer.synapses) else 1
    limits = {
        "weights": 2 * W8_MAX * dense_range / w_max if w_max > 0 else math.inf,
        "threshold": float(THRESHOLD_MAX) if layer.spiking else math.inf,
        "bias": BIAS_MAX * 2 ** _max_bias_exp(cfg) / (b_max * 2 ** STATE_SHIFT) if b_max > 0 else math.inf,
        "membrane": headroom * STATE_MAX / (state * 2 ** STATE_SHIFT),
        "accumulator": headroom * STATE_MAX / acc if acc > 0 else math.inf,
    }
    by = min(limits, key=limits.get)
    scale = limits[by]
    if not math.isfinite(scale):
        scale, by = 2 * W8_MAX, "weights"  # an all-zero layer: any scale works
    if layer.spiking:
        scale = float(math.floor(scale))
        if scale < 1:
            raise QuantizationError(f"layer {layer.name!r}: its weights exceed 254× its threshold (scale "
                                    f"{limits[by]:.3g} < 1, limited by {by}); the threshold cannot be an integer ≥ 1")
    return scale, by


def _quantize_synapse(syn: FloatSynapse, scale: float, allow_exp: bool, copies: int) -> tuple[list[IntSynapse], float]:
    """Round one synapse to even 8-bit weights; split it into ≤ ``copies`` parallel synapses if it needs more range."""
    w = syn.weight * scale
    if not np.isfinite(w).all():   # NaN would round to −2⁶³ and split into ~2⁵⁶ copies below
        raise QuantizationError(f"weight × scale {scale:.4g} is not finite; allowed: finite weights and scale")
    w_max = float(np.abs(w).max()) if w.size else 0.0
    exp = 0
    if syn.kind is SynapseKind.DENSE and w_max > 0:
        # the smallest exponent e with max|w|·2^-e ≤ 254 (e < 0 gains precision, e > 0 extends range)
        exp = math.ceil(math.log2(w_max / (2 * W8_MAX)) - 1e-9)   # a scale of exactly 254/max|W| needs e = 0
        exp = min(max(exp, WEIGHT_EXP_MIN) if allow_exp else max(exp, 0), WEIGHT_EXP_MAX)
    w8 = np.round(w * 2.0 ** -exp / 2).astype(np.int64)
    if np.abs(w8).max(initial=0) > W8_MAX * copies:
        raise QuantizationError(f"weight {w_max:.4g} exceeds {2 * W8_MAX * copies} at scale {scale:.4g}")
    parts, rest = [], w8
    while not parts or rest.any():  # the first copy takes what fits, later copies the remainder
        part = np.clip(rest, -W8_MAX - 1, W8_MAX)
        parts.append(IntSynapse(syn.source, syn.kind, 2 * part.astype(np.int32), exp, syn.stride, syn.padding,
                                syn.dilation, syn.groups))
        rest = rest - part
    err = np.sqrt(np.mean((2 * w8 * 2.0 ** exp - w) ** 2)) / max(np.sqrt(np.mean(w ** 2)), 1e-30)
    return parts, float(err)


def _max_bias_exp(cfg: QuantConfig) -> int:
    return BIAS_EXP_MAX if cfg.bias_exp is None else cfg.bias_exp


def _bias_exp_for(bias_state: np.ndarray, cfg: QuantConfig) -> int:
    """The smallest allowed exponent at which the bias (state units) fits the 13-bit mantissa."""
    peak = float(np.abs(bias_state).max()) if bias_state.size else 0.0
    for e in range(_max_bias_exp(cfg) if cfg.bias_exp is not None else 0, _max_bias_exp(cfg) + 1):
        if round(peak / 2 ** e) <= BIAS_MAX:
            return e
    raise QuantizationError(f"bias {peak:.4g} (state units) does not fit 13 bits with exponent ≤ {_max_bias_exp(cfg)}")


def quantize_layer(layer: FloatLayer, index: int, net: SpikingNetwork,
                   cfg: QuantConfig) -> tuple[IntLayer, LayerQuantReport]:
    """Quantize one layer and prove its 24-bit bound; shrink the scale while rounding breaks the proof."""
    scale, by = _choose_scale(layer, net, cfg)
    for _ in range(20):
        try:
            q, rep = _quantize_at(layer, scale, by, cfg)
        except QuantizationError as err:
            raise QuantizationError(f"layer {index} ({layer.name!r}): {err}") from None
        bound = layer_bounds(q, index, net.source_shape, cfg.max_timesteps, cfg.saturating_membrane)
        if bound.ok:
            return q, LayerQuantReport(**{**asdict(rep), "margin_bits": round(bound.margin_bits, 3)})
        by = "membrane" if bound.state > STATE_MAX else "accumulator"   # the exact proof set the scale
        shrink = 0.99 * 2.0 ** bound.margin_bits
        scale = float(math.floor(scale * shrink)) if layer.spiking else scale * shrink
        if scale < 1:
            break
    raise QuantizationError(f"layer {index} ({layer.name!r}) can overflow 24 bits within {cfg.max_timesteps} steps "
                            f"({-bound.margin_bits:.2f} bits over) at any usable scale; lower --max-timesteps")


def _quantize_at(layer: FloatLayer, scale: float, by: str, cfg: QuantConfig) -> tuple[IntLayer, LayerQuantReport]:
    split = [_quantize_synapse(s, scale, cfg.dense_weight_exp, 1 if k == 0 else MAX_SPLIT)
             for k, s in enumerate(layer.synapses)]
    syns, errs = [q for parts, _ in split for q in parts], [e for _, e in split]
    bias_state = np.asarray(layer.bias, dtype=np.float64) * scale * 2 ** STATE_SHIFT
    bias_exp = _bias_exp_for(bias_state, cfg)
    bias = np.round(bias_state / 2 ** bias_exp).astype(np.int64)
    v_init = int(round(layer.v_init * scale * 2 ** STATE_SHIFT))
    int_layer = IntLayer(name=layer.name, shape=layer.shape, synapses=tuple(syns),
                         neuron=NeuronKind.IF_SOFT if layer.spiking else NeuronKind.ACCUMULATE,
                         threshold=int(scale) if layer.spiking else 0, bias=bias, bias_exp=bias_exp,
                         v_init=v_init, scale=scale)
    b_ref = np.asarray(layer.bias, dtype=np.float64)
    b_err = np.sqrt(np.mean((bias * 2.0 ** bias_exp / (scale * 2 ** STATE_SHIFT) - b_ref) ** 2)) / \
        max(np.sqrt(np.mean(b_ref ** 2)), 1e-30) if b_ref.size else 0.0
    w8_peak = max(int(np.abs(s.weight).max()) // 2 for s in syns)
    report = LayerQuantReport(
        name=layer.name, scale=scale, limited_by=by, weight_bits=int(w8_peak).bit_length() + 1,
        weight_exps=[s.weight_exp for s in syns], weight_rel_error=float(max(errs)), bias_rel_error=float(b_err),
        v_init_error=abs(v_init / (scale * 2 ** STATE_SHIFT) - layer.v_init), margin_bits=0.0)
    return int_layer, report


def quantize(net: SpikingNetwork, cfg: QuantConfig = QuantConfig()) -> IntNetwork:
    """Quantize the converted network and prove it overflow-free up to ``cfg.max_timesteps``.

    Args:
        net: the float converted network (``lower.lower``).
        cfg: quantization knobs.

    Returns:
        The ``IntNetwork``; ``meta['quantization']`` holds one ``LayerQuantReport`` dict per layer.

    Raises:
        QuantizationError: a layer cannot be represented, naming it, the value and the limit.

    Example:
        >>> inet = quantize(snn, QuantConfig(timesteps=4))     # doctest: +SKIP
        >>> print(inet.summary())                               # doctest: +SKIP
    """
    layers, reports = zip(*(quantize_layer(layer, i, net, cfg) for i, layer in enumerate(net.layers)))
    meta = {**net.meta, "quantization": [asdict(r) for r in reports],
            "ann_macs": [layer.ann_macs for layer in net.layers]}
    return IntNetwork(net.input_shape, tuple(layers), cfg.timesteps, cfg.max_timesteps, meta)

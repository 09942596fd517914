"""Lowering: a trained torch model → the converted spiking network (``ir.floating.SpikingNetwork``).

Walks the model's modules in order and folds every linear operation into the synapse it feeds:
input normalization into the first layer (exact, with a per-neuron bias where zero padding meets a
non-zero mean), BatchNorm into the preceding conv/linear, average pooling into the neighbouring conv
(a pool before a conv is one strided conv with a repeated kernel; a pool after a conv, before its
activation, is one conv with stride s·k and a summed kernel). Each activation closes one spiking
layer; the final Linear becomes the non-spiking output layer. Residual blocks (and residual adds of a
traced model, ``conversion.trace``) add their shortcut as extra synapses into the block's output neuron.

Converters live in a ``{module type: function}`` registry (``CONVERTERS``); anything else is refused
with a message naming the module. An ``nn.Sequential`` is walked here; any other model (its own
``forward()``) is traced with torch.fx by ``conversion.trace``.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..ir.activation import SlipParams
from ..ann.activations import SlipReLU
from ..kernels.connectivity import synapse_macs
from ..errors import ModelError
from ..ir.formats import INPUT_SOURCE, SynapseKind
from ..ann.models import BasicBlock, Normalize
from ..ir.floating import FloatLayer, FloatSynapse, SpikingNetwork
from ..kernels.synapse import bias_tensor


@dataclass
class _Pending:
    """The linear map being built from the current source towards the next activation."""

    pools: list[tuple[int, int]] = field(default_factory=list)   # average pools still to fold, (kH, kW)
    flatten: bool = False
    affine: tuple[np.ndarray, np.ndarray] | None = None           # input = pixel·α + β per channel, until folded
    synapse: FloatSynapse | None = None                           # weight in source units (not yet /θ)
    bias: np.ndarray | None = None                                # (C,) or per-neuron, source units
    shape: tuple[int, ...] | None = None                          # output shape of ``synapse``
    owner: str = ""                                               # "<module>:<op>" that made ``synapse``
    macs: int = 0                                                 # MACs of the original (unfolded) module
    residual: list[FloatSynapse] = field(default_factory=list)    # added branches, weight × their source θ

    def copy(self) -> "_Pending":
        """A copy whose lists can change without touching this one (arrays are never changed in place)."""
        return dataclasses.replace(self, pools=list(self.pools), residual=list(self.residual))


@dataclass
class _State:
    layers: list[FloatLayer]
    thetas: dict[str, float]
    input_shape: tuple[int, int, int]
    check_only: bool = False      # a ReLU without θ is fine: calibration will give it one
    source: int = INPUT_SOURCE
    shape: tuple[int, ...] = ()
    theta: float = 1.0            # θ of the current source: 8-bit pixels carry their own value
    pending: _Pending = field(default_factory=_Pending)

    def cursor(self) -> "_Cursor":
        """What flows out of the module just converted (for graphs, where values branch and merge)."""
        return _Cursor(self.source, self.shape, self.theta, self.pending.copy())

    def resume(self, cur: "_Cursor") -> None:
        """Continue converting from ``cur`` (a copy, so ``cur`` itself stays usable by other consumers)."""
        self.source, self.shape, self.theta, self.pending = cur.source, cur.shape, cur.theta, cur.pending.copy()


@dataclass(frozen=True)
class _Cursor:
    """A value of the model being lowered: a source's spikes and the linear map pending on them."""

    source: int
    shape: tuple[int, ...]
    theta: float
    pending: _Pending

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape of the tensor this value stands for in the ANN."""
        return tuple(self.pending.shape) if self.pending.synapse is not None else tuple(self.shape)


Converter = Callable[[_State, str, nn.Module], None]
CONVERTERS: dict[type, Converter] = {}


def converter(*types: type) -> Callable[[Converter], Converter]:
    def register(fn: Converter) -> Converter:
        for t in types:
            CONVERTERS[t] = fn
        return fn
    return register


#: Registered types that are only there to be refused with a reason (not "supported").
REFUSED: set[type] = set()


def supported_modules() -> list[str]:
    """Names of the module types ``lower`` converts, from the registry (refused types left out)."""
    return sorted({t.__name__ for t in CONVERTERS if t not in REFUSED} | {"Sequential"})


def _allowed() -> str:
    return ", ".join(supported_modules())


class ModuleRefused(ModelError):
    """A module that cannot be converted: ``name``, its type ``what`` and the reason ``why`` (fix included)."""

    def __init__(self, name: str, what: str, why: str, where: str = "") -> None:
        self.name, self.what, self.why, self.where = name, what, why, where
        super().__init__(f"cannot convert module {name!r} ({what})" + (f" at {where}" if where else "") + f": {why}")


def _refuse(name: str, module: nn.Module, why: str) -> ModelError:
    return ModuleRefused(name, type(module).__name__, why)


@converter(Normalize)
def _normalize(st: _State, name: str, m: Normalize) -> None:
    if st.source != INPUT_SOURCE or st.pending.synapse is not None or st.pending.affine is None:
        raise _refuse(name, m, "input normalization must come before the first conv/linear layer")
    std = m.std.detach().double().flatten().numpy()
    mean = m.mean.detach().double().flatten().numpy()
    alpha, beta = st.pending.affine      # the input so far is pixel·α + β
    st.pending.affine = (alpha / std, (beta - mean) / std)


@converter(nn.AvgPool2d, nn.AdaptiveAvgPool2d)
def _avgpool(st: _State, name: str, m: nn.Module) -> None:
    p = st.pending
    if p.synapse is not None:   # conv → pool → activation: one conv with stride s·k
        return _pool_after_conv(st, name, m)
    c, h, w = _current_chw(st, name, m)
    k = _pool_kernel(name, m, (c, h, w))
    if h % k[0] or w % k[1]:
        raise _refuse(name, m, f"input {h}x{w} is not divisible by the pool {k[0]}x{k[1]}")
    st.pending.pools.append(k)
    st.shape = (c, h // k[0], w // k[1])


def _pool_kernel(name: str, m: nn.Module, chw: tuple[int, ...]) -> tuple[int, int]:
    """The (kH, kW) of a non-overlapping average pool over a (C, H, W) input, or a refusal."""
    if len(chw) != 3:
        raise _refuse(name, m, f"needs a (C, H, W) input, got shape {chw}")
    if isinstance(m, nn.AdaptiveAvgPool2d):
        out = m.output_size if isinstance(m.output_size, tuple) else (m.output_size, m.output_size)
        if tuple(out) != (1, 1):
            raise _refuse(name, m, f"only global pooling (output size 1) is supported, got {out}")
        return (int(chw[1]), int(chw[2]))
    k = _pair(m.kernel_size)
    if _pair(m.stride or m.kernel_size) != k or _pair(m.padding) != (0, 0) or m.ceil_mode:
        raise _refuse(name, m, "only non-overlapping pooling (stride = kernel, no padding) folds exactly")
    return k


def _pool_after_conv(st: _State, name: str, m: nn.Module) -> None:
    """avg-pool(k) after conv(K, s, p) == conv(K + (k−1)·s, s·k, p) with the k² shifted kernels summed / k².

    Exact: the pooled window of output o covers conv outputs k·o … k·o + k − 1, i.e. input rows
    s·k·o − p … s·k·o − p + (k − 1)·s + K − 1; torch's floor on the pooled size matches the bigger conv's.
    """
    p = st.pending
    k = _pool_kernel(name, m, p.shape)
    convs = [p.synapse, *p.residual]
    if any(s.kind is not SynapseKind.CONV or s.dilation != (1, 1) for s in convs):
        raise _refuse(name, m, "average pooling before the activation folds only into an undilated conv; "
                               "place it after the activation")
    merged = [_pooled_conv(s, k) for s in convs]
    c, h, w = p.shape
    shape = (c, h // k[0], w // k[1])
    bias = np.asarray(p.bias, dtype=np.float64)
    if bias.ndim == 3:   # a per-neuron bias (normalization met zero padding) is pooled like the currents
        bias = torch.nn.functional.avg_pool2d(torch.as_tensor(bias)[None], k)[0].numpy()
    p.synapse, p.residual, p.bias, p.shape = merged[0], merged[1:], bias, shape
    p.owner = f"{p.owner}+pool"


def _pooled_conv(s: FloatSynapse, k: tuple[int, int]) -> FloatSynapse:
    o, i, kh, kw = s.weight.shape
    (s1, s2), (p1, p2) = s.stride, k
    w = np.zeros((o, i, kh + (p1 - 1) * s1, kw + (p2 - 1) * s2))
    for a in range(p1):
        for b in range(p2):
            w[:, :, a * s1:a * s1 + kh, b * s2:b * s2 + kw] += s.weight
    return FloatSynapse(s.source, s.kind, w / (p1 * p2), (s1 * p1, s2 * p2), s.padding, s.dilation, s.groups)


@converter(nn.MaxPool2d)
def _maxpool(st: _State, name: str, m: nn.Module) -> None:
    raise _refuse(name, m, "max-pooling has no exact spiking equivalent; replace it by AvgPool2d and "
                           "retrain (slipsnn.toolchain.slipify does the swap)")


@converter(nn.ReLU6)
def _relu6(st: _State, name: str, m: nn.Module) -> None:
    raise _refuse(name, m, "ReLU6 clips at a fixed 6, not at a threshold of the layer; slipsnn.toolchain.slipify "
                           "makes it a SlipReLU (a clipped, quantized ReLU with a trained θ)")


REFUSED.update({nn.MaxPool2d, nn.ReLU6})


@converter(nn.Flatten)
def _flatten(st: _State, name: str, m: nn.Module) -> None:
    st.pending.flatten = True


@converter(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)
def _skip(st: _State, name: str, m: nn.Module) -> None:
    """Identity at inference."""


@converter(nn.Conv2d)
def _conv(st: _State, name: str, m: nn.Conv2d) -> None:
    p = st.pending
    if p.synapse is not None or p.flatten:
        raise _refuse(name, m, "expected an activation between two conv/linear layers")
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise _refuse(name, m, "only numeric zero padding is supported")
    c, h, w = _current_chw(st, name, m)
    weight = m.weight.detach().double().numpy()
    stride, padding, dilation = _pair(m.stride), _pair(m.padding), _pair(m.dilation)
    macs = synapse_macs(FloatSynapse(st.source, SynapseKind.CONV, weight, stride, padding, dilation, m.groups),
                        (c, h, w))
    if p.pools and dilation != (1, 1):
        raise _refuse(name, m, "a dilated conv after average pooling cannot be folded")
    syn = _pools_into_conv(FloatSynapse(st.source, SynapseKind.CONV, weight, stride, padding, dilation, m.groups),
                           p.pools)
    bias = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(weight.shape[0])
    _finish_synapse(st, f"{name}:{'pool+' if p.pools else ''}conv", syn, bias, macs)


def _pools_into_conv(syn: FloatSynapse, pools: list[tuple[int, int]]) -> FloatSynapse:
    """avg-pool(k) then conv(K, s, p) == conv(K·k, s·k, p·k) with the weight repeated k×k times / k²."""
    weight, stride, padding = syn.weight, syn.stride, syn.padding
    for kh, kw in pools:
        weight = np.repeat(np.repeat(weight, kh, axis=2), kw, axis=3) / (kh * kw)
        stride, padding = (stride[0] * kh, stride[1] * kw), (padding[0] * kh, padding[1] * kw)
    return FloatSynapse(syn.source, syn.kind, weight, stride, padding, syn.dilation, syn.groups)


def _finish_synapse(st: _State, name: str, syn: FloatSynapse, bias: np.ndarray, macs: int) -> None:
    """Fold the pending input normalization into ``syn`` and make it the pending synapse."""
    p = st.pending
    src_shape = _source_shape(st)
    out_shape = syn.output_shape(src_shape)
    bias = np.asarray(bias, dtype=np.float64)
    if p.affine is not None:
        alpha, beta = p.affine
        w = syn.weight
        if syn.kind is SynapseKind.CONV:
            cin_g, cout_g = w.shape[1], w.shape[0] // syn.groups   # input channel read by weight[o, j]
            channel = (np.arange(w.shape[0])[:, None] // cout_g) * cin_g + np.arange(cin_g)[None, :]
            w_scaled = w * alpha[channel][:, :, None, None]
            shift = torch.as_tensor(np.broadcast_to(beta[:, None, None], src_shape).copy())[None]
            offset = torch.nn.functional.conv2d(shift, torch.as_tensor(w), stride=syn.stride, padding=syn.padding,
                                                dilation=syn.dilation, groups=syn.groups)[0].numpy()
        else:
            per_in = np.broadcast_to(np.asarray(alpha)[:, None, None], src_shape).reshape(-1) \
                if len(src_shape) == 3 else np.asarray(alpha)
            w_scaled = w * per_in[None, :]
            shift = np.broadcast_to(np.asarray(beta)[:, None, None], src_shape).reshape(-1) \
                if len(src_shape) == 3 else np.asarray(beta)
            offset = w @ shift
        bias = bias_tensor(bias, out_shape, torch.float64).numpy() + offset
        if np.allclose(bias, bias.reshape(bias.shape[0], -1)[:, :1].reshape((-1,) + (1,) * (bias.ndim - 1)),
                       rtol=1e-12, atol=1e-12):  # zero padding met a zero mean: per-channel bias suffices
            bias = bias.reshape(bias.shape[0], -1)[:, 0]
        syn = FloatSynapse(syn.source, syn.kind, w_scaled, syn.stride, syn.padding, syn.dilation, syn.groups)
        p.affine = None
    p.synapse, p.bias, p.shape, p.owner, p.macs = syn, bias, out_shape, name, int(macs)
    p.pools, p.flatten = [], False


@converter(nn.Linear)
def _linear(st: _State, name: str, m: nn.Linear) -> None:
    p = st.pending
    if p.synapse is not None:
        raise _refuse(name, m, "expected an activation between two conv/linear layers")
    src_shape = _source_shape(st)
    if len(src_shape) == 3 and not p.flatten:
        raise _refuse(name, m, "a Linear after a conv layer needs an nn.Flatten before it")
    weight = m.weight.detach().double().numpy()
    macs = int(weight.size)
    if len(src_shape) == 3:  # expand the folded pools back to the source resolution (C-order flatten)
        c, h, w = st.shape
        if weight.shape[1] != c * h * w:
            raise _refuse(name, m, f"expects {weight.shape[1]} inputs, the previous layer gives {c * h * w}")
        weight = weight.reshape(-1, c, h, w)
        for kh, kw in reversed(p.pools):
            weight = np.repeat(np.repeat(weight, kh, axis=2), kw, axis=3) / (kh * kw)
        weight = weight.reshape(weight.shape[0], -1)
    elif p.pools:
        raise _refuse(name, m, "average pooling before a Linear needs a (C, H, W) input")
    if weight.shape[1] != int(np.prod(src_shape)):
        raise _refuse(name, m, f"expects {weight.shape[1]} inputs, the previous layer gives {int(np.prod(src_shape))}")
    syn = FloatSynapse(st.source, SynapseKind.DENSE, weight)
    bias = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(weight.shape[0])
    _finish_synapse(st, f"{name}:{'pool+' if p.pools else ''}linear", syn, bias, macs)


@converter(nn.BatchNorm2d, nn.BatchNorm1d)
def _batchnorm(st: _State, name: str, m: nn.Module) -> None:
    p = st.pending
    if p.synapse is None:
        raise _refuse(name, m, "BatchNorm must follow a conv or linear layer to be folded")
    gamma, beta, mean, var = _bn_terms(name, m)
    k = gamma / np.sqrt(var + m.eps)
    w = p.synapse.weight * k.reshape((-1,) + (1,) * (p.synapse.weight.ndim - 1))
    p.synapse = FloatSynapse(p.synapse.source, p.synapse.kind, w, p.synapse.stride, p.synapse.padding,
                             p.synapse.dilation, p.synapse.groups)
    p.residual = [_scaled(r, k.reshape((-1,) + (1,) * (r.weight.ndim - 1))) for r in p.residual]
    kb = k.reshape((-1,) + (1,) * (p.bias.ndim - 1))
    bb = (beta - mean * k).reshape((-1,) + (1,) * (p.bias.ndim - 1))
    p.bias = p.bias * kb + bb


@converter(SlipReLU, nn.ReLU)
def _activation(st: _State, name: str, m: nn.Module) -> None:
    p = st.pending
    if p.synapse is None:
        raise _refuse(name, m, "an activation must follow a conv or linear layer")
    theta, act = _theta_and_params(st, name, m)
    _close_layer(st, p.owner, [p.synapse, *p.residual], p.bias, p.shape, theta, act, p.macs)


@converter(BasicBlock)
def _block(st: _State, name: str, m: BasicBlock) -> None:
    if st.pending.synapse is not None or st.pending.pools or st.pending.affine is not None:
        raise _refuse(name, m, "a residual block must follow an activation")
    entry_source, entry_shape, entry_theta = st.source, st.shape, st.theta
    for sub in ("conv1", "bn1", "act1", "conv2", "bn2"):
        _convert_module(st, f"{name}.{sub}", getattr(m, sub))
    main = st.pending
    # the shortcut reads the block's input: convert it as a synapse from ``entry_source``
    st.pending, saved = _Pending(), (st.source, st.shape, st.theta)
    st.source, st.shape, st.theta = entry_source, entry_shape, entry_theta
    if len(m.shortcut) == 0:
        c = entry_shape[0]
        ident = FloatSynapse(entry_source, SynapseKind.CONV, np.ones((c, 1, 1, 1)), groups=c)
        _finish_synapse(st, f"{name}.shortcut", ident, np.zeros(c), macs=0)  # an addition, not a MAC
    else:
        for i, sub in enumerate(m.shortcut):
            _convert_module(st, f"{name}.shortcut.{i}", sub)
    short = st.pending
    st.source, st.shape, st.theta = saved
    if short.shape != main.shape:
        raise _refuse(name, m, f"shortcut gives {short.shape}, the main path {main.shape}")
    theta, act = _theta_and_params(st, f"{name}.act2", m.act2)
    # the shortcut reads spikes of the block input, each worth that layer's θ
    short_syn = _scaled(short.synapse, entry_theta)
    _close_layer(st, f"{main.owner}+shortcut", [main.synapse, short_syn], main.bias + short.bias, main.shape, theta, act,
                 main.macs + short.macs)


def _close_layer(st: _State, name: str, synapses: list[FloatSynapse], bias: np.ndarray, shape: tuple[int, ...],
                 theta: float, act: SlipParams | None, macs: int) -> None:
    """Turn the pending synapses into a spiking layer with threshold θ (normalized to 1)."""
    layer = FloatLayer(name=name, shape=tuple(shape), synapses=_layer_synapses(st, name, synapses, theta),
                       bias=bias / theta, spiking=True, theta=float(theta), act=act,
                       v_init=(act.delta2 if act is not None else 0.5), ann_macs=macs)
    st.layers.append(layer)
    st.source, st.shape, st.theta, st.pending = len(st.layers) - 1, tuple(shape), float(theta), _Pending()


def _layer_synapses(st: _State, name: str, synapses: list[FloatSynapse], theta: float) -> tuple[FloatSynapse, ...]:
    """The synapses of a new layer of threshold ``theta``, the one from the previous layer first.

    ``synapses[0]`` is in units of the current source (× ``st.theta``); the others (residual branches)
    already carry their source's θ.
    """
    scaled = _merge_same_source(name, [_scaled(synapses[0], st.theta / theta)] +
                                [_scaled(s, 1.0 / theta) for s in synapses[1:]])
    previous = len(st.layers) - 1
    first = [s for s in scaled if s.source == previous]
    if not first:
        raise ModelError(f"cannot convert {name!r}: none of its inputs comes from the layer converted just before "
                         f"it (sources {[s.source for s in scaled]}); slipsnn's layers form a chain with residual "
                         "shortcuts, not parallel branches")
    return (first[0], *[s for s in scaled if s is not first[0]])


def _merge_same_source(name: str, synapses: list[FloatSynapse]) -> list[FloatSynapse]:
    """One synapse per source: two from the same layer (a shortcut around one conv) are summed into one.

    Equal geometry sums the weights; an identity (1×1 depthwise, stride 1) folds into the centre tap of a
    stride-1 "same" conv. Other pairs are refused: the integer IR holds one synapse per source.
    """
    merged: list[FloatSynapse] = []
    for syn in synapses:
        other = next((m for m in merged if m.source == syn.source), None)
        if other is None:
            merged.append(syn)
            continue
        merged[merged.index(other)] = _sum_synapses(name, other, syn)
    return merged


def _is_identity(s: FloatSynapse) -> bool:
    c = s.weight.shape[0]
    return (s.kind is SynapseKind.CONV and s.weight.shape == (c, 1, 1, 1) and s.groups == c and s.stride == (1, 1)
            and s.padding == (0, 0))


def _sum_synapses(name: str, a: FloatSynapse, b: FloatSynapse) -> FloatSynapse:
    geometry = lambda s: (s.kind, s.weight.shape, s.stride, s.padding, s.dilation, s.groups)  # noqa: E731
    if geometry(a) == geometry(b):
        return FloatSynapse(a.source, a.kind, a.weight + b.weight, a.stride, a.padding, a.dilation, a.groups)
    conv, ident = (a, b) if _is_identity(b) else (b, a)
    if _is_identity(ident) and conv.kind is SynapseKind.CONV and conv.groups == 1 and conv.stride == (1, 1) \
            and conv.dilation == (1, 1) and conv.weight.shape[0] == conv.weight.shape[1] \
            and all(k % 2 == 1 and p == k // 2 for k, p in zip(conv.weight.shape[2:], conv.padding)):
        w = conv.weight.copy()
        kh, kw = w.shape[2] // 2, w.shape[3] // 2
        idx = np.arange(w.shape[0])
        w[idx, idx, kh, kw] += ident.weight[:, 0, 0, 0]
        return FloatSynapse(conv.source, conv.kind, w, conv.stride, conv.padding, conv.dilation, conv.groups)
    raise ModelError(f"cannot convert {name!r}: two of its inputs read layer {a.source} through different "
                     "geometries; a shortcut must skip at least one layer (as in ResNet blocks) or around a "
                     "stride-1 'same' convolution")


def _scaled(s: FloatSynapse, k: float | np.ndarray) -> FloatSynapse:
    return FloatSynapse(s.source, s.kind, s.weight * k, s.stride, s.padding, s.dilation, s.groups)


def add_values(st: _State, name: str, a: _Cursor, b: _Cursor) -> _Cursor:
    """The sum of two values (a residual add): one pending map whose extra synapses carry the other branch.

    A branch that is already spikes of a layer (an identity shortcut) becomes a 1×1 depthwise synapse of
    weight 1. Both branches must have the same shape and no pooling or flattening still to fold.
    """
    if a.out_shape != b.out_shape:
        raise ModelError(f"cannot convert graph node {name!r} (add): its inputs have shapes {a.out_shape} and "
                         f"{b.out_shape}; a residual add needs equal shapes")
    terms = []
    for cur in (a, b):
        p = cur.pending
        if p.flatten or p.affine is not None or (p.synapse is None and cur.source == INPUT_SOURCE):
            raise ModelError(f"cannot convert graph node {name!r} (add): each input must be a layer's output "
                             "(average-pooled or not) or a conv/linear (+BatchNorm) of one; a flattened tensor or "
                             "the raw image cannot be added")
        if p.synapse is None:   # an identity shortcut (through the pools still pending): a depthwise synapse
            if len(cur.shape) != 3:
                raise ModelError(f"cannot convert graph node {name!r} (add): an identity shortcut needs a "
                                 f"(C, H, W) layer, got shape {cur.shape}")
            c = cur.shape[0]
            ident = _pools_into_conv(FloatSynapse(cur.source, SynapseKind.CONV, np.ones((c, 1, 1, 1)), groups=c),
                                     p.pools)
            p = _Pending(synapse=ident, bias=np.zeros(c), shape=cur.shape, owner=f"{name}:identity")
        terms.append((cur.theta, p))
    (theta_a, pa), (theta_b, pb) = terms
    bias = bias_tensor(pa.bias, pa.shape, torch.float64).numpy() + bias_tensor(pb.bias, pb.shape, torch.float64).numpy()
    if bias.ndim == 3 and bias.shape[1:] == (1, 1):
        bias = bias[:, 0, 0]
    elif bias.ndim == 3:
        bias = np.broadcast_to(bias, pa.shape).copy()
    # the first branch keeps its source θ on ``synapse``; every other one is pre-scaled by its own
    rest = [_scaled(r, 1.0) for r in pa.residual] + [_scaled(pb.synapse, theta_b)] + list(pb.residual)
    merged = _Pending(synapse=pa.synapse, bias=bias, shape=pa.shape, owner=f"{pa.owner}+{pb.owner}",
                      macs=pa.macs + pb.macs, residual=rest)
    return _Cursor(a.source, a.shape, theta_a, merged)


def _theta_and_params(st: _State, name: str, m: nn.Module) -> tuple[float, SlipParams | None]:
    if isinstance(m, SlipReLU):
        return float(m.theta.detach()), m.current_params()
    if name not in st.thetas and st.check_only:
        return 1.0, None
    if name not in st.thetas:
        raise ModelError(f"ReLU {name!r} has no threshold: calibrate θ from data first "
                         "(slipsnn.toolchain.ann.training.calibrate_thresholds)")
    return float(st.thetas[name]), None


def _bn_terms(name: str, m: nn.Module) -> tuple[np.ndarray, ...]:
    if m.running_mean is None or m.running_var is None:
        raise _refuse(name, m, "BatchNorm without running statistics (track_running_stats=False) normalizes "
                               "each batch by itself and cannot be folded into fixed weights")
    n = m.num_features
    gamma = m.weight.detach().double().numpy() if m.weight is not None else np.ones(n)
    beta = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(n)
    return gamma, beta, m.running_mean.detach().double().numpy(), m.running_var.detach().double().numpy()


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _source_shape(st: _State) -> tuple[int, ...]:
    """Shape of the current source at full resolution (before pending pools)."""
    return st.layers[st.source].shape if st.source != INPUT_SOURCE else st.input_shape


def _current_chw(st: _State, name: str, m: nn.Module) -> tuple[int, int, int]:
    if len(st.shape) != 3 or st.pending.flatten:
        raise _refuse(name, m, f"needs a (C, H, W) input, got shape {st.shape}")
    return st.shape  # type: ignore[return-value]


def _convert_module(st: _State, name: str, m: nn.Module) -> None:
    if isinstance(m, nn.Sequential):
        for child_name, child in m.named_children():
            _convert_module(st, f"{name}.{child_name}" if name else child_name, child)
        return
    fn = CONVERTERS.get(type(m))
    if fn is None:
        raise ModelError(f"cannot convert module {name!r} of type {type(m).__name__}; "
                         f"supported: {_allowed()}")
    fn(st, name, m)


def lower(model: nn.Module, input_shape: tuple[int, int, int], thetas: dict[str, float] | None = None,
          meta: dict | None = None) -> SpikingNetwork:
    """Convert a trained model into the float spiking description.

    Args:
        model: an ``nn.Sequential`` of supported modules (see ``CONVERTERS``), or any model with its own
            ``forward()`` that torch.fx can trace (``conversion.trace``: residual adds, flatten/view,
            functional relu and pooling), in eval mode or not (BatchNorm running statistics are used).
            The model is not modified.
        input_shape: (C, H, W) of one image.
        thetas: θ per ``nn.ReLU`` module name, for plain-ReLU models (from calibration).
        meta: provenance stored on the result.

    Returns:
        The ``SpikingNetwork``: hidden layers spike, the last layer (the final Linear) accumulates.

    Example:
        >>> from slipsnn.toolchain.ann.models import ModelConfig, build_model
        >>> from slipsnn.toolchain.ann.activations import preset_params
        >>> cfg = ModelConfig("digits_cnn", 10, (1, 8, 8), (0.3,), (0.4,))
        >>> snn = lower(build_model(cfg, preset_params("slip")), (1, 8, 8))
        >>> [l.shape for l in snn.layers]
        [(16, 8, 8), (32, 8, 8), (32, 4, 4), (10,)]
    """
    model = copy.deepcopy(model).cpu().eval()
    st = initial_state(input_shape, thetas)
    if not walkable(model):
        from .trace import lower_graph   # noqa: PLC0415  (trace builds on this module's converters)
        return lower_graph(model, st, meta)
    _convert_module(st, "", model)
    return finish(st, meta)


def initial_state(input_shape: tuple[int, int, int], thetas: dict[str, float] | None = None,
                  check_only: bool = False) -> _State:
    """The state before the first module: nothing converted, the input normalization pending."""
    if len(tuple(input_shape)) != 3 or min(int(v) for v in input_shape) < 1:
        raise ModelError(f"input_shape {tuple(input_shape)} must be (C, H, W) with positive sizes")
    input_shape = tuple(int(v) for v in input_shape)
    st = _State(layers=[], thetas=dict(thetas or {}), input_shape=input_shape, shape=input_shape,
                check_only=check_only)
    # the model sees x = pixel / 255; the first synapse reads the 8-bit pixels themselves
    st.pending.affine = (np.full(input_shape[0], 1.0 / 255.0), np.zeros(input_shape[0]))
    return st


def walkable(model: nn.Module) -> bool:
    """True when ``model`` is a tree of ``nn.Sequential`` over registered module types (no fx tracing needed)."""
    if type(model) is nn.Sequential:
        return all(walkable(child) for child in model.children())
    return type(model) in CONVERTERS


def finish(st: _State, meta: dict | None) -> SpikingNetwork:
    """Close the pending map as the non-spiking output layer and build the network."""
    p = st.pending
    if p.synapse is None or p.pools or p.flatten:
        raise ModelError("the model must end with a Linear (or conv) layer without activation: "
                         "its outputs are the logits summed over time")
    if not st.layers:
        raise ModelError("the model has no activation: there is nothing to convert into spiking neurons")
    out = FloatLayer(name=p.owner, shape=tuple(p.shape), synapses=_layer_synapses(st, p.owner, [p.synapse, *p.residual], 1.0),
                     bias=p.bias, spiking=False, theta=1.0, act=None, v_init=0.0, ann_macs=p.macs)
    st.layers.append(out)
    return SpikingNetwork(input_shape=tuple(st.input_shape), layers=tuple(st.layers), meta=dict(meta or {}))

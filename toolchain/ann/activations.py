"""SlipReLU and its named special cases (Jiang et al., ICML 2023).

    SlipReLU(x) = a·θ·clip(x/θ + δ₁/L, 0, 1) + (1 − a)·θ·clip(floor(L·x/θ + δ₂)/L, 0, 1)

θ is a learnable per-layer threshold, L the number of quantization steps, a ∈ [0, 1] the slope
(weight of the threshold-ReLU part), δ₁ and δ₂ the shifts of the two parts. The floor uses a
straight-through gradient, so θ (and a learnable a) get their gradients through autograd.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import nn

from ..errors import ModelError
from ..ir.activation import PRESETS, SlipParams, preset_params  # noqa: F401  (re-exported for users)


class _FloorSTE(torch.autograd.Function):
    """floor(x) forward, identity backward (straight-through estimator)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return grad


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    """``floor`` with a straight-through (identity) gradient."""
    return _FloorSTE.apply(x)


def slip_relu(x: torch.Tensor, theta: torch.Tensor, a: torch.Tensor | float, L: int,
              delta1: float, delta2: float) -> torch.Tensor:
    """Functional SlipReLU; same units as ``x`` (θ is in the units of x)."""
    xn = x / theta
    ramp = torch.clamp(xn + delta1 / L, 0.0, 1.0)
    step = torch.clamp(floor_ste(L * xn + delta2) / L, 0.0, 1.0)
    return theta * (a * ramp + (1.0 - a) * step)


class SlipReLU(nn.Module):
    """SlipReLU activation with a learnable threshold θ.

    Shape: any; θ is one scalar per module (per layer).

    Args:
        theta: initial threshold θ > 0 (8.0 when it replaces a ReLU, as in the paper's code).
        L: quantization steps.
        a: slope in [0, 1]; ``a=0, delta2=0.5`` is QCFS, ``a=1, delta1=0`` the clipped ReLU.
        delta1: shift of the threshold-ReLU part (units of 1/L).
        delta2: shift of the step part; the converted neuron starts at ``delta2·θ``.
        a_learnable: make ``a`` a parameter; the forward pass uses it clamped to [0, 1], and
            ``clamp_`` (``clamp_activations_``, called after every optimiser step) puts it back there,
            so the optimiser can never leave the allowed range.

    Example:
        >>> act = SlipReLU(theta=8.0, L=16, a=0.5, delta1=0.0, delta2=0.5)
        >>> act(torch.tensor([-1.0, 3.0, 9.0])).tolist()
        [0.0, 3.0, 8.0]
    """

    def __init__(self, theta: float = 8.0, L: int = 16, a: float = 0.5, delta1: float = 0.0,
                 delta2: float = 0.5, a_learnable: bool = False) -> None:
        super().__init__()
        self.params = SlipParams(a=a, L=L, delta1=delta1, delta2=delta2, a_learnable=a_learnable)
        if theta <= 0:
            raise ModelError(f"SlipReLU threshold theta={theta} must be > 0")
        self.theta = nn.Parameter(torch.tensor(float(theta)))
        if a_learnable:
            self.a = nn.Parameter(torch.tensor(float(a)))
        else:
            self.register_buffer("a", torch.tensor(float(a)))

    @classmethod
    def from_params(cls, p: SlipParams, theta: float = 8.0) -> "SlipReLU":
        """Build from a ``SlipParams``."""
        return cls(theta=theta, L=p.L, a=p.a, delta1=p.delta1, delta2=p.delta2, a_learnable=p.a_learnable)

    @property
    def L(self) -> int:
        return self.params.L

    @property
    def delta1(self) -> float:
        return self.params.delta1

    @property
    def delta2(self) -> float:
        return self.params.delta2

    def clamp_(self) -> None:
        """Keep θ > 0 and a ∈ [0, 1] after an optimiser step."""
        with torch.no_grad():
            self.theta.clamp_(min=1e-3)
            self.a.clamp_(0.0, 1.0)

    def current_params(self) -> SlipParams:
        """The parameters now in force (a learnable ``a`` read from its tensor)."""
        return replace(self.params, a=float(self.a.clamp(0.0, 1.0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a.clamp(0.0, 1.0) if self.params.a_learnable else self.a
        return slip_relu(x, self.theta, a, self.L, self.delta1, self.delta2)

    def extra_repr(self) -> str:
        p = self.current_params()
        return f"theta={float(self.theta):.4g}, L={p.L}, a={p.a:.3g}, delta1={p.delta1}, delta2={p.delta2}"


def make_activation(params: SlipParams | None, theta: float = 8.0) -> nn.Module:
    """A SlipReLU for ``params``, or a plain ``nn.ReLU`` when ``params`` is None (the source ANN)."""
    return nn.ReLU() if params is None else SlipReLU.from_params(params, theta)


#: slipify's defaults, measured on a user's VGG-style model (docs/byom.md): θ₀ = 1 and L = 4 convert at T = 1
#: within a few points of the ANN on digits, MNIST-like digits and Fashion-MNIST; the paper's θ₀ = 8, L = 16
#: (meant for CIFAR's 300 epochs) leaves a short training with thresholds far above the pre-activations.
DEFAULT_THETA0 = 1.0
DEFAULT_L = 4

#: activations with no exact spiking counterpart → the fix to suggest
INEXACT_ACTIVATIONS: dict[type, str] = {
    t: "replace it by nn.ReLU (slipify then makes it a SlipReLU) and retrain"
    for t in (nn.GELU, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.CELU, nn.SELU, nn.SiLU, nn.Mish, nn.Hardswish,
              nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign, nn.LogSigmoid,
              nn.Tanhshrink, nn.Threshold, nn.Softmax, nn.LogSoftmax)
}
#: activations slipify swaps for SlipReLU
SWAPPED_ACTIVATIONS: tuple[type, ...] = (nn.ReLU, nn.ReLU6)
_POOL_FIX = ("use a non-overlapping pool (nn.MaxPool2d(2) or nn.AvgPool2d(2): for even inputs the same output "
             "size as MaxPool2d(3, 2, 1)) or a stride-2 convolution, and retrain")
_INEXACT_POOLS: tuple[type, ...] = (nn.MaxPool1d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
                                    nn.AdaptiveMaxPool3d, nn.LPPool1d, nn.LPPool2d, nn.FractionalMaxPool2d,
                                    nn.FractionalMaxPool3d, nn.MaxUnpool2d)
#: functional calls in a forward() that have no exact spiking counterpart (by __name__)
_INEXACT_FUNCTIONS = ("gelu", "leaky_relu", "leaky_relu_", "prelu", "rrelu", "elu", "celu", "selu", "silu", "mish",
                      "hardswish", "hardsigmoid", "hardtanh", "relu6", "sigmoid", "tanh", "softplus", "softsign",
                      "logsigmoid", "softmax", "log_softmax", "max_pool1d", "max_pool3d", "adaptive_max_pool2d",
                      "lp_pool2d")


@dataclass(frozen=True)
class Problem:
    """A module or op that will not convert (from ``slipify``'s checks or ``convert.check_convertible``).

    Attributes:
        where: the module's qualified name, or ``graph node 'x' at file:line `code```.
        what: its type or call (``GELU``, ``torch.cat``).
        reason: why it does not convert.
        fix: what to change.
    """

    where: str
    what: str
    reason: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where} ({self.what}): {self.reason}; fix: {self.fix}"


def foldable_pool(m: nn.Module) -> bool:
    """True for a pool that becomes an exact average pool: stride = kernel, no padding/dilation/ceil."""
    k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,) * 2
    stride = m.stride if m.stride is not None else m.kernel_size
    stride = stride if isinstance(stride, tuple) else (stride,) * 2
    pad = m.padding if isinstance(m.padding, tuple) else (m.padding,) * 2
    dil = getattr(m, "dilation", 1)
    return tuple(k) == tuple(stride) and tuple(pad) == (0, 0) and dil in (1, (1, 1)) and not m.ceil_mode


def inexact_modules(model: nn.Module) -> list[Problem]:
    """Every module of ``model`` that slipify cannot make exact (activations and pools), by name."""
    found = []
    for name, m in model.named_modules():
        where = name or type(model).__name__
        if type(m) in INEXACT_ACTIVATIONS:
            found.append(Problem(where, type(m).__name__, "this activation has no exact spiking counterpart "
                                 "(an IF neuron's rate is a clipped, quantized ReLU)", INEXACT_ACTIVATIONS[type(m)]))
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) and not foldable_pool(m):
            found.append(Problem(where, f"{type(m).__name__}({_pool_args(m)})", "overlapping or padded pooling "
                                 "does not fold into the next convolution exactly", _POOL_FIX))
        elif isinstance(m, _INEXACT_POOLS):
            found.append(Problem(where, type(m).__name__, "this pooling has no exact spiking counterpart", _POOL_FIX))
    return found


def _pool_args(m: nn.Module) -> str:
    return f"kernel_size={m.kernel_size}, stride={m.stride}, padding={m.padding}" + (", ceil_mode=True" if m.ceil_mode else "")


def slipify(model: nn.Module, params: SlipParams | None = None, theta: float | None = None, *,
            strict: bool = True) -> nn.Module:
    """Return a copy of ``model`` ready for conversion training: every ReLU a SlipReLU, max-pools average pools.

    Bring-your-own-model helper; the input model is not modified and its weights are kept. ``nn.ReLU`` and
    ``nn.ReLU6`` become ``SlipReLU(params, θ₀ = theta)``; a non-overlapping ``nn.MaxPool2d(k)`` becomes
    ``nn.AvgPool2d(k)``. A model with its own ``forward()`` is traced with torch.fx (``ann.graph``): functional
    ``F.relu`` / ``F.max_pool2d`` calls become modules too and an activation module called at several places
    gets one SlipReLU per call, so the result is a ``torch.fx.GraphModule`` (its submodules keep the
    original names). A plain ``nn.Sequential`` stays an ``nn.Sequential``.

    Activations and pools with no exact spiking counterpart (GELU, LeakyReLU, SiLU, sigmoid, overlapping
    or padded pools, adaptive max-pools, …) are refused, all at once with their names and fixes; with
    ``strict=False`` each is a warning instead and stays in place (``convert.check_convertible`` and the
    conversion refuse it later).

    Args:
        model: the float model (trained or not).
        params: the SlipReLU parameters; default ``preset_params("slip", L=DEFAULT_L)``.
        theta: initial threshold θ₀ of every SlipReLU, in the units of its input; default ``DEFAULT_THETA0``.
        strict: raise on inexact activations/pools (default) instead of warning.

    Raises:
        ModelError: an activation or pool cannot be made exact (``strict``), or ``forward()`` cannot be traced.

    Example:
        >>> net = slipify(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2)))
        >>> [type(m).__name__ for m in net]
        ['Conv2d', 'SlipReLU', 'AvgPool2d']
    """
    params = params if params is not None else preset_params("slip", L=DEFAULT_L)
    theta = DEFAULT_THETA0 if theta is None else float(theta)
    if not isinstance(params, SlipParams):
        raise ModelError(f"slipify needs SlipParams (e.g. preset_params('slip')), got {params!r}")

    def swap(m: nn.Module) -> nn.Module | None:
        if type(m) in SWAPPED_ACTIVATIONS:
            return SlipReLU.from_params(params, theta)
        if type(m) is nn.MaxPool2d and foldable_pool(m):
            return nn.AvgPool2d(m.kernel_size)
        return None

    problems = inexact_modules(model)
    if _is_module_tree(model):
        new = copy.deepcopy(model)
        _report(problems, strict)
        _replace_modules(new, swap)
        return new
    from .graph import inexact_calls, modularize, trace   # noqa: PLC0415  (graph imports this module)
    gm = trace(copy.deepcopy(model))
    _report(problems + inexact_calls(gm), strict)
    return modularize(gm, swap)


def _is_module_tree(model: nn.Module) -> bool:
    """True for an ``nn.Sequential`` whose members are layers without their own ``forward()`` logic."""
    from .graph import LEAF_TYPES   # noqa: PLC0415
    if type(model) is nn.Sequential:
        return all(_is_module_tree(c) for c in model.children())
    return isinstance(model, LEAF_TYPES) or type(model).__module__.startswith("torch.nn")


def _report(problems: list[Problem], strict: bool) -> None:
    if not problems:
        return
    if strict:
        raise ModelError(f"slipify cannot make {len(problems)} part(s) of the model exact: "
                         + "; ".join(str(p) for p in problems)
                         + " (strict=False keeps them with a warning; conversion then refuses them)")
    for p in problems:
        warnings.warn(f"slipify leaves {p}", stacklevel=3)


def _replace_modules(module: nn.Module, fn: Callable[[nn.Module], nn.Module | None]) -> None:
    for name, child in module.named_children():
        new = fn(child)
        if new is not None:
            setattr(module, name, new)
        else:
            _replace_modules(child, fn)


def clamp_activations_(model: nn.Module) -> None:
    """Apply ``SlipReLU.clamp_`` to every SlipReLU in ``model`` (call after each optimiser step)."""
    for m in model.modules():
        if isinstance(m, SlipReLU):
            m.clamp_()

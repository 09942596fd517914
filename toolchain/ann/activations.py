"""SlipReLU and its named special cases (Jiang et al., ICML 2023).

    SlipReLU(x) = a·θ·clip(x/θ + δ₁/L, 0, 1) + (1 − a)·θ·clip(floor(L·x/θ + δ₂)/L, 0, 1)

θ is a learnable per-layer threshold, L the number of quantization steps, a ∈ [0, 1] the slope
(weight of the threshold-ReLU part), δ₁ and δ₂ the shifts of the two parts. The floor uses a
straight-through gradient, so θ (and a learnable a) get their gradients through autograd.
"""

from __future__ import annotations

import copy
from dataclasses import replace
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


def slipify(model: nn.Module, params: SlipParams, theta: float = 8.0) -> nn.Module:
    """Return a deep copy of ``model`` with every ReLU replaced by SlipReLU and max-pool by avg-pool.

    Bring-your-own-model helper: the trained weights are kept; ``nn.MaxPool2d`` becomes an
    ``nn.AvgPool2d`` with the same kernel, stride and padding (max-pooling has no exact spiking
    counterpart). The input model is not modified.

    Example:
        >>> net = slipify(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), preset_params("qcfs"))
        >>> type(net[1]).__name__
        'SlipReLU'
    """
    model = copy.deepcopy(model)
    _replace_modules(model, lambda m: SlipReLU.from_params(params, theta) if isinstance(m, nn.ReLU) else
                     _avg_from_max(m) if isinstance(m, nn.MaxPool2d) else None)
    return model


def _avg_from_max(m: nn.MaxPool2d) -> nn.AvgPool2d:
    if m.dilation not in (1, (1, 1)):
        raise ModelError(f"MaxPool2d with dilation={m.dilation} has no average-pool counterpart")
    return nn.AvgPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)


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

"""Parameters of the SlipReLU family and its named presets (plain data; the torch module is ``ann.activations``).

    SlipReLU(x) = a·θ·clip(x/θ + δ₁/L, 0, 1) + (1 − a)·θ·clip(floor(L·x/θ + δ₂)/L, 0, 1)
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, replace

from ..errors import ModelError


@dataclass(frozen=True)
class SlipParams:
    """Parameters of one SlipReLU family member (θ lives in the module, not here).

    Args:
        a: slope, the weight of the threshold-ReLU part, in [0, 1].
        L: quantization steps of the step part, ≥ 1.
        delta1: shift of the threshold-ReLU part, in units of 1/L.
        delta2: shift of the step part; also the SNN's initial membrane potential in units of θ.
        a_learnable: train ``a`` (kept inside [0, 1]).
    """

    a: float = 0.5
    L: int = 16
    delta1: float = 0.0
    delta2: float = 0.5
    a_learnable: bool = False

    def __post_init__(self) -> None:
        for name in ("a", "L", "delta1", "delta2"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ModelError(f"SlipReLU parameter {name}={value!r} must be a finite number")
        if not 0.0 <= self.a <= 1.0:
            raise ModelError(f"SlipReLU slope a={self.a} is outside the allowed range [0, 1]")
        if int(self.L) != self.L or self.L < 1:
            raise ModelError(f"SlipReLU steps L={self.L} must be an integer ≥ 1")
        object.__setattr__(self, "L", int(self.L))
        if not -1.0 < self.delta2 < 1.0:
            raise ModelError(f"SlipReLU shift delta2={self.delta2} must lie in (-1, 1): it is the SNN's "
                             "initial membrane potential in units of the threshold")

    def to_dict(self) -> dict:
        return asdict(self)


#: Named presets. ``relu`` is the plain ReLU source ANN (θ is calibrated from data at conversion).
PRESETS: dict[str, SlipParams | None] = {
    "slip": SlipParams(a=0.5, delta1=0.0, delta2=0.5),
    "qcfs": SlipParams(a=0.0, delta1=0.0, delta2=0.5),       # Bu et al., ICLR 2022
    "clipfloor": SlipParams(a=0.0, delta1=0.0, delta2=0.0),  # QCFS Eq. 14
    "clip": SlipParams(a=1.0, delta1=0.0, delta2=0.5),       # clipped / threshold ReLU, trainable θ
    "relu": None,
}


def preset_params(name: str, **overrides: float) -> SlipParams | None:
    """Return the parameters of a named preset with some fields overridden.

    Args:
        name: one of ``PRESETS``.
        **overrides: ``a``, ``L``, ``delta1``, ``delta2``, ``a_learnable``; ``None`` values are ignored.

    Example:
        >>> preset_params("qcfs", L=8)
        SlipParams(a=0.0, L=8, delta1=0.0, delta2=0.5, a_learnable=False)
    """
    if name not in PRESETS:
        raise ModelError(f"unknown activation {name!r}; allowed: {', '.join(PRESETS)}")
    base = PRESETS[name]
    given = {k: v for k, v in overrides.items() if v is not None}
    if base is None:
        if given:
            raise ModelError(f"activation 'relu' takes no SlipReLU parameters (got {sorted(given)})")
        return None
    return replace(base, **given)


def preset_name(act: SlipParams | None) -> str:
    """The preset whose shape parameters (a, δ₁, δ₂) ``act`` has; ``slip`` for any other member of the family.

    ``L`` and ``a_learnable`` do not change the name (``qcfs`` with L=8 is still QCFS); a learnable ``a``
    is always ``slip``, since it need not stay at a preset's value.
    """
    if act is None:
        return "relu"
    if not act.a_learnable:
        for name, p in PRESETS.items():
            if p is not None and (p.a, p.delta1, p.delta2) == (act.a, act.delta1, act.delta2):
                return name
    return "slip"

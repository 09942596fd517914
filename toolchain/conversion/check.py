"""Pre-flight check: everything that would stop a model from converting, listed before training.

``check_convertible(model, input_shape)`` returns one ``Problem`` per module or graph op that the conversion
(``conversion.lower``) would refuse or that ``slipify`` cannot make exact, each with the reason and the fix; an
empty list means the model converts (plain ReLUs need only their θ, which calibration or slipify gives).
``input_warning`` spots images that were normalized outside a model that has no ``Normalize``.
"""

from __future__ import annotations

import copy
import torch
from torch import nn

from ..ann.activations import Problem, inexact_modules  # noqa: F401  (Problem is part of this API)
from ..ann.graph import inexact_calls, trace
from ..ann.models import Normalize
from ..errors import ModelError
from .lower import ModuleRefused, initial_state
from .trace import NodeRefused, lower_graph

GENERIC_FIX = "see docs/byom.md for what converts"


def _from_refusal(err: ModelError) -> Problem:
    if isinstance(err, NodeRefused):
        where = err.module or f"graph node {err.node_name!r}" + (f" at {err.where}" if err.where else "")
        return Problem(where, err.op, err.why, err.fix or GENERIC_FIX)
    if isinstance(err, ModuleRefused):
        reason, _, fix = err.why.partition("; ")
        return Problem(err.name, err.what, reason, fix or GENERIC_FIX)
    return Problem("model", "structure", str(err), GENERIC_FIX)


def check_convertible(model: nn.Module, input_shape: tuple[int, int, int]) -> list[Problem]:
    """Every module or op of ``model`` that conversion would refuse, with the reason and the fix.

    Checks the whole model at once (the walk goes on past a refusal): activations and pools without an exact
    spiking counterpart, modules without a converter, ops of a custom ``forward()`` (``torch.cat``, ``max``, …)
    with their source line, and the order of layers (an activation must close every conv/linear, the model
    must end in a Linear). Plain ``nn.ReLU`` is fine: ``slipify`` or calibration gives it a threshold.

    Args:
        model: the float model, before or after training and ``slipify``.
        input_shape: (C, H, W) of one image.

    Returns:
        The problems, in model order; empty when the model converts.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.GELU(), nn.Flatten(), nn.Linear(144, 10))
        >>> [p.what for p in check_convertible(net, (1, 8, 8))]
        ['GELU']
    """
    found = inexact_modules(model)
    refusals: list[ModelError] = []
    try:
        found += inexact_calls(trace(model))
        lower_graph(copy.deepcopy(model).cpu().eval(), initial_state(input_shape, check_only=True), None, refusals)
    except ModelError as err:   # untraceable forward(): nothing more can be checked
        refusals.append(err)
    known = {p.where for p in found}
    for err in refusals:
        problem = _from_refusal(err)
        if problem.where not in known:
            found.append(problem)
            known.add(problem.where)
    return found


def input_warning(model: nn.Module, images: torch.Tensor) -> str | None:
    """A warning when ``images`` look normalized but ``model`` has no ``Normalize`` of its own, else None.

    Conversion feeds the first layer ``pixel / 255`` (images in [0, 1]); a model trained on ``(x − mean)/std``
    from the data pipeline then sees other inputs than in training and loses accuracy. Negative values, or a
    mean near 0 with a spread near 1, give the pipeline's normalization away.
    """
    if any(isinstance(m, Normalize) for m in model.modules()) or images.numel() == 0:
        return None
    x = images.detach().to(torch.float64)
    lo, hi, mean, std = float(x.min()), float(x.max()), float(x.mean()), float(x.std())
    if lo < 0 or hi > 255 or (abs(mean) < 0.1 and 0.5 < std < 2.0 and hi > 1.0):
        return (f"the images given look normalized outside the model (min {lo:.3g}, max {hi:.3g}, mean {mean:.3g}, "
                f"std {std:.3g}) but the model has no Normalize: the spiking network reads pixel/255 in [0, 1]; put "
                "the normalization into the model (slipsnn.toolchain.ann.models.Normalize(mean, std) as its first "
                "module), train on [0, 1] images and pass those")
    return None

"""torch.fx view of a model with its own ``forward()``: tracing, source lines, functional ops made modules.

A model that is not a plain ``nn.Sequential`` (any torchvision ResNet, a custom residual net) is read as a
``torch.fx`` graph. Standard ``torch.nn`` modules and slipsnn's own (``SlipReLU``, ``Normalize``,
``BasicBlock``) stay leaves, so each call of one is one graph node named by its qualified module name;
everything else a ``forward()`` does (``+``, ``torch.flatten``, ``F.relu``, ``x.view``) appears as a function
or method node with the source line that made it.

``modularize`` rewrites the graph so that every activation and pool is a module of its own: functional
``relu`` / ``avg_pool2d`` / ``max_pool2d`` / ``adaptive_avg_pool2d`` calls become modules, and an activation
module called at several places (torchvision's ``self.relu``) gets one copy per call, so that each
converted layer can learn its own threshold θ.
"""

from __future__ import annotations

import copy
import operator
import os
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import ModelError
from .activations import _INEXACT_FUNCTIONS, Problem, SlipReLU
from .models import BasicBlock, Normalize

#: slipsnn modules that stay single graph nodes (besides torch.nn's own modules).
LEAF_TYPES: tuple[type, ...] = (SlipReLU, Normalize, BasicBlock)

_TORCH_DIR = os.path.dirname(torch.__file__)
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # slipsnn's toolchain/


class ModelTracer(fx.Tracer):
    """fx tracer that keeps torch.nn and slipsnn modules as leaves and records each node's source line."""

    def __init__(self) -> None:
        super().__init__()
        self.record_stack_traces = True

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, LEAF_TYPES) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> fx.GraphModule:
    """The model as an fx ``GraphModule`` sharing its parameters (the model itself is not changed).

    Raises:
        ModelError: ``forward()`` cannot be traced symbolically (data-dependent control flow and the like).
    """
    if isinstance(model, fx.GraphModule):   # already a graph (slipify's result): keep its nodes' source lines
        return fx.GraphModule(model, copy.deepcopy(model.graph), type(model).__name__)
    try:
        graph = ModelTracer().trace(model)
    except Exception as err:  # fx raises TraceError, TypeError, NotImplementedError, … for untraceable code
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelError(f"cannot trace {type(model).__name__}.forward() with torch.fx ({type(err).__name__}: "
                         f"{first}); convertible models compute a fixed graph: no branches or loops on tensor "
                         "values, no Python calls on tensor data") from None
    return fx.GraphModule(model, graph, type(model).__name__)


def source_of(node: fx.Node) -> str:
    """``file:line `code``` of the user code that made ``node``, or '' when torch's own code made it.

    The innermost frame outside torch is the line of ``forward()`` that called the op; when that frame is
    slipsnn's own tracer, the op came from a torch container (``nn.Sequential``) and has no line of its own.
    """
    lines = (node.stack_trace or "").strip().splitlines()
    for i in range(len(lines) - 2, -1, -1):
        line = lines[i].strip()
        if not line.startswith("File ") or _TORCH_DIR in line:
            continue
        if _OWN_DIR in line:
            return ""
        parts = line.split(", ")
        file = parts[0][len("File "):].strip('"')
        lineno = parts[1].replace("line ", "") if len(parts) > 1 else "?"
        return f"{file}:{lineno} `{lines[i + 1].strip()}`"
    return ""


def describe(node: fx.Node) -> str:
    """What a node calls, for messages: ``torch.cat``, ``Tensor.view``, ``operator.add``…"""
    t = node.target
    if node.op == "call_method":
        return f"Tensor.{t}"
    if node.op == "call_function":
        mod = getattr(t, "__module__", None) or ("torch" if "torch" in repr(t) else "")
        mod = {"torch._C._nn": "torch.nn.functional", "torch._C._VariableFunctions": "torch", "_operator": "operator",
               "torch.functional": "torch"}.get(mod, mod)
        return f"{mod}.{getattr(t, '__name__', t)}" if mod else str(getattr(t, "__name__", t))
    return str(t)


RELU_FUNCTIONS = (F.relu, torch.relu, torch.relu_, F.relu_)
RELU_METHODS = ("relu", "relu_")

#: functional pools → (module type, positional parameter names after the input)
_POOLS: dict[Callable[..., Any], tuple[type, tuple[str, ...]]] = {
    F.avg_pool2d: (nn.AvgPool2d, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                  "divisor_override")),
    F.max_pool2d: (nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")),
    F.adaptive_avg_pool2d: (nn.AdaptiveAvgPool2d, ("output_size",)),
}


def pool_module(node: fx.Node) -> nn.Module | None:
    """The module equal to a functional pool node (constant arguments only), or None if it is none."""
    kind = _POOLS.get(node.target) if node.op == "call_function" else None
    if kind is None:
        return None
    cls, names = kind
    kwargs = dict(zip(names, node.args[1:]))
    kwargs.update({k: v for k, v in node.kwargs.items() if k != "input"})
    if any(isinstance(v, fx.Node) for v in kwargs.values()):
        raise ModelError(f"cannot convert graph node {node.name!r} ({describe(node)}) at {source_of(node)}: its "
                         "pooling parameters are computed from tensors; use constants")
    if kwargs.pop("return_indices", False):
        raise ModelError(f"cannot convert graph node {node.name!r} ({describe(node)}) at {source_of(node)}: "
                         "return_indices=True has no spiking equivalent")
    return cls(**kwargs)


def is_relu(node: fx.Node) -> bool:
    return (node.op == "call_function" and node.target in RELU_FUNCTIONS) or \
        (node.op == "call_method" and node.target in RELU_METHODS)


def modularize(gm: fx.GraphModule, replace: Callable[[nn.Module], nn.Module | None]) -> fx.GraphModule:
    """Make every activation and pool of ``gm`` a module of its own, then swap modules with ``replace``.

    Functional relu calls become ``nn.ReLU`` modules named after their node, functional pools their module;
    a module called at several places is copied once per extra call (``<name>_<k>``). Then every leaf module
    for which ``replace(module)`` returns a module is replaced by it. ``gm`` is changed in place and returned.
    """
    counts: dict[str, int] = {}
    for node in list(gm.graph.nodes):
        if is_relu(node) or pool_module(node) is not None:
            module = nn.ReLU() if is_relu(node) else pool_module(node)
            name = _free_name(gm, node.name)
            gm.add_submodule(name, module)
            with gm.graph.inserting_after(node):
                new = gm.graph.call_module(name, (node.args[0],))
            new.meta = dict(node.meta)
            node.replace_all_uses_with(new)
            gm.graph.erase_node(node)
        elif node.op == "call_module":
            counts[node.target] = counts.get(node.target, 0) + 1
            if counts[node.target] > 1 and not list(gm.get_submodule(node.target).parameters()):
                name = _free_name(gm, f"{node.target.replace('.', '_')}_{counts[node.target]}")
                gm.add_submodule(name, copy.deepcopy(gm.get_submodule(node.target)))
                node.target = name
    for node in gm.graph.nodes:
        if node.op == "call_module":
            new_module = replace(gm.get_submodule(node.target))
            if new_module is not None:
                _set_submodule(gm, node.target, new_module)
    gm.graph.lint()
    gm.recompile()
    return gm


def _free_name(gm: fx.GraphModule, base: str) -> str:
    name, k = base, 1
    while hasattr(gm, name):
        k += 1
        name = f"{base}_{k}"
    return name


def _set_submodule(root: nn.Module, target: str, module: nn.Module) -> None:
    parent, _, leaf = target.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


#: ops a traced graph may contain besides modules: residual adds, shape reads and flattening.
ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)


def inexact_calls(gm: fx.GraphModule) -> list[Problem]:
    """Function and method calls of ``gm`` with no exact spiking counterpart (``F.gelu``, ``x.sigmoid()``…)."""
    found = []
    for node in gm.graph.nodes:
        if node.op in ("call_function", "call_method"):
            name = str(getattr(node.target, "__name__", node.target))
            if name in _INEXACT_FUNCTIONS:
                where = source_of(node)
                found.append(Problem(f"graph node {node.name!r}" + (f" at {where}" if where else ""), describe(node),
                                     "this call has no exact spiking counterpart",
                                     "use nn.ReLU / F.relu (slipify makes it a SlipReLU) or a non-overlapping pool"))
    return found

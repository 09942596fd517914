"""Lowering of models with their own ``forward()``: walk the torch.fx graph with ``lower``'s converters.

Each graph node's value is a ``lower._Cursor`` (a source's spikes and the linear map pending on them), so a
value can feed several nodes and two values can meet in a residual add. What converts:

- module calls of every type in ``lower.CONVERTERS`` (conv, linear, BatchNorm, SlipReLU/ReLU, average pools,
  flatten, dropout, ``Normalize``, ``BasicBlock``);
- ``a + b`` / ``torch.add`` / ``+=``: a residual add (the branches become synapses of one neuron);
- ``torch.flatten(x, 1)``, ``x.flatten(1)``, ``x.view(x.size(0), -1)``, ``x.reshape(n, -1)`` (to (N, features));
- functional ``relu`` and ``avg_pool2d`` / ``adaptive_avg_pool2d(x, 1)``, and ``x.size()`` / ``x.shape`` reads.

Anything else (``torch.cat``, ``max``, multiplication, …) is refused naming the graph node, the call and
its source line. ``refusals`` collects every refusal instead of stopping at the first (for
``conversion.check``).
"""

from __future__ import annotations

import copy
import operator
from typing import Any

import numpy as np
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..ann.activations import _INEXACT_FUNCTIONS, INEXACT_ACTIVATIONS, SWAPPED_ACTIVATIONS, foldable_pool
from ..ann.graph import ADD_FUNCTIONS, describe, is_relu, pool_module, source_of, trace
from ..errors import ModelError
from ..ir.floating import SpikingNetwork
from .lower import CONVERTERS, ModuleRefused, _Cursor, _State, add_values, finish, supported_modules

#: the value of a node whose input could not be reproduced after a refusal: later nodes are not checked
_UNKNOWN = object()

_FLATTEN_METHODS = ("view", "reshape", "flatten")
_PASS_METHODS = ("contiguous", "clone")


def supported_ops() -> str:
    """The ops a traced graph may hold, for messages."""
    return ("modules " + ", ".join(supported_modules()) + "; functions +, torch.add, torch.flatten, F.relu, "
            "torch.relu, F.avg_pool2d, F.adaptive_avg_pool2d(·, 1); methods .view/.reshape/.flatten to (N, features), "
            ".size(), .relu(), .contiguous()")


class NodeRefused(ModelError):
    """A graph node that cannot be converted (names the node, its call and source line)."""

    def __init__(self, node: fx.Node, why: str, fix: str = "", what: str | None = None) -> None:
        self.node_name, self.op, self.where, self.why, self.fix = node.name, what or describe(node), source_of(node), why, fix
        self.module = str(node.target) if node.op == "call_module" else None
        at = f" at {self.where}" if self.where else ""
        subject = f"module {self.module!r}" if self.module is not None else f"graph node {node.name!r}"
        super().__init__(f"cannot convert {subject} ({self.op}){at}: {why}" + (f"; {fix}" if fix else ""))


def traced(model: nn.Module, input_shape: tuple[int, int, int]) -> tuple[fx.GraphModule, str]:
    """The fx graph of ``model`` (a CPU eval copy) with every node's output shape in ``meta['tensor_meta']``.

    Returns:
        The graph module and, when running ``forward()`` on a zero image failed, why ('' otherwise): the
        converters still check every shape themselves; only a reshape needs the recorded shapes.
    """
    gm = trace(copy.deepcopy(model).cpu().eval())
    gm.graph.eliminate_dead_code()
    gm.recompile()
    dtype = next((p.dtype for p in gm.parameters() if p.is_floating_point()), torch.float32)
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros((1, *input_shape), dtype=dtype))
    except Exception as err:  # a shape mismatch inside the user's forward, reported by torch
        cause = err.__cause__ or err
        first = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        return gm, (f"{type(model).__name__}.forward() fails on an input of shape (1, "
                    f"{', '.join(map(str, input_shape))}) ({type(cause).__name__}: {first})")
    return gm, ""


def lower_graph(model: nn.Module, st: _State, meta: dict | None,
                refusals: list[ModelError] | None = None) -> SpikingNetwork | None:
    """Lower a traced model from the initial state ``st`` (input normalization pending).

    Args:
        model: any model torch.fx can trace.
        st: ``lower``'s state before the first module.
        meta: provenance stored on the result.
        refusals: when given, every refusal is appended here and the walk goes on (a refused node passes its
            input through); the return value is then None.

    Raises:
        ModelError: the first refusal (when ``refusals`` is None).
    """
    gm, shape_failure = traced(model, st.input_shape)
    values: dict[fx.Node, Any] = {}
    result: _Cursor | None = None
    for node in gm.graph.nodes:
        if any(values.get(arg) is _UNKNOWN for arg in node.all_input_nodes):
            values[node] = _UNKNOWN
            continue
        try:
            if node.op == "placeholder":
                if values:
                    raise NodeRefused(node, "a second input; slipsnn networks take one image")
                values[node] = st.cursor()
            elif node.op == "output":
                out = node.args[0]
                if isinstance(out, fx.Node) and values.get(out) is _UNKNOWN:
                    continue
                if not isinstance(out, fx.Node) or not isinstance(values.get(out), _Cursor):
                    raise NodeRefused(node, "the model must return one tensor (the logits)")
                result = values[out]
            else:
                values[node] = _convert_node(gm, st, node, values, shape_failure)
        except ModelError as err:
            if refusals is None:
                raise
            refusals.append(err)
            values[node] = _continue_after(gm, st, node, values)
    if refusals is not None:
        if isinstance(result, _Cursor):
            st.resume(result)
            try:
                finish(st, meta)
            except ModelError as err:
                refusals.append(err)
        return None
    st.resume(result)
    return finish(st, meta)


def _continue_after(gm: fx.GraphModule, st: _State, node: fx.Node, values: dict[fx.Node, Any]) -> Any:
    """After a refusal: the value slipify's stand-in would give, else the node's input if the shape is kept."""
    stand_in = _stand_in(gm, node)
    if stand_in is not None:
        try:
            cur = _run_converter(st, str(node.target), stand_in, _tensor_input(node, values), node)
        except ModelError:
            return _UNKNOWN
        return cur if cur.out_shape == tuple((_out_shape(node) or (None,))[1:]) else _UNKNOWN
    inputs = [values[a] for a in node.all_input_nodes if isinstance(values.get(a), _Cursor)]
    if inputs and inputs[0].out_shape == tuple((_out_shape(node) or (None,))[1:]):
        return inputs[0]
    return _UNKNOWN


def _out_shape(node: fx.Node) -> tuple[int, ...] | None:
    tm = node.meta.get("tensor_meta")
    return tuple(tm.shape) if tm is not None and hasattr(tm, "shape") else None


def _tensor_input(node: fx.Node, values: dict[fx.Node, Any], index: int = 0) -> _Cursor:
    arg = node.args[index] if len(node.args) > index else None
    if not isinstance(arg, fx.Node) or not isinstance(values.get(arg), _Cursor):
        raise NodeRefused(node, f"argument {index} is not a tensor computed from the input image")
    return values[arg]


def _run_converter(st: _State, name: str, module: nn.Module, cur: _Cursor, node: fx.Node) -> _Cursor:
    fn = CONVERTERS.get(type(module))
    if fn is None:
        raise NodeRefused(node, "no converter for this module type", f"supported: {supported_ops()}",
                          what=type(module).__name__)
    st.resume(cur)
    try:
        fn(st, name, module)
    except ModuleRefused as err:
        if node.op != "call_module":   # a functional call: name the graph node
            raise NodeRefused(node, err.why) from None
        raise ModuleRefused(err.name, err.what, err.why, source_of(node)) from None
    except NodeRefused:
        raise
    except ModelError as err:
        where = source_of(node)
        raise ModelError(f"{err}" + (f" (at {where})" if where else "")) from None
    return st.cursor()


def _stand_in(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    """For checking past a refusal: the module slipify would put there (an average pool, a ReLU), if any."""
    if node.op == "call_module":
        m = gm.get_submodule(node.target)
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):   # checked against the node's shape by the caller
            return nn.AvgPool2d(m.kernel_size if foldable_pool(m) else (m.stride or m.kernel_size))
        return nn.ReLU() if type(m) in INEXACT_ACTIVATIONS or type(m) in SWAPPED_ACTIVATIONS else None
    name = str(getattr(node.target, "__name__", node.target))
    return nn.ReLU() if name in _INEXACT_FUNCTIONS and "pool" not in name else None


def _convert_node(gm: fx.GraphModule, st: _State, node: fx.Node, values: dict[fx.Node, Any],
                  shape_failure: str = "") -> Any:
    if node.op == "call_module":
        return _run_converter(st, str(node.target), gm.get_submodule(node.target), _tensor_input(node, values), node)
    if node.op == "get_attr":
        raise NodeRefused(node, "reads a parameter or buffer directly in forward(); only modules' own weights "
                                "convert", "wrap the computation in a module")
    if node.op == "call_method" and node.target == "size" or \
            node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",):
        return None   # a shape read: only its use in view/reshape matters
    if node.op == "call_function" and node.target is operator.getitem and not isinstance(values.get(node.args[0]), _Cursor):
        return None   # x.size()[0], x.shape[1], …
    if node.op == "call_function" and node.target in ADD_FUNCTIONS:
        return _add(st, node, values)
    if is_relu(node):
        return _run_converter(st, node.name, nn.ReLU(), _tensor_input(node, values), node)
    pool = pool_module(node)
    if pool is not None:
        return _run_converter(st, node.name, pool, _tensor_input(node, values), node)
    if _is_flatten(node):
        cur = _tensor_input(node, values)
        out = _out_shape(node)
        features = int(np.prod(cur.out_shape))
        if out is None:
            raise NodeRefused(node, f"its output shape is unknown: {shape_failure or 'no shape recorded'}")
        if tuple(out[1:]) != (features,):
            raise NodeRefused(node, f"reshapes to {out}; only (N, {features}) — a flatten — converts")
        return _run_converter(st, node.name, nn.Flatten(), cur, node)
    if node.op == "call_method" and node.target in _PASS_METHODS:
        return _tensor_input(node, values)
    raise NodeRefused(node, _why(node), f"supported: {supported_ops()}")


def _is_flatten(node: fx.Node) -> bool:
    return (node.op == "call_method" and node.target in _FLATTEN_METHODS) or \
        (node.op == "call_function" and node.target is torch.flatten)


_REASONS: dict[str, str] = {
    "cat": "concatenation of branches has no converter (slipsnn layers form a chain with residual adds)",
    "stack": "stacking branches has no converter",
    "max": "a maximum has no exact spiking equivalent",
    "amax": "a maximum has no exact spiking equivalent",
    "mul": "multiplying two signals has no spiking equivalent (only weights multiply spikes)",
    "matmul": "multiplying two signals has no spiking equivalent (only weights multiply spikes)",
    "sub": "subtracting branches is not supported (only residual adds)",
}


def _why(node: fx.Node) -> str:
    name = str(getattr(node.target, "__name__", node.target)).strip("_")
    return _REASONS.get(name, f"{describe(node)} has no converter")


def _add(st: _State, node: fx.Node, values: dict[fx.Node, Any]) -> _Cursor:
    if node.kwargs.get("alpha", 1) != 1 or len(node.args) != 2:
        raise NodeRefused(node, "only a plain sum of two tensors (a residual add) converts")
    a, b = (values.get(x) if isinstance(x, fx.Node) else None for x in node.args)
    if not isinstance(a, _Cursor) or not isinstance(b, _Cursor):
        raise NodeRefused(node, "adds a constant; only the sum of two branches (a residual add) converts",
                          "put the constant into a bias")
    try:
        return add_values(st, node.name, a, b)
    except ModelError as err:
        where = source_of(node)
        raise ModelError(f"{err}" + (f" (at {where})" if where else "")) from None


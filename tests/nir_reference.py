"""A discrete-time executor of NIR graphs written from the NIR spec (neuromorphs/NIR ``nir/ir``), for tests.

One step per call of the graph, dt = 1, batched over samples (arrays (N, *shape), float64):

* every node's input is the sum over its incoming edges; an edge that closes a cycle (found by depth-first
  search from the inputs) carries its source's output of the previous step (zero at step 0);
* ``Affine`` y = W x + b, ``Linear`` y = W x, ``Scale`` y = s ⊙ x, ``Conv2d`` the cross-correlation with
  its stride/padding/dilation/groups plus its bias, ``Flatten`` over the unbatched dims start_dim..end_dim;
* ``I``: v ← v + r·x, output v; ``Threshold``: z = [x > θ]; ``IF``: v ← v + r·x, z = [v > θ],
  v ← v_reset where z, output z; state starts at 0.

Only the nodes slipsnn writes are implemented; any other raises ``NotImplementedError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import nir


def _order(graph: nir.NIRGraph) -> tuple[list[str], set[tuple[str, str]]]:
    """(evaluation order, the edges that close cycles)."""
    succ: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        succ[a].append(b)
    back, state, post = set(), {}, []

    def visit(n: str) -> None:
        state[n] = "open"
        for m in succ[n]:
            if state.get(m) == "open":
                back.add((n, m))
            elif m not in state:
                visit(m)
        state[n] = "done"
        post.append(n)
    for n in graph.inputs:
        visit(n)
    missing = set(graph.nodes) - set(state)
    if missing:
        raise ValueError(f"nodes not reachable from an input: {sorted(missing)}")
    return post[::-1], back


def _stateless(node: Any, x: np.ndarray) -> np.ndarray:
    if isinstance(node, (nir.Input, nir.Output)):
        return x
    if isinstance(node, nir.Affine):
        return x @ node.weight.T.astype(np.float64) + node.bias
    if isinstance(node, nir.Linear):
        return x @ node.weight.T.astype(np.float64)
    if isinstance(node, nir.Scale):
        return x * node.scale
    if isinstance(node, nir.Threshold):
        return (x > node.threshold).astype(np.float64)
    if isinstance(node, nir.Flatten):
        ndim = x.ndim - 1
        start, end = node.start_dim % ndim, node.end_dim % ndim
        return x.reshape(x.shape[:1 + start] + (-1,) + x.shape[2 + end:])
    if isinstance(node, nir.Conv2d):
        y = torch.nn.functional.conv2d(torch.as_tensor(x), torch.as_tensor(node.weight, dtype=torch.float64),
                                       stride=tuple(node.stride), padding=tuple(node.padding),
                                       dilation=tuple(node.dilation), groups=int(node.groups)).numpy()
        return y + np.asarray(node.bias, np.float64).reshape(-1, 1, 1)
    raise NotImplementedError(type(node).__name__)


def run_graph(graph: nir.NIRGraph, x: np.ndarray, timesteps: int) -> dict[str, np.ndarray]:
    """Run ``graph`` for ``timesteps`` steps on the same input ``x`` (N, *input shape) every step.

    Returns:
        {output node name: (N, T, *shape) per-step values}.
    """
    order, back = _order(graph)
    into: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        into[b].append(a)
    prev: dict[str, np.ndarray] = {}
    state: dict[str, np.ndarray] = {}
    outs: dict[str, list[np.ndarray]] = {n: [] for n in graph.outputs}
    x = np.asarray(x, np.float64)
    for _ in range(timesteps):
        cur: dict[str, np.ndarray] = {}
        for n in order:
            node = graph.nodes[n]
            if isinstance(node, nir.Input):
                cur[n] = x
                continue
            parts = [(prev.get(a) if (a, n) in back else cur[a]) for a in into[n]]
            parts = [p for p in parts if p is not None]
            total = sum(parts[1:], parts[0]) if parts else 0.0
            if isinstance(node, nir.I):
                state[n] = state.get(n, 0.0) + node.r * total
                cur[n] = state[n]
            elif isinstance(node, nir.IF):
                v = state.get(n, 0.0) + node.r * total
                z = (v > node.v_threshold).astype(np.float64)
                state[n] = np.where(z > 0, node.v_reset, v)
                cur[n] = z
            else:
                cur[n] = _stateless(node, total)
        for n in outs:
            outs[n].append(cur[n])
        prev = cur
    return {n: np.stack(v, axis=1) for n, v in outs.items()}

"""Real NIR consumers (nirtorch 2.6, snnTorch 1.0.0) driven the way a user would, with the workarounds that
docs/nir.md lists for their bugs. Each ``run_*`` returns the per-step output (N, T, classes) as numpy.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

import nir


class _Integrator(torch.nn.Module):
    """NIR ``I`` / ``IF`` for nirtorch: v ← v + r·x; IF fires at v > θ and resets to v_reset."""

    def __init__(self, r: np.ndarray, threshold: np.ndarray | None = None, reset: np.ndarray | None = None) -> None:
        super().__init__()
        self.register_buffer("r", torch.as_tensor(r))
        self.threshold = None if threshold is None else torch.as_tensor(threshold)
        self.reset = None if reset is None else torch.as_tensor(reset)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        v = (0 if state is None else state) + self.r * x
        if self.threshold is None:
            return v, v
        z = (v > self.threshold).to(v.dtype)
        return z, torch.where(z > 0, self.reset.to(v.dtype), v)


class _Elementwise(torch.nn.Module):
    def __init__(self, fn) -> None:   # noqa: ANN001
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _affine(node: nir.Affine) -> torch.nn.Linear:
    # workaround: nirtorch 2.6's default Affine assigns the bias to ``weight.bias`` and keeps a random bias
    lin = torch.nn.Linear(node.weight.shape[1], node.weight.shape[0])
    lin.weight.data, lin.bias.data = torch.as_tensor(node.weight), torch.as_tensor(node.bias)
    return lin


def _flatten(node: nir.Flatten) -> torch.nn.Flatten:
    # NIR shapes exclude the batch: start_dim 0 of a (C, H, W) node is dim 1 of a batched tensor
    return torch.nn.Flatten(node.start_dim + 1 if node.start_dim >= 0 else node.start_dim, node.end_dim)


NIRTORCH_MAP = {
    nir.Affine: _affine,
    nir.Flatten: _flatten,
    nir.I: lambda n: _Integrator(n.r),
    nir.IF: lambda n: _Integrator(n.r, n.v_threshold, n.v_reset),
    nir.Threshold: lambda n: _Elementwise(lambda x, t=torch.as_tensor(n.threshold): (x > t).to(x.dtype)),
    nir.Scale: lambda n: _Elementwise(lambda x, s=torch.as_tensor(n.scale): x * s),
}


def _steps(module: torch.nn.Module, x: np.ndarray, timesteps: int) -> np.ndarray:
    """Call a nirtorch graph module once per step, passing its state back: (N, T, *output)."""
    xt, state, outs = torch.as_tensor(x, dtype=torch.float32), None, []
    with torch.no_grad():
        for _ in range(timesteps):
            out, state = module(xt, state)
            outs.append(out.numpy().astype(np.float64))
    return np.stack(outs, axis=1)


def run_nirtorch(graph: nir.NIRGraph, x: np.ndarray, timesteps: int) -> np.ndarray:
    """nirtorch's graph interpreter (wiring, recurrent edges, state) with the node map above, in float32."""
    import nirtorch
    module = nirtorch.nir_to_torch(graph, NIRTORCH_MAP)
    return _steps(module, x, timesteps)


def run_snntorch(graph: nir.NIRGraph, x: np.ndarray, timesteps: int) -> np.ndarray:
    """snnTorch's ``import_from_nir`` with its bugs worked around (see docs/nir.md):

    * Flatten(start_dim=0) would flatten the batch: rewrite it to start_dim=1 before the import;
    * IF becomes ``Leaky(beta=0.9)`` with reset by subtraction: set beta 1 and reset_mechanism "zero";
    * each Leaky returns (spike, membrane) tuples into the next node: set init_hidden so it returns spikes;
    * the graph module returns (output, state) tuples: keep the output and pass the state back.
    It needs one threshold per IF node (snnTorch asserts it), i.e. no per-neuron bias in the graph.
    """
    import snntorch
    from snntorch.import_nir import import_from_nir
    graph = copy.deepcopy(graph)
    for node in graph.nodes.values():
        if isinstance(node, nir.Flatten) and node.start_dim >= 0:
            node.start_dim += 1
    module = import_from_nir(graph)
    for m in module.modules():
        if isinstance(m, snntorch.Leaky):
            m.beta = torch.tensor(1.0)
            m.reset_mechanism = "zero"
            m.init_hidden = True           # a Leaky returns (spk, mem) tuples into the next node otherwise
            m.mem = torch.zeros(0)         # fresh state (reshaped to the input on the first step)
    return _steps(module, x, timesteps)

"""The tailored ANN evaluated on the lowered description (``ir.floating.SpikingNetwork``): the reference
every spiking stage is compared with."""

from __future__ import annotations

import torch

from ..ann.activations import slip_relu
from ..ir.activation import SlipParams
from ..ir.formats import INPUT_SOURCE
from ..ir.floating import SpikingNetwork
from ..kernels.synapse import apply_synapse, bias_tensor


def slip_normalized(z: torch.Tensor, p: SlipParams | None) -> torch.Tensor:
    """SlipReLU in normalized units (θ = 1); a plain ReLU when ``p`` is None."""
    if p is None:
        return torch.relu(z)
    return slip_relu(z, torch.ones((), dtype=z.dtype), p.a, p.L, p.delta1, p.delta2)


@torch.no_grad()
def ann_forward(net: SpikingNetwork, pixels: torch.Tensor) -> list[torch.Tensor]:
    """Evaluate the tailored ANN on the lowered description.

    Args:
        net: the converted network.
        pixels: (N, C, H, W) 8-bit pixel values 0..255 (float or integer tensor).

    Returns:
        One tensor per layer: the normalized activation (ANN output / θ) of each hidden layer and
        the logits of the output layer, each (N, *layer.shape), float64.
    """
    x = pixels.to(torch.float64)
    outs: list[torch.Tensor] = []
    for layer in net.layers:
        z = bias_tensor(layer.bias, layer.shape, torch.float64)
        for syn in layer.synapses:
            src = x if syn.source == INPUT_SOURCE else outs[syn.source]
            z = z + apply_synapse(src, syn.kind, torch.as_tensor(syn.weight, dtype=torch.float64),
                                  syn.stride, syn.padding, syn.dilation, syn.groups)
        outs.append(slip_normalized(z, layer.act) if layer.spiking else z)
    return outs

"""Intel's published Loihi 2 compiles, rebuilt as slipsnn networks, beside slipsnn's core estimate (pure).

The lava-dl tutorials (lava-nc/lava-dl, tutorials/lava/lib/dl/netx/*, commit d825ac5) print the Loihi 2
compiler's per-core table in their cell outputs. Their network files give the architectures; this module
rebuilds each as an ``IntNetwork`` (weights of ones: the Loihi 2 mapping does not depend on weight values,
dense matrices are stored whole) and maps it with ``mapping.map_cores``. docs/reports.md prints the table.

    >>> rows = calibration_rows(load_profile("loihi2"))                  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.formats import NeuronKind, SynapseKind
from ..ir.integer import IntLayer, IntNetwork, IntSynapse
from .counts import LayerCounts, stored_synapses
from .mapping import CoreMap, LayerSpec, layer_specs, map_cores
from ..errors import ProfileError
from .profiles import Profile

LAVA_DL = "lava-nc/lava-dl @d825ac5, tutorials/lava/lib/dl/netx/"


@dataclass(frozen=True)
class Published:
    """One published compile: the cores Intel's compiler gave each layer, input first.

    Attributes:
        name: the tutorial network.
        source: notebook and cell of the compiler table.
        layer_cores: cores per layer as printed (the table lists the output first; here input first).
        input_encoder: True when the table includes an on-chip input layer (rate encoder) that a slipsnn
            network does not have (slipsnn's 8-bit input comes from the host); it is mapped as neurons only.
    """

    name: str
    source: str
    layer_cores: tuple[int, ...]
    input_encoder: bool = False

    @property
    def cores(self) -> int:
        return sum(self.layer_cores)


PUBLISHED = (
    Published("netx MNIST (dense 784-128-64-10)", LAVA_DL + "mnist/run.ipynb cell 21", (3, 1, 1)),
    Published("netx Oxford (dense 200-256-200)", LAVA_DL + "oxford/run.ipynb cell 12", (3, 2)),
    Published("PilotNet SDNN (5 conv + 4 dense)", LAVA_DL + "pilotnet_sdnn/benchmark.ipynb cell 13",
              (25, 13, 3, 3, 2, 12, 1, 1, 1)),
    Published("PilotNet LIF SNN (input + 5 conv + 4 dense)", LAVA_DL + "pilotnet_snn/benchmark.ipynb cell 15",
              (13, 25, 13, 3, 3, 2, 12, 1, 1, 1), input_encoder=True),
)

# PilotNet LIF on one Loihi 2 chip, 16 steps per frame (pilotnet_snn/benchmark.ipynb cells 17, 23, 24).
PILOTNET_FPS = 408.91
PILOTNET_STEPS = 16
PILOTNET_TOTAL_MJ = 1.661103
PILOTNET_DYNAMIC_MJ = 1.093544


def _dense(source: int, out: int, inp: int) -> IntSynapse:
    return IntSynapse(source, SynapseKind.DENSE, np.full((out, inp), 2, dtype=np.int32))


def _conv(source: int, c_out: int, c_in: int, stride=(1, 1), padding=(0, 0)) -> IntSynapse:
    return IntSynapse(source, SynapseKind.CONV, np.full((c_out, c_in, 3, 3), 2, dtype=np.int32), stride=stride,
                      padding=padding)


def _layer(name: str, shape: tuple[int, ...], syn: IntSynapse, last: bool = False) -> IntLayer:
    return IntLayer(name, shape, (syn,), NeuronKind.ACCUMULATE if last else NeuronKind.IF_SOFT, 64,
                    np.zeros(shape[0], dtype=np.int32), 0, 0, 64.0)


def _net(input_shape: tuple[int, int, int], layers: list[IntLayer], arch: str) -> IntNetwork:
    return IntNetwork(input_shape, tuple(layers), 16, 16, {"arch": arch})


def mnist_netx() -> IntNetwork:
    """lava-dl's netx MNIST network (trained_mnist_network.net): dense 784 → 128 → 64 → 10."""
    return _net((1, 28, 28), [_layer("fc1", (128,), _dense(-1, 128, 784)), _layer("fc2", (64,), _dense(0, 64, 128)),
                              _layer("fc3", (10,), _dense(1, 10, 64), last=True)], "netx-mnist")


def oxford_netx() -> IntNetwork:
    """lava-dl's netx Oxford network (Trained/network.net): dense 200 → 256 → 200 (input as (1, 1, 200))."""
    return _net((1, 1, 200), [_layer("fc1", (256,), _dense(-1, 256, 200)),
                              _layer("fc2", (200,), _dense(0, 200, 256), last=True)], "netx-oxford")


def pilotnet() -> IntNetwork:
    """PilotNet as in lava-dl's pilotnet_snn/pilotnet_sdnn network.net: 3×66×200 input, 5 conv, 4 dense."""
    layers = [_layer("conv1", (24, 32, 99), _conv(-1, 24, 3, (2, 2))),
              _layer("conv2", (36, 15, 49), _conv(0, 36, 24, (2, 2))),
              _layer("conv3", (48, 7, 24), _conv(1, 48, 36, (2, 2))),
              _layer("conv4", (64, 4, 22), _conv(2, 64, 48, (2, 1), (1, 0))),
              _layer("conv5", (64, 2, 20), _conv(3, 64, 64)),
              _layer("fc1", (100,), _dense(4, 100, 2560)), _layer("fc2", (50,), _dense(5, 50, 100)),
              _layer("fc3", (10,), _dense(6, 10, 50)), _layer("fc4", (1,), _dense(7, 1, 10), last=True)]
    return _net((3, 66, 200), layers, "pilotnet")


def tutorial_specs(pub: Published) -> tuple[LayerSpec, ...]:
    """The per-layer description of a published network (with its on-chip input encoder when it has one)."""
    net = {"netx MNIST": mnist_netx, "netx Oxford": oxford_netx}.get(pub.name.split(" (")[0], pilotnet)()
    specs = layer_specs(net)
    return ((LayerSpec("input encoder", net.input_shape),) + specs) if pub.input_encoder else specs


@dataclass(frozen=True)
class CalibrationRow:
    """slipsnn's estimate beside one published compile (cores at the budgets' value and their range ends)."""

    published: Published
    estimate: CoreMap
    fewest: CoreMap
    most: CoreMap

    @property
    def error(self) -> float:
        """(estimate − published) / published."""
        return self.estimate.total_cores / self.published.cores - 1.0


def calibration_rows(profile: Profile) -> list[CalibrationRow]:
    """Map every published network on ``profile`` (a Loihi 2 profile) and pair it with Intel's figure."""
    rows = []
    for pub in PUBLISHED:
        specs = tutorial_specs(pub)
        rows.append(CalibrationRow(pub, map_cores(specs, profile), map_cores(specs, profile, "fewest"),
                                   map_cores(specs, profile, "most")))
    return rows


def pilotnet_counts(rate: float, timesteps: int = PILOTNET_STEPS) -> tuple[LayerCounts, ...]:
    """Counts of PilotNet (with its input encoder) if every neuron fired at ``rate`` spikes per step.

    The published PilotNet figures give no per-layer activity, so the energy sanity check brackets it with
    a range of uniform rates: spikes = neurons · t · rate; a layer's synops = its stored synapses · t ·
    rate (each source spike drives its fan-out), the encoder's own input taken as graded, one per pixel.
    """
    net = pilotnet()
    syn = stored_synapses(net)
    enc = int(np.prod(net.input_shape))
    counts = [LayerCounts("input encoder", enc, timesteps, enc * timesteps * rate, float(enc * timesteps), 0)]
    for layer, s in zip(net.layers, syn):
        spikes = 0.0 if not layer.spiking else layer.num_neurons * timesteps * rate
        counts.append(LayerCounts(layer.name, layer.num_neurons, timesteps, spikes, float(s) * timesteps * rate, 0))
    return tuple(counts)


@dataclass(frozen=True)
class PilotNetCheck:
    """slipsnn's PilotNet energy (mJ per frame) and step (µs) if every neuron fired at ``rate``."""

    rate: float
    dynamic_mj: float
    dynamic_range_mj: tuple[float, float]
    step_us: float
    step_range_us: tuple[float, float]
    busiest: str


def pilotnet_check(profile: Profile, rates: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2)) -> list[PilotNetCheck]:
    """The end-to-end sanity check against the published PilotNet figures (docs/reports.md).

    The step is the most loaded core's (``mapping.step_estimate``) without the profile's measured cap,
    so it can be set beside the measured 153 µs.
    """
    from .energy import snn_energy
    from .mapping import step_estimate
    pub = next(p for p in PUBLISHED if p.input_encoder)
    cmap = map_cores(tutorial_specs(pub), profile)
    out = []
    for rate in rates:
        counts = pilotnet_counts(rate)
        est = step_estimate(cmap, counts, profile)
        if est is None:
            raise ProfileError(f"profile {profile.name!r} ({profile.path}) has no per-op times; the check needs them")
        e = {end: snn_energy(counts, profile, end=end).dynamic_pj / 1e9 for end in ("value", "low", "high")}
        out.append(PilotNetCheck(rate, e["value"], (e["low"], e["high"]), est.step_us, est.step_range_us,
                                 est.busiest.name))
    return out

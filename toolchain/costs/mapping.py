"""Where a network sits on a chip and how long a step takes: a partition of every layer over cores (pure).

The model works on a minimal per-layer description (``LayerSpec``: neuron shape, incoming synapse shapes),
so a network slipsnn did not write (a NIR graph, the lava-dl tutorials) is mapped the same way as an
``IntNetwork`` (``layer_specs``). Per layer, on a profile's ``[core]`` budgets:

* **dense** layer of n neurons and fan-in F, split over k cores (n_k = ceil(n / k) neurons each):
      synapse bytes per core = F · roundup(n_k · bytes_per_synapse, word_bytes)
  the smallest k with n_k ≤ neurons_per_core, those bytes ≤ synapse_memory_per_core and F ≤ axons_in_per_core.
  Every weight is stored, zeros included (the Loihi 2 compiles store a dense matrix whole, docs/reports.md).
* **conv** layer (C, H, W): tiles of c × h × x neurons, x a power of two (then h; then fewer channels c), the
  first that fits: tile neurons ≤ conv_neurons_per_core and the tile's kernel memory ≤ synapse_memory_per_core.
  With ``conv_bytes_per_weight`` the kernel is **shared** by every neuron of a core (Loihi 2's conv
  synapses: the compile logs show per-core synapse memory independent of the tile size) and replicated
  in each core:  bytes = (C_in/g) · kH · kW · groups touched · roundup(min(c, C_out/g) · bytes_per_weight, word)
  (rows narrower than a word, c · bytes_per_weight < word, are assumed packed together: no log shows them).
  Without it, conv synapses are stored expanded (Loihi 1): the tile's share of the layer's stored synapses.
* a layer with no synapses (an on-chip input encoder) is tiled like a conv by its neurons only.

Cores are numbered in layer order and filled chip by chip (a layer may straddle two chips).
The time-step estimate follows from the most loaded core, when the profile gives per-op times:

    t_core = synops/core · t_synop + neurons/core · t_update + spikes/core · t_spike     (per step)
    step   = max over layers of t_core + t_sync          (activity spread evenly over a layer's cores)

    latency = (t + depth) · step,   throughput = 1 / (t · step)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from ..errors import SlipsnnError
from ..ir.formats import SynapseKind
from ..ir.geometry import SynapseLike
from ..ir.floating import SpikingNetwork
from ..ir.integer import IntNetwork
from ..kernels.connectivity import synapse_fanout
from .profiles import Profile, ProfileKind, require_kind

RANGE_ENDS = ("value", "low", "high")
MAP_ENDS = ("value", "fewest", "most")   # budgets read where they give the fewest / the most cores


@dataclass(frozen=True)
class SynapseSpec:
    """The shape of one incoming synapse, all the mapping needs.

    Attributes:
        kind: ``"conv"`` or ``"dense"``.
        in_shape: shape of the source population, (C, H, W) or (N,).
        weight_shape: conv (C_out, C_in/groups, kH, kW); dense (out, in).
        groups: conv groups.
        stored: synapses stored when conv kernels are expanded (non-zero weights × connections made);
            only the profiles without conv weight sharing read it. None: every weight × every output.
    """

    kind: str
    in_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]
    groups: int = 1
    stored: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("conv", "dense"):
            raise SlipsnnError(f"synapse kind {self.kind!r}; allowed: conv, dense")
        need = 4 if self.kind == "conv" else 2
        if len(self.weight_shape) != need or min(self.weight_shape) < 1:
            raise SlipsnnError(f"{self.kind} weight_shape {self.weight_shape}: needs {need} positive sizes")

    @property
    def fan_in(self) -> int:
        """Input axons a dense synapse needs: its input size."""
        return int(math.prod(self.in_shape))


@dataclass(frozen=True)
class LayerSpec:
    """One neuron population and its incoming synapses (``synapses[0]`` decides conv vs dense).

    Attributes:
        name: layer name.
        shape: neuron shape, (C, H, W) or (N,).
        synapses: incoming synapses; empty for an input encoder placed on the chip.
    """

    name: str
    shape: tuple[int, ...]
    synapses: tuple[SynapseSpec, ...] = ()

    @property
    def neurons(self) -> int:
        return int(math.prod(self.shape))

    @property
    def kind(self) -> str:
        if not self.synapses:
            return "input"
        return "conv" if self.synapses[0].kind == "conv" and len(self.shape) == 3 else "dense"


@dataclass(frozen=True)
class LayerPartition:
    """How one layer is split over cores.

    Attributes:
        name, kind: the layer and how it was mapped (``conv``, ``dense``, ``input``).
        neurons: neurons of the layer.
        cores: cores it uses.
        tile: neurons of its fullest core as a shape ((c, h, w) for conv and input, (n,) for dense).
        synapse_bytes_per_core: synapse memory of its fullest core.
        axons_in_per_core: input axons of a dense core (0 for conv: its axons are shared).
        bound: the budget that set the core count: ``neurons``, ``synapse memory`` or ``axons in``.
        first_core: global index of its first core (layers are placed in order).
        fits: False when even one neuron per core exceeds the memory or axon budget (then the fan-in is
            assumed split over ``cores`` cores whose partial sums are added, which slipsnn does not export).
    """

    name: str
    kind: str
    neurons: int
    cores: int
    tile: tuple[int, ...]
    synapse_bytes_per_core: float
    axons_in_per_core: int
    bound: str
    first_core: int
    fits: bool = True

    @property
    def neurons_per_core(self) -> int:
        return int(math.prod(self.tile))


@dataclass(frozen=True)
class CoreMap:
    """The partition of a network over cores and chips on one profile."""

    profile: str
    layers: tuple[LayerPartition, ...]
    cores_per_chip: int
    weight_sharing: bool

    @property
    def total_cores(self) -> int:
        return sum(layer.cores for layer in self.layers)

    @property
    def chips(self) -> int:
        return max(1, math.ceil(self.total_cores / self.cores_per_chip))

    def chips_of(self, layer: LayerPartition) -> tuple[int, int]:
        """(first, last) chip index a layer's cores sit on."""
        return layer.first_core // self.cores_per_chip, (layer.first_core + layer.cores - 1) // self.cores_per_chip


class ActivityLike(Protocol):
    """What the step estimate reads of a layer's counts (``counts.LayerCounts`` fits)."""

    name: str
    timesteps: int
    spikes: float
    synops: float


@dataclass(frozen=True)
class CoreLoad:
    """Per-step work of the fullest core of one layer, and its time (µs) at the three ends of the op times."""

    name: str
    synops: float
    neurons: int
    spikes: float
    time_us: float
    time_range_us: tuple[float, float]


@dataclass(frozen=True)
class StepEstimate:
    """The time-step that follows from the most loaded core (µs), with the per-layer loads."""

    loads: tuple[CoreLoad, ...]
    sync_us: float
    sync_range_us: tuple[float, float]

    @property
    def busiest(self) -> CoreLoad:
        return max(self.loads, key=lambda c: c.time_us)

    @property
    def step_us(self) -> float:
        return self.busiest.time_us + self.sync_us

    @property
    def step_range_us(self) -> tuple[float, float]:
        return (max(c.time_range_us[0] for c in self.loads) + self.sync_range_us[0],
                max(c.time_range_us[1] for c in self.loads) + self.sync_range_us[1])


@dataclass(frozen=True)
class ChipTiming:
    """Latency and throughput on one profile for t steps (µs, samples/s); ranges follow the step time's range.

    Attributes:
        profile, timesteps, depth: what was timed.
        step_time_us, step_time_range_us: the step used (the most loaded core's estimate when the profile
            has per-op times, else the profile's ``step_time``).
        source: ``"most loaded core"`` or ``"profile step_time"``.
        busiest_layer: the layer whose core sets the step (None without an estimate).
    """

    profile: str
    timesteps: int
    depth: int
    step_time_us: float
    step_time_range_us: tuple[float, float]
    source: str = "profile step_time"
    busiest_layer: str | None = None

    @property
    def latency_us(self) -> float:
        """(t + depth) · step_time: each layer adds one step of pipeline latency."""
        return (self.timesteps + self.depth) * self.step_time_us

    @property
    def latency_range_us(self) -> tuple[float, float]:
        lo, hi = self.step_time_range_us
        return (self.timesteps + self.depth) * lo, (self.timesteps + self.depth) * hi

    @property
    def throughput_per_s(self) -> float:
        """1 / (t · step_time): one sample every t steps when streaming."""
        return 1e6 / (self.timesteps * self.step_time_us)

    @property
    def throughput_range_per_s(self) -> tuple[float, float]:
        lo, hi = self.step_time_range_us
        return 1e6 / (self.timesteps * hi), 1e6 / (self.timesteps * lo)


def synapse_spec(s: SynapseLike, src_shape: Sequence[int], fanout: np.ndarray | None = None) -> SynapseSpec:
    """The mapping's view of one IR synapse (integer or float) from a population of ``src_shape``: its
    stored synapses counted exactly, conv expanded (from ``fanout``, its ``synapse_fanout``, when already known)."""
    src = tuple(int(d) for d in src_shape)
    kind = "conv" if s.kind is SynapseKind.CONV else "dense"
    shape = tuple(s.weight.shape) if kind == "conv" else (int(s.weight.shape[0]), int(np.prod(src)))
    stored = synapse_fanout(s, src) if fanout is None else fanout
    return SynapseSpec(kind, src, shape, int(s.groups), int(stored.sum()))


def layer_specs(net: IntNetwork | SpikingNetwork) -> tuple[LayerSpec, ...]:
    """The per-layer description of an ``IntNetwork`` or a (float) ``SpikingNetwork``: a network is mapped
    before it is quantized."""
    return tuple(LayerSpec(layer.name, tuple(layer.shape),
                           tuple(synapse_spec(s, net.source_shape(s.source)) for s in layer.synapses))
                 for layer in net.layers)


def _roundup(x: float, step: float) -> float:
    return math.ceil(x / step - 1e-9) * step


def _budgets(profile: Profile, end: str) -> dict[str, float | None]:
    core = profile.core
    # capacities give the fewest cores at their high end; per-synapse costs at their low end
    cap = {"value": "value", "fewest": "high", "most": "low"}[end]
    cost = {"value": "value", "fewest": "low", "most": "high"}[end]
    opt = lambda c, e: None if c is None else c.pick(e)
    return {"n": core.neurons_per_core.pick(cap), "mem": core.synapse_memory_per_core.pick(cap),
            "bps": core.bytes_per_synapse.pick(cost), "cpc": core.cores_per_chip.base,
            "n_conv": opt(core.conv_neurons_per_core, cap) or core.neurons_per_core.pick(cap),
            "cbw": opt(core.conv_bytes_per_weight, cost), "word": opt(core.word_bytes, "value") or 1.0,
            "axons": opt(core.axons_in_per_core, cap)}


def _dense_bytes(spec: LayerSpec, n_core: int, b: dict) -> float:
    return sum(s.fan_in * _roundup(n_core * b["bps"], b["word"]) for s in spec.synapses)


def _map_dense(spec: LayerSpec, b: dict) -> tuple[int, tuple[int, ...], float, int, str, bool]:
    n, fan_in = spec.neurons, sum(s.fan_in for s in spec.synapses)
    axons_ok = b["axons"] is None or fan_in <= b["axons"]
    k = max(1, math.ceil(n / b["n"]))
    bound = "neurons"
    while k <= n:
        n_core = math.ceil(n / k)
        if axons_ok and _dense_bytes(spec, n_core, b) <= b["mem"]:
            return k, (n_core,), _dense_bytes(spec, n_core, b), fan_in, bound, True
        bound = "synapse memory"
        k += 1 if k < 64 else max(1, k // 16)     # coarse steps for huge layers; the count stays an upper bound
    # one neuron per core still does not fit: split its fan-in as well (an assumption, see LayerPartition.fits)
    per_neuron = _dense_bytes(spec, 1, b)
    split = max(math.ceil(per_neuron / b["mem"]), 1 if axons_ok else math.ceil(fan_in / b["axons"]))
    return n * split, (1,), per_neuron / split, math.ceil(fan_in / split), \
        "synapse memory" if axons_ok else "axons in", False


def _conv_bytes(spec: LayerSpec, tile: tuple[int, int, int], b: dict) -> float:
    c, h, x = tile
    total = 0.0
    for s in spec.synapses:
        if s.kind == "dense":
            total += s.fan_in * _roundup(c * h * x * b["bps"], b["word"])
        elif b["cbw"] is not None:                         # weight sharing: the kernel once per core
            c_out, c_in_g, kh, kw = s.weight_shape
            per_group = max(1, c_out // s.groups)
            groups = max(1, math.ceil(c / per_group))
            rows, width = c_in_g * kh * kw * groups, min(c, per_group) * b["cbw"]
            if width >= b["word"]:          # a row of the tile's output channels in whole words (the logs)
                total += rows * _roundup(width, b["word"])
            else:                           # narrower than a word: rows packed together (assumed; not in the logs)
                total += _roundup(rows * width, b["word"])
        else:                                              # expanded: the tile's share of the stored synapses
            stored = s.stored if s.stored is not None else math.prod(s.weight_shape[1:]) * spec.neurons
            total += stored * b["bps"] * (c * h * x) / spec.neurons
    return total


def _tiles(shape: tuple[int, int, int]):
    """Candidate tiles (c, h, x), biggest first within each channel count: x a power of two over all rows
    (Intel's PilotNet compile splits columns so), then fewer rows; then the same with fewer channels (a power
    of two), which is what a kernel too big for one core needs: its memory depends on c alone."""
    C, H, W = shape
    below = lambda n: [2 ** k for k in range(int(math.log2(n)), -1, -1) if 2 ** k < n]   # powers of two < n
    for c in [C, *below(C)]:
        for x in [2 ** k for k in range(int(math.log2(W)), -1, -1)]:
            yield c, H, x
        for h in below(H):
            yield c, h, 1


def _map_conv(spec: LayerSpec, b: dict) -> tuple[int, tuple[int, ...], float, int, str, bool]:
    C, H, W = spec.shape
    bound = "neurons"
    last = None
    for c, h, x in _tiles((C, H, W)):
        tile = (c, min(h, H), min(x, W))
        mem = _conv_bytes(spec, tile, b) if spec.synapses else 0.0
        last = tile, mem
        if math.prod(tile) > b["n_conv"]:
            continue
        if mem > b["mem"]:
            bound = "synapse memory"
            continue
        cores = math.ceil(W / x) * math.ceil(H / h) * math.ceil(C / c)
        return cores, tile, mem, 0, bound, True
    tile, mem = last
    split = math.ceil(mem / b["mem"])
    return spec.neurons * split, tile, mem / split, 0, "synapse memory", False


def map_cores(specs: Sequence[LayerSpec] | IntNetwork | SpikingNetwork, profile: Profile,
              end: str = "value") -> CoreMap:
    """Partition every layer over cores and chips on a neuromorphic profile (module docstring).

    Args:
        specs: the per-layer description (``layer_specs``), or an ``IntNetwork`` / ``SpikingNetwork``.
        profile: a neuromorphic profile (its ``[core]`` budgets).
        end: ``"value"``, or ``"fewest"``/``"most"``: every budget at the end of its range that gives the
            fewest (most) cores: capacities at their high (low) end, per-synapse sizes at their low (high) end.

    Example:
        >>> m = map_cores(layer_specs(net), load_profile("loihi2"))             # doctest: +SKIP
        >>> m.total_cores, m.chips, m.layers[0].tile                          # doctest: +SKIP
    """
    require_kind(profile, ProfileKind.NEUROMORPHIC)
    if end not in MAP_ENDS:
        raise SlipsnnError(f"mapping end {end!r}; allowed: {', '.join(MAP_ENDS)}")
    if isinstance(specs, (IntNetwork, SpikingNetwork)):
        specs = layer_specs(specs)
    b = _budgets(profile, end)
    layers, first = [], 0
    for spec in specs:
        mapper = _map_conv if spec.kind in ("conv", "input") and len(spec.shape) == 3 else _map_dense
        if spec.kind == "input" and len(spec.shape) != 3:
            mapper = _map_dense
        cores, tile, mem, axons, bound, fits = mapper(spec, b)
        layers.append(LayerPartition(spec.name, spec.kind, spec.neurons, int(cores), tuple(int(t) for t in tile),
                                     float(mem), int(axons), bound, first, fits))
        first += int(cores)
    return CoreMap(profile.name, tuple(layers), int(b["cpc"]), b["cbw"] is not None)


def step_estimate(cores: CoreMap, counts: Sequence[ActivityLike], profile: Profile) -> StepEstimate | None:
    """The time-step set by the most loaded core; None when the profile has no per-op times.

    Args:
        cores: the partition (``map_cores``), one entry per layer of ``counts``.
        counts: per-layer activity over ``timesteps`` steps (``counts.LayerCounts`` or anything with
            ``name``, ``timesteps``, ``spikes``, ``synops``).
        profile: the profile whose ``[timing]`` gives ``synop_time``, ``neuron_update_time``,
            ``spike_time`` (and optionally ``sync_time``).
    """
    ops = profile.op_times
    if not all(k in ops for k in ("synop_time", "neuron_update_time", "spike_time")):
        return None
    if len(counts) != len(cores.layers):
        raise SlipsnnError(f"{len(counts)} layers of counts for a partition of {len(cores.layers)} layers")
    loads = []
    for part, c in zip(cores.layers, counts):
        syn, spk = c.synops / c.timesteps / part.cores, c.spikes / c.timesteps / part.cores
        t = {end: syn * ops["synop_time"].pick(end) + part.neurons_per_core * ops["neuron_update_time"].pick(end)
             + spk * ops["spike_time"].pick(end) for end in RANGE_ENDS}
        loads.append(CoreLoad(part.name, float(syn), part.neurons_per_core, float(spk), t["value"],
                              (t["low"], t["high"])))
    sync = ops.get("sync_time")
    return StepEstimate(tuple(loads), sync.base if sync else 0.0, sync.base_range if sync else (0.0, 0.0))


def chip_timing(profile: Profile, timesteps: int, depth: int, estimate: StepEstimate | None = None) -> ChipTiming:
    """Latency and throughput of t steps through a pipeline of ``depth`` layers on a neuromorphic profile.

    With an ``estimate`` (``step_estimate``) the step is the most loaded core's; its range runs from the
    estimate's low end to the larger of its high end and the profile's ``step_time`` high end (a measured
    step that includes host I/O, which the core estimate leaves out).
    """
    require_kind(profile, ProfileKind.NEUROMORPHIC)
    if estimate is None:
        return ChipTiming(profile.name, int(timesteps), int(depth), profile.step_time.base,
                          profile.step_time.base_range)
    lo, hi = estimate.step_range_us
    return ChipTiming(profile.name, int(timesteps), int(depth), estimate.step_us,
                      (lo, max(hi, profile.step_time.base_range[1])), "most loaded core", estimate.busiest.name)

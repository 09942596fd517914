"""Energy per inference: activity counts times the per-operation energies of a chip profile (pure).

    E_SNN = Σ_l synops·E_synop + spikes·E_spike + active·E_upd,act + inactive·E_upd,inact
            + P_static · chips · latency                                            (when the profile has P_static)
    E_ANN = Σ_l MACs · E_MAC

docs/reports.md gives the sources of the constants and what the estimate leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Sequence

from ..ir.integer import IntNetwork
from .counts import LayerCounts
from .profiles import Profile, ProfileKind, require_kind


SNN_OPS = ("synop", "neuron_update_active", "neuron_update_inactive", "spike")   # dynamic energy terms


PJ_PER_MW_US = 1e3   # 1 mW · 1 µs = 1 nJ = 1000 pJ


@dataclass(frozen=True)
class Energy:
    """Energy per inference (per sample) on one profile, in pJ.

    Attributes:
        profile: profile name.
        by_layer: one ``{op: pJ}`` per layer.
        static_pj: static energy of the chips in use over the latency (0 when the profile has none).
    """

    profile: str
    by_layer: tuple[Mapping[str, float], ...]
    static_pj: float = 0.0

    @property
    def by_op(self) -> dict[str, float]:
        """Dynamic energy summed over layers, per op."""
        ops: dict[str, float] = {}
        for layer in self.by_layer:
            for op, e in layer.items():
                ops[op] = ops.get(op, 0.0) + e
        return ops

    @property
    def layer_totals(self) -> list[float]:
        return [float(sum(layer.values())) for layer in self.by_layer]

    @property
    def dynamic_pj(self) -> float:
        return float(sum(self.layer_totals))

    @property
    def total_pj(self) -> float:
        return self.dynamic_pj + self.static_pj


def snn_energy(counts: Sequence[LayerCounts], profile: Profile, latency_us: float = 0.0, chips: int = 1,
               end: str = "value") -> Energy:
    """Energy per inference of the spiking network on a neuromorphic profile.

    Args:
        counts: per-layer counts (``count_layers``).
        profile: a neuromorphic profile.
        latency_us: time the chips are held per inference (``ChipTiming.latency_us``); static energy is
            ``P_static · chips · latency`` when the profile has static power.
        chips: chips in use (``CoreMap.chips``).
        end: ``"value"``, or ``"low"``/``"high"``: every energy constant at that end of its range (the
            caller passes the latency of the same end), so two calls bracket what the assumptions span.

    ``counts`` may be written by hand for a network slipsnn did not run: a ``LayerCounts`` needs only the
    layer's neurons, steps, spikes and synops per sample (docs/reports.md "Costing another network").
    """
    require_kind(profile, ProfileKind.NEUROMORPHIC)
    e = {op: profile.energy_pj(op, end) for op in SNN_OPS}
    by_layer = tuple(MappingProxyType({
        "synop": c.synops * e["synop"],
        "neuron_update_active": c.active_updates * e["neuron_update_active"],
        "neuron_update_inactive": c.inactive_updates * e["neuron_update_inactive"],
        "spike": c.spikes * e["spike"],
    }) for c in counts)
    static = profile.static_power.pick(end) * chips * latency_us * PJ_PER_MW_US if profile.static_power else 0.0
    return Energy(profile.name, by_layer, float(static))


def ann_energy(counts: Sequence[LayerCounts], profile: Profile, end: str = "value") -> Energy:
    """Energy per inference of the ANN: Σ MACs · E_MAC (first layer included) on an ``ann`` profile."""
    require_kind(profile, ProfileKind.ANN)
    e_mac = profile.energy_pj("mac", end)
    return Energy(profile.name, tuple(MappingProxyType({"mac": c.macs * e_mac}) for c in counts))


def literature_snn_energy(net: IntNetwork, counts: Sequence[LayerCounts], profile: Profile) -> Energy | None:
    """The SNN papers' estimate on an ``ann`` profile: binary-input synops × E_add, graded-input synops × E_MAC.

    The first layer reads the 8-bit image (a multiply per event); every other layer reads binary spikes
    (an accumulate). Neuron updates and spikes are not counted, as in the papers. None when the profile
    has no ``add`` energy.
    """
    require_kind(profile, ProfileKind.ANN)
    if "add" not in profile.energy:
        return None
    e_mac, e_add = profile.energy_pj("mac"), profile.energy_pj("add")
    graded = [any(s.source < 0 for s in layer.synapses) for layer in net.layers]
    return Energy(profile.name, tuple(MappingProxyType({"mac": c.synops * e_mac} if g else {"add": c.synops * e_add})
                                      for c, g in zip(counts, graded)))

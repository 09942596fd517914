"""What the fast simulator proved about a network: which synapses and membranes run in float32 (exact) and which
fall back to float64 (``backends.exactness``)."""

from __future__ import annotations

from typing import Sequence

from ..backends.exactness import FLOAT32_EXACT, LayerProof
from ..tables import Column, format_table


def exactness_summary(proofs: Sequence[LayerProof], timesteps: int) -> str:
    """One line: how many synapse groups and membranes are proven exact in float32 for runs of ≤ ``timesteps``."""
    groups = [s for p in proofs for s in p.synapses]
    merged = sum(len(s.indices) - 1 for s in groups)
    line = (f"fast backend, T ≤ {timesteps}: float32 proven exact (every partial sum ≤ 2^24) for "
            f"{sum(s.float32 for s in groups)} of {len(groups)} synapses and {sum(p.float32 for p in proofs)} of "
            f"{len(proofs)} membranes")
    rest = len(groups) - sum(s.float32 for s in groups) + len(proofs) - sum(p.float32 for p in proofs)
    return line + ("; the rest run in float64" if rest else "") + (f"; {merged} parallel synapse copies merged"
                                                                   if merged else "")


def format_exactness(proofs: Sequence[LayerProof]) -> str:
    """A table per layer: each synapse group's bound Σ|W|·x_max and type, the drive and membrane bounds."""
    columns = [Column("#", 2), Column("layer", 20, "<", clip=True), Column("synapses: Σ|W|·x_max (type)", 44, "<"),
               Column("drive bound", 11), Column("|v| bound", 10), Column("membrane", 11, "<")]
    rows = []
    for p in proofs:
        syns = ", ".join(f"{'+'.join(map(str, s.indices))}: {s.abs_bound}"
                         f" ({'f32' if s.float32 else 'f64, wraps' if s.wraps else 'f64'})" for s in p.synapses)
        rows.append([p.layer, p.name, syns, p.drive_bound, p.state_bound,
                     ("f32" if p.float32 else "f64") + (", clamps" if p.saturates else "")])
    note = f"\n(float32 is exact for integers up to {FLOAT32_EXACT}"
    if any(p.saturates and p.bound.ok for p in proofs):
        note += "; 'clamps': the 24-bit saturation may act on a layer fed by the image alone, which cannot change " \
                "its spikes, so its |v| bound is one step's"
    return "\n".join(format_table(columns, rows)) + note + ")"

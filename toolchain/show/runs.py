"""Text of run results: the accuracy chain across stages, and the verdict of a backend comparison."""

from __future__ import annotations

from ..backends.result import Mismatch
from ..tables import Column, format_table


def format_chain(chain: dict[str, dict[int, float] | float]) -> str:
    """The accuracy chain as a table (percent): one row per stage, one column per T."""
    stages = [k for k in chain if k != "ann"]
    ts = sorted(next(iter(chain[s] for s in stages)))  # type: ignore[arg-type]
    columns = [Column("stage", 12, "<")] + [Column(f"T={t}", 9, gap=0) for t in ts]
    rows = [["ANN"] + [f"{100 * float(chain['ann']):.2f}"] * len(ts)]  # type: ignore[arg-type]
    rows += [[s] + [f"{100 * chain[s][t]:.2f}" for t in ts] for s in stages]  # type: ignore[index]
    return "\n".join(format_table(columns, rows))


def mismatch_summary(m: Mismatch) -> str:
    """One line per kind of disagreement, or the all-clear."""
    if m.total == 0:
        return "0 mismatches: predictions, per-layer spike counts, synaptic events and outputs are bit-identical"
    parts = [f"{len(m.predictions)} predictions (samples {m.predictions[:5]})",
             f"{len(m.spikes)} spike counts (sample, layer, step) {m.spikes[:3]}",
             f"{len(m.synops)} synaptic-event counts", f"{len(m.logits)} output traces"]
    return "MISMATCH: " + "; ".join(parts)

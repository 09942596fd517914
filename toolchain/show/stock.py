"""Text of a stock netx file's report (``pipeline.report_stock_file``): activity, energy and latency per t."""

from __future__ import annotations

from typing import Any

from ..tables import Column, format_table


def format_stock_report(rep: Any) -> str:
    """Per t: accuracy, then per layer spikes, firing rate and synaptic events per sample; energy and latency
    per profile; first the cores and chips per profile. ``rep`` is a ``pipeline.StockReport``."""
    lines = [f"{rep.path}: stock netx file ({rep.writer}), run through stock lava-dl netx on "
             f"{len(rep.run.labels)} samples"]
    if rep.cores:
        lines += [""] + format_table([Column("profile", 0, "<"), Column("cores"), Column("chips"),
                                      Column("cores per layer", 0, "<")],
                                     [[name, m.total_cores, m.chips, " ".join(str(part.cores) for part in m.layers)]
                                      for name, m in rep.cores.items()])
    for t, acc, counts, energy, timing in rep.steps:
        lines += ["", f"T={t}: accuracy {100 * acc:.2f} %"]
        lines += format_table([Column("layer", 0, "<"), Column("neurons"), Column("spikes/sample"), Column("rate"),
                               Column("synops/sample")],
                              [[c.name, c.neurons, f"{c.spikes:.1f}", f"{c.firing_rate:.4f}", f"{c.synops:.1f}"]
                               for c in counts])
        lines += format_table([Column("profile", 0, "<"), Column("energy µJ/inference"), Column("latency µs"),
                               Column("samples/s")],
                              [[name, f"{energy[name].total_pj * 1e-6:.4f}", f"{timing[name].latency_us:.1f}",
                                f"{timing[name].throughput_per_s:.0f}"] for name in energy])
    return "\n".join(lines)

"""Text of the Loihi 2 calibration: slipsnn's core estimate beside Intel's published compiles, and the
PilotNet energy sanity check (computes nothing; ``costs.calibration`` holds the numbers)."""

from __future__ import annotations

from typing import Sequence

from ..costs.calibration import (PILOTNET_DYNAMIC_MJ, PILOTNET_FPS, PILOTNET_STEPS, CalibrationRow,
                                 PilotNetCheck)
from ..tables import Column, format_table


def format_calibration(rows: Sequence[CalibrationRow]) -> str:
    """One line per published network (cores: Intel, slipsnn, range, error), then its layers."""
    cols = [Column("network", align="<"), Column("Intel cores"), Column("slipsnn"), Column("range"),
            Column("error"), Column("per layer, Intel", align="<"), Column("per layer, slipsnn", align="<")]
    body = [[r.published.name, r.published.cores, r.estimate.total_cores,
             f"{r.fewest.total_cores}–{r.most.total_cores}", f"{100 * r.error:+.0f} %",
             " ".join(map(str, r.published.layer_cores)), " ".join(str(p.cores) for p in r.estimate.layers)]
            for r in rows]
    return "\n".join(format_table(cols, body, rule=True))


def format_pilotnet_check(checks: Sequence[PilotNetCheck]) -> str:
    """The PilotNet energy and step time at a range of uniform firing rates, beside the measured figures."""
    cols = [Column("rate"), Column("dynamic mJ"), Column("range mJ"), Column("step µs"), Column("range µs"),
            Column("busiest core", align="<")]
    body = [[f"{c.rate:g}", f"{c.dynamic_mj:.3g}", f"{c.dynamic_range_mj[0]:.3g}–{c.dynamic_range_mj[1]:.3g}",
             f"{c.step_us:.3g}", f"{c.step_range_us[0]:.3g}–{c.step_range_us[1]:.3g}", c.busiest] for c in checks]
    head = (f"PilotNet LIF on one Loihi 2, {PILOTNET_STEPS} steps per frame; measured: {PILOTNET_DYNAMIC_MJ:.3g} mJ "
            f"dynamic per frame, {1e6 / (PILOTNET_FPS * PILOTNET_STEPS):.3g} µs per step ({PILOTNET_FPS} frames/s)")
    return "\n".join([head, *format_table(cols, body, rule=True)])

"""The quantization report of an exported network as a table (read from ``meta['quantization']``)."""

from __future__ import annotations

from ..ir.integer import IntNetwork
from ..tables import Column, format_table


def format_quant_report(net: IntNetwork) -> str:
    """A table of ``meta['quantization']``: scale, bits, exponent, errors and the 24-bit margin per layer."""
    columns = [Column("#", 2), Column("layer", 20, "<", clip=True), Column("scale", 9), Column("limited by", 11, "<"),
               Column("w bits", 6), Column("w exp", 6), Column("w err %", 8), Column("b err %", 8),
               Column("margin bits", 11)]
    rows = [[i, r["name"], f"{r['scale']:.2f}", r["limited_by"], r["weight_bits"], ",".join(map(str, r["weight_exps"])),
             f"{100 * r['weight_rel_error']:.3f}", f"{100 * r['bias_rel_error']:.3f}", f"{r['margin_bits']:.2f}"]
            for i, r in enumerate(net.meta.get("quantization", []))]
    return "\n".join(format_table(columns, rows))

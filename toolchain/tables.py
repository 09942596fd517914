"""The one text-table helper: fixed or fitted column widths, alignment, clipping and a rule under the header.

Every table slipsnn prints (network summary, quantization, accuracy chain, analysis, cost report) goes through
``format_table``; callers format their numbers into strings, this module only lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Column:
    """One column of a text table.

    Attributes:
        title: header text.
        width: minimum width in characters; 0 fits the widest cell (header included).
        align: ``">"`` right-aligned, ``"<"`` left-aligned.
        clip: cut cells longer than ``width`` (only with ``width > 0``).
        gap: spaces before this column (ignored for the first column).
    """

    title: str
    width: int = 0
    align: str = ">"
    clip: bool = False
    gap: int = 1


def format_table(columns: Sequence[Column], rows: Sequence[Sequence[object]], rule: bool = False) -> list[str]:
    """Lay out ``rows`` under ``columns``; returns the lines (header, an optional dashed rule, the rows).

    Example:
        >>> print("\\n".join(format_table([Column("name", align="<"), Column("n")], [["a", "10"]])))
        name  n
        a    10
    """
    cells = [[str(c) for c in row] for row in rows]
    for row in cells:
        if len(row) != len(columns):
            raise ValueError(f"table row has {len(row)} cells; the table has {len(columns)} columns")
    widths = []
    for k, col in enumerate(columns):
        texts = [col.title] + [row[k] for row in cells]
        fitted = max(len(t) for t in texts)
        widths.append(col.width if col.clip and col.width else max(col.width, fitted))

    def line(texts: Sequence[str]) -> str:
        out = []
        for k, (col, text) in enumerate(zip(columns, texts)):
            text = text[:widths[k]] if col.clip else text
            out.append(("" if k == 0 else " " * col.gap) + f"{text:{col.align}{widths[k]}}")
        return "".join(out)

    lines = [line([c.title for c in columns])]
    if rule:
        lines.append(line(["-" * w for w in widths]))
    return lines + [line(row) for row in cells]

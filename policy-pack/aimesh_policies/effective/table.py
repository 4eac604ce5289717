"""Plain-text tables for findings and reports: the diff of intended against effective."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

MAX_ROWS: Final = 12


def table(header: Sequence[str], rows: Sequence[Sequence[str]], limit: int = MAX_ROWS) -> str:
    """`header` and `rows` as aligned columns (`|`-separated), at most `limit` rows and a line
    saying how many more there are."""
    shown = [list(r) for r in rows[:limit]]
    widths = [len(h) for h in header]
    for row in shown:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        return "  " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    lines = [line(header), "  " + "-+-".join("-" * w for w in widths)]
    lines += [line(r) for r in shown]
    if len(rows) > limit:
        lines.append(f"  ... and {len(rows) - limit} more")
    return "\n".join(lines)


__all__ = ["table"]

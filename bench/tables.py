"""The benchmarks' markdown tables: a header row, then rows of cells, the first column left-aligned and the
others right-aligned, every column as wide as its widest cell."""

from __future__ import annotations

from collections.abc import Sequence


def print_markdown_table(table: Sequence[Sequence[str]]) -> None:
    """Print `table` (its first row the header) as an aligned markdown table."""
    head = table[0]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in table[1:]:
        print("| " + " | ".join(c.rjust(w) if i else c.ljust(w)
                                for i, (c, w) in enumerate(zip(row, widths, strict=True))) + " |")

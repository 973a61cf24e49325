"""The benchmarks' markdown tables: a header row, then rows of cells, the first `left` columns left-aligned and
the others right-aligned (numbers; marked so in the separator row, as the README's tables are), every column as
wide as its widest cell."""

from __future__ import annotations

from collections.abc import Sequence


def print_markdown_table(table: Sequence[Sequence[str]], *, left: int = 1) -> None:
    """Print `table` (its first row the header) as an aligned markdown table."""
    head = table[0]
    widths = [max(3, *(len(row[i]) for row in table)) for i in range(len(head))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) if i < left else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|")
    for row in table[1:]:
        print("| " + " | ".join(c.ljust(w) if i < left else c.rjust(w)
                                for i, (c, w) in enumerate(zip(row, widths, strict=True))) + " |")

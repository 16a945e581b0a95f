"""Markdown tables, the one writer of every report."""

from __future__ import annotations

import pandas as pd


def markdown_table(table: pd.DataFrame, index_name: str | None = "scenario") -> str:
    """``table`` as a Markdown table, its index as the first column (``index_name``; None: no
    index column). Cells are written as they are (format them first)."""
    header = [*([index_name] if index_name is not None else []), *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in zip(table.index, table.astype(object).values):
        cells = [*([str(index)] if index_name is not None else []), *map(str, row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

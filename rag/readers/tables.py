"""Tables as text a small model and a sentence picker can use: every row a list item that names its columns.

A table row means little without its header ("1.3 | Bo | 1996-12-12"), and a chunk can start in the middle of
a long table, far from the header. So each row is written with its header, as one line:
`- version: 1.3; codename: Bo; created: 1996-12-12`. The answer's sentence picker (`answer.evidence`) reads a
list item as one unit, so a row is never split, and never read without the names of its columns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

ROWS_PER_SECTION = 40
"""Rows per section of a spreadsheet or CSV file, so a citation names a short range ("rows 42-81")."""


def cell_text(value: object) -> str:
    """One cell as one line of text (None and empty give "")."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return re.sub(r"\s+", " ", str(value)).strip()


def row_line(header: Sequence[str], row: Sequence[str]) -> str:
    """ "- h1: v1; h2: v2" (empty cells left out); "- v1; v2" for columns without a name; "" for an empty row."""
    pairs = []
    for i, value in enumerate(row):
        if not value:
            continue
        name = header[i] if i < len(header) else ""
        pairs.append(f"{name}: {value}" if name and name != value else value)
    return "- " + "; ".join(pairs) if pairs else ""


def looks_like_header(row: Sequence[str]) -> bool:
    """Whether a first row names its columns: at least one cell, none of them a bare number."""
    cells = [c for c in row if c]
    return bool(cells) and not any(re.fullmatch(r"[-+]?[\d.,:/ %]+", c) for c in cells)


def table_lines(rows: Iterable[Sequence[object]], header: Sequence[str] | None = None) -> list[str]:
    """Rows -> one line each with its header. `header` None: the first row is the header when it looks like
    one (`looks_like_header`)."""
    lines: list[str] = []
    names: list[str] | None = list(header) if header is not None else None
    for raw in rows:
        row = [cell_text(v) for v in raw]
        if not any(row):
            continue
        if names is None:
            if looks_like_header(row):
                names = row
                continue
            names = []
        line = row_line(names, row)
        if line:
            lines.append(line)
    return lines

"""Tables from CSV files (the standard library's `csv`) and Excel workbooks (openpyxl, read-only).

Every row becomes one line naming its columns (`rag.readers.tables`); rows are grouped `ROWS_PER_SECTION` to a
section whose location is "rows 2-41" (CSV) or "sheet Prices, rows 2-41" (workbook), so a citation names the
rows. A file with more rows than `MAX_ROWS`, a workbook that unpacks to more than `MAX_XML_BYTES` (a zip bomb),
a damaged file or one with no cells gets one sentence.
"""

from __future__ import annotations

import csv
import io
import zipfile

from rag.decoding import decode_text
from rag.errors import IngestError
from rag.readers.tables import ROWS_PER_SECTION, cell_text, looks_like_header, row_line
from rag.records import Section

MAX_ROWS = 100_000
"""Most rows read from one file (a CSV of a million rows is a database export, not a document)."""
MAX_CELL_CHARS = 100_000
"""Longest cell (the csv module's own limit is 131,072; past it a file is refused, not truncated)."""
MAX_XML_BYTES = 64 * 1024 * 1024
"""Largest uncompressed size of a workbook's or presentation's parts together (a zip bomb inflates to gigabytes)."""


def _too_many_rows(name: str) -> IngestError:
    return IngestError(f"{name} has more than {MAX_ROWS:,} rows; split it into smaller files.")


def _sections(name: str, rows, label: str = "") -> list[Section]:
    """Rows (each with its 1-based row number) -> sections of `ROWS_PER_SECTION` lines."""
    sections: list[Section] = []
    header: list[str] | None = None
    lines: list[str] = []
    first = last = 0
    prefix = f"sheet {label}, " if label else ""

    def flush() -> None:
        if lines:
            where = f"row {first}" if first == last else f"rows {first}-{last}"
            sections.append(Section("\n".join(lines), heading=label, place=prefix + where))
            lines.clear()

    for number, raw in rows:
        if number > MAX_ROWS + 1:
            raise _too_many_rows(name)
        row = [cell_text(v) for v in raw]
        if not any(row):
            continue
        if header is None:
            header = row if looks_like_header(row) else []
            if header:
                continue
        line = row_line(header, row)
        if not lines:
            first = number
        lines.append(line)
        last = number
        if len(lines) >= ROWS_PER_SECTION:
            flush()
    flush()
    return sections


def read_csv(name: str, data: bytes) -> tuple[list[Section], str]:
    """A CSV (or TSV) file: the delimiter sniffed, the first row the header when it names columns."""
    text, encoding = decode_text(data, name)
    try:
        dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    csv.field_size_limit(MAX_CELL_CHARS)
    try:
        reader = csv.reader(io.StringIO(text), dialect)
        sections = _sections(name, ((reader.line_num, row) for row in reader))
    except csv.Error as exc:
        raise IngestError(f"{name} could not be read as CSV ({str(exc)[:80]}).") from None
    return sections, "" if encoding == "utf-8" else f"decoded from {encoding}"


def check_unpacked_size(name: str, data: bytes, kind: str) -> None:
    """Refuse, without parsing, an Office file whose parts unpack to more than `MAX_XML_BYTES`."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise IngestError(f"{name} could not be read as {kind}; the file is damaged or not one.") from None
    if total > MAX_XML_BYTES:
        raise IngestError(
            f"{name} unpacks to {total / 2**20:,.0f} MB; the limit is {MAX_XML_BYTES // 2**20} MB, so split it."
        )


def read_xlsx(name: str, data: bytes) -> tuple[list[Section], str]:
    """An Excel workbook (.xlsx): every sheet, values (not formulas), one section per `ROWS_PER_SECTION` rows."""
    import openpyxl

    if not data.strip():
        raise IngestError(f"{name} is empty.")
    check_unpacked_size(name, data, "an Excel workbook")
    damaged = f"{name} could not be read as an Excel workbook; the file is damaged or not a .xlsx."
    sections: list[Section] = []
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except MemoryError:
        raise
    except Exception:  # BadZipFile, KeyError, InvalidFileException, lxml errors: all "not a readable workbook"
        raise IngestError(damaged) from None
    try:
        read = 0
        for sheet in book.worksheets:
            label = sheet.title if len(book.worksheets) > 1 else ""
            rows = []
            for number, row in enumerate(sheet.iter_rows(values_only=True), 1):
                read += 1
                if read > MAX_ROWS:
                    raise _too_many_rows(name)
                rows.append((number, row))
            sections.extend(_sections(name, rows, label))
    except (IngestError, MemoryError):
        raise
    except Exception:
        raise IngestError(damaged) from None
    finally:
        book.close()
    return sections, ""

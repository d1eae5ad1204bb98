"""Word .docx through python-docx: one section per heading, tables kept as "cell | cell" lines."""

from __future__ import annotations

import io
import re

from rag.decoding import clean_extracted
from rag.errors import IngestError
from rag.readers.headings import HeadingPath, drop_document_title
from rag.records import Section

MAX_XML_BYTES = 64 * 1024 * 1024
"""Largest uncompressed word/document.xml read (a zip bomb inflates a small upload to gigabytes)."""
MAX_PARAGRAPHS = 100_000
"""Most paragraphs and table rows read: python-docx builds a DOM of every one (2 million empty
paragraphs, 327 KB zipped, took 25 minutes and 3.9 GB before this bound)."""
_PARAGRAPH_OR_ROW = re.compile(rb"<w:(?:p|tr)[\s/>]")


def check_docx_size(name: str, data: bytes) -> None:
    """Refuse, in about a second and without building a DOM, a .docx whose body is too large to parse."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("word/document.xml")
            if info.file_size > MAX_XML_BYTES:
                raise IngestError(
                    f"{name} unpacks to {info.file_size / 2**20:,.0f} MB of text markup; the limit is "
                    f"{MAX_XML_BYTES // 2**20} MB."
                )
            count, tail = 0, b""
            with archive.open(info) as xml:
                for block in iter(lambda: xml.read(1 << 20), b""):
                    chunk = tail + block  # a tag cut by the block boundary is counted in the next round
                    cut = max(0, len(chunk) - 8)
                    count += sum(1 for m in _PARAGRAPH_OR_ROW.finditer(chunk) if m.start() < cut)
                    tail = chunk[cut:]
                    if count > MAX_PARAGRAPHS:
                        raise IngestError(
                            f"{name} has more than {MAX_PARAGRAPHS:,} paragraphs; split it into smaller documents."
                        )
    except (zipfile.BadZipFile, KeyError, OSError, EOFError):
        raise IngestError(f"{name} could not be read as a Word document; the file is damaged or not a .docx.") from None


_HEADING_STYLE = re.compile(r"^(?:heading|überschrift|titre)\s*(\d)$", re.IGNORECASE)


def _heading_level(style_name: str) -> int | None:
    if style_name.lower() == "title":
        return 0
    match = _HEADING_STYLE.match(style_name.strip())
    return int(match.group(1)) if match else None


def read_docx(name: str, data: bytes) -> tuple[list[Section], str]:
    """Raises `IngestError` for an empty or damaged file, or one that is not a Word document."""
    import docx
    from docx.table import Table

    if not data.strip():
        raise IngestError(f"{name} is empty.")
    check_docx_size(name, data)
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
    except MemoryError:  # out of the reading process's memory ceiling: not a damaged file
        raise
    except Exception:  # BadZipFile, KeyError, ValueError, lxml errors: all mean "not a readable .docx"
        raise IngestError(f"{name} could not be read as a Word document; the file is damaged or not a .docx.") from None
    path = HeadingPath()
    sections: list[Section] = []
    lines: list[str] = []

    def flush() -> None:
        text = clean_extracted("\n".join(lines)).strip()
        if text:
            sections.append(Section(text, heading=path.path))
        lines.clear()

    for block in blocks:
        if isinstance(block, Table):
            for row in block.rows:
                cells = [c.text.strip() for c in row.cells]
                lines.append(" | ".join(dict.fromkeys(c for c in cells if c)))  # merged cells repeat
            continue
        text = block.text.strip()
        style = block.style.name if block.style is not None else ""
        level = _heading_level(style or "")
        if level is not None and text:
            flush()
            path.enter(level, text)
            lines.append(text)
        elif text:
            lines.append(text)
    flush()
    # A section holding only its own heading line carries no content.
    sections = [s for s in sections if s.text.strip() != s.heading.rpartition(" > ")[2]]
    return drop_document_title(sections), ""

"""Read one uploaded file into `Section`s, keeping where each came from (page, heading, line).

`read_sections(name, data)` picks the reader by extension. Every failure a user can cause raises
`IngestError` with one sentence naming the file.
"""

from __future__ import annotations

from pathlib import PurePath

from rag.errors import IngestError
from rag.readers.docx_reader import read_docx
from rag.readers.html_reader import read_html
from rag.readers.pdf_reader import read_pdf
from rag.readers.pptx_reader import read_pptx
from rag.readers.rst_reader import read_rst
from rag.readers.sheet_reader import read_csv, read_xlsx
from rag.readers.text_reader import read_markdown, read_text
from rag.records import Section

READERS = {
    ".txt": read_text,
    ".text": read_text,
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".pdf": read_pdf,
    ".docx": read_docx,
    ".html": read_html,
    ".htm": read_html,
    ".rst": read_rst,
    ".rest": read_rst,
    ".csv": read_csv,
    ".tsv": read_csv,
    ".xlsx": read_xlsx,
    ".pptx": read_pptx,
}
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(READERS)


def check_extension(name: str) -> None:
    """Raise `IngestError` when `name` has an extension no reader handles."""
    suffix = PurePath(name).suffix.lower()
    if suffix not in READERS:
        kinds = ", ".join(sorted({".txt", ".md", ".pdf", ".docx", ".html", ".rst", ".csv", ".xlsx", ".pptx"}))
        shown = f"'{suffix}' files" if suffix else "files without an extension"
        raise IngestError(f"{name}: {shown} are not supported; upload {kinds}.")


MAX_DOCUMENT_CHARS = 2_000_000
"""Most characters one document may yield (about 500,000 tokens, a 700-page book): beyond it, embedding every
chunk would hold the indexer for tens of minutes (a 5.5 MB .txt took 18)."""


def read_sections(name: str, data: bytes) -> tuple[list[Section], str]:
    """Return the file's non-empty sections and a note for the report (e.g. "decoded from cp949", or "").

    Raises `IngestError` for an unsupported extension, an empty, binary, damaged or undecodable
    file, or one with no extractable text.
    """
    check_extension(name)
    sections, note = READERS[PurePath(name).suffix.lower()](name, data)
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise IngestError(f"{name} has no text to index.")
    chars = sum(len(s.text) for s in sections)
    if chars > MAX_DOCUMENT_CHARS:
        raise IngestError(
            f"{name} holds {chars:,} characters of text; the limit is {MAX_DOCUMENT_CHARS:,}, so split it into parts."
        )
    return sections, note

"""PDF through pypdf: one section per page, so every chunk knows its page number."""

from __future__ import annotations

import io
import logging

from rag.decoding import clean_extracted
from rag.errors import IngestError
from rag.records import Section


def read_pdf(name: str, data: bytes) -> tuple[list[Section], str]:
    """Raises `IngestError` for an empty, damaged, password-protected or text-less (scanned) PDF."""
    from pypdf import PdfReader

    if not data.strip():
        raise IngestError(f"{name} is empty.")
    damaged = f"{name} could not be read as a PDF; the file is damaged or is not really a PDF."
    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.ERROR)  # a damaged file makes pypdf log a warning per object it skips
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(f"{name} is password-protected; upload a copy without the password.")
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            text = clean_extracted(page.extract_text() or "")
            if text.strip():
                sections.append(Section(text, page=number))
    except IngestError:
        raise
    except MemoryError:  # out of the reading process's memory ceiling: not a damaged file
        raise
    except Exception:  # pypdf raises many types (PdfReadError, ValueError, KeyError, ...) on bad input
        raise IngestError(damaged) from None
    finally:
        pypdf_log.setLevel(level)
    if not sections:
        raise IngestError(f"{name} has no extractable text (a scanned PDF needs OCR first).")
    return sections, ""

"""PowerPoint .pptx through python-pptx: one section per slide ("slide 3"), its title as the heading, text boxes
as lines, tables row by row with their header (`rag.readers.tables`), and the speaker notes."""

from __future__ import annotations

import io

from rag.decoding import clean_extracted
from rag.errors import IngestError
from rag.readers.sheet_reader import check_unpacked_size
from rag.readers.tables import table_lines
from rag.records import Section

MAX_SLIDES = 2_000
"""Most slides read from one presentation."""


def _shape_lines(shape) -> list[str]:
    lines: list[str] = []
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
        return table_lines(rows)
    if getattr(shape, "shape_type", None) is not None and hasattr(shape, "shapes"):  # a group
        for inner in shape.shapes:
            lines.extend(_shape_lines(inner))
        return lines
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        for paragraph in shape.text_frame.paragraphs:
            text = " ".join(run.text for run in paragraph.runs).strip() or paragraph.text.strip()
            if text:
                lines.append(("- " if paragraph.level else "") + text)
    return lines


def read_pptx(name: str, data: bytes) -> tuple[list[Section], str]:
    """Raises `IngestError` for an empty, damaged or oversized file, or one that is not a presentation."""
    from pptx import Presentation

    if not data.strip():
        raise IngestError(f"{name} is empty.")
    check_unpacked_size(name, data, "a PowerPoint presentation")
    try:
        deck = Presentation(io.BytesIO(data))
        slides = list(deck.slides)
        if len(slides) > MAX_SLIDES:
            raise IngestError(f"{name} has more than {MAX_SLIDES:,} slides; split it into smaller files.")
        sections: list[Section] = []
        for number, slide in enumerate(slides, 1):
            title_shape = slide.shapes.title
            title = (
                title_shape.text_frame.text.strip() if title_shape is not None and title_shape.has_text_frame else ""
            )
            lines: list[str] = []
            for shape in slide.shapes:
                if title_shape is not None and shape.shape_id == title_shape.shape_id:
                    continue
                lines.extend(_shape_lines(shape))
            if slide.has_notes_slide:
                notes = slide.notes_slide.notes_text_frame
                if notes is not None and notes.text.strip():
                    lines.append(notes.text.strip())
            text = clean_extracted("\n".join(lines)).strip()
            if text:
                heading = " ".join(title.split())
                sections.append(Section(text, heading=heading, place=f"slide {number}"))
    except (IngestError, MemoryError):
        raise
    except Exception:  # BadZipFile, KeyError, PackageNotFoundError, lxml errors: all "not a readable .pptx"
        raise IngestError(f"{name} could not be read as a PowerPoint presentation; the file is damaged.") from None
    return sections, ""

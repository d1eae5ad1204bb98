"""Track the heading path ("Warranty > Claims") while walking a document's headings in order."""

from __future__ import annotations

import re

from rag.records import Section

SEPARATOR = " > "


class HeadingPath:
    """A stack of (level, title). `enter(level, title)` pops headings at the same or deeper level."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []

    def enter(self, level: int, title: str) -> None:
        title = re.sub(r"\s+", " ", title).strip()
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        if title:
            self._stack.append((level, title))

    @property
    def path(self) -> str:
        return SEPARATOR.join(title for _, title in self._stack)


def drop_document_title(sections: list[Section]) -> list[Section]:
    """When every heading path starts with the same single title (the document's H1), drop it from
    the deeper paths so locations read "section Claims" rather than "section Warranty Terms > Claims"."""
    paths = [s.heading.split(SEPARATOR) for s in sections if s.heading]
    if not paths or len({p[0] for p in paths}) != 1 or all(len(p) == 1 for p in paths):
        return sections
    out = []
    for s in sections:
        parts = s.heading.split(SEPARATOR) if s.heading else []
        if len(parts) > 1:
            s = Section(s.text, SEPARATOR.join(parts[1:]), s.page, s.first_line)
        out.append(s)
    return out

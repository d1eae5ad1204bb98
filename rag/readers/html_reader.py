"""HTML through the standard library's parser: one section per heading, scripts and styles dropped, list items as
"- " lines, `<pre>` as a fenced code block, table rows as lines naming their columns (`rag.readers.tables`)."""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

from rag.decoding import clean_extracted, decode_text
from rag.errors import IngestError
from rag.readers.headings import HeadingPath, drop_document_title
from rag.readers.tables import table_lines
from rag.records import Section

_SKIP = {"script", "style", "noscript", "template", "svg", "head", "iframe", "object"}
_BLOCK = {
    "p",
    "div",
    "br",
    "li",
    "tr",
    "table",
    "ul",
    "ol",
    "pre",
    "blockquote",
    "dd",
    "dt",
    "hr",
    "section",
    "article",
    "header",
    "footer",
    "main",
    "nav",
    "aside",
    "figure",
    "figcaption",
    "caption",
    "form",
}
_CELL = "\x1f"  # between the cells of a table row while it is read
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_:.-]+)""", re.IGNORECASE)


class _SectionParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self.path = HeadingPath()
        self.lines: list[str] = []
        self.line: list[str] = []
        self.skip_depth = 0
        self.heading: tuple[int, list[str]] | None = None
        self.in_pre = 0
        self.table_depth = 0
        self.rows: list[list[str]] = []  # the rows of the outermost table being read
        self.term: str | None = None  # a definition list's term, waiting for its definition
        self.dd_prefix = ""  # "- term:" while its definition has not begun (a <p> inside <dd> must not cut it)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip_depth += 1
        elif tag in _HEADINGS:
            self.end_line()
            self.flush()
            self.heading = (_HEADINGS[tag], [])
        elif tag in ("td", "th") and self.table_depth:
            if self.line:
                self.line.append(_CELL)
        elif tag == "table":
            self.end_line()
            self.table_depth += 1
        elif tag == "tr" and self.table_depth:
            self.end_line()
        elif tag == "dt" and not self.table_depth:
            self.end_line()
            self.pending_term()
        elif tag == "dd" and not self.table_depth and self.term is not None:
            self.end_line()
            self.line.append(f"- {self.term}: ")  # "- ffi_type_uint8: An unsigned, 8-bit integer type."
            self.dd_prefix = f"- {self.term}:"
            self.term = None
        elif tag in _BLOCK:
            self.end_line()
            if tag == "li" and not self.table_depth:
                self.line.append("- ")
        if tag == "pre":
            self.end_line()
            if not self.table_depth:
                self.lines.append("```")
            self.in_pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in _HEADINGS and self.heading is not None:
            level, parts = self.heading
            title = re.sub(r"\s+", " ", "".join(parts)).strip()
            self.heading = None
            self.path.enter(level, title)
            if title:
                self.lines.append(title)
        elif tag == "table" and self.table_depth:
            self.end_line()
            self.table_depth -= 1
            if not self.table_depth:
                self.lines.extend(table_lines(self.rows))  # every row with its header
                self.rows = []
        elif tag == "tr" and self.table_depth:
            self.end_line()
        elif tag == "dt" and not self.table_depth:
            self.term = re.sub(r"\s+", " ", "".join(self.line)).strip(" ¶")
            self.line = []
        elif tag in _BLOCK:
            self.end_line()
        if tag == "pre":
            self.end_line()
            self.in_pre = max(0, self.in_pre - 1)
            if not self.in_pre and not self.table_depth:
                self.lines.append("```")

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.heading is not None:
            self.heading[1].append(data)
        elif self.in_pre:
            for i, piece in enumerate(data.split("\n")):
                if i:
                    self.end_line()
                self.line.append(piece)
        else:
            self.line.append(re.sub(r"\s+", " ", data))

    def pending_term(self) -> None:
        """A term with no definition (yet another term follows) is a line of its own."""
        if self.term:
            self.lines.append(f"- {self.term}")
        self.term = None

    def end_line(self) -> None:
        text = "".join(self.line)
        if self.dd_prefix and text.strip() == self.dd_prefix:
            return  # the definition's first block follows on the same line
        self.dd_prefix = ""
        self.line = []
        if self.table_depth:  # a table row: its cells, read with the header when the table ends
            cells = [re.sub(r"\s+", " ", c).strip() for c in text.split(_CELL)]
            if any(cells):
                self.rows.append(cells)
            return
        text = text.rstrip() if self.in_pre else text.replace("¶", "").strip()
        if text and text not in ("|", "-"):
            self.lines.append(text if self.in_pre else text.strip(" |"))

    def flush(self) -> None:
        self.end_line()
        self.pending_term()
        if self.rows:  # a table cut by a heading inside it
            self.lines.extend(table_lines(self.rows))
            self.rows = []
        text = clean_extracted("\n".join(self.lines)).strip()
        has_body = len(self.lines) > 1 or (self.lines and self.lines[0] != self.path.path.rpartition(" > ")[2])
        if text and has_body:
            self.sections.append(Section(text, heading=self.path.path))
        self.lines = []


def _decode_html(name: str, data: bytes) -> tuple[str, str]:
    declared = _CHARSET.search(data[:4096])
    if declared:
        encoding = declared.group(1).decode("ascii").lower()
        try:
            codecs.lookup(encoding)
            if codecs.lookup(encoding).name not in ("utf-8", "ascii"):
                return clean_extracted(data.decode(encoding)), encoding
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong or unknown declaration: fall back to detection
    return decode_text(data, name)


def read_html(name: str, data: bytes) -> tuple[list[Section], str]:
    """Raises `IngestError` for an empty, binary or undecodable file, or one with no visible text."""
    text, encoding = _decode_html(name, data)
    parser = _SectionParser()
    try:
        parser.feed(text)
        parser.close()
    except MemoryError:  # out of the reading process's memory ceiling: not a damaged file
        raise
    except Exception:  # html.parser is lenient; anything it still rejects is not a page we can read
        raise IngestError(f"{name} could not be read as HTML.") from None
    parser.flush()
    note = "" if encoding in ("utf-8", "ascii") else f"decoded from {encoding}"
    return drop_document_title(parser.sections), note

"""Plain text and Markdown. Markdown is split at its headings by LlamaIndex's MarkdownNodeParser."""

from __future__ import annotations

import re

from rag.decoding import decode_text
from rag.readers.headings import SEPARATOR, drop_document_title
from rag.records import Section

_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_MARKS = re.compile(r"[*_`]+")


def _note(encoding: str) -> str:
    return "" if encoding == "utf-8" else f"decoded from {encoding}"


def read_text(name: str, data: bytes) -> tuple[list[Section], str]:
    """The whole file as one section; chunk locations become line ranges."""
    text, encoding = decode_text(data, name)
    return [Section(text)], _note(encoding)


def read_markdown(name: str, data: bytes) -> tuple[list[Section], str]:
    """One section per heading, with the heading path ("Warranty > Claims"). A heading with no
    text of its own under it gives no section; its title lives on in its children's paths."""
    from llama_index.core import Document
    from llama_index.core.node_parser import MarkdownNodeParser

    text, encoding = decode_text(data, name)
    nodes = MarkdownNodeParser(include_metadata=True).get_nodes_from_documents([Document(text=text)])
    sections = []
    for node in nodes:
        body = node.get_content()
        first, _, rest = body.partition("\n")
        parents = [p for p in str(node.metadata.get("header_path", "")).split("/") if p]
        match = _ATX.match(first)
        if match:
            if not rest.strip():
                continue
            parents.append(_INLINE_MARKS.sub("", match.group(2)).strip())
        start = node.start_char_idx if node.start_char_idx is not None else text.find(body)
        first_line = text.count("\n", 0, start) + 1 if start >= 0 else 1
        heading = SEPARATOR.join(_INLINE_MARKS.sub("", p).strip() for p in parents)
        sections.append(Section(body, heading=heading, first_line=first_line))
    return drop_document_title(sections), _note(encoding)

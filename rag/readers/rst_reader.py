"""reStructuredText through docutils: one section per heading, markup stripped, structure kept.

docutils parses the text into a document tree; nothing is rendered and nothing outside the document is read:
`include`, `raw` and `csv-table :file:` directives are switched off (`file_insertion_enabled`, `raw_enabled`),
so a hostile file cannot pull in `/etc/passwd` or another user's upload. They, and every other directive docutils
does not know (Sphinx's `autofunction`, `toctree`), leave nothing in the text. What the tree holds becomes:

- paragraphs: plain text (emphasis, literals and links reduced to their words; link targets dropped);
- code and doctest blocks: a fenced block, kept whole, so it is never read as prose;
- bullet, enumerated, definition, field and option lists: one "- " line per item ("- --output FILE: where…");
- tables: one line per row naming its columns (`rag.readers.tables`);
- notes and warnings: their text, after "Note:" / "Warning:".
"""

from __future__ import annotations

from rag.decoding import decode_text
from rag.errors import IngestError
from rag.readers.headings import SEPARATOR, drop_document_title
from rag.readers.tables import table_lines
from rag.records import Section

SETTINGS = {
    "file_insertion_enabled": False,  # no `include`, no `csv-table :file:`, no `raw :file:`
    "raw_enabled": False,
    "report_level": 5,  # say nothing
    "halt_level": 5,  # never stop on a markup error: keep what parses
    "warning_stream": False,
    "_disable_config": True,  # no docutils.conf from the working directory or the user's home
    "input_encoding": "unicode",
    "line_length_limit": 100_000,
    "syntax_highlight": "none",
    "doctitle_xform": True,
}


def _flat(node) -> str:
    return " ".join(node.astext().split())


class _Walker:
    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.path: list[str] = []
        self.lines: list[str] = []

    def flush(self) -> None:
        text = "\n".join(self.lines).strip()
        if text:
            self.sections.append(Section(text, heading=SEPARATOR.join(self.path)))
        self.lines = []

    def item(self, text: str) -> None:
        if text:
            self.lines.append(f"- {text}")

    def blocks(self, node) -> None:
        for child in node.children:
            self.block(child)

    def block(self, node) -> None:  # one branch per kind of node, like a docutils visitor
        from docutils import nodes

        if isinstance(node, nodes.section):
            self.flush()
            title = next((c for c in node.children if isinstance(c, nodes.title)), None)
            self.path.append(_flat(title) if title is not None else "")
            self.blocks(node)
            self.flush()
            self.path.pop()
        elif isinstance(node, (nodes.title, nodes.subtitle)):
            if not isinstance(node.parent, (nodes.section, nodes.document)):
                self.lines.append(_flat(node))
        elif isinstance(node, (nodes.literal_block, nodes.doctest_block)):
            code = node.astext().rstrip()
            if code.strip():
                self.lines.extend(["```", *code.splitlines(), "```"])
        elif isinstance(node, (nodes.bullet_list, nodes.enumerated_list)):
            for item in node.children:
                self.list_item(item)
        elif isinstance(node, nodes.definition_list):
            for item in node.children:
                term = " ".join(_flat(c) for c in item.children if isinstance(c, (nodes.term, nodes.classifier)))
                body = " ".join(_flat(c) for c in item.children if isinstance(c, nodes.definition))
                self.item(f"{term}: {body}" if body else term)
        elif isinstance(node, nodes.field_list):
            for field in node.children:
                name = _flat(field[0]) if len(field) else ""
                body = _flat(field[1]) if len(field) > 1 else ""
                self.item(f"{name}: {body}" if body else name)
        elif isinstance(node, nodes.option_list):
            for item in node.children:
                options = ", ".join(_flat(g) for g in item.traverse(nodes.option_group))
                body = " ".join(_flat(d) for d in item.traverse(nodes.description))
                self.item(f"{options}: {body}" if body else options)
        elif isinstance(node, nodes.table):
            self.table(node)
        elif isinstance(node, nodes.Admonition):
            label = node.tagname.capitalize() if node.tagname != "admonition" else ""
            text = " ".join(_flat(c) for c in node.children if not isinstance(c, nodes.title))
            self.lines.append(f"{label}: {text}" if label else text)
        elif isinstance(
            node,
            (
                nodes.comment,
                nodes.target,
                nodes.substitution_definition,
                nodes.system_message,
                nodes.raw,
                nodes.pending,
                nodes.image,
                nodes.figure,
            ),
        ):
            return
        elif isinstance(node, nodes.TextElement):  # paragraph, line block lines, rubric, caption…
            text = _flat(node)
            if text:
                self.lines.append(text)
        elif isinstance(node, nodes.Element):  # block quotes, containers, compound, line blocks…
            self.blocks(node)

    def list_item(self, item) -> None:
        from docutils import nodes

        text_parts, rest = [], []
        for child in item.children:
            (text_parts if isinstance(child, nodes.paragraph) and not rest else rest).append(child)
        self.item(" ".join(_flat(p) for p in text_parts))
        for child in rest:
            self.block(child)

    def table(self, node) -> None:
        from docutils import nodes

        header: list[str] | None = None
        rows: list[list[str]] = []
        for group in node.traverse(nodes.tgroup):
            for part in group.children:
                for row in part.traverse(nodes.row):
                    cells = [_flat(entry) for entry in row.children]
                    if isinstance(part, nodes.thead):
                        header = (
                            cells
                            if header is None
                            else [f"{a} {b}".strip() for a, b in zip(header, cells, strict=False)]
                        )
                    else:
                        rows.append(cells)
        title = next((c for c in node.children if isinstance(c, nodes.title)), None)
        if title is not None:
            self.lines.append(_flat(title))
        self.lines.extend(table_lines(rows, header))


def read_rst(name: str, data: bytes) -> tuple[list[Section], str]:
    """Raises `IngestError` for an empty or undecodable file, or one docutils cannot parse."""
    from docutils.core import publish_doctree

    text, encoding = decode_text(data, name)
    try:
        tree = publish_doctree(text, source_path=name, settings_overrides=SETTINGS)
    except MemoryError:
        raise
    except Exception:  # docutils raises its own errors (and RecursionError on absurd nesting)
        raise IngestError(f"{name} could not be read as reStructuredText.") from None
    walker = _Walker()
    title = tree.get("title", "")
    if title:
        walker.path.append(" ".join(str(title).split()))
    walker.blocks(tree)
    walker.flush()
    return drop_document_title(walker.sections), "" if encoding == "utf-8" else f"decoded from {encoding}"

"""Split sections into sentence-aware chunks with LlamaIndex's SentenceSplitter, sized in the
embedding model's own tokens, and give each chunk a location a person can read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath

from rag.records import Chunk, Section

CONTEXT_RESERVE = 32
"""Tokens kept free in the embedding window for the document/section prefix and special tokens."""
CHARS_PER_TOKEN = 6
"""A chunk holds at most `chunk_size` x this many characters, whatever its tokens: a run the tokenizer reads as
one unknown token (20,000 emoji, 60,000 letters without a space) would otherwise be one giant chunk. Prose is
about 4-5 characters a token and CJK about 1, so the cap binds only on such runs."""
BLOCK_CHARS = 20_000
"""The sentence splitter reads a section in blocks of at most this many characters, cut at a paragraph, line
or space: its sentence tokenizer's regular expressions run out of time on a text of millions of characters."""


def effective_chunk_size(chunk_size: int, max_tokens: int) -> int:
    """`chunk_size` capped so a chunk plus its prefix fits the embedding model's window (a longer
    chunk would be silently truncated before embedding, so its tail could never be found)."""
    return max(16, min(chunk_size, max_tokens - CONTEXT_RESERVE))


class Chunker:
    """Sections -> chunks. `tokenize` is the embedding model's tokenizer, so sizes mean what it sees."""

    def __init__(self, chunk_size: int, chunk_overlap: int, tokenize: Callable[[str], list[int]]):
        from llama_index.core.node_parser import SentenceSplitter

        self.chunk_size = chunk_size
        self.chunk_overlap = min(chunk_overlap, chunk_size // 2)
        self._splitter = SentenceSplitter(
            chunk_size=chunk_size, chunk_overlap=self.chunk_overlap, tokenizer=tokenize, paragraph_separator="\n\n"
        )

    def chunk(self, sections: list[Section]) -> list[Chunk]:
        """Every chunk is an exact substring of its section's text, in document order, and none is longer than
        `chunk_size` tokens or `chunk_size * CHARS_PER_TOKEN` characters."""
        chunks: list[Chunk] = []
        max_chars = self.chunk_size * CHARS_PER_TOKEN
        for section in sections:
            cursor = 0
            for block in _cut(section.text, BLOCK_CHARS):
                for split in self._splitter.split_text(block):
                    for piece in _cut(split, max_chars):
                        piece = piece.strip()
                        if not piece:
                            continue
                        start = section.text.find(piece, cursor)
                        if start < 0:
                            start = section.text.find(piece)
                        if start >= 0:
                            cursor = start + 1
                        location = _location(section, piece, start, len(chunks))
                        chunks.append(Chunk(piece, len(chunks), location, section.page, section.heading))
        return chunks


def _cut(text: str, limit: int) -> list[str]:
    """`text` in consecutive pieces of at most `limit` characters, each cut at the last paragraph break, line
    break or space before the limit (anywhere, when there is none): their concatenation is `text`."""
    pieces: list[str] = []
    while len(text) > limit:
        window = text[:limit]
        at = next((i for i in (window.rfind("\n\n"), window.rfind("\n"), window.rfind(" ")) if i > limit // 4), limit)
        pieces.append(text[:at])
        text = text[at:]
    return [*pieces, text] if text else pieces


def _location(section: Section, piece: str, start: int, position: int) -> str:
    if section.place:
        return section.place
    if section.page is not None:
        return f"page {section.page}"
    if section.heading:
        return f"section {section.heading}"
    if start >= 0:
        first = section.first_line + section.text.count("\n", 0, start)
        last = first + piece.count("\n")
        return f"line {first}" if first == last else f"lines {first}-{last}"
    return f"chunk {position + 1}"


def context_text(file_name: str, chunk: Chunk) -> str:
    """What gets embedded and keyword-indexed for a chunk: document title and section, then the text.
    A chunk deep in "warranty_terms.docx" that never says "warranty" can still be found by it."""
    title = PurePath(file_name).stem.replace("_", " ").replace("-", " ")
    where = chunk.heading or (f"page {chunk.page}" if chunk.page is not None else "")
    if not where and chunk.location.startswith(("slide ", "rows ", "sheet ")):
        where = chunk.location
    return f"{title}{' — ' + where if where else ''}\n{chunk.text}"

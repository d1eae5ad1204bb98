"""Plain records passed between the stages of the knowledge base, and returned by its API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Progress = Callable[[float, str], None]
"""`progress(fraction, message)`: fraction in [0, 1], message one short line for a person."""


def no_progress(fraction: float, message: str) -> None:
    """The default progress callback: says nothing."""


@dataclass(frozen=True)
class Section:
    """A stretch of a document read from one place: a page, a heading's section, or the whole text."""

    text: str
    heading: str = ""  # "Warranty > Claims"; empty when the format has no headings
    page: int | None = None  # 1-based PDF page
    first_line: int = 1  # line number of `text`'s first line in the original file (plain text, Markdown)
    place: str = ""  # a ready location for citations ("slide 3", "rows 2-41", "sheet Prices, rows 2-41")


@dataclass(frozen=True)
class Chunk:
    """One sentence-aware piece of a document, ready to embed."""

    text: str
    position: int  # 0-based order of the chunk in its document
    location: str  # "page 3", "section Warranty > Claims", "lines 40-58" or "chunk 4"
    page: int | None = None
    heading: str = ""


@dataclass(frozen=True)
class FileReport:
    """What happened to one file of a batch. `ok` is False exactly when `status` is "error"."""

    name: str
    ok: bool
    message: str
    status: Literal["added", "replaced", "unchanged", "error"]
    chunks: int = 0
    doc_id: str | None = None


@dataclass(frozen=True)
class Placement:
    """Where a batch of documents goes, and who sends it (`core.identity` owner tags, never names).

    The default is the operator's: the shared knowledge base, no quota, a name collision refused."""

    owner: str | None = None  # None: the shared knowledge base; else that person's private collection
    added_by: str | None = None  # whose quota the documents count against; None: the operator (no quota)
    replace: bool = False  # a document of the same name in that collection is replaced (a snapshot keeps it)

    @property
    def collection(self) -> str:
        return "the shared knowledge base" if self.owner is None else "your private documents"


@dataclass(frozen=True)
class DocumentInfo:
    """One document in the index."""

    doc_id: str
    name: str
    chunks: int
    added_at: str  # ISO 8601, UTC, e.g. "2025-11-21T14:30:05Z"
    sha256: str
    size_bytes: int
    owner: str | None = None  # None: shared; else the owner tag of a private collection

    @property
    def shared(self) -> bool:
        return self.owner is None

    @property
    def added_date(self) -> str:
        """The day the document was added, "YYYY-MM-DD" (UTC)."""
        return self.added_at[:10]


@dataclass(frozen=True)
class IndexStats:
    """A summary of the index for a status line or an admin page."""

    documents: int
    chunks: int
    snapshot_id: str
    updated_at: str  # ISO 8601 UTC time the current snapshot was written; "" before the first save
    embed_model: str
    dim: int
    chunk_size: int  # as set
    chunk_overlap: int
    effective_chunk_size: int  # chunk_size capped so a chunk fits the embedding model's window
    fusion: str
    index_dir: str
    disk_bytes: int  # index files plus stored originals

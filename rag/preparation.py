"""One file -> a prepared document: validated, read, chunked, with keyword terms (not yet embedded).

Checks run cheapest first (extension, size, emptiness) so a bad file is refused before any parsing.
`folder_files` lists what `add_folder` takes from a folder. Every refusal is an `IngestError` with
one sentence that names the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from core.bm25_tokens import terms
from rag.chunking import Chunker, context_text
from rag.errors import IngestError
from rag.readers import check_extension
from rag.readers.bounded import ReadBounds, read_sections_bounded
from rag.records import Chunk
from rag.uploads import safe_name

MIB = 1024 * 1024


@dataclass
class PreparedDocument:
    name: str
    data: bytes
    sha256: str
    chunks: list[Chunk]
    contexts: list[str]  # what is embedded, one per chunk
    terms: list[list[str]]  # keyword terms, one list per chunk
    note: str = ""  # e.g. "decoded from cp949"
    owner: str | None = None  # the private collection it goes to (None: shared)

    @property
    def doc_id(self) -> str:
        return doc_id_for(self.sha256, self.owner)


def doc_id_for(sha256: str, owner: str | None = None) -> str:
    """Documents are named by content: the same bytes uploaded twice to one collection are one document.
    A private copy gets an id of its own, so no one learns from an id that someone else holds the file."""
    if owner is None:
        return sha256[:16]
    return hashlib.sha256(f"{owner}\0{sha256}".encode()).hexdigest()[:16]


def check_file(path: Path, max_upload_mb: float) -> None:
    """Raise `IngestError` for a missing, unsupported, empty or too large file, without reading it."""
    name = path.name
    check_extension(name)
    if not path.is_file():
        raise IngestError(f"{name} was not found.")
    size = path.stat().st_size
    if size == 0:
        raise IngestError(f"{name} is empty.")
    if size > max_upload_mb * MIB:
        raise IngestError(f"{name} is {size / MIB:.1f} MB, over the {max_upload_mb:g} MB upload limit.")


def read_source(source: Path | bytes, max_upload_mb: float) -> bytes:
    """The bytes of an upload held in memory, or of a file after `check_file`. Raises `IngestError`."""
    if isinstance(source, bytes):
        return source
    check_file(source, max_upload_mb)
    try:
        return source.read_bytes()
    except OSError as exc:
        raise IngestError(f"{source.name} could not be read ({exc.strerror}).") from None


def folder_files(folder: str | Path, recursive: bool) -> list[Path]:
    """Every file under `folder` (subfolders too when `recursive`), hidden ones skipped, sorted.
    Raises `IngestError` when `folder` is not a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IngestError(f"{folder} is not a folder.")
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p for p in pattern if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def prepare(
    name: str, data: bytes, chunker: Chunker, max_upload_mb: float, bounds: ReadBounds | None = None
) -> PreparedDocument:
    """Read and chunk one file, reading within `bounds` (time and memory; see `rag.readers.bounded`).
    Raises `IngestError` (one sentence) for any input problem."""
    name = safe_name(name)
    check_extension(name)
    if not data:
        raise IngestError(f"{name} is empty.")
    if len(data) > max_upload_mb * MIB:
        raise IngestError(f"{name} is {len(data) / MIB:.1f} MB, over the {max_upload_mb:g} MB upload limit.")
    sections, note = read_sections_bounded(name, data, bounds)
    chunks = chunker.chunk(sections)
    if not chunks:
        raise IngestError(f"{name} has no text to index.")
    contexts = [context_text(name, c) for c in chunks]
    return PreparedDocument(
        name=name,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        chunks=chunks,
        contexts=contexts,
        terms=[terms(c) for c in contexts],
        note=note,
    )

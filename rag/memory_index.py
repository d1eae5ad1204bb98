"""The index in memory: FAISS vectors by chunk id, the keyword index and the chunk table of one snapshot.

`MemoryIndex` is built from a manifest's segments (`load_latest` picks the newest readable
snapshot) and then patched in place by `apply` on every add or delete, so one document goes in or
out without a rebuild. `LiveIndex` holds the one loaded `MemoryIndex` of a knowledge base with the
two locks that make it thread-safe: `lock` guards the swap and every read or patch of the
in-memory structures (searches hold it only for the lookup), and `write_lock` admits one writer
per process (`IndexStorage.write_lock` extends that across processes).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from core.bm25_tokens import TOKENIZER_VERSION, terms
from rag.chunking import context_text
from rag.errors import IndexCorruptError, IndexMismatchError
from rag.keyword_index import KeywordHit, KeywordIndex
from rag.manifest import DocumentEntry, Manifest
from rag.storage import IndexStorage, record_chunk

log = logging.getLogger(__name__)


@dataclass
class StoredChunk:
    doc_id: str
    position: int
    text: str
    location: str


class Found(NamedTuple):
    """A chunk a search found, as a passage needs it: its text, its document's id and file name, its place."""

    text: str
    doc_id: str
    name: str
    position: int
    location: str


class NewDocument(NamedTuple):
    """A document saved to disk, to be added to memory: its entry, segment records, vectors, terms."""

    entry: DocumentEntry
    records: list[dict[str, Any]]
    vectors: np.ndarray
    terms: list[list[str]]


def _vector_store(dim: int) -> Any:
    from rag.vector_store import IdMappedFaissVectorStore  # faiss loads with the first index

    return IdMappedFaissVectorStore(dim)


class MemoryIndex:
    """One snapshot's searchable structures. Not thread-safe on its own: `LiveIndex.lock` guards it.

    The index a backend searches has this shape (`rag.pg_index.PgIndex` is the database's): `manifest`,
    `disk_pointer`, `chunk_count`, `candidates`, `found`, `outline`, `apply`, `from_segments`; `in_memory` says
    whether a search must hold `LiveIndex.lock` while it looks (the database's index is read without it)."""

    in_memory = True

    def __init__(self, manifest: Manifest, disk_pointer: str | None = None):
        self.manifest = manifest
        self.disk_pointer = disk_pointer  # what CURRENT named when this was loaded or last saved
        self.vectors: Any = _vector_store(manifest.dim) if manifest.dim else None  # IdMappedFaissVectorStore
        self.keywords = KeywordIndex()
        self.chunks: dict[int, StoredChunk] = {}
        self.names = {d.doc_id: d.name for d in manifest.documents}  # doc_id -> file name

    def hidden_from(self, viewer: str | None) -> tuple[set[str], int]:
        """The private documents `viewer` (an owner tag; None: nobody's) may not see, and their chunk
        count: a search asks FAISS and BM25 for that many more hits and drops theirs, so what a person
        finds is exactly what an index of the shared and their own documents would give."""
        hidden = [d for d in self.manifest.documents if d.owner is not None and d.owner != viewer]
        return {d.doc_id for d in hidden}, sum(d.chunks for d in hidden)

    @property
    def chunk_count(self) -> int:
        return len(self.chunks)

    def candidates(
        self, vector: np.ndarray | None, query_terms: list[str], dense_k: int, keyword_k: int, viewer: str | None
    ) -> tuple[list[tuple[int, float]], list[KeywordHit]]:
        """The dense (id, cosine) and keyword (BM25) candidates of a query among what `viewer` may see, best
        first: `dense_k` nearest chunks (none without `vector`), `keyword_k` best keyword matches."""
        hidden, extra = self.hidden_from(viewer)
        dense = self.vectors.search(vector, dense_k + extra) if vector is not None else []
        keyword = self.keywords.search(query_terms, keyword_k + extra) if query_terms else []
        if hidden:
            dense = [hit for hit in dense if self.chunks[hit[0]].doc_id not in hidden][:dense_k]
            keyword = [h for h in keyword if self.chunks[h.id].doc_id not in hidden][:keyword_k]
        return dense, keyword

    def found(self, ids: Iterable[int]) -> dict[int, Found]:
        """The chunks of these ids, as passages need them."""
        out = {}
        for vector_id in ids:
            c = self.chunks[vector_id]
            out[vector_id] = Found(c.text, c.doc_id, self.names[c.doc_id], c.position, c.location)
        return out

    def outline(self, doc_ids: set[str]) -> list[tuple[str, int, str]]:
        """(document id, chunk position, location) of every chunk of these documents."""
        return [(c.doc_id, c.position, c.location) for c in self.chunks.values() if c.doc_id in doc_ids]

    @classmethod
    def from_segments(cls, storage: IndexStorage, manifest: Manifest) -> MemoryIndex:
        """Load every document of `manifest` from its segment. Raises IndexCorruptError."""
        index = cls(manifest)
        retokenize = manifest.keyword_tokenizer != TOKENIZER_VERSION
        for doc in manifest.documents:
            records, vectors = storage.read_segment(doc.segment)
            if vectors.shape[1] != manifest.dim:
                raise IndexCorruptError(
                    f"The index segment {doc.segment} has vectors of another dimension than its manifest says; "
                    "restore the index folder from a backup, or move it aside and add the documents again."
                )
            if retokenize:
                chunk_terms = [terms(context_text(doc.name, record_chunk(r))) for r in records]
            else:
                chunk_terms = [r["terms"].split(" ") if r["terms"] else [] for r in records]
            index._add(doc.doc_id, records, vectors, chunk_terms)
        if index.chunks and max(index.chunks) >= manifest.next_vector_id:  # a counter lost or behind: move it on
            index.manifest = dataclasses.replace(manifest, next_vector_id=max(index.chunks) + 1)
        return index

    def _add(self, doc_id: str, records: list[dict[str, Any]], vectors: np.ndarray, chunk_terms: list[list[str]]):
        ids = np.asarray([r["id"] for r in records], np.int64)
        if len(ids):
            self.vectors.add_vectors(doc_id, ids, vectors)
        self.keywords.add(doc_id, ids, chunk_terms)
        for r in records:
            self.chunks[int(r["id"])] = StoredChunk(doc_id, r["position"], r["text"], r["location"])

    def apply(self, manifest: Manifest, removals: Iterable[str], additions: Iterable[NewDocument]) -> None:
        """Make memory match `manifest`, just saved: drop `removals`, add `additions`. Hold `LiveIndex.lock`."""
        if self.vectors is None and manifest.dim:
            self.vectors = _vector_store(manifest.dim)
        for doc_id in removals:
            if self.vectors is not None:
                for vector_id in self.vectors.document_ids(doc_id):
                    self.chunks.pop(int(vector_id), None)
                self.vectors.delete(doc_id)
            self.keywords.remove(doc_id)
        for new in additions:
            self._add(new.entry.doc_id, new.records, new.vectors, new.terms)
        self.manifest = manifest
        self.names = {d.doc_id: d.name for d in manifest.documents}
        self.disk_pointer = manifest.snapshot_id


def check_model(manifest: Manifest, wanted: str, index_dir: Path) -> None:
    """Raises IndexMismatchError when `manifest` was built with another embedding model than `wanted`."""
    if manifest.embed_model != wanted:
        built = manifest.embed_model
        raise IndexMismatchError(
            f"The index in {index_dir} was built with the embedding model {built!r} (dimension {manifest.dim}), "
            f"but the settings ask for {wanted!r}; set embed_model back to {built!r}, or rebuild the index with "
            f"`python -m rag reindex --embed-model {wanted}`."
        )


def load_latest(storage: IndexStorage, empty: Manifest, embed_model: str) -> MemoryIndex:
    """The current snapshot, or the newest older one that can be read (logged); `empty` when there
    is none. Raises IndexMismatchError for an index of another embedding model, IndexCorruptError
    when snapshots exist but none can be read."""
    current = storage.current_snapshot()
    candidates = storage.snapshot_ids()
    if current in candidates:
        candidates.remove(current)
    candidates = ([current] if current else []) + candidates
    if not candidates:
        return storage.new_index(empty, current)
    for snapshot_id in candidates:
        try:
            manifest = storage.read_manifest(snapshot_id)
            check_model(manifest, embed_model, storage.root)
            index = storage.load_index(manifest)
            index.disk_pointer = current
        except IndexCorruptError as exc:
            log.warning("%s Trying an older snapshot.", exc)
            continue
        if snapshot_id != current:
            log.warning("Loaded the older snapshot %s because %s could not be read.", snapshot_id, current)
        return index
    raise IndexCorruptError(
        f"No snapshot of the index in {storage.root} can be read (the log says why); restore the index folder "
        "from a backup, or move it aside and add the documents again."
    )


class LiveIndex:
    """The loaded `MemoryIndex` of one knowledge base, loaded on first use, swapped as a whole by a
    reload or a rebuild. Many threads read it under `lock` while one writer holds `write_lock`."""

    def __init__(self, storage: IndexStorage, empty: Manifest, embed_model: str):
        self.storage = storage
        self.lock = threading.RLock()  # guards `_current` and the in-memory structures
        self.write_lock = threading.Lock()  # one writer at a time in this process
        self.empty = empty  # the manifest of an index never saved
        self._embed_model = embed_model
        self._current: MemoryIndex | None = None

    def load(self) -> MemoryIndex:
        """Read the index from disk (not installed; see `swap`). Raises what `load_latest` raises."""
        return load_latest(self.storage, self.empty, self._embed_model)

    def current(self) -> MemoryIndex:
        """The loaded index, reading it from disk the first time."""
        with self.lock:
            if self._current is None:
                self._current = self.load()
            return self._current

    def swap(self, index: MemoryIndex) -> None:
        with self.lock:
            self._current = index

    def saved_elsewhere(self) -> bool:
        """Whether another process saved the index since this one loaded or saved it."""
        return self.storage.current_snapshot() != self.current().disk_pointer

    def reload_if_saved_elsewhere(self) -> bool:
        """Reload when `saved_elsewhere`; searches use the loaded index meanwhile. Hold `write_lock`."""
        if not self.saved_elsewhere():
            return False
        self.swap(self.load())
        return True

"""`KnowledgeBase`: the company's documents as a searchable, persistent, thread-safe index.

It ties the stages together: files -> `ingest.prepare` (read, chunk, terms) -> `Embedder` ->
`IdMappedFaissVectorStore` + `KeywordIndex` in memory, and `IndexStorage` + `UploadStore` on disk.
Many threads may search while one writes: the slow part of a write (reading, chunking, embedding)
runs outside the lock, and only the swap of the in-memory index is done under it.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.retrieval import Passage
from core.settings import Settings
from core.terms import TOKENIZER_VERSION, terms
from rag.chunking import Chunker, context_text, effective_chunk_size
from rag.embedding import Embedder, canonical_name, get_embedder
from rag.errors import (
    DocumentNotFoundError,
    IndexCorruptError,
    IndexMismatchError,
    IndexWriteError,
    IngestError,
)
from rag.fusion import BACKGROUND_TEXTS, Floors, fuse
from rag.ingest import PreparedDocument, check_file, prepare
from rag.keyword_index import KeywordIndex
from rag.records import Chunk, DocumentInfo, FileReport, IndexStats, Progress, no_progress
from rag.storage import FORMAT_VERSION, IndexStorage, new_id, utc_now
from rag.uploads import UploadStore

log = logging.getLogger(__name__)

EMPTY_SNAPSHOT = "empty"
MAX_QUERY_CHARS = 2000
COMMIT_BYTES = 64 * 1024 * 1024


@dataclass
class _StoredChunk:
    doc_id: str
    position: int
    text: str
    location: str


@dataclass
class _State:
    """The in-memory index; replaced as a whole by `reindex`, patched by add and delete."""

    manifest: dict[str, Any]
    disk_pointer: str | None = None  # what CURRENT named when this state was loaded or last saved
    vectors: Any = None  # IdMappedFaissVectorStore, created once the dimension is known
    keywords: KeywordIndex = field(default_factory=KeywordIndex)
    chunks: dict[int, _StoredChunk] = field(default_factory=dict)
    _names: tuple[dict[str, Any], dict[str, str]] | None = None

    @property
    def documents(self) -> list[dict[str, Any]]:
        return self.manifest["documents"]

    @property
    def names(self) -> dict[str, str]:
        """doc_id -> file name, cached per manifest."""
        if self._names is None or self._names[0] is not self.manifest:
            self._names = (self.manifest, {d["doc_id"]: d["name"] for d in self.documents})
        return self._names[1]


def _vector_store(dim: int) -> Any:
    from rag.vector_store import IdMappedFaissVectorStore  # faiss loads with the first index

    return IdMappedFaissVectorStore(dim)


class KnowledgeBase:
    """Load-or-create the index under `settings.data_dir`, add and delete documents, search.

    Implements `core.retrieval.Retriever`. Every method is thread-safe. Nothing is read from disk
    or loaded until the first call that needs it (`open` does it explicitly).
    """

    def __init__(self, settings: Settings, embedder: Embedder | None = None, floors: Floors | None = None):
        self.settings = settings
        self.index_dir = Path(settings.data_dir) / "index"
        self.floors = floors or Floors()
        self._storage = IndexStorage(self.index_dir)
        self._uploads = UploadStore(Path(settings.data_dir) / "uploads")
        self._embedder = embedder
        self._chunker: Chunker | None = None
        self._state: _State | None = None
        self._lock = threading.RLock()  # guards self._state and the in-memory indexes
        self._write_lock = threading.Lock()  # one writer at a time in this process
        self._dim_checked = False
        self._background: np.ndarray | None = None  # (len(BACKGROUND_TEXTS), dim), see rag.fusion

    # -- opening ------------------------------------------------------------------------------
    def open(self) -> KnowledgeBase:
        """Load the current snapshot, or start an empty index when none exists. Returns self.

        A snapshot that cannot be read is skipped for the newest older one that can (logged).
        Raises IndexMismatchError when the index was built with another embedding model than
        `settings.embed_model` (run `reindex()` to rebuild it with the new one), and
        IndexCorruptError when snapshots exist but none can be read.
        """
        with self._lock:
            self._state = self._load_state()
            return self

    def refresh(self) -> bool:
        """Reload the index if another process (say `python -m rag ingest`) saved it since this one
        loaded it; searches keep using the loaded index meanwhile. Returns True when it reloaded.
        Raises what `open` raises."""
        with self._write_lock:
            state = self._ensure_open()
            if self._storage.current_snapshot() == state.disk_pointer:
                return False
            fresh = self._load_state()
            with self._lock:
                self._state = fresh
            return True

    def _ensure_open(self) -> _State:
        with self._lock:
            if self._state is None:
                self._state = self._load_state()
            return self._state

    def _load_state(self) -> _State:
        current = self._storage.current_snapshot()
        candidates = self._storage.snapshot_ids()
        if current in candidates:
            candidates.remove(current)
        candidates = ([current] if current else []) + candidates
        if not candidates:
            return _State(self._new_manifest(), disk_pointer=current)
        problems = []
        for snapshot_id in candidates:
            try:
                manifest = self._storage.read_manifest(snapshot_id)
                self._check_model(manifest)
                state = self._build_state(manifest)
                state.disk_pointer = current
            except IndexCorruptError as exc:
                problems.append(str(exc))
                log.warning("%s Trying an older snapshot.", exc)
                continue
            if snapshot_id != current:
                log.warning("Loaded the older snapshot %s because %s could not be read.", snapshot_id, current)
            return state
        raise IndexCorruptError(f"No snapshot of the index in {self.index_dir} can be read: {' '.join(problems)}")

    def _new_manifest(self) -> dict[str, Any]:
        s = self.settings
        return {
            "format": FORMAT_VERSION,
            "snapshot_id": EMPTY_SNAPSHOT,
            "parent_snapshot_id": None,
            "created_at": "",
            "embed_model": canonical_name(s.embed_model),
            "dim": None,
            "chunk_size": s.chunk_size,
            "chunk_overlap": s.chunk_overlap,
            "effective_chunk_size": None,
            "keyword_tokenizer": TOKENIZER_VERSION,
            "next_vector_id": 0,
            "sample_seeded": False,
            "documents": [],
        }

    def _check_model(self, manifest: dict[str, Any]) -> None:
        wanted = canonical_name(self.settings.embed_model)
        built = manifest.get("embed_model")
        if built != wanted:
            raise IndexMismatchError(
                f"The index in {self.index_dir} was built with the embedding model {built!r} "
                f"(dimension {manifest.get('dim')}), but the settings ask for {wanted!r}; set embed_model back "
                f"to {built!r}, or rebuild the index with `python -m rag reindex --embed-model {wanted}`."
            )

    def _build_state(self, manifest: dict[str, Any]) -> _State:
        state = _State(manifest)
        dim = manifest.get("dim")
        if dim:
            state.vectors = _vector_store(int(dim))
        retokenize = manifest.get("keyword_tokenizer") != TOKENIZER_VERSION
        for doc in manifest["documents"]:
            records, vectors = self._storage.read_segment(doc["segment"])
            if vectors.shape[1] != dim:
                raise IndexCorruptError(f"The index segment {doc['segment']} has vectors of another dimension.")
            self._load_document(state, doc, records, vectors, retokenize)
        return state

    def _load_document(
        self, state: _State, doc: dict[str, Any], records: list[dict[str, Any]], vectors: np.ndarray, retokenize: bool
    ) -> None:
        ids = np.asarray([r["id"] for r in records], np.int64)
        if retokenize:
            chunk_terms = [terms(context_text(doc["name"], _record_chunk(r))) for r in records]
        else:
            chunk_terms = [r["terms"].split(" ") if r["terms"] else [] for r in records]
        if len(ids):
            state.vectors.add_vectors(doc["doc_id"], ids, vectors)
        state.keywords.add(doc["doc_id"], ids, chunk_terms)
        for r in records:
            state.chunks[int(r["id"])] = _StoredChunk(doc["doc_id"], r["position"], r["text"], r["location"])

    # -- the embedding model --------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        """The embedding model, shared per process (`rag.embedding.get_embedder`); it loads on first use."""
        if self._embedder is None:
            self._embedder = get_embedder(self.settings.embed_model, _embedding_device(self.settings.device))
        return self._embedder

    def _checked_embedder(self, state: _State) -> Embedder:
        """The embedder, after checking its dimension against the index (once)."""
        embedder = self.embedder
        if not self._dim_checked:
            dim = state.manifest.get("dim")
            if dim and embedder.dim != dim:
                raise IndexMismatchError(
                    f"The index in {self.index_dir} holds {dim}-dimensional vectors, but the embedding model "
                    f"{embedder.name!r} makes {embedder.dim}-dimensional ones; rebuild it with `python -m rag reindex`."
                )
            self._dim_checked = True
        return embedder

    def _get_chunker(self) -> Chunker:
        if self._chunker is None:
            embedder = self.embedder
            size = effective_chunk_size(self.settings.chunk_size, embedder.max_tokens)
            if size < self.settings.chunk_size:
                log.warning(
                    "chunk_size %d is more than %s reads at once (%d tokens); chunks will be %d tokens.",
                    self.settings.chunk_size, embedder.name, embedder.max_tokens, size,
                )  # fmt: skip
            self._chunker = Chunker(size, self.settings.chunk_overlap, embedder.tokenize)
        return self._chunker

    # -- adding -------------------------------------------------------------------------------
    def add_files(self, paths: Sequence[str | Path], progress: Progress | None = None) -> list[FileReport]:
        """Add files to the index; a file already present (same bytes) is left as is, and one with
        the same name but new content replaces the old version. One save per call (per 64 MiB).

        Returns one report per path, in order. A bad file (missing, empty, binary, damaged,
        undecodable, too large, unsupported) gets `ok=False` and a one-sentence message, and
        changes nothing; the good files of the same batch still go in. Raises RagError only for
        problems with the index itself (a model mismatch, the disk, another writer).
        """
        return self._add([(Path(p).name, Path(p)) for p in paths], progress or no_progress)

    def add_data(self, files: Sequence[tuple[str, bytes]], progress: Progress | None = None) -> list[FileReport]:
        """`add_files` for uploads held in memory: (file name, bytes) pairs."""
        return self._add(list(files), progress or no_progress)

    def add_folder(
        self, folder: str | Path, progress: Progress | None = None, recursive: bool = True
    ) -> list[FileReport]:
        """Add every file under `folder` (hidden files skipped). Files of unsupported types get an
        error report each. Raises IngestError when `folder` is not a folder."""
        return self.add_files(_folder_files(folder, recursive), progress)

    def _read(self, source: Path | bytes) -> bytes:
        if isinstance(source, bytes):
            return source
        check_file(source, self.settings.max_upload_mb)
        try:
            return source.read_bytes()
        except OSError as exc:
            raise IngestError(f"{source.name} could not be read ({exc.strerror}).") from None

    def _add(
        self,
        items: Sequence[tuple[str, Path | bytes]],
        progress: Progress,
        manifest_updates: dict[str, Any] | None = None,
    ) -> list[FileReport]:
        state = self._ensure_open()
        embedder = self._checked_embedder(state)
        reports: dict[int, FileReport] = {}
        pending: list[tuple[int, PreparedDocument, np.ndarray]] = []
        total = max(len(items), 1)
        for i, (name, source) in enumerate(items):
            progress(0.95 * i / total, f"Reading {name}")
            try:
                doc = prepare(name, self._read(source), self._get_chunker(), self.settings.max_upload_mb)
                progress(0.95 * (i + 0.3) / total, f"Embedding {len(doc.chunks)} chunks of {name}")
                pending.append((i, doc, embedder.encode(doc.contexts)))
            except IngestError as exc:
                reports[i] = FileReport(name, False, str(exc), "error")
            except Exception as exc:  # a reader bug must not sink the whole batch
                log.exception("ingesting %s failed", name)
                reports[i] = FileReport(name, False, f"{name} could not be read ({type(exc).__name__}).", "error")
            if sum(len(d.data) for _, d, _ in pending) > COMMIT_BYTES:  # bound the memory a big folder takes
                progress(0.95 * (i + 0.9) / total, "Saving the index")
                reports.update(self._commit(pending, [], {}))
                pending = []
        progress(0.95, "Saving the index")
        reports.update(self._commit(pending, [], manifest_updates or {}))
        ordered = [reports[i] for i in sorted(reports)]
        progress(1.0, _summary(ordered))
        return ordered

    # -- deleting and rebuilding ----------------------------------------------------------------
    def delete(self, doc_id: str) -> None:
        """Remove one document (its chunks, vectors and stored original) without a rebuild.
        Raises DocumentNotFoundError when no document has that id."""
        state = self._ensure_open()
        if not any(d["doc_id"] == doc_id for d in state.documents):
            raise DocumentNotFoundError(f"No document with id {doc_id!r} is in the index.")
        self._commit([], [doc_id], {})

    def reindex(self, progress: Progress | None = None) -> list[FileReport]:
        """Re-chunk and re-embed every document from its stored original with the current settings
        (embedding model, chunk size), then swap the new index in as one save. Searches keep using
        the old index until the swap. Works on an index built with another embedding model too.

        A document whose original is missing or no longer readable is dropped and reported with
        `ok=False`. Raises IndexCorruptError when the stored index cannot be read at all."""
        progress = progress or no_progress
        with self._write_lock, self._storage.write_lock():
            pointer = self._storage.current_snapshot()
            old = self._storage.read_manifest(pointer) if pointer else self._new_manifest()
            self._chunker = None
            fresh = _State(self._new_manifest(), disk_pointer=pointer)
            fresh.manifest.update(snapshot_id=old["snapshot_id"], sample_seeded=old.get("sample_seeded", False))
            reports: list[FileReport | None] = []
            prepared: list[tuple[int, PreparedDocument, np.ndarray]] = []
            dates: dict[str, str] = {}
            for n, doc in enumerate(old["documents"]):
                progress(0.9 * n / max(len(old["documents"]), 1), f"Re-indexing {doc['name']}")
                try:
                    data = self._uploads.read(doc["doc_id"], doc["name"])
                    ready = prepare(doc["name"], data, self._get_chunker(), float("inf"))
                    prepared.append((len(reports), ready, self.embedder.encode(ready.contexts)))
                    dates[ready.doc_id] = doc["added_at"]
                    reports.append(None)
                except (OSError, IngestError) as exc:
                    reason = str(exc) if isinstance(exc, IngestError) else "its stored original is missing."
                    reports.append(FileReport(doc["name"], False, f"{doc['name']} was dropped: {reason}", "error"))
            progress(0.92, "Saving the index")
            try:
                done = self._write(fresh, prepared, [], {}, added_at=dates)
            except OSError as exc:
                raise _write_error(self.index_dir, exc) from exc
            with self._lock:
                self._state = fresh
                self._dim_checked = True  # the rebuilt index has the embedder's dimension
                self._background = None
            self._prune()
        for i, report in done.items():
            reports[i] = FileReport(report.name, True, f"Re-indexed {_chunks(report.chunks)}.", "added", report.chunks,
                                    report.doc_id)  # fmt: skip
        progress(1.0, _summary(reports))
        return [r for r in reports if r is not None]

    # -- writing --------------------------------------------------------------------------------
    def _commit(
        self,
        prepared: list[tuple[int, PreparedDocument, np.ndarray]],
        delete_ids: list[str],
        manifest_updates: dict[str, Any],
    ) -> dict[int, FileReport]:
        """Save one snapshot with `prepared` added and `delete_ids` removed, then patch memory."""
        if not prepared and not delete_ids and not manifest_updates:
            return {}
        with self._write_lock, self._storage.write_lock():
            state = self._ensure_open()
            if self._storage.current_snapshot() != state.disk_pointer:  # e.g. `python -m rag ingest` meanwhile
                log.info("Another process saved the index in %s; reloading it before this save.", self.index_dir)
                with self._lock:
                    self._state = state = self._load_state()
            try:
                reports = self._write(state, prepared, delete_ids, manifest_updates)
            except OSError as exc:
                raise _write_error(self.index_dir, exc) from exc
            self._prune()
            return reports

    def _write(
        self,
        state: _State,
        prepared: list[tuple[int, PreparedDocument, np.ndarray]],
        delete_ids: list[str],
        manifest_updates: dict[str, Any],
        added_at: dict[str, str] | None = None,
    ) -> dict[int, FileReport]:
        """Write segments and the new snapshot, then apply the change to `state` in memory.
        `added_at` keeps the original dates of re-indexed documents."""
        manifest = copy.deepcopy(state.manifest)
        manifest.update(manifest_updates)
        documents = manifest["documents"]
        by_sha = {d["sha256"]: d for d in documents}
        reports: dict[int, FileReport] = {}
        removals = set(delete_ids)
        additions: list[tuple[dict[str, Any], list[dict[str, Any]], np.ndarray, list[list[str]]]] = []
        next_id = int(manifest["next_vector_id"])
        for i, doc, vectors in prepared:
            known = by_sha.get(doc.sha256)
            if known is not None and known["doc_id"] not in removals:
                same = "" if known["name"] == doc.name else f" as {known['name']}"
                message = f"{doc.name} is already in the index{same}, unchanged."
                reports[i] = FileReport(doc.name, True, message, "unchanged", known["chunks"], known["doc_id"])
                continue
            same_name = [d["doc_id"] for d in documents if d["name"] == doc.name and d["doc_id"] not in removals]
            removals.update(same_name)
            ids = np.arange(next_id, next_id + len(doc.chunks), dtype=np.int64)
            next_id += len(doc.chunks)
            segment = f"{doc.doc_id}-{new_id()}"
            records = [_chunk_record(int(v), c, t) for v, c, t in zip(ids, doc.chunks, doc.terms, strict=True)]
            self._uploads.save(doc.doc_id, doc.name, doc.data)
            self._storage.write_segment(segment, records, vectors)
            entry = {
                "doc_id": doc.doc_id,
                "name": doc.name,
                "sha256": doc.sha256,
                "chunks": len(doc.chunks),
                "added_at": (added_at or {}).get(doc.doc_id) or utc_now(),
                "size_bytes": len(doc.data),
                "segment": segment,
                "upload": f"uploads/{doc.doc_id}/{self._uploads.path(doc.doc_id, doc.name).name}",
                "note": doc.note,
            }
            additions.append((entry, records, vectors, doc.terms))
            by_sha[doc.sha256] = entry
            status = "replaced" if same_name else "added"
            verb = "Replaced the earlier version with" if same_name else "Added"
            note = f" ({doc.note})" if doc.note else ""
            reports[i] = FileReport(doc.name, True, f"{verb} {_chunks(len(doc.chunks))}{note}.", status,
                                    len(doc.chunks), doc.doc_id)  # fmt: skip
        if not additions and not removals and not manifest_updates and added_at is None:
            return reports
        embedder = self.embedder if additions or added_at is not None else None
        manifest["documents"] = [d for d in documents if d["doc_id"] not in removals] + [a[0] for a in additions]
        manifest.update(
            parent_snapshot_id=state.manifest["snapshot_id"],
            snapshot_id=new_id(),
            created_at=utc_now(),
            next_vector_id=next_id,
            keyword_tokenizer=TOKENIZER_VERSION,
            chunk_size=self.settings.chunk_size,
            chunk_overlap=self.settings.chunk_overlap,
        )
        if embedder is not None:
            manifest.update(dim=embedder.dim, effective_chunk_size=self._get_chunker().chunk_size)
        self._storage.commit(manifest)
        with self._lock:  # the disk now has it: make memory match
            if state.vectors is None and manifest["dim"]:
                state.vectors = _vector_store(int(manifest["dim"]))
            for doc_id in removals:
                for vector_id in state.vectors.document_ids(doc_id):
                    state.chunks.pop(int(vector_id), None)
                state.vectors.delete(doc_id)
                state.keywords.remove(doc_id)
            for entry, records, vectors, chunk_terms in additions:
                ids = np.asarray([r["id"] for r in records], np.int64)
                state.vectors.add_vectors(entry["doc_id"], ids, vectors)
                state.keywords.add(entry["doc_id"], ids, chunk_terms)
                for r in records:
                    state.chunks[r["id"]] = _StoredChunk(entry["doc_id"], r["position"], r["text"], r["location"])
            state.manifest = manifest
            state.disk_pointer = manifest["snapshot_id"]
        return reports

    def _prune(self) -> None:
        try:
            kept = self._storage.prune()
            self._uploads.prune({d["doc_id"] for m in kept for d in m.get("documents", [])})
        except (OSError, IndexCorruptError):
            log.exception("pruning old snapshots failed (the index itself is saved)")

    # -- reading ----------------------------------------------------------------------------------
    def search(self, query: str, top_k: int | None = None, fusion: str | None = None) -> list[Passage]:
        """The most relevant passages for `query`, best first; empty when nothing clears the
        relevance floor (see `rag.fusion`), when the query is blank, or when the index is empty.

        `fusion` overrides `settings.fusion` ('rrf', 'dense' or 'keyword') for this call.
        Raises IndexMismatchError when the embedding model does not fit the index."""
        mode = fusion or self.settings.fusion
        query = (query or "").strip()[:MAX_QUERY_CHARS]
        state = self._ensure_open()
        if not query or not state.chunks:
            return []
        vector = self._checked_embedder(state).encode([query])[0] if mode != "keyword" else None
        return self.search_with_vector(query, vector, top_k, fusion)

    def search_with_vector(
        self, query: str, vector: np.ndarray | None, top_k: int | None = None, fusion: str | None = None
    ) -> list[Passage]:
        """`search` for a caller that has already embedded the query with `self.embedder`
        (`vector` of shape (dim,), unit length; None is allowed for fusion 'keyword')."""
        mode = fusion or self.settings.fusion
        top_k = top_k or self.settings.top_k
        query = (query or "").strip()[:MAX_QUERY_CHARS]
        state = self._ensure_open()
        if not query or not state.chunks:
            return []
        background = 0.0
        if mode != "keyword":
            if vector is None:
                raise ValueError(f"fusion {mode!r} needs the query vector")
            if self._background is None:
                self._background = self._checked_embedder(state).encode(list(BACKGROUND_TEXTS))
            background = float((self._background @ vector).max())
        query_terms = terms(query) if mode != "dense" else []
        with self._lock:
            state = self._state
            dense = state.vectors.search(vector, self.settings.dense_k) if mode != "keyword" else []
            keyword = state.keywords.search(query_terms, self.settings.keyword_k) if query_terms else []
            ranked = fuse(dense, keyword, mode, top_k, self.floors, background)
            out = []
            for vector_id, score in ranked:
                chunk = state.chunks[vector_id]
                out.append(Passage(chunk.text, state.names[chunk.doc_id], chunk.location, float(score), chunk.doc_id,
                                   f"{chunk.doc_id}:{chunk.position}"))  # fmt: skip
            return out

    @property
    def snapshot_id(self) -> str:
        """Identifies the index contents; changes on every add or delete ("empty" before the first)."""
        return self._ensure_open().manifest["snapshot_id"]

    def list_documents(self) -> list[DocumentInfo]:
        """Documents in the order they were added."""
        with self._lock:
            docs = list(self._ensure_open().documents)
        return [DocumentInfo(d["doc_id"], d["name"], d["chunks"], d["added_at"], d["sha256"], d["size_bytes"])
                for d in docs]  # fmt: skip

    def stats(self) -> IndexStats:
        """Counts, model, chunking and disk use of the loaded index (cheap; walks the index folder)."""
        with self._lock:
            state = self._ensure_open()
            m = state.manifest
            return IndexStats(
                documents=len(m["documents"]),
                chunks=len(state.chunks),
                snapshot_id=m["snapshot_id"],
                updated_at=m["created_at"],
                embed_model=m["embed_model"],
                dim=int(m["dim"] or 0),
                chunk_size=int(m["chunk_size"]),
                chunk_overlap=int(m["chunk_overlap"]),
                effective_chunk_size=int(m["effective_chunk_size"] or 0),
                fusion=self.settings.fusion,
                index_dir=str(self.index_dir),
                disk_bytes=self._storage.disk_bytes() + _folder_bytes(self._uploads.root),
            )

    @property
    def sample_seeded(self) -> bool:
        """Whether the shipped sample documents were ingested once (see `ensure_sample_index`)."""
        return bool(self._ensure_open().manifest.get("sample_seeded"))


def ensure_sample_index(
    settings: Settings, sample_dir: str | Path, progress: Progress | None = None, kb: KnowledgeBase | None = None
) -> KnowledgeBase:
    """Open the knowledge base and, the first time only (no documents and never seeded), ingest the
    shipped sample documents from `sample_dir`. An index a user emptied stays empty. Returns the
    open knowledge base. Raises what `KnowledgeBase.open` raises; a missing `sample_dir` is logged
    and leaves the index empty."""
    kb = kb or KnowledgeBase(settings)
    kb.open()
    if kb.list_documents() or kb.sample_seeded:
        return kb
    folder = Path(sample_dir)
    if not folder.is_dir():
        log.warning("No sample knowledge base at %s; starting with an empty index.", folder)
        return kb
    items = [(path.name, path) for path in _folder_files(folder, recursive=True)]
    reports = kb._add(items, progress or no_progress, {"sample_seeded": True})
    for report in reports:
        if not report.ok:
            log.warning("sample document skipped: %s", report.message)
    return kb


def _write_error(index_dir: Path, exc: OSError) -> IndexWriteError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return IndexWriteError(f"The index in {index_dir} could not be saved ({reason}); the previous version is kept.")


def _folder_files(folder: str | Path, recursive: bool) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise IngestError(f"{folder} is not a folder.")
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p for p in pattern if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _chunk_record(vector_id: int, chunk: Chunk, chunk_terms: list[str]) -> dict[str, Any]:
    return {
        "id": vector_id,
        "position": chunk.position,
        "text": chunk.text,
        "location": chunk.location,
        "page": chunk.page,
        "heading": chunk.heading,
        "terms": " ".join(chunk_terms),
    }


def _record_chunk(record: dict[str, Any]) -> Chunk:
    return Chunk(record["text"], record["position"], record["location"], record.get("page"), record.get("heading", ""))


def _embedding_device(setting: str) -> str:
    if setting == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def _summary(reports: Iterable[FileReport | None]) -> str:
    done = [r for r in reports if r is not None]
    failed = sum(1 for r in done if not r.ok)
    return f"Done: {len(done) - failed} of {len(done)} files in the index" + (f", {failed} refused." if failed else ".")


def _chunks(n: int) -> str:
    return f"{n} chunk" if n == 1 else f"{n} chunks"

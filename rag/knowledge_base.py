"""`KnowledgeBase`: the facade of `rag`, one public API over the parts that do the work.

The company's documents as a searchable, persistent, thread-safe index; the app, `python -m rag`,
the scorecard, the benchmark and the training script use this class, which only wires the parts:

    rag.preparation   one file -> a checked, read, chunked document
    rag.ingestion     adding, deleting, re-indexing: embed, save a snapshot, patch memory, prune
    rag.storage       segments, snapshots and CURRENT on disk (rag.manifest: what a snapshot holds)
    rag.memory_index  the loaded index (FAISS + BM25 + chunk table) and the locks around it
    rag.search        a query -> floored, fused, cited passages
    rag.embedding     the shared embedding model, checked once against the index

Paths come from `core.layout.DataLayout(data_dir)`: `index/` and `uploads/`. Many threads
may search while one writes: the slow part of a write (reading, chunking, embedding) runs outside
the lock, and only the patch or swap of the in-memory index is done under it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from answer.ports import Passage, Retriever, Snapshot
from core.dates import parse_date
from core.layout import DataLayout
from core.settings import RetrievalSettings, Settings, UploadSettings
from rag.embedding import Embedder, IndexEmbedder, canonical_name
from rag.errors import IndexUnavailableError, RagError
from rag.fusion import Floors
from rag.ingestion import Ingestion
from rag.manifest import DocumentEntry, Manifest, RemovedDocument
from rag.memory_index import LiveIndex
from rag.preparation import folder_files
from rag.records import DocumentInfo, FileReport, IndexStats, Placement, Progress, no_progress
from rag.search import Searcher
from rag.storage import IndexStorage
from rag.uploads import UploadStore

log = logging.getLogger(__name__)


class KnowledgeBase:
    """Load-or-create the index under `data_dir`, add and delete documents, search.

    Implements `answer.ports.Retriever`. Every method is thread-safe. Nothing is read from disk
    or loaded until the first call that needs it (`open` does it explicitly). Every error it
    raises is a `rag.errors.RagError` whose message is one sentence for the user.
    """

    def __init__(
        self,
        data_dir: Path,
        retrieval: RetrievalSettings,
        limits: UploadSettings,
        device: str = "auto",
        embedder: Embedder | None = None,
        floors: Floors | None = None,
    ):
        """`retrieval`: how documents are split, embedded and searched; `limits`: what people may upload and for
        how long it is kept; `device`: where the embedding model runs ('auto', 'cpu', 'cuda')."""
        self.retrieval, self.limits = retrieval, limits
        layout = DataLayout(data_dir)
        self.index_dir = layout.index
        if retrieval.index_backend == "postgres":  # the index, the originals and the writer's lock in the database
            from rag.database import Database
            from rag.pg_storage import PgStorage, PgUploads

            db = Database.connect(retrieval.database_url)
            self._storage, self._uploads = PgStorage(db), PgUploads(db)
        else:
            self._storage, self._uploads = IndexStorage(layout.index), UploadStore(layout.document_uploads)
        self._embedding = IndexEmbedder(retrieval.embed_model, device, layout.index, embedder)
        name = canonical_name(retrieval.embed_model)
        self._live = LiveIndex(self._storage, Manifest.empty(name, retrieval.chunk_size, retrieval.chunk_overlap), name)
        self._ingestion = Ingestion(retrieval, limits, self._storage, self._uploads, self._live, self._embedding)
        self._searcher = Searcher(retrieval, self._live, self._embedding, floors or Floors())
        self._watcher: threading.Thread | None = None
        self._stop_watching = threading.Event()

    @classmethod
    def from_settings(
        cls, settings: Settings, embedder: Embedder | None = None, floors: Floors | None = None
    ) -> KnowledgeBase:
        """The knowledge base of the app's settings: its data directory, retrieval and upload groups, and the
        model's device for the embedding model."""
        return cls(settings.data_dir, settings.retrieval, settings.uploads, settings.model.device, embedder, floors)

    # -- opening ------------------------------------------------------------------------------
    def open(self) -> KnowledgeBase:
        """Load the current snapshot, or start an empty index when none exists. Returns self.

        A snapshot that cannot be read is skipped for the newest older one that can (logged).
        Raises IndexMismatchError when the index was built with another embedding model than
        `retrieval.embed_model` (run `reindex()` to rebuild it with the new one), and
        IndexCorruptError when snapshots exist but none can be read.
        """
        self._live.swap(self._live.load())
        return self

    def watch(self, interval: float = 2.0) -> KnowledgeBase:
        """Follow the disk: every `interval` seconds, reload the index if another process (the CLI, a
        second app) saved a new snapshot, so its documents are searchable within seconds, without a
        restart. A daemon thread; a round is skipped while this process is writing. Returns self."""
        if interval <= 0 or self._watcher is not None:
            return self
        self._stop_watching.clear()

        def follow() -> None:
            last_sweep, unreachable = 0.0, False
            while not self._stop_watching.wait(interval):
                if time.monotonic() - last_sweep >= EXPIRY_SWEEP_S:
                    last_sweep = time.monotonic()
                    try:
                        self.expire_abandoned()
                    except Exception:  # the disk or another writer; the next sweep tries again
                        log.warning("expiring abandoned private documents failed", exc_info=True)
                if not self._live.write_lock.acquire(blocking=False):
                    continue  # this process is writing; it reloads before it saves anyway
                try:
                    if self._live.reload_if_saved_elsewhere():
                        log.info("index reloaded: another process saved snapshot %s", self.snapshot_id)
                    if unreachable:
                        log.warning("the index's database answers again")
                    unreachable = False
                except IndexUnavailableError as exc:  # the database is away: say so once, not every round
                    if not unreachable:
                        log.warning("%s Searches say so until it is back; trying every %.1f s.", exc, interval)
                    unreachable = True
                except Exception:  # a half-written snapshot of another process: try again next round
                    log.warning("index reload failed; trying again", exc_info=True)
                finally:
                    self._live.write_lock.release()

        self._watcher = threading.Thread(target=follow, name="index-watch", daemon=True)
        self._watcher.start()
        return self

    def expire_abandoned(self, now: datetime | None = None) -> list[DocumentInfo]:
        """Delete private documents past their owner's time: a browser session's `upload_ttl_hours` after
        they were added (nobody can reach them once the tab is gone), a signed-in person's
        `user_upload_ttl_days` (0: kept). One save for all of them; returns what was deleted. The watcher
        (`watch`) runs this every few minutes."""
        now = now or datetime.now(timezone.utc)
        gone = []
        for d in self._live.current().manifest.documents:
            if d.owner is None:
                continue
            ttl = self.limits.upload_ttl_s(d.owner)
            added = parse_date(d.added_at)
            if ttl > 0 and added is not None and (now - added).total_seconds() > ttl:
                gone.append(d)
        if gone:
            self._ingestion.commit([], [d.doc_id for d in gone])
            log.info("expired %d abandoned private documents", len(gone))
        return [_info(d) for d in gone]

    def stop_watching(self) -> None:
        if self._watcher is not None:
            self._stop_watching.set()
            self._watcher.join(timeout=10)
            self._watcher = None

    def refresh(self) -> bool:
        """Reload the index if another process (say `python -m rag ingest`) saved it since this one
        loaded it; searches keep using the loaded index meanwhile. Returns True when it reloaded.
        Raises what `open` raises."""
        with self._live.write_lock:
            return self._live.reload_if_saved_elsewhere()

    @property
    def embedder(self) -> Embedder:
        """The embedding model, shared per process (`rag.embedding.get_embedder`); it loads on first use."""
        return self._embedding.model

    @property
    def floors(self) -> Floors:
        """The relevance floor's thresholds (see `rag.fusion`)."""
        return self._searcher.floors

    @floors.setter
    def floors(self, floors: Floors) -> None:
        self._searcher.floors = floors

    # -- adding, deleting, rebuilding -----------------------------------------------------------
    def add_files(
        self,
        paths: Sequence[str | Path],
        progress: Progress | None = None,
        *,
        seed: bool = False,
        placement: Placement | None = None,
    ) -> list[FileReport]:
        """Add files to the index; a file already present (same bytes) is left as is, and one with the
        same name but new content is refused unless `placement.replace` (then the old version stays in
        an earlier snapshot, for `python -m rag restore`). `placement` says which collection (the shared
        one by default) and whose quota. One save per call (per 64 MiB).

        Returns one report per path, in order. A bad file (missing, empty, binary, damaged,
        undecodable, too large, unsupported) gets `ok=False` and a one-sentence message, and
        changes nothing; the good files of the same batch still go in. Raises RagError only for
        problems with the index itself (a model mismatch, the disk, another writer). `seed=True`
        also records that the shipped sample documents were ingested (see `sample_seeded`).
        """
        items = [(Path(p).name, Path(p)) for p in paths]
        return self._ingestion.add(items, progress or no_progress, seed=seed, placement=placement)

    def add_data(
        self, files: Sequence[tuple[str, bytes]], progress: Progress | None = None, placement: Placement | None = None
    ) -> list[FileReport]:
        """`add_files` for uploads held in memory: (file name, bytes) pairs."""
        return self._ingestion.add(list(files), progress or no_progress, placement=placement)

    def add_folder(
        self,
        folder: str | Path,
        progress: Progress | None = None,
        recursive: bool = True,
        *,
        seed: bool = False,
        placement: Placement | None = None,
    ) -> list[FileReport]:
        """Add every file under `folder` (hidden files skipped). Files of unsupported types get an
        error report each. Raises IngestError when `folder` is not a folder."""
        return self.add_files(folder_files(folder, recursive), progress, seed=seed, placement=placement)

    def delete(self, doc_id: str, allowed: Collection[str | None] | None = None) -> DocumentInfo:
        """Remove one document (its chunks, vectors and, once no kept snapshot holds it, its stored
        original) without a rebuild; return what was deleted. `allowed`: the collections the caller may
        change (owner tags, None for the shared one); None: all (the operator). Raises
        DocumentNotFoundError for an unknown id or another person's private document, NotAllowedError
        for a shared document the caller may not change."""
        return _info(self._ingestion.delete(doc_id, allowed))

    def snapshots(self) -> list[Manifest]:
        """The snapshots kept on disk, newest first (the current one among them); unreadable ones left out."""
        found = []
        for snapshot_id in self._storage.snapshot_ids():
            try:
                found.append(self._storage.read_manifest(snapshot_id))
            except RagError:
                continue
        return found

    def restore(self, snapshot_id: str) -> tuple[Manifest, Manifest]:
        """Bring back the shared documents of the kept snapshot `snapshot_id` (a replaced or deleted
        document returns; ones added since go), as a new snapshot, so a restore can be undone the same
        way. Private documents stay as they are. Returns (before, after). Raises IndexCorruptError (one
        sentence) when that snapshot is not kept or cannot be combined with the index as it is."""
        result = self._ingestion.restore(snapshot_id)
        self._searcher.forget_background()
        return result

    def restore_document(self, name: str, progress: Progress | None = None) -> FileReport:
        """Bring back one deleted or replaced shared document by file name (or id) from the shared history,
        which keeps each for `shared_history_days` whatever else changes (private churn, a re-index). It is
        re-read from its stored original with today's settings and replaces a shared document of that name.
        Raises DocumentNotFoundError when the history holds no such document."""
        report = self._ingestion.restore_document(name, progress or no_progress)
        self._searcher.forget_background()
        return report

    def shared_history(self) -> tuple[RemovedDocument, ...]:
        """The deleted or replaced shared documents that `restore_document` can bring back, oldest first."""
        return self._live.current().manifest.shared_history

    def reindex(self, progress: Progress | None = None) -> list[FileReport]:
        """Re-chunk and re-embed every document from its stored original with the current settings
        (embedding model, chunk size), then swap the new index in as one save. Searches keep using
        the old index until the swap. Works on an index built with another embedding model too.

        A document whose original is missing or no longer readable is dropped and reported with
        `ok=False`. Raises IndexCorruptError when the stored index cannot be read at all."""
        reports = self._ingestion.reindex(progress or no_progress)
        self._searcher.forget_background()
        return reports

    # -- reading ----------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        top_k: int | None = None,
        fusion: str | None = None,
        floors: Floors | None = None,
        viewer: str | None = None,
    ) -> list[Passage]:
        """The most relevant passages for `query`, best first; empty when nothing clears the
        relevance floor (see `rag.fusion`), when the query is blank, or when the index is empty.

        `fusion` overrides `retrieval.fusion` ('rrf', 'dense' or 'keyword') and `floors` the relevance
        floor for this call (`Floors.off()` ranks every candidate). Only shared documents are searched,
        plus the private ones of `viewer` (an owner tag). Raises IndexMismatchError when the
        embedding model does not fit the index."""
        return self._searcher.search(query, top_k, fusion, floors, viewer)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings of `texts` with the index's model (for matching sentences to questions
        and answers; see `answer.evidence`)."""
        return self.embedder.encode(list(texts))

    def search_with_vector(
        self,
        query: str,
        vector: np.ndarray | None,
        top_k: int | None = None,
        fusion: str | None = None,
        viewer: str | None = None,
    ) -> list[Passage]:
        """`search` for a caller that has already embedded the query with `self.embedder`
        (`vector` of shape (dim,), unit length; None is allowed for fusion 'keyword')."""
        return self._searcher.search_with_vector(query, vector, top_k, fusion, viewer=viewer)

    @property
    def snapshot(self) -> Snapshot:
        """Id and creation time of the loaded index (from memory; `rag.read_snapshot` reads the disk)."""
        return self._live.current().manifest.snapshot

    @property
    def snapshot_id(self) -> str:
        """Identifies the index contents; changes on every add or delete ("empty" before the first)."""
        return self._live.current().manifest.snapshot_id

    @property
    def sample_seeded(self) -> bool:
        """Whether the shipped sample documents were ingested once (see `ensure_sample_index`)."""
        return self._live.current().manifest.sample_seeded

    def list_documents(self) -> list[DocumentInfo]:
        """Every document, shared and private, in the order they were added (for the operator)."""
        return [_info(d) for d in self._live.current().manifest.documents]

    def documents_for(self, viewer: str | None) -> list[DocumentInfo]:
        """What one person sees: their own private documents first (newest first: what they just added is on
        top), then the shared ones in the order they were added (`viewer`: their owner tag; None: the shared
        ones only)."""
        docs = self._live.current().manifest.documents
        mine = [_info(d) for d in reversed(docs) if viewer and d.owner == viewer]
        return mine + [_info(d) for d in docs if d.owner is None]

    def headings(self, viewer: str | None) -> dict[str, list[str]]:
        """The section headings ("Install > From source") of each document `viewer` sees, by document id, in
        document order, each once; a document whose format has no headings (text, CSV) has none."""
        visible = {d.doc_id for d in self.documents_for(viewer)}
        with self._live.lock:
            chunks = self._live.current().outline(visible)
        out: dict[str, list[str]] = {}
        for doc_id, _, location in sorted(chunks):
            seen = out.setdefault(doc_id, [])
            heading = location.removeprefix("section ") if location.startswith("section ") else ""
            if heading and heading not in seen:
                seen.append(heading)
        return out

    def for_owner(self, viewer: str | None) -> Retriever:
        """A retriever over the shared documents plus `viewer`'s private ones (`answer.ports.Retriever`,
        with `encode`); what one person's RAG and Hybrid answers search."""
        return OwnerView(self, viewer)

    def stats(self) -> IndexStats:
        """Counts, model, chunking and disk use of the loaded index (cheap; walks the index folder)."""
        with self._live.lock:
            index = self._live.current()
            m = index.manifest
            return IndexStats(
                documents=len(m.documents),
                chunks=index.chunk_count,
                snapshot_id=m.snapshot_id,
                updated_at=m.created_at,
                embed_model=m.embed_model,
                dim=m.dim or 0,
                chunk_size=m.chunk_size,
                chunk_overlap=m.chunk_overlap,
                effective_chunk_size=m.effective_chunk_size or 0,
                fusion=self.retrieval.fusion,
                index_dir=str(self._storage.root),
                disk_bytes=self._storage.disk_bytes() + self._uploads.disk_bytes(),
            )


EXPIRY_SWEEP_S = 300.0


def _info(d: DocumentEntry) -> DocumentInfo:
    return DocumentInfo(d.doc_id, d.name, d.chunks, d.added_at, d.sha256, d.size_bytes, d.owner)


class OwnerView:
    """One person's view of a knowledge base: the shared documents and their own private ones."""

    def __init__(self, kb: KnowledgeBase, viewer: str | None):
        self.kb = kb
        self.viewer = viewer

    def search(self, query: str, top_k: int | None = None) -> list[Passage]:
        return self.kb.search(query, top_k, viewer=self.viewer)

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.kb.encode(texts)

    @property
    def snapshot(self) -> Snapshot:
        return self.kb.snapshot


def ensure_sample_index(kb: KnowledgeBase, sample_dir: str | Path, progress: Progress | None = None) -> KnowledgeBase:
    """Open the knowledge base and, the first time only (no documents and never seeded), ingest the
    shipped sample documents from `sample_dir`. An index a user emptied stays empty. Returns the
    open knowledge base. Raises what `KnowledgeBase.open` raises; a missing `sample_dir` is logged
    and leaves the index empty."""
    kb.open()
    if kb.list_documents() or kb.sample_seeded:
        return kb
    folder = Path(sample_dir)
    if not folder.is_dir():
        log.warning("No sample knowledge base at %s; starting with an empty index.", folder)
        return kb
    for report in kb.add_folder(folder, progress, recursive=True, seed=True):
        if not report.ok:
            log.warning("sample document skipped: %s", report.message)
    return kb

"""Ingestion: files in, snapshots out. Prepares and embeds a batch of files, saves it (in commits
of at most 64 MiB) as new snapshots, patches the in-memory index to match, deletes documents,
re-indexes everything from the stored originals, and prunes old snapshots after each save.

The slow part of a write (reading, chunking, embedding) runs outside every lock. A save holds
`LiveIndex.write_lock` (one writer per process) and `IndexStorage.write_lock` (one across
processes); only the patch of the in-memory index holds `LiveIndex.lock`, which searches share.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from core.bm25_tokens import TOKENIZER_VERSION, terms
from core.dates import parse_date
from core.settings import RetrievalSettings, UploadSettings
from rag.chunking import Chunker, context_text, effective_chunk_size
from rag.embedding import IndexEmbedder
from rag.errors import DocumentNotFoundError, IndexCorruptError, IndexWriteError, IngestError, NotAllowedError
from rag.manifest import FORMAT_VERSION, DocumentEntry, Manifest, RemovedDocument
from rag.memory_index import LiveIndex, MemoryIndex, NewDocument, check_model
from rag.preparation import PreparedDocument, prepare, read_source
from rag.readers.bounded import ReadBounds
from rag.records import FileReport, Placement, Progress
from rag.storage import IndexStorage, chunk_record, new_id, record_chunk, utc_now
from rag.uploads import UploadStore

log = logging.getLogger(__name__)

COMMIT_BYTES = 64 * 1024 * 1024
_LONG_AGO = datetime.min.replace(tzinfo=timezone.utc)  # an unreadable removal time: past every cutoff

Prepared = tuple[int, PreparedDocument, np.ndarray]
"""(position in the caller's batch, the prepared document, its vectors)."""


class Ingestion:
    """Every write to one knowledge base. Thread-safe; see the module docstring for the locking."""

    def __init__(
        self,
        retrieval: RetrievalSettings,
        limits: UploadSettings,
        storage: IndexStorage,
        uploads: UploadStore,
        live: LiveIndex,
        embedding: IndexEmbedder,
    ):
        self.retrieval, self.limits = retrieval, limits
        self._storage = storage
        self._uploads = uploads
        self._live = live
        self._embedding = embedding
        self._chunker: Chunker | None = None

    @property
    def bounds(self) -> ReadBounds:
        """What reading one file may take (`parse_timeout_s`, `parse_memory_mb`)."""
        return ReadBounds(self.limits.parse_timeout_s, self.limits.parse_memory_mb)

    @property
    def chunker(self) -> Chunker:
        """Splits text in the embedding model's tokens; chunk_size is capped to what the model reads."""
        if self._chunker is None:
            embedder = self._embedding.model
            size = effective_chunk_size(self.retrieval.chunk_size, embedder.max_tokens)
            if size < self.retrieval.chunk_size:
                log.warning(
                    "chunk_size %d is more than %s reads at once (%d tokens); chunks will be %d tokens.",
                    self.retrieval.chunk_size,
                    embedder.name,
                    embedder.max_tokens,
                    size,
                )
            self._chunker = Chunker(size, self.retrieval.chunk_overlap, embedder.tokenize)
        return self._chunker

    # -- adding and deleting ----------------------------------------------------------------------
    def add(
        self,
        items: Sequence[tuple[str, Path | bytes]],
        progress: Progress,
        seed: bool = False,
        placement: Placement | None = None,
    ) -> list[FileReport]:
        """Prepare, embed and save (name, file or bytes) pairs; one report per item, in order. A bad
        file gets an error report and changes nothing. `seed` also records in the manifest that the
        shipped sample documents were ingested. `placement`: which collection they go to and whose
        quota they count against (default: the shared one, by the operator). Raises RagError for
        problems of the index itself."""
        placement = placement or Placement()
        embedder = self._embedding.checked(self._live.current().manifest.dim)
        limit = self.limits.max_upload_mb
        reports: dict[int, FileReport] = {}
        pending: list[Prepared] = []
        total = max(len(items), 1)
        documents = self._live.current().manifest.documents
        quota = Quota(self.limits, documents, placement.added_by)
        for i, (name, source) in enumerate(items):
            progress(0.95 * i / total, f"Reading {name}")
            try:
                data = read_source(source, limit)
                # the quota first, before any parsing or embedding (`commit` checks again, against races)
                refusal = quota.before_reading(name, data, documents, placement)
                if refusal:
                    reports[i] = FileReport(name, False, refusal, "error")
                    continue
                doc = prepare(name, data, self.chunker, limit, self.bounds)
                doc.owner = placement.owner
                progress(0.95 * (i + 0.3) / total, f"Embedding {len(doc.chunks)} chunks of {name}")
                pending.append((i, doc, embedder.encode(doc.contexts)))
            except IngestError as exc:
                reports[i] = FileReport(name, False, str(exc), "error")
            except Exception as exc:  # a reader bug must not sink the whole batch
                log.exception("ingesting %s failed", name)
                reports[i] = FileReport(name, False, f"{name} could not be read ({type(exc).__name__}).", "error")
            if sum(len(d.data) for _, d, _ in pending) > COMMIT_BYTES:  # bound the memory a big folder takes
                progress(0.95 * (i + 0.9) / total, "Saving the index")
                reports.update(self.commit(pending, placement=placement))
                pending = []
        progress(0.95, "Saving the index")
        reports.update(self.commit(pending, seed=seed, placement=placement))
        ordered = [reports[i] for i in sorted(reports)]
        progress(1.0, summary(ordered))
        return ordered

    def delete(self, doc_id: str, allowed: Collection[str | None] | None = None) -> DocumentEntry:
        """Remove one document without a rebuild; return its entry. `allowed`: the collections the caller
        may change (owner tags; None for the shared one); None means every one (the operator).

        Raises DocumentNotFoundError for an unknown id or another person's private document (the same
        sentence: nobody learns what others hold), NotAllowedError for a shared one the caller may not change."""
        entry = self._live.current().manifest.document(doc_id)
        if entry is None or (allowed is not None and entry.owner is not None and entry.owner not in allowed):
            raise DocumentNotFoundError(f"No document with id {str(doc_id)[:40]!r} is in your documents.")
        if allowed is not None and entry.owner is None and None not in allowed:
            raise NotAllowedError(
                f"{entry.name} is in the shared knowledge base, which the operator of this app has not let you change."
            )
        self.commit([], [doc_id])
        return entry

    def commit(
        self,
        prepared: list[Prepared],
        delete_ids: Iterable[str] = (),
        seed: bool = False,
        placement: Placement | None = None,
    ) -> dict[int, FileReport]:
        """Save one snapshot with `prepared` added and `delete_ids` removed (a document whose bytes are
        already in the index stays as it is; one with the same name is replaced), then patch memory.
        Returns a report per prepared document, by its batch position. Nothing is written when
        there is nothing to change. Raises IndexWriteError when the disk refuses the save."""
        delete_ids = list(delete_ids)
        if not prepared and not delete_ids and not seed:
            return {}
        with self._live.write_lock, self._storage.write_lock():
            if self._live.reload_if_saved_elsewhere():  # e.g. `python -m rag ingest` meanwhile
                log.info("Another process saved the index in %s; reloaded it before this save.", self._storage.root)
            try:
                reports = self._save(self._live.current(), prepared, delete_ids, seed, placement=placement)
            except OSError as exc:
                raise write_error(self._storage.root, exc) from exc
            self._prune()
            return reports

    # -- rebuilding -------------------------------------------------------------------------------
    def reindex(self, progress: Progress) -> list[FileReport]:
        """Re-chunk and re-embed every document from its stored original with the current settings,
        then swap the new index in as one save. A document whose original is missing or no longer
        readable is dropped and reported. Raises IndexCorruptError when the stored index cannot be read."""
        with self._live.write_lock, self._storage.write_lock():
            pointer = self._storage.current_snapshot()
            old = self._storage.read_manifest(pointer) if pointer else self._live.empty
            self._chunker = None
            kept = {
                "snapshot_id": old.snapshot_id,
                "sample_seeded": old.sample_seeded,
                "shared_history": old.shared_history,  # restorable by name across the rebuild
            }
            fresh = self._storage.new_index(dataclasses.replace(self._live.empty, **kept), pointer)
            reports: list[FileReport | None] = []
            prepared: list[Prepared] = []
            dates: dict[str, str] = {}
            entries: dict[str, DocumentEntry] = {}
            for n, doc in enumerate(old.documents):
                progress(0.9 * n / max(len(old.documents), 1), f"Re-indexing {doc.name}")
                try:
                    data = self._uploads.read(doc.doc_id, doc.name)
                    ready = prepare(doc.name, data, self.chunker, float("inf"), self.bounds)
                    ready.owner = doc.owner
                    entries[ready.doc_id] = doc
                    prepared.append((len(reports), ready, self._embedding.model.encode(ready.contexts)))
                    dates[ready.doc_id] = doc.added_at
                    reports.append(None)
                except (OSError, IngestError) as exc:
                    reason = str(exc) if isinstance(exc, IngestError) else "its stored original is missing."
                    reports.append(FileReport(doc.name, False, f"{doc.name} was dropped: {reason}", "error"))
            progress(0.92, "Saving the index")
            try:
                done = self._save(fresh, prepared, [], False, added_at=dates, kept=entries)
            except OSError as exc:
                raise write_error(self._storage.root, exc) from exc
            self._live.swap(fresh)
            self._embedding.trust()  # the rebuilt index has the embedder's dimension
            self._prune()
        for i, report in done.items():
            reports[i] = FileReport(
                report.name, True, f"Re-indexed {chunk_count(report.chunks)}.", "added", report.chunks, report.doc_id
            )
        progress(1.0, summary(reports))
        return [r for r in reports if r is not None]

    # -- saving -----------------------------------------------------------------------------------
    def _save(
        self,
        index: MemoryIndex,
        prepared: list[Prepared],
        delete_ids: list[str],
        seed: bool,
        added_at: dict[str, str] | None = None,
        placement: Placement | None = None,
        kept: dict[str, DocumentEntry] | None = None,
    ) -> dict[int, FileReport]:
        """Write segments, originals and the new snapshot, then apply the change to `index` in memory.
        `added_at` keeps the original dates of re-indexed documents (and forces a save); `kept` their
        entries' owners. A document goes into `placement`'s collection: one with the same bytes there
        is left as it is; one with the same name is refused unless `placement.replace`; one over the
        sender's quota is refused."""
        placement = placement or Placement()
        manifest = index.manifest
        documents = list(manifest.documents)
        reports: dict[int, FileReport] = {}
        removals = set(delete_ids)
        additions: list[NewDocument] = []
        next_id = manifest.next_vector_id
        quota = Quota(self.limits, documents, placement.added_by)
        for i, doc, vectors in prepared:
            collection = [d for d in documents if d.owner == doc.owner and d.doc_id not in removals]
            where = Placement(doc.owner).collection
            # the same bytes already in this collection, or in the shared one a private uploader searches anyway
            visible = collection + [
                d for d in documents if d.owner is None and doc.owner is not None and d.doc_id not in removals
            ]
            known = next((d for d in visible if d.sha256 == doc.sha256), None)
            if known is not None:
                same = "" if known.name == doc.name else f" as {known.name}"
                message = f"{doc.name} is already in {Placement(known.owner).collection}{same}, unchanged."
                reports[i] = FileReport(doc.name, True, message, "unchanged", known.chunks, known.doc_id)
                continue
            same_name = [d.doc_id for d in collection if d.name == doc.name]
            if same_name and not placement.replace:
                reports[i] = FileReport(
                    doc.name,
                    False,
                    (
                        f"{doc.name} was not added: a different document of that name is already in {where}; rename "
                        "the file, or choose to replace it (the old version stays recoverable)."
                    ),
                    "error",
                )
                continue
            refusal = quota.refusal(doc.name, len(doc.data), [d for d in collection if d.doc_id in same_name])
            if refusal:
                reports[i] = FileReport(doc.name, False, refusal, "error")
                continue
            removals.update(same_name)
            ids = np.arange(next_id, next_id + len(doc.chunks), dtype=np.int64)
            next_id += len(doc.chunks)
            segment = f"{doc.doc_id}-{new_id()}"
            records = [chunk_record(int(v), c, t) for v, c, t in zip(ids, doc.chunks, doc.terms, strict=True)]
            upload = self._uploads.save(doc.doc_id, doc.name, doc.data)
            self._storage.write_segment(segment, records, vectors)
            entry = DocumentEntry(
                doc_id=doc.doc_id,
                name=doc.name,
                sha256=doc.sha256,
                chunks=len(doc.chunks),
                segment=segment,
                added_at=(added_at or {}).get(doc.doc_id) or utc_now(),
                size_bytes=len(doc.data),
                upload=upload,
                note=doc.note,
                owner=doc.owner,
                added_by=kept[doc.doc_id].added_by if kept and doc.doc_id in kept else placement.added_by,
            )
            additions.append(NewDocument(entry, records, vectors, doc.terms))
            documents.append(entry)
            quota.count(entry)
            verb = "Replaced the earlier version with" if same_name else "Added"
            note = f" ({doc.note})" if doc.note else ""
            private = f" to {where}" if doc.owner is not None else ""
            reports[i] = FileReport(
                doc.name,
                True,
                f"{verb} {chunk_count(len(doc.chunks))}{private}{note}.",
                "replaced" if same_name else "added",
                len(doc.chunks),
                doc.doc_id,
            )
        if not additions and not removals and not seed and added_at is None:
            return reports
        now_documents = tuple(d for d in manifest.documents if d.doc_id not in removals) + tuple(
            a.entry for a in additions
        )
        changes = {
            "documents": now_documents,
            "shared_history": self._history(manifest, now_documents),
            "format": FORMAT_VERSION,
            "parent_snapshot_id": manifest.snapshot_id,
            "snapshot_id": new_id(),
            "created_at": utc_now(),
            "next_vector_id": next_id,
            "keyword_tokenizer": TOKENIZER_VERSION,
            "chunk_size": self.retrieval.chunk_size,
            "chunk_overlap": self.retrieval.chunk_overlap,
            "sample_seeded": manifest.sample_seeded or seed,
        }
        if additions or added_at is not None:
            changes.update(dim=self._embedding.model.dim, effective_chunk_size=self.chunker.chunk_size)
        saved = dataclasses.replace(manifest, **changes)
        self._storage.commit(saved)
        with self._live.lock:  # the disk now has it: make memory match
            index.apply(saved, removals, additions)
        return reports

    def restore(self, snapshot_id: str) -> tuple[Manifest, Manifest]:
        """Make the shared documents of an earlier snapshot current again, as a new snapshot (so the
        restore itself can be undone); people's private documents stay as they are now. Works across a
        re-index: a document whose chunks are not in today's index gets a copy of its segment under new
        vector ids (no re-embedding). Returns (the manifest before, the manifest after). Raises
        IndexCorruptError when `snapshot_id` is not a kept, readable snapshot of this embedding model."""
        with self._live.write_lock, self._storage.write_lock():
            self._live.reload_if_saved_elsewhere()
            before = self._live.current().manifest
            if snapshot_id not in self._storage.snapshot_ids():
                raise IndexCorruptError(
                    f"No snapshot {str(snapshot_id)[:60]!r} is kept in {self._storage.root}; "
                    "`python -m rag snapshots` lists the ones there are."
                )
            old = self._storage.read_manifest(snapshot_id)
            check_model(old, before.embed_model, self._storage.root)
            try:
                shared, next_id = self._renumbered(old, before)
            except OSError as exc:
                raise write_error(self._storage.root, exc) from exc
            documents = shared + tuple(d for d in before.documents if d.owner is not None)
            restored = dataclasses.replace(
                before,
                documents=documents,
                shared_history=self._history(before, documents),
                snapshot_id=new_id(),
                parent_snapshot_id=before.snapshot_id,
                created_at=utc_now(),
                next_vector_id=next_id,
                dim=before.dim or old.dim,
            )
            fresh = self._storage.load_index(restored)  # reads every segment first
            if fresh.chunk_count != sum(d.chunks for d in documents):
                raise IndexCorruptError(
                    f"The snapshot {snapshot_id} does not match the segments it names in {self._storage.root}; "
                    "restore the whole index folder from a backup instead."
                )
            try:
                self._storage.commit(fresh.manifest)
            except OSError as exc:
                raise write_error(self._storage.root, exc) from exc
            fresh.disk_pointer = fresh.manifest.snapshot_id
            self._live.swap(fresh)
            self._prune()
            return before, fresh.manifest

    def _renumbered(self, old: Manifest, now: Manifest) -> tuple[tuple[DocumentEntry, ...], int]:
        """`old`'s shared documents, each one whose segment today's index does not hold copied to a new
        segment with vector ids from `now.next_vector_id` on (a re-index numbers from 0 again, so old ids may
        be taken). Returns (the entries, the next free vector id)."""
        current = {d.segment for d in now.documents}
        stale = old.keyword_tokenizer != TOKENIZER_VERSION  # its terms, split another way: split them again
        next_id = now.next_vector_id
        entries = []
        for doc in (d for d in old.documents if d.owner is None):
            if doc.segment in current:
                entries.append(doc)
                continue
            records, vectors = self._storage.read_segment(doc.segment)
            copied = [{**record, "id": next_id + n} for n, record in enumerate(records)]
            if stale:
                for record in copied:
                    record["terms"] = " ".join(terms(context_text(doc.name, record_chunk(record))))
            next_id += len(records)
            segment = f"{doc.doc_id}-{new_id()}"
            self._storage.write_segment(segment, copied, vectors)
            entries.append(dataclasses.replace(doc, segment=segment, chunks=len(records)))
        return tuple(entries), next_id

    def _history(self, before: Manifest, documents: Sequence[DocumentEntry]) -> tuple[RemovedDocument, ...]:
        """The shared history after a change from `before` to `documents`: the shared documents it takes out,
        added as removed now, and the older entries still inside `shared_history_days`; a document that is
        back in the index (or whose newer removal is recorded) leaves the list."""
        now = datetime.now(timezone.utc)
        current = {d.doc_id for d in documents}
        gone = [RemovedDocument(d, utc_now()) for d in before.documents if d.owner is None and d.doc_id not in current]
        cutoff = now - timedelta(days=self.retrieval.shared_history_days)
        history: dict[str, RemovedDocument] = {}
        for item in (*before.shared_history, *gone):
            if item.entry.doc_id not in current and (parse_date(item.removed_at) or _LONG_AGO) >= cutoff:
                history.pop(item.entry.doc_id, None)
                history[item.entry.doc_id] = item  # the newest removal, last
        return tuple(history.values())

    def restore_document(self, name: str, progress: Progress) -> FileReport:
        """Bring back the newest removed version of the shared document `name` (its file name, or its id) from
        the shared history, re-read from its stored original with today's settings, replacing a shared
        document of that name (which goes into the history in turn). Raises DocumentNotFoundError when the
        history holds no such document, IndexCorruptError when its stored original is gone."""
        manifest = self._live.current().manifest
        wanted = str(name).strip()
        found = [h for h in manifest.shared_history if wanted in (h.entry.name, h.entry.doc_id)]
        if not found:
            kept = ", ".join(sorted({h.entry.name for h in manifest.shared_history})) or "none"
            raise DocumentNotFoundError(
                f"No deleted or replaced shared document named {wanted[:80]!r} is kept (restorable now: {kept[:300]})."
            )
        entry = found[-1].entry
        try:
            data = self._uploads.read(entry.doc_id, entry.name)
        except OSError:
            raise IndexCorruptError(
                f"The stored original of {entry.name} is gone from {self._uploads.root}; add the file again."
            ) from None
        progress(0.1, f"Reading {entry.name}")
        doc = prepare(entry.name, data, self.chunker, float("inf"), self.bounds)
        progress(0.4, f"Embedding {len(doc.chunks)} chunks of {entry.name}")
        vectors = self._embedding.checked(manifest.dim).encode(doc.contexts)
        progress(0.9, "Saving the index")
        report = self.commit([(0, doc, vectors)], placement=Placement(None, None, replace=True))[0]
        progress(1.0, report.message)
        return report

    def _prune(self) -> None:
        try:
            kept = self._storage.prune(self.retrieval.index_snapshots_kept)
            if kept:  # originals of kept snapshots' documents, and of the shared history (kept[0] is current)
                history = {h.entry.doc_id for h in kept[0].shared_history}
                self._uploads.prune({d.doc_id for m in kept for d in m.documents} | history)
        except (OSError, IndexCorruptError):
            log.exception("pruning old snapshots failed (the index itself is saved)")


class Quota:
    """Per-person limits on documents (`max_documents_per_user`, `max_document_mb_per_user`), counted over
    every document that person added, in any collection. The operator (`added_by` None) has none."""

    def __init__(self, limits: UploadSettings, documents: Iterable[DocumentEntry], added_by: str | None):
        self.added_by = added_by
        self.max_documents = limits.max_documents_per_user
        self.max_bytes = int(limits.max_document_mb_per_user * 2**20)
        mine = [d for d in documents if added_by is not None and d.added_by == added_by]
        self.documents, self.bytes = len(mine), sum(d.size_bytes for d in mine)

    def refusal(self, name: str, size: int, replaced: Sequence[DocumentEntry] = ()) -> str | None:
        """One sentence when adding `name` (`size` bytes, replacing `replaced`) would pass a limit; else None."""
        if self.added_by is None:
            return None
        mine = [d for d in replaced if d.added_by == self.added_by]
        documents = self.documents - len(mine) + 1
        total = self.bytes - sum(d.size_bytes for d in mine) + size
        if documents > self.max_documents:
            return (
                f"{name} was not added: you have {self.documents} documents, the most one person may keep; "
                "delete one first."
            )
        if total > self.max_bytes:
            return (
                f"{name} was not added: your documents would take {total / 2**20:.1f} MB, over the "
                f"{self.max_bytes / 2**20:g} MB one person may keep; delete one first."
            )
        return None

    def before_reading(
        self, name: str, data: bytes, documents: Sequence[DocumentEntry], placement: Placement
    ) -> str | None:
        """`refusal` for raw bytes not yet read as a document, counting them as taken when they pass (so a batch
        cannot slip past the limit). Bytes already in the collection pass (they are left unchanged)."""
        if self.added_by is None:
            return None
        digest = hashlib.sha256(data).hexdigest()
        if any(d.sha256 == digest and d.owner in (placement.owner, None) for d in documents):
            return None
        replaced = [d for d in documents if d.owner == placement.owner and d.name == name] if placement.replace else []
        refusal = self.refusal(name, len(data), replaced)
        if refusal is None:
            self.documents += 1 - len([d for d in replaced if d.added_by == self.added_by])
            self.bytes += len(data) - sum(d.size_bytes for d in replaced if d.added_by == self.added_by)
        return refusal

    def count(self, entry: DocumentEntry) -> None:
        if self.added_by is not None and entry.added_by == self.added_by:
            self.documents += 1
            self.bytes += entry.size_bytes


def write_error(index_dir: Path, exc: OSError) -> IndexWriteError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return IndexWriteError(f"The index in {index_dir} could not be saved ({reason}); the previous version is kept.")


def summary(reports: Iterable[FileReport | None]) -> str:
    done = [r for r in reports if r is not None]
    failed = sum(1 for r in done if not r.ok)
    return f"Done: {len(done) - failed} of {len(done)} files in the index" + (f", {failed} refused." if failed else ".")


def chunk_count(n: int) -> str:
    return f"{n} chunk" if n == 1 else f"{n} chunks"

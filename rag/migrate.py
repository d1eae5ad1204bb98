"""Moving an index between the two backends, both ways, without embedding anything again.

    python -m rag migrate --to postgres --data-dir data --database-url postgresql://…   # files -> database
    python -m rag migrate --to faiss --data-dir data2 --database-url postgresql://…     # database -> files

Both storages (`rag.storage.IndexStorage`, `rag.pg_storage.PgStorage`) hold the same things in the same shapes:
snapshots (manifests), segments (chunk records and their vectors) and stored originals. A migration copies every
kept snapshot with its segments and the originals its documents (and the shared history) need, under the target's
write lock, the current snapshot last: owners, private collections, quotas, snapshot ids and the shared history
arrive as they were, so `restore` works on the target as on the source. The target must be empty; the source is
left as it is.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from core.layout import DataLayout
from core.settings import Settings
from rag.errors import IndexCorruptError, RagError
from rag.manifest import DocumentEntry, Manifest
from rag.records import Progress, no_progress
from rag.storage import IndexStorage
from rag.uploads import UploadStore

log = logging.getLogger(__name__)


class MigrationError(RagError):
    """The index cannot be migrated (the target is not empty, the source has nothing or cannot be read)."""


@dataclass(frozen=True)
class Migrated:
    source: str
    target: str
    snapshots: int
    documents: int
    chunks: int
    originals: int
    missing_originals: tuple[str, ...]


def migrate(settings: Settings, to: str, progress: Progress = no_progress) -> Migrated:
    """Copy the index of `settings` (its data directory and its database) to the backend `to` ('postgres' or
    'faiss') from the other one. Raises MigrationError, IndexUnavailableError or IndexCorruptError (one sentence)."""
    from rag.database import Database
    from rag.pg_storage import PgStorage, PgUploads

    if to not in ("postgres", "faiss"):
        raise MigrationError(f"Migrate --to 'postgres' or 'faiss', not {to!r}.")
    if not settings.retrieval.database_url:
        raise MigrationError("A migration needs the database's address: --database-url or EXPERT_DATABASE_URL.")
    layout = DataLayout(settings.data_dir)
    files = IndexStorage(layout.index), UploadStore(layout.document_uploads)
    db = Database.connect(settings.retrieval.database_url)
    try:
        database = PgStorage(db), PgUploads(db)
        source, target = (files, database) if to == "postgres" else (database, files)
        return _copy(*source, *target, progress)
    finally:
        db.close()


def _copy(source, source_uploads, target, target_uploads, progress: Progress) -> Migrated:
    current = source.current_snapshot()
    if current is None:
        raise MigrationError(f"The index in {source.root} holds nothing to migrate.")
    manifests: list[Manifest] = []
    for snapshot_id in sorted(source.snapshot_ids()):  # oldest first
        try:
            manifests.append(source.read_manifest(snapshot_id))
        except IndexCorruptError:
            if snapshot_id == current:
                raise
            log.warning("snapshot %s cannot be read; it is not migrated", snapshot_id)
    newest = next(m for m in manifests if m.snapshot_id == current)
    manifests = [m for m in manifests if m.snapshot_id != current] + [newest]  # the current one last
    segments = list(dict.fromkeys(d.segment for m in manifests for d in m.documents))
    with target.write_lock():
        if target.current_snapshot() is not None or target.snapshot_ids():
            raise MigrationError(
                f"The index in {target.root} is not empty; migrate into an empty one (a new database, or a data "
                "directory without an index), so nothing there is overwritten."
            )
        chunks = 0
        for n, segment in enumerate(segments):
            progress(0.8 * n / max(len(segments), 1), f"Copying segment {n + 1} of {len(segments)}")
            records, vectors = source.read_segment(segment)
            target.write_segment(segment, records, vectors)
            chunks += len(records) if any(d.segment == segment for d in newest.documents) else 0
        progress(0.8, "Copying the stored originals")
        entries = {d.doc_id: d for m in manifests for d in (*m.documents, *(h.entry for h in m.shared_history))}
        labels, missing = {}, []
        for doc_id, entry in entries.items():
            try:
                labels[doc_id] = target_uploads.save(doc_id, entry.name, source_uploads.read(doc_id, entry.name))
            except FileNotFoundError:
                missing.append(entry.name)
        progress(0.9, "Saving the snapshots")
        for manifest in manifests:
            target.commit(_relabelled(manifest, labels))
    progress(1.0, f"Migrated {len(newest.documents)} documents ({chunks} chunks) and {len(manifests)} snapshots.")
    return Migrated(
        str(source.root),
        str(target.root),
        len(manifests),
        len(newest.documents),
        chunks,
        len(labels),
        tuple(sorted(set(missing))),
    )


def _relabelled(manifest: Manifest, labels: dict[str, str]) -> Manifest:
    """The manifest with each document's `upload` naming where the target keeps its original."""

    def entry(d: DocumentEntry) -> DocumentEntry:
        return dataclasses.replace(d, upload=labels.get(d.doc_id, d.upload))

    history = tuple(dataclasses.replace(h, entry=entry(h.entry)) for h in manifest.shared_history)
    return dataclasses.replace(manifest, documents=tuple(map(entry, manifest.documents)), shared_history=history)

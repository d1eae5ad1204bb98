"""The index on disk: immutable per-document segments and snapshots named by a CURRENT pointer.

    <data_dir>/index/
        CURRENT                            one line: "snapshots/<snapshot_id>" (see rag.manifest)
        snapshots/<snapshot_id>/manifest.json
        segments/<segment_id>/chunks.jsonl one JSON object per chunk (id, position, text, location, ...)
        segments/<segment_id>/vectors.npy  float32 (chunks, dim), rows in chunks.jsonl order
        .lock                              held (flock) by the one process writing

A save writes the new document's segment and a new snapshot directory, each as `<name>.tmp`, and
publishes them with `core.files.publish_dir` (fsync, rename, fsync the parent), then replaces
CURRENT with `core.files.atomic_write_bytes`. A crash at any point leaves CURRENT naming the last
complete snapshot, whose segments are never modified. After a successful save, old snapshots are
pruned: the newest `index_snapshots_kept` stay, as fallbacks and for `python -m rag restore` (a
replaced or deleted shared document comes back from one), but never one that still holds a deleted
*private* document, so a person deleting their own upload removes its data from disk. Deleted or
replaced shared documents are also kept apart from the count, in the current manifest's shared history
(`rag.manifest.RemovedDocument`, for `shared_history_days`), whose stored originals the pruning keeps.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import secrets
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from core.files import atomic_write_bytes, publish_dir
from rag.errors import IndexCorruptError, IndexWriteError
from rag.manifest import CURRENT, MANIFEST, SNAPSHOTS, Manifest, ManifestError, pointer_line, pointer_target
from rag.records import Chunk
from rag.uploads import folder_bytes

SEGMENTS = "segments"
KEEP_SNAPSHOTS = 10
_REPAIR = "restore the index folder from a backup, or move it aside and add the documents again"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    """Sortable by creation time, unique across processes: "20251121T143005123456-a1b2c3"."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}-{secrets.token_hex(3)}"


def chunk_record(vector_id: int, chunk: Chunk, chunk_terms: list[str]) -> dict[str, Any]:
    """One line of a segment's chunks.jsonl."""
    return {
        "id": vector_id,
        "position": chunk.position,
        "text": chunk.text,
        "location": chunk.location,
        "page": chunk.page,
        "heading": chunk.heading,
        "terms": " ".join(chunk_terms),
    }


def record_chunk(record: dict[str, Any]) -> Chunk:
    """The chunk a chunks.jsonl line holds."""
    return Chunk(record["text"], record["position"], record["location"], record.get("page"), record.get("heading", ""))


def _write_file(path: Path, data: bytes) -> None:
    """A file inside a `.tmp` folder not yet published (`publish_dir` fsyncs it)."""
    path.write_bytes(data)


class IndexStorage:
    """Reads and writes one index directory. Writers hold `write_lock()` (also across processes)."""

    def __init__(self, index_dir: Path):
        self.root = Path(index_dir)

    def load_index(self, manifest: Manifest) -> Any:
        """A snapshot, searchable: FAISS and BM25 in memory, from its segments (`MemoryIndex`). Raises
        IndexCorruptError."""
        from rag.memory_index import MemoryIndex  # it reads segments through this module

        return MemoryIndex.from_segments(self, manifest)

    def new_index(self, manifest: Manifest, disk_pointer: str | None) -> Any:
        """An empty searchable index for `manifest` (nothing saved yet, or a rebuild about to fill it)."""
        from rag.memory_index import MemoryIndex

        return MemoryIndex(manifest, disk_pointer=disk_pointer)

    # -- reading ------------------------------------------------------------------------------
    def current_snapshot(self) -> str | None:
        """The snapshot CURRENT names, or None when nothing was ever saved (or CURRENT names no snapshot)."""
        try:
            return pointer_target((self.root / CURRENT).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            return None

    def snapshot_ids(self) -> list[str]:
        """Complete snapshots on disk, newest first."""
        folder = self.root / SNAPSHOTS
        if not folder.is_dir():
            return []
        names = [p.name for p in folder.iterdir() if p.is_dir() and not p.name.endswith(".tmp")]
        return sorted(names, reverse=True)

    def read_manifest(self, snapshot_id: str) -> Manifest:
        """Raises IndexCorruptError when the snapshot's manifest is missing or unreadable."""
        path = self.root / SNAPSHOTS / snapshot_id / MANIFEST
        try:
            manifest = Manifest.parse(path.read_bytes())
            if manifest.snapshot_id != snapshot_id:
                raise ManifestError("the manifest does not describe its own snapshot")
            return manifest
        except (OSError, ManifestError) as exc:
            raise IndexCorruptError(
                f"The index snapshot {snapshot_id} in {self.root} cannot be read ({_reason(exc)}); {_REPAIR}."
            ) from None

    def read_segment(self, segment_id: str) -> tuple[list[dict[str, Any]], np.ndarray]:
        """(chunk records, vectors). Raises IndexCorruptError when files are missing or disagree."""
        folder = self.root / SEGMENTS / segment_id
        try:
            with open(folder / "chunks.jsonl", encoding="utf-8") as f:
                records = [json.loads(line) for line in f if line.strip()]
            vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(
                f"The index segment {segment_id} in {self.root} cannot be read ({_reason(exc)}); {_REPAIR}."
            ) from None
        if vectors.ndim != 2 or len(vectors) != len(records):
            raise IndexCorruptError(
                f"The index segment {segment_id} in {self.root} has {len(records)} chunks but {len(vectors)} "
                f"vectors; {_REPAIR}."
            )
        return records, np.ascontiguousarray(vectors, dtype=np.float32)

    # -- writing ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """Serialize writers across processes (the app and `python -m rag` on the same data dir).
        Raises IndexWriteError when the index folder cannot be written at all."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.root / ".lock", "a+")  # closed by the `with` below
        except OSError as exc:
            raise IndexWriteError(
                f"The index in {self.root} cannot be written ({_reason(exc)}); check that the data directory "
                "is writable."
            ) from exc
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _staging(self, parent: str, name: str) -> Path:
        """A fresh, empty `<parent>/<name>.tmp` folder (a crash's leftover is removed first)."""
        folder = self.root / parent
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        return tmp

    def write_segment(self, segment_id: str, records: list[dict[str, Any]], vectors: np.ndarray) -> None:
        """Write one immutable segment (in a `.tmp` folder, published when complete)."""
        tmp = self._staging(SEGMENTS, segment_id)
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        _write_file(tmp / "chunks.jsonl", lines.encode("utf-8"))
        with open(tmp / "vectors.npy", "wb") as f:
            np.save(f, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
        publish_dir(tmp, self.root / SEGMENTS / segment_id)

    def commit(self, manifest: Manifest) -> None:
        """Write `manifest` as a new snapshot and point CURRENT at it. Until CURRENT is replaced the
        previous snapshot stays current; after it, the new one is complete on disk."""
        tmp = self._staging(SNAPSHOTS, manifest.snapshot_id)
        _write_file(tmp / MANIFEST, manifest.dumps())
        publish_dir(tmp, self.root / SNAPSHOTS / manifest.snapshot_id)
        atomic_write_bytes(self.root / CURRENT, pointer_line(manifest.snapshot_id).encode())

    def prune(self, keep: int = KEEP_SNAPSHOTS) -> list[Manifest]:
        """Keep the current snapshot and up to `keep - 1` newer-first older ones (fallbacks, and what
        `restore` can go back to), then delete every other snapshot, unfinished `.tmp` leftovers, and
        segments no kept snapshot names.

        An older snapshot is kept only if all its private documents are still current: once a person
        deletes or replaces their own upload, no snapshot may bring it back, so its data goes now.
        Shared documents stay recoverable until `keep` newer snapshots pass. Returns the kept
        manifests (callers prune stored originals by them); empty, deleting nothing, when no
        snapshot is current. Raises IndexCorruptError when the current one cannot be read (nothing
        is deleted then)."""
        kept = snapshots_to_keep(self, keep)
        if not kept:
            return []
        kept_names = {m.snapshot_id for m in kept}
        for folder in (self.root / SNAPSHOTS, self.root / SEGMENTS):
            if not folder.is_dir():
                continue
            used = kept_names if folder.name == SNAPSHOTS else {d.segment for m in kept for d in m.documents}
            for path in folder.iterdir():
                if path.name not in used:
                    shutil.rmtree(path, ignore_errors=True)
        return kept

    def disk_bytes(self) -> int:
        return folder_bytes(self.root)


def snapshots_to_keep(storage: Any, keep: int) -> list[Manifest]:
    """Which snapshots a prune keeps, for either storage: the current one, then newer-first older ones up to
    `keep` in all, each only if every private document it holds is still current (once a person deletes or
    replaces their own upload, no snapshot may bring it back). Empty when no snapshot is current."""
    current = storage.current_snapshot()
    if current is None:
        return []
    kept = [storage.read_manifest(current)]
    live = {d.doc_id for d in kept[0].documents}
    for snapshot_id in storage.snapshot_ids():
        if len(kept) >= keep:
            break
        if snapshot_id == current:
            continue
        try:
            manifest = storage.read_manifest(snapshot_id)
        except IndexCorruptError:
            continue
        if {d.doc_id for d in manifest.documents if d.owner is not None} <= live:
            kept.append(manifest)
    return kept


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc).rstrip(".") or type(exc).__name__

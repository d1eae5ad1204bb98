"""The index on disk: immutable per-document segments and snapshots named by a CURRENT pointer.

    <data_dir>/index/
        CURRENT                            one line: "snapshots/<snapshot_id>"
        snapshots/<snapshot_id>/manifest.json
        segments/<segment_id>/chunks.jsonl one JSON object per chunk (id, position, text, location, ...)
        segments/<segment_id>/vectors.npy  float32 (chunks, dim), rows in chunks.jsonl order

A save writes the new document's segment and a new snapshot directory, each as `<name>.tmp`,
fsyncs them, renames them into place, then replaces CURRENT with `os.replace`. A crash at any
point leaves CURRENT naming the last complete snapshot, whose segments are never modified.
After a successful save, old snapshots are pruned: a few stay as fallbacks, but never one that
still holds a deleted document, so deleting a document removes its data from disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexCorruptError

CURRENT = "CURRENT"
SNAPSHOTS = "snapshots"
SEGMENTS = "segments"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
KEEP_SNAPSHOTS = 3


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    """Sortable by creation time, unique across processes: "20251121T143005123456-a1b2c3"."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}-{secrets.token_hex(3)}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _publish_dir(tmp: Path, final: Path) -> None:
    """fsync a fully written `<name>.tmp` directory and rename it to its final name."""
    _fsync_dir(tmp)
    os.rename(tmp, final)
    _fsync_dir(final.parent)


class IndexStorage:
    """Reads and writes one index directory. Writers hold `write_lock()` (also across processes)."""

    def __init__(self, index_dir: Path):
        self.root = Path(index_dir)

    # -- reading ------------------------------------------------------------------------------
    def current_snapshot(self) -> str | None:
        """The snapshot CURRENT names, or None when nothing was ever saved."""
        try:
            pointer = (self.root / CURRENT).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return Path(pointer).name or None

    def snapshot_ids(self) -> list[str]:
        """Complete snapshots on disk, newest first."""
        folder = self.root / SNAPSHOTS
        if not folder.is_dir():
            return []
        names = [p.name for p in folder.iterdir() if p.is_dir() and not p.name.endswith(".tmp")]
        return sorted(names, reverse=True)

    def read_manifest(self, snapshot_id: str) -> dict[str, Any]:
        """Raises IndexCorruptError when the snapshot's manifest is missing or unreadable."""
        path = self.root / SNAPSHOTS / snapshot_id / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict) or manifest.get("snapshot_id") != snapshot_id:
                raise ValueError("manifest does not describe its own snapshot")
            return manifest
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"The index snapshot {snapshot_id} cannot be read ({exc}).") from None

    def read_segment(self, segment_id: str) -> tuple[list[dict[str, Any]], np.ndarray]:
        """(chunk records, vectors). Raises IndexCorruptError when files are missing or disagree."""
        folder = self.root / SEGMENTS / segment_id
        try:
            with open(folder / "chunks.jsonl", encoding="utf-8") as f:
                records = [json.loads(line) for line in f if line.strip()]
            vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"The index segment {segment_id} cannot be read ({exc}).") from None
        if vectors.ndim != 2 or len(vectors) != len(records):
            raise IndexCorruptError(
                f"The index segment {segment_id} has {len(records)} chunks but {len(vectors)} vectors."
            )
        return records, np.ascontiguousarray(vectors, dtype=np.float32)

    # -- writing ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """Serialize writers across processes (the app and `python -m rag` on the same data dir)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def write_segment(self, segment_id: str, records: list[dict[str, Any]], vectors: np.ndarray) -> None:
        """Write one immutable segment (tmp, fsync, rename)."""
        folder = self.root / SEGMENTS
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{segment_id}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        _write_file(tmp / "chunks.jsonl", lines.encode("utf-8"))
        with open(tmp / "vectors.npy", "wb") as f:
            np.save(f, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        _publish_dir(tmp, folder / segment_id)

    def commit(self, manifest: dict[str, Any]) -> None:
        """Write `manifest` as a new snapshot and point CURRENT at it. Until the final `os.replace`
        the previous snapshot stays current; after it, the new one is complete on disk."""
        snapshot_id = manifest["snapshot_id"]
        folder = self.root / SNAPSHOTS
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{snapshot_id}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        _write_file(tmp / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8"))
        _publish_dir(tmp, folder / snapshot_id)
        pointer = self.root / f"{CURRENT}.tmp"
        _write_file(pointer, f"{SNAPSHOTS}/{snapshot_id}\n".encode())
        os.replace(pointer, self.root / CURRENT)
        _fsync_dir(self.root)

    def prune(self, keep: int = KEEP_SNAPSHOTS) -> list[dict[str, Any]]:
        """Keep the current snapshot and up to `keep - 1` newer-first older ones as fallbacks, then
        delete every other snapshot, unfinished `.tmp` leftovers, and segments no kept snapshot names.

        An older snapshot is kept only if all its documents are still current: once a document is
        deleted or replaced, no fallback may bring it back, so its data goes now. Returns the kept
        manifests (callers prune stored originals by them)."""
        current = self.current_snapshot()
        kept: list[dict[str, Any]] = []
        if current is not None:
            kept.append(self.read_manifest(current))
            live = {d["doc_id"] for d in kept[0]["documents"]}
            for snapshot_id in self.snapshot_ids():
                if len(kept) >= keep:
                    break
                if snapshot_id == current:
                    continue
                try:
                    manifest = self.read_manifest(snapshot_id)
                except IndexCorruptError:
                    continue
                if {d["doc_id"] for d in manifest["documents"]} <= live:
                    kept.append(manifest)
        kept_names = {m["snapshot_id"] for m in kept}
        for folder in (self.root / SNAPSHOTS, self.root / SEGMENTS):
            if not folder.is_dir():
                continue
            used = kept_names if folder.name == SNAPSHOTS else {d["segment"] for m in kept for d in m["documents"]}
            for path in folder.iterdir():
                if path.name not in used:
                    shutil.rmtree(path, ignore_errors=True)
        return kept

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

"""The index's manifest: what one snapshot holds, as typed records, and where it lives on disk.

    <data_dir>/index/CURRENT                          one line: "snapshots/<snapshot_id>"
    <data_dir>/index/snapshots/<snapshot_id>/manifest.json

`Manifest` and `DocumentEntry` are frozen: a change makes a new manifest (`dataclasses.replace`), and
a new snapshot on disk. `Manifest.from_json` reads every manifest written since format 1 (a field
it does not know is kept and written back; a missing optional field gets its default), and
`to_json` writes the same JSON, in the same key order, as the index always has.

`read_snapshot(data_dir)` says which snapshot is current without loading an index or a model (the
training script records it in the adapter card); it reads only `snapshot_id` and `created_at`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from answer.ports import Snapshot, content_id
from core.bm25_tokens import TOKENIZER_VERSION
from core.layout import DataLayout

FORMAT_VERSION = 1
EMPTY_SNAPSHOT = "empty"
"""The snapshot id of an index that was never saved."""
CURRENT = "CURRENT"
SNAPSHOTS = "snapshots"
MANIFEST = "manifest.json"


class ManifestError(ValueError):
    """A manifest that is not valid JSON of a known format (the storage reports it as IndexCorruptError)."""


def pointer_line(snapshot_id: str) -> str:
    """What CURRENT holds when `snapshot_id` is current."""
    return f"{SNAPSHOTS}/{snapshot_id}\n"


def pointer_target(line: str) -> str | None:
    """The snapshot id a CURRENT line names, or None when it names anything but `snapshots/<id>`."""
    parts = PurePosixPath(line.strip()).parts
    if len(parts) != 2 or parts[0] != SNAPSHOTS or parts[1] in ("..", ".") or parts[1].endswith(".tmp"):
        return None
    return parts[1]


_DOC_FIELDS = (
    "doc_id",
    "name",
    "sha256",
    "chunks",
    "added_at",
    "size_bytes",
    "segment",
    "upload",
    "note",
    "owner",
    "added_by",
)
_FIELDS = (
    "format",
    "snapshot_id",
    "parent_snapshot_id",
    "created_at",
    "embed_model",
    "dim",
    "chunk_size",
    "chunk_overlap",
    "effective_chunk_size",
    "keyword_tokenizer",
    "next_vector_id",
    "sample_seeded",
    "documents",
    "shared_history",
)


@dataclass(frozen=True)
class DocumentEntry:
    """One document of a snapshot: its original under `upload` and its chunks in `segment`."""

    doc_id: str  # the first 16 hex digits of `sha256`
    name: str  # file name as uploaded (made safe)
    sha256: str
    chunks: int
    segment: str  # folder under index/segments/
    added_at: str = ""  # ISO 8601 UTC; kept through a re-index
    size_bytes: int = 0
    upload: str = ""  # the original, relative to the data directory: "uploads/<doc_id>/<name>"
    note: str = ""  # e.g. "decoded from cp949"
    owner: str | None = None  # None: the shared knowledge base; else one person's private collection (core.identity)
    added_by: str | None = None  # who uploaded it (core.identity.owner_id), for per-person quotas; None: the operator
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)  # fields of a newer writer

    @classmethod
    def from_json(cls, value: Any) -> DocumentEntry:
        """Raises ManifestError when a required field is missing or of the wrong type."""
        if not isinstance(value, dict):
            raise ManifestError("a document entry is not an object")
        return cls(
            doc_id=_text(value, "doc_id"),
            name=_text(value, "name"),
            sha256=_text(value, "sha256"),
            chunks=_int(value, "chunks"),
            segment=_text(value, "segment"),
            added_at=_text(value, "added_at", ""),
            size_bytes=_int(value, "size_bytes", 0),
            upload=_text(value, "upload", ""),
            note=_text(value, "note", ""),
            owner=_text(value, "owner", None),
            added_by=_text(value, "added_by", None),
            extra={k: v for k, v in value.items() if k not in _DOC_FIELDS},
        )

    def to_json(self) -> dict[str, Any]:
        fields = {name: getattr(self, name) for name in _DOC_FIELDS}
        for name in ("owner", "added_by"):  # absent when unset: a shared document reads as it always has
            if fields[name] is None:
                del fields[name]
        return {**fields, **self.extra}


@dataclass(frozen=True)
class RemovedDocument:
    """A shared document that a delete, a replace, a restore or a re-index took out of the index, kept (its
    entry, and its stored original on disk) for `shared_history_days`, so that `python -m rag restore
    --document NAME` can bring it back whatever happened since: private churn and re-indexing included."""

    entry: DocumentEntry
    removed_at: str  # ISO 8601 UTC

    @classmethod
    def from_json(cls, value: Any) -> RemovedDocument:
        if not isinstance(value, dict):
            raise ManifestError("a shared-history entry is not an object")
        rest = {k: v for k, v in value.items() if k != "removed_at"}
        return cls(DocumentEntry.from_json(rest), _text(value, "removed_at"))

    def to_json(self) -> dict[str, Any]:
        return {**self.entry.to_json(), "removed_at": self.removed_at}


@dataclass(frozen=True)
class Manifest:
    """One snapshot of the index: how it was built and which documents it holds, oldest first."""

    snapshot_id: str  # changes on every add, delete or re-index; EMPTY_SNAPSHOT before the first save
    embed_model: str  # canonical name (rag.embedding.canonical_name)
    chunk_size: int  # as set when last saved; 0 when unknown
    chunk_overlap: int
    format: int = FORMAT_VERSION
    parent_snapshot_id: str | None = None
    created_at: str = ""  # ISO 8601 UTC; "" before the first save
    dim: int | None = None  # None until the first document is embedded
    effective_chunk_size: int | None = None  # chunk_size capped to the embedding model's window
    keyword_tokenizer: str = ""  # core.bm25_tokens.TOKENIZER_VERSION of the stored terms
    next_vector_id: int = 0
    sample_seeded: bool = False  # the shipped sample documents were ingested once
    documents: tuple[DocumentEntry, ...] = ()
    shared_history: tuple[RemovedDocument, ...] = ()  # newest last; see RemovedDocument
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)  # fields of a newer writer

    @classmethod
    def empty(cls, embed_model: str, chunk_size: int, chunk_overlap: int) -> Manifest:
        """The manifest of an index never saved."""
        return cls(EMPTY_SNAPSHOT, embed_model, chunk_size, chunk_overlap, keyword_tokenizer=TOKENIZER_VERSION)

    @property
    def snapshot(self) -> Snapshot:
        """Id and date of this snapshot, and the content id of the shared documents (people's private
        uploads do not make an adapter trained on the shared knowledge base stale)."""
        pairs = [(d.name, d.sha256) for d in self.documents if d.owner is None]
        return Snapshot(self.snapshot_id, self.created_at, content_id(pairs) if pairs else "")

    def document(self, doc_id: str) -> DocumentEntry | None:
        return next((d for d in self.documents if d.doc_id == doc_id), None)

    @classmethod
    def from_json(cls, value: Any) -> Manifest:
        """Read a parsed manifest.json. Raises ManifestError when it is not an object, lacks
        `snapshot_id`, `embed_model` or `documents`, has a field of the wrong type, or was written
        in a format newer than FORMAT_VERSION."""
        if not isinstance(value, dict):
            raise ManifestError("the manifest is not a JSON object")
        version = _int(value, "format", 1)
        if version > FORMAT_VERSION:
            raise ManifestError(f"the manifest has format {version}, newer than this version reads")
        documents = value.get("documents")
        if not isinstance(documents, list):
            raise ManifestError("the manifest has no list of documents")
        history = value.get("shared_history") or []
        if not isinstance(history, list):
            raise ManifestError("the manifest's shared history is not a list")
        return cls(
            snapshot_id=_text(value, "snapshot_id"),
            embed_model=_text(value, "embed_model"),
            chunk_size=_int(value, "chunk_size", 0),
            chunk_overlap=_int(value, "chunk_overlap", 0),
            format=version,
            parent_snapshot_id=_text(value, "parent_snapshot_id", None),
            created_at=_text(value, "created_at", ""),
            dim=_int(value, "dim", None),
            effective_chunk_size=_int(value, "effective_chunk_size", None),
            keyword_tokenizer=_text(value, "keyword_tokenizer", ""),
            next_vector_id=_int(value, "next_vector_id", 0),
            sample_seeded=bool(value.get("sample_seeded", False)),
            documents=tuple(DocumentEntry.from_json(d) for d in documents),
            shared_history=tuple(RemovedDocument.from_json(h) for h in history),
            extra={k: v for k, v in value.items() if k not in _FIELDS},
        )

    def to_json(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _FIELDS}
        out["documents"] = [d.to_json() for d in self.documents]
        out["shared_history"] = [h.to_json() for h in self.shared_history]
        if not self.shared_history:  # absent when empty: a manifest reads as it always has
            del out["shared_history"]
        return {**out, **self.extra}

    @classmethod
    def parse(cls, text: str | bytes) -> Manifest:
        """`from_json` of manifest.json's text. Raises ManifestError."""
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ManifestError(f"the manifest is not valid JSON: {exc}") from None
        return cls.from_json(value)

    def dumps(self) -> bytes:
        """manifest.json's bytes, as the index has always written them."""
        return json.dumps(self.to_json(), ensure_ascii=False, indent=1).encode("utf-8")


_MISSING = object()


def _default(key: str, default: Any) -> Any:
    """A missing (or null) field: its default, or ManifestError for a required one."""
    if default is _MISSING:
        raise ManifestError(f"the manifest has no {key!r}")
    return default


def _text(value: dict[str, Any], key: str, default: Any = _MISSING) -> Any:
    got = value.get(key)
    if got is None:
        return _default(key, default)
    if not isinstance(got, str):
        raise ManifestError(f"{key!r} in the manifest is not text")
    return got


def _int(value: dict[str, Any], key: str, default: Any = _MISSING) -> Any:
    got = value.get(key)
    if got is None:
        return _default(key, default)
    if isinstance(got, bool) or not isinstance(got, int):
        raise ManifestError(f"{key!r} in the manifest is not a whole number")
    return got


def read_snapshot(data_dir: str | Path, snapshot_id: str | None = None) -> Snapshot | None:
    """Which snapshot of the index under `data_dir` is current (or, with `snapshot_id`, whether that
    one is on disk), as (snapshot_id, created_at), read from its manifest without loading anything.

    None when there is no index, CURRENT names anything but a snapshot folder inside the index,
    the manifest is unreadable or does not describe the snapshot asked for. Never raises."""
    try:
        index = DataLayout(data_dir).index
        if snapshot_id is None:
            snapshot_id = pointer_target((index / CURRENT).read_text(encoding="utf-8"))
        elif pointer_target(f"{SNAPSHOTS}/{snapshot_id}") != snapshot_id:
            return None
        if not snapshot_id:
            return None
        folder = (index / SNAPSHOTS / snapshot_id).resolve()
        if not folder.is_relative_to((index / SNAPSHOTS).resolve()):
            return None
        value = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or value.get("snapshot_id") != snapshot_id:
        return None
    created_at = value.get("created_at")
    documents = value.get("documents") if isinstance(value.get("documents"), list) else []
    pairs = [(d.get("name", ""), d.get("sha256", "")) for d in documents if isinstance(d, dict) and not d.get("owner")]
    return Snapshot(snapshot_id, created_at if isinstance(created_at, str) else "", content_id(pairs) if pairs else "")

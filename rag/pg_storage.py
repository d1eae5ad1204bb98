"""The index in PostgreSQL: the same snapshots, segments and current pointer as `rag.storage` keeps in files, as
tables (`rag.database`), so every app replica on the database reads and writes one index.

`PgStorage` has `IndexStorage`'s methods and keeps its promises: a segment is written before any snapshot names
it; `commit` inserts the snapshot, moves the current pointer and marks which segments are live in one
transaction, so a reader (any replica) sees the old index or the new one, never half of one; `prune` keeps the
same snapshots the file storage keeps and deletes the rest, with their rows. Writers hold the database's advisory
lock (`Database.write_lock`), so two replicas never save at once. `PgUploads` keeps the stored originals in the
database, where every replica can re-read them.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np

from rag.database import Database, IndexUnavailableError, chunk_table
from rag.errors import IndexCorruptError
from rag.manifest import Manifest, ManifestError
from rag.storage import KEEP_SNAPSHOTS, snapshots_to_keep

_REPAIR = "restore the database from a backup, or add the documents again"
_RECORD_KEYS = ("position", "location", "page", "heading", "terms")


def _text(sql: str):
    from sqlalchemy import text

    return text(sql)


def _insert(name: str, *columns: str):
    """A Core insert: given many rows, SQLAlchemy sends them in batches ("insertmanyvalues"), not one by one."""
    from sqlalchemy import column, table

    return table(name, *(column(c) for c in columns)).insert()


class PgStorage:
    """`rag.storage.IndexStorage`, in the database."""

    def __init__(self, db: Database):
        self.db = db
        self.root = db.where  # what messages name as the index's place

    def load_index(self, manifest: Manifest) -> Any:
        """A snapshot, searchable where it is: in the database (`rag.pg_index.PgIndex`); nothing is loaded into
        memory but the manifest. Raises IndexCorruptError when a segment it names is missing or partial."""
        from rag.pg_index import PgIndex

        return PgIndex.from_segments(self, manifest)

    def new_index(self, manifest: Manifest, disk_pointer: str | None) -> Any:
        from rag.pg_index import PgIndex

        return PgIndex(manifest, disk_pointer, self)

    # -- reading ------------------------------------------------------------------------------
    def current_snapshot(self) -> str | None:
        with self.db.transaction() as sql:
            return sql.execute(_text("SELECT snapshot_id FROM expert_current")).scalar()

    def snapshot_ids(self) -> list[str]:
        """Complete snapshots, newest first."""
        with self.db.transaction() as sql:
            rows = sql.execute(_text("SELECT snapshot_id FROM expert_snapshots ORDER BY snapshot_id DESC"))
            return [r[0] for r in rows]

    def read_manifest(self, snapshot_id: str) -> Manifest:
        """Raises IndexCorruptError when the snapshot is missing or unreadable."""
        with self.db.transaction() as sql:
            data = sql.execute(
                _text("SELECT manifest FROM expert_snapshots WHERE snapshot_id = :id"), {"id": snapshot_id}
            ).scalar()
        try:
            if data is None:
                raise ManifestError("it is not in the database")
            manifest = Manifest.parse(bytes(data))
            if manifest.snapshot_id != snapshot_id:
                raise ManifestError("the manifest does not describe its own snapshot")
            return manifest
        except ManifestError as exc:
            raise IndexCorruptError(
                f"The index snapshot {snapshot_id} in {self.root} cannot be read ({str(exc).rstrip('.')}); {_REPAIR}."
            ) from None

    def segment_dim(self, segment_id: str) -> int | None:
        with self.db.transaction() as sql:
            return sql.execute(_text("SELECT dim FROM expert_segments WHERE segment = :s"), {"s": segment_id}).scalar()

    def read_segment(self, segment_id: str) -> tuple[list[dict[str, Any]], np.ndarray]:
        """(chunk records, vectors), as `IndexStorage.read_segment` returns them. Raises IndexCorruptError when
        the segment is missing or its rows disagree with it."""
        with self.db.transaction() as sql:
            row = sql.execute(
                _text("SELECT dim, chunks FROM expert_segments WHERE segment = :s"), {"s": segment_id}
            ).first()
            if row is None:
                raise IndexCorruptError(f"The index segment {segment_id} is not in {self.root}; {_REPAIR}.")
            dim, chunks = row
            rows = sql.execute(
                _text(
                    f"SELECT text, metadata_, embedding::real[] FROM {chunk_table(dim)} "
                    "WHERE metadata_->>'segment' = :s ORDER BY (metadata_->>'vector_id')::bigint"
                ),
                {"s": segment_id},
            ).all()
        if len(rows) != chunks:
            raise IndexCorruptError(
                f"The index segment {segment_id} in {self.root} has {len(rows)} of its {chunks} chunks; {_REPAIR}."
            )
        records = [
            {"id": int(meta["vector_id"]), "text": text, **{k: meta.get(k) for k in _RECORD_KEYS}}
            for text, meta, _ in rows
        ]
        for record in records:
            record["heading"] = record["heading"] or ""
            record["terms"] = record["terms"] or ""
        vectors = np.asarray([np.asarray(e, np.float32) for _, _, e in rows], np.float32).reshape(len(rows), dim)
        return records, vectors

    # -- writing ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """One writer at a time across every replica on the database (`Database.write_lock`)."""
        with self.db.write_lock():
            yield

    def write_segment(self, segment_id: str, records: list[dict[str, Any]], vectors: np.ndarray) -> None:
        """Write one segment: its row first (not live), then its chunks and vectors through PGVectorStore, then
        its keyword postings. Until a snapshot names it (and `commit` marks it live) no search sees it; a writer
        that dies half-way leaves a row that no snapshot names, which the next `prune` deletes with the rest."""
        from llama_index.core.schema import TextNode

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = int(vectors.shape[1]) if vectors.ndim == 2 and len(vectors) else 0
        chunk_terms = [r["terms"].split(" ") if r["terms"] else [] for r in records]
        with self.db.transaction() as sql:
            sql.execute(
                _text(
                    "INSERT INTO expert_segments (segment, dim, chunks, total_terms) VALUES (:s, :dim, :n, :total) "
                    "ON CONFLICT (segment) DO UPDATE SET dim = :dim, chunks = :n, total_terms = :total"
                ),
                {"s": segment_id, "dim": dim, "n": len(records), "total": float(sum(map(len, chunk_terms)))},
            )
        if records:
            nodes = [
                TextNode(
                    id_=f"{segment_id}:{r['id']}",
                    text=r["text"].replace("\x00", ""),
                    embedding=v.tolist(),
                    metadata={"segment": segment_id, "vector_id": int(r["id"]), **{k: r.get(k) for k in _RECORD_KEYS}},
                )
                for r, v in zip(records, vectors, strict=True)
            ]
            try:
                self.db.vectors(dim).add(nodes)
            except IndexUnavailableError:
                raise
            except Exception as exc:
                raise self.db.unavailable(exc) from exc
        postings: dict[str, dict[str, list]] = {}
        for r, words in zip(records, chunk_terms, strict=True):
            for term, count in Counter(words).items():
                row = postings.setdefault(term, {"term": term, "segment": segment_id, "ids": [], "tf": [], "len": []})
                row["ids"].append(int(r["id"]))
                row["tf"].append(float(count))
                row["len"].append(float(len(words)))
        if postings:
            with self.db.transaction() as sql:
                sql.execute(_insert("expert_terms", "term", "segment", "ids", "tf", "len"), list(postings.values()))

    def commit(self, manifest: Manifest) -> None:
        """In one transaction: the snapshot, the current pointer, and which segments are live (with their
        document, file name and owner, which searches read). One statement each, whatever the number of
        documents; only rows whose state changes are written."""
        docs = manifest.documents
        with self.db.transaction() as sql:
            sql.execute(
                _text("INSERT INTO expert_snapshots (snapshot_id, manifest) VALUES (:id, :m)"),
                {"id": manifest.snapshot_id, "m": manifest.dumps()},
            )
            sql.execute(
                _text(
                    "INSERT INTO expert_current (one, snapshot_id) VALUES (true, :id) "
                    "ON CONFLICT (one) DO UPDATE SET snapshot_id = :id"
                ),
                {"id": manifest.snapshot_id},
            )
            dead = sql.execute(
                _text(
                    "UPDATE expert_segments SET live = false WHERE live AND NOT (segment = ANY(:live)) "
                    "RETURNING segment, dim, owner"
                ),
                {"live": [d.segment for d in docs]},
            ).all()
            born = sql.execute(
                _text(
                    "UPDATE expert_segments s SET live = true, doc_id = m.doc_id, name = m.name, owner = m.owner "
                    "FROM unnest(CAST(:segments AS text[]), CAST(:docs AS text[]), CAST(:names AS text[]), "
                    "CAST(:owners AS text[])) AS m(segment, doc_id, name, owner) WHERE s.segment = m.segment "
                    "AND NOT (s.live AND s.doc_id IS NOT DISTINCT FROM m.doc_id AND s.name IS NOT DISTINCT FROM m.name "
                    "AND s.owner IS NOT DISTINCT FROM m.owner) RETURNING s.segment, s.dim, s.owner"
                ),
                {
                    "segments": [d.segment for d in docs],
                    "docs": [d.doc_id for d in docs],
                    "names": [d.name for d in docs],
                    "owners": [d.owner for d in docs],
                },
            ).all()
            # the same on the chunks' own rows, which searches filter by: only the segments whose state changed
            tables = set(self._chunk_dims(sql))
            for rows, live in ((dead, False), (born, True)):
                for dim in {d for _, d, _ in rows} & tables:
                    mine = [(segment, owner) for segment, d, owner in rows if d == dim]
                    sql.execute(
                        _text(
                            f"UPDATE {chunk_table(dim)} c SET live = :live, owner = m.owner FROM unnest("
                            "CAST(:segments AS text[]), CAST(:owners AS text[])) AS m(segment, owner) "
                            "WHERE c.metadata_->>'segment' = m.segment"
                        ),
                        {"live": live, "segments": [m[0] for m in mine], "owners": [m[1] for m in mine]},
                    )

    def prune(self, keep: int = KEEP_SNAPSHOTS) -> list[Manifest]:
        """`IndexStorage.prune`: the same snapshots kept (the current one, and older ones none of whose private
        documents were deleted since), every other snapshot deleted, and the rows of every segment no kept
        snapshot names (a dead writer's included). Hold `write_lock`."""
        kept = snapshots_to_keep(self, keep)
        if not kept:
            return []
        names = [m.snapshot_id for m in kept]
        used = sorted({d.segment for m in kept for d in m.documents})
        with self.db.transaction() as sql:
            sql.execute(_text("DELETE FROM expert_snapshots WHERE NOT (snapshot_id = ANY(:kept))"), {"kept": names})
            gone = sql.execute(
                _text("SELECT segment, dim FROM expert_segments WHERE NOT (segment = ANY(:used))"), {"used": used}
            ).all()
            if gone:  # through the segment indexes: a prune costs what it deletes, not the size of the index
                segments = [segment for segment, _ in gone]
                for table in ("expert_terms", "expert_segments"):
                    sql.execute(_text(f"DELETE FROM {table} WHERE segment = ANY(:gone)"), {"gone": segments})
                for dim in {d for _, d in gone if d} & set(self._chunk_dims(sql)):
                    sql.execute(
                        _text(f"DELETE FROM {chunk_table(dim)} WHERE metadata_->>'segment' = ANY(:gone)"),
                        {"gone": segments},
                    )
        return kept

    @staticmethod
    def _chunk_dims(sql: Any) -> list[int]:
        rows = sql.execute(
            _text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'data\\_expert\\_chunks\\_%'")
        ).all()
        return [int(name.rsplit("_", 1)[1]) for (name,) in rows if name.rsplit("_", 1)[1].isdigit()]

    def disk_bytes(self) -> int:
        """What the index's tables take in the database (with their indexes)."""
        with self.db.transaction() as sql:
            total = sql.execute(
                _text(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind = 'r' AND (c.relname LIKE 'expert\\_%' OR c.relname LIKE 'data\\_expert\\_%') "
                    "AND n.nspname = current_schema()"
                )
            ).scalar()
        return int(total or 0)


class PgUploads:
    """`rag.uploads.UploadStore`, in the database: the original of every indexed document, by its id."""

    def __init__(self, db: Database):
        self.db = db
        self.root = db.where

    def save(self, doc_id: str, name: str, data: bytes) -> str:
        """Store an original (idempotent: the same doc_id means the same bytes); returns where it is kept."""
        with self.db.transaction() as sql:
            sql.execute(
                _text(
                    "INSERT INTO expert_uploads (doc_id, name, data) VALUES (:id, :name, :data) "
                    "ON CONFLICT (doc_id) DO NOTHING"
                ),
                {"id": doc_id, "name": name, "data": data},
            )
        return f"database:expert_uploads/{doc_id}"

    def read(self, doc_id: str, name: str) -> bytes:
        """Raises FileNotFoundError when the original is gone."""
        with self.db.transaction() as sql:
            data = sql.execute(_text("SELECT data FROM expert_uploads WHERE doc_id = :id"), {"id": doc_id}).scalar()
        if data is None:
            raise FileNotFoundError(f"{doc_id}/{name}")
        return bytes(data)

    def prune(self, keep_doc_ids: set[str]) -> None:
        """Delete originals of documents no kept snapshot (or the shared history) names."""
        with self.db.transaction() as sql:
            sql.execute(
                _text("DELETE FROM expert_uploads WHERE NOT (doc_id = ANY(:keep))"), {"keep": sorted(keep_doc_ids)}
            )

    def disk_bytes(self) -> int:
        return 0  # counted with the index's tables (`PgStorage.disk_bytes`)

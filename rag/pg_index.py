"""The index of the 'postgres' backend, searched where it lives: dense candidates from pgvector's HNSW index through
LlamaIndex's `PGVectorStore`, keyword candidates by BM25 computed in the database over the app's own terms.

`PgIndex` has the shape of `rag.memory_index.MemoryIndex` that `rag.search.Searcher` uses, so fusion (RRF and the
relevance floor, `rag.fusion`) is the same code for both backends. It keeps only the manifest in memory (a
replica's watcher reloads it when the current snapshot changes, `index_watch_s`); which chunks a search may return
is what the database says is live at that moment (`expert_segments.live`, set by the commit that saved the
snapshot), so a document another replica deleted is never returned once its delete commits.

The keyword side scores exactly as `rag.keyword_index.KeywordIndex` does (Lucene's BM25, k1 1.5, b 0.75; IDF and
the average length over every live chunk; coverage as the share of the query's IDF mass, a term nobody uses
counting with the highest IDF), on the same terms (`core.bm25_tokens`: Korean, Japanese and Chinese as character
n-grams, Mongolian Cyrillic as words), stored per term and segment in `expert_terms`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from rag.database import chunk_table
from rag.errors import IndexCorruptError
from rag.keyword_index import K1, B, KeywordHit
from rag.manifest import Manifest
from rag.memory_index import Found
from rag.pg_storage import PgStorage, _text

_KEYWORD = f"""
WITH q AS (SELECT DISTINCT unnest(CAST(:terms AS text[])) AS term),
totals AS (SELECT greatest(sum(chunks), 1)::float8 AS n, greatest(sum(total_terms), 1)::float8 AS length
           FROM expert_segments WHERE live),
found AS (SELECT t.term, t.ids, t.tf, t.len, (s.owner IS NULL OR s.owner = :viewer) AS visible
          FROM expert_terms t JOIN expert_segments s ON s.segment = t.segment AND s.live
          WHERE t.term = ANY(CAST(:terms AS text[]))),
df AS (SELECT term, sum(cardinality(ids))::float8 AS df FROM found GROUP BY term),
idf AS (SELECT q.term, ln(1 + (totals.n - coalesce(df.df, 0) + 0.5) / (coalesce(df.df, 0) + 0.5)) AS idf
        FROM q CROSS JOIN totals LEFT JOIN df USING (term))
SELECT p.id,
       sum(idf.idf * p.tf / (p.tf + {K1} * (1 - {B} + {B} * p.len / (totals.length / totals.n)))) AS score,
       sum(idf.idf) / (SELECT sum(idf) FROM idf) AS coverage
FROM found CROSS JOIN LATERAL unnest(found.ids, found.tf, found.len) AS p(id, tf, len)
     JOIN idf USING (term) CROSS JOIN totals
WHERE found.visible
GROUP BY p.id ORDER BY score DESC, p.id LIMIT :k
"""


class PgIndex:
    """One snapshot of the index in the database. Immutable but for `apply`, which swaps its manifest at once:
    searches read it without `LiveIndex.lock`."""

    in_memory = False

    def __init__(self, manifest: Manifest, disk_pointer: str | None, storage: PgStorage):
        self.manifest = manifest
        self.disk_pointer = disk_pointer
        self.storage = storage
        self.names = {d.doc_id: d.name for d in manifest.documents}

    @classmethod
    def from_segments(cls, storage: PgStorage, manifest: Manifest) -> PgIndex:
        """The index of `manifest`, after checking that the database holds every segment it names, whole.
        Raises IndexCorruptError."""
        wanted = {d.segment: d.chunks for d in manifest.documents}
        with storage.db.transaction() as sql:
            rows = sql.execute(
                _text("SELECT segment, chunks, dim FROM expert_segments WHERE segment = ANY(:s)"), {"s": list(wanted)}
            ).all()
        found = {segment: (chunks, dim) for segment, chunks, dim in rows}
        for segment, chunks in wanted.items():
            have = found.get(segment)
            if have is None or have[0] != chunks or (chunks and have[1] != manifest.dim):
                raise IndexCorruptError(
                    f"The index segment {segment} in {storage.root} is missing or does not match its snapshot; "
                    "restore the database from a backup, or add the documents again."
                )
        return cls(manifest, None, storage)

    @property
    def chunk_count(self) -> int:
        return sum(d.chunks for d in self.manifest.documents)

    def apply(self, manifest: Manifest, removals: Iterable[str], additions: Iterable[Any]) -> None:
        """The database already holds the change (`PgStorage.commit`); only the manifest is new."""
        self.names = {d.doc_id: d.name for d in manifest.documents}
        self.manifest = manifest
        self.disk_pointer = manifest.snapshot_id

    # -- searching ----------------------------------------------------------------------------------
    def candidates(
        self, vector: np.ndarray | None, query_terms: list[str], dense_k: int, keyword_k: int, viewer: str | None
    ) -> tuple[list[tuple[int, float]], list[KeywordHit]]:
        """`MemoryIndex.candidates`, from the database: the live chunks `viewer` may see (the shared ones and
        their own). Raises IndexUnavailableError (one sentence) when the database cannot be used."""
        db = self.storage.db
        dense: list[tuple[int, float]] = []
        if vector is not None and self.manifest.dim:
            from llama_index.core.vector_stores.types import VectorStoreQuery

            query = VectorStoreQuery(query_embedding=np.asarray(vector, np.float32).tolist(), similarity_top_k=dense_k)
            try:
                result = db.vectors(self.manifest.dim).query(query, viewer=viewer)
            except Exception as exc:  # the driver's or SQLAlchemy's: one sentence, never a traceback
                raise db.unavailable(exc) from exc
            pairs = zip(result.nodes, result.similarities, strict=True)
            hits = [(int(node.metadata["vector_id"]), float(similarity)) for node, similarity in pairs]
            dense = sorted(hits, key=lambda hit: -hit[1])
        keyword: list[KeywordHit] = []
        if query_terms:
            with db.transaction() as sql:
                rows = sql.execute(_text(_KEYWORD), {"terms": list(query_terms), "viewer": viewer, "k": keyword_k})
                keyword = [KeywordHit(int(v), float(score), float(coverage)) for v, score, coverage in rows]
        return dense, keyword

    def found(self, ids: Iterable[int]) -> dict[int, Found]:
        """The live chunks of these ids, as passages need them."""
        ids = [int(i) for i in ids]
        if not ids or not self.manifest.dim:
            return {}
        table = chunk_table(self.manifest.dim)
        with self.storage.db.transaction() as sql:
            rows = sql.execute(
                _text(
                    f"SELECT (c.metadata_->>'vector_id')::bigint, c.text, s.doc_id, s.name, "
                    f"(c.metadata_->>'position')::int, c.metadata_->>'location' FROM {table} c "
                    "JOIN expert_segments s ON s.segment = c.metadata_->>'segment' "
                    "WHERE s.live AND (c.metadata_->>'vector_id')::bigint = ANY(:ids)"
                ),
                {"ids": ids},
            ).all()
        return {
            int(v): Found(text, doc, name, position, location or "") for v, text, doc, name, position, location in rows
        }

    def outline(self, doc_ids: set[str]) -> list[tuple[str, int, str]]:
        """(document id, chunk position, location) of every live chunk of these documents."""
        if not doc_ids or not self.manifest.dim:
            return []
        with self.storage.db.transaction() as sql:
            rows = sql.execute(
                _text(
                    f"SELECT s.doc_id, (c.metadata_->>'position')::int, c.metadata_->>'location' "
                    f"FROM {chunk_table(self.manifest.dim)} c JOIN expert_segments s "
                    "ON s.segment = c.metadata_->>'segment' WHERE s.live AND s.doc_id = ANY(:docs)"
                ),
                {"docs": sorted(doc_ids)},
            ).all()
        return [(doc, position, location or "") for doc, position, location in rows]

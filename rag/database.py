"""The PostgreSQL database of the 'postgres' index backend: the connection, the schema and its version, the one
lock every replica's writer takes, and the one sentence for each way the database can fail.

    db = Database.connect("postgresql://user:password@host:5432/expert")   # IndexUnavailableError, one sentence
    with db.transaction() as sql: sql.execute(text("..."), {...})        # committed, or rolled back
    with db.write_lock(): ...                                             # one writer across every replica
    db.vectors(384)                                                       # LlamaIndex's PGVectorStore, HNSW

Tables (all `expert_*`, plus PGVectorStore's `data_expert_chunks_<dim>`):

    expert_schema          one row: the schema version (a newer one than `SCHEMA_VERSION` is refused)
    expert_snapshots       snapshot_id -> its manifest (rag.manifest's JSON, as on disk)
    expert_current         one row: the current snapshot (what CURRENT is on disk)
    expert_segments        one row per document segment: its chunks' term count, and, from the current
                           manifest, whether it is live, its document, file name and owner (searches read these)
    expert_terms           the keyword index: one row per (term, segment) with the ids of the segment's chunks
                           that hold the term, its count in each and their lengths (a term's document frequency
                           is the sum of the lengths of its live rows)
    expert_uploads         doc_id, name -> the original bytes (what `reindex` and `restore --document` re-read)
    data_expert_chunks_<dim>  one row per chunk: text, metadata (segment, vector_id, position, location, ...)
                           and its embedding, with an HNSW index (cosine); written and searched through
                           `llama_index.vector_stores.postgres.PGVectorStore`

Nothing here is imported by the FAISS backend: SQLAlchemy, psycopg2 and pgvector load with the first `connect`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rag.errors import IndexUnavailableError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
HNSW = {"hnsw_m": 16, "hnsw_ef_construction": 64, "hnsw_ef_search": 200, "hnsw_dist_method": "vector_cosine_ops"}
"""pgvector's HNSW index: 16 links per node, built with a candidate list of 64, searched with one of 200. On 100k
vectors shaped like MiniLM's, recall@10 against exact search was 0.974 with 100 and 0.981 with 200, at 2.1 and
2.8 ms a query (`bench/bench_postgres.py` measures it through the app's own search)."""
_LOCK_KEY = 0x6578706572  # "exper": the advisory lock every replica's index writer takes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS expert_schema (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS expert_snapshots (
    snapshot_id text PRIMARY KEY, manifest bytea NOT NULL, saved_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS expert_current (
    one boolean PRIMARY KEY DEFAULT true CHECK (one), snapshot_id text NOT NULL);
CREATE TABLE IF NOT EXISTS expert_segments (
    segment text PRIMARY KEY, dim integer NOT NULL, chunks integer NOT NULL, total_terms double precision NOT NULL,
    live boolean NOT NULL DEFAULT false, doc_id text, name text, owner text);
CREATE TABLE IF NOT EXISTS expert_terms (
    term text NOT NULL, segment text NOT NULL, ids bigint[] NOT NULL, tf real[] NOT NULL, len real[] NOT NULL,
    PRIMARY KEY (term, segment));
CREATE INDEX IF NOT EXISTS expert_terms_segment ON expert_terms (segment);
CREATE TABLE IF NOT EXISTS expert_uploads (doc_id text PRIMARY KEY, name text NOT NULL, data bytea NOT NULL);
"""


def redact(url: str) -> str:
    """The address without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    netloc += f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _driver_url(url: str, driver: str) -> str:
    scheme, _, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres") and not scheme.startswith("postgresql+"):
        raise IndexUnavailableError(f"The database address must start with postgresql://, not {scheme[:20]!r}://.")
    return f"postgresql+{driver}://{rest}"


def _reason(exc: BaseException) -> str:
    """The first line of what the driver said, without the SQL or a traceback."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return (text[0] if text else type(original).__name__).rstrip(".")[:200]


class Database:
    """One connection pool to the index's database, shared by the storage, the search and the vector stores."""

    def __init__(self, url: str, engine: Any):
        self.url, self.where = url, redact(url)
        self.engine = engine
        self._vectors: dict[int, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, url: str, connect_timeout_s: int = 10) -> Database:
        """Connect, make sure pgvector is there, and create or check the schema. Raises IndexUnavailableError
        (one sentence) for a bad or unreachable address, a database without pgvector, or a newer schema."""
        from sqlalchemy import create_engine
        from sqlalchemy.exc import ArgumentError

        try:
            engine = create_engine(
                _driver_url(url, "psycopg2"),
                pool_pre_ping=True,  # a connection the server dropped is replaced, not handed to a search
                pool_size=8,
                connect_args={
                    "connect_timeout": connect_timeout_s,
                    # a filtered HNSW search goes on until it has enough rows (pgvector 0.8)
                    "options": "-c hnsw.iterative_scan=strict_order",
                    "application_name": "industry-expert",
                },
            )
        except ArgumentError:
            raise IndexUnavailableError(f"The database address {redact(url)[:120]!r} cannot be read.") from None
        db = cls(url, engine)
        db._prepare()
        return db

    def _prepare(self) -> None:
        from sqlalchemy import text

        with self.transaction() as sql:
            try:
                with sql.begin_nested():
                    sql.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            except Exception as exc:  # any refusal to create it: say what the server said
                raise IndexUnavailableError(
                    f"The database at {self.where} has no pgvector extension and it cannot be created there "
                    f"({_reason(exc)}); install pgvector on that server or ask its provider to enable it."
                ) from None
            sql.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY + 1})  # one creator
            for statement in filter(str.strip, _SCHEMA.split(";")):
                sql.execute(text(statement))
            version = sql.execute(text("SELECT max(version) FROM expert_schema")).scalar()
            if version is None:
                sql.execute(text("INSERT INTO expert_schema (version) VALUES (:v)"), {"v": SCHEMA_VERSION})
            elif version > SCHEMA_VERSION:
                raise IndexUnavailableError(
                    f"The database at {self.where} holds an index of schema version {version}, newer than this app "
                    f"understands ({SCHEMA_VERSION}); upgrade the app, or point it at another database."
                )

    def unavailable(self, exc: BaseException) -> IndexUnavailableError:
        """The one sentence for a failure of the database while it was being used."""
        return IndexUnavailableError(
            f"The document index's database at {self.where} cannot be used right now ({_reason(exc)}); "
            "answers that need the documents are unavailable until it is back."
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A connection in a transaction: committed when the block ends, rolled back when it raises. A failure of
        the database (connection refused or lost, a timeout) is raised as IndexUnavailableError."""
        from sqlalchemy.exc import DBAPIError, OperationalError

        try:
            with self.engine.begin() as connection:
                yield connection
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, OperationalError) or getattr(exc, "connection_invalidated", False):
                raise self.unavailable(exc) from exc
            raise

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """Hold the index's advisory lock: one writer at a time across every replica on this database. A
        writer that dies (or loses its connection) lets go of it at once."""
        from sqlalchemy import text

        with self.transaction() as sql:
            sql.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
            try:
                yield
            finally:
                with contextlib.suppress(Exception):  # a lost connection has already let go of it
                    sql.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})

    def vectors(self, dim: int) -> Any:
        """LlamaIndex's PGVectorStore over the chunks of embedding dimension `dim` (its table is made, with its
        HNSW index, on first use)."""
        with self._lock:
            if dim not in self._vectors:
                self._vectors[dim] = _vector_store(self, dim)
            return self._vectors[dim]

    def close(self) -> None:
        self.engine.dispose()


def chunk_table(dim: int) -> str:
    return f"data_expert_chunks_{int(dim)}"


def _vector_store(db: Database, dim: int) -> Any:
    from llama_index.vector_stores.postgres import PGVectorStore
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    store = PGVectorStore(
        table_name=f"expert_chunks_{int(dim)}",
        embed_dim=int(dim),
        use_jsonb=True,
        hnsw_kwargs=dict(HNSW),
        engine=db.engine,
        # PGVectorStore wants an async engine beside the sync one; it connects only if used, which it never is
        async_engine=create_async_engine(_driver_url(db.url, "asyncpg")),
        initialization_fail_on_error=True,
        customize_query_fn=_visible_only,
    )
    try:
        store._initialize()  # the table and its HNSW index, now, so a failure is one sentence here
        with db.transaction() as sql:
            table = chunk_table(dim)
            # whether a chunk is live and whose it is, on its own row, so a search filters while it walks the
            # HNSW graph (pgvector's iterative scan) instead of joining every chunk of every live segment
            sql.execute(text(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS live boolean NOT NULL DEFAULT false"))
            sql.execute(text(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS owner text"))
            sql.execute(text(f"CREATE INDEX IF NOT EXISTS {table}_node ON {table} (node_id)"))
            sql.execute(text(f"CREATE INDEX IF NOT EXISTS {table}_segment ON {table} ((metadata_->>'segment'))"))
            vector_id = "((metadata_->>'vector_id')::bigint)"
            sql.execute(text(f"CREATE INDEX IF NOT EXISTS {table}_vector ON {table} ({vector_id})"))
    except IndexUnavailableError:
        raise
    except Exception as exc:
        raise db.unavailable(exc) from exc
    return store


def _visible_only(stmt: Any, table: Any, viewer: str | None = None, **_: Any) -> Any:
    """PGVectorStore's query, narrowed to the live chunks that `viewer` may see: the shared ones and their own (the
    `live` and `owner` columns `PgStorage.commit` keeps on each chunk's row)."""
    from sqlalchemy import literal_column, or_

    live, owner = (literal_column(f"{table.__tablename__}.{name}") for name in ("live", "owner"))
    shared = owner.is_(None)
    return stmt.where(live).where(shared if viewer is None else or_(shared, owner == viewer))
